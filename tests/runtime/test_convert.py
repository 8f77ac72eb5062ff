import pytest

torch = pytest.importorskip("torch")

import torch.ao.quantization as tq  # noqa: E402
from models import (  # noqa: E402
    CONV_BN_RELU_GROUPS,
    QUANT_WARNINGS,
    ConvBnReluNet,
    assert_unchanged,
    calibrated,
    converted,
    example_input,
    fused,
    fused_qat,
    prepared_ptq,
    prepared_qat,
    snapshot,
)
from torch import nn  # noqa: E402
from torch.ao.quantization.quantization_mappings import (  # noqa: E402
    get_default_static_quant_module_mappings,
)

from qlint.runtime import assert_converted, quant_state  # noqa: E402

pytestmark = QUANT_WARNINGS


class WindowAttention(nn.Module):
    """Swin-style attention: a bias table parameter next to quantizable Linears."""

    def __init__(self):
        super().__init__()
        self.qkv = nn.Linear(4, 4)
        self.relative_position_bias_table = nn.Parameter(torch.zeros(9, 2))
        self.proj = nn.Linear(4, 4)

    def forward(self, x):
        return self.proj(self.qkv(x))


class TinyTransformer(nn.Module):
    def __init__(self):
        super().__init__()
        self.quant = tq.QuantStub()
        self.attn = WindowAttention()
        self.dequant = tq.DeQuantStub()

    def forward(self, x):
        return self.dequant(self.attn(self.quant(x)))


def _calibrated_ptq(model, batch):
    return calibrated(prepared_ptq(model, tq.default_qconfig), batch)


def test_fully_converted_model_passes():
    prepared = _calibrated_ptq(fused(ConvBnReluNet(), CONV_BN_RELU_GROUPS), example_input())
    for options in ({}, {"remove_qconfig": False}):
        model = converted(prepared, **options)
        before = snapshot(model)
        assert_converted(model)
        assert_unchanged(model, before)


def test_float_parameter_left_by_convert_is_named():
    prepared = _calibrated_ptq(TinyTransformer(), torch.randn(3, 4))
    for options in ({}, {"remove_qconfig": False}):
        model = converted(prepared, **options)
        before = snapshot(model)
        with pytest.raises(AssertionError) as failure:
            assert_converted(model)
        message = str(failure.value)
        assert "1 float nn.Parameter(s) inside the quantized region" in message
        assert "`attn.relative_position_bias_table` on WindowAttention: shape (9, 2), float32" in message
        assert "float swappable" not in message
        assert_unchanged(model, before)


def test_float_parameter_outside_the_quantized_region_is_not_reported():
    model = TinyTransformer().eval()
    model.qconfig = tq.default_qconfig
    model.attn.qconfig = None
    prepared = calibrated(tq.prepare(model), torch.randn(3, 4))
    assert_converted(converted(prepared, remove_qconfig=False))


def test_subclass_of_a_swappable_type_is_never_swapped():
    class ScaledLinear(nn.Linear):
        pass

    model = TinyTransformer()
    model.attn.proj = ScaledLinear(4, 4)
    quantized = converted(_calibrated_ptq(model, torch.randn(3, 4)), remove_qconfig=False)
    with pytest.raises(AssertionError) as failure:
        assert_converted(quantized)
    message = str(failure.value)
    assert "1 float swappable module(s) with a qconfig set" in message
    assert "`attn.proj` (ScaledLinear): a subclass of torch.nn.modules.linear.Linear" in message


def test_deliberately_float_module_needs_its_qconfig_kept():
    model = ConvBnReluNet().eval()
    model.qconfig = tq.default_qconfig
    model.conv2.qconfig = None
    prepared = calibrated(tq.prepare(fused(model, [["conv1", "bn1", "relu1"]])), example_input())
    assert_converted(converted(prepared, remove_qconfig=False))
    with pytest.raises(AssertionError) as failure:
        assert_converted(converted(prepared))
    message = str(failure.value)
    assert "`conv2` (Conv2d)" in message
    assert "remove_qconfig=False" in message


def test_qat_module_left_by_a_partial_mapping_is_reported():
    prepared = calibrated(prepared_qat(fused_qat(ConvBnReluNet(), CONV_BN_RELU_GROUPS)), example_input())
    mapping = dict(get_default_static_quant_module_mappings())
    del mapping[torch.ao.nn.intrinsic.qat.ConvBnReLU2d]
    with pytest.raises(AssertionError) as failure:
        assert_converted(converted(prepared, mapping=mapping, remove_qconfig=False))
    message = str(failure.value)
    assert "2 float swappable module(s) with a qconfig set" in message
    assert "`conv1` (ConvBnReLU2d): a fused/QAT module convert() never reached" in message
    assert "conv1.bn" not in message


def test_prepared_but_not_converted_model_fails():
    prepared = _calibrated_ptq(ConvBnReluNet(), example_input())
    before = snapshot(prepared)
    with pytest.raises(AssertionError) as failure:
        assert_converted(prepared)
    message = str(failure.value)
    count = len(quant_state(prepared))
    assert f"{count} observers/fake-quants still in the model: convert has not run on it" in message
    assert "`conv1.activation_post_process` (MinMaxObserver)" in message
    assert "model = torch.ao.quantization.convert(model)" in message
    assert_unchanged(prepared, before)


def test_float_model_fails_with_how_to_convert():
    with pytest.raises(AssertionError, match="found none among its .* modules: convert has not run"):
        assert_converted(ConvBnReluNet().eval())


class SqueezeExcitation(nn.Module):
    """torchvision's quantizable MobileNetV3 block: a Hardsigmoid convert does not swap."""

    def __init__(self):
        super().__init__()
        self.quant = tq.QuantStub()
        self.conv = nn.Conv2d(3, 4, 1)
        self.scale_activation = nn.Hardsigmoid()
        self.skip_mul = nn.quantized.FloatFunctional()
        self.dequant = tq.DeQuantStub()

    def forward(self, x):
        x = self.conv(self.quant(x))
        return self.dequant(self.skip_mul.mul(self.scale_activation(x), x))


@pytest.mark.parametrize("qat", [False, True], ids=["ptq", "qat"])
def test_fixed_qparams_left_by_remove_qconfig_false(qat):
    """convert(remove_qconfig=False) leaves Hardsigmoid's fixed-qparams observer or
    fake-quant attached; the observer is harmless, the fake-quant makes the model raise."""
    model = SqueezeExcitation().train(qat)
    model.qconfig = (tq.get_default_qat_qconfig if qat else tq.get_default_qconfig)("x86")
    prepared = calibrated((tq.prepare_qat if qat else tq.prepare)(model), example_input())
    kept = converted(prepared, remove_qconfig=False)
    assert_converted(converted(prepared))
    if not qat:
        assert_converted(kept)
        return
    with pytest.raises(NotImplementedError, match="QuantizedCPU"):
        kept(example_input())
    with pytest.raises(AssertionError) as failure:
        assert_converted(kept)
    message = str(failure.value)
    assert "1 fake-quant(s) left in the converted model" in message
    assert "`scale_activation.activation_post_process` (FixedQParamsFakeQuantize)" in message
    from torch.ao.quantization.quantize import _remove_activation_post_process

    kept.apply(_remove_activation_post_process)
    assert_converted(kept)
