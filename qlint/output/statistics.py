"""`--statistics`: how many findings per rule, most frequent first; as ruff's, a rule whose
findings --fix would remove is marked `[*]` (JSON: `"fixable": true`)."""
from __future__ import annotations

import json
from collections import Counter
from typing import Sequence

from qlint.finding import Finding


def count_by_code(findings: Sequence[Finding]) -> list[tuple[int, str, str]]:
    """(count, code, name) per rule, sorted by count descending, then code."""
    counts = Counter((finding.code, finding.name) for finding in findings)
    return sorted(((count, code, name) for (code, name), count in counts.items()), key=lambda row: (-row[0], row[1]))


def render_statistics(findings: Sequence[Finding], output_format: str = "text",
                      fix_tiers: frozenset = frozenset()) -> str:
    """Lines like `  12  QL301  tensor-operator`, or a JSON list with `output_format="json"`.
    `fix_tiers`: the fix tiers the run applies; a rule is fixable when its findings' fixes
    are in them (the `[*]`/`[ ]` column shows only when some rule is)."""
    rows = count_by_code(findings)
    fixable = {finding.code for finding in findings if finding.fix in fix_tiers}
    if output_format == "json":
        return json.dumps([{"count": count, "code": code, "name": name, "fixable": code in fixable}
                           for count, code, name in rows], indent=2) + "\n"
    width = max([4, *(len(str(count)) for count, _, _ in rows)])
    marks = {code: ("[*] " if code in fixable else "[ ] ") if fixable else "" for _, code, _ in rows}
    return "".join(f"{count:>{width}}  {code}  {marks[code]}{name}\n" for count, code, name in rows)
