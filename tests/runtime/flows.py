"""Small models taken through every quantization flow, for the runtime-check tests.

Import after ``pytest.importorskip("torch")``; PT2E builders need torchao (tests import
``torchao`` through ``require_torchao()``, which skips with the reason when it is absent).

- ``EagerNet``: quant -> conv1/bn1/relu1 -> conv2/bn2 + identity (FloatFunctional) -> relu2
  -> pool -> fc -> dequant; ``PlainNet``: the same computation without stubs, for FX/PT2E.
- ``prepared(flow, ...)``: the clean model of a flow, prepared and calibrated (PTQ) or
  trained a few steps (QAT); ``FLOWS`` names them.  ``dynamic_model()``: an LSTM model
  quantized with ``quantize_dynamic({LSTM, Linear})``.
- ``x86_quantizer(is_qat)``: torchao's X86InductorQuantizer with its default config.
"""

from __future__ import annotations

import copy
import functools
from typing import Any

import pytest
import torch
import torch.ao.quantization as tq
from torch import nn
from models import QUANT_WARNINGS, randomized_bn
from torch.ao.nn.quantized import FloatFunctional

STATIC_FLOWS = ["eager-ptq", "eager-qat", "fx-ptq", "fx-qat", "pt2e-ptq", "pt2e-qat"]
FLOWS = [*STATIC_FLOWS, "dynamic"]
SHAPE = (4, 3, 8, 8)
EAGER_GROUPS = [["conv1", "bn1", "relu1"], ["conv2", "bn2"]]
TORCHAO_REASON = (
    "torchao is not installed: the PT2E checks need it (pip install 'torch-qlint[torchao]')"
)
FLOW_WARNINGS = [
    *QUANT_WARNINGS,
    pytest.mark.filterwarnings("ignore:must run observer before calling calculate_qparams"),
    pytest.mark.filterwarnings("ignore:.*Enum subclass:DeprecationWarning"),
]


def require_torchao():
    """``torchao.quantization.pt2e``, or skip the test saying what to install."""
    try:
        import torchao.quantization.pt2e as pt2e
        import torchao.quantization.pt2e.quantize_pt2e  # noqa: F401
    except ModuleNotFoundError as error:
        if not (error.name or "").startswith("torchao"):
            raise
        pytest.skip(TORCHAO_REASON)
    return pt2e


def batch(seed: int = 0, shape=SHAPE) -> torch.Tensor:
    return torch.randn(shape, generator=torch.Generator().manual_seed(seed))


class EagerNet(nn.Module):
    """A residual conv net ready for eager quantization (stubs, FloatFunctional)."""

    def __init__(self) -> None:
        super().__init__()
        self.quant = tq.QuantStub()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(8)
        self.skip_add = FloatFunctional()
        self.relu2 = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, 5)
        self.dequant = tq.DeQuantStub()

    def forward(self, x):
        x = self.relu1(self.bn1(self.conv1(self.quant(x))))
        x = self.relu2(self.skip_add.add(self.bn2(self.conv2(x)), x))
        return self.dequant(self.fc(torch.flatten(self.pool(x), 1)))


