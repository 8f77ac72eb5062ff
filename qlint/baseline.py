"""`--baseline FILE`: report only the findings that are not in a baseline written earlier
with `--write-baseline FILE`, to adopt qlint on legacy code and hold new code to it.

A finding matches a baseline entry by its file (relative to the project root), its rule,
and a fingerprint of its line's text (see `qlint.source.fingerprints`): lines added or
removed above it do not unmatch it; an edit of the line itself does.
"""
from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path
from typing import Sequence

from qlint import __version__
from qlint.finding import Finding
from qlint.source import Sources, fingerprints

FORMAT = 1


class BaselineError(ValueError):
    """The baseline file cannot be read; the message names it."""


def _relative(path: str, root: Path) -> str:
    absolute = Path(os.path.abspath(path))
    try:
        return absolute.relative_to(root).as_posix()
    except ValueError:
        return absolute.as_posix()


def _keys(findings: Sequence[Finding], root: Path, sources: Sources) -> list[tuple[str, str, str]]:
    return [(_relative(f.path, root), f.code, fp) for f, fp in zip(findings, fingerprints(findings, sources))]


def write_baseline(path: Path, findings: Sequence[Finding], root: Path, sources: Sources) -> None:
    entries = [
        {"path": rel, "code": code, "fingerprint": fp, "message": finding.message}
        for (rel, code, fp), finding in zip(_keys(findings, root, sources), findings)
    ]
    document = {"qlint_baseline": FORMAT, "qlint_version": __version__, "findings": entries}
    path.write_text(json.dumps(document, indent=2) + "\n")


def load_baseline(path: Path) -> Counter:
    try:
        document = json.loads(path.read_text())
        entries = document["findings"]
        return Counter((e["path"], e["code"], e["fingerprint"]) for e in entries)
    except OSError as error:
        raise BaselineError(f"{path}: cannot read the baseline: {error.strerror}") from None
    except (ValueError, KeyError, TypeError) as error:
        raise BaselineError(f"{path}: not a qlint baseline (write one with --write-baseline): {error}") from None


def new_findings(findings: Sequence[Finding], baseline: Counter, root: Path, sources: Sources) -> list[Finding]:
    """The findings the baseline does not hold (each entry matches one finding)."""
    left = Counter(baseline)
    new = []
    for finding, key in zip(findings, _keys(findings, root, sources)):
        if left[key] > 0:
            left[key] -= 1
        else:
            new.append(finding)
    return new
