"""The runtime checks on torch's own eager quantization test models, quantized correctly.

The models come from ``torch.testing._internal.common_quantization``: code nobody here
wrote.  Each goes through the whole flow on both the x86 and qnnpack engines, and every
check must pass at its stage.  Left unfused, each must be reported with exactly the
groups that torch's own tests fuse.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from dataclasses import dataclass

import pytest

torch = pytest.importorskip("torch")
common_quantization = pytest.importorskip("torch.testing._internal.common_quantization")

import torch.ao.quantization as tq  # noqa: E402
from models import QUANT_WARNINGS, quantized_engine  # noqa: E402
from torch import nn  # noqa: E402

from qlint.runtime import (  # noqa: E402
    assert_calibrated,
    assert_converted,
    assert_fused,
    assert_qparams_in_optimizer,
    assert_quant_state,
)

pytestmark = QUANT_WARNINGS

@dataclass(frozen=True)
class Case:
    """A torch test model: builder (engine -> float model), input shape, fusion groups.

    ``keep_qconfig``: parts of the model have qconfig None on purpose, so convert keeps
    the qconfig attributes that tell them apart.  ``engines``: where torch can run it.
    """

    name: str
    build: Callable[[str], nn.Module]
    input_shape: tuple[int, ...]
    groups: list[list[str]]
    keep_qconfig: bool = False
    engines: tuple[str, ...] = ("x86", "qnnpack")


def _wrapped(model_class: type) -> Callable[[str], nn.Module]:
    def build(engine: str) -> nn.Module:
        model = tq.QuantWrapper(model_class())
        model.qconfig = tq.get_default_qconfig(engine)
        return model

    return build


def _with_root_qconfig(model_class: type) -> Callable[[str], nn.Module]:
    def build(engine: str) -> nn.Module:
        model = model_class()
        model.qconfig = tq.get_default_qconfig(engine)
        return model

    return build


cq = common_quantization
RESNET_GROUP = ["module.conv1", "module.bn1", "module.relu1"]
SEQUENTIAL_FUSION_GROUPS = (
    [["conv1", "relu1"]]
    + [[f"features.{block}.{layer}" for layer in range(3)] for block in range(3)]
    + [["classifier.0", "classifier.1"]]
)
PTQ_CASES = [
    Case(
        "AnnotatedConvBnReLUModel",
        lambda engine: cq.AnnotatedConvBnReLUModel(engine),
        (2, 3, 5, 5),
        [["conv", "bn", "relu"]],
    ),
    Case("ResNetBase", _wrapped(cq.ResNetBase), (2, 3, 6, 6), [RESNET_GROUP]),
    Case(
        "ModelMultipleOps",
        _wrapped(cq.ModelMultipleOps),
        (2, 3, 8, 8),
        [["module.conv1", "module.bn1", "module.relu1"]],
    ),
    Case(
        "ModelMultipleOpsNoAvgPool",
        _wrapped(cq.ModelMultipleOpsNoAvgPool),
        (2, 3, 16, 16),
        [["module.conv1", "module.bn1", "module.relu1"]],
    ),
    Case(
        "ModelForFusion",
        lambda engine: cq.ModelForFusion(tq.get_default_qconfig(engine)),
        (2, 3, 1, 19),
        [
            ["conv3", "bn3", "relu4"],
            ["conv1", "bn1", "relu1"],
            ["sub1.conv", "sub1.bn"],
            ["conv2", "relu2"],
            ["bn2", "relu3"],
        ],
        keep_qconfig=True,
        engines=("x86",),  # Conv1d/Conv3d: QNNPACK only unpacks conv2d
    ),
    Case(
        "ModelWithSequentialFusion",
        _with_root_qconfig(cq.ModelWithSequentialFusion),
        (2, 3, 10, 10),
        SEQUENTIAL_FUSION_GROUPS,
    ),
    Case(
        "AnnotatedSkipQuantModel",
        lambda engine: cq.AnnotatedSkipQuantModel(engine),
        (4, 5),
        [["sub.module.fc1", "sub.module.relu1"], ["sub.module.fc2", "sub.module.relu2"]],
        keep_qconfig=True,
    ),
    Case(
        "AnnotatedNestedModel",
        lambda engine: cq.AnnotatedNestedModel(engine),
        (4, 5),
        [],
        keep_qconfig=True,
    ),
]

QAT_CASES = [
    Case(
        "AnnotatedConvBnReLUModel",
        lambda engine: cq.AnnotatedConvBnReLUModel(engine),
        (2, 3, 5, 5),
        [["conv", "bn", "relu"]],
    ),
    Case("ResNetBase", _wrapped(cq.ResNetBase), (4, 3, 6, 6), [RESNET_GROUP]),
    Case(
        "ModelWithSequentialFusion",
        _with_root_qconfig(cq.ModelWithSequentialFusion),
        (2, 3, 10, 10),
        SEQUENTIAL_FUSION_GROUPS,
    ),
    Case(
        "ManualConvLinearQATModel", lambda engine: cq.ManualConvLinearQATModel(), (2, 3, 10, 10), []
    ),
    Case("ManualLinearQATModel", lambda engine: cq.ManualLinearQATModel(engine), (4, 5), []),
]


def _batch(case: Case, seed: int) -> torch.Tensor:
    return torch.rand(case.input_shape, generator=torch.Generator().manual_seed(seed))


def _runs(cases: list[Case]) -> list:
    return [
        pytest.param(case, engine, id=f"{case.name}-{engine}")
        for case in cases
        for engine in case.engines
    ]


@pytest.mark.parametrize(("case", "engine"), _runs(PTQ_CASES))
def test_post_training_quantization_flow(case, engine):
    torch.manual_seed(0)
    with quantized_engine(engine):
        float_model = case.build(engine).eval()
        example = _batch(case, 0)
        fused_model = copy.deepcopy(float_model)
        if case.groups:
            tq.fuse_modules(fused_model, case.groups, inplace=True)
        assert_fused(fused_model, example, reference=float_model)

        prepared = tq.prepare(fused_model)
        assert_quant_state(prepared, observers=True, fake_quant=False)
        assert_fused(prepared, example)
        with torch.no_grad():
            for seed in range(3):
                prepared(_batch(case, seed))
        assert_calibrated(prepared)

        quantized = tq.convert(prepared, remove_qconfig=not case.keep_qconfig)
        assert_converted(quantized)
        assert_fused(quantized, example)
        quantized(example)


@pytest.mark.parametrize(("case", "engine"), _runs(QAT_CASES))
def test_quantization_aware_training_flow(case, engine):
    torch.manual_seed(0)
    with quantized_engine(engine):
        model = case.build(engine).train()
        model.qconfig = tq.get_default_qat_qconfig(engine)
        if case.groups:
            tq.fuse_modules_qat(model, case.groups, inplace=True)
        tq.prepare_qat(model, inplace=True)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
        assert_qparams_in_optimizer(model, optimizer)
        assert_quant_state(model, observers=True, fake_quant=True, qparam_learning=False)
        for seed in range(3):
            optimizer.zero_grad()
            model(_batch(case, seed)).sum().backward()
            optimizer.step()
        assert_calibrated(model)
        assert_fused(model, _batch(case, 0))

        model.apply(tq.disable_observer)
        model.apply(torch.ao.nn.intrinsic.qat.freeze_bn_stats)
        assert_quant_state(model, observers=False, fake_quant=True)

        quantized = tq.convert(model.eval())
        assert_converted(quantized)
        quantized(_batch(case, 0))


def _reported_groups(message: str) -> list[list[str]]:
    return [
        re.findall(r'"([^"]+)"', group)
        for group in re.findall(r"fuse_modules\(model, \[\[(.*?)\]\]", message)
    ]


@pytest.mark.parametrize(
    "case", [case for case in PTQ_CASES if case.groups], ids=lambda case: case.name
)
def test_unfused_models_report_the_groups_torch_fuses(case):
    torch.manual_seed(0)
    model = case.build("x86").eval()
    with pytest.raises(AssertionError) as failure:
        assert_fused(model, _batch(case, 0))
    assert sorted(_reported_groups(str(failure.value))) == sorted(case.groups)
