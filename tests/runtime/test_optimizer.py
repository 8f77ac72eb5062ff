import pytest

torch = pytest.importorskip("torch")

from models import (  # noqa: E402
    CONV_BN_RELU_GROUPS,
    QUANT_WARNINGS,
    ConvBnReluNet,
    assert_unchanged,
    fused_qat,
    learnable_qconfig,
    prepared_qat,
    snapshot,
)
from torch.ao.quantization._learnable_fake_quantize import _LearnableFakeQuantize  # noqa: E402

from qlint.runtime import assert_qparams_in_optimizer  # noqa: E402

pytestmark = QUANT_WARNINGS


def _float_model():
    return fused_qat(ConvBnReluNet(), CONV_BN_RELU_GROUPS)


def test_optimizer_built_after_prepare_qat_passes():
    model = prepared_qat(_float_model(), learnable_qconfig())
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    before = snapshot(model)
    assert_qparams_in_optimizer(model, optimizer)
    assert_unchanged(model, before)


def test_optimizer_built_before_prepare_qat_misses_learnable_qparams():
    model = _float_model()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    prepared_qat(model, learnable_qconfig(), inplace=True)
    learnable = sum(isinstance(m, _LearnableFakeQuantize) for m in model.modules())
    before = snapshot(model)
    with pytest.raises(AssertionError) as failure:
        assert_qparams_in_optimizer(model, optimizer)
    message = str(failure.value)
    assert f"{2 * learnable} missing from the optimizer" in message
    assert "`conv1.weight_fake_quant.scale` (shape (1,) float32, learnable fake-quant qparam)" in message
    assert "`quant.activation_post_process.zero_point`" in message
    assert "`conv1.weight`" not in message  # in-place prepare_qat keeps the weights
    assert "stale" not in message
    assert_unchanged(model, before)


def test_prepare_qat_copy_leaves_the_optimizer_on_stale_weights():
    model = _float_model()
    optimizer = torch.optim.Adam(model.parameters())
    qat_model = prepared_qat(model)
    with pytest.raises(AssertionError) as failure:
        assert_qparams_in_optimizer(qat_model, optimizer)
    message = str(failure.value)
    count = len(list(qat_model.parameters()))
    assert f"{count} missing from the optimizer" in message
    assert f"{count} held by the optimizer but not in the model (stale)" in message
    assert "same values as `conv1.weight` (a stale copy)" in message
    assert "param_groups[0]['params'][0] (shape (4, 3, 3, 3) float32" in message


def test_separate_param_groups_and_frozen_parameters():
    model = prepared_qat(_float_model(), learnable_qconfig())
    model.conv2.bias.requires_grad_(False)
    learnable = [m for m in model.modules() if isinstance(m, _LearnableFakeQuantize)]
    qparams = [parameter for module in learnable for parameter in module.parameters()]
    weights = [
        parameter
        for parameter in model.parameters()
        if parameter.requires_grad and all(parameter is not qparam for qparam in qparams)
    ]
    optimizer = torch.optim.SGD([{"params": weights}, {"params": qparams, "lr": 1e-3}], lr=0.1)
    assert_qparams_in_optimizer(model, optimizer)


def test_learnable_qparams_count_even_while_learning_is_off():
    model = prepared_qat(_float_model(), learnable_qconfig())
    for module in model.modules():
        if isinstance(module, _LearnableFakeQuantize):
            module.enable_static_estimate()  # requires_grad False on scale/zero_point
    assert not model.conv1.weight_fake_quant.scale.requires_grad
    trainable = [p for p in model.parameters() if p.requires_grad]
    with pytest.raises(AssertionError, match="`conv1.weight_fake_quant.scale`"):
        assert_qparams_in_optimizer(model, torch.optim.SGD(trainable, lr=0.1))
