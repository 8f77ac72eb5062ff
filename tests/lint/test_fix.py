"""`qlint --fix`: fixable rules rewrite their findings away, nothing else changes."""
from __future__ import annotations

import ast
import textwrap
from pathlib import Path

import pytest

from qlint.cli import main
from qlint.config import load_config
from qlint.engine import FixResult, fix_paths, lint_paths
from qlint.registry import _LABEL, UNSAFE, all_rules

FIXABLE = [code for code, rule in all_rules().items() if rule.fix_safety]


def test_fixable_rules_are_declared():
    assert FIXABLE == ["QL001", "QL101", "QL201", "QL202", "QL401", "QL402", "QL403", "QL503", "QL505", "QL701",
                       "QL704"]


@pytest.mark.parametrize("code", FIXABLE)
def test_fix_paths_writes_the_fixed_examples_in_their_tier(tmp_path: Path, code):
    """Each `Invalid(code, fixed=...)` example becomes its fixed source on disk; an unsafe
    rule's fixes wait for `unsafe=True`; a second run changes nothing."""
    rule = all_rules()[code]
    for i, source in enumerate(rule.invalid):
        if getattr(source, "fixed", None) is None:
            continue
        path = tmp_path / f"example_{i}.py"
        path.write_text(_LABEL.sub("", source))
        config = load_config(start=tmp_path, select=[code])
        if rule.fix_safety == UNSAFE:
            assert fix_paths([path], config) == FixResult()
        assert fix_paths([path], config, unsafe=True).fixed
        fixed = path.read_text()
        ast.parse(fixed)
        assert fixed == source.fixed
        assert fix_paths([path], config, unsafe=True) == FixResult()  # idempotent: nothing left to fix


SOURCE = textwrap.dedent("""
    import torch
    import torch.quantization as tq
    from torch.nn.quantized import FloatFunctional
    from torch import quantization
    from torch.nn import quantized, Conv2d
    import torch.nn as nn


    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.ReLU(inplace=True)
            self.b = nn.LeakyReLU(0.1, True)
            self.c = nn.Hardtanh(-1.0, 1.0, True, )
            self.d = nn.ReLU6(True, )
            self.e = nn.ReLU(inplace=True)  # noqa: QL201
            self.f = torch.nn.quantized.FloatFunctional()
            self.g = nn.quantized.FloatFunctional()

        def forward(self, x):
            return torch.quantization.QuantStub()(x)
""")

SAFE_FIXED = SOURCE.replace("import torch.quantization as tq", "import torch.ao.quantization as tq") \
    .replace("from torch.nn.quantized import", "from torch.ao.nn.quantized import") \
    .replace("from torch import quantization", "from torch.ao import quantization") \
    .replace("torch.nn.quantized.FloatFunctional()", "torch.ao.nn.quantized.FloatFunctional()") \
    .replace("torch.quantization.QuantStub()", "torch.ao.quantization.QuantStub()")
EXPECTED = SAFE_FIXED.replace("nn.ReLU(inplace=True)\n", "nn.ReLU()\n") \
    .replace("nn.LeakyReLU(0.1, True)", "nn.LeakyReLU(0.1)") \
    .replace("nn.Hardtanh(-1.0, 1.0, True, )", "nn.Hardtanh(-1.0, 1.0)") \
    .replace("nn.ReLU6(True, )", "nn.ReLU6()")


def test_fix_rewrites_what_it_can_and_reports_the_rest(tmp_path: Path, capsys):
    path = tmp_path / "m.py"
    path.write_text(SOURCE)
    assert main([str(path), "--fix"]) == 1
    assert path.read_text() == SAFE_FIXED
    out, err = capsys.readouterr()
    assert "fixed 5 in" in err
    # Left: the unsafe QL201 fixes, a mixed `from` import and `nn.quantized` spelled through the `nn` alias.
    assert sorted(line.split(": ")[1].split()[0] for line in out.splitlines() if line.startswith(str(path))) == [
        "QL201", "QL201", "QL201", "QL201", "QL505", "QL505"]
    assert fix_paths([path], load_config(start=tmp_path), unsafe=True) == FixResult(fixed={path: 4})
    assert path.read_text() == EXPECTED


def test_a_positional_inplace_before_other_arguments_becomes_false(tmp_path: Path):
    path = tmp_path / "m.py"
    path.write_text("import torch.nn as nn\n\n\nclass M(nn.Module):\n    def __init__(self):\n"
                    "        super().__init__()\n        self.act = nn.Hardtanh(-1.0, 1.0, True, max_value=None)\n")
    fix_paths([path], load_config(start=tmp_path), unsafe=True)
    assert "nn.Hardtanh(-1.0, 1.0, False, max_value=None)" in path.read_text()
