"""Results kept between runs, for the `qlint` command (`.qlint_cache/` at the project root)
and for `pytest --qlint` (pytest's cache): one way of saying when a result still holds.

A file's result (its findings, with or without any) holds while
- qlint is the same (its version and its installed files: an edited checkout counts),
- the settings are the same (`Config.fingerprint`),
- the file's content is the same (a hash of its bytes, not its mtime),
- every file the result depends on has the same content: the files whose classes its
  analysis can reach (its imports, followed through the files they name), in the run or
  read from the project for base classes,
- and, for the command, the run's set of files is the same (a class of a file in the run
  is known to the others; a file linted on its own knows only base classes it can read).

A run whose results all hold reads the files to hash them, and imports neither libcst nor
the engine. Otherwise the files without a result are linted with the summaries of the
others taken from the cache (no parse), and their results stored.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pickle
import shutil
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Callable, Iterable, Optional

from qlint import __version__

CACHE_DIR = ".qlint_cache"
GITIGNORE = "# Created by qlint: its result cache; see docs/configuration.md.\n*\n"
CACHEDIR_TAG = "Signature: 8a477f597d28d172789f06886806bc55\n# This directory is qlint's result cache.\n"


def file_hash(path: Path) -> Optional[str]:
    """A hash of the file's bytes (None when it cannot be read)."""
    try:
        return hashlib.blake2b(Path(path).read_bytes(), digest_size=16).hexdigest()
    except OSError:
        return None


@lru_cache(maxsize=None)
def installation_key() -> str:
    """qlint's version and the size and mtime of each of its files (an editable checkout
    that changes changes the key)."""
    package = Path(__file__).resolve().parent
    state = [__version__]
    for folder, dirs, names in os.walk(package):
        dirs[:] = sorted(d for d in dirs if d != "__pycache__")
        for name in sorted(names):
            if name.endswith((".py", ".json")):
                stat = os.stat(os.path.join(folder, name))
                state.append(f"{os.path.relpath(os.path.join(folder, name), package)}:{stat.st_size}:{stat.st_mtime_ns}")
    return hashlib.sha256("\n".join(state).encode()).hexdigest()


def settings_key(config) -> str:
    """What results are valid under: qlint's installation and the settings."""
    return hashlib.sha256(f"{installation_key()}:{config.fingerprint()}".encode()).hexdigest()


def make_entry(content: Optional[str], dependencies: dict[str, Optional[str]], findings) -> dict:
    return {"hash": content, "deps": dependencies, "findings": [finding.to_dict() for finding in findings]}


def is_fresh(entry, content: Optional[str], hash_of: Callable[[str], Optional[str]]) -> bool:
    """Whether a stored entry still holds for a file whose content hash is `content`; a
    malformed entry does not."""
    try:
        return (content is not None and entry["hash"] == content
                and all(hash_of(path) == stored for path, stored in entry["deps"].items())
                and isinstance(entry["findings"], list))
    except (TypeError, KeyError, AttributeError):
        return False


def stored_findings(entry, path: str) -> Optional[list]:
    """The entry's findings as Finding objects naming `path` (None when malformed)."""
    from qlint.finding import Finding

    try:
        return [Finding(**{**finding, "path": path}) for finding in entry["findings"]]
    except (TypeError, KeyError):
        return None


def reachable_files(summaries: dict) -> dict[Path, set[Path]]:
    """For each summarized file, the other files whose summaries its analysis can reach: the
    modules named by its imports and class bases (each dotted prefix, and the modules of a
    package it imports whole), followed through those files' own imports."""
    by_module: dict[str, list[Path]] = {}
    for path, summary in summaries.items():
        by_module.setdefault(summary.module_name, []).append(path)
    names = sorted(by_module)

    def modules_named(target: str) -> set[str]:
        parts = target.split(".")
        found = {".".join(parts[:k]) for k in range(1, len(parts) + 1)} & by_module.keys()
        if target in by_module:  # `import pkg` or `from pkg import sub`: pkg.sub.X may be used
            found.update(name for name in names if name.startswith(target + "."))
        return found

    direct: dict[Path, set[Path]] = {}
    for path, summary in summaries.items():
        targets = set(summary.exports.values())
        for cls in summary.classes.values():
            targets.update(cls.bases)
            targets.update(attr.cls for attr in cls.attrs.values() if attr.cls)
        targets.update(summary.function_returns.values())
        direct[path] = {file for target in targets for module in modules_named(target)
                        for file in by_module[module]} - {path}
    reachable = {}
    for path in summaries:
        seen, stack = set(), list(direct[path])
        while stack:
            current = stack.pop()
            if current not in seen and current != path:
                seen.add(current)
                stack.extend(direct.get(current, ()))
        reachable[path] = seen
    return reachable


class CacheUnavailable(Exception):
    """The cache folder cannot be created or written; the message says why."""


