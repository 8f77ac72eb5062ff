"""``pytest --qlint``: one ``path::qlint`` item per Python file, failing with qlint's findings.

Each file's findings are kept in pytest's cache with a hash of the file's content (and of
the project files it took base classes from), under qlint's installation and the settings'
fingerprint (`qlint.cache`, the keying the ``qlint`` command's cache uses too); while
those match, the next run reports them without linting again.
The cache is written once, by the controlling process: under xdist, workers send each
item's result to it as the report attribute ``qlint``.
"""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from qlint import __version__, engine
from qlint.cache import file_hash, is_fresh, make_entry, settings_key, stored_findings
from qlint.config import ConfigError, load_config
from qlint.discovery import discover
from qlint.output.text import render_text, summary_line
from pytest_qlint.plugin import PATHS_INI

CACHE_KEY = "qlint/results"
MARKER = "qlint"
LINT_SESSION = pytest.StashKey["LintSession"]()
RESULT = pytest.StashKey[dict]()


class QlintFindings(Exception):
    """Raised by a ``QlintItem`` whose file has findings."""

    def __init__(self, findings: list) -> None:
        super().__init__(f"{len(findings)} qlint findings")
        self.findings = findings


class QlintFile(pytest.File):
    """A Python file, collected for linting."""

    def collect(self):
        yield QlintItem.from_parent(self, name=QlintItem.NAME)


class QlintItem(pytest.Item):
    """Lints its file; fails with the findings in the text format of the ``qlint`` command."""

    NAME = "qlint"  # the node id is path/to/file.py::qlint

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.add_marker(MARKER)

    def runtest(self) -> None:
        lint = self.config.stash[LINT_SESSION]
        content = file_hash(self.path)  # before reading: an edit during the lint is seen next run
        stored = lint.stored.get(str(self.path))
        findings = None
        if stored is not None and is_fresh(stored, content, lambda path: file_hash(Path(path))):
            findings = stored_findings(stored, str(self.path))
        cached = findings is not None
        if cached:
            entry = stored
        else:
            findings, read = engine.lint_with_dependencies([self.path], lint.settings)
            entry = make_entry(content, {str(p): file_hash(p) for p in read}, findings)
        self.stash[RESULT] = {**entry, "path": str(self.path), "cached": cached}
        if findings:
            raise QlintFindings(findings)

    def repr_failure(self, excinfo, style=None):
        if not isinstance(excinfo.value, QlintFindings):
            return super().repr_failure(excinfo, style)
        findings = [dataclasses.replace(f, path=self.parent.nodeid) for f in excinfo.value.findings]
        return (
            render_text(findings)
            + summary_line(findings)
            + "\n`qlint rule CODE` explains a rule and its fix; `# noqa: CODE` on a line accepts it."
        )

    def reportinfo(self):
        # The domain is the failure's header: `qlint: models/bad.py` names the file. It must not
        # end the node id (pytest -v would then rewrite the node id's dots as `::`).
        return self.path, None, f"qlint: {self.parent.nodeid}"


