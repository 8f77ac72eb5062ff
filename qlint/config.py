"""Settings: `[tool.qlint]` in the nearest pyproject.toml (or a file given with --config),
overridden by command-line options. Every key, type and rule code is checked: a mistake
is a ConfigError naming the file and the key, never silently ignored."""
from __future__ import annotations

import difflib
import hashlib
import json
import os
import sys
from dataclasses import dataclass, field, replace
from fnmatch import fnmatchcase
from functools import cached_property
from pathlib import Path
from typing import Any, Sequence

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

from qlint import __version__

PARSE_ERROR = "QL000"
SELECT_ALL = "QL"

# Directories never worth linting; `exclude` replaces this list, `extend-exclude` adds to it
# (as in ruff). Directories holding a `pyvenv.cfg` (virtualenvs) are skipped regardless.
DEFAULT_EXCLUDE: tuple[str, ...] = (
    ".git",
    ".hg",
    ".svn",
    ".venv",
    "venv",
    ".tox",
    ".nox",
    ".eggs",
    "*.egg-info",
    ".mypy_cache",
    ".ruff_cache",
    ".qlint_cache",
    ".pytest_cache",
    "__pycache__",
    "build",
    "dist",
    "node_modules",
)

_LIST_KEYS = ("select", "extend-select", "ignore", "extend-ignore", "exclude", "extend-exclude")
# The per-file budget: key -> (Budget field, type, what it limits).
_BUDGET_KEYS = {
    "max-file-bytes": ("max_file_bytes", int, "bytes of one file"),
    "max-nesting": ("max_nesting", int, "nesting depth of one file's syntax tree"),
    "file-timeout": ("file_timeout", float, "CPU seconds spent on one file"),
}
_KNOWN_KEYS = (*_LIST_KEYS, "per-file-ignores", *_BUDGET_KEYS, "unsafe-fixes")
_CODE_KEYS = ("select", "extend-select", "ignore", "extend-ignore")


class ConfigError(ValueError):
    """A settings mistake the user must fix; the message names where it is."""


def _pattern(text: str) -> str:
    """`./tests/fixtures/` and `tests/fixtures` mean the same."""
    return text.removeprefix("./").rstrip("/")


def _matches(path: Path, pattern: str, root: Path) -> bool:
    """ruff-style exclude matching of one path (not its parents).

    A pattern without `/` matches the path's name (`build`, `*_pb2.py`); a pattern with
    `/` matches the path relative to `root` (`tests/fixtures`, `legacy/*.py`).
    """
    if "/" not in pattern:
        return fnmatchcase(path.name, pattern)
    try:
        relative = path.relative_to(root).as_posix()
    except ValueError:
        relative = path.as_posix()
    return fnmatchcase(relative, pattern)


def _absolute(path: Path) -> Path:
    return Path(os.path.abspath(path))


def _longest_selector(code: str, selectors: Sequence[str]) -> int:
    return max((len(selector) for selector in selectors if code.startswith(selector)), default=-1)


@dataclass(frozen=True)
class Budget:
    """What one file may cost. A file over it is reported (QL000, "skipped: ...") and the run
    goes on: libcst's parser is slower than linear on long expression chains (5,000 chained
    `[0]` take over a minute) and needs hundreds of bytes of memory per byte of source."""

    max_file_bytes: int = 2_000_000  # torch's largest source file is 1.4 MB
    max_nesting: int = 400  # syntax tree depth: real code stays under 100, data tables reach 600
    file_timeout: float = 60.0  # CPU seconds; a hard limit where files are linted in worker processes


