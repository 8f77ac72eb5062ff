"""Plain text: one `path:line:col: CODE name: message` line per finding, as editors parse;
`full` adds the code line and a caret under the finding's span (as ruff's full format)."""
from __future__ import annotations

import os
from typing import Sequence, TextIO

from qlint.finding import Finding
from qlint.registry import ERROR, WARNING

_BOLD, _RED, _YELLOW, _CYAN, _BLUE, _RESET = "\033[1m", "\033[31m", "\033[33m", "\033[36m", "\033[34m", "\033[0m"


def use_colour(stream: TextIO) -> bool:
    """Colour on a terminal, never with NO_COLOR set; FORCE_COLOR forces it (no-color.org)."""
    if os.environ.get("NO_COLOR"):
        return False
    if os.environ.get("FORCE_COLOR"):
        return True
    isatty = getattr(stream, "isatty", None)
    return bool(isatty and isatty()) and os.environ.get("TERM") != "dumb"


def _paint(text: str, style: str, colour: bool) -> str:
    return f"{style}{text}{_RESET}" if colour else text


def _heading(finding: Finding, colour: bool) -> str:
    code_style = _RED if finding.severity == ERROR else _YELLOW
    return (f"{_paint(finding.path, _BOLD, colour)}:{finding.line}:{finding.column}: "
            f"{_paint(finding.code, _BOLD + code_style, colour)} {finding.name}: {finding.message}\n")


def render_text(findings: Sequence[Finding], colour: bool = False) -> str:
    return "".join(_heading(finding, colour) for finding in findings)


def render_full(findings: Sequence[Finding], sources, colour: bool = False) -> str:
    """Each finding's line, then its code line and a caret line under the span (on the
    first line of a finding that spans several), then a blank line."""
    parts = []
    for finding in findings:
        parts.append(_heading(finding, colour))
        text = sources.line(finding.path, finding.line)
        if text:
            gutter = str(finding.line)
            pad = " " * len(gutter)
            end = finding.end_column if finding.end_line == finding.line else len(text) + 1
            start = max(finding.column, 1)
            width = max(1, min(end, len(text) + 1) - start)
            # Tabs before the span keep their width in the caret line.
            lead = "".join(c if c == "\t" else " " for c in text[: start - 1])
            parts.append(f"{pad} {_paint('|', _BLUE, colour)}\n")
            parts.append(f"{_paint(gutter, _BLUE, colour)} {_paint('|', _BLUE, colour)} {text}\n")
            parts.append(f"{pad} {_paint('|', _BLUE, colour)} {lead}{_paint('^' * width, _RED + _BOLD, colour)}\n")
        parts.append("\n")
    return "".join(parts)


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}{'' if count == 1 else 's'}"


def summary_line(findings: Sequence[Finding]) -> str:
    """`Found 3 problems (2 errors, 1 warning).`, or `All checks passed!` (as ruff says)."""
    if not findings:
        return "All checks passed!"
    errors = sum(finding.severity == ERROR for finding in findings)
    warnings = sum(finding.severity == WARNING for finding in findings)
    return f"Found {_plural(len(findings), 'problem')} ({_plural(errors, 'error')}, {_plural(warnings, 'warning')})."
