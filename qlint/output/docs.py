"""Markdown documentation of the rules, from the registry.

`python -m qlint.output.docs > docs/rules.md` regenerates docs/rules.md;
`qlint rule CODE` prints one rule's section.
"""
from __future__ import annotations

from qlint import REPOSITORY_URL
from qlint.registry import SAFE, UNSAFE, Rule, all_rules

REGENERATE = "python -m qlint.output.docs > docs/rules.md"
# Where docs/rules.md is published; SARIF's helpUri and other links point at its anchors.
RULES_URL = f"{REPOSITORY_URL}/blob/main/docs/rules.md"


def _heading(rule: type[Rule]) -> str:
    return f"{rule.code} {rule.name}"


def anchor(code: str) -> str:
    """The rule's anchor in docs/rules.md: its code in lower case (`ql301`), which stays when
    the rule's name or summary changes."""
    return code.lower()


def rule_url(code: str) -> str:
    return f"{RULES_URL}#{anchor(code)}"


def _table_cell(text: str) -> str:
    return text.replace("|", "\\|")


# What each tier means (the "Fix safety" section of a rule with a fix, before its own note).
TIER_MEANING = {
    SAFE: ("This rule's fix is **safe**: `qlint --fix` applies it. The model computes the same in "
           "float, before and after quantization, and its module tree and state_dict are unchanged."),
    UNSAFE: ("This rule's fix is **unsafe**: `qlint --fix` applies it only with `--unsafe-fixes` "
             "(or `unsafe-fixes = true` in [tool.qlint]); `qlint --diff --unsafe-fixes` shows it first."),
}


def fix_safety(rule: type[Rule]) -> str:
    """The tier of the rule's fix and why it is in it (docs and `qlint rule`); "" without a fix."""
    if not rule.fix_safety:
        return ""
    return f"{TIER_MEANING[rule.fix_safety]} {rule.fix_safety_note.strip()}".strip()


def rule_markdown(rule: type[Rule]) -> str:
    """One rule: what it does, why it is bad, a bad and a good example, the fix and its
    safety (as ruff's rule pages)."""
    tier = f"Fix: **{rule.fix_safety}**." if rule.fix_safety else "No automatic fix: change the code by hand."
    safety = f"\n### Fix safety\n\n{fix_safety(rule)}\n" if rule.fix_safety else ""
    return (
        f'<a id="{anchor(rule.code)}"></a>\n\n'
        f"## {_heading(rule)}\n\n"
        f"Severity: **{rule.severity}**. {tier}\n\n"
        f"### What it does\n\n{rule.summary}\n\n"
        f"### Why is this bad?\n\n{rule.explanation.strip()}\n\n"
        f"### Example\n\n```python\n{rule.bad_example().strip()}\n```\n\n"
        f"### Use instead\n\n{rule.fix.strip()}\n\n```python\n{rule.good_example().strip()}\n```\n"
        f"{safety}"
    )


def rules_markdown() -> str:
    """docs/rules.md: an index table, then one section per rule in code order."""
    rules = list(all_rules().values())
    index = "".join(
        f"| [{rule.code}](#{anchor(rule.code)}) | {rule.name} | {rule.severity} | {rule.fix_safety or '-'} "
        f"| {_table_cell(rule.summary)} |\n"
        for rule in rules
    )
    return (
        "# Rules\n\n"
        f"<!-- Generated from the rule registry by `{REGENERATE}`; do not edit by hand. -->\n\n"
        "| Code | Name | Severity | Fix | Summary |\n"
        "| --- | --- | --- | --- | --- |\n"
        f"{index}\n" + "\n".join(rule_markdown(rule) for rule in rules)
    )


if __name__ == "__main__":
    print(rules_markdown(), end="")
