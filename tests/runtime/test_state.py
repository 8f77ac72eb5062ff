import pytest

torch = pytest.importorskip("torch")

import torch.ao.quantization as tq  # noqa: E402
from models import (  # noqa: E402
    CONV_BN_RELU_GROUPS,
    QUANT_WARNINGS,
    ConvBnReluNet,
    assert_unchanged,
    calibrated,
    example_input,
    fused,
    fused_qat,
    learnable_qconfig,
    prepared_ptq,
    prepared_qat,
    snapshot,
)
from torch.ao.quantization._learnable_fake_quantize import _LearnableFakeQuantize  # noqa: E402

from qlint.runtime import assert_quant_state, quant_state  # noqa: E402

pytestmark = QUANT_WARNINGS


@pytest.fixture
def qat_model():
    return calibrated(prepared_qat(fused_qat(ConvBnReluNet(), CONV_BN_RELU_GROUPS)), example_input())


@pytest.fixture
def learnable_model():
    return prepared_qat(fused_qat(ConvBnReluNet(), CONV_BN_RELU_GROUPS), learnable_qconfig())


def test_fresh_qat_model_observes_and_fake_quantizes(qat_model):
    before = snapshot(qat_model)
    assert_quant_state(qat_model, observers=True, fake_quant=True, qparam_learning=False)
    assert_unchanged(qat_model, before)


def test_observers_left_on_are_reported(qat_model):
    before = snapshot(qat_model)
    with pytest.raises(AssertionError) as failure:
        assert_quant_state(qat_model, observers=False)
    message = str(failure.value)
    rows = len(quant_state(qat_model))
    assert f"observers (expected off): {rows} of {rows} modules are on" in message
    assert "`conv1.weight_fake_quant` (FusedMovingAvgObsFakeQuantize): observer_enabled=1" in message
    assert "model.apply(torch.ao.quantization.disable_observer)" in message
    assert_unchanged(qat_model, before)


def test_observers_off_after_disable_observer(qat_model):
    qat_model.apply(tq.disable_observer)
    assert_quant_state(qat_model, observers=False, fake_quant=True)


def test_one_layer_with_fake_quant_off_is_named(qat_model):
    qat_model.conv2.activation_post_process.disable_fake_quant()
    before = snapshot(qat_model)
    with pytest.raises(AssertionError) as failure:
        assert_quant_state(qat_model, fake_quant=True)
    message = str(failure.value)
    assert f"1 of {len(quant_state(qat_model))} modules is off" in message
    assert "`conv2.activation_post_process` (FusedMovingAvgObsFakeQuantize): fake_quant_enabled=0" in message
    assert message.count("fake_quant_enabled=0") == 1
    assert_unchanged(qat_model, before)


def test_learnable_fake_quantize_uses_static_enabled_as_its_observer_switch(learnable_model):
    learnable_model.apply(tq.disable_observer)
    fake_quant = learnable_model.conv1.weight_fake_quant
    assert isinstance(fake_quant, _LearnableFakeQuantize)
    assert int(fake_quant.static_enabled) == 0
    # The buffer _LearnableFakeQuantize inherits but never reads must not decide the answer.
    assert int(fake_quant.observer_enabled) == 1
    assert_quant_state(learnable_model, observers=False)


def test_learnable_static_enabled_on_is_reported_even_with_observer_enabled_off(learnable_model):
    learnable_model.apply(tq.disable_observer)
    fake_quant = learnable_model.conv2.activation_post_process
    fake_quant.static_enabled[0] = 1
    fake_quant.observer_enabled[0] = 0
    with pytest.raises(AssertionError) as failure:
        assert_quant_state(learnable_model, observers=False)
    message = str(failure.value)
    assert "`conv2.activation_post_process` (_LearnableFakeQuantize): static_enabled=1" in message
    assert "1 of" in message


def test_learnable_qparam_learning_flags(learnable_model):
    with pytest.raises(AssertionError) as failure:
        assert_quant_state(learnable_model, qparam_learning=True)
    rows = len(quant_state(learnable_model))
    assert f"{rows} of {rows} modules are off" in str(failure.value)
    assert "learning_enabled=0" in str(failure.value)
    assert "enable_param_learning()" in str(failure.value)
    for module in learnable_model.modules():
        if isinstance(module, _LearnableFakeQuantize):
            module.enable_param_learning()
    assert_quant_state(learnable_model, observers=False, fake_quant=True, qparam_learning=True)


