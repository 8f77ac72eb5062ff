"""Runtime checks on a live torch model, on every quantization flow (eager, FX, PT2E, dynamic).

Plain functions, usable from scripts, notebooks and pytest; each raises AssertionError
naming the offending modules.  torch is imported only when a check runs, so
``import qlint.runtime`` works without it.
"""

from qlint.runtime._torch import require_torch
from qlint.runtime.calibration import assert_calibrated
from qlint.runtime.convert import assert_converted
from qlint.runtime.fusion import assert_fused
from qlint.runtime.optimizer import assert_qparams_in_optimizer
from qlint.runtime.parity import assert_parity
from qlint.runtime.report import QuantReport, quant_report
from qlint.runtime.state import (
    QuantState,
    QuantStateRow,
    assert_quant_state,
    quant_state,
    set_quant_state,
)

__all__ = [
    "QuantReport",
    "QuantState",
    "QuantStateRow",
    "assert_calibrated",
    "assert_converted",
    "assert_fused",
    "assert_parity",
    "assert_qparams_in_optimizer",
    "assert_quant_state",
    "quant_report",
    "quant_state",
    "require_torch",
    "set_quant_state",
]
