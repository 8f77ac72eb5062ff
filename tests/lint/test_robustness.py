"""No input stops the run: unreadable, undecodable, pathological files are QL000 findings;
a worker that dies or hangs costs only its file; --fix writes all or nothing."""
from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from qlint import engine
from qlint.cli import main
from qlint.config import Budget, load_config
from qlint.engine import fix_paths, lint_paths
from qlint.files import write_atomically
from qlint.registry import RULES

REPO = Path(__file__).resolve().parents[2]
HAZARD = textwrap.dedent("""
    import torch.nn as nn


    class M(nn.Module):
        def forward(self, a, b):
            return a + b
""")
BAD_ENCODINGS = {
    "latin1_bytes.py": b'x = "caf\xe9"\n',
    "misspelled_cookie.py": b"# -*- coding: utf-9 -*-\nx = 1\n",
    "bom_and_latin1_cookie.py": b"\xef\xbb\xbf# -*- coding: latin-1 -*-\nx = 1\n",
    "utf16.py": "x = 1\n".encode("utf-16"),
}


def _write_bad_encodings(folder: Path) -> None:
    for name, data in BAD_ENCODINGS.items():
        (folder / name).write_bytes(data)


def _by_file(findings) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for f in findings:
        found.setdefault(Path(f.path).name, []).append(f.code)
    return found


def test_bad_encodings_are_ql000_and_the_run_goes_on(tmp_path, capsys):
    _write_bad_encodings(tmp_path)
    (tmp_path / "good.py").write_text(HAZARD)
    status = main([str(tmp_path)])
    out, err = capsys.readouterr()
    assert status == 1 and "Traceback" not in err
    for name in BAD_ENCODINGS:
        assert f"{name}:" in out and "QL000 parse-error: cannot read:" in out.split(f"{name}:", 1)[1].splitlines()[0]
    assert "good.py:7:16: QL301" in out


@pytest.mark.parametrize("jobs", [1, 2])
def test_many_files_with_bad_encodings_lint_in_parallel_as_in_serial(tmp_path, jobs):
    for i in range(engine.PARALLEL_MIN_FILES):
        (tmp_path / f"good_{i}.py").write_text(HAZARD)
    _write_bad_encodings(tmp_path)
    files = sorted(tmp_path.glob("*.py"))
    findings = lint_paths(files, load_config(start=tmp_path), jobs=jobs)
    by_file = _by_file(findings)
    assert len(by_file) == len(files)
    assert all(by_file[name] == ["QL000"] for name in BAD_ENCODINGS)
    assert all(by_file[f"good_{i}.py"] == ["QL301"] for i in range(engine.PARALLEL_MIN_FILES))


def test_fix_goes_on_past_a_file_it_cannot_read(tmp_path, capsys):
    _write_bad_encodings(tmp_path)
    (tmp_path / "fixable.py").write_text("import torch.quantization as tq\n")
    status = main([str(tmp_path), "--fix"])
    out, err = capsys.readouterr()
    assert "(1 fixed, " in out and "Traceback" not in err
    assert (tmp_path / "fixable.py").read_text() == "import torch.ao.quantization as tq\n"
    assert status == 1 and out.count("QL000") == len(BAD_ENCODINGS)


def _crash_on(path_part: str, how: str):
    real_load = engine._Unit.load

    def load(self, data=None):
        if path_part in str(self.path):
            if how == "die":
                os._exit(9)
            import time
            if how == "stuck":
                time.sleep(60)
            end = time.monotonic() + 60
            while time.monotonic() < end:  # busy: the limit counts CPU seconds
                pass
        return real_load(self, data)
    return load


@pytest.mark.parametrize("how, message", [
    ("die", "internal error: the worker process linting this file died (exit status 9)"),
    ("hang", "skipped: took more than 0.3 CPU seconds"),
    ("stuck", "skipped: took more than 0.3 CPU seconds"),  # asleep for 10 times the limit
])
def test_a_worker_that_dies_or_hangs_costs_only_its_file(tmp_path, monkeypatch, how, message):
    if engine._start_method() != "fork":
        pytest.skip("the failure is injected by monkeypatching, which only fork's workers inherit")
    for i in range(engine.PARALLEL_MIN_FILES + 4):
        (tmp_path / f"good_{i:02}.py").write_text(HAZARD)
    (tmp_path / "victim.py").write_text(HAZARD)
    monkeypatch.setattr(engine._Unit, "load", _crash_on("victim", how))
    config = load_config(start=tmp_path)
    if how in ("hang", "stuck"):
        config = dataclasses.replace(config, budget=Budget(file_timeout=0.3))
    findings = lint_paths(sorted(tmp_path.glob("*.py")), config, jobs=2)
    by_file = _by_file(findings)
    assert by_file.pop("victim.py") == ["QL000"]
    assert [f.message for f in findings if f.code == "QL000"][0].startswith(message)
    assert by_file == {f"good_{i:02}.py": ["QL301"] for i in range(engine.PARALLEL_MIN_FILES + 4)}