def test_reading_learnable_qparams_does_not_clamp_them(learnable_model):
    # _LearnableFakeQuantize.calculate_qparams() clamps scale in place; the table must not.
    with torch.no_grad():
        learnable_model.conv1.weight_fake_quant.scale.fill_(0.0)
    before = snapshot(learnable_model)
    assert "scale=0 zp=0" in str(quant_state(learnable_model))
    with pytest.raises(AssertionError):
        assert_quant_state(learnable_model, observers=False, qparam_learning=True)
    assert_unchanged(learnable_model, before)


def test_learning_requested_without_learnable_modules_fails(qat_model):
    with pytest.raises(AssertionError, match="none of the .* quant modules has that switch"):
        assert_quant_state(qat_model, qparam_learning=True)


def test_plain_ptq_observers_always_observe():
    prepared = prepared_ptq(fused(ConvBnReluNet(), CONV_BN_RELU_GROUPS))
    assert_quant_state(prepared, observers=True, fake_quant=False)
    with pytest.raises(AssertionError) as failure:
        assert_quant_state(prepared, observers=False)
    message = str(failure.value)
    assert "`quant.activation_post_process` (HistogramObserver): a plain observer always observes" in message
    assert "disable_observer" not in message
    assert "convert() the model" in message
    with pytest.raises(AssertionError, match="fake_quant \\(expected on\\): none of the"):
        assert_quant_state(prepared, fake_quant=True)


def test_user_subclasses_dispatch_to_their_torch_base():
    class ClippedFakeQuantize(tq.FakeQuantize):
        pass

    class MyLearnable(_LearnableFakeQuantize):
        pass

    qconfig = tq.QConfig(
        activation=ClippedFakeQuantize.with_args(observer=tq.MovingAverageMinMaxObserver),
        weight=MyLearnable.with_args(
            observer=tq.MovingAverageMinMaxObserver,
            quant_min=-128,
            quant_max=127,
            dtype=torch.qint8,
            qscheme=torch.per_tensor_symmetric,
        ),
    )
    prepared = prepared_qat(fused_qat(ConvBnReluNet(), CONV_BN_RELU_GROUPS), qconfig)
    rows = {row.name: row for row in quant_state(prepared)}
    assert rows["conv1.activation_post_process"].kind == "ClippedFakeQuantize"
    assert rows["conv1.activation_post_process"].observer_switch == "observer_enabled"
    assert rows["conv1.activation_post_process"].learning is None
    assert rows["conv1.weight_fake_quant"].observer_switch == "static_enabled"
    assert rows["conv1.weight_fake_quant"].learning is False


def test_quant_state_table_is_aligned(qat_model):
    qat_model.conv1.activation_post_process.disable_fake_quant()
    lines = str(quant_state(qat_model)).splitlines()
    header = lines[0]
    assert header.split() == ["module", "class", "observer", "fake_quant", "learning", "qparams", "where"]
    column = header.index("fake_quant")
    assert len(lines) == len(quant_state(qat_model)) + 1
    assert all(line[column : column + 3] in {"on ", "off"} for line in lines[1:])
    row = next(line for line in lines if line.startswith("conv1.activation_post_process "))
    assert row[column:].startswith("off")
    assert "scale=" in row and "zp=" in row


def test_quant_state_of_observers_shows_their_range():
    prepared = prepared_ptq(fused(ConvBnReluNet(), CONV_BN_RELU_GROUPS))
    assert {row.qparams for row in quant_state(prepared)} == {"not run"}
    calibrated(prepared, example_input())
    assert all(row.qparams.startswith("min=") for row in quant_state(prepared))


def test_no_setting_to_check_is_an_error(qat_model):
    with pytest.raises(TypeError, match="at least one"):
        assert_quant_state(qat_model)


def test_unprepared_model_fails():
    with pytest.raises(AssertionError, match="no observer or fake-quant module"):
        assert_quant_state(ConvBnReluNet(), observers=True)
