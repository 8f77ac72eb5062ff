"""`pytest --qlint`: items, failure text, node ids, --lf, markers, settings, cache, xdist."""

from __future__ import annotations

import pytest

PLUGIN = ("-p", "pytest_qlint.plugin")

XDIST_MODES = {
    "xdist -n 2": ("-p", "xdist", "-n", "2"),
    "xdist loaded, unused": ("-p", "xdist"),
    "no xdist": ("-p", "no:xdist"),
}

# Logs every lint call and every write of the qlint cache, from the controller and workers.
CALL_LOG_CONFTEST = """
import os
from pathlib import Path

import _pytest.cacheprovider
import qlint.engine

LOG = Path(__file__).with_name("calls.log")


def _log(line):
    with open(LOG, "a") as log:
        log.write(line + "\\n")


_lint_with_dependencies = qlint.engine.lint_with_dependencies


def lint_with_dependencies(files, config, jobs=None):
    for file in files:
        _log("lint " + Path(file).name)
    return _lint_with_dependencies(files, config, jobs)


qlint.engine.lint_with_dependencies = lint_with_dependencies
_cache_set = _pytest.cacheprovider.Cache.set


def cache_set(self, key, value):
    if key.startswith("qlint/"):
        _log(f"cache-set {key} pid={os.getpid()}")
    return _cache_set(self, key, value)


_pytest.cacheprovider.Cache.set = cache_set
"""


def make_project(pytester: pytest.Pytester, bad_source: str) -> None:
    """models/bad.py (findings), models/good.py (clean), test_ok.py (clean, one passing test)."""
    pytester.makepyprojecttoml("[tool.pytest.ini_options]\n")
    models = pytester.mkdir("models")
    (models / "bad.py").write_text(bad_source)
    (models / "good.py").write_text("WIDTH = 4\n")
    pytester.makepyfile(test_ok="def test_ok():\n    assert True\n")


def read_log(pytester: pytest.Pytester) -> list[str]:
    """The log lines written since the last call, sorted (workers interleave)."""
    log = pytester.path / "calls.log"
    lines = sorted(log.read_text().splitlines()) if log.exists() else []
    log.unlink(missing_ok=True)
    return lines


@pytest.mark.parametrize("xdist_args", XDIST_MODES.values(), ids=XDIST_MODES.keys())
def test_findings_fail_the_file_item_with_qlint_text(pytester, bad_example, xdist_args):
    code, source = bad_example
    make_project(pytester, source)

    result = pytester.runpytest_subprocess(*PLUGIN, *xdist_args, "--qlint", "-rf")

    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(
        [
            "*_ qlint: models/bad.py _*",
            f"models/bad.py:*:*: {code} *: *",
            "Found * problem* (* error*, * warning*).",
            "`qlint rule CODE` explains a rule and its fix; `# noqa: CODE` on a line accepts it.",
            f"FAILED models/bad.py::qlint - models/bad.py:*:*: {code} *",
        ]
    )
    output = result.stdout.str()
    assert "Traceback" not in output and "lint_items.py" not in output, output


def test_unchanged_files_are_not_linted_again_and_cache_is_written_once(pytester, bad_example):
    code, source = bad_example
    make_project(pytester, source)
    pytester.makeconftest(CALL_LOG_CONFTEST)
    run = ("-p", "xdist", "-n", "2", "--qlint")

    first = pytester.runpytest_subprocess(*PLUGIN, *run)
    first.assert_outcomes(passed=4, failed=1)
    first.stdout.fnmatch_lines(["qlint: 4 files checked: 4 linted, 0 unchanged (findings from the cache), 1 with findings"])
    log = read_log(pytester)
    assert [line for line in log if line.startswith("lint")] == [
        "lint bad.py", "lint conftest.py", "lint good.py", "lint test_ok.py"
    ]
    assert [line.split(" pid")[0] for line in log if line.startswith("cache-set")] == ["cache-set qlint/results"]

    second = pytester.runpytest_subprocess(*PLUGIN, *run)
    second.assert_outcomes(passed=4, failed=1)
    second.stdout.fnmatch_lines(
        [f"models/bad.py:*:*: {code} *", "qlint: 4 files checked: 0 linted, 4 unchanged (findings from the cache), 1 with findings"]
    )
    assert [line for line in read_log(pytester) if line.startswith("lint")] == []

    with open(pytester.path / "models" / "good.py", "a") as good:
        good.write("HEIGHT = 2\n")
    third = pytester.runpytest_subprocess(*PLUGIN, "--qlint")
    third.assert_outcomes(passed=4, failed=1)
    assert [line for line in read_log(pytester) if line.startswith("lint")] == ["lint good.py"]


