"""pytest plugin of torch-qlint, and qlint's runtime checks for use in tests.

The checks raise AssertionError with messages that name the module and the numbers;
importing them does not import torch.
"""

from qlint.runtime import (
    assert_calibrated,
    assert_converted,
    assert_fused,
    assert_parity,
    assert_qparams_in_optimizer,
    assert_quant_state,
    quant_report,
    quant_state,
    set_quant_state,
)
from pytest_qlint.suite import quant_test_suite

__all__ = [
    "assert_calibrated",
    "assert_converted",
    "assert_fused",
    "assert_parity",
    "assert_qparams_in_optimizer",
    "assert_quant_state",
    "quant_report",
    "quant_state",
    "quant_test_suite",
    "set_quant_state",
]
