"""The qlint command end to end: exit codes, options, formats, settings errors, `qlint rule`."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from qlint import __version__
from qlint.cli import main
from qlint.registry import all_rules

if sys.version_info >= (3, 11):
    import tomllib
else:
    import tomli as tomllib

REPO = Path(__file__).resolve().parent.parent

HAZARD = textwrap.dedent(
    """\
    import torch.nn as nn


    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 1)

        def forward(self, x):
            y = self.conv(x)
            return x + y
    """
)
CLEAN = textwrap.dedent(
    """\
    import torch.nn as nn
    from torch.ao.nn.quantized import FloatFunctional


    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 1)
            self.skip_add = FloatFunctional()

        def forward(self, x):
            return self.skip_add.add(x, self.conv(x))
    """
)
HAZARD_LINE = "models/block.py:11:16: QL301 tensor-operator: "


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A project with one QL301 hazard in models/block.py and a clean models/clean.py."""
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "block.py").write_text(HAZARD)
    (tmp_path / "models" / "clean.py").write_text(CLEAN)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run(capsys, *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_clean_files_exit_0(project, capsys):
    assert run(capsys, "models/clean.py") == (0, "All checks passed!\n", "")


def test_findings_exit_1_with_parseable_lines_and_a_summary(project, capsys):
    status, out, err = run(capsys)  # default path: .
    assert (status, err) == (1, "")
    lines = out.splitlines()
    assert lines[0].startswith(HAZARD_LINE), out
    assert lines[1:] == ["Found 1 problem (1 error, 0 warnings)."]


def test_exit_zero_keeps_the_output(project, capsys):
    status, out, _ = run(capsys, "models")
    assert status == 1
    assert run(capsys, "--exit-zero", "models") == (0, out, "")


def test_select_and_ignore_on_the_command_line(project, capsys):
    assert run(capsys, "--select", "QL4", "models")[0] == 0
    assert run(capsys, "--ignore", "QL3,QL5", "models")[0] == 0
    assert run(capsys, "--select", "QL4", "--select", "QL301", "models")[0] == 1


def test_settings_come_from_the_pyproject_above_the_first_path(project, capsys, monkeypatch):
    (project / "pyproject.toml").write_text('[tool.qlint]\n[tool.qlint.per-file-ignores]\n"models/block.py" = ["QL301"]\n')
    elsewhere = project.parent
    monkeypatch.chdir(elsewhere)
    assert run(capsys, str(project / "models")) == (0, "All checks passed!\n", "")
    assert run(capsys, str(project / "models"), "--config", str(project / "missing.toml"))[0] == 2


def test_noqa_comments_silence_the_named_codes(project, capsys):
    block = project / "models" / "block.py"
    block.write_text(HAZARD.replace("return x + y", "return x + y  # noqa: QL401"))
    assert run(capsys, "models")[0] == 1
    block.write_text(HAZARD.replace("return x + y", "return x + y  # noqa: QL401, QL301"))
    assert run(capsys, "models")[0] == 0
    block.write_text(HAZARD.replace("return x + y", "return x + y  # noqa"))
    assert run(capsys, "models")[0] == 0


def test_excluded_files_are_skipped_unless_named(project, capsys):
    assert run(capsys, "--extend-exclude", "block.py", ".")[0] == 0
    assert run(capsys, "--extend-exclude", "block.py", "models/block.py")[0] == 1


def test_unparseable_file_is_a_ql000_finding(project, capsys):
    (project / "broken.py").write_text("def broken(:\n    pass\n")
    status, out, _ = run(capsys, "broken.py")
    assert status == 1
    assert re.match(r"broken\.py:\d+:\d+: QL000 parse-error: cannot parse", out), out


def test_statistics(project, capsys):
    (project / "models" / "twice.py").write_text(HAZARD + HAZARD.replace("class Block", "class Block2"))
    status, out, _ = run(capsys, "--statistics", "models")
    assert status == 1
    assert out == "   3  QL301  tensor-operator\n"
    status, out, _ = run(capsys, "--statistics", "--output-format", "json", "models")
    assert json.loads(out) == [{"count": 3, "code": "QL301", "name": "tensor-operator", "fixable": False}]


def test_json_output(project, capsys):
    status, out, _ = run(capsys, "--output-format", "json", "models")
    assert status == 1
    [finding] = json.loads(out)
    assert (finding["path"], finding["line"], finding["column"], finding["code"]) == ("models/block.py", 11, 16, "QL301")
    assert (finding["end_line"], finding["end_column"]) == (11, 21)  # `x + y`: end is exclusive
    assert finding["severity"] == all_rules()["QL301"].severity


def test_sarif_output(project, capsys):
    status, out, _ = run(capsys, "--output-format", "sarif", "models")
    assert status == 1
    run_ = json.loads(out)["runs"][0]
    [result] = run_["results"]
    assert result["ruleId"] == "QL301"
    assert run_["tool"]["driver"]["rules"][result["ruleIndex"]]["id"] == "QL301"
    location = result["locations"][0]["physicalLocation"]
    assert location["artifactLocation"]["uri"] == "models/block.py"
    assert location["region"] == {"startLine": 11, "startColumn": 16, "endLine": 11, "endColumn": 21}


def test_github_output(project, capsys):
    status, out, _ = run(capsys, "--output-format", "github", "models")
    assert status == 1
    assert out.startswith("::error file=models/block.py,line=11,col=16,endLine=11,endColumn=21,title=QL301 tensor-operator::")


def test_jobs_reach_the_engine(project, capsys, monkeypatch):
    import qlint.engine

    calls = []
    real_lint_project = qlint.engine.lint_project

    def spy(files, config, jobs=None, known=()):
        calls.append(jobs)
        return real_lint_project(files, config, jobs=jobs, known=known)

    monkeypatch.setattr(qlint.engine, "lint_project", spy)
    assert run(capsys, "-j", "3", "models")[0] == 1  # through the cache
    assert run(capsys, "--jobs", "1", "models", "--no-cache")[0] == 1
    assert run(capsys, "models", "--no-cache")[0] == 1
    assert calls == [3, 1, None]


@pytest.mark.parametrize(
    ("pyproject", "expected"),
    [
        ('[tool.qlint]\nselct = ["QL3"]\n', r"pyproject.toml: \[tool.qlint\]: unknown key 'selct' \(did you mean 'select'\?\)"),
        ('[tool.qlint]\nignore = ["QL3O1"]\n', r"pyproject.toml: \[tool.qlint\] ignore: unknown rule code or prefix 'QL3O1'"),
        ('[tool.qlint]\nexclude = "build"\n', r"pyproject.toml: \[tool.qlint\] exclude: expected a list of strings"),
    ],
)
def test_settings_errors_exit_2_naming_file_and_key(project, capsys, pyproject, expected):
    (project / "pyproject.toml").write_text(pyproject)
    status, out, err = run(capsys, "models")
    assert (status, out) == (2, "")
    assert re.match(rf"qlint: error: {re.escape(str(project))}/{expected}", err), err


@pytest.mark.parametrize(
    ("argv", "expected_error"),
    [
        (["--select", "QL999", "models"], "qlint: error: --select: unknown rule code or prefix 'QL999'"),
        (["models", "nowhere.py"], "qlint: error: nowhere.py: no such file or directory"),
        (["--output-format", "xml"], "invalid choice: 'xml'"),
        (["--jobs", "0"], "expected a positive integer, found 0"),
        (["--statistics", "--output-format", "sarif"], "--statistics works with --output-format text or json"),
        (["--unsafe-fixes", "--no-unsafe-fixes"], "not allowed with argument --unsafe-fixes"),
        (["--add-noqa", "--diff"], "--add-noqa cannot be combined with --fix, --diff or a baseline"),
    ],
)
def test_usage_errors_exit_2(project, capsys, argv, expected_error):
    status, out, err = run(capsys, *argv)
    assert (status, out) == (2, "")
    assert expected_error in err


def test_no_python_files_is_a_warning_not_an_error(project, capsys):
    (project / "docs").mkdir()
    assert run(capsys, "docs") == (0, "All checks passed!\n", "qlint: warning: no Python files found under the given paths\n")


def test_version(capsys):
    assert run(capsys, "--version") == (0, f"qlint {__version__}\n", "")


def test_rule_explains_one_rule(capsys):
    rule = all_rules()["QL301"]
    status, out, _ = run(capsys, "rule", "QL301")
    assert status == 0
    for part in (rule.code, rule.name, rule.severity, rule.summary, rule.explanation.strip(),
                 rule.bad_example().strip(), rule.good_example().strip(), rule.fix.strip()):
        assert part in out
    assert run(capsys, "rule", "ql301")[1] == out


def test_rule_all_lists_every_rule(capsys):
    status, out, _ = run(capsys, "rule", "--all")
    assert status == 0
    lines = out.splitlines()
    assert [line.split()[:4] for line in lines] == [[code, rule.name, rule.severity, rule.fix_safety or "-"]
                                                    for code, rule in all_rules().items()]
    assert all(line.endswith(rule.summary) for line, rule in zip(lines, all_rules().values()))


@pytest.mark.parametrize("code", [code for code, rule in all_rules().items() if rule.fix_safety][:1] + ["QL301"])
def test_rule_says_which_tier_its_fix_is_in_and_why(capsys, code):
    rule = all_rules()[code]
    out = run(capsys, "rule", code)[1]
    if not rule.fix_safety:
        assert "No automatic fix" in out and "Fix safety" not in out
        return
    assert f"Fix: **{rule.fix_safety}**." in out
    safety = out.split("### Fix safety\n\n", 1)[1]
    assert f"This rule's fix is **{rule.fix_safety}**" in safety and rule.fix_safety_note in safety


@pytest.mark.parametrize(
    ("argv", "expected_error"),
    [
        (["rule", "QL999"], "qlint: error: unknown rule code 'QL999'; `qlint rule --all` lists the rules"),
        (["rule", "QL3"], "qlint: error: unknown rule code 'QL3'"),
        (["rule"], "one of the arguments code --all is required"),
    ],
)
def test_rule_errors_exit_2(capsys, argv, expected_error):
    status, out, err = run(capsys, *argv)
    assert (status, out) == (2, "")
    assert expected_error in err


def subprocess_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}