def test_changed_settings_invalidate_the_cache(pytester, bad_example, monkeypatch):
    import qlint.engine

    code, source = bad_example
    make_project(pytester, source)
    linted = []
    lint = qlint.engine.lint_with_dependencies

    def counting_lint(files, *args, **kwargs):
        linted.extend(files)
        return lint(files, *args, **kwargs)

    monkeypatch.setattr(qlint.engine, "lint_with_dependencies", counting_lint)
    pytester.runpytest(*PLUGIN, "--qlint").assert_outcomes(passed=3, failed=1)
    pytester.runpytest(*PLUGIN, "--qlint").assert_outcomes(passed=3, failed=1)
    assert [path.name for path in linted] == ["bad.py", "good.py", "test_ok.py"]

    linted.clear()
    pytester.makepyprojecttoml(f'[tool.pytest.ini_options]\n[tool.qlint]\nignore = ["{code}"]\n')
    pytester.runpytest(*PLUGIN, "--qlint").assert_outcomes(passed=4)
    assert sorted(path.name for path in linted) == ["bad.py", "good.py", "test_ok.py"]


def test_works_without_the_cache_plugin_also_under_xdist(pytester, bad_example):
    make_project(pytester, bad_example[1])
    for _ in range(2):
        result = pytester.runpytest(*PLUGIN, "-p", "no:cacheprovider", "--qlint")
        result.assert_outcomes(passed=3, failed=1)
        result.stdout.fnmatch_lines(["qlint: 3 files checked: 3 linted, 0 unchanged (findings from the cache), 1 with findings"])
    result = pytester.runpytest_subprocess(*PLUGIN, "-p", "no:cacheprovider", "-p", "xdist", "-n", "2", "--qlint")
    result.assert_outcomes(passed=3, failed=1)


def test_items_rerun_by_node_id_and_with_last_failed(pytester, bad_example):
    make_project(pytester, bad_example[1])

    pytester.runpytest(*PLUGIN, "--qlint", "models/bad.py::qlint").assert_outcomes(failed=1)
    pytester.runpytest(*PLUGIN, "--qlint", "test_ok.py::qlint").assert_outcomes(passed=1)

    pytester.runpytest(*PLUGIN, "--qlint").assert_outcomes(passed=3, failed=1)
    rerun = pytester.runpytest(*PLUGIN, "--qlint", "--lf", "-v")
    rerun.assert_outcomes(failed=1)
    rerun.stdout.fnmatch_lines(["run-last-failure: rerun previous 1 failure*", "models/bad.py::qlint FAILED*"])


def test_a_lint_item_run_by_node_id_does_not_import_its_file(pytester, bad_example):
    """`pytest --qlint models/bad.py::qlint` asks for the lint item only: pytest imports every
    file named on the command line as a test module, which in a lint-only environment fails on
    the model's imports and runs its side effects."""
    make_project(pytester, "import not_installed_anywhere\nprint('imported')\n" + bad_example[1])
    result = pytester.runpytest(*PLUGIN, "--qlint", "-s", "models/bad.py::qlint", "test_ok.py::qlint")
    result.assert_outcomes(failed=1, passed=1)
    result.stdout.no_fnmatch_line("*imported*")
    # Named without ::qlint, the file is still collected for its tests, as pytest does.
    pytester.runpytest(*PLUGIN, "--qlint", "test_ok.py").assert_outcomes(passed=2)


def test_items_carry_the_qlint_marker(pytester, bad_example):
    make_project(pytester, bad_example[1])
    args = (*PLUGIN, "-p", "no:cacheprovider", "--qlint", "--strict-markers")
    pytester.runpytest(*args, "-m", "qlint").assert_outcomes(passed=2, failed=1, deselected=1)
    pytester.runpytest(*args, "-m", "not qlint").assert_outcomes(passed=1, deselected=3)


def test_without_option_no_file_is_linted(pytester, bad_example):
    make_project(pytester, bad_example[1])
    pytester.runpytest(*PLUGIN, "-p", "no:cacheprovider").assert_outcomes(passed=1)


def test_tool_qlint_settings_are_honoured(pytester, bad_example):
    code, source = bad_example
    pytester.makepyprojecttoml(
        f"""
        [tool.pytest.ini_options]
        [tool.qlint]
        extend-exclude = ["generated"]
        per-file-ignores = {{ "models/accepted.py" = ["{code}"] }}
        """
    )
    for name in ("models/bad.py", "models/accepted.py", "generated/bad.py"):
        (pytester.path / name).parent.mkdir(exist_ok=True)
        (pytester.path / name).write_text(source)

    result = pytester.runpytest(*PLUGIN, "-p", "no:cacheprovider", "--qlint", "-v")

    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        ["qlint *: settings from *pyproject.toml", "models/accepted.py::qlint PASSED*", "models/bad.py::qlint FAILED*"]
    )
    assert "generated" not in result.stdout.str()


