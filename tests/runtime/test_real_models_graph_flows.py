"""Real code nobody here wrote, through the FX and PT2E flows: the models torch's and
torchao's PT2E tests use (``TestHelperModules`` of ``torch.testing._internal.
common_quantization``), prepared with torchao's X86InductorQuantizer and XNNPACKQuantizer
and with FX's default mappings.  Every helper passes on them at its stage."""

from __future__ import annotations

import copy

import pytest

torch = pytest.importorskip("torch")
common_quantization = pytest.importorskip("torch.testing._internal.common_quantization")

import torch.ao.quantization as tq  # noqa: E402
from flows import FLOW_WARNINGS, require_torchao, x86_quantizer  # noqa: E402
from models import quantized_engine  # noqa: E402

from qlint.runtime import (  # noqa: E402
    assert_calibrated,
    assert_converted,
    assert_fused,
    assert_parity,
    assert_quant_state,
)

pytestmark = FLOW_WARNINGS
helpers = common_quantization.TestHelperModules


def _inputs(*shapes, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(shape, generator=generator) for shape in shapes)


MODELS = [
    pytest.param(lambda: helpers.ConvWithBNRelu(relu=True), ((2, 3, 8, 8),), id="ConvWithBNRelu"),
    pytest.param(helpers.ConvBnReLU2dAndLinearReLU, ((2, 3, 8, 8),), id="ConvBnReLU2dAndLinearReLU"),
    pytest.param(helpers.Conv2dWithTwoLinearPermute, ((2, 3, 6, 6),), id="Conv2dWithTwoLinearPermute"),
    pytest.param(helpers.Conv2dWithCat, ((2, 3, 6, 6), (2, 3, 6, 6)), id="Conv2dWithCat"),
    pytest.param(helpers.Conv2dWithObsSharingOps, ((2, 3, 6, 6),), id="Conv2dWithObsSharingOps"),
    pytest.param(helpers.GroupwiseConv2d, ((2, 4, 10, 10),), id="GroupwiseConv2d"),
    pytest.param(helpers.TwoLinearModule, ((2, 8),), id="TwoLinearModule"),
    pytest.param(helpers.ThreeAdd, ((2, 4),) * 4, id="ThreeAdd"),
]


def _xnnpack_quantizer():
    require_torchao()
    from torchao.testing.pt2e._xnnpack_quantizer import (
        XNNPACKQuantizer,
        get_symmetric_quantization_config,
    )

    return XNNPACKQuantizer().set_global(get_symmetric_quantization_config())


def _check_prepared_and_converted(prepared, converted, example):
    assert_quant_state(prepared, observers=True)
    assert_calibrated(prepared, example)
    assert_parity(prepared, example)
    assert_fused(prepared, example)
    if converted is not None:
        assert_converted(converted)
        assert_fused(converted, example)


@pytest.mark.parametrize("quantizer", ["x86", "xnnpack"])
@pytest.mark.parametrize(("build", "shapes"), MODELS)
def test_pt2e_ptq(build, shapes, quantizer):
    require_torchao()
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    torch.manual_seed(0)
    example = _inputs(*shapes, seed=9)
    graph = torch.export.export(build().eval(), example).module()
    prepared = prepare_pt2e(graph, x86_quantizer() if quantizer == "x86" else _xnnpack_quantizer())
    if not any("activation_post_process" in n.name for n in prepared.graph.nodes):
        # X86InductorQuantizer annotates no add that follows no conv or linear (ThreeAdd):
        # the helpers must say the quantizer annotated nothing, not that prepare was skipped.
        with pytest.raises(AssertionError, match="annotated none of its operators"):
            assert_calibrated(prepared, example)
        return
    with torch.no_grad():
        for seed in range(3):
            prepared(*_inputs(*shapes, seed=seed))
    converted = convert_pt2e(copy.deepcopy(prepared))
    layers = [node for node in converted.graph.nodes if "conv" in str(node.target) or "linear" in str(node.target)]
    _check_prepared_and_converted(prepared, converted if layers else None, example)


FX_MODELS = [model for model in MODELS if model.id != "Conv2dWithObsSharingOps"]


@pytest.mark.parametrize(("build", "shapes"), FX_MODELS)
def test_fx_ptq(build, shapes):
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    torch.manual_seed(0)
    example = _inputs(*shapes, seed=9)
    with quantized_engine("x86"):
        prepared = prepare_fx(build().eval(), tq.get_default_qconfig_mapping("x86"), example)
        with torch.no_grad():
            for seed in range(3):
                prepared(*_inputs(*shapes, seed=seed))
        _check_prepared_and_converted(prepared, convert_fx(copy.deepcopy(prepared)), example)


def test_fx_quantized_mean_crashes_and_the_advice_fixes_it():
    """FX gives torch.mean of a 4-d tensor reduced to a scalar a quantized kernel that raises
    (torch 2.13): parity names the node and the qconfig_mapping entry that keeps it float."""
    from torch.ao.quantization.quantize_fx import prepare_fx

    example = _inputs((2, 3, 6, 6), seed=9)
    mapping = tq.get_default_qconfig_mapping("x86")
    with quantized_engine("x86"):
        prepared = prepare_fx(helpers.Conv2dWithObsSharingOps().eval(), mapping, example)
        prepared(*example)
        with pytest.raises(AssertionError) as failure:
            assert_parity(prepared, example)
        message = str(failure.value)
        assert "crashed at node `mean` (torch.mean)" in message
        assert "qconfig_mapping.set_object_type(torch.mean, None)" in message
        mapping.set_object_type(torch.mean, None)
        prepared = prepare_fx(helpers.Conv2dWithObsSharingOps().eval(), mapping, example)
        prepared(*example)
        assert_parity(prepared, example)
