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


def rule_markdown(rule: type[Rule]) -> str:
    """One rule: what it does, why it is bad, a bad and a good example, the fix."""
    fix_safety = {SAFE: "Fix: **safe** (`--fix`).", UNSAFE: "Fix: **unsafe** (`--fix --unsafe-fixes`)."}.get(
        rule.fix_safety, "No automatic fix: change the code by hand.")
    return (
        f'<a id="{anchor(rule.code)}"></a>\n\n'
        f"## {_heading(rule)}\n\n"
        f"Severity: **{rule.severity}**. {fix_safety}\n\n"
        f"### What it does\n\n{rule.summary}\n\n"
        f"### Why is this bad?\n\n{rule.explanation.strip()}\n\n"
        f"### Example\n\n```python\n{rule.bad_example().strip()}\n```\n\n"
        f"### Use instead\n\n{rule.fix.strip()}\n\n```python\n{rule.good_example().strip()}\n```\n"
        + (f"\n### Fix safety\n\n{rule.fix_safety_note.strip()}\n" if rule.fix_safety_note else "")
    )


def rules_markdown() -> str:
    """docs/rules.md: an index table, then one section per rule in code order."""
    rules = list(all_rules().values())
    index = "".join(
        f"| [{rule.code}](#{anchor(rule.code)}) | {rule.name} | {rule.severity} | {_table_cell(rule.summary)} |\n"
        for rule in rules
    )
    return (
        "# Rules\n\n"
        f"<!-- Generated from the rule registry by `{REGENERATE}`; do not edit by hand. -->\n\n"
        "| Code | Name | Severity | Summary |\n"
        "| --- | --- | --- | --- |\n"
        f"{index}\n" + "\n".join(rule_markdown(rule) for rule in rules)
    )


if __name__ == "__main__":
    print(rules_markdown(), end="")
