"""Which files to lint: the .py files under the given paths, minus excluded ones."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

from qlint.config import Config


def _is_virtualenv(directory: Path) -> bool:
    return (directory / "pyvenv.cfg").is_file()


def _walk(directory: Path, config: Config) -> list[Path]:
    found = []
    for dirpath, dirnames, filenames in os.walk(directory):
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


def discover(paths: Sequence[Path], config: Config) -> list[Path]:
    """Sorted, deduplicated files to lint.

    Directories are searched recursively for `.py` files, skipping excluded entries and
    virtualenvs (directories holding a `pyvenv.cfg`). A path named explicitly is linted
    even when it matches an exclude pattern, whatever its suffix (pre-commit passes
    extensionless scripts too). Paths keep the form they were given in.
    Raises FileNotFoundError for a path that does not exist.
    """
    found: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            found += _walk(path, config)
        elif path.exists():
            found.append(path)
        else:
            raise FileNotFoundError(f"{path}: no such file or directory")
    unique = {}
    for path in found:
        unique.setdefault(path.resolve(), path)
    return sorted(unique.values())