def test_python_dash_m_qlint_in_a_real_process(project):
    result = subprocess.run([sys.executable, "-m", "qlint", "models"], capture_output=True, text=True,
                            env=subprocess_env(), check=False)
    assert result.returncode == 1, result.stderr
    assert result.stdout.startswith(HAZARD_LINE)
    version = subprocess.run([sys.executable, "-m", "qlint", "--version"], capture_output=True, text=True,
                             env=subprocess_env(), check=False)
    assert (version.returncode, version.stdout) == (0, f"qlint {__version__}\n")


def test_linting_never_imports_torch(project):
    script = (
        "import sys; from qlint.cli import main; status = main(['models', '--output-format', 'sarif']); "
        "print('torch modules:', sorted(m for m in sys.modules if m.split('.')[0] == 'torch'), file=sys.stderr); "
        "sys.exit(status)"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=subprocess_env(),
                            check=False)
    assert result.stderr.splitlines()[-1:] == ["torch modules: []"], result.stderr
    assert result.returncode == 1


def test_pre_commit_hook_runs_the_console_script():
    hooks = (REPO / ".pre-commit-hooks.yaml").read_text()
    scripts = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["scripts"]
    assert re.search(r"^- id: qlint$", hooks, re.M)
    [entry] = re.findall(r"^  entry: (\S+)$", hooks, re.M)
    assert scripts[entry] == "qlint.cli:main"
    assert re.search(r"^  types: \[python\]$", hooks, re.M)
