"""torch 2.13 warns on every torch.ao.quantization prepare/convert call.  The helpers' own
calls (the convert of a copy inside assert_parity, quantize/convert in the PT2E and FX
paths) must not warn in a user's run with ``-W error``; the user's own calls still warn."""

from __future__ import annotations

import copy
import warnings

import pytest

torch = pytest.importorskip("torch")

import torch.ao.quantization as tq  # noqa: E402
from flows import EagerNet, PlainNet, batch, calibrate, prepare_fx_flow, train  # noqa: E402
from models import randomized_bn  # noqa: E402

from qlint.runtime import (  # noqa: E402
    assert_calibrated,
    assert_converted,
    assert_fused,
    assert_parity,
    assert_quant_state,
    quant_state,
)

DEPRECATED = "torch.ao.quantization is deprecated"


def _run_every_helper(model, converted):
    x = batch(5)
    quant_state(model)
    assert_quant_state(model, observers=True)
    assert_calibrated(model, x)
    assert_fused(model, x)
    assert_parity(model, x)
    assert_converted(converted)


def test_eager_helpers_raise_no_deprecation_warning_while_user_calls_do():
    model = randomized_bn(EagerNet()).train()
    model = tq.fuse_modules_qat(model, [["conv1", "bn1", "relu1"], ["conv2", "bn2"]])
    model.qconfig = tq.get_default_qat_qconfig("x86")
    with pytest.warns(DeprecationWarning, match=DEPRECATED):
        tq.prepare_qat(model, inplace=True)
    train(model)
    with pytest.warns(DeprecationWarning, match=DEPRECATED):
        converted = tq.convert(copy.deepcopy(model).eval())
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _run_every_helper(model, converted)
    with pytest.warns(DeprecationWarning, match=DEPRECATED):  # and the user's next call
        tq.convert(copy.deepcopy(model).eval())


def test_fx_helpers_raise_no_deprecation_warning():
    with pytest.warns(DeprecationWarning, match=DEPRECATED):
        model = calibrate(prepare_fx_flow(randomized_bn(PlainNet()), qat=False))
    from torch.ao.quantization.quantize_fx import convert_fx

    with pytest.warns(DeprecationWarning, match=DEPRECATED):
        converted = convert_fx(copy.deepcopy(model))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        _run_every_helper(model, converted)


FRESH_PROCESS = """
import sys, warnings
sys.path.insert(0, {tests!r})
import torch
import torch.ao.quantization as tq
from flows import EagerNet, batch, train
from models import randomized_bn
from qlint.runtime import assert_calibrated, assert_parity

model = randomized_bn(EagerNet()).train()
model = tq.fuse_modules_qat(model, [["conv1", "bn1", "relu1"], ["conv2", "bn2"]])
model.qconfig = tq.get_default_qat_qconfig("x86")
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    tq.prepare_qat(model, inplace=True)
assert any("{deprecated}" in str(warning.message) for warning in caught), caught
train(model)
warnings.simplefilter("error")  # as pytest -W error: the first convert is the helper's
assert_calibrated(model, batch(1))
assert_parity(model, batch(5))
print("no warning from the helpers")
"""


def test_first_convert_of_the_process_inside_a_helper_does_not_warn():
    """torch's quantized-tensor warnings fire once per process: here the helper's internal
    convert is the first, under an error filter."""
    import subprocess
    import sys
    from pathlib import Path

    tests = str(Path(__file__).resolve().parent)
    code = FRESH_PROCESS.format(tests=tests, deprecated=DEPRECATED)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "no warning from the helpers" in result.stdout
