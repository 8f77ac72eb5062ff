"""Run the rules over files: parse, model, check, locate, filter `# noqa`.

Linting is two-phase so that a class can derive from a module defined in another file of
the run: every file is parsed and summarized first, the summaries are merged into one
`ProjectIndex`, then the rules run. With enough files, each phase runs in worker
processes that keep their parsed trees between the phases; only summaries and findings
cross process boundaries.
"""
from __future__ import annotations

import ast
import gc
import multiprocessing
import os
import threading
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Optional, Sequence

import libcst as cst

from qlint.finding import Finding
from qlint.noqa import Noqa
from qlint.registry import all_rules
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
    jobs = min(jobs or os.cpu_count() or 1, max(1, len(tasks) // (PARALLEL_MIN_FILES // 2)))
    with _collector_paused():
        if jobs <= 1 or len(tasks) < PARALLEL_MIN_FILES:
            findings, summaries, read = _lint_serial(tasks, list(known))
        else:
            findings, summaries, read = _lint_parallel(tasks, jobs, list(known))
    return ProjectLint(sorted(findings), summaries, read)


def _summarized(parsed, summaries, read) -> dict[Path, FileSummary]:
    """Summaries by resolved path (`_with_dependencies` appends those of `read` in order)."""
    return {path.resolve(): summary for path, summary in zip([p for _, p in parsed] + read, summaries)}


@contextmanager
def _collector_paused():
    """Pause the cyclic garbage collector: the parsed trees of a run stay alive between the
    two phases, and every full collection would walk all of them (a quarter of the run time
    on timm); the trees hold no reference cycles, so reference counting frees them."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def fix_paths(files: Sequence[Path], config: "Config") -> dict[Path, int]:
    """Apply the fixes of fixable findings (not those under `# noqa`) and rewrite the files;
    return how many fixes each changed file got."""
    units = [_Unit(Path(f), config.enabled_codes(Path(f))) for f in files]
    parsed = [(s, unit.path) for s, unit in ((unit.parse(), unit) for unit in units) if s is not None]
    index = ProjectIndex(_with_dependencies([s for s, _ in parsed], [p for _, p in parsed])[0])
    changed = {}
    for unit in units:
        unit.check(index)
        if unit.fixes:
            fixed = unit.model.module.visit(_Replace(unit.fixes))
            unit.path.write_bytes(fixed.bytes)
            changed[unit.path] = len(unit.fixes)
    return changed


def lint_text(data: bytes, path: Path, codes: frozenset, fix: bool = False) -> tuple[list[Finding], bytes]:
    """Lint source given for `path` (standard input) as that file of its project would be,
    base classes from other files included; with `fix`, fix it first. Returns the findings
    left and the source (fixed or not)."""
    unit = _Unit(path, codes)
    summary = unit.parse(data)
    index = ProjectIndex(_with_dependencies([summary], [path])[0] if summary else [])
    findings = unit.check(index)
    if fix and unit.fixes:
        data = unit.model.module.visit(_Replace(unit.fixes)).bytes
        return lint_text(data, path, codes)[0], data
    return sorted(findings), data


class _Replace(cst.CSTTransformer):
    """Replaces nodes by identity (the nodes the rules reported on)."""

    def __init__(self, replacements: dict[int, cst.CSTNode]):
        super().__init__()
        self.replacements = replacements

    def on_leave(self, original_node, updated_node):
        return self.replacements.get(id(original_node), updated_node)


def lint_source(source: str, path: str = "<string>", codes: Optional[frozenset] = None) -> list[Finding]:
    """Lint one file's source on its own (no other file's classes are known); `codes`
    defaults to the rules enabled by default."""
    codes = frozenset(c for c, rule in all_rules().items() if not rule.opt_in) if codes is None else codes
    unit = _Unit(Path(path), codes)
    summary = unit.parse(source.encode("utf-8"))
    index = ProjectIndex([summary] if summary else [])
    return sorted(unit.check(index))


class _Unit:
    """One file through both phases."""

    def __init__(self, path: Path, codes: frozenset):
        self.path = path
        self.codes = codes
        self.model: Optional[FileModel] = None
        self.failure: Optional[Finding] = None
        self.fixes: dict[int, cst.CSTNode] = {}  # id(node) -> replacement, for --fix

    def parse(self, data: Optional[bytes] = None) -> Optional[FileSummary]:
        try:
            if data is None:
                data = self.path.read_bytes()
            module = cst.parse_module(data)
            source = data.decode(module.encoding)
        except cst.ParserSyntaxError as exc:
            self.failure = self._syntax_failure(data, exc)
            return None
        except (OSError, UnicodeDecodeError, LookupError) as exc:
            self.failure = self._failure(1, 1, f"cannot read: {exc}")
            return None
        try:
            self.model = FileModel(self.path, source, module)
        except RecursionError:
            self.failure = self._failure(1, 1, "too deeply nested to analyze")
            return None
        except Exception as exc:  # an internal failure is a finding, never a crash
            self.failure = self._failure(1, 1, f"internal error building the model: {type(exc).__name__}: {exc}")
            return None
        return self.model.summary()

    def _syntax_failure(self, data: bytes, exc: cst.ParserSyntaxError) -> Finding:
        """Python's own parser says where and what more precisely than libcst does."""
        try:
            compile(data, str(self.path), "exec", flags=ast.PyCF_ONLY_AST, dont_inherit=True)
        except SyntaxError as error:
            return self._failure(error.lineno or 1, error.offset or 1, f"cannot parse: {error.msg}")
        except ValueError:
            pass
        message = str(exc).strip().splitlines()[0]
        return self._failure(exc.editor_line, exc.editor_column, f"cannot parse: {message}")

    def _failure(self, line: int, column: int, message: str) -> Finding:
        rule = all_rules()[PARSE_ERROR]
        return Finding(str(self.path), line, column, line, column, PARSE_ERROR, rule.name, rule.severity, message)

    def check(self, index: ProjectIndex) -> list[Finding]:
        if self.failure is not None:
            return [self.failure] if PARSE_ERROR in self.codes else []
        model = self.model
        model.index = index
        reports, failures = [], []
        for code, rule in all_rules().items():
            if code not in self.codes or code in _ENGINE_CODES:
                continue
            try:
                reports.extend((rule, report) for report in rule().check(model))
            except Exception as exc:  # an internal failure is a finding, never a crash
                failures.append(self._failure(1, 1, f"internal error in {code}: {type(exc).__name__}: {exc}"))
        noqa = Noqa(model.source)
        findings = self._findings(reports, noqa)
        if UNUSED_NOQA in self.codes:
            from qlint.rules.suppression import UnusedNoqa, unused_noqa_reports

            findings += self._findings([(UnusedNoqa, r) for r in unused_noqa_reports(model, noqa, self.codes)], noqa)
        if PARSE_ERROR in self.codes:
            findings.extend(failures)
        return findings

    def _findings(self, reports, noqa: Noqa) -> list[Finding]:
        """Locate the reports, drop those under `# noqa`, keep their fixes for --fix."""
        if not reports:
            return []
        model = self.model
        nodes = [r.node for _, r in reports] + [n for _, r in reports for n in (r.lines or {}).values()]
        positions = locate(model.module, nodes)
        findings, seen = [], set()
        for rule, report in reports:
            line, column, end_line, end_column = positions.get(id(report.node), (1, 1, 1, 1))
            if (line, column, rule.code) in seen or noqa.suppresses(line, rule.code):
                continue
            seen.add((line, column, rule.code))
            if rule.fixable and report.fix is not None:
                self.fixes[id(report.fix[0])] = report.fix[1]
            message = report.message
            for name, node in (report.lines or {}).items():
                message = message.replace("{" + name + "}", str(positions.get(id(node), (0,))[0]))
            findings.append(Finding(str(self.path), line, column, end_line, end_column, rule.code,
                                    rule.name, report.severity or rule.severity, message))
        return findings


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
        root = root.parents[levels - 1] if levels > 0 else root
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
        summary = _Unit(found, frozenset()).parse()
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
            for candidate in (base.with_suffix(".py"), base / "__init__.py"):
                if candidate.is_file():
                    yield candidate.resolve()


def _lint_serial(tasks, known):
    units = [_Unit(path, codes) for path, codes in tasks]
    parsed = [(s, unit.path) for s, unit in ((unit.parse(), unit) for unit in units) if s is not None] + known
    summaries, dependencies = _with_dependencies([s for s, _ in parsed], [p for _, p in parsed])
    index = ProjectIndex(summaries)
    findings = [finding for unit in units for finding in unit.check(index)]
    return findings, _summarized(parsed, summaries, dependencies), dependencies


def _worker(conn, tasks) -> None:
    gc.disable()  # see _collector_paused; the worker exits at the end
    units = [_Unit(path, codes) for path, codes in tasks]
    conn.send([(s, unit.path) for s, unit in ((unit.parse(), unit) for unit in units) if s is not None])
    index = ProjectIndex(conn.recv())
    conn.send([finding for unit in units for finding in unit.check(index)])
    conn.close()


def _lint_parallel(tasks, jobs: int, known):
    """Both phases in `jobs` processes, files balanced by size."""
    shares = [[] for _ in range(jobs)]
    loads = [0] * jobs
    for task in sorted(tasks, key=lambda t: _size(t[0]), reverse=True):
        i = loads.index(min(loads))
        shares[i].append(task)
        loads[i] += _size(task[0])
    context = multiprocessing.get_context(_start_method())
    pipes, processes = [], []
    for share in shares:
        parent, child = context.Pipe()
        process = context.Process(target=_worker, args=(child, share), daemon=True)
        process.start()
        child.close()
        pipes.append(parent)
        processes.append(process)
    try:
        parsed = [item for pipe in pipes for item in pipe.recv()] + known
        summaries, dependencies = _with_dependencies([s for s, _ in parsed], [p for _, p in parsed])
        for pipe in pipes:
            pipe.send(summaries)
        findings = [f for pipe in pipes for f in pipe.recv()]
    finally:
        for process in processes:
            process.join(timeout=5)
    return findings, _summarized(parsed, summaries, dependencies), dependencies


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
