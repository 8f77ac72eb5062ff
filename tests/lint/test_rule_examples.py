"""Every rule's own examples are its tests: each `invalid` example is reported exactly on
its labeled lines, each `valid` example not at all (by any rule)."""
from __future__ import annotations

import pytest

from pathlib import Path

from qlint.engine import lint_source, lint_text
from qlint.registry import _LABEL, SAFE, UNSAFE, all_rules
from tests.lint.labels import labels, mismatches

RULES = all_rules()
ENABLED = frozenset(code for code, rule in RULES.items() if not rule.opt_in)  # opt-in rules: their own examples
INVALID = [(code, i, source) for code, rule in RULES.items() for i, source in enumerate(rule.invalid)]
VALID = [(code, i, source) for code, rule in RULES.items() for i, source in enumerate(rule.valid)]
FIXED = [(code, i, source) for code, i, source in INVALID if getattr(source, "fixed", None) is not None]


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


@pytest.mark.parametrize(("code", "index", "source"), FIXED, ids=[f"{c}-fixed{i}" for c, i, _ in FIXED])
def test_fixing_an_invalid_example_gives_its_fixed_source(code, index, source):
    """Fixit's `Invalid(code, fixed=...)`: `--fix --unsafe-fixes --select CODE` writes exactly
    `fixed` (labels aside), and fixing that again changes nothing."""
    path = Path(f"{code}_invalid.py")
    fixed = lint_text(source.encode(), path, frozenset({code}), fix=True, unsafe=True).source
    assert _LABEL.sub("", fixed.decode()) == source.fixed, f"{code} invalid example {index} fixed as:\n{fixed.decode()}"
    assert lint_text(source.fixed.encode(), path, frozenset({code}), fix=True, unsafe=True).source == source.fixed.encode()


@pytest.mark.parametrize("code", [code for code, rule in RULES.items() if rule.fix_safety])
def test_a_fixable_rule_shows_its_fix(code):
    assert any(c == code for c, _, _ in FIXED), f"{code} is fixable: give an invalid example its fixed= source"
    assert RULES[code].fix_safety_note, f"{code} is fixable: say why its fix is {RULES[code].fix_safety}"


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
