"""`qlint report`: imports the user's module from the current directory, runs the flow and
every check, writes the HTML (and JSON) report, exits 0/1 like a check, 2 on usage errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

pytest.importorskip("torch")

from qlint.cli import main  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]

MODELS = '''
import torch
from torch import nn
from torch.ao.quantization import DeQuantStub, QuantStub, fuse_modules, fuse_modules_qat


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.quant, self.dequant = QuantStub(), DeQuantStub()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.bn = nn.BatchNorm2d(4)
        self.relu = nn.ReLU()
        self.fc = nn.Linear(4, 2)

    def forward(self, x):
        x = self.relu(self.bn(self.conv(self.quant(x))))
        return self.dequant(self.fc(x.mean((2, 3))))

    def fuse_model(self, is_qat=False):
        (fuse_modules_qat if is_qat else fuse_modules)(self, [["conv", "bn", "relu"]], inplace=True)


class RawAdd(Net):
    def forward(self, x):
        x = self.relu(self.bn(self.conv(self.quant(x))))
        return self.dequant(self.fc((x + x).mean((2, 3))))


def batches():
    return [torch.rand(2, 3, 6, 6) for _ in range(2)]
'''


def run(tmp_path, *arguments):
    """`python -m qlint report ...` in a subprocess, from ``tmp_path``."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "qlint", "report", *arguments],
        cwd=tmp_path, capture_output=True, text=True, timeout=300, env=env,
    )


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def project(tmp_path):
    (tmp_path / "mymodels.py").write_text(MODELS)
    return tmp_path


@pytest.fixture
def run_here(project, monkeypatch, capsys):
    """`qlint report ...` in this process (torch is loaded once), from ``project``."""
    monkeypatch.chdir(project)
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.delitem(sys.modules, "mymodels", raising=False)

    def invoke(*arguments):
        try:
            code = main(["report", *arguments])
        finally:
            sys.modules.pop("mymodels", None)
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return invoke


@pytest.mark.parametrize("flow", ["ptq", "qat"])
def test_clean_model_reports_and_exits_zero(project, run_here, flow):
    result = run_here("mymodels:Net", "--input", "2,3,6,6", "--flow", flow, "-o", "out.html",
                 "--json", "out.json")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"quant_report: mymodels:Net (Net) (eager {flow}, engine x86): 3 quantized layers")
    assert "PASS assert_parity" in result.stdout and "FAIL" not in result.stdout
    assert (project / "out.html").read_text().startswith("<!DOCTYPE html>")
    data = json.loads((project / "out.json").read_text())
    assert sorted(row["name"] for row in data["rows"]) == ["conv", "fc", "quant"]


def test_failed_check_exits_one_and_calibration_callable(run_here):
    result = run_here("mymodels:RawAdd", "--input", "2,3,6,6", "--calibration", "mymodels:batches",
                 "--max-layers", "1", "-o", "out.html")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "FAIL assert_parity: the converted model crashed" in result.stdout
    assert "calibrated on 2 batches" in result.stdout
    assert "sensitivity swept 1 of 3 layers (max_layers=1)" in result.stdout


@pytest.mark.parametrize(("arguments", "message"), [
    (["nosuchmodule:Net", "--input", "1,3,6,6"], "cannot import 'nosuchmodule'"),
    (["mymodels:Missing", "--input", "1,3,6,6"], "mymodels has no attribute 'Missing'"),
])
def test_usage_errors_exit_two(run_here, arguments, message):
    result = run_here(*arguments)
    assert result.returncode == 2 and message in result.stderr, result.stderr


def test_bad_shape_is_a_usage_error(run_here):
    result = run_here("mymodels:Net", "--input", "1,x")
    assert result.returncode == 2 and "comma-separated sizes" in result.stderr


def test_command_line_entry_point(project):
    """The real `python -m qlint report` from the project directory (a fresh process)."""
    result = run(project, "mymodels:Net", "--input", "2,3,6,6", "--no-sensitivity", "-o", "out.html")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "sensitivity sweep off" in result.stdout and (project / "out.html").exists()
    assert "sensitivity [" not in result.stderr  # no progress bar when stderr is not a terminal


def test_linting_never_imports_torch(tmp_path):
    (tmp_path / "model.py").write_text("import torch\nx = torch.relu\n")
    code = (
        "import sys\nfrom qlint.cli import main\n"
        f"main([{str(tmp_path / 'model.py')!r}, '--exit-zero'])\n"
        "assert 'torch' not in sys.modules, 'qlint imported torch'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert result.returncode == 0, result.stderr


def test_progress_bar_only_on_a_terminal():
    import io

    from qlint.report_cli import _progress_bar

    assert _progress_bar(io.StringIO()) is None

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    stream = Terminal()
    show = _progress_bar(stream)
    show(1, 2, "layer1.0.conv1")
    show(2, 2, "fc")
    text = stream.getvalue()
    assert "\rsensitivity [###############...............] 1/2 layer1.0.conv1" in text
    assert "\rsensitivity [##############################] 2/2 fc" in text and text.endswith("\n")


def test_pt2e_flow_without_torchao_names_the_extra(run_here, monkeypatch):
    monkeypatch.setitem(sys.modules, "torchao.quantization.pt2e", None)  # import raises
    result = run_here("mymodels:Net", "--input", "1,3,6,6", "--flow", "pt2e")
    assert result.returncode == 2, result.stderr
    assert "--flow pt2e: torchao is not installed: pip install 'torch-qlint[torchao]'" in result.stderr
