"""Proof by running, for each fix kind of QL101, QL201, QL202, QL401, QL402 and QL403: the bad
source fails on the installed torch the way the rule says; `qlint --fix --unsafe-fixes` turns it
into source whose model loads the original's state_dict strictly, computes bit-identical float
outputs, and goes through the eager flow (fuse, prepare, calibrate, convert) passing
assert_parity and assert_converted. The helpers are in fixproof.py."""
from __future__ import annotations

import copy
import textwrap

import pytest

torch = pytest.importorskip("torch")

import torch.ao.quantization as tq  # noqa: E402
from fixproof import Proof, assert_same_float, quantize  # noqa: E402
from models import QUANT_WARNINGS  # noqa: E402

from qlint.runtime import assert_fused  # noqa: E402

pytestmark = [*QUANT_WARNINGS]

HEADER = "import torch\nimport torch.nn as nn\nimport torch.nn.functional as F\n\n\n"


def _source(body: str) -> str:
    return HEADER + textwrap.dedent(body).lstrip()


def _inputs(seed: int, batch: int = 2, shape=(3, 8, 8)) -> tuple:
    generator = torch.Generator().manual_seed(seed)
    return (torch.randn(batch, *shape, generator=generator),)


CALIBRATION = [_inputs(seed) for seed in range(4)]


def _randomized(model: torch.nn.Module) -> torch.nn.Module:
    """Non-trivial BatchNorm statistics, so that folding them matters."""
    generator = torch.Generator().manual_seed(7)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.copy_(torch.randn(module.num_features, generator=generator) * 0.1)
            module.running_var.copy_(torch.rand(module.num_features, generator=generator) + 0.5)
    return model


def _net(module) -> torch.nn.Module:
    return _randomized(module.Net())


# ----- QL101: functional ReLU -> nn.ReLU submodule ---------------------------------------
QL101_SOURCE = _source("""
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 8, 3)
            self.bn = nn.BatchNorm2d(8)
            self.conv2 = nn.Conv2d(8, 8, 1)
            self.conv3 = nn.Conv2d(8, 4, 1)

        def forward(self, x):
            x = F.relu(self.bn(self.conv(x)))  # ReLU as a function: not fusable
            out = self.conv2(x)
            out.relu_()
            return torch.relu(self.conv3(out))
    """)
QL101_FUSE = [["conv", "bn", "relu"], ["conv2", "relu_1"], ["conv3", "relu_2"]]


def test_ql101_bad_leaves_the_conv_unfused(tmp_path):
    """The claim: with F.relu there is no ReLU module to fuse with the conv-bn, whose output is
    then quantized over its negative range too (a coarser scale) and requantized by F.relu."""
    proof = Proof.of(QL101_SOURCE, ["QL101"], tmp_path, _net)
    with pytest.raises(AttributeError):
        tq.fuse_modules(copy.deepcopy(proof.original).eval(), [["conv", "bn", "relu"]])
    unfused = quantize(proof.original, CALIBRATION, fuse=[["conv", "bn"]])
    fused = quantize(proof.fixed, CALIBRATION, fuse=QL101_FUSE)
    assert type(unfused.module.conv).__name__ == "Conv2d" and unfused.module.conv.zero_point > 0
    assert fused.module.conv.zero_point == 0 and fused.module.conv.scale < unfused.module.conv.scale


def test_ql101_fix_keeps_the_model_and_makes_it_fusable(tmp_path):
    proof = Proof.of(QL101_SOURCE, ["QL101"], tmp_path, _net)
    assert "self.relu = nn.ReLU()" in proof.fixed_source and "out = self.relu_1(out)" in proof.fixed_source
    assert_same_float(proof.original, proof.fixed, CALIBRATION[0])
    fused = tq.fuse_modules(proof.fixed.eval(), QL101_FUSE)
    assert_fused(fused, CALIBRATION[0], reference=proof.fixed)
    converted = quantize(proof.fixed, CALIBRATION, fuse=QL101_FUSE)
    assert type(converted.module.conv).__name__ == "ConvReLU2d"