@dataclass(frozen=True)
class Config:
    """Resolved settings. Codes are registry codes or prefixes (`QL4`); `QL` selects all."""

    select: tuple[str, ...] = (SELECT_ALL,)
    extend_select: tuple[str, ...] = ()
    ignore: tuple[str, ...] = ()
    extend_ignore: tuple[str, ...] = ()
    exclude: tuple[str, ...] = DEFAULT_EXCLUDE
    extend_exclude: tuple[str, ...] = ()
    per_file_ignores: tuple[tuple[str, tuple[str, ...]], ...] = ()
    budget: Budget = Budget()
    unsafe_fixes: bool = False  # --fix applies the unsafe fixes too (as ruff's `unsafe-fixes`)
    root: Path = field(default_factory=Path.cwd)
    source: Path | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", _absolute(self.root))

    @cached_property
    def _selected_codes(self) -> frozenset[str]:
        """Codes enabled before per-file ignores.

        As in ruff, the more specific selector wins (`select = ["QL401"]`, `ignore = ["QL4"]`
        keeps QL401) and `ignore` wins a tie; `extend-select` and `extend-ignore` add to
        `select` and `ignore`. QL000 (file does not parse) is reported whatever `select` says,
        unless it is ignored. An opt-in rule (QL001) needs a selector more specific than `QL`.
        """
        from qlint.registry import all_rules

        select, ignore = (*self.select, *self.extend_select), (*self.ignore, *self.extend_ignore)
        enabled = set()
        for code, rule in all_rules().items():
            selected = _longest_selector(code, select)
            if code == PARSE_ERROR:
                selected = max(selected, 0)
            if rule.opt_in and selected <= len(SELECT_ALL):
                continue
            if selected > _longest_selector(code, ignore):
                enabled.add(code)
        return frozenset(enabled)

    def enabled_codes(self, path: Path) -> frozenset[str]:
        """The registry codes to run on `path` (relative to the cwd or absolute)."""
        absolute = _absolute(path)
        ignored = [
            code
            for pattern, codes in self.per_file_ignores
            if _matches(absolute, pattern, self.root)
            for code in codes
        ]
        if not ignored:
            return self._selected_codes
        return frozenset(code for code in self._selected_codes if _longest_selector(code, ignored) < 0)

    def excludes_entry(self, path: Path) -> bool:
        """Whether `path` itself (a file or directory met while walking) is excluded."""
        absolute = _absolute(path)
        return any(
            _matches(absolute, pattern, self.root) for pattern in (*self.exclude, *self.extend_exclude)
        )

    def is_excluded(self, path: Path) -> bool:
        """Whether `path` or one of its parent directories below the root is excluded."""
        absolute = _absolute(path)
        parents_below_root = [
            parent for parent in absolute.parents if parent != self.root and parent.is_relative_to(self.root)
        ]
        return any(self.excludes_entry(candidate) for candidate in (absolute, *parents_below_root))

    def fingerprint(self) -> str:
        """A stable hash of everything that changes which findings a file gets."""
        state = {
            "version": __version__,
            "select": self.select,
            "extend_select": self.extend_select,
            "ignore": self.ignore,
            "extend_ignore": self.extend_ignore,
            "exclude": self.exclude,
            "extend_exclude": self.extend_exclude,
            "per_file_ignores": self.per_file_ignores,
            "budget": [self.budget.max_file_bytes, self.budget.max_nesting, self.budget.file_timeout],
            "root": str(self.root),
        }
        return hashlib.sha256(json.dumps(state, sort_keys=True).encode()).hexdigest()


def find_pyproject(start: Path) -> Path | None:
    """The nearest pyproject.toml holding a [tool.qlint] table, from `start` upwards."""
    directory = _absolute(start)
    try:
        is_dir = directory.is_dir()
    except OSError as error:  # a name too long for the file system
        raise ConfigError(f"{directory}: cannot look for settings here: {error.strerror or error}") from None
    if not is_dir:
        directory = directory.parent
    for candidate_dir in (directory, *directory.parents):
        candidate = candidate_dir / "pyproject.toml"
        try:
            present = candidate.is_file()
        except OSError as error:  # a name too long, a folder we may not enter
            raise ConfigError(f"{candidate}: cannot look for settings here: {error.strerror or error}") from None
        if present and "qlint" in _tool_table(candidate, _read_toml(candidate)):
            return candidate
    return None


def _tool_table(path: Path, document: dict[str, Any]) -> dict[str, Any]:
    """The [tool] table of a pyproject.toml, checked to be a table (and its qlint entry too)."""
    tool = document.get("tool", {})
    if not isinstance(tool, dict):
        raise ConfigError(f"{path}: `tool` must be a table (such as [tool.qlint]), found {tool!r}")
    if "qlint" in tool and not isinstance(tool["qlint"], dict):
        raise ConfigError(f"{path}: `tool.qlint` must be a table ([tool.qlint] with settings under it), "
                          f"found {tool['qlint']!r}")
    return tool


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as file:
            return tomllib.load(file)
    except OSError as error:
        raise ConfigError(f"{path}: cannot read config file: {error.strerror or error}") from None
    except UnicodeDecodeError as error:
        raise ConfigError(f"{path}: invalid TOML: not UTF-8 (byte {error.object[error.start]:#04x} at offset "
                          f"{error.start}); TOML files must be UTF-8") from None
    except tomllib.TOMLDecodeError as error:
        raise ConfigError(f"{path}: invalid TOML: {error}") from None


def _settings_table(path: Path) -> dict[str, Any]:
    """The qlint settings in `path`: [tool.qlint] of a pyproject.toml, else the top level."""
    document = _read_toml(path)
    if path.name != "pyproject.toml":
        return document
    tool = _tool_table(path, document)
    if "qlint" not in tool:
        raise ConfigError(f"{path}: no [tool.qlint] table")
    return tool["qlint"]


def _prefixes(codes) -> frozenset[str]:
    return frozenset(code[:length] for code in codes for length in range(len(SELECT_ALL), len(code) + 1))


