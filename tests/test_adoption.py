"""Through the qlint command: standard input, `# noqa` hygiene (file-level directives,
QL001 unused-noqa, --add-noqa), baselines, and the output options (-q, --silent, full)."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from qlint.cli import main
from tests.test_cli import CLEAN, HAZARD

LEGACY = textwrap.dedent(
    """\
    import torch.nn as nn


    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 1)

        def forward(self, x):
            y = self.conv(x)
            z = x + y
            return z * y
    """
)  # QL301 on lines 11 and 12


@pytest.fixture
def project(tmp_path, monkeypatch):
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "block.py").write_text(HAZARD)
    (tmp_path / "models" / "clean.py").write_text(CLEAN)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def run(capsys, *argv: str) -> tuple[int, str, str]:
    status = main(list(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def qlint(*argv: str, stdin: str = "", cwd: Path, env=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "qlint", *argv], input=stdin.encode(), capture_output=True,
                          cwd=cwd, env=env, timeout=120)


# ----- standard input -------------------------------------------------------------------
def test_stdin_is_linted_under_its_stdin_filename_with_the_project_settings(project):
    (project / "pyproject.toml").write_text('[tool.qlint]\n[tool.qlint.per-file-ignores]\n"scripts/*" = ["QL3"]\n')
    result = qlint("-", "--stdin-filename", "models/new.py", "--no-cache", stdin=HAZARD, cwd=project)
    assert result.returncode == 1
    assert result.stdout.decode().startswith("models/new.py:11:16: QL301 tensor-operator: ")
    ignored = qlint("-", "--stdin-filename", "scripts/new.py", stdin=HAZARD, cwd=project)
    assert (ignored.returncode, ignored.stdout.decode()) == (0, "All checks passed!\n")
    nameless = qlint("-", stdin=HAZARD, cwd=project)
    assert nameless.stdout.decode().startswith("-:11:16: QL301")


def test_stdin_under_an_excluded_filename_reports_nothing(project):
    (project / "pyproject.toml").write_text('[tool.qlint]\nextend-exclude = ["legacy"]\n')
    result = qlint("-", "--stdin-filename", "legacy/old.py", stdin=HAZARD, cwd=project)
    assert (result.returncode, result.stdout, result.stderr) == (0, b"", b"")
    fixed = qlint("-", "--stdin-filename", "legacy/old.py", "--fix", stdin=HAZARD, cwd=project)
    assert fixed.stdout.decode() == HAZARD  # the source, untouched


def test_stdin_fix_prints_the_fixed_source_and_reports_what_is_left_on_stderr(project):
    source = "import torch.quantization as tq\nimport torch.nn as nn\n" + HAZARD.split("\n", 1)[1]
    result = qlint("-", "--stdin-filename", "models/b.py", "--fix", stdin=source, cwd=project)
    assert result.stdout.decode() == source.replace("torch.quantization", "torch.ao.quantization")
    assert "models/b.py:12:16: QL301" in result.stderr.decode()
    assert result.returncode == 1
    assert not (project / "models" / "b.py").exists()


def test_stdin_sees_base_classes_of_the_project(project):
    (project / "models" / "__init__.py").write_text("")
    (project / "models" / "base.py").write_text("import torch.nn as nn\n\n\nclass Base(nn.Module):\n    pass\n")
    child = ("from models.base import Base\n\n\nclass Child(Base):\n    def forward(self, x):\n"
             "        return x + x\n")
    result = qlint("-", "--stdin-filename", "models/child.py", stdin=child, cwd=project)
    assert "models/child.py:6:16: QL301" in result.stdout.decode()


def test_stdin_usage_errors(project, capsys):
    assert run(capsys, "-", "models")[0] == 2
    assert run(capsys, "models", "--stdin-filename", "x.py")[0] == 2


# ----- noqa ---------------------------------------------------------------------------
def test_file_level_noqa_suppresses_the_whole_file_or_its_codes(project, capsys):
    (project / "models" / "block.py").write_text("# qlint: noqa\n" + LEGACY)
    assert run(capsys, "models", "--no-cache")[0] == 0
    (project / "models" / "block.py").write_text(LEGACY + "# qlint: noqa: QL401, QL301\n")
    assert run(capsys, "models", "--no-cache")[0] == 0
    (project / "models" / "block.py").write_text("# qlint: noqa: QL401\n" + LEGACY)
    status, out, _ = run(capsys, "models", "--no-cache")
    assert status == 1 and out.count("QL301") == 2
    # In a string it is text, not a directive.
    (project / "models" / "block.py").write_text('DOC = "# qlint: noqa"\n' + LEGACY)
    assert run(capsys, "models", "--no-cache")[0] == 1


def test_unused_noqa_is_opt_in_and_reports_unused_and_unknown_ql_codes_only(project, capsys):
    source = LEGACY.replace("z = x + y", "z = x + y  # noqa: QL301, E731").replace(
        "return z * y", "return z * y  # noqa: QL401, QL999, F401")
    (project / "models" / "block.py").write_text(source)
    status, out, _ = run(capsys, "models/block.py", "--no-cache")
    assert (status, out.count("QL001")) == (1, 0)  # off by default
    status, out, _ = run(capsys, "models/block.py", "--no-cache", "--extend-select", "ql001")
    assert status == 1
    assert "models/block.py:12:23: QL001 [*] unused-noqa: unused `noqa` directive (unused: QL401; unknown: QL999)" in out
    assert out.count("QL001") == 1 and "E731" not in out and "F401" not in out


def test_fixing_unused_noqa_removes_the_codes_or_the_whole_comment(project, capsys):
    source = LEGACY.replace("z = x + y", "z = x + y  # noqa: QL301, QL401  (legacy)").replace(
        "return z * y", "return z * y  # noqa: QL999").replace("y = self.conv(x)", "y = self.conv(x)  # noqa: QL302, E501")
    path = project / "models" / "block.py"
    path.write_text(source)
    status, out, _ = run(capsys, "models/block.py", "--no-cache", "--extend-select", "QL001", "--fix")
    assert "Found 4 problems (3 fixed, 1 remaining)." in out
    assert path.read_text() == LEGACY.replace("z = x + y", "z = x + y  # noqa: QL301  (legacy)").replace(
        "y = self.conv(x)", "y = self.conv(x)  # noqa: E501")
    assert status == 1  # QL301 on the last line is no longer suppressed


def test_add_noqa_adds_and_merges_directives_then_the_code_lints_clean(project, capsys):
    source = LEGACY.replace("return z * y", "return z * y  # noqa: E501  explained")
    source = source.replace("y = self.conv(x)", "y = self.conv(x)  # a comment")
    path = project / "models" / "block.py"
    path.write_text(source)
    status, out, err = run(capsys, "models", "--add-noqa", "--no-cache")
    assert status == 0 and "added 2 noqa directives" in err  # block.py lines 11 and 12
    text = path.read_text()
    assert "        z = x + y  # noqa: QL301\n" in text
    assert "        return z * y  # noqa: E501, QL301  explained\n" in text
    assert run(capsys, "models", "--no-cache")[0] == 0
    assert run(capsys, "models", "--no-cache", "--extend-select", "QL001")[0] == 0
    assert run(capsys, "models", "--add-noqa", "--no-cache")[2].endswith("added 0 noqa directives\n")


# ----- baseline ----------------------------------------------------------------------
def test_baseline_reports_only_new_findings_and_survives_moved_lines(project, capsys):
    path = project / "models" / "block.py"
    path.write_text(LEGACY)
    status, _, err = run(capsys, "models", "--write-baseline", "qlint-baseline.json", "--no-cache")
    assert status == 0 and "wrote 2 findings" in err
    document = json.loads((project / "qlint-baseline.json").read_text())
    assert {entry["path"] for entry in document["findings"]} == {"models/block.py"}

    assert run(capsys, "models", "--baseline", "qlint-baseline.json", "--no-cache")[:2] == (0, "All checks passed!\n")
    # Lines moved: still known. A new hazard: reported alone.
    path.write_text("# a new header comment\n\n" + LEGACY.replace("return z * y", "w = z - y\n        return z * y"))
    status, out, _ = run(capsys, "models", "--baseline", "qlint-baseline.json", "--no-cache")
    assert status == 1
    assert [line.split(": ")[0] for line in out.splitlines() if line.startswith("models/")] == ["models/block.py:14:13"]
    # From another directory the paths still match (they are relative to the project root).
    (project / "pyproject.toml").write_text("[tool.qlint]\n")
    status, out, _ = run(capsys, str(project / "models" / "clean.py"), "--baseline", str(project / "qlint-baseline.json"))
    assert status == 0


def test_a_broken_baseline_is_a_usage_error(project, capsys):
    (project / "b.json").write_text("[1, 2]")
    status, _, err = run(capsys, "models", "--baseline", "b.json")
    assert status == 2 and "b.json: not a qlint baseline" in err


# ----- output options ----------------------------------------------------------------
def test_quiet_prints_only_findings_and_silent_nothing(project, capsys):
    status, out, err = run(capsys, "models", "-q", "--no-cache")
    assert status == 1 and out.startswith("models/block.py:11:16: QL301") and "Found" not in out
    assert run(capsys, "models", "--silent", "--no-cache") == (1, "", "")
    assert run(capsys, "models/clean.py", "-q", "--no-cache") == (0, "", "")


def test_colour_on_a_terminal_only_and_never_with_no_color(project, monkeypatch):
    env = {k: v for k, v in __import__("os").environ.items() if k not in ("NO_COLOR", "FORCE_COLOR")}
    piped = qlint("models", "--no-cache", cwd=project, env=env)
    assert b"\033[" not in piped.stdout
    forced = qlint("models", "--no-cache", cwd=project, env={**env, "FORCE_COLOR": "1"})
    assert b"\033[" in forced.stdout
    both = qlint("models", "--no-cache", cwd=project, env={**env, "FORCE_COLOR": "1", "NO_COLOR": "1"})
    assert b"\033[" not in both.stdout
    import pty
    import os

    leader, follower = pty.openpty()
    tty = subprocess.run([sys.executable, "-m", "qlint", "models", "--no-cache"], stdout=follower,
                         stderr=subprocess.PIPE, cwd=project, env={**env, "TERM": "xterm"}, timeout=120)
    os.close(follower)
    output = os.read(leader, 65536)
    os.close(leader)
    assert tty.returncode == 1 and b"\033[1m" in output
    no_color = subprocess.run([sys.executable, "-m", "qlint", "models", "--no-cache"], stdout=subprocess.PIPE,
                              cwd=project, env={**env, "NO_COLOR": "1"}, timeout=120)
    assert b"\033[" not in no_color.stdout


def test_full_format_through_the_command(project, capsys):
    status, out, _ = run(capsys, "models", "--output-format", "full", "--no-cache")
    assert status == 1
    assert out.splitlines()[:4] == [
        "models/block.py:11:16: QL301 tensor-operator: " + out.splitlines()[0].split(": ", 2)[2],
        "   |",
        "11 |         return x + y",
        "   |                ^^^^^",
    ]
    assert out.endswith("Found 1 problem (1 error, 0 warnings).\n"
                        "No fixes available with --fix (1 more with --unsafe-fixes).\n")