# ----- QL201: nn.ReLU(inplace=True) -> nn.ReLU() ------------------------------------------
QL201_SOURCE = _source("""
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)
            self.relu = nn.ReLU(inplace=True)
            self.head = nn.Sequential(nn.Conv2d(4, 4, 1), nn.ReLU(True))

        def forward(self, x):
            return self.head(self.relu(self.conv(x)))
    """)


def test_ql201_fix_keeps_the_model_and_quantizes(tmp_path):
    proof = Proof.of(QL201_SOURCE, ["QL201"], tmp_path, _net)
    assert "inplace" not in proof.fixed_source and "True" not in proof.fixed_source
    assert_same_float(proof.original, proof.fixed, CALIBRATION[0])
    quantize(proof.fixed, CALIBRATION, fuse=[["conv", "relu"], ["head.0", "head.1"]])


# ----- QL202: in-place ops -> out-of-place ------------------------------------------------
QL202_SOURCE = _source("""
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)
            self.conv2 = nn.Conv2d(4, 4, 1)
            self.relu = nn.ReLU()

        def forward(self, x):
            out = self.conv(x)
            out = F.dropout(out, 0.5, self.training, True)
            h = self.conv2(out)
            h.clamp_(-1.0, 1.0)
            return self.relu(h)
    """)


def test_ql202_bad_raises_after_convert(tmp_path):
    """The claim: quantized tensors have no in-place clamp_; the converted model raises (which
    assert_parity reports, with the line)."""
    proof = Proof.of(QL202_SOURCE, ["QL202"], tmp_path, _net)
    with pytest.raises(AssertionError, match=r"crashed .*h\.clamp_\(-1\.0, 1\.0\).*quantized numbers is not handled"):
        quantize(proof.original, CALIBRATION)


def test_ql202_fix_keeps_the_model_and_quantizes(tmp_path):
    proof = Proof.of(QL202_SOURCE, ["QL202"], tmp_path, _net)
    assert "h = h.clamp(-1.0, 1.0)" in proof.fixed_source
    assert "F.dropout(out, 0.5, self.training)" in proof.fixed_source
    assert_same_float(proof.original, proof.fixed, CALIBRATION[0])
    quantize(proof.fixed, CALIBRATION)


# ----- QL401: a module called twice -> one instance per call ------------------------------
QL401_SOURCE = _source("""
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 3, 3, padding=1)
            self.conv2 = nn.Conv2d(3, 3, 3, padding=1)
            self.relu = nn.ReLU()

        def forward(self, x):
            y = self.relu(self.conv1(x))
            return self.relu(self.conv2(y))
    """)


def test_ql401_bad_loses_its_second_relu_to_fusion(tmp_path):
    """The claim: fusing [conv1, relu] makes self.relu an Identity, deleting the second ReLU."""
    proof = Proof.of(QL401_SOURCE, ["QL401"], tmp_path, _net)
    original = proof.original.eval()
    fused = tq.fuse_modules(original, [["conv1", "relu"]])
    with torch.no_grad():
        assert not torch.equal(fused(*CALIBRATION[0]), original(*CALIBRATION[0]))
    with pytest.raises(AssertionError, match="Identity"):
        assert_fused(fused, CALIBRATION[0], reference=original)


def test_ql401_fix_keeps_the_model_and_fuses_safely(tmp_path):
    proof = Proof.of(QL401_SOURCE, ["QL401"], tmp_path, _net)
    assert "self.relu_1 = nn.ReLU()" in proof.fixed_source
    assert_same_float(proof.original, proof.fixed, CALIBRATION[0])
    fixed = proof.fixed.eval()
    with torch.no_grad():  # the group the bad model was fused with now leaves the second ReLU acting
        assert torch.equal(tq.fuse_modules(fixed, [["conv1", "relu"]])(*CALIBRATION[0]), fixed(*CALIBRATION[0]))
    groups = [["conv1", "relu"], ["conv2", "relu_1"]]
    assert_fused(tq.fuse_modules(fixed, groups), CALIBRATION[0], reference=fixed)
    quantize(fixed, CALIBRATION, fuse=groups)


