"""CI runs the README's commands in a fresh virtualenv, and a test skipped for a dependency
that the README's test command installs fails the run there."""
from __future__ import annotations

import re
import sys
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

REPO = Path(__file__).resolve().parent.parent
CONFTEST = (REPO / "tests" / "conftest.py").read_text()
SKIPS = """
import pytest

def test_needs_numpy():
    pytest.importorskip("numpy_not_here", reason="could not import 'numpy': No module named 'numpy'")

def test_skipped_for_a_plain_reason():
    pytest.skip("needs a GPU")
"""


def _readme_commands() -> list[str]:
    text = (REPO / "README.md").read_text()
    block = re.search(r"```bash\n(.*?)```", text, re.DOTALL).group(1)
    return block.strip().splitlines()


def test_readme_opens_with_the_lint_and_the_test_command():
    lint, test = _readme_commands()
    assert lint.startswith("python -m pip install -e . && qlint ") and "examples/" in lint
    assert "torch==2.13.0" in test and "python -m pytest -n 2" in test
    extras = re.search(r'-e "\.\[([a-z,]+)\]"', test).group(1).split(",")
    declared = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert set(extras) == set(declared), "the test command installs every extra"
    needed = " ".join(declared["test"] + declared["torchao"] + declared["report"])
    for package in ("numpy", "expecttest", "hypothesis", "hypothesmith", "torchao", "matplotlib"):
        assert package in needed


def test_ci_runs_the_readme_commands_in_a_fresh_virtualenv():
    script = (REPO / ".ci" / "run").read_text()
    assert "-m venv" in script and "mktemp -d" in script
    assert 'export PATH="$venv/bin:$PATH"' in script
    assert "QLINT_REQUIRE_TEST_DEPENDENCIES=1" in script


def test_a_skip_for_a_missing_readme_dependency_fails_under_ci(pytester, monkeypatch):
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_skips=SKIPS)
    monkeypatch.setenv("QLINT_REQUIRE_TEST_DEPENDENCIES", "1")
    result = pytester.runpytest("-rfEs")
    result.assert_outcomes(failed=1, skipped=1)
    result.stdout.fnmatch_lines(["*missing dependency that the README's test command installs*numpy*",
                                 "SKIPPED*needs a GPU*"])


def test_outside_ci_the_same_skip_is_a_skip_that_names_its_reason(pytester, monkeypatch):
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_skips=SKIPS)
    monkeypatch.delenv("QLINT_REQUIRE_TEST_DEPENDENCIES", raising=False)
    result = pytester.runpytest("-rfEs")
    result.assert_outcomes(skipped=2)
    result.stdout.fnmatch_lines(["SKIPPED*No module named 'numpy'*"])


def test_a_module_skipped_at_import_fails_under_ci(pytester, monkeypatch):
    pytester.makeconftest(CONFTEST)
    pytester.makepyfile(test_mod="import pytest\ntorch = pytest.importorskip('torch_not_here', "
                        "reason=\"could not import 'torch': No module named 'torch'\")\n\n"
                        "def test_x():\n    pass\n")
    monkeypatch.setenv("QLINT_REQUIRE_TEST_DEPENDENCIES", "1")
    result = pytester.runpytest()
    assert result.ret != 0
    result.stdout.fnmatch_lines(["*missing dependency*torch*"])
