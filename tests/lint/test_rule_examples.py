"""Every rule's own examples are its tests: each `invalid` example is reported exactly on
its labeled lines, each `valid` example not at all (by any rule)."""
from __future__ import annotations

import pytest

from pathlib import Path

from qlint.engine import lint_source, lint_text
from qlint.registry import SAFE, UNSAFE, Invalid, all_rules, without_labels
from tests.lint.labels import labels, mismatches

RULES = all_rules()
ENABLED = frozenset(code for code, rule in RULES.items() if not rule.opt_in)  # opt-in rules: their own examples
INVALID = [(code, i, source) for code, rule in RULES.items() for i, source in enumerate(rule.invalid)]
FIXED = [(code, i, source) for code, i, source in INVALID if isinstance(source, Invalid)]
VALID = [(code, i, source) for code, rule in RULES.items() for i, source in enumerate(rule.valid)]


def _describe(findings) -> str:
    return "\n".join(f"  {f.line}:{f.column} {f.code} {f.message}" for f in findings) or "  (none)"


@pytest.mark.parametrize(("code", "index", "source"), INVALID, ids=[f"{c}-invalid{i}" for c, i, _ in INVALID])
def test_invalid_example_is_reported_on_its_labeled_lines(code, index, source):
    expected, _ = labels(source)
    assert any(c == code for _, c in expected), f"{code} invalid example {index} labels no {code} line"
    findings = lint_source(source, f"{code}_invalid.py", codes=ENABLED | {code})
    missed, unexpected = mismatches(source, findings)
    assert not missed and not unexpected, (
        f"{code} invalid example {index}: missed {sorted(missed)}, unexpected {sorted(unexpected)}\n"
        f"found:\n{_describe(findings)}")


@pytest.mark.parametrize(("code", "index", "source"), FIXED, ids=[f"{c}-invalid{i}" for c, i, _ in FIXED])
def test_invalid_example_fixes_to_its_expected_source(code, index, source):
    """Fixit's `Invalid(code, fixed=...)`: the rule's own fixes (every tier, pass after pass)
    turn the example into its `fixed` source, which a second run leaves as it is."""
    path = Path(f"{code}_invalid.py")
    _, fixed = lint_text(source.encode(), path, frozenset({code}), fix=True, unsafe=True)
    assert without_labels(fixed.decode()) == source.fixed, f"{code} invalid example {index} fixed:\n{fixed.decode()}"
    assert lint_text(fixed, path, frozenset({code}), fix=True, unsafe=True)[1] == fixed


@pytest.mark.parametrize(("code", "index", "source"), VALID, ids=[f"{c}-valid{i}" for c, i, _ in VALID])
def test_valid_example_is_silent(code, index, source):
    findings = lint_source(source, f"{code}_valid.py", codes=ENABLED | {code})
    assert not findings, f"{code} valid example {index} reported:\n{_describe(findings)}"


@pytest.mark.parametrize("code", sorted(RULES))
def test_rule_metadata_is_complete(code):
    rule = RULES[code]
    assert rule.code == code and rule.code.startswith("QL") and len(code) == 5
    assert rule.name == rule.name.lower() and " " not in rule.name and "_" not in rule.name
    assert rule.severity in ("error", "warning")
    assert rule.summary and not rule.summary.endswith(".")
    assert len(rule.explanation) > 80 and rule.fix
    assert rule.valid and rule.invalid
    assert rule.fix_safety in ("", SAFE, UNSAFE)


def test_codes_and_names_are_unique():
    names = [rule.name for rule in RULES.values()]
    assert len(set(names)) == len(names)
