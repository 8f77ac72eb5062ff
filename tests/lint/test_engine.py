"""The engine: noqa, failures as findings, parallel runs equal to serial ones, no torch."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from qlint import engine
from qlint.config import load_config
from qlint.engine import lint_paths, lint_source
from qlint.registry import RULES

HAZARD = textwrap.dedent("""
    import torch.nn as nn


    class M(nn.Module):
        def forward(self, a, b):
            c = a + b{noqa}
            return c * 2
""")


@pytest.mark.parametrize("noqa, expected", [
    ("", {(7, "QL301"), (8, "QL301")}),
    ("  # noqa", {(8, "QL301")}),
    ("  # noqa: QL301", {(8, "QL301")}),
    ("  # NOQA:QL401, QL301", {(8, "QL301")}),
    ("  # noqa: QL401", {(7, "QL301"), (8, "QL301")}),
])
def test_noqa_suppresses_on_its_line(noqa, expected):
    findings = lint_source(HAZARD.format(noqa=noqa), "m.py")
    assert {(f.line, f.code) for f in findings} == expected


def test_positions_are_one_based_and_span_the_node():
    finding = lint_source(HAZARD.format(noqa=""), "m.py")[0]
    assert (finding.line, finding.column, finding.end_line, finding.end_column) == (7, 13, 7, 18)
    assert finding.message.startswith("`a + b` applies `+`")


def test_unreadable_and_unparsable_files_are_findings_and_the_run_goes_on(tmp_path: Path):
    (tmp_path / "latin.py").write_bytes(b"# -*- coding: utf-8 -*-\nx = '\xff'\n")
    (tmp_path / "broken.py").write_text("def f(:\n    pass\n")
    (tmp_path / "good.py").write_text(HAZARD.format(noqa=""))
    findings = lint_paths(sorted(tmp_path.glob("*.py")), load_config(start=tmp_path), jobs=1)
    by_file = {}
    for f in findings:
        by_file.setdefault(Path(f.path).name, []).append((f.line, f.code))
    assert by_file["broken.py"] == [(1, "QL000")]
    assert by_file["latin.py"] == [(2, "QL000")]  # the line of the byte that is not UTF-8
    assert by_file["good.py"] == [(7, "QL301"), (8, "QL301")]


def test_an_internal_rule_failure_is_a_finding_not_a_crash(monkeypatch):
    def explode(self, model):
        raise RuntimeError("boom")

    monkeypatch.setattr(RULES["QL301"], "check", explode)
    findings = lint_source(HAZARD.format(noqa=""), "m.py")
    assert [(f.code, f.message) for f in findings] == [
        ("QL000", "internal error in QL301: RuntimeError: boom")]


def test_parallel_run_equals_serial_run(tmp_path: Path, monkeypatch):
    examples = Path(__file__).resolve().parents[2] / "examples"
    for i in range(3):  # enough files for worker processes
        for path in examples.glob("*.py"):
            (tmp_path / f"{path.stem}_{i}.py").write_text(path.read_text())
    files = sorted(tmp_path.glob("*.py"))
    assert len(files) >= engine.PARALLEL_MIN_FILES
    config = load_config(start=tmp_path)
    serial = lint_paths(files, config, jobs=1)
    parallel = lint_paths(files, config, jobs=2)
    assert serial and parallel == serial


def test_linting_never_imports_torch(tmp_path: Path):
    """qlint runs where only libcst is installed (pre-commit): torch is made unimportable."""
    (tmp_path / "m.py").write_text(HAZARD.format(noqa=""))
    blocker = tmp_path / "sitecustomize.py"
    blocker.write_text(textwrap.dedent("""
        import sys

        class BlockTorch:
            def find_spec(self, name, path=None, target=None):
                if name == "torch" or name.startswith("torch."):
                    raise ModuleNotFoundError(f"No module named {name!r} (blocked)")
                return None

        sys.meta_path.insert(0, BlockTorch())
    """))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    code = ("import sys; from qlint.cli import main; status = main([sys.argv[1], '--output-format', 'json']);"
            "assert not any(m == 'torch' or m.startswith('torch.') for m in sys.modules), 'torch imported';"
            "sys.exit(status)")
    result = subprocess.run([sys.executable, "-c", code, str(tmp_path / "m.py")],
                            capture_output=True, text=True, env=env, cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert '"code": "QL301"' in result.stdout


def test_lint_paths_output_is_sorted_by_path_and_position(tmp_path: Path):
    for name in ("b.py", "a.py"):
        (tmp_path / name).write_text(HAZARD.format(noqa=""))
    findings = lint_paths([tmp_path / "b.py", tmp_path / "a.py"], load_config(start=tmp_path), jobs=1)
    assert findings == sorted(findings)
    assert Path(findings[0].path).name == "a.py"
