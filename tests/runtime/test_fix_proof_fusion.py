"""Proof by running for the QL503 fix (fuse groups and generated fuse_model methods) and the
stub fixes (QL701: a QuantStub on a forward input; QL704: a DeQuantStub at the exit, an unused
QuantStub applied at the entry).

For each case: `--fix --unsafe-fixes` rewrites the source (a second run changes nothing); the
original and the fixed source are imported as modules, the *same* state_dict is loaded into both
with `strict=True`, and their float outputs are bit-identical (`torch.equal`) in eval mode. The
fixed model then goes through its own fuse_model, qconfig, prepare, calibrate and convert, runs,
and passes `assert_fused`, `assert_converted` and `assert_parity`.
"""
from __future__ import annotations

import copy
import inspect
import textwrap
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
import torch.ao.quantization as tq  # noqa: E402
from fixproof import import_source, remaining_errors  # noqa: E402
from models import QUANT_WARNINGS  # noqa: E402

from qlint.engine import lint_text  # noqa: E402
from qlint.registry import all_rules  # noqa: E402
from qlint.runtime import assert_converted, assert_fused, assert_parity  # noqa: E402

pytestmark = [*QUANT_WARNINGS,
              pytest.mark.filterwarnings("ignore:must run observer before calling calculate_qparams")]

CODES = frozenset(code for code, rule in all_rules().items() if not rule.opt_in)

HEADER = """\
import torch
import torch.nn as nn
from torch.ao.quantization import DeQuantStub, QuantStub, fuse_modules


"""

# A model that fuses its stem but leaves its head and its blocks unfused; the blocks run a
# Conv-BN-ReLU and a Conv-BN inside an nn.Sequential.
CHILDREN = HEADER + """\
class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(8, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.relu = nn.ReLU()
        self.proj = nn.Sequential(nn.Conv2d(8, 8, 1), nn.BatchNorm2d(8))

    def forward(self, x):
        return self.proj(self.relu(self.bn(self.conv(x))))


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.quant = QuantStub()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.stem_relu = nn.ReLU()
        self.blocks = nn.Sequential(Block(), Block())
        self.fc = nn.Linear(8, 4)
        self.fc_relu = nn.ReLU()
        self.dequant = DeQuantStub()

    def forward(self, x):
        x = self.blocks(self.stem_relu(self.stem(self.quant(x))))
        return self.dequant(self.fc_relu(self.fc(x.mean((2, 3)))))

    def fuse_model(self):
        fuse_modules(self, [["stem", "stem_relu"]], inplace=True)  # the stem only
"""

CHILDREN_FIXED = CHILDREN.replace(
    "from torch.ao.quantization import DeQuantStub, QuantStub, fuse_modules\n",
    "from torch.ao.quantization import DeQuantStub, QuantStub, fuse_modules\n"
    "from torch.ao.quantization import fuse_modules_qat\n").replace(
    "        return self.proj(self.relu(self.bn(self.conv(x))))\n",
    "        return self.proj(self.relu(self.bn(self.conv(x))))\n\n"
    "    def fuse_model(self, is_qat=False):\n"
    "        fuse = fuse_modules_qat if is_qat else fuse_modules\n"
    "        fuse(self, [[\"conv\", \"bn\", \"relu\"], [\"proj.0\", \"proj.1\"]], inplace=True)\n").replace(
    '        fuse_modules(self, [["stem", "stem_relu"]], inplace=True)  # the stem only\n',
    '        fuse_modules(self, [["stem", "stem_relu"], ["fc", "fc_relu"]], inplace=True)  # the stem only\n'
    "        for m in self.modules():\n"
    "            if type(m) is Block:\n"
    "                m.fuse_model()\n")

# One flat group, fused for QAT or not; blocks in a ModuleList built by a comprehension.
QAT_METHOD = """\
import torch
from torch import nn
import torch.ao.quantization as tq


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(8, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)

    def forward(self, x):
        return self.bn(self.conv(x))


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.quant = tq.QuantStub()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.bn = nn.BatchNorm2d(8)
        self.relu = nn.ReLU()
        self.blocks = nn.ModuleList([Block() for _ in range(2)])
        self.dequant = tq.DeQuantStub()

    def forward(self, x):
        x = self.relu(self.bn(self.conv(self.quant(x))))
        for block in self.blocks:
            x = block(x)
        return self.dequant(x)

    def fuse_model(self, is_qat=False):
        fuse = tq.fuse_modules_qat if is_qat else tq.fuse_modules
        fuse(self, ["conv", "bn", "relu"], inplace=True)
"""

QAT_METHOD_FIXED = QAT_METHOD.replace(
    "        return self.bn(self.conv(x))\n",
    "        return self.bn(self.conv(x))\n\n"
    "    def fuse_model(self, is_qat=False):\n"
    "        fuse = tq.fuse_modules_qat if is_qat else tq.fuse_modules\n"
    "        fuse(self, [[\"conv\", \"bn\"]], inplace=True)\n").replace(
    '        fuse(self, ["conv", "bn", "relu"], inplace=True)\n',
    '        fuse(self, ["conv", "bn", "relu"], inplace=True)\n'
    "        for m in self.modules():\n"
    "            if type(m) is Block:\n"
    "                m.fuse_model(is_qat)\n")

