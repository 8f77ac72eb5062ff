"""Proof by running for the FloatFunctional fixes (QL203, QL301, QL302, QL303).

For each fix kind: `qlint --fix --unsafe-fixes` rewrites a float model; the original and
the fixed source are imported as modules, the *same* state_dict is loaded into both with
`strict=True`, and their float outputs are bit-identical (`torch.equal`) in eval mode.
The original raises after eager convert(); the fixed model goes through qconfig,
prepare, calibrate and convert, runs, and passes `assert_converted` and `assert_parity`.
"""
from __future__ import annotations

import copy
import importlib.util
import textwrap
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
import torch.ao.quantization as tq  # noqa: E402
from models import QUANT_WARNINGS  # noqa: E402

from qlint.engine import lint_text  # noqa: E402
from qlint.registry import all_rules  # noqa: E402
from qlint.runtime import assert_converted, assert_parity  # noqa: E402

pytestmark = [*QUANT_WARNINGS,
              pytest.mark.filterwarnings("ignore:must run observer before calling calculate_qparams")]

CODES = frozenset(code for code, rule in all_rules().items() if not rule.opt_in)
HEADER = textwrap.dedent("""\
    import torch
    import torch.nn as nn
    from torch.ao.quantization import DeQuantStub, QuantStub


    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.quant = QuantStub()
            self.dequant = DeQuantStub()
            self.conv1 = nn.Conv2d(3, 4, 3, padding=1)
            self.conv2 = nn.Conv2d(3, 4, 3, padding=1)
            self.relu = nn.ReLU()

        def forward(self, x):
            x = self.quant(x)
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
    tail = "" if "return" in body else "\n        return self.dequant(y)"
    return HEADER + body + tail + "\n"


def _fixed(source: str, path: Path) -> tuple[list, str]:
    findings, data = lint_text(source.encode(), path, CODES, fix=True, unsafe=True)
    return findings, data.decode()


def _import(path: Path, source: str):
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _inputs(seed: int) -> torch.Tensor:
    return torch.randn(2, 3, 8, 8, generator=torch.Generator().manual_seed(seed))


def _quantized(model):
    model = copy.deepcopy(model).eval()
    model.qconfig = tq.get_default_qconfig(torch.backends.quantized.engine)
    prepared = tq.prepare(model)
    for seed in range(8):
        prepared(_inputs(seed))
    return prepared, tq.convert(copy.deepcopy(prepared))


@pytest.mark.parametrize("kind", sorted(BODIES))
def test_fix_keeps_float_outputs_and_makes_the_model_quantize(tmp_path, kind):
    original = _source(BODIES[kind])
    findings, fixed = _fixed(original, tmp_path / "fixed.py")
    assert fixed != original
    left = [f for f in findings if f.code[:3] in ("QL2", "QL3") and f.severity == "error"]
    assert not left, f"{kind}: errors left after --fix --unsafe-fixes:\n{left}\n{fixed}"
    assert _fixed(fixed, tmp_path / "again.py")[1] == fixed, "a second --fix changes nothing"

    before = _import(tmp_path / f"original_{kind.replace('-', '_')}.py", original).Net().eval()
    after = _import(tmp_path / f"fixed_{kind.replace('-', '_')}.py", fixed).Net().eval()
    assert list(after.state_dict()) == list(before.state_dict())
    after.load_state_dict(before.state_dict(), strict=True)
    for seed in range(3):
        assert torch.equal(before(_inputs(seed)), after(_inputs(seed))), fixed

    with pytest.raises((RuntimeError, NotImplementedError)):  # what the rules report
        _quantized(before)[1](_inputs(0))
    prepared, converted = _quantized(after)
    converted(_inputs(0))
    assert_converted(converted)
    assert_parity(prepared, _inputs(9))


def test_division_by_a_number_without_an_exact_reciprocal_stays_reported(tmp_path):
    """`x / 3` is not `x * 0.333...` bit for bit (1/3 is rounded): left as it is, reported
    with the reason."""
    original = _source("y = a / 3.0")
    findings, fixed = _fixed(original, tmp_path / "fixed.py")
    assert fixed == original
    (finding,) = [f for f in findings if f.code == "QL303"]
    assert "not fixed" in finding.message.lower() and "power of two" in finding.message
    x = _inputs(0)
    assert not torch.equal(x / 3.0, x * (1 / 3.0))  # why: the reciprocal is rounded
    assert torch.equal(x / 8.0, x * 0.125) and torch.equal(x / -0.25, x * -4.0)


def test_floatfunctional_has_no_state():
    """Why the fix keeps state_dict keys: a FloatFunctional has no parameter or buffer."""
    from torch.ao.nn.quantized import FloatFunctional

    assert not FloatFunctional().state_dict()
