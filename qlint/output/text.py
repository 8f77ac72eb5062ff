"""Plain text: one `path:line:col: CODE name: message` line per finding, as editors parse."""
from __future__ import annotations

from typing import Sequence

from qlint.finding import Finding
from qlint.registry import ERROR, WARNING


def render_text(findings: Sequence[Finding]) -> str:
    return "".join(
        f"{finding.path}:{finding.line}:{finding.column}: {finding.code} {finding.name}: {finding.message}\n"
        for finding in findings
    )


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def summary_line(findings: Sequence[Finding]) -> str:
    """`Found 3 problems (2 errors, 1 warning).`, or `All checks passed!` (as ruff says)."""
    if not findings:
        return "All checks passed!"
    errors = sum(finding.severity == ERROR for finding in findings)
    warnings = sum(finding.severity == WARNING for finding in findings)
    return f"Found {_plural(len(findings), 'problem')} ({_plural(errors, 'error')}, {_plural(warnings, 'warning')})."
