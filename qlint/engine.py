"""Run the rules over files: read, parse, model, check, locate, filter `# noqa`.

Linting is two-phase so that a class can derive from a module defined in another file of
the run: every file is parsed and summarized first, the summaries are merged into one
`ProjectIndex`, then the rules run. No file can stop the run: a file that cannot be read,
decoded or parsed, or that is over the per-file budget (size, nesting, time), is a QL000
finding, and so is a file whose worker process died.

Memory stays flat as runs grow: a process keeps the trees of phase one for phase two only
up to a budget of source bytes (KEEP_TREES_BYTES, or its largest file if larger) and parses
the other files again in phase two. With enough files, both phases run in worker
processes; only summaries and findings cross process boundaries.
"""
from __future__ import annotations

import ast
import codecs
import gc
import io
import multiprocessing
import os
import re
import sys
import threading
import time
import tokenize
import warnings
from collections import Counter
from contextlib import contextmanager
from dataclasses import dataclass, field
from multiprocessing.connection import wait
from pathlib import Path
from typing import TYPE_CHECKING, Iterator, Optional, Sequence

import libcst as cst

from qlint.config import Budget
from qlint.files import write_atomically
from qlint.finding import Finding
from qlint.noqa import Noqa
from qlint.registry import SAFE, all_rules, fix_tiers
from qlint.rules.base import anchors
from qlint.semantic.model import FileModel, FileSummary, ProjectIndex
from qlint.semantic.positions import locate

if TYPE_CHECKING:
    from qlint.config import Config

PARSE_ERROR = "QL000"
UNUSED_NOQA = "QL001"
_ENGINE_CODES = (PARSE_ERROR, UNUSED_NOQA)  # reported by the engine, not by a rule's check
# How many files outside the run may be read for base classes.
MAX_DEPENDENCIES = 64
# Qualified names never looked for in the project's files.
_EXTERNAL = ("torch.", "builtins.", "typing.", "abc.", "collections.", "enum.")
# Below this many files, worker processes cost more than they save.
PARALLEL_MIN_FILES = 16
# Source bytes whose trees one process keeps between the phases, at least (libcst needs
# about 500 bytes of memory per byte of source); more when the largest file is larger.
KEEP_TREES_BYTES = 2 << 20
# Lines this long, or 40 lines in a row that each open a bracket, may hide a pathologically
# deep expression: such files get an exact nesting check (Python's own parser) before libcst
# sees them. (The cheap signs cost under 1% of the parse; a chain spread over many short
# lines escapes them and meets the worker's time limit instead.)
_LONG_LINE = 500
_DEEP_HINT = re.compile(rb"[(\[{][ \t]*\n(?:[^\n]*[(\[{][ \t]*\n){39}")
# A worker that spends this many times `file-timeout` in wall-clock time on one file without
# using the CPU is stuck (a deadlock): it is ended too.
_STUCK = 10
# Recursion the checks may use: trees are at most `max_nesting` deep, libcst's code
# generation (positions, --fix) takes a few frames per level.
_RECURSION_LIMIT = 8000


def lint_paths(files: Sequence[Path], config: "Config", jobs: Optional[int] = None) -> list[Finding]:
    """Lint files (already discovered) with the rules the config enables for each."""
    return lint_with_dependencies(files, config, jobs)[0]


def lint_with_dependencies(files: Sequence[Path], config: "Config",
                           jobs: Optional[int] = None) -> tuple[list[Finding], list[Path]]:
    """Lint files, and say which other files of the project were read for base classes
    defined outside the run (what the findings depend on besides the files themselves)."""
    result = lint_project(files, config, jobs)
    return result.findings, result.read


@dataclass
class ProjectLint:
    findings: list[Finding]
    summaries: dict[Path, FileSummary]  # by resolved path: the run's files, the known ones, those read
    read: list[Path]  # files outside the run read for base classes


