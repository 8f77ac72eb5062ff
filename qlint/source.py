"""The text of linted files, read again for output (code frames, fingerprints) and for
`--add-noqa`, without libcst: a run whose findings come from the cache reads only these."""
from __future__ import annotations

import hashlib
import io
import tokenize
from pathlib import Path
from typing import Optional


def decode(data: bytes) -> str:
    """Text of Python source bytes, by their coding cookie or BOM (UTF-8 by default);
    undecodable bytes become U+FFFD rather than an error."""
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
    except SyntaxError:
        encoding = "utf-8"
    try:
        return data.decode(encoding, errors="replace").removeprefix("\ufeff")
    except LookupError:
        return data.decode("utf-8", errors="replace").removeprefix("\ufeff")


class Sources:
    """Lines of files by the path a finding names; `given` holds text not read from disk
    (standard input, under its --stdin-filename)."""

    def __init__(self, given: Optional[dict[str, str]] = None):
        self._lines: dict[str, list[str]] = {path: text.splitlines() for path, text in (given or {}).items()}

    def lines(self, path: str) -> list[str]:
        if path not in self._lines:
            try:
                self._lines[path] = decode(Path(path).read_bytes()).splitlines()
            except OSError:
                self._lines[path] = []
        return self._lines[path]

    def line(self, path: str, number: int) -> str:
        lines = self.lines(path)
        return lines[number - 1] if 0 < number <= len(lines) else ""


def fingerprints(findings, sources: Sources) -> list[str]:
    """A fingerprint per finding that survives lines moving: a hash of its file, rule and
    the text of its line (whitespace-normalized), with the occurrence number among
    findings of the same file, rule and text. Findings must be sorted by position."""
    seen: dict[tuple, int] = {}
    result = []
    for finding in findings:
        text = " ".join(sources.line(finding.path, finding.line).split())
        key = (Path(finding.path).as_posix(), finding.code, text)
        occurrence = seen.get(key, 0)
        seen[key] = occurrence + 1
        digest = hashlib.sha256("\0".join((finding.code, text)).encode()).hexdigest()[:16]
        result.append(f"{digest}:{occurrence}")
    return result
