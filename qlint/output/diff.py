"""--diff: the unified diff of what --fix would change in one file, as bytes in the file's
own encoding and line endings, so that `patch -p0` (or `git apply -p0`) makes exactly the
change --fix makes."""
from __future__ import annotations

import difflib
import io
import os

_NO_NEWLINE = b"\\ No newline at end of file\n"


def unified_diff(path: str, before: bytes, after: bytes) -> bytes:
    """`--- path` / `+++ path` and the hunks (three lines of context); b"" when equal."""
    name = os.fsencode(path)
    lines = difflib.diff_bytes(difflib.unified_diff, io.BytesIO(before).readlines(),
                               io.BytesIO(after).readlines(), name, name)
    # A last line without a newline gets one, and the marker diff(1) writes after it.
    return b"".join(line if line.endswith(b"\n") else line + b"\n" + _NO_NEWLINE for line in lines)
