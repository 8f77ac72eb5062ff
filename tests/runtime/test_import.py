"""qlint.runtime must import without torch and say how to install it when a check runs."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

WITHOUT_TORCH = """
import sys


class BlockTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)


sys.meta_path.insert(0, BlockTorch())
import qlint.runtime as runtime

assert not any(name == "torch" or name.startswith("torch.") for name in sys.modules)
for check in (runtime.assert_calibrated, runtime.assert_converted, runtime.quant_state):
    try:
        check(object())
    except ModuleNotFoundError as error:
        print(check.__name__, "->", error)
"""


def test_runtime_imports_without_torch_and_names_the_extra():
    result = subprocess.run(
        [sys.executable, "-c", WITHOUT_TORCH], capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert len(lines) == 3, result.stdout
    assert all(
        line.endswith("torch-qlint's runtime checks need torch: pip install 'torch-qlint[torch]'")
        for line in lines
    ), result.stdout


WITHOUT_TORCHAO = """
import sys


class BlockTorchao:
    def find_spec(self, name, path=None, target=None):
        if name == "torchao" or name.startswith("torchao."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)


sys.meta_path.insert(0, BlockTorchao())
import torch
from torch import nn
import qlint.runtime as runtime
from qlint.runtime._torch import require_torchao_pt2e

model = torch.ao.quantization.prepare(nn.Sequential(nn.Linear(2, 2)).eval())
runtime.quant_state(model)  # torch.ao models need no torchao
try:
    require_torchao_pt2e()
except ModuleNotFoundError as error:
    print(error)
assert not any(name.startswith("torchao") for name in sys.modules)
"""


def test_torchao_is_optional_and_its_absence_names_the_extra():
    result = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", WITHOUT_TORCHAO],
        capture_output=True, text=True, cwd=ROOT, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("pip install 'torch-qlint[torchao]'"), result.stdout
