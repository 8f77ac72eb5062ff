"""The `# expect: CODE` / `# allow: CODE` labels of the corpus format, read from source."""
from __future__ import annotations

import re

EXPECT = re.compile(r"#.*?\bexpect:\s*([A-Z0-9, ]+)")
ALLOW = re.compile(r"#.*?\ballow:\s*([A-Z0-9, ]+)")


def _codes(text: str) -> set[str]:
    return {c.strip() for c in text.split(",") if c.strip()}


def labels(source: str) -> tuple[set[tuple[int, str]], set[tuple[int, str]]]:
    """(expected, allowed) sets of (line, code)."""
    expected, allowed = set(), set()
    for number, line in enumerate(source.splitlines(), 1):
        for pattern, bucket in ((EXPECT, expected), (ALLOW, allowed)):
            match = pattern.search(line)
            if match:
                bucket |= {(number, code) for code in _codes(match.group(1))}
    return expected, allowed


def mismatches(source: str, findings) -> tuple[set, set]:
    """(missed, unexpected) (line, code) pairs of findings against the source's labels."""
    expected, allowed = labels(source)
    found = {(f.line, f.code) for f in findings}
    return expected - found, found - expected - allowed
