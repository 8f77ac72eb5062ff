import re

import pytest

torch = pytest.importorskip("torch")

import torch.ao.quantization as tq  # noqa: E402
from models import (  # noqa: E402
    CONV_BN_RELU_GROUPS,
    QUANT_WARNINGS,
    SEPARATE_RELU_GROUPS,
    SHARED_RELU_GROUPS,
    ConvBnReluNet,
    SeparateReluBlock,
    SharedReluBlock,
    assert_unchanged,
    calibrated,
    converted,
    example_input,
    fused,
    fused_qat,
    prepared_ptq,
    prepared_qat,
    randomized_bn,
    snapshot,
)
from torch import nn  # noqa: E402

from qlint.runtime import assert_fused  # noqa: E402
from qlint.runtime.fusion import _fusion_patterns  # noqa: E402

pytestmark = QUANT_WARNINGS


def test_patterns_come_from_the_installed_torch():
    patterns = _fusion_patterns()
    assert (nn.Conv2d, nn.BatchNorm2d, nn.ReLU) in patterns
    assert (nn.Linear, nn.BatchNorm1d) in patterns
    assert (nn.BatchNorm2d, nn.ReLU) in patterns


def test_unfused_conv_bn_relu_is_reported_with_the_fuse_call():
    model = ConvBnReluNet().eval()
    before = snapshot(model)
    with pytest.raises(AssertionError) as failure:
        assert_fused(model, example_input())
    message = str(failure.value)
    assert "found 2 problem(s)" in message
    assert "`conv1` (Conv2d) -> `bn1` (BatchNorm2d) -> `relu1` (ReLU) run as 3 separate" in message
    assert 'fuse_modules(model, [["conv2", "bn2", "relu2"]], inplace=True)' in message
    assert_unchanged(model, before)


def test_fused_model_passes_and_matches_its_reference():
    model = randomized_bn(ConvBnReluNet()).eval()
    fused_model = fused(model, CONV_BN_RELU_GROUPS)
    before = snapshot(fused_model)
    reference_before = snapshot(model)
    assert_fused(fused_model, example_input(), reference=model)
    assert_unchanged(fused_model, before)
    assert_unchanged(model, reference_before)


def test_shared_relu_fused_into_identity_is_reported():
    model = randomized_bn(SharedReluBlock()).eval()
    fused_model = fused(model, SHARED_RELU_GROUPS)
    before = snapshot(fused_model)
    with pytest.raises(AssertionError) as failure:
        assert_fused(fused_model, example_input())
    message = str(failure.value)
    assert "`relu` is the nn.Identity fusion left after `conv1` (ConvReLU2d)" in message
    assert "1 of its 2 calls does not follow `conv1`" in message
    assert "call 2 of 2 gets its input from no module" in message
    assert "`bn2`" not in message  # bn2's Identity directly follows conv2: correct
    assert_unchanged(fused_model, before)


def test_shared_relu_with_reference_reports_the_output_difference():
    model = randomized_bn(SharedReluBlock()).eval()
    with pytest.raises(AssertionError) as failure:
        assert_fused(fused(model, SHARED_RELU_GROUPS), example_input(), reference=model)
    message = str(failure.value)
    assert "(a ReLU in `reference`)" in message
    difference = re.search(r"max abs difference ([0-9.e+-]+) > tolerance ([0-9.e+-]+)", message)
    assert difference is not None, message
    assert float(difference.group(1)) > 100 * float(difference.group(2))


def test_separate_relus_fused_pass_with_reference():
    model = randomized_bn(SeparateReluBlock()).eval()
    assert_fused(fused(model, SEPARATE_RELU_GROUPS), example_input(), reference=model)


def test_fused_with_a_module_that_does_not_feed_it():
    class AddThenRelu(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 1)
            self.relu = nn.ReLU()

        def forward(self, x):
            return self.relu(self.conv(x) + x)

    model = AddThenRelu().eval()
    with pytest.raises(AssertionError) as failure:
        assert_fused(fused(model, [["conv", "relu"]]), example_input(), reference=model)
    assert "none of its 1 calls directly follows a fused module" in str(failure.value)


