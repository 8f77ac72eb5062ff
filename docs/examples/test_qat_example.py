"""A complete quantization-aware-training test file: copy it next to your model and adapt.

Run it with `python -m pytest docs/examples/test_qat_example.py` (torch-qlint installed, torch
2.13); the suite runs it too (tests/test_docs.py). Every name is defined or imported here.
"""
from __future__ import annotations

import copy
import warnings

import pytest

torch = pytest.importorskip("torch")

from torch import nn  # noqa: E402
from torch.ao.nn.quantized import FloatFunctional  # noqa: E402
from torch.ao.quantization import (  # noqa: E402
    DeQuantStub,
    QuantStub,
    convert,
    fuse_modules_qat,
    get_default_qat_qconfig,
    prepare_qat,
)

from pytest_qlint import (  # noqa: E402
    assert_calibrated,
    assert_converted,
    assert_fused,
    assert_qparams_in_optimizer,
    assert_quant_state,
)

# torch 2.13 deprecates torch.ao.quantization's entry points (docs/torch-ao-deprecation.md);
# the eager flow still works, so keep its warning out of the test output.
pytestmark = pytest.mark.filterwarnings("ignore:torch.ao.quantization is deprecated:DeprecationWarning")


class Block(nn.Module):
    """conv-bn-relu twice with a residual add: each ReLU its own module, the add a
    FloatFunctional, so that fusion and convert see everything."""

    def __init__(self, channels: int = 8):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.relu2 = nn.ReLU()
        self.skip_add = FloatFunctional()

    def forward(self, x):
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu2(self.skip_add.add(out, x))


class TinyNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.quant = QuantStub()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.stem_relu = nn.ReLU()
        self.block = Block(8)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, 4)
        self.dequant = DeQuantStub()

    def forward(self, x):
        x = self.stem_relu(self.stem(self.quant(x)))
        x = self.pool(self.block(x))
        return self.dequant(self.fc(torch.flatten(x, 1)))

    def fuse_model(self) -> None:
        fuse_modules_qat(self, [["stem", "stem_relu"]], inplace=True)
        fuse_modules_qat(self.block, [["conv1", "bn1", "relu1"], ["conv2", "bn2"]], inplace=True)


def _batches(count: int = 4, seed: int = 0):
    generator = torch.Generator().manual_seed(seed)
    return [(torch.randn(4, 3, 8, 8, generator=generator), torch.randint(0, 4, (4,), generator=generator))
            for _ in range(count)]


def prepare_for_qat(engine: str) -> nn.Module:
    torch.manual_seed(0)
    model = TinyNet().train()
    model.fuse_model()
    model.qconfig = get_default_qat_qconfig(engine)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # observers' reduce_range notice
        return prepare_qat(model)


def train(model: nn.Module, optimizer: torch.optim.Optimizer, steps: int = 4) -> None:
    loss_fn = nn.CrossEntropyLoss()
    model.train()
    for x, y in _batches(steps):
        optimizer.zero_grad()
        loss_fn(model(x), y).backward()
        optimizer.step()


@pytest.fixture
def qat_model(quant_engine):
    """A fused, prepared and briefly trained QAT model, on each quantized engine."""
    model = prepare_for_qat(quant_engine)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)  # built after prepare_qat
    train(model, optimizer)
    return model, optimizer


def test_fusion_left_nothing_unfused(quant_engine):
    model = prepare_for_qat(quant_engine)
    assert_fused(model, torch.randn(2, 3, 8, 8))


def test_the_optimizer_holds_every_trainable_parameter(qat_model):
    model, optimizer = qat_model
    assert_qparams_in_optimizer(model, optimizer)


def test_training_observed_and_fake_quantized(qat_model):
    model, _ = qat_model
    assert_quant_state(model, observers=True, fake_quant=True)
    assert_calibrated(model)


def test_frozen_observers_for_the_last_epochs(qat_model):
    model, _ = qat_model
    model.apply(torch.ao.quantization.disable_observer)
    assert_quant_state(model, observers=False, fake_quant=True)


def test_converts_to_int8_and_matches_fake_quant(qat_model, qparity):
    model, _ = qat_model
    model.eval()
    example = torch.randn(2, 3, 8, 8)
    qparity(model, example, max_outlier_share=0.05)
    converted = convert(copy.deepcopy(model))
    assert_converted(converted)
    assert converted(example).shape == (2, 4)