class PlainNet(nn.Module):
    """``EagerNet``'s computation as a float user would write it (FX, PT2E)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(8)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(8)
        self.relu2 = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, 5)

    def forward(self, x):
        x = self.relu1(self.bn1(self.conv1(x)))
        x = self.relu2(self.bn2(self.conv2(x)) + x)
        return self.fc(torch.flatten(self.pool(x), 1))


def train(model: nn.Module, steps: int = 3, optimizer=None) -> nn.Module:
    """A few SGD steps on random data (QAT)."""
    optimizer = optimizer or torch.optim.SGD(model.parameters(), lr=0.01)
    for step in range(steps):
        optimizer.zero_grad()
        model(batch(step)).pow(2).mean().backward()
        optimizer.step()
    return model


def calibrate(model: nn.Module, *batches: torch.Tensor) -> nn.Module:
    with torch.no_grad():
        for tensor in batches or (batch(0), batch(1), batch(2)):
            model(tensor)
    return model


def x86_quantizer(is_qat: bool = False):
    require_torchao()
    from torchao.quantization.pt2e.quantizer.x86_inductor_quantizer import (
        X86InductorQuantizer,
        get_default_x86_inductor_quantization_config,
    )

    return X86InductorQuantizer().set_global(get_default_x86_inductor_quantization_config(is_qat=is_qat))


def exported(model: nn.Module, example: torch.Tensor | None = None) -> nn.Module:
    return torch.export.export(model, (batch() if example is None else example,)).module()


def prepare_eager(model: nn.Module, qat: bool, qconfig=None, fuse: bool = True) -> nn.Module:
    engine = torch.backends.quantized.engine
    model = copy.deepcopy(model)
    if qat:
        model.train()
        if fuse:
            model = tq.fuse_modules_qat(model, EAGER_GROUPS)
        model.qconfig = qconfig or tq.get_default_qat_qconfig(engine)
        return tq.prepare_qat(model)
    model.eval()
    if fuse:
        model = tq.fuse_modules(model, EAGER_GROUPS)
    model.qconfig = qconfig or tq.get_default_qconfig(engine)
    return tq.prepare(model)


def prepare_fx_flow(model: nn.Module, qat: bool, qconfig_mapping=None) -> nn.Module:
    from torch.ao.quantization.quantize_fx import prepare_fx, prepare_qat_fx

    engine = torch.backends.quantized.engine
    model = copy.deepcopy(model)
    if qat:
        mapping = qconfig_mapping or tq.get_default_qat_qconfig_mapping(engine)
        return prepare_qat_fx(model.train(), mapping, (batch(),))
    mapping = qconfig_mapping or tq.get_default_qconfig_mapping(engine)
    return prepare_fx(model.eval(), mapping, (batch(),))


def prepare_pt2e_flow(model: nn.Module, qat: bool, quantizer=None) -> nn.Module:
    pt2e = require_torchao()
    from torchao.quantization.pt2e.quantize_pt2e import prepare_pt2e, prepare_qat_pt2e

    model = copy.deepcopy(model)
    model = model.train() if qat else model.eval()
    graph = exported(model)
    quantizer = quantizer or x86_quantizer(is_qat=qat)
    del pt2e
    return (prepare_qat_pt2e if qat else prepare_pt2e)(graph, quantizer)


def unprepared(flow: str, model_class: type | None = None) -> nn.Module:
    """The flow's prepared model before any calibration or training.

    PT2E QAT uses ``InputNormNet`` (a BatchNorm on the input too): convert_pt2e exports 96
    pattern graphs whenever a BatchNorm is left (about 15 s here), so the suite converts
    that model once (``converted``) and reuses it.
    """
    torch.manual_seed(0)
    kind, stage = flow.split("-")
    qat = stage == "qat"
    if kind == "eager":
        return prepare_eager(randomized_bn((model_class or EagerNet)()), qat)
    if kind == "fx":
        return prepare_fx_flow(randomized_bn((model_class or PlainNet)()), qat)
    default = InputNormNet if qat else PlainNet
    return prepare_pt2e_flow(randomized_bn((model_class or default)()), qat)


@functools.cache
def _prepared(flow: str, engine: str) -> nn.Module:
    model = unprepared(flow)
    if flow.endswith("qat"):
        return train(model)  # PT2E: left in train mode, as training leaves it
    return calibrate(model)


def prepared(flow: str) -> nn.Module:
    """A copy of the flow's clean model, prepared and calibrated (PTQ) or trained (QAT)."""
    return copy.deepcopy(_prepared(flow, torch.backends.quantized.engine))


@functools.cache
def _converted(flow: str, engine: str) -> nn.Module:
    return convert(_prepared(flow, engine), flow)


def converted(flow: str) -> nn.Module:
    """A copy of the flow's clean model converted."""
    return copy.deepcopy(_converted(flow, torch.backends.quantized.engine))