# ----- QL402: one instance bound twice -> a new instance ----------------------------------
QL402_SOURCE = _source("""
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 3, 3, padding=1)
            self.conv2 = nn.Conv2d(3, 3, 3, padding=1)
            self.act1 = nn.Hardswish()
            self.act2 = self.act1

        def forward(self, x):
            return self.act2(self.conv2(self.act1(self.conv1(x))))
    """)


def _prepared(model):
    model = copy.deepcopy(model).eval()
    model.qconfig = tq.get_default_qconfig("x86")
    return tq.prepare(model)


def test_ql402_bad_shares_one_observer_between_two_places(tmp_path):
    proof = Proof.of(QL402_SOURCE, ["QL402"], tmp_path, _net)
    prepared = _prepared(proof.original)
    assert prepared.act1.activation_post_process is prepared.act2.activation_post_process


def test_ql402_fix_keeps_the_model_and_observes_each_place(tmp_path):
    proof = Proof.of(QL402_SOURCE, ["QL402"], tmp_path, _net)
    assert "self.act2 = nn.Hardswish()" in proof.fixed_source
    assert_same_float(proof.original, proof.fixed, CALIBRATION[0])
    prepared = _prepared(proof.fixed)
    assert prepared.act1.activation_post_process is not prepared.act2.activation_post_process
    quantize(proof.fixed, CALIBRATION)


# ----- QL403: a FloatFunctional used for two ops -> one per op ----------------------------
QL403_SOURCE = _source("""
    from torch.ao.nn.quantized import FloatFunctional


    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 3, padding=1)
            self.ff = FloatFunctional()

        def forward(self, x):
            y = self.ff.add(self.conv(x), x)
            return self.ff.mul(y, y)
    """)


def test_ql403_bad_observes_two_ranges_with_one_observer(tmp_path):
    """The claim: the add's output is requantized with the scale of the product's larger range."""
    proof = Proof.of(QL403_SOURCE, ["QL403"], tmp_path, _net)
    converted = quantize(proof.original, CALIBRATION)
    fixed = quantize(proof.fixed, CALIBRATION)
    shared, own = converted.module.ff.scale, fixed.module.ff.scale
    assert shared > 2 * own, (shared, own)


def test_ql403_fix_keeps_the_model_and_quantizes(tmp_path):
    proof = Proof.of(QL403_SOURCE, ["QL403"], tmp_path, _net)
    assert "self.mul = FloatFunctional()" in proof.fixed_source
    assert "return self.mul.mul(y, y)" in proof.fixed_source
    assert_same_float(proof.original, proof.fixed, CALIBRATION[0])
    quantize(proof.fixed, CALIBRATION)


# ----- all fixes of this file at once, composed in one class ------------------------------
COMPOSED_SOURCE = _source("""
    from torch.ao.nn.quantized import FloatFunctional


    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 3, 3, padding=1)
            self.bn1 = nn.BatchNorm2d(3)
            self.conv2 = nn.Conv2d(3, 3, 3, padding=1)
            self.relu = nn.ReLU(inplace=True)
            self.act = self.relu
            self.ff = FloatFunctional()

        def forward(self, x):
            out = F.relu(self.bn1(self.conv1(x)))
            out = self.relu(self.conv2(out))
            y = self.ff.add(out, x)
            y = self.ff.mul(y, y)
            h = self.act(self.conv2(y))
            return self.relu(h)
    """)


def test_the_fixes_compose_and_the_model_quantizes(tmp_path):
    codes = ["QL101", "QL201", "QL202", "QL401", "QL402", "QL403"]
    proof = Proof.of(COMPOSED_SOURCE, codes, tmp_path, _net)
    assert_same_float(proof.original, proof.fixed, CALIBRATION[0])
    quantize(proof.fixed, CALIBRATION, fuse=[["conv1", "bn1", "relu_1"]])
