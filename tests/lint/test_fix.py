"""`qlint --fix`: fixable rules rewrite their findings away, nothing else changes."""
from __future__ import annotations

import ast
import textwrap
from pathlib import Path

import pytest

from qlint.cli import main
from qlint.config import load_config
from qlint.engine import FixResult, fix_paths, lint_text
from qlint.registry import _LABEL, UNSAFE, all_rules

FIXABLE = [code for code, rule in all_rules().items() if rule.fix_safety]


def test_fixable_rules_are_declared():
    assert FIXABLE == ["QL001", "QL101", "QL201", "QL202", "QL203", "QL301", "QL302", "QL303", "QL401", "QL402",
                       "QL403", "QL503", "QL505", "QL701", "QL704"]


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


def test_new_names_never_collide_across_the_files_of_a_run(tmp_path: Path):
    """A base and its subclass in two files each get a ReLU: the one fixed second sees the
    name the first took."""
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "a.py").write_text(
        "import torch\nimport torch.nn as nn\n\n\nclass A(nn.Module):\n    def __init__(self):\n"
        "        super().__init__()\n        self.conv = nn.Conv2d(3, 3, 1)\n\n"
        "    def forward(self, x):\n        return torch.relu(self.conv(x))\n")
    (tmp_path / "pkg" / "b.py").write_text(
        "import torch\nfrom pkg.a import A\n\n\nclass B(A):\n    def forward(self, x):\n"
        "        return torch.relu(super().forward(x) + 1.0)\n")
    files = [tmp_path / "pkg" / "a.py", tmp_path / "pkg" / "b.py"]
    result = fix_paths(files, load_config(start=tmp_path), unsafe=True)
    assert result == FixResult(fixed={files[0]: 1, files[1]: 2})  # b.py: the ReLU and the `+ 1.0` (QL301)
    assert "self.relu = nn.ReLU()" in files[0].read_text()
    assert "self.relu_1 = torch.nn.ReLU()" in files[1].read_text()
    assert "return self.relu_1(self.add_scalar.add_scalar(super().forward(x), 1.0))" in files[1].read_text()


def test_in_place_writes_another_reference_may_see_are_left_as_they_are():
    """Hard negatives of the QL101/QL202 fixes: each write below is seen by something else
    (or its out-of-place namesake differs), so rewriting it would change the float model."""
    source = textwrap.dedent("""
        import torch.nn as nn


        class M(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(4, 4)
                self.fc2 = nn.Linear(4, 4)
                self.drop = nn.Identity()

            def forward(self, x):
                x.add_(1.0)  # an input of forward: the caller holds it
                out = self.fc(x)
                identity = out
                out.relu_()  # `identity` holds the same tensor
                h = self.drop(out)
                h.mul_(2.0)  # Identity returns its input: `out` is `h`
                g = self.fc2(h)
                g.bernoulli_(0.5)  # x.bernoulli() draws with g as probabilities
                y = out.clamp_(0, 1)  # `out` keeps the clamped tensor under another name
                return identity, h, g, y
        """)
    findings, fixed = lint_text(source.encode(), Path("m.py"), frozenset({"QL101", "QL202"}), fix=True, unsafe=True)
    assert fixed.decode() == source
    assert sorted((f.line, f.code) for f in findings if f.fix) == []
    assert {(f.line, f.code) for f in findings} >= {(13, "QL202"), (16, "QL101"), (16, "QL202"), (18, "QL202"),
                                                     (20, "QL202"), (21, "QL202")}


def test_new_statements_follow_the_file_s_line_endings_indentation_and_encoding(tmp_path: Path):
    path = tmp_path / "m.py"
    path.write_bytes(b"# -*- coding: latin-1 -*-\r\nimport torch\r\nimport torch.nn as nn\r\n\r\n\r\n"
                     b"class M(nn.Module):\r\n\tdef __init__(self):\r\n\t\tsuper().__init__()\r\n"
                     b"\t\tself.conv = nn.Conv2d(3, 3, 1)  # caf\xe9\r\n\r\n"
                     b"\tdef forward(self, x):\r\n\t\treturn torch.relu(self.conv(x))\r\n")
    assert fix_paths([path], load_config(start=tmp_path), unsafe=True) == FixResult(fixed={path: 1})
    assert path.read_bytes() == (b"# -*- coding: latin-1 -*-\r\nimport torch\r\nimport torch.nn as nn\r\n\r\n\r\n"
                                 b"class M(nn.Module):\r\n\tdef __init__(self):\r\n\t\tsuper().__init__()\r\n"
                                 b"\t\tself.conv = nn.Conv2d(3, 3, 1)  # caf\xe9\r\n\t\tself.relu = nn.ReLU()\r\n\r\n"
                                 b"\tdef forward(self, x):\r\n\t\treturn self.relu(self.conv(x))\r\n")