class ResultCache:
    """The command's results for one installation of qlint and one set of settings, and
    the summaries of files (which depend on qlint and the file, not on the settings)."""

    def __init__(self, root: Path, config):
        self.root = root / CACHE_DIR
        self.folder = self.root / __version__ / installation_key()[:16]
        self.results_file = self.folder / f"results-{settings_key(config)[:16]}.json"
        self.summaries_file = self.folder / "summaries.pickle"
        self.entries: dict[str, dict] = {}
        self.runs: dict[str, list[str]] = {}
        self._summaries: Optional[dict] = None
        self._prepare()
        try:
            document = json.loads(self.results_file.read_text())
            if isinstance(document.get("files"), dict):
                self.entries = document["files"]
        except (OSError, ValueError, AttributeError):
            pass  # no cache yet, or an unreadable one: it is rewritten

    def _prepare(self) -> None:
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            for name, text in ((".gitignore", GITIGNORE), ("CACHEDIR.TAG", CACHEDIR_TAG)):
                if not (self.root / name).exists():
                    (self.root / name).write_text(text)
            with tempfile.NamedTemporaryFile(dir=self.folder):
                pass
        except OSError as error:
            raise CacheUnavailable(f"cannot write the cache in {self.root}: {error.strerror or error}") from None
        for stale in self.folder.parent.iterdir():  # other installations of this version
            if stale != self.folder and stale.is_dir():
                shutil.rmtree(stale, ignore_errors=True)

    def summaries(self) -> dict:
        """{resolved path: (content hash, FileSummary)}, loaded on first use."""
        if self._summaries is None:
            self._summaries = {}
            try:
                with self.summaries_file.open("rb") as file:
                    loaded = pickle.load(file)
                if isinstance(loaded, dict):
                    self._summaries = loaded
            except Exception:  # absent, or written by another qlint: start over
                pass
        return self._summaries

    def store_summaries(self, summaries: dict, hash_of: Callable[[str], Optional[str]]) -> None:
        stored = self.summaries()
        for path, summary in summaries.items():
            stored[str(path)] = (hash_of(str(path)), summary)
        _write_atomic(self.summaries_file, pickle.dumps(stored, protocol=pickle.HIGHEST_PROTOCOL))

    def save(self) -> None:
        existing = {path: entry for path, entry in self.entries.items() if os.path.exists(path)}
        document = {"qlint": __version__, "files": existing}
        _write_atomic(self.results_file, json.dumps(document, separators=(",", ":")).encode())


def _write_atomic(path: Path, data: bytes) -> None:
    """Write through a temporary file in the same folder and a rename: a reader sees the old
    file or the new one, never half of one."""
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise


def run_key(paths: Iterable[Path]) -> str:
    """The identity of a run's set of files."""
    return hashlib.sha256("\n".join(sorted(str(p) for p in paths)).encode()).hexdigest()[:16]


def lint_cached(files: list[Path], config, cache: ResultCache, jobs: Optional[int] = None) -> list:
    """Lint `files` (already discovered) through the cache: stored results that hold are
    reported as they are; the other files are linted and their results stored."""
    given = {Path(os.path.abspath(f)).resolve(): f for f in files}
    hashes: dict[str, Optional[str]] = {str(resolved): file_hash(resolved) for resolved in given}

    def hash_of(path: str) -> Optional[str]:
        if path not in hashes:
            hashes[path] = file_hash(Path(path))
        return hashes[path]

    run = run_key(hashes)
    findings, misses = [], []
    for resolved, path in given.items():
        entry = cache.entries.get(str(resolved))
        stored = None
        if isinstance(entry, dict) and entry.get("run") == run and is_fresh(entry, hashes[str(resolved)], hash_of):
            stored = stored_findings(entry, str(path))
        if stored is None:
            misses.append(resolved)
        else:
            findings.extend(stored)
    if not misses:
        return sorted(findings)

    summaries = cache.summaries()
    missing = set(misses)
    known = []
    for resolved in given:
        if resolved in missing:
            continue
        stored = summaries.get(str(resolved))
        if stored is not None and stored[0] == hashes[str(resolved)]:
            known.append((stored[1], given[resolved]))
        else:  # a result without its summary: lint it again
            misses.append(resolved)
            missing.add(resolved)
            findings = [f for f in findings if Path(os.path.abspath(f.path)).resolve() != resolved]
    from qlint.engine import lint_project

    result = lint_project([given[resolved] for resolved in misses], config, jobs, known=known)
    reachable = reachable_files(result.summaries)
    by_file: dict[str, list] = {str(given[resolved]): [] for resolved in misses}
    for finding in result.findings:
        by_file.setdefault(finding.path, []).append(finding)
    for resolved in misses:
        depends = {str(p): hash_of(str(p)) for p in reachable.get(resolved, ())}
        entry = make_entry(hashes[str(resolved)], depends, by_file[str(given[resolved])])
        entry["run"] = run
        cache.entries[str(resolved)] = entry
    try:
        cache.store_summaries(result.summaries, hash_of)
        cache.save()
    except OSError:
        pass  # the results are right; the next run lints again
    return sorted(findings + result.findings)