def test_partial_fusion_leaves_conv_relu_reported():
    model = fused(ConvBnReluNet(), [["conv1", "bn1"], ["conv2", "bn2", "relu2"]])
    with pytest.raises(AssertionError) as failure:
        assert_fused(model, example_input())
    message = str(failure.value)
    assert "`conv1` (Conv2d) -> `relu1` (ReLU) run as 2 separate modules" in message
    assert "conv2" not in message


def test_qat_prepared_without_fusion_is_reported():
    prepared = prepared_qat(ConvBnReluNet())
    before = snapshot(prepared)
    with pytest.raises(AssertionError) as failure:
        assert_fused(prepared, example_input())
    assert "`conv1` (Conv2d) -> `bn1` (BatchNorm2d) -> `relu1` (ReLU)" in str(failure.value)
    assert_unchanged(prepared, before)


def test_qat_conv_bn_fused_but_relu_left_out_is_reported():
    groups = [["conv1", "bn1"], ["conv2", "bn2", "relu2"]]
    prepared = prepared_qat(fused_qat(ConvBnReluNet(), groups))
    with pytest.raises(AssertionError) as failure:
        assert_fused(prepared, example_input())
    assert "`conv1` (ConvBn2d) -> `relu1` (ReLU)" in str(failure.value)
    assert "(Conv2d, BatchNorm2d, ReLU)" in str(failure.value)
    assert '[["conv1", "bn1", "relu1"]]' in str(failure.value)


def test_qat_prepared_fused_passes_and_stays_unchanged():
    prepared = prepared_qat(fused_qat(ConvBnReluNet(), CONV_BN_RELU_GROUPS))
    before = snapshot(prepared)
    assert_fused(prepared, example_input())
    assert_unchanged(prepared, before)
    assert prepared.training


def test_converted_unfused_model_is_reported():
    prepared = calibrated(prepared_ptq(ConvBnReluNet()), example_input())
    with pytest.raises(AssertionError) as failure:
        assert_fused(converted(prepared), example_input())
    assert "`conv1` (Conv2d) -> `bn1` (BatchNorm2d) -> `relu1` (ReLU)" in str(failure.value)


def test_in_place_add_breaks_the_chain():
    class TorchvisionStyleTail(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 1)
            self.bn = nn.BatchNorm2d(3)
            self.relu = nn.ReLU(inplace=True)

        def forward(self, x):
            out = self.conv(x)
            out = self.bn(out)
            out += x
            return self.relu(out)

    with pytest.raises(AssertionError) as failure:
        assert_fused(TorchvisionStyleTail().eval(), example_input())
    message = str(failure.value)
    assert "`conv` (Conv2d) -> `bn` (BatchNorm2d) run as 2" in message
    assert "`relu`" not in message


def test_output_used_twice_is_not_fusible():
    class Branching(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 1)
            self.relu = nn.ReLU()
            self.side = nn.Conv2d(3, 3, 1)

        def forward(self, x):
            out = self.conv(x)
            return self.relu(out), self.side(out)

    assert_fused(Branching().eval(), example_input())


def test_modules_with_qconfig_none_are_not_reported():
    model = ConvBnReluNet().eval()
    model.qconfig = tq.default_qconfig
    for name in ("conv2", "bn2", "relu2"):
        getattr(model, name).qconfig = None
    with pytest.raises(AssertionError) as failure:
        assert_fused(model, example_input())
    assert "conv1" in str(failure.value)
    assert "conv2" not in str(failure.value)


def test_training_mode_and_hooks_survive_a_failing_check():
    model = ConvBnReluNet().train()
    model.conv1.register_forward_hook(lambda module, args, output: None)
    before = snapshot(model)
    with pytest.raises(AssertionError):
        assert_fused(model, example_input())
    assert_unchanged(model, before)
    assert model.training


def test_example_inputs_must_be_a_tensor_or_tuple():
    with pytest.raises(TypeError, match="tensor or a tuple"):
        assert_fused(ConvBnReluNet().eval(), [example_input()])