def test_invalid_tool_qlint_settings_are_a_usage_error_with_qlint_only(pytester):
    pytester.makepyprojecttoml('[tool.pytest.ini_options]\n[tool.qlint]\nselct = ["QL"]\n')
    pytester.makepyfile(test_ok="def test_ok():\n    assert True\n")

    result = pytester.runpytest(*PLUGIN, "-p", "no:cacheprovider", "--qlint")

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: qlint: *pyproject.toml: [[]tool.qlint[]]: unknown key 'selct' (did you mean 'select'?)"])
    pytester.runpytest(*PLUGIN, "-p", "no:cacheprovider").assert_outcomes(passed=1)


def test_qlint_paths_are_linted_when_pytest_runs_without_path_arguments(pytester, bad_example):
    pytester.makepyprojecttoml(
        """
        [tool.pytest.ini_options]
        testpaths = ["tests"]
        qlint_paths = ["src", "tests"]
        """
    )
    pytester.mkdir("src")
    package = pytester.mkpydir("src/pkg")
    (package / "bad.py").write_text(bad_example[1])
    (package / "test_not_a_test.py").write_text("def test_fails():\n    assert False\n")
    pytester.mkdir("tests")
    (pytester.path / "tests" / "test_ok.py").write_text("def test_ok():\n    assert True\n")

    result = pytester.runpytest(*PLUGIN, "--qlint", "-v")
    result.assert_outcomes(passed=4, failed=1)
    result.stdout.fnmatch_lines(["*collected 5 items"])
    result.stdout.fnmatch_lines(["src/pkg/bad.py::qlint FAILED*"])

    pytester.runpytest(*PLUGIN, "--qlint", "tests").assert_outcomes(passed=2)
    pytester.runpytest(*PLUGIN, "--qlint", "src/pkg/bad.py::qlint").assert_outcomes(failed=1)
    rerun = pytester.runpytest(*PLUGIN, "--qlint", "--lf", "-v")
    rerun.assert_outcomes(failed=1)
    rerun.stdout.fnmatch_lines(["src/pkg/bad.py::qlint FAILED*"])


def test_missing_qlint_path_is_a_usage_error(pytester):
    pytester.makepyprojecttoml('[tool.pytest.ini_options]\nqlint_paths = ["missing"]\n')
    pytester.makepyfile(test_ok="def test_ok():\n    assert True\n")

    result = pytester.runpytest(*PLUGIN, "-p", "no:cacheprovider", "--qlint")

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: qlint_paths ini option: */missing: no such file or directory"])


def test_lint_items_neither_import_packages_nor_split_their_setup(pytester):
    pytester.makepyprojecttoml("[tool.pytest.ini_options]\n")
    pytester.mkpydir("model_pkg")
    (pytester.path / "model_pkg" / "__init__.py").write_text("import dependency_not_installed\n")
    (pytester.path / "model_pkg" / "layers.py").write_text("WIDTH = 4\n")
    tests = pytester.mkpydir("tests_pkg")
    (tests / "conftest.py").write_text(
        "import pytest\n\n"
        "@pytest.fixture(scope='package')\n"
        "def resource():\n"
        "    with open('package-setups.log', 'a') as log:\n"
        "        log.write('setup\\n')\n"
    )
    for name in ("test_a.py", "test_b.py"):
        (tests / name).write_text("def test_uses_resource(resource):\n    pass\n")

    result = pytester.runpytest(*PLUGIN, "-p", "no:cacheprovider", "--qlint")

    result.assert_outcomes(passed=8)
    assert (pytester.path / "package-setups.log").read_text() == "setup\n"