def lint_project(files: Sequence[Path], config: "Config", jobs: Optional[int] = None,
                 known: Sequence[tuple[FileSummary, Path]] = ()) -> ProjectLint:
    """Lint files; `known` are (summary, path) of other files of the run summarized before
    (the CLI's cache): they join the index unparsed and unchecked, so that the files
    linted see the same project as in a run of them all."""
    tasks = [(Path(f), config.enabled_codes(Path(f))) for f in files]
    budget = getattr(config, "budget", Budget())
    jobs = min(jobs or os.cpu_count() or 1, max(1, len(tasks) // (PARALLEL_MIN_FILES // 2)))
    with _collector_paused():
        if jobs <= 1 or len(tasks) < PARALLEL_MIN_FILES:
            findings, summaries, read = _lint_serial(tasks, budget, list(known))
        else:
            findings, summaries, read = _lint_parallel(tasks, jobs, budget, list(known))
    return ProjectLint(sorted(findings), summaries, read)


def _summarized(parsed, summaries, read) -> dict[Path, FileSummary]:
    """Summaries by resolved path (`_with_dependencies` appends those of `read` in order)."""
    return {path.resolve(): summary for path, summary in zip([p for _, p in parsed] + read, summaries)}


@contextmanager
def _collector_paused():
    """Pause the cyclic garbage collector: every full collection would walk every live
    tree (a quarter of the run time on timm); the trees hold no reference cycles, so
    reference counting frees them."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


@dataclass
class FixResult:
    """What fixing files did (`fix_paths`) or would do (`compute_fixes`): the fixes per
    changed file and rule code, the files that could not be fixed, and each changed file's
    bytes before and after (for --diff)."""

    fixed: dict[Path, dict[str, int]] = field(default_factory=dict)  # path -> {code: fixes}
    failed: dict[Path, str] = field(default_factory=dict)  # path -> why (the file is unchanged)
    changes: dict[Path, tuple[bytes, bytes]] = field(default_factory=dict, compare=False, repr=False)

    @property
    def count(self) -> int:
        """How many fixes, in all files."""
        return sum(sum(codes.values()) for codes in self.fixed.values())


def compute_fixes(files: Sequence[Path], config: "Config", unsafe: bool = False) -> FixResult:
    """The fixed content of `files`, written nowhere: the safe fixes (with `unsafe`, the
    unsafe ones too) of the findings not under `# noqa`. A file whose fixes cannot be
    applied is in `failed`."""
    budget = getattr(config, "budget", Budget())
    units = [_Unit(Path(f), config.enabled_codes(Path(f)), budget, fix_tiers(unsafe)) for f in files]
    result = FixResult()
    with _collector_paused():
        summaries = [(s, unit.path) for s, unit in ((unit.load(), unit) for unit in units) if s is not None]
        for unit in units:
            unit.model = None  # parsed again below, one file at a time
        project = _with_dependencies([s for s, _ in summaries], [p for _, p in summaries])[0]
        index = ProjectIndex(project)
        positions = {path: i for i, (_, path) in enumerate(summaries)}
        for unit in units:
            if unit.failure is not None:
                continue
            try:
                data = unit.path.read_bytes()
            except OSError as error:
                result.failed[unit.path] = _describe(error)
                continue
            if unit.load(data) is None:
                continue
            unit.check(index)
            try:
                fixed, codes, fixed_project = _fix_passes(unit, project, positions[unit.path])
            except (RecursionError, ValueError) as error:
                result.failed[unit.path] = _describe(error)
            else:
                if codes:  # the files fixed next see this one as it is now (names it took)
                    result.fixed[unit.path] = codes
                    result.changes[unit.path] = (data, fixed)
                    project = fixed_project
                    index = ProjectIndex(project)
            unit.model = None
    return result


def fix_paths(files: Sequence[Path], config: "Config", unsafe: bool = False) -> FixResult:
    """Apply the fixes `compute_fixes` finds and rewrite the files, each atomically
    (`qlint.files.write_atomically`: mode bits kept; line endings and the encoding are the
    source's own). A file that cannot be fixed or written is in `failed` and left as it
    was; the others are still fixed."""
    result = compute_fixes(files, config, unsafe)
    for path, (_, fixed) in list(result.changes.items()):
        try:
            write_atomically(path, fixed)
        except OSError as error:
            result.failed[path] = _describe(error)
            del result.fixed[path], result.changes[path]
    return result


# A fix that another one's edits overlap waits for the next pass; a file converges in a few.
MAX_FIX_PASSES = 10


def _fix_passes(unit: "_Unit", summaries: list, position: int) -> tuple[Optional[bytes], dict[str, int], list]:
    """Apply the unit's fixes (already checked) pass after pass, linting the fixed source
    again each time with its new summary in the project's place; the source (None when
    nothing was fixed), the fixes applied per rule code, and the project's summaries with
    the fixed file's."""
    from qlint.fixes import apply_fixes, composable

    data, codes = None, Counter()
    for _ in range(MAX_FIX_PASSES):
        accepted = composable(unit.fixes)
        if not accepted:
            break
        with _recursion_limit(_RECURSION_LIMIT):
            data = apply_fixes(unit.model, accepted)[0].bytes
        codes.update(unit.fix_codes[id(fix)] for fix in accepted)
        summary = unit.load(data)
        if summary is None:
            raise ValueError(f"the fixed source does not parse: {unit.failure.message}")
        summaries = [*summaries[:position], summary, *summaries[position + 1:]]
        unit.check(ProjectIndex(summaries))
    return data, dict(codes), summaries


def _describe(error: BaseException) -> str:
    if isinstance(error, OSError) and error.strerror:
        return f"{error.strerror} ({type(error).__name__}, errno {error.errno})"
    return f"{type(error).__name__}: {error}"


@dataclass
class TextLint:
    """`lint_text`'s answer: the findings of `source`, the source (fixed, when fixing), and
    the fixes applied per rule code."""

    findings: list[Finding]
    source: bytes
    fixed: dict[str, int] = field(default_factory=dict)


def lint_text(data: bytes, path: Path, codes: frozenset, fix: bool = False, unsafe: bool = False) -> TextLint:
    """Lint source given for `path` (standard input) as that file of its project would be,
    base classes from other files included; with `fix`, fix it first (the safe fixes; with
    `unsafe`, the unsafe ones too) and report what is left."""
    unit = _Unit(path, codes, Budget(), fix_tiers(unsafe))
    summary = unit.load(data)
    project = _with_dependencies([summary], [path])[0] if summary else []
    findings = unit.check(ProjectIndex(project))
    if fix and unit.fixes:
        try:
            fixed, applied, _ = _fix_passes(unit, project, 0)
        except (RecursionError, ValueError):
            return TextLint(sorted(findings), data)  # unfixed, as a file --fix cannot write
        if applied:
            return TextLint(lint_text(fixed, path, codes).findings, fixed, applied)
    return TextLint(sorted(findings), data)


def lint_source(source: str, path: str = "<string>", codes: Optional[frozenset] = None) -> list[Finding]:
    """Lint one file's source on its own (no other file's classes are known); `codes`
    defaults to the rules enabled by default."""
    codes = frozenset(c for c, rule in all_rules().items() if not rule.opt_in) if codes is None else codes
    unit = _Unit(Path(path), codes, Budget())
    summary = unit.load(source.encode("utf-8"))
    index = ProjectIndex([summary] if summary else [])
    return sorted(unit.check(index))


@contextmanager
def _recursion_limit(limit: int):
    previous = sys.getrecursionlimit()
    sys.setrecursionlimit(max(previous, limit))
    try:
        yield
    finally:
        sys.setrecursionlimit(previous)


class _Skip(Exception):
    """A file that is not parsed: (line, column, message) of its QL000."""


def _decode(data: bytes) -> str:
    """The source text, decoded as Python decodes it (coding cookie, BOM, else UTF-8)."""
    try:
        encoding, _ = tokenize.detect_encoding(io.BytesIO(data).readline)
    except SyntaxError as error:
        message = str(error)
        if message.startswith("unknown encoding"):
            raise _Skip(1, 1, f"cannot read: the coding declaration names an {message}; Python cannot "
                              f"import this file") from None
        if data.startswith(codecs.BOM_UTF8):
            raise _Skip(1, 1, "cannot read: the file starts with a UTF-8 byte order mark but declares "
                              "another encoding") from None
        if "invalid or missing encoding declaration" not in message:
            raise _Skip(1, 1, f"cannot read: {message}") from None
        encoding = "utf-8"  # the first lines are not UTF-8: say where below
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        column = error.start - (data.rfind(b"\n", 0, error.start) + 1) + 1
        hint = ("it looks like UTF-16, which Python cannot read as source; save it as UTF-8"
                if data[:2] in (b"\xff\xfe", b"\xfe\xff") else
                "save it as UTF-8, or declare its encoding on the first line (`# -*- coding: latin-1 -*-`)")
        raise _Skip(line, column, f"cannot read: byte {data[error.start]:#04x} is not valid {encoding}; "
                                  f"{hint}") from None


def _check_size(data: bytes, budget: Budget) -> None:
    if len(data) > budget.max_file_bytes:
        raise _Skip(1, 1, f"skipped: too large ({len(data):,} bytes; the limit is {budget.max_file_bytes:,}, "
                          f"`max-file-bytes` in [tool.qlint])")


def _check_nesting(data: bytes, budget: Budget) -> None:
    """Raise _Skip for a file nested deeper than the budget, before libcst spends minutes or
    gigabytes on it (the exact check runs only where cheap signs of deep nesting are)."""
    longest = max(map(len, data.splitlines()), default=0)
    if longest <= min(_LONG_LINE, 2 * budget.max_nesting) and not _DEEP_HINT.search(data):
        return
    try:
        tree = _python_ast(data, "<file>")
    except SyntaxError as error:
        raise _Skip(error.lineno or 1, error.offset or 1, f"cannot parse: {error.msg}") from None
    except (RecursionError, MemoryError):
        raise _Skip(1, 1, "skipped: too deeply nested (deeper than Python's own parser accepts)") from None
    except ValueError:
        return  # null bytes: libcst says where
    depth, line = _depth(tree)
    if depth > budget.max_nesting:
        raise _Skip(line, 1, f"skipped: too deeply nested (a syntax tree {depth} levels deep; the limit is "
                             f"{budget.max_nesting}, `max-nesting` in [tool.qlint])")


def _python_ast(data: bytes, filename: str) -> ast.AST:
    """Python's own parse of the file, without the warnings it may print (invalid escapes)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return compile(data, filename, "exec", flags=ast.PyCF_ONLY_AST, dont_inherit=True)


def _depth(tree: ast.AST) -> tuple[int, int]:
    """The depth of the deepest node and the line it is on."""
    best, line = 0, 1
    stack = [(tree, 1)]
    while stack:
        node, depth = stack.pop()
        if depth > best:
            best, line = depth, getattr(node, "lineno", line)
        stack.extend((child, depth + 1) for child in ast.iter_child_nodes(node))
    return best, line


class _Unit:
    """One file through both phases."""

    def __init__(self, path: Path, codes: frozenset, budget: Budget, fix_tiers: frozenset = frozenset({SAFE})):
        self.path = path
        self.codes = codes
        self.budget = budget
        self.fix_tiers = fix_tiers  # the tiers whose fixes `fixes` collects
        self.size = 0
        self.model: Optional[FileModel] = None
        self.failure: Optional[Finding] = None
        self.fixes: list = []  # the qlint.fixes.Fix of each finding whose tier `fix_tiers` holds
        self.fix_codes: dict[int, str] = {}  # id(fix) -> the code of its finding

    def load(self, data: Optional[bytes] = None) -> Optional[FileSummary]:
        """Read, check the budget, parse and model the file; its summary, or None with
        `failure` set."""
        self.failure = None
        try:
            if data is None:
                data = self.path.read_bytes()
            self.size = len(data)
            _check_size(data, self.budget)
            source = _decode(data)
            _check_nesting(data, self.budget)
            module = cst.parse_module(data)
        except _Skip as skip:
            self.failure = self._failure(*skip.args)
            return None
        except cst.ParserSyntaxError as exc:
            self.failure = self._syntax_failure(data, exc)
            return None
        except OSError as exc:
            self.failure = self._failure(1, 1, f"cannot read: {exc.strerror or exc}")
            return None
        except (SyntaxError, UnicodeDecodeError, LookupError) as exc:
            self.failure = self._failure(1, 1, f"cannot read: {exc}")
            return None
        except (RecursionError, MemoryError):
            self.failure = self._failure(1, 1, "skipped: too deeply nested to parse")
            return None
        except Exception as exc:  # an internal failure is a finding, never a crash
            self.failure = self._failure(1, 1, f"internal error parsing: {type(exc).__name__}: {exc}")
            return None
        try:
            with _recursion_limit(_RECURSION_LIMIT):
                self.model = FileModel(self.path, source, module)
                return self.model.summary()
        except RecursionError:
            self.failure = self._failure(1, 1, "skipped: too deeply nested to analyze")
        except Exception as exc:  # an internal failure is a finding, never a crash
            self.failure = self._failure(1, 1, f"internal error building the model: {type(exc).__name__}: {exc}")
        self.model = None
        return None

    def _syntax_failure(self, data: bytes, exc: cst.ParserSyntaxError) -> Finding:
        """Python's own parser says where and what more precisely than libcst does."""
        try:
            _python_ast(data, str(self.path))
        except SyntaxError as error:
            return self._failure(error.lineno or 1, error.offset or 1, f"cannot parse: {error.msg}")
        except (ValueError, RecursionError, MemoryError):
            pass
        message = str(exc).strip().splitlines()[0]
        return self._failure(exc.editor_line, exc.editor_column, f"cannot parse: {message}")

    def _failure(self, line: int, column: int, message: str) -> Finding:
        rule = all_rules()[PARSE_ERROR]
        return Finding(str(self.path), line, column, line, column, PARSE_ERROR, rule.name, rule.severity, message)

    def check(self, index: ProjectIndex) -> list[Finding]:
        self.fixes, self.fix_codes = [], {}
        if self.failure is not None:
            return [self.failure] if PARSE_ERROR in self.codes else []
        with _recursion_limit(_RECURSION_LIMIT):
            return self._check(index)

    def _check(self, index: ProjectIndex) -> list[Finding]:
        model = self.model
        model.index = index
        reports, failed = [], {}
        for code, rule in all_rules().items():
            if code not in self.codes or code in _ENGINE_CODES:
                continue
            found = []
            try:
                found.extend((rule, report) for report in rule().check(model))
            except Exception as exc:  # an internal failure is a finding, never a crash
                failed.setdefault(f"{type(exc).__name__}: {exc}", []).append(code)
            reports.extend(found)
        # Rules that fail the same way (a shared analysis) are one finding.
        failures = [self._failure(1, 1, f"internal error in {', '.join(codes)}: {cause}")
                    for cause, codes in failed.items()]
        noqa = Noqa(model.source)
        try:
            findings = self._findings(reports, noqa)
            if UNUSED_NOQA in self.codes:
                from qlint.rules.suppression import UnusedNoqa, unused_noqa_reports

                findings += self._findings([(UnusedNoqa, r) for r in unused_noqa_reports(model, noqa, self.codes)],
                                           noqa)
        except RecursionError:
            findings = [self._failure(1, 1, "skipped: too deeply nested to locate the findings")]
        if PARSE_ERROR in self.codes:
            findings.extend(failures)
        return findings

    def _findings(self, reports, noqa: Noqa) -> list[Finding]:
        """Locate the reports, drop those under `# noqa`, keep their fixes for --fix."""
        if not reports:
            return []
        model = self.model
        nodes = [r.node for _, r in reports] + [n for _, r in reports for n in (r.lines or {}).values()]
        positions = locate(model.module, nodes, anchors(r for _, r in reports), model.source)
        findings, seen = [], set()
        for rule, report in reports:
            line, column, end_line, end_column = positions.get(id(report.node), (1, 1, 1, 1))
            if (line, column, rule.code) in seen or noqa.suppresses(line, rule.code):
                continue
            seen.add((line, column, rule.code))
            fix = rule.fix_safety if report.fix is not None and report.fix.unfixable is None else ""
            if fix in self.fix_tiers:
                self.fixes.append(report.fix)
                self.fix_codes[id(report.fix)] = rule.code
            message = report.message
            for name, node in (report.lines or {}).items():
                message = message.replace("{" + name + "}", str(positions.get(id(node), (0,))[0]))
            findings.append(Finding(str(self.path), line, column, end_line, end_column, rule.code,
                                    rule.name, report.severity or rule.severity, message, fix))
        return findings


class _Share:
    """The files one process lints, largest first, keeping between the phases only the trees
    that fit in a budget of source bytes; phase two parses the others again, one at a time.
    Peak memory is then about the budget's trees plus one file's, however many files."""

    def __init__(self, tasks, budget: Budget):
        self.units = [_Unit(path, codes, budget) for path, codes in tasks]
        self.keep_bytes = max(KEEP_TREES_BYTES, max((_size(p) for p, _ in tasks), default=0))

    def parse(self) -> Iterator[Optional[FileSummary]]:
        """Phase one, file by file: the summary (None for a file that failed)."""
        kept = 0
        for unit in self.units:
            summary = unit.load()
            if summary is not None:
                if kept + unit.size <= self.keep_bytes:
                    kept += unit.size
                else:
                    unit.model = None
            yield summary

    def check(self, index: ProjectIndex) -> Iterator[list[Finding]]:
        """Phase two, file by file (in the order of `units`): the findings."""
        for unit in self.units:
            if unit.failure is None and unit.model is None:
                unit.load()  # the tree was not kept: parse again
            yield unit.check(index)
            unit.model = None


def _with_dependencies(summaries: list[FileSummary], paths: list[Path]) -> tuple[list[FileSummary], list[Path]]:
    """Add the summaries of project files that define base classes the run does not.

    A file is looked for under each import root of the run (the folder above a file's top
    package), by the longest module prefix of the base's qualified name; re-exports
    (`from .base import Base` in a package's __init__.py) are followed the same way.
    """
    roots = []
    for summary, path in zip(summaries, paths):
        parts = summary.module_name.split(".")
        levels = len(parts) - (0 if path.stem == "__init__" else 1)
        root = path.resolve().parent
        root = root.parents[levels - 1] if 0 < levels <= len(root.parents) else root
        if root not in roots:
            roots.append(root)
    seen = {path.resolve() for path in paths}
    dependencies: list[Path] = []
    summaries = list(summaries)
    for _ in range(MAX_DEPENDENCIES):
        index = ProjectIndex(summaries)
        missing = {index.resolve(base) for s in summaries for c in s.classes.values() for base in c.bases}
        missing = {q for q in missing if q and q not in index.classes and not q.startswith(_EXTERNAL)}
        found = next((f for q in sorted(missing) for f in _module_files(q, roots) if f not in seen), None)
        if found is None:
            break
        seen.add(found)
        summary = _Unit(found, frozenset(), Budget()).load()
        if summary is not None:
            summaries.append(summary)
            dependencies.append(found)
    return summaries, dependencies


def _module_files(qname: str, roots: list[Path]):
    """Files that may define `qname`, longest module prefix first."""
    parts = qname.split(".")
    for k in range(len(parts) - 1, 0, -1):
        for root in roots:
            base = root.joinpath(*parts[:k])
            try:
                candidates = [c for c in (base.with_suffix(".py"), base / "__init__.py") if c.is_file()]
            except (OSError, ValueError):
                continue
            for candidate in candidates:
                yield candidate.resolve()


def _lint_serial(tasks, budget: Budget, known):
    share = _Share(sorted(tasks, key=lambda t: _size(t[0]), reverse=True), budget)
    parsed = [(s, unit.path) for s, unit in zip(share.parse(), share.units) if s is not None] + known
    summaries, dependencies = _with_dependencies([s for s, _ in parsed], [p for _, p in parsed])
    index = ProjectIndex(summaries)
    findings = [finding for findings in share.check(index) for finding in findings]
    return findings, _summarized(parsed, summaries, dependencies), dependencies


# ----- worker processes ---------------------------------------------------------------
def _worker(conn, tasks, budget: Budget, summaries: Optional[list]) -> None:
    """Phase one file by file (one message each), then, given the run's summaries, phase
    two file by file. A worker started with `summaries` (a replacement in phase two) does
    both for each file at once."""
    gc.disable()  # see _collector_paused; the worker exits at the end
    share = _Share(tasks, budget)
    if summaries is None:
        for summary in share.parse():
            conn.send(summary)
        summaries = conn.recv()
        index = ProjectIndex(summaries)
        for findings in share.check(index):
            conn.send(findings)
    else:
        index = ProjectIndex(summaries)
        for unit in share.units:
            unit.load()
            conn.send(unit.check(index))
            unit.model = None
    conn.close()


@dataclass
class _Process:
    """A worker process and how far it got through its files in the current phase."""

    process: multiprocessing.Process
    conn: object
    tasks: list  # indices into the run's tasks
    done: int = 0
    last: float = 0.0  # its CPU seconds when it started on the current file
    started: float = 0.0  # the wall-clock time then

    def seconds(self) -> float:
        """CPU seconds the worker has used: a busy machine does not make a file time out.
        Wall-clock seconds where /proc is not there."""
        try:
            fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError, AttributeError):
            return time.monotonic()


class _Pool:
    """Worker processes watched by the parent: a worker that dies or spends longer than the
    budget's `file_timeout` (CPU seconds) on one file is ended, that file gets a QL000 finding, and a new
    worker takes the rest of its files."""

    def __init__(self, tasks, budget: Budget):
        self.tasks = tasks
        self.budget = budget
        self.context = multiprocessing.get_context(_start_method())
        self.processes: list[_Process] = []
        self.failures: dict[int, Finding] = {}

    def start(self, indices: list[int], summaries: Optional[list] = None) -> None:
        if not indices:
            return
        parent, child = self.context.Pipe()
        share = [self.tasks[i] for i in indices]
        process = self.context.Process(target=_worker, args=(child, share, self.budget, summaries), daemon=True)
        process.start()
        child.close()
        worker = _Process(process, parent, indices)
        worker.last, worker.started = worker.seconds(), time.monotonic()
        self.processes.append(worker)

    def collect(self, on_result, summaries: Optional[list] = None) -> None:
        """Receive one result per file of every worker (the current phase), replacing the
        workers that fail."""
        for worker in self.processes:
            worker.done, worker.last, worker.started = 0, worker.seconds(), time.monotonic()
        while True:
            active = [w for w in self.processes if w.done < len(w.tasks)]
            if not active:
                return
            ready = wait([w.conn for w in active], timeout=0.5)
            for worker in active:
                if worker.conn in ready:
                    try:
                        result = worker.conn.recv()
                    except (EOFError, OSError):
                        self._replace(worker, self._death(worker), summaries)
                        continue
                    on_result(worker.tasks[worker.done], result)
                    worker.done += 1
                    worker.last, worker.started = worker.seconds(), time.monotonic()
                elif worker.seconds() - worker.last > self.budget.file_timeout or \
                        time.monotonic() - worker.started > _STUCK * self.budget.file_timeout:
                    self._replace(worker, f"skipped: took more than {self.budget.file_timeout:g} CPU seconds "
                                          f"(`file-timeout` in [tool.qlint])", summaries)

    def _death(self, worker: _Process) -> str:
        worker.process.join(timeout=5)
        code = worker.process.exitcode
        how = f"killed by signal {-code}" if code is not None and code < 0 else f"exit status {code}"
        return f"internal error: the worker process linting this file died ({how})"

    def _replace(self, worker: _Process, message: str, summaries: Optional[list]) -> None:
        """Give the file in progress a QL000 and the rest of the worker's files to a new one."""
        if worker.process.is_alive():
            worker.process.kill()
        worker.process.join(timeout=5)
        worker.conn.close()
        index = worker.tasks[worker.done]
        path = self.tasks[index][0]
        rule = all_rules()[PARSE_ERROR]
        self.failures[index] = Finding(str(path), 1, 1, 1, 1, PARSE_ERROR, rule.name, rule.severity, message)
        self.processes.remove(worker)
        if summaries is None:  # phase one: the new worker keeps the trees of every other file
            self.start(worker.tasks[:worker.done] + worker.tasks[worker.done + 1:])
        else:
            self.start(worker.tasks[worker.done + 1:], summaries)

    def send(self, message) -> None:
        for worker in self.processes:
            try:
                worker.conn.send(message)
            except OSError:  # it died between the phases: collect() sees it and replaces it
                pass

    def close(self) -> None:
        for worker in self.processes:
            worker.process.join(timeout=5)
            if worker.process.is_alive():
                worker.process.kill()


def _lint_parallel(tasks, jobs: int, budget: Budget, known):
    """Both phases in `jobs` processes, files balanced by size."""
    shares = [[] for _ in range(jobs)]
    loads = [0] * jobs
    for i in sorted(range(len(tasks)), key=lambda i: _size(tasks[i][0]), reverse=True):
        j = loads.index(min(loads))
        shares[j].append(i)
        loads[j] += _size(tasks[i][0])
    pool = _Pool(tasks, budget)
    try:
        for share in shares:
            pool.start(share)
        parsed: dict[int, FileSummary] = {}
        pool.collect(lambda i, summary: summary is not None and parsed.__setitem__(i, summary))
        parsed_in_order = [(parsed[i], tasks[i][0]) for i in sorted(parsed)] + known
        summaries, dependencies = _with_dependencies([s for s, _ in parsed_in_order],
                                                     [p for _, p in parsed_in_order])
        # A file whose worker failed in phase one is not parsed again.
        for worker in pool.processes:
            worker.tasks = [i for i in worker.tasks if i not in pool.failures]
        pool.send(summaries)
        results: dict[int, list[Finding]] = {}
        pool.collect(results.__setitem__, summaries)
    finally:
        pool.close()
    findings = [f for i in sorted(results) if i not in pool.failures for f in results[i]]
    findings += [f for i, f in pool.failures.items() if PARSE_ERROR in tasks[i][1]]
    return findings, _summarized(parsed_in_order, summaries, dependencies), dependencies


def _start_method() -> str:
    """fork when it is safe (one thread): workers inherit libcst already imported."""
    methods = multiprocessing.get_all_start_methods()
    if "fork" in methods and threading.active_count() == 1:
        return "fork"
    return "forkserver" if "forkserver" in methods else "spawn"


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0