def test_an_internal_error_exits_2_never_1(tmp_path, monkeypatch, capsys):
    (tmp_path / "m.py").write_text(HAZARD)

    def broken(*args, **kwargs):
        raise RuntimeError("a bug in qlint")

    monkeypatch.setattr(engine, "lint_project", broken)
    assert main([str(tmp_path), "--no-cache"]) == 2
    err = capsys.readouterr().err
    assert "RuntimeError: a bug in qlint" in err and "qlint: internal error" in err


@pytest.mark.parametrize("source, message", [
    ("x = y" + "[0]" * 5000 + "\n", "skipped: too deeply nested (deeper than Python's own parser accepts)"),
    ("x = y" + "[0]" * 2000 + "\n", "skipped: too deeply nested (a syntax tree 2004 levels deep; the limit is 400"),
    ("x = " + "f(\n" * 300 + ")" * 300 + "\n", "cannot parse: too many nested parentheses"),
    ("x = " + "f(" * 1000 + ")" * 1000 + "\n", "cannot parse: too many nested parentheses"),
    ("x = " + " + ".join(["a"] * 2000) + "\n", "skipped: too deeply nested (a syntax tree"),
])
def test_pathological_files_are_skipped_before_libcst_parses_them(tmp_path, source, message):
    (tmp_path / "deep.py").write_text(source)
    (tmp_path / "good.py").write_text(HAZARD)
    findings = lint_paths(sorted(tmp_path.glob("*.py")), load_config(start=tmp_path), jobs=1)
    assert [(Path(f.path).name, f.code) for f in findings] == [("deep.py", "QL000"), ("good.py", "QL301")]
    assert findings[0].message.startswith(message)


def test_the_budget_is_configurable(tmp_path, capsys):
    (tmp_path / "pyproject.toml").write_text("[tool.qlint]\nmax-file-bytes = 300\nmax-nesting = 50\n")
    (tmp_path / "big.py").write_text(HAZARD + "#" * 300 + "\n")
    (tmp_path / "deep.py").write_text("x = y" + "[0]" * 60 + "\n")
    status = main([str(tmp_path)])
    out = capsys.readouterr().out
    assert status == 1
    assert "big.py:1:1: QL000 parse-error: skipped: too large (" in out and "the limit is 300," in out
    assert "deep.py:1:1: QL000 parse-error: skipped: too deeply nested (a syntax tree 64 levels deep; " \
           "the limit is 50," in out


@pytest.mark.parametrize("value", ['"big"', "0", "-1", "true"])
def test_a_wrong_budget_is_a_configuration_error(tmp_path, capsys, value):
    (tmp_path / "pyproject.toml").write_text(f"[tool.qlint]\nmax-file-bytes = {value}\n")
    (tmp_path / "m.py").write_text("x = 1\n")
    assert main([str(tmp_path / "m.py")]) == 2
    assert "max-file-bytes: expected a positive integer" in capsys.readouterr().err


def test_a_rule_failing_on_deep_nesting_reports_once_and_the_other_findings_stay(monkeypatch):
    def recurse(self, model):
        raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(RULES["QL101"], "check", recurse)
    monkeypatch.setattr(RULES["QL102"], "check", recurse)
    findings = engine.lint_source(HAZARD, "m.py")
    assert [(f.code, f.message) for f in findings] == [
        ("QL000", "internal error in QL101, QL102: RecursionError: maximum recursion depth exceeded"),
        ("QL301", findings[1].message)]


# ----- --fix writes all or nothing -----------------------------------------------------
LEGACY = "import torch.quantization as tq\n"


