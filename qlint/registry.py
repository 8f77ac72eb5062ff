"""The rule registry: every rule's metadata, examples and checker, read by the CLI,
the docs, SARIF output and the tests."""
from __future__ import annotations

import re
from functools import lru_cache
from typing import TYPE_CHECKING, ClassVar, Iterator

if TYPE_CHECKING:
    from qlint.rules.base import Report
    from qlint.semantic.model import FileModel

_LABEL = re.compile(r"[ \t]*# (?:expect|allow): [A-Z0-9, ;a-z:]*$", re.MULTILINE)

ERROR = "error"
WARNING = "warning"


class Rule:
    """A lint rule. Subclasses set the metadata and implement `check`.

    `invalid` examples mark each line that must be reported with a trailing
    `# expect: CODE` comment; `valid` examples must produce no finding of this rule.
    The first of each is the rule's documented bad and good example.
    """

    code: ClassVar[str]
    name: ClassVar[str]
    severity: ClassVar[str]
    summary: ClassVar[str]
    explanation: ClassVar[str]
    fix: ClassVar[str]
    valid: ClassVar[tuple[str, ...]]
    invalid: ClassVar[tuple[str, ...]]
    fixable: ClassVar[bool] = False

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