# QL704: quantizes and never dequantizes; returns a tuple of two quantized tensors.
NO_DEQUANT = HEADER + """\
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.quant = QuantStub()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.head = nn.Conv2d(8, 2, 1)
        self.aux = nn.Conv2d(8, 2, 1)

    def forward(self, x):
        y = self.conv(self.quant(x))
        return self.head(y), self.aux(y)
"""
NO_DEQUANT_FIXED = NO_DEQUANT.replace(
    "        self.aux = nn.Conv2d(8, 2, 1)\n",
    "        self.aux = nn.Conv2d(8, 2, 1)\n        self.dequant = DeQuantStub()\n").replace(
    "return self.head(y), self.aux(y)", "return self.dequant(self.head(y)), self.dequant(self.aux(y))")

# QL701: a second input never quantized.
SECOND_INPUT = HEADER + """\
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.quant = QuantStub()
        self.image_conv = nn.Conv2d(3, 8, 3, padding=1)
        self.depth_conv = nn.Conv2d(3, 8, 3, padding=1)
        self.dequant = DeQuantStub()

    def forward(self, image, depth):
        image = self.image_conv(self.quant(image))
        depth = self.depth_conv(depth)
        return self.dequant(image), self.dequant(depth)
"""
SECOND_INPUT_FIXED = SECOND_INPUT.replace(
    "        self.quant = QuantStub()\n",
    "        self.quant = QuantStub()\n        self.quant_depth = QuantStub()\n").replace(
    "depth = self.depth_conv(depth)", "depth = self.depth_conv(self.quant_depth(depth))")

# QL704: a QuantStub built and never called.
UNUSED_QUANT = HEADER + """\
class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.quant = QuantStub()
        self.conv = nn.Conv2d(3, 8, 3, padding=1)
        self.relu = nn.ReLU()
        self.dequant = DeQuantStub()

    def forward(self, x):
        x = self.relu(self.conv(x))  # the stub was forgotten here
        return self.dequant(x)

    def fuse_model(self):
        fuse_modules(self, [["conv", "relu"]], inplace=True)
"""
UNUSED_QUANT_FIXED = UNUSED_QUANT.replace("self.relu(self.conv(x))", "self.relu(self.conv(self.quant(x)))")

# Fixes of several rules composed: a ReLU reused (QL401) and a functional ReLU (QL101) in a
# block the model does not fuse (QL503), and no DeQuantStub (QL704).
COMPOSED = HEADER.replace("import torch.nn as nn\n", "import torch.nn as nn\nimport torch.nn.functional as F\n") + """\
class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv1 = nn.Conv2d(8, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(8)
        self.relu = nn.ReLU()

    def forward(self, x):
        y = self.relu(self.bn1(self.conv1(x)))
        y = self.relu(self.bn2(self.conv2(y)))  # one ReLU used twice
        return F.relu(y)


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.quant = QuantStub()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.stem_bn = nn.BatchNorm2d(8)
        self.layer = nn.Sequential(Block(), Block())

    def forward(self, x):
        return self.layer(self.stem_bn(self.stem(self.quant(x))))

    def fuse_model(self):
        fuse_modules(self, [["stem", "stem_bn"]], inplace=True)
"""

CASES = {
    "composed": (COMPOSED, None, {"QL101", "QL401", "QL503", "QL704"}),
    "children": (CHILDREN, CHILDREN_FIXED, {"QL503"}),
    "qat-method": (QAT_METHOD, QAT_METHOD_FIXED, {"QL503"}),
    "no-dequant": (NO_DEQUANT, NO_DEQUANT_FIXED, {"QL704"}),
    "second-input": (SECOND_INPUT, SECOND_INPUT_FIXED, {"QL701"}),
    "unused-quant": (UNUSED_QUANT, UNUSED_QUANT_FIXED, {"QL704"}),
}


def _fixed(source: str, path: Path) -> tuple[list, str]:
    linted = lint_text(source.encode(), path, CODES, fix=True, unsafe=True)
    findings, data = linted.findings, linted.source
    return findings, data.decode()


def _import(path: Path, source: str):
    return import_source(source, path.parent, path.stem)


def _inputs(model, seed: int):
    generator = torch.Generator().manual_seed(seed)
    count = len(inspect.signature(model.forward).parameters)
    shapes = getattr(model, "input_shape", (2, 3, 8, 8))
    inputs = tuple(torch.randn(*shapes, generator=generator) for _ in range(count))
    return inputs[0] if count == 1 else inputs


def _run(model, inputs):
    return model(*inputs) if isinstance(inputs, tuple) else model(inputs)