def convert(model: nn.Module, flow: str) -> nn.Module:
    """The flow's convert, on a copy."""
    model = copy.deepcopy(model)
    if flow.startswith("eager"):
        return tq.convert(model.eval())
    if flow.startswith("fx"):
        from torch.ao.quantization.quantize_fx import convert_fx

        return convert_fx(model)
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e

    require_torchao()
    return convert_pt2e(model)


class RecurrentNet(nn.Module):
    """Embedding -> LSTM -> LayerNorm -> Linear, the shape dynamic quantization is made for."""

    def __init__(self) -> None:
        super().__init__()
        self.embedding = nn.Embedding(50, 16)
        self.lstm = nn.LSTM(16, 16, batch_first=True)
        self.norm = nn.LayerNorm(16)
        self.fc = nn.Linear(16, 8)

    def forward(self, tokens, extra=None):
        x, _ = self.lstm(self.embedding(tokens))
        x = self.norm(x)
        if extra is not None:
            x = x + extra
        return self.fc(x)


def tokens(seed: int = 0) -> torch.Tensor:
    return torch.randint(0, 50, (4, 6), generator=torch.Generator().manual_seed(seed))


def dynamic_model(types: Any = (nn.LSTM, nn.Linear), model: nn.Module | None = None) -> nn.Module:
    torch.manual_seed(0)
    model = (model or RecurrentNet()).eval()
    return tq.quantize_dynamic(model, set(types), dtype=torch.qint8)


# -- models with a planted bug ----------------------------------------------------------


class EvalOnlyRefine(EagerNet):
    """A refinement conv that runs only in eval mode: QAT training never calibrates it."""

    def __init__(self) -> None:
        super().__init__()
        self.refine = nn.Conv2d(8, 8, 1)

    def forward(self, x):
        x = self.relu1(self.bn1(self.conv1(self.quant(x))))
        if not self.training:
            x = self.refine(x)
        x = self.relu2(self.skip_add.add(self.bn2(self.conv2(x)), x))
        return self.dequant(self.fc(torch.flatten(self.pool(x), 1)))


class StdConv2d(nn.Conv2d):
    """A Conv2d subclass (timm's weight-standardized conv is one): convert looks types up
    exactly and never swaps it."""


class LayerScale(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.full((1, channels, 1, 1), 0.5))

    def forward(self, x):
        return x * self.gamma


class LayerScaleNet(EagerNet):
    """A float parameter multiplied into a quantized activation (ConvNeXt's layer scale)."""

    def __init__(self) -> None:
        super().__init__()
        self.layer_scale = LayerScale(8)

    def forward(self, x):
        x = self.relu1(self.bn1(self.conv1(self.quant(x))))
        x = self.relu2(self.skip_add.add(self.layer_scale(self.bn2(self.conv2(x))), x))
        return self.dequant(self.fc(torch.flatten(self.pool(x), 1)))


class CatNet(nn.Module):
    """torch.cat of a small-range and a large-range branch: the converted cat requantizes
    the second to the first one's scale and clips it."""

    def __init__(self) -> None:
        super().__init__()
        self.quant = tq.QuantStub()
        self.small = nn.Conv2d(3, 4, 3)
        self.large = nn.Conv2d(3, 4, 3)
        self.head = nn.Conv2d(8, 4, 1)
        self.dequant = tq.DeQuantStub()
        with torch.no_grad():
            self.large.weight.mul_(10)

    def forward(self, x):
        x = self.quant(x)
        return self.dequant(self.head(torch.cat([self.small(x), self.large(x)], 1)))


class RawAddNet(nn.Module):
    """A raw ``+`` between two quantized activations: the converted model crashes."""

    def __init__(self) -> None:
        super().__init__()
        self.quant = tq.QuantStub()
        self.left = nn.Conv2d(3, 4, 3)
        self.right = nn.Conv2d(3, 4, 3)
        self.dequant = tq.DeQuantStub()

    def forward(self, x):
        x = self.quant(x)
        return self.dequant(self.left(x) + self.right(x))


