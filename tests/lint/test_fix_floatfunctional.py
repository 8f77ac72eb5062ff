"""The FloatFunctional fix of QL203/QL301/QL302/QL303 (qlint/rules/float_functional.py): new
names, what stays unfixed and why, comments. The runtime proof is
tests/runtime/test_fix_proof_floatfunctional.py."""
from __future__ import annotations

import textwrap
from pathlib import Path

from qlint.engine import lint_text
from qlint.registry import all_rules

CODES = frozenset(code for code, rule in all_rules().items() if not rule.opt_in)


def _fix(source: str, tmp_path: Path) -> tuple[str, list]:
    """The fixed source and the (line, message) of the arithmetic findings left."""
    path = tmp_path / "model.py"
    linted = lint_text(textwrap.dedent(source).encode(), path, CODES, fix=True, unsafe=True)
    findings, fixed = linted.findings, linted.source
    assert lint_text(fixed, path, CODES, fix=True, unsafe=True).source == fixed, "a second --fix changes nothing"
    return fixed.decode(), [(f.line, f.message) for f in findings if f.code in ("QL203", "QL301", "QL302", "QL303")]


def test_new_names_avoid_inherited_attributes_and_each_other(tmp_path):
    fixed, left = _fix("""
        import torch.nn as nn


        class Base(nn.Module):
            def __init__(self):
                super().__init__()
                self.add = nn.Identity()


        class Net(Base):
            def __init__(self):
                super().__init__()
                self.conv = nn.Conv2d(3, 3, 1)

            def forward(self, x):
                y = self.conv(x)
                return y + x, (y + y) * 0.5
    """, tmp_path)
    assert not left
    assert "self.add_1 = FloatFunctional()\n        self.add_2 = FloatFunctional()\n" in fixed
    assert "return self.add_1.add(y, x), self.mul_scalar.mul_scalar(self.add_2.add(y, y), 0.5)" in fixed


def test_sites_that_run_more_than_once_or_outside_a_module_stay_reported_with_the_reason(tmp_path):
    source = """
        import torch
        import torch.nn as nn


        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.conv = nn.Conv2d(3, 3, 1)

            def _mix(self, a, b):
                return a * b

            def forward(self, x):
                y = self.conv(x)
                z = self._mix(y, y) + self._mix(y, x)
                outs = [t * 2 for t in (y, z)]
                for _ in range(2):
                    y = y - x
                return torch.add(y, z, alpha=2), outs, helper(y), y / z, y * torch.ones(3)


        def helper(t):
            return t + 1
    """
    fixed, left = _fix(source, tmp_path)
    assert "self.add.add(self._mix(y, y), self._mix(y, x))" in fixed  # the one site that runs once
    reasons = sorted((line, message.partition("Not fixed: ")[2][:40]) for line, message in left)
    assert reasons == [
        (14, "it may run more than once per forward (a"),  # a * b: _mix runs twice
        (19, "it may run more than once per forward (a"),  # a comprehension
        (21, "it may run more than once per forward (a"),  # a loop
        (22, "an operand is a tensor the forward build"),  # torch.ones(3)
        (22, "its keyword arguments (alpha, out, round"),
        (22, "the divisor is an activation, and there "),
        (26, "it is not in a statement of a plain meth"),
    ]


def test_division_is_fixed_only_by_an_exact_reciprocal(tmp_path):
    fixed, left = _fix("""
        import torch
        import torch.nn as nn


        class Net(nn.Module):
            def forward(self, x):
                return x / 4, x / -0.5, torch.div(x, 0.125), x / 10.0, x / 2.0**200, x.div(1e-3)
    """, tmp_path)
    assert "self.div.mul_scalar(x, 0.25), self.div_1.mul_scalar(x, -2.0), self.div_2.mul_scalar(x, 8.0)" in fixed
    assert len(left) == 3 and all("power of two" in message for _, message in left)


def test_comments_and_line_breaks_are_kept(tmp_path):
    fixed, _ = _fix("""
        import torch
        import torch.nn as nn


        class Net(nn.Module):
            def forward(self, x, y):
                z = torch.cat(
                    [x, y],  # both
                    dim=1,
                )
                return (x  # left
                        + z)  # right
    """, tmp_path)
    assert "z = self.cat.cat(\n            [x, y],  # both\n            dim=1,\n        )\n" in fixed
    assert "return self.add.add(x,  # left\n                z)  # right\n" in fixed


def test_an_add_that_feeds_a_relu_becomes_add_relu(tmp_path):
    fixed, left = _fix("""
        import torch.nn as nn
        import torch.nn.functional as F


        class Block(nn.Module):
            def __init__(self):
                super().__init__()
                self.conv = nn.Conv2d(8, 8, 1)
                self.relu = nn.ReLU(inplace=True)

            def forward(self, x):
                out = self.conv(x)
                out += x
                out = self.relu(out)
                y = self.conv(out) + out
                y = self.relu(y)  # kept: its comment would go with it
                return F.relu(y + out)
    """, tmp_path)
    assert not left
    assert "out = self.add_relu.add_relu(out, x)\n        y = self.add.add(self.conv(out), out)\n" in fixed
    assert "(y)  # kept: its comment" in fixed and "relu(out)" not in fixed


def test_an_augmented_assignment_to_a_name_others_may_hold_stays(tmp_path):
    """`out = x; out += y` also changes the caller's `x`; `out = add(out, y)` would not."""
    source = """
        import torch.nn as nn


        class Block(nn.Module):
            def __init__(self):
                super().__init__()
                self.conv = nn.Conv2d(8, 8, 1)

            def forward(self, x, y):
                out = x
                out += y
                z = self.conv(x)
                z += y
                z[:, :1] += y[:, :1]
                z *= 2.0
                return out, z
    """
    fixed, left = _fix(source, tmp_path)
    assert "z = self.add.add(z, y)" in fixed and "z = self.mul_scalar.mul_scalar(z, 2.0)" in fixed
    assert [(line, message.partition("Not fixed: ")[2][:30]) for line, message in left] == [
        (15, "`out` may hold a tensor anothe"), (18, "the augmented assignment is to")]  # lines of the fixed file
