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

from qlint.runtime import assert_calibrated  # noqa: E402

pytestmark = QUANT_WARNINGS


@pytest.fixture
def prepared():
    return prepared_ptq(fused(ConvBnReluNet(), CONV_BN_RELU_GROUPS))


def test_calibrated_on_random_data_passes(prepared):
    calibrated(prepared, example_input(), example_input(seed=1))
    before = snapshot(prepared)
    assert_calibrated(prepared)
    assert_unchanged(prepared, before)


def test_never_calibrated_names_every_observer(prepared):
    before = snapshot(prepared)
    with pytest.raises(AssertionError) as failure:
        assert_calibrated(prepared)
    message = str(failure.value)
    assert "found 3 of 3 observers not calibrated" in message
    assert "never ran (3)" in message
    assert "`conv1.activation_post_process` (HistogramObserver): min_val=inf max_val=-inf, histogram empty" in message
    assert_unchanged(prepared, before)


def test_calibration_on_ones_gives_a_degenerate_input_range(prepared):
    calibrated(prepared, torch.ones(2, 3, 6, 6))
    before = snapshot(prepared)
    with pytest.raises(AssertionError) as failure:
        assert_calibrated(prepared)
    message = str(failure.value)
    assert "degenerate range (1)" in message
    assert "`quant.activation_post_process` (HistogramObserver): min_val = max_val = 1:" in message
    assert "torch.ones" in message
    assert_unchanged(prepared, before)


def test_branch_the_calibration_never_reached():
    class TwoHeads(nn.Module):
        def __init__(self):
            super().__init__()
            self.quant = tq.QuantStub()
            self.body = nn.Linear(4, 4)
            self.train_head = nn.Linear(4, 2)
            self.eval_head = nn.Linear(4, 2)
            self.dequant = tq.DeQuantStub()

        def forward(self, x):
            x = self.body(self.quant(x))
            head = self.train_head if self.training else self.eval_head
            return self.dequant(head(x))

    model = prepared_ptq(TwoHeads())
    model.train()
    calibrated(model, torch.randn(8, 4))
    with pytest.raises(AssertionError) as failure:
        assert_calibrated(model)
    message = str(failure.value)
    assert "found 1 of 4 observers not calibrated" in message
    assert "`eval_head.activation_post_process`" in message
    assert "train_head" not in message


def test_qat_observers_inside_fake_quant_are_checked():
    model = prepared_qat(fused_qat(ConvBnReluNet(), CONV_BN_RELU_GROUPS))
    calibrated(model, torch.ones(2, 3, 6, 6))
    with pytest.raises(AssertionError) as failure:
        assert_calibrated(model)
    message = str(failure.value)
    assert (
        "`quant.activation_post_process.activation_post_process` (MovingAverageMinMaxObserver): "
        "min_val = max_val = 1" in message
    )


def test_constant_weight_channels_are_exact_not_degenerate():
    model = ConvBnReluNet().train()
    with torch.no_grad():
        model.conv2.weight[1].fill_(0.25)  # a 1x1 conv with 4 inputs: 4 equal values
    prepared = prepared_qat(fused_qat(model, CONV_BN_RELU_GROUPS), tq.get_default_qat_qconfig("x86"))
    calibrated(prepared, example_input())
    observer = prepared.conv2.weight_fake_quant.activation_post_process
    assert observer.min_val[1] == observer.max_val[1]
    assert_calibrated(prepared)


def test_per_channel_activation_observer_counts_constant_channels():
    qconfig = tq.QConfig(
        activation=tq.PerChannelMinMaxObserver.with_args(ch_axis=1), weight=tq.default_weight_observer
    )
    model = prepared_ptq(fused(ConvBnReluNet(), CONV_BN_RELU_GROUPS), qconfig)
    batch = example_input()
    batch[:, 2] = 0.5
    calibrated(model, batch)
    with pytest.raises(AssertionError) as failure:
        assert_calibrated(model)
    message = str(failure.value)
    assert (
        "`quant.activation_post_process` (PerChannelMinMaxObserver): 1 of 3 channels (axis 1) "
        "have min_val == max_val (channel 2: 0.5)" in message
    )


def test_non_finite_calibration_data_is_reported():
    # HistogramObserver raises on NaN by itself; MinMaxObserver records it silently.
    prepared = prepared_ptq(fused(ConvBnReluNet(), CONV_BN_RELU_GROUPS), tq.default_qconfig)
    batch = example_input()
    batch[0, 0, 0, 0] = float("nan")
    calibrated(prepared, batch)
    with pytest.raises(AssertionError) as failure:
        assert_calibrated(prepared)
    assert "non-finite range" in str(failure.value)
    assert "`quant.activation_post_process` (MinMaxObserver): 1 of 1 min_val/max_val" in str(failure.value)


def test_observers_with_nothing_to_calibrate_are_skipped():
    qconfig = tq.QConfig(activation=tq.PlaceholderObserver, weight=tq.default_weight_observer)
    model = prepared_ptq(ConvBnReluNet(), qconfig)
    assert_calibrated(model)


def test_converted_model_has_nothing_to_check(prepared):
    calibrated(prepared, example_input())
    with pytest.raises(AssertionError, match="the model is already converted"):
        assert_calibrated(converted(prepared))
