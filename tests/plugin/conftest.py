"""Inner pytest runs (pytester) load only the plugins a test names with -p."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


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
