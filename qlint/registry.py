"""The rule registry: every rule's metadata, examples and checker, read by the CLI,
the docs, SARIF output and the tests.

`qlint/data/rules.json` lists the registry's codes, so that reading the settings needs no
rule module (nor libcst): a run whose results all come from the cache imports neither.
`python -m qlint.registry > qlint/data/rules.json` regenerates it; a test checks it.
"""
from __future__ import annotations

import json
import re
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, Iterator, Optional

if TYPE_CHECKING:
    from qlint.rules.base import Report
    from qlint.semantic.model import FileModel

_LABEL = re.compile(r"[ \t]*# (?:expect|allow): [A-Z0-9, ;a-z:]*$", re.MULTILINE)

ERROR = "error"
WARNING = "warning"

# Fix tiers, as ruff's: `--fix` applies safe fixes, `--unsafe-fixes` adds the unsafe ones.
SAFE = "safe"  # behaviour identical in float, before and after quantization; the module tree unchanged
UNSAFE = "unsafe"  # changes the module tree (new submodules), or float outputs in cases qlint cannot rule out


def fix_tiers(unsafe: bool) -> frozenset:
    """The fix tiers a run applies: the safe ones, and with `unsafe` the unsafe ones too."""
    return frozenset({SAFE, UNSAFE} if unsafe else {SAFE})


class Invalid(str):
    """An invalid example (its source) and, for a fixable rule, the source `qlint --fix
    --unsafe-fixes --select CODE` turns it into, without its `# expect:` labels (Fixit's
    `Invalid(code, fixed=...)`). A plain string is an invalid example with no fix expected."""

    fixed: Optional[str]

    def __new__(cls, code: str, fixed: Optional[str] = None) -> "Invalid":
        example = super().__new__(cls, code)
        example.fixed = fixed
        return example


class Rule:
    """A lint rule. Subclasses set the metadata and implement `check`.

    `invalid` examples mark each line that must be reported with a trailing
    `# expect: CODE` comment (an `Invalid` also carries the source its fix gives); `valid` examples must produce no finding of this rule.
    The first of each is the rule's documented bad and good example.
    """

    code: ClassVar[str]
    name: ClassVar[str]
    severity: ClassVar[str]
    summary: ClassVar[str]
    explanation: ClassVar[str]
    fix: ClassVar[str]
    valid: ClassVar[tuple[str, ...]]
    invalid: ClassVar[tuple[str, ...]]  # str or Invalid
    fix_safety: ClassVar[str] = ""  # SAFE, UNSAFE, or "" when qlint has no fix for the rule
    fix_safety_note: ClassVar[str] = ""  # why the fix is in its tier (the docs' "Fix safety" section)
    opt_in: ClassVar[bool] = False  # True: off unless a selector more specific than `QL` names it

    def check(self, model: "FileModel") -> Iterator["Report"]:
        raise NotImplementedError

    @classmethod
    def bad_example(cls) -> str:
        """The first invalid example, without its test labels."""
        return _LABEL.sub("", cls.invalid[0])

    @classmethod
    def good_example(cls) -> str:
        return _LABEL.sub("", cls.valid[0])


RULES: dict[str, type[Rule]] = {}


def register(rule: type[Rule]) -> type[Rule]:
    """Class decorator adding a rule to the registry; codes and names must be unique."""
    assert rule.code not in RULES, f"duplicate rule code {rule.code}"
    assert all(r.name != rule.name for r in RULES.values()), f"duplicate rule name {rule.name}"
    RULES[rule.code] = rule
    return rule


@lru_cache(maxsize=None)
def all_rules() -> dict[str, type[Rule]]:
    """Every registered rule by code, in code order (importing the rule modules once)."""
    import qlint.rules  # noqa: F401  (registers the rules)

    return dict(sorted(RULES.items()))


CATALOG = Path(__file__).with_name("data") / "rules.json"
REGENERATE_CATALOG = "python -m qlint.registry > qlint/data/rules.json"


def catalog_json() -> str:
    """The content of qlint/data/rules.json, from the registry."""
    return json.dumps({"codes": list(all_rules())}, indent=2) + "\n"


@lru_cache(maxsize=None)
def rule_codes() -> tuple[str, ...]:
    """Every rule code, read from qlint/data/rules.json (no rule module is imported)."""
    return tuple(json.loads(CATALOG.read_text())["codes"])


if __name__ == "__main__":
    from qlint.registry import catalog_json as _catalog  # the module the rules register in

    print(_catalog(), end="")
