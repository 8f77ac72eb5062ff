"""Skips are visible: each names its reason in the summary (`-rs` in pyproject's addopts), and
under CI (`.ci/run` sets QLINT_REQUIRE_TEST_DEPENDENCIES=1) a test or module skipped because a
dependency that the README's test command installs is missing fails instead: a missing
install step must fail CI, not shrink the suite."""
from __future__ import annotations

import os
import re

import pytest

REQUIRE_ENV = "QLINT_REQUIRE_TEST_DEPENDENCIES"
# What `pip install -e ".[torch,test,torchao,report]"` installs and some test needs.
INSTALLED_BY_README = ("torch", "numpy", "expecttest", "torchao", "matplotlib", "hypothesis",
                       "hypothesmith", "libcst", "xdist")
_MISSING = re.compile(r"could not import|no module named|not installed|is not available|cannot import",
                      re.IGNORECASE)
_NAMES = re.compile(r"\b(" + "|".join(INSTALLED_BY_README) + r")\b", re.IGNORECASE)


def missing_dependency(reason: str) -> bool:
    """Whether a skip reason says a dependency of the README's test command is missing."""
    return bool(_MISSING.search(reason) and _NAMES.search(reason))


def _skip_reason(report) -> str:
    longrepr = report.longrepr
    if isinstance(longrepr, tuple) and len(longrepr) == 3:
        return str(longrepr[2])
    return str(longrepr)


def _fail_if_required(report) -> None:
    if not report.skipped or os.environ.get(REQUIRE_ENV) != "1" or hasattr(report, "wasxfail"):
        return
    reason = _skip_reason(report)
    if missing_dependency(reason):
        report.outcome = "failed"
        report.longrepr = (f"skipped for a missing dependency that the README's test command installs "
                           f"({REQUIRE_ENV}=1): {reason}")


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    report = yield
    _fail_if_required(report)
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(collector):
    report = yield
    _fail_if_required(report)
    return report
