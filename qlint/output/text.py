"""Plain text: one `path:line:col: CODE name: message` line per finding, as editors parse;
`full` adds the code line and a caret under the finding's span (as ruff's full format).
A finding that a fix of the run's tiers would remove shows `[*]` after its code (as ruff's);
the summary and fix lines come after the findings."""
from __future__ import annotations

import os
from typing import Mapping, Sequence, TextIO

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


def _heading(finding: Finding, colour: bool, fix_tiers: frozenset) -> str:
    code_style = _RED if finding.severity == ERROR else _YELLOW
    marker = f"[{_paint('*', _CYAN, colour)}] " if finding.fix in fix_tiers else ""
    return (f"{_paint(finding.path, _BOLD, colour)}:{finding.line}:{finding.column}: "
            f"{_paint(finding.code, _BOLD + code_style, colour)} {marker}{finding.name}: {finding.message}\n")


def render_text(findings: Sequence[Finding], colour: bool = False, fix_tiers: frozenset = frozenset()) -> str:
    """`fix_tiers`: the fix tiers (registry.SAFE, UNSAFE) whose findings get `[*]`."""
    return "".join(_heading(finding, colour, fix_tiers) for finding in findings)


def render_full(findings: Sequence[Finding], sources, colour: bool = False, fix_tiers: frozenset = frozenset()) -> str:
    """Each finding's line, then its code line and a caret line under the span (on the
    first line of a finding that spans several), then a blank line."""
    parts = []
    for finding in findings:
        parts.append(_heading(finding, colour, fix_tiers))
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


def summary_line(findings: Sequence[Finding], fixed: int = 0) -> str:
    """`Found 3 problems (2 errors, 1 warning).`, or `All checks passed!` (as ruff says);
    after fixing, `Found 5 problems (2 fixed, 3 remaining).`"""
    if fixed:
        return f"Found {_plural(fixed + len(findings), 'problem')} ({fixed} fixed, {len(findings)} remaining)."
    if not findings:
        return "All checks passed!"
    errors = sum(finding.severity == ERROR for finding in findings)
    warnings = sum(finding.severity == WARNING for finding in findings)
    return f"Found {_plural(len(findings), 'problem')} ({_plural(errors, 'error')}, {_plural(warnings, 'warning')})."


def fixable_line(findings: Sequence[Finding], unsafe: bool, colour: bool = False) -> str:
    """What --fix would remove of `findings` (as ruff's footer): `[*] 2 fixable with --fix
    (1 more with --unsafe-fixes).`; "" when no finding has a fix. With `unsafe` (the unsafe
    fixes are on), every fix counts as fixable with --fix."""
    from qlint.registry import SAFE, UNSAFE

    applicable = sum(finding.fix == SAFE or (unsafe and finding.fix == UNSAFE) for finding in findings)
    hidden = 0 if unsafe else sum(finding.fix == UNSAFE for finding in findings)
    more = f" ({hidden} more with --unsafe-fixes)" if hidden else ""
    if applicable:
        return f"[{_paint('*', _CYAN, colour)}] {applicable} fixable with --fix{more}."
    return f"No fixes available with --fix{more}." if hidden else ""


def fixes_list(fixed: Mapping[str, Mapping[str, int]], names: Mapping[str, str], applied: bool = True,
               colour: bool = False) -> str:
    """--show-fixes (as ruff's): `Fixed 3 problems:`, then per file (`- path:`) the fixes per
    rule, most first (`    2 × QL505 (legacy-namespace)`); `Would fix ...` for --diff. ""
    when there are none."""
    total = sum(sum(codes.values()) for codes in fixed.values())
    if not total:
        return ""
    width = len(str(max(count for codes in fixed.values() for count in codes.values())))
    heading = f"{'Fixed' if applied else 'Would fix'} {_plural(total, 'problem')}:"
    lines = [_paint(heading, _BOLD, colour)]
    for path, codes in sorted(fixed.items()):
        lines.append(f"{_paint('-', _CYAN, colour)} {_paint(path, _BOLD, colour)}{_paint(':', _CYAN, colour)}")
        for code, count in sorted(codes.items(), key=lambda item: (-item[1], item[0])):
            lines.append(f"    {count:>{width}} × {_paint(code, _BOLD + _RED, colour)} ({names[code]})")
    return "\n".join(lines) + "\n"