def _check_codes(codes: Sequence[str], where: str) -> tuple[str, ...]:
    from qlint.registry import all_rules, rule_codes

    known = _prefixes(rule_codes())
    for code in codes:
        if code not in known and code not in _prefixes(all_rules()):  # the catalog may lag
            raise ConfigError(
                f"{where}: unknown rule code or prefix {code!r} (it matches no rule; "
                f"`qlint rule --all` lists them)"
            )
    return tuple(codes)


def _string_list(value: Any, where: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise ConfigError(f"{where}: expected a list of strings, found {value!r}")
    return tuple(value)


def _parse_table(table: dict[str, Any], path: Path) -> dict[str, Any]:
    """Check the settings table of `path`; returns Config keyword arguments."""
    heading = "[tool.qlint]" if path.name == "pyproject.toml" else "settings"
    settings: dict[str, Any] = {}
    for key, value in table.items():
        where = f"{path}: {heading} {key}"
        if key not in _KNOWN_KEYS:
            close = difflib.get_close_matches(key, _KNOWN_KEYS, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"known keys: {', '.join(_KNOWN_KEYS)}"
            raise ConfigError(f"{path}: {heading}: unknown key {key!r} ({hint})")
        if key in _BUDGET_KEYS:
            field_name, kind, limits = _BUDGET_KEYS[key]
            if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and not isinstance(value, int)) \
                    or value <= 0:
                raise ConfigError(f"{where}: expected a positive {'integer' if kind is int else 'number'} "
                                  f"(the most {limits}), found {value!r}")
            settings["budget"] = replace(settings.get("budget", Budget()), **{field_name: kind(value)})
            continue
        if key == "unsafe-fixes":
            if not isinstance(value, bool):
                raise ConfigError(f"{where}: expected true or false, found {value!r}")
            settings["unsafe_fixes"] = value
            continue
        if key == "per-file-ignores":
            if not isinstance(value, dict):
                raise ConfigError(f"{where}: expected a table of glob = [codes], found {value!r}")
            entries = []
            for pattern, codes in value.items():
                entry_where = f"{where} {pattern!r}"
                entries.append((_pattern(pattern), _check_codes(_string_list(codes, entry_where), entry_where)))
            settings["per_file_ignores"] = tuple(entries)
            continue
        strings = _string_list(value, where)
        if key in _CODE_KEYS:
            strings = _check_codes(strings, where)
        else:
            strings = tuple(_pattern(pattern) for pattern in strings)
        settings[key.replace("-", "_")] = strings
    return settings


def load_config(
    *,
    config_file: Path | None = None,
    start: Path | None = None,
    select: Sequence[str] | None = None,
    extend_select: Sequence[str] | None = None,
    ignore: Sequence[str] | None = None,
    extend_ignore: Sequence[str] | None = None,
    exclude: Sequence[str] | None = None,
    extend_exclude: Sequence[str] | None = None,
) -> Config:
    """Settings from `config_file`, else from the nearest pyproject.toml with [tool.qlint]
    above `start` (default: the cwd), else defaults; then the command-line overrides:
    `select` replaces the file's `select` and `extend-select`, `ignore` its `ignore` and
    `extend-ignore`, `exclude` its `exclude`; the `extend_*` options add to what is left.
    Raises ConfigError for any mistake."""
    source = config_file if config_file is not None else find_pyproject(start or Path.cwd())
    if source is None:
        config = Config(root=Path.cwd())
    else:
        source = _absolute(source)
        try:
            present = source.is_file()
        except OSError as error:
            raise ConfigError(f"{source}: cannot read config file: {error.strerror or error}") from None
        if not present:
            raise ConfigError(f"{source}: config file not found")
        config = Config(root=source.parent, source=source, **_parse_table(_settings_table(source), source))
    overrides: dict[str, Any] = {}
    if select is not None:
        overrides["select"] = _check_codes(select, "--select")
        overrides["extend_select"] = ()
    if extend_select is not None:
        overrides["extend_select"] = overrides.get("extend_select", config.extend_select) + _check_codes(
            extend_select, "--extend-select")
    if ignore is not None:
        overrides["ignore"] = _check_codes(ignore, "--ignore")
        overrides["extend_ignore"] = ()
    if extend_ignore is not None:
        overrides["extend_ignore"] = overrides.get("extend_ignore", config.extend_ignore) + _check_codes(
            extend_ignore, "--extend-ignore")
    if exclude is not None:
        overrides["exclude"] = tuple(_pattern(pattern) for pattern in exclude)
    if extend_exclude is not None:
        overrides["extend_exclude"] = config.extend_exclude + tuple(_pattern(p) for p in extend_exclude)
    return replace(config, **overrides)