def _outputs(value) -> list:
    return list(value) if isinstance(value, (tuple, list)) else [value]


def _randomized(model):
    """Non-trivial BatchNorm statistics, so that folding them is tested."""
    generator = torch.Generator().manual_seed(0)
    for module in model.modules():
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            module.running_mean.copy_(torch.randn(module.num_features, generator=generator) * 0.1)
            module.running_var.copy_(torch.rand(module.num_features, generator=generator) + 0.5)
    return model


def prove(tmp_path: Path, name: str, original: str, cls: str = "Net", expected: str | None = None,
          codes: set | None = None):
    findings_before = lint_text(original.encode(), tmp_path / "before.py", CODES).findings
    if codes:
        assert codes <= {f.code for f in findings_before}, findings_before
    findings, fixed = _fixed(original, tmp_path / "fixed.py")
    if expected is not None:
        assert fixed == expected
    assert fixed != original
    assert not [f for f in findings if codes and f.code in codes], findings
    assert not remaining_errors(fixed)
    assert _fixed(fixed, tmp_path / "again.py")[1] == fixed, "a second --fix changes nothing"

    module_name = name.replace("-", "_")
    torch.manual_seed(0)  # the fixed model gets the original's state_dict below
    before = _randomized(getattr(_import(tmp_path / f"original_{module_name}.py", original), cls)()).eval()
    after = getattr(_import(tmp_path / f"fixed_{module_name}.py", fixed), cls)().eval()
    after.load_state_dict(before.state_dict(), strict=True)
    for seed in range(3):
        x = _inputs(before, seed)
        for a, b in zip(_outputs(_run(before, x)), _outputs(_run(after, x)), strict=True):
            assert torch.equal(a, b)

    model = copy.deepcopy(after).eval()
    if hasattr(model, "fuse_model"):
        model.fuse_model()
    assert_fused(model, _inputs(model, 0), reference=after)
    model.qconfig = tq.get_default_qconfig(torch.backends.quantized.engine)
    prepared = tq.prepare(model)
    for seed in range(8):
        _run(prepared, _inputs(model, seed))
    converted = tq.convert(copy.deepcopy(prepared))
    for out in _outputs(_run(converted, _inputs(model, 0))):
        assert not out.is_quantized  # dequantized at the exit
    assert_converted(converted)
    assert_parity(prepared, _inputs(model, 9))
    return fixed


@pytest.mark.parametrize("name", sorted(CASES))
def test_fix_keeps_float_outputs_and_makes_the_model_fuse_and_quantize(tmp_path, name):
    original, expected, codes = CASES[name]
    prove(tmp_path, name, original, expected=expected, codes=codes)


def test_generated_fuse_model_fuses_for_qat_in_train_mode(tmp_path):
    """The generated method passes is_qat on: fuse_modules_qat keeps BN trainable (ConvBn2d)."""
    fixed = _import(tmp_path / "qat_fixed.py", _fixed(QAT_METHOD, tmp_path / "fixed.py")[1])
    model = fixed.Net().train()
    model.fuse_model(is_qat=True)
    from torch.ao.nn.intrinsic import ConvBn2d, ConvBnReLU2d

    assert isinstance(model.conv, ConvBnReLU2d)
    assert all(isinstance(block.conv, ConvBn2d) for block in model.blocks)
    model.qconfig = tq.get_default_qat_qconfig(torch.backends.quantized.engine)
    prepared = tq.prepare_qat(model)
    prepared(_inputs(prepared, 0)).sum().backward()


def test_unfixed_child_runs_fail_assert_fused(tmp_path):
    """What QL503 reports: without the fix, the model's own fuse_model leaves the runs unfused."""
    model = _randomized(_import(tmp_path / "children.py", CHILDREN).Net()).eval()
    model.fuse_model()
    with pytest.raises(AssertionError, match="conv"):
        assert_fused(model, _inputs(model, 0))


def test_quantized_returns_fail_without_the_dequant_stub(tmp_path):
    """What QL704 reports: the converted model returns quantized tensors."""
    model = _import(tmp_path / "no_dequant.py", NO_DEQUANT).Net().eval()
    model.qconfig = tq.get_default_qconfig(torch.backends.quantized.engine)
    prepared = tq.prepare(model)
    prepared(_inputs(model, 0))
    assert all(out.is_quantized for out in tq.convert(prepared)(_inputs(model, 0)))


def test_torch_normalization_test_model(tmp_path):
    """A float model of torch's own test suite that quantizes and never dequantizes."""
    common = pytest.importorskip("torch.testing._internal.common_quantization")
    source = "import torch\n\n\n" + textwrap.dedent(inspect.getsource(common.NormalizationTestModel))
    source += "\n    input_shape = (4, 5)\n"
    fixed = prove(tmp_path, "normalization", source, cls="NormalizationTestModel", codes={"QL704"})
    assert "from torch.ao.quantization import DeQuantStub" in fixed
    assert "return self.dequant(x)" in fixed