class SharedReluNet(nn.Module):
    """One ``self.relu`` after conv1 and after the residual add (fusing it with conv1 turns
    the second use into Identity)."""

    GROUPS = [["conv1", "bn1", "relu"], ["conv2", "bn2"]]

    def __init__(self, stubs: bool = True) -> None:
        super().__init__()
        self.quant = tq.QuantStub() if stubs else nn.Identity()
        self.conv1 = nn.Conv2d(3, 3, 3, padding=1)
        self.bn1 = nn.BatchNorm2d(3)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(3, 3, 3, padding=1)
        self.bn2 = nn.BatchNorm2d(3)
        self.skip_add = FloatFunctional()
        self.dequant = tq.DeQuantStub() if stubs else nn.Identity()

    def forward(self, x):
        x = self.quant(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.dequant(self.relu(self.skip_add.add(out, x)))


class ConvLinearNet(nn.Module):
    """conv -> relu -> pool -> fc, no BatchNorm (cheap to convert in PT2E QAT)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.relu1 = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, 5)

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(self.relu1(self.conv1(x))), 1))


class InputNormNet(PlainNet):
    """A BatchNorm on the input (audio and tabular models have one): nothing to fold into."""

    def __init__(self) -> None:
        super().__init__()
        self.bn0 = nn.BatchNorm2d(3)

    def forward(self, x):
        return super().forward(self.bn0(x))


class LinearReluNet(RecurrentNet):
    """RecurrentNet with a Linear -> ReLU head that fusion would make one LinearReLU."""

    def __init__(self) -> None:
        super().__init__()
        self.relu = nn.ReLU()

    def forward(self, tokens, extra=None):
        return self.relu(super().forward(tokens, extra))


def input_forgetting_quantizer(is_qat: bool):
    """A hand-written PT2E quantizer that annotates each conv/linear's weight and output but
    forgets its input: the converted layers run with float inputs."""
    require_torchao()
    from torchao.quantization.pt2e.quantizer import QuantizationAnnotation, Quantizer

    config = x86_quantizer(is_qat).global_config

    class WeightAndOutputQuantizer(Quantizer):
        def annotate(self, model):
            for node in model.graph.nodes:
                if node.op == "call_function" and node.target in (
                    torch.ops.aten.conv2d.default, torch.ops.aten.linear.default
                ):
                    node.meta["quantization_annotation"] = QuantizationAnnotation(
                        input_qspec_map={node.args[1]: config.weight},
                        output_qspec=config.output_activation,
                        _annotated=True,
                    )
            return model

        def validate(self, model):
            pass

    return WeightAndOutputQuantizer()


def learnable_pt2e_quantizer():
    """X86InductorQuantizer with torchao's LearnableFakeQuantize on activations."""
    require_torchao()
    from torchao.quantization.pt2e import LearnableFakeQuantize, MovingAverageMinMaxObserver
    from torchao.quantization.pt2e.quantizer import QuantizationConfig, QuantizationSpec

    default = x86_quantizer(is_qat=True).global_config
    activation = QuantizationSpec(
        dtype=torch.uint8, quant_min=0, quant_max=255, qscheme=torch.per_tensor_affine,
        observer_or_fake_quant_ctr=LearnableFakeQuantize.with_args(
            observer=MovingAverageMinMaxObserver
        ),
    )
    config = QuantizationConfig(activation, activation, default.weight, None, True)
    quantizer = x86_quantizer(is_qat=True)
    return quantizer.set_global(config)


def learnable_qconfig() -> tq.QConfig:
    from torch.ao.quantization._learnable_fake_quantize import _LearnableFakeQuantize

    return tq.QConfig(
        activation=_LearnableFakeQuantize.with_args(
            observer=tq.MovingAverageMinMaxObserver, quant_min=0, quant_max=255
        ),
        weight=_LearnableFakeQuantize.with_args(
            observer=tq.MovingAverageMinMaxObserver, quant_min=-128, quant_max=127,
            dtype=torch.qint8, qscheme=torch.per_tensor_symmetric,
        ),
    )
