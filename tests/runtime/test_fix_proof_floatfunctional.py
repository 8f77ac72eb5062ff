"""Proof by running for the FloatFunctional fixes (QL203, QL301, QL302, QL303).

For each fix kind: `qlint --fix --unsafe-fixes` rewrites a float model; the original and
the fixed source are imported as modules, the *same* state_dict is loaded into both with
`strict=True`, and their float outputs are bit-identical (`torch.equal`) in eval mode.
The original crashes after eager convert(); the fixed model goes through qconfig,
prepare, calibrate and convert, runs, and passes `assert_converted` and `assert_parity`
(the shared harness: tests/runtime/fixproof.py).
"""
from __future__ import annotations

import textwrap

import pytest

torch = pytest.importorskip("torch")
from fixproof import Proof, assert_same_float, fix_source, quantize  # noqa: E402
from models import QUANT_WARNINGS  # noqa: E402

from qlint.engine import lint_source  # noqa: E402

pytestmark = [*QUANT_WARNINGS,
              pytest.mark.filterwarnings("ignore:must run observer before calling calculate_qparams")]

CODES = ("QL203", "QL301", "QL302", "QL303")
HEADER = textwrap.dedent("""\
    import torch
    import torch.nn as nn


    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 4, 3, padding=1)
            self.conv2 = nn.Conv2d(3, 4, 3, padding=1)
            self.relu = nn.ReLU()

        def forward(self, x):
            a = self.conv1(x)
            b = self.conv2(x)
""")
# What the forward computes from the two conv outputs `a` and `b` (4 x 8 x 8 each).
BODIES = {
    "add": "y = a + b  # the residual",
    "add-scalar": "y = (a + 1.5) + (0.25 + b)",
    "sub": "y = a - b",
    "sub-scalar": "y = (a - 1) + (2 - b)",
    "mul": "y = a * b",
    "mul-scalar": "y = (a * 0.5) * (3 * b)",
    "matmul": "y = a @ b",
    "torch-functions": "y = torch.cat([torch.add(a, b), torch.mul(a, 2.0), torch.matmul(a, b), torch.sub(a, b)], dim=1)",
    "tensor-methods": "y = a.add(b).mul(a).sub(b)",
    "augassign": "y = self.conv1(x)\n        y += b\n        y *= 0.5\n        y -= b",
    "division": "y = a / 8 + b / -0.25",
    "add-relu": "y = a + b\n        y = self.relu(y)",
    "add-relu-augassign": "y = self.conv1(x)\n        y += b\n        y = self.relu(y)",
}


def _source(body: str) -> str:
    body = "\n".join(" " * 8 + line if i == 0 else line for i, line in enumerate(body.splitlines()))
    return HEADER + body + "\n        return y\n"


def _batches(count: int) -> list:
    return [(torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(seed)),) for seed in range(count)]


@pytest.mark.parametrize("kind", sorted(BODIES))
def test_fix_keeps_float_outputs_and_makes_the_model_quantize(tmp_path, kind):
    proof = Proof.of(_source(BODIES[kind]), CODES, tmp_path, lambda module: module.Net())
    assert not [f for f in lint_source(proof.fixed_source) if f.code in CODES], proof.fixed_source
    assert_same_float(proof.original, proof.fixed, _batches(1)[0])
    with pytest.raises(AssertionError, match="convert|converted"):  # what the rules report
        quantize(proof.original, _batches(4))
    quantize(proof.fixed, _batches(4))


def test_division_by_a_number_without_an_exact_reciprocal_stays_reported(tmp_path):
    """`x / 3` is not `x * 0.333...` bit for bit (1/3 is rounded): left as it is, reported
    with the reason."""
    original = _source("y = a / 3.0")
    assert fix_source(original, CODES) == original
    (finding,) = [f for f in lint_source(original) if f.code == "QL303"]
    assert "not fixed" in finding.message.lower() and "power of two" in finding.message
    x = _batches(1)[0][0]
    assert not torch.equal(x / 3.0, x * (1 / 3.0))  # why: the reciprocal is rounded
    assert torch.equal(x / 8.0, x * 0.125) and torch.equal(x / -0.25, x * -4.0)


def test_floatfunctional_has_no_state():
    """Why the fix keeps state_dict keys: a FloatFunctional has no parameter or buffer."""
    from torch.ao.nn.quantized import FloatFunctional

    assert not FloatFunctional().state_dict()