class LintSession:
    """The ``--qlint`` hooks and their state; one per pytest run, in ``config.stash``."""

    def __init__(self, config: pytest.Config) -> None:
        self.config = config
        try:
            self.settings = load_config(start=config.rootpath)
        except ConfigError as error:
            raise pytest.UsageError(f"qlint: {error}") from None
        self.cache_key = settings_key(self.settings)
        self.cache = None
        self.stored: dict[str, dict] = {}  # path -> {"hash", "deps", "findings"}, from the cache
        self.results: dict[str, dict] = {}  # path -> this run's result, from the reports

    def pytest_report_header(self) -> str:
        source = self.settings.source or "defaults (no pyproject.toml with [tool.qlint])"
        return f"qlint {__version__}: settings from {source}"

    def pytest_sessionstart(self) -> None:
        self.cache = getattr(self.config, "cache", None)  # absent with -p no:cacheprovider
        stored = self.cache.get(CACHE_KEY, {}) if self.cache is not None else {}
        if isinstance(stored, dict) and stored.get("key") == self.cache_key and isinstance(stored.get("files"), dict):
            self.stored = stored["files"]

    def pytest_collect_file(self, file_path: Path, parent: pytest.Collector) -> QlintFile | None:
        if file_path.suffix == ".py" and not self.settings.is_excluded(file_path):
            # A child of the session, not of its package: running the item must not
            # import the package's __init__.py (Package.setup does), nor tear it down.
            return QlintFile.from_parent(parent.session, path=file_path)
        return None

    @pytest.hookimpl(tryfirst=True)
    def pytest_pycollect_makemodule(self, module_path: Path, parent: pytest.Collector) -> pytest.File | None:
        """A file named on the command line only as ``path.py::qlint`` (how a lint failure is
        re-run, by hand or from its node id) is not also imported as a test module: pytest
        imports every file named on the command line, and a model file's imports (torch in a
        lint-only environment) or side effects would break the run."""
        requested = [arg for arg in self.config.args if _arg_path(self.config, arg) == module_path]
        if requested and all(arg.partition("::")[2] == QlintItem.NAME for arg in requested):
            return _LintOnlyFile.from_parent(parent, path=module_path)
        return None

    @pytest.hookimpl(trylast=True)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> None:
        """Lint items first, so that packages are set up once for the tests that follow."""
        items.sort(key=lambda item: not isinstance(item, QlintItem))

    @pytest.hookimpl(wrapper=True)
    def pytest_make_collect_report(self, collector: pytest.Collector):
        """Add the ``qlint_paths`` files when pytest runs without path arguments."""
        report = yield
        if (
            isinstance(collector, pytest.Session)
            and report.passed
            and self.config.args_source is not pytest.Config.ArgsSource.ARGS
        ):
            report.result.extend(self._configured_files(collector))
        return report

    def _configured_files(self, session: pytest.Session) -> list[QlintFile]:
        try:
            files = discover(self.config.getini(PATHS_INI), self.settings)
        except FileNotFoundError as error:
            raise pytest.UsageError(f"{PATHS_INI} ini option: {error}") from None
        return [
            QlintFile.from_parent(session, path=file)
            for file in files
            # Files under pytest's own arguments are collected by pytest_collect_file.
            if not any(session.isinitpath(path) for path in (file, *file.parents))
        ]

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo):
        report = yield
        if call.when == "call" and RESULT in item.stash:
            report.qlint = item.stash[RESULT]
        return report

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        result = getattr(report, "qlint", None)
        if result is not None:
            self.results[result["path"]] = result

    def pytest_sessionfinish(self) -> None:
        if self.cache is None or hasattr(self.config, "workerinput") or not self.results:
            return
        files = {path: entry for path, entry in self.stored.items() if os.path.exists(path)}
        for path, result in self.results.items():
            files[path] = {key: result[key] for key in ("hash", "deps", "findings")}
        self.cache.set(CACHE_KEY, {"key": self.cache_key, "files": files})

    def pytest_terminal_summary(self, terminalreporter) -> None:
        if not self.results:
            return
        results = self.results.values()
        cached = sum(result["cached"] for result in results)
        failed = sum(bool(result["findings"]) for result in results)
        terminalreporter.write_line(
            f"qlint: {len(self.results)} files checked: {len(self.results) - cached} linted, "
            f"{cached} unchanged (findings from the cache), {failed} with findings"
        )


class _LintOnlyFile(pytest.File):
    """A file asked for its lint item only: it yields no tests (see pytest_pycollect_makemodule)."""

    def collect(self):
        return []


def _arg_path(config: pytest.Config, arg: str) -> Path:
    return (config.invocation_params.dir / arg.partition("::")[0]).resolve()


def start_lint_session(config: pytest.Config) -> None:
    lint = LintSession(config)
    config.stash[LINT_SESSION] = lint
    config.pluginmanager.register(lint, "qlint-lint-session")
