"""Model builders shared by the runtime-check tests (``tests/runtime/``).

Import after ``pytest.importorskip("torch")``.  Everything is tiny, so a full
fuse -> prepare -> calibrate -> convert pass takes milliseconds.

- ``ConvBnReluNet``: quant -> conv-bn-relu -> conv-bn-relu -> dequant, fusion groups in
  ``CONV_BN_RELU_GROUPS``.
- ``SharedReluBlock``: one ``self.relu`` after conv1 and after the residual add (the bug
  once ``[conv1, bn1, relu]`` is fused); ``SeparateReluBlock`` is its clean twin.
- ``example_input(batch, seed)``: a seeded (batch, 3, 6, 6) input for the models here.
- ``randomized_bn(model)``: non-trivial BatchNorm statistics, so folding them matters.
- ``fused``, ``fused_qat``, ``prepared_ptq``, ``prepared_qat``, ``calibrated``,
  ``converted``: the eager flow, each on a copy.
- ``learnable_qconfig()``: a QAT QConfig built on ``_LearnableFakeQuantize``.
- ``quantized_engine(name)``: set ``torch.backends.quantized.engine`` and restore it.
- ``snapshot(model)`` / ``assert_unchanged(model, before)``: prove a check left the
  model exactly as it was (state, parameter identity, flags, training mode, hooks).
- ``QUANT_WARNINGS``: marks silencing torch.ao's deprecation warnings
  (``pytestmark = QUANT_WARNINGS``).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest
import torch
import torch.ao.quantization as tq
from torch import nn
from torch.ao.quantization._learnable_fake_quantize import _LearnableFakeQuantize

QUANT_WARNINGS = [
    pytest.mark.filterwarnings("ignore:torch.ao.quantization is deprecated:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:torch.quantize_per_tensor:UserWarning"),
    pytest.mark.filterwarnings("ignore:Please use quant_min and quant_max:UserWarning"),
]

CONV_BN_RELU_GROUPS = [["conv1", "bn1", "relu1"], ["conv2", "bn2", "relu2"]]
SHARED_RELU_GROUPS = [["conv1", "bn1", "relu"], ["conv2", "bn2"]]
SEPARATE_RELU_GROUPS = [["conv1", "bn1", "relu1"], ["conv2", "bn2"]]


class ConvBnReluNet(nn.Module):
    """quant -> conv1/bn1/relu1 -> conv2/bn2/relu2 -> dequant, 3 -> 4 -> 4 channels."""

    def __init__(self) -> None:
        super().__init__()
        self.quant = tq.QuantStub()
        self.conv1 = nn.Conv2d(3, 4, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(4)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(4, 4, 1)
        self.bn2 = nn.BatchNorm2d(4)
        self.relu2 = nn.ReLU()
        self.dequant = tq.DeQuantStub()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu1(self.bn1(self.conv1(self.quant(x))))
        return self.dequant(self.relu2(self.bn2(self.conv2(x))))


class SharedReluBlock(nn.Module):
    """A residual block that calls one ``self.relu`` after conv1 and after the add."""

    def __init__(self) -> None:
        super().__init__()
        self.quant = tq.QuantStub()
        self.conv1 = nn.Conv2d(3, 3, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(3)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(3, 3, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(3)
        self.skip_add = nn.quantized.FloatFunctional()
        self.dequant = tq.DeQuantStub()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.quant(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.dequant(self.relu(self.skip_add.add(out, x)))


class SeparateReluBlock(nn.Module):
    """``SharedReluBlock``'s clean twin: one ReLU module per use, so fusing relu1 is safe."""

    def __init__(self) -> None:
        super().__init__()
        self.quant = tq.QuantStub()
        self.conv1 = nn.Conv2d(3, 3, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(3)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(3, 3, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(3)
        self.skip_add = nn.quantized.FloatFunctional()
        self.relu2 = nn.ReLU()
        self.dequant = tq.DeQuantStub()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.quant(x)
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.dequant(self.relu2(self.skip_add.add(out, x)))


def example_input(batch: int = 2, seed: int = 0) -> torch.Tensor:
    """A seeded input of shape (batch, 3, 6, 6) for the conv models in this module."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(batch, 3, 6, 6, generator=generator)


def randomized_bn(model: nn.Module, seed: int = 0) -> nn.Module:
    """Give every BatchNorm non-trivial statistics so folding them changes the weights."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, nn.modules.batchnorm._BatchNorm):
                count = module.num_features
                module.running_mean.copy_(torch.rand(count, generator=generator) - 0.5)
                module.running_var.copy_(torch.rand(count, generator=generator) + 0.5)
                module.weight.copy_(torch.rand(count, generator=generator) + 0.5)
                module.bias.copy_(torch.rand(count, generator=generator) - 0.5)
    return model


def fused(model: nn.Module, groups: list[list[str]]) -> nn.Module:
    """An eval-mode copy with ``groups`` fused by ``fuse_modules``."""
    return tq.fuse_modules(copy.deepcopy(model).eval(), groups)


def fused_qat(model: nn.Module, groups: list[list[str]]) -> nn.Module:
    """A train-mode copy with ``groups`` fused by ``fuse_modules_qat``."""
    return tq.fuse_modules_qat(copy.deepcopy(model).train(), groups)


def prepared_ptq(model: nn.Module, qconfig: Any = None) -> nn.Module:
    """An eval copy prepared for PTQ; ``qconfig`` defaults to the current engine's."""
    model = copy.deepcopy(model).eval()
    model.qconfig = qconfig or tq.get_default_qconfig(torch.backends.quantized.engine)
    return tq.prepare(model)


def prepared_qat(model: nn.Module, qconfig: Any = None, *, inplace: bool = False) -> nn.Module:
    """A train-mode model prepared for QAT; ``qconfig`` defaults to the current engine's."""
    model = model if inplace else copy.deepcopy(model)
    model.train()
    model.qconfig = qconfig or tq.get_default_qat_qconfig(torch.backends.quantized.engine)
    return tq.prepare_qat(model, inplace=True)


def calibrated(model: nn.Module, *inputs: torch.Tensor) -> nn.Module:
    """Run ``model`` on each input without gradients (observers record ranges)."""
    with torch.no_grad():
        for batch in inputs:
            model(batch)
    return model


def converted(model: nn.Module, **convert_options: Any) -> nn.Module:
    """An eval-mode converted copy."""
    return tq.convert(copy.deepcopy(model).eval(), **convert_options)


def learnable_qconfig() -> tq.QConfig:
    """A QConfig whose activations and weights use ``_LearnableFakeQuantize``."""
    return tq.QConfig(
        activation=_LearnableFakeQuantize.with_args(
            observer=tq.MovingAverageMinMaxObserver, quant_min=0, quant_max=255
        ),
        weight=_LearnableFakeQuantize.with_args(
            observer=tq.MovingAverageMinMaxObserver,
            quant_min=-128,
            quant_max=127,
            dtype=torch.qint8,
            qscheme=torch.per_tensor_symmetric,
        ),
    )


@contextmanager
def quantized_engine(name: str) -> Iterator[None]:
    """Run the block with ``torch.backends.quantized.engine = name``, then restore it."""
    previous = torch.backends.quantized.engine
    torch.backends.quantized.engine = name
    try:
        yield
    finally:
        torch.backends.quantized.engine = previous


@dataclass(frozen=True)
class Snapshot:
    """What a read-only check must leave as it was."""

    state: dict[str, Any]
    parameters: dict[str, int]
    requires_grad: dict[str, bool]
    modules: dict[str, tuple[type, bool, int, int, int]]


def _cloned(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().clone()
    if isinstance(value, (tuple, list)):
        return type(value)(_cloned(item) for item in value)
    return value


def _same(left: Any, right: Any) -> bool:
    if isinstance(left, torch.Tensor) and isinstance(right, torch.Tensor):
        if left.is_quantized or right.is_quantized:
            return (
                left.is_quantized == right.is_quantized
                and left.qscheme() == right.qscheme()
                and torch.equal(left.int_repr(), right.int_repr())
                and torch.equal(left.dequantize(), right.dequantize())
            )
        return left.dtype == right.dtype and torch.equal(left, right)
    if isinstance(left, (tuple, list)) and isinstance(right, (tuple, list)):
        return len(left) == len(right) and all(map(_same, left, right))
    return type(left) is type(right) and left == right


def snapshot(model: nn.Module) -> Snapshot:
    """Copy everything a check could change: state_dict, parameters, flags, hooks."""
    return Snapshot(
        state={key: _cloned(value) for key, value in model.state_dict().items()},
        parameters={name: id(parameter) for name, parameter in model.named_parameters()},
        requires_grad={
            name: parameter.requires_grad for name, parameter in model.named_parameters()
        },
        modules={
            name: (
                type(module),
                module.training,
                len(module._forward_hooks),
                len(module._forward_pre_hooks),
                len(module._backward_hooks),
            )
            for name, module in model.named_modules()
        },
    )


def assert_unchanged(model: nn.Module, before: Snapshot) -> None:
    """Fail, naming what differs, if ``model`` is not as ``before`` recorded it."""
    after = snapshot(model)
    assert after.modules == before.modules, "module types, training flags or hooks changed"
    assert after.parameters == before.parameters, "parameters were replaced"
    assert after.requires_grad == before.requires_grad, "requires_grad flags changed"
    assert after.state.keys() == before.state.keys(), "state_dict keys changed"
    changed = [key for key in before.state if not _same(before.state[key], after.state[key])]
    assert not changed, f"state_dict entries changed: {changed}"
