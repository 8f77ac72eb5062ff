"""GitHub Actions workflow commands: each finding becomes an annotation on the pull request.

https://docs.github.com/en/actions/reference/workflow-commands-for-github-actions
"""
from __future__ import annotations

from typing import Sequence

from qlint.finding import Finding
from qlint.registry import WARNING


def escape_data(text: str) -> str:
    """Escape a command's message as the Actions runner decodes it."""
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def escape_property(text: str) -> str:
    """Escape a property value (file, title): the message escapes plus `:` and `,`."""
    return escape_data(text).replace(":", "%3A").replace(",", "%2C")


def render_github(findings: Sequence[Finding]) -> str:
    lines = []
    for finding in findings:
        command = "warning" if finding.severity == WARNING else "error"
        properties = ",".join(
            f"{key}={escape_property(str(value))}"
            for key, value in (
                ("file", finding.path),
                ("line", finding.line),
                ("col", finding.column),
                ("endLine", finding.end_line),
                ("endColumn", finding.end_column),
                ("title", f"{finding.code} {finding.name}"),
            )
        )
        lines.append(f"::{command} {properties}::{escape_data(finding.message)}\n")
    return "".join(lines)