def test_a_file_is_linted_again_when_its_base_class_file_changes(pytester):
    """The findings of child.py depend on base.py (its base class); the cache knows it."""
    models = pytester.mkpydir("models")
    (models / "base.py").write_text(
        "import torch.nn as nn\n\n\nclass Base(nn.Module):\n    def __init__(self):\n"
        "        super().__init__()\n        self.relu = nn.ReLU()\n")
    (models / "child.py").write_text(
        "from models.base import Base\n\n\nclass Child(Base):\n    def forward(self, x):\n"
        "        return self.relu(self.relu(x))\n")
    first = pytester.runpytest_subprocess(*PLUGIN, "--qlint", "models/child.py")
    first.assert_outcomes(failed=1)
    first.stdout.fnmatch_lines(["models/child.py:6:*: QL401 module-reused: *"])
    second = pytester.runpytest_subprocess(*PLUGIN, "--qlint", "models/child.py")
    second.stdout.fnmatch_lines(["qlint: 1 files checked: 0 linted, 1 unchanged*"])

    (models / "base.py").write_text(
        "import torch.nn as nn\n\n\nclass Base(nn.Module):\n    def __init__(self):\n"
        "        super().__init__()\n        self.relu = nn.Identity()\n")
    third = pytester.runpytest_subprocess(*PLUGIN, "--qlint", "models/child.py")
    third.assert_outcomes(passed=1)
    third.stdout.fnmatch_lines(["qlint: 1 files checked: 1 linted, 0 unchanged*"])


@pytest.mark.parametrize("stored", [
    [1, 2, 3],
    "results",
    {"key": 1, "files": []},
    "SAME_KEY_LIST_FILES",
    "SAME_KEY_BAD_ENTRIES",
])
def test_a_cache_entry_of_the_wrong_shape_is_ignored_and_rewritten(pytester, bad_example, stored):
    """Valid JSON that this version did not write: no INTERNALERROR, no failing item, and the
    next run reads the rewritten cache."""
    import json

    code, source = bad_example
    make_project(pytester, source)
    first = pytester.runpytest_subprocess(*PLUGIN, "--qlint", "-p", "no:xdist")
    first.assert_outcomes(passed=3, failed=1)
    results = pytester.path / ".pytest_cache" / "v" / "qlint" / "results"
    written = json.loads(results.read_text())
    if stored == "SAME_KEY_LIST_FILES":
        stored = {"key": written["key"], "files": ["models/bad.py"]}
    elif stored == "SAME_KEY_BAD_ENTRIES":
        content = next(iter(written["files"].values()))["hash"]
        bad_entries = ["not an entry", {"hash": 1, "deps": {}, "findings": []},
                       {"hash": content, "deps": {}, "findings": [{"line": 1}]},
                       {"hash": content, "deps": [], "findings": "none"}]
        stored = {"key": written["key"], "files": dict(zip(written["files"], bad_entries))}
    results.write_text(json.dumps(stored))

    second = pytester.runpytest_subprocess(*PLUGIN, "--qlint", "-p", "no:xdist")
    second.assert_outcomes(passed=3, failed=1)
    assert "INTERNALERROR" not in second.stdout.str() + second.stderr.str()
    second.stdout.fnmatch_lines([f"models/bad.py:*:*: {code} *"])
    assert json.loads(results.read_text()) == written

    third = pytester.runpytest_subprocess(*PLUGIN, "--qlint", "-p", "no:xdist")
    third.assert_outcomes(passed=3, failed=1)
    third.stdout.fnmatch_lines(["qlint: 3 files checked: 0 linted, 3 unchanged (findings from the cache), 1 with findings"])


def test_a_file_with_a_bad_encoding_is_one_failing_item_with_ql000(pytester):
    pytester.makepyprojecttoml("[tool.pytest.ini_options]\n")
    models = pytester.mkdir("models")
    (models / "latin.py").write_bytes(b'x = "caf\xe9"\n')
    (models / "good.py").write_text("WIDTH = 4\n")
    result = pytester.runpytest_subprocess(*PLUGIN, "--qlint", "-p", "no:xdist", "models")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*latin.py:1:9: QL000 parse-error: cannot read: byte 0xe9 is not valid utf-8*"])
    assert "Traceback" not in result.stdout.str() and "INTERNALERROR" not in result.stdout.str()
def test_each_failure_header_names_its_file_and_node_ids_stay(pytester, bad_example):
    code, source = bad_example
    make_project(pytester, source)
    (pytester.path / "models" / "worse.py").write_text(source)

    result = pytester.runpytest_subprocess(*PLUGIN, "--qlint", "-rf")
    result.assert_outcomes(passed=3, failed=2)
    headers = [line.strip("_ ") for line in result.stdout.lines if line.startswith("____")]
    assert headers == ["qlint: models/bad.py", "qlint: models/worse.py"], result.stdout.str()
    result.stdout.fnmatch_lines(["FAILED models/bad.py::qlint - *", "FAILED models/worse.py::qlint - *"])

    rerun = pytester.runpytest_subprocess(*PLUGIN, "--qlint", "--lf", "-v")
    rerun.assert_outcomes(failed=2)
    rerun.stdout.fnmatch_lines(["models/bad.py::qlint FAILED*", "models/worse.py::qlint FAILED*",
                                "*_ qlint: models/bad.py _*"])
