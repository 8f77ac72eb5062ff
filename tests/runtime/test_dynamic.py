"""Dynamic and weight-only quantization: quantize_dynamic (int8 and float16), weight-only
embeddings, and FX prepared with a dynamic qconfig."""

from __future__ import annotations

import copy

import pytest

torch = pytest.importorskip("torch")

import torch.ao.quantization as tq  # noqa: E402
from flows import FLOW_WARNINGS, RecurrentNet, dynamic_model, tokens  # noqa: E402
from models import quantized_engine  # noqa: E402
from torch import nn  # noqa: E402

from qlint.runtime import (  # noqa: E402
    assert_calibrated,
    assert_converted,
    assert_fused,
    assert_parity,
    quant_state,
)

pytestmark = FLOW_WARNINGS
ENGINES = ["x86", "qnnpack"]


@pytest.mark.parametrize("engine", ENGINES)
def test_int8_dynamic_model_passes_every_check(engine):
    with quantized_engine(engine):
        model = dynamic_model()
        assert_converted(model, dynamic={nn.LSTM, nn.Linear})
        assert_converted(model)  # Embedding and LayerNorm left float: not errors
        assert_fused(model, (tokens(),))
        assert_parity(model, (tokens(),))


def test_float16_dynamic_model_is_compared_with_its_float_twin():
    model = tq.quantize_dynamic(RecurrentNet().eval(), {nn.LSTM, nn.Linear}, dtype=torch.float16)
    assert_converted(model, dynamic={nn.LSTM, nn.Linear})
    assert_parity(model, (tokens(),))


def test_weight_only_embedding():
    spec = {nn.Embedding: tq.float_qparams_weight_only_qconfig, nn.Linear: tq.default_dynamic_qconfig}
    model = tq.quantize_dynamic(RecurrentNet().eval(), spec)
    assert type(model.embedding).__module__.startswith("torch.ao.nn.quantized")
    assert_converted(model, dynamic={nn.Embedding, nn.Linear})
    assert_parity(model, (tokens(),))
    with pytest.raises(AssertionError, match="`lstm` \\(LSTM\\)"):
        assert_converted(model, dynamic={nn.Embedding, nn.Linear, nn.LSTM})


def test_subclass_of_a_dynamic_type_is_named_as_a_subclass():
    class GatedLinear(nn.Linear):
        pass

    model = RecurrentNet()
    model.fc = GatedLinear(16, 8)
    quantized = tq.quantize_dynamic(model.eval(), {nn.LSTM, nn.Linear})
    with pytest.raises(AssertionError) as failure:
        assert_converted(quantized, dynamic={nn.LSTM, nn.Linear})
    assert "`fc` (GatedLinear): a subclass of Linear; quantize_dynamic looks types up exactly" in str(
        failure.value
    )


class TracedText(RecurrentNet):
    def forward(self, tokens):
        return super().forward(tokens)


def test_fx_prepared_with_a_dynamic_qconfig():
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    mapping = tq.QConfigMapping().set_object_type(nn.Linear, tq.default_dynamic_qconfig)
    mapping.set_object_type(nn.LSTM, tq.default_dynamic_qconfig)
    with quantized_engine("x86"):
        prepared = prepare_fx(TracedText().eval(), mapping, (tokens(),))
        assert all(row.kind == "PlaceholderObserver" for row in quant_state(prepared))
        assert_calibrated(prepared, (tokens(),))  # placeholders: nothing to calibrate
        assert_parity(prepared, (tokens(),))
        converted = convert_fx(copy.deepcopy(prepared))
        assert_converted(converted, dynamic={nn.LSTM, nn.Linear})


def test_example_inputs_the_prepared_model_rejects_are_reported_as_such():
    from torch.ao.quantization.quantize_fx import prepare_fx

    mapping = tq.QConfigMapping().set_object_type(nn.Linear, tq.default_dynamic_qconfig)
    with quantized_engine("x86"):
        prepared = prepare_fx(RecurrentNet().eval(), mapping, (tokens(),))  # traces `extra`
        with pytest.raises(AssertionError, match="the prepared GraphModule itself raises on the example inputs"):
            assert_parity(prepared, (tokens(),))
