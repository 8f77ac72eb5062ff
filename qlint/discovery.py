"""Which files to lint: the .py files under the given paths, minus excluded ones.

Discovery never stops the run: a folder that cannot be read, a symlink loop or a name the
file system refuses is a warning naming the path, and the walk goes on."""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Callable, Sequence

from qlint.config import Config


def warn(message: str) -> None:
    print(f"qlint: warning: {message}", file=sys.stderr)


def _is_virtualenv(directory: Path) -> bool:
    try:
        return (directory / "pyvenv.cfg").is_file()
    except OSError:
        return False  # unreadable: os.walk reports it when it tries to enter


def _walk(directory: Path, config: Config, on_warning: Callable[[str], None]) -> list[Path]:
    found = []

    def unreadable(error: OSError) -> None:
        on_warning(f"{error.filename}: skipped, cannot read the folder: {error.strerror or error}")

    for dirpath, dirnames, filenames in os.walk(directory, onerror=unreadable):
        parent = Path(dirpath)
        dirnames[:] = [
            name
            for name in dirnames
            if not config.excludes_entry(parent / name) and not _is_virtualenv(parent / name)
        ]
        found += [
            parent / name
            for name in filenames
            if name.endswith(".py") and not config.excludes_entry(parent / name)
        ]
    return found


def discover(paths: Sequence[Path], config: Config, on_warning: Callable[[str], None] = warn) -> list[Path]:
    """Sorted, deduplicated files to lint.

    Directories are searched recursively for `.py` files, skipping excluded entries and
    virtualenvs (directories holding a `pyvenv.cfg`). A path named explicitly is linted
    even when it matches an exclude pattern, whatever its suffix (pre-commit passes
    extensionless scripts too). Paths keep the form they were given in. What cannot be
    walked or resolved (permissions, symlink loops, names too long) goes to `on_warning`.
    Raises FileNotFoundError for a path that does not exist.
    """
    found: list[Path] = []
    for path in map(Path, paths):
        try:
            is_dir, exists = path.is_dir(), path.exists()
        except OSError as error:
            raise FileNotFoundError(f"{path}: cannot be read: {error.strerror or error}") from None
        if is_dir:
            found += _walk(path, config, on_warning)
        elif exists:
            found.append(path)
        elif path.is_symlink():
            on_warning(f"{path}: skipped, a symlink to nothing (or a symlink loop)")
        else:
            raise FileNotFoundError(f"{path}: no such file or directory")
    unique = {}
    for path in found:
        try:
            resolved = path.resolve(strict=True)
        except (OSError, RuntimeError) as error:  # RuntimeError: a symlink loop (Python < 3.13)
            reason = "a symlink loop" if isinstance(error, RuntimeError) or getattr(error, "errno", None) == 40 \
                else (getattr(error, "strerror", None) or str(error))
            on_warning(f"{path}: skipped, cannot be resolved: {reason}")
            continue
        unique.setdefault(resolved, path)
    return sorted(unique.values())
