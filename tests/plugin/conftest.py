"""Inner pytest runs (pytester) load only the plugins a test names with -p."""

from __future__ import annotations

import importlib
import os
import pkgutil
from pathlib import Path

import libcst
import pytest

import qlint

REPO = Path(__file__).resolve().parents[2]

# An in-process inner run (pytester.runpytest) drops every module it imported when it ends, so
# whatever is first imported inside one is imported again by the next run. Two things must not
# be: libcst's parser is a native (PyO3) module, initialized once per process with the classes
# of the first import (imported again, it builds nodes of freed classes: an AssertionError in
# libcst, or a segfault in the garbage collector), and the rule registry fills once (imported
# again, a run sees no rules and reports nothing). Which test first imports them depends on the
# order and on xdist's distribution, so import both here, before any inner run.
libcst.parse_module("")
for _module in pkgutil.walk_packages(qlint.__path__, "qlint."):
    if not _module.name.startswith("qlint.runtime") and _module.name != "qlint.__main__":  # torch; the command
        importlib.import_module(_module.name)
importlib.import_module("pytest_qlint.lint_items")


@pytest.fixture(autouse=True)
def isolated_inner_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    """No installed plugin autoloads; subprocesses import this checkout of the project."""
    monkeypatch.setenv("PYTEST_DISABLE_PLUGIN_AUTOLOAD", "1")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    monkeypatch.delenv("PYTEST_ADDOPTS", raising=False)


@pytest.fixture(scope="session")
def bad_example() -> tuple[str, str]:
    """(code, source): a registered rule's documented bad example, which qlint reports."""
    from qlint.registry import all_rules

    rule = next(rule for code, rule in all_rules().items() if code != "QL000" and not rule.opt_in)
    return rule.code, rule.bad_example()