def test_write_atomically_keeps_mode_bits_and_leaves_no_temporary_file(tmp_path):
    path = tmp_path / "m.py"
    path.write_bytes(b"old\r\n")
    path.chmod(0o751)
    write_atomically(path, b"new\r\n")
    assert path.read_bytes() == b"new\r\n"
    assert path.stat().st_mode & 0o777 == 0o751
    assert [p.name for p in tmp_path.iterdir()] == ["m.py"]


def test_write_atomically_follows_a_symlink(tmp_path):
    (tmp_path / "real.py").write_bytes(b"old\n")
    (tmp_path / "link.py").symlink_to("real.py")
    write_atomically(tmp_path / "link.py", b"new\n")
    assert (tmp_path / "link.py").is_symlink() and (tmp_path / "real.py").read_bytes() == b"new\n"


def test_fix_keeps_line_endings_and_the_encoding_cookie(tmp_path):
    path = tmp_path / "m.py"
    source = "# -*- coding: latin-1 -*-\r\nimport torch.quantization as tq\r\nname = 'caf\xe9'\r\n"
    path.write_bytes(source.encode("latin-1"))
    assert fix_paths([path], load_config(start=tmp_path)).fixed == {path: {"QL505": 1}}
    assert path.read_bytes() == source.replace("torch.quantization", "torch.ao.quantization").encode("latin-1")


FILL = "".join(f"value_{i} = {i}  # padding so that the file is larger than the write limit\n" for i in range(2000))


def test_a_write_cut_short_by_the_file_size_limit_leaves_the_file_intact(tmp_path):
    """`ulimit -f`: the write fails part-way; the original must be whole, the error reported,
    the other files still fixed, exit status 2."""
    big, small = tmp_path / "big.py", tmp_path / "small.py"
    big.write_text(LEGACY + FILL)
    small.write_text(LEGACY)
    original = big.read_bytes()
    limit = len(original) - 1000  # the fixed file is a few bytes longer than the original
    code = ("import resource, sys; from qlint.cli import main; "
            f"resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit})); sys.exit(main(sys.argv[1:]))")
    result = subprocess.run([sys.executable, "-c", code, "--fix", str(big), str(small)],
                            capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert big.read_bytes() == original
    assert small.read_text() == "import torch.ao.quantization as tq\n"
    assert f"could not write the fixes to {big}: File too large" in result.stderr
    assert not list(tmp_path.glob("*.qlint-tmp")), "no temporary file is left behind"


def test_a_failed_write_is_reported_and_the_other_files_are_fixed(tmp_path, monkeypatch, capsys):
    first, second = tmp_path / "a.py", tmp_path / "b.py"
    first.write_text(LEGACY)
    second.write_text(LEGACY)
    real_fsync = os.fsync
    calls = []

    def failing_fsync(fd):
        calls.append(fd)
        if len(calls) == 1:
            raise OSError(28, "No space left on device")
        return real_fsync(fd)

    monkeypatch.setattr(os, "fsync", failing_fsync)
    assert main([str(first), str(second), "--fix"]) == 2
    err = capsys.readouterr().err
    assert f"could not write the fixes to {first}: No space left on device" in err
    assert first.read_text() == LEGACY and second.read_text() == "import torch.ao.quantization as tq\n"
    assert not list(tmp_path.glob("*.qlint-tmp")), "no temporary file is left behind"


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root writes read-only files")
def test_a_read_only_file_is_reported_and_left_alone(tmp_path, capsys):
    first, second = tmp_path / "a.py", tmp_path / "b.py"
    first.write_text(LEGACY)
    second.write_text(LEGACY)
    first.chmod(0o444)
    assert main([str(first), str(second), "--fix"]) == 2
    assert "the file is read-only" in capsys.readouterr().err
    assert first.read_text() == LEGACY and second.read_text() == "import torch.ao.quantization as tq\n"


def test_a_read_only_file_is_reported_even_as_root(tmp_path, monkeypatch, capsys):
    first, second = tmp_path / "a.py", tmp_path / "b.py"
    first.write_text(LEGACY)
    second.write_text(LEGACY)
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda p, mode, **kw: False if Path(p).name == "a.py" else real_access(p, mode, **kw))
    assert main([str(first), str(second), "--fix"]) == 2
    assert f"could not write the fixes to {first}: the file is read-only" in capsys.readouterr().err
    assert first.read_text() == LEGACY and second.read_text() == "import torch.ao.quantization as tq\n"
