"""The fixes that add fusion (QL503) and quantization stubs (QL701, QL704): what they compute
from the semantic model, and where they decline because the boundary is not unambiguous.
(The runtime proof of each is tests/runtime/test_fix_proof_fusion.py.)"""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from qlint.engine import _Unit, Budget, lint_text
from qlint.registry import rule_codes
from qlint.semantic.fusion import child_classes, names_cover, run_groups
from qlint.semantic.index import ProjectIndex

HEADER = ("import torch.nn as nn\nfrom torch.ao.quantization import DeQuantStub, QuantStub, fuse_modules\n\n\n")

BLOCK = HEADER + textwrap.dedent("""\
    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(8, 8, 3, padding=1)
            self.bn = nn.BatchNorm2d(8)
            self.relu = nn.ReLU()
            self.proj = nn.Sequential(nn.Conv2d(8, 8, 1), nn.BatchNorm2d(8), nn.Hardswish(), nn.Linear(8, 8), nn.ReLU())

        def forward(self, x):
            return self.proj(self.relu(self.bn(self.conv(x))))


""")


def _net(fuse_body: str, blocks: str = "nn.Sequential(Block(), Block())") -> str:
    return BLOCK + textwrap.dedent(f"""\
        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.quant = QuantStub()
                self.stem = nn.Conv2d(3, 8, 3, padding=1)
                self.stem_relu = nn.ReLU()
                self.blocks = {blocks}
                self.dequant = DeQuantStub()

            def forward(self, x):
                return self.dequant(self.blocks(self.stem_relu(self.stem(self.quant(x)))))

            def fuse_model(self):
        """) + textwrap.indent(textwrap.dedent(fuse_body), " " * 8)


def _model(source: str, tmp_path: Path):
    path = tmp_path / "m.py"
    path.write_text(source)
    unit = _Unit(path, frozenset(rule_codes()), Budget())
    summary = unit.load()
    unit.model.index = ProjectIndex([summary])
    return unit.model


def _fix(source: str, codes=("QL503", "QL701", "QL704")) -> tuple[list, str]:
    linted = lint_text(source.encode(), Path("m.py"), frozenset(codes), fix=True, unsafe=True)
    findings, data = linted.findings, linted.source
    return findings, data.decode()


def _codes(source: str, codes=("QL503", "QL701", "QL704")) -> list[tuple[int, str, str]]:
    findings = lint_text(source.encode(), Path("m.py"), frozenset(codes)).findings
    return [(f.line, f.code, f.fix) for f in findings]


def test_run_groups_read_chains_and_sequential_members_by_index(tmp_path):
    model = _model(_net('fuse_modules(self, [["stem", "stem_relu"]], inplace=True)\n'), tmp_path)
    block = model.classes["Block"]
    # Conv-BN in the Sequential, then a Hardswish that breaks the run, then Linear-ReLU.
    assert run_groups(model, block) == [["conv", "bn", "relu"], ["proj.0", "proj.1"], ["proj.3", "proj.4"]]
    assert [(c.node.name.value, paths) for c, paths in child_classes(model, model.classes["Net"])] == [
        ("Block", ("blocks.0", "blocks.1"))]


def test_names_cover_matches_dotted_paths_and_unknown_positions():
    assert names_cover({"blocks.1.conv"}, ("blocks.0", "blocks.1"), ["conv", "bn"])
    assert names_cover({"blocks.3.bn"}, ("blocks.*",), ["conv", "bn"])
    assert not names_cover({"blocks.conv"}, ("blocks.0",), ["conv", "bn"])


def test_a_child_run_is_reported_and_fixed_with_a_fuse_model_of_its_own():
    source = _net('fuse_modules(self, [["stem", "stem_relu"]], inplace=True)\n')
    assert _codes(source) == [(14, "QL503", "unsafe")]
    findings, fixed = _fix(source)
    assert not findings
    assert 'fuse(self, [["conv", "bn", "relu"], ["proj.0", "proj.1"], ["proj.3", "proj.4"]], inplace=True)' in fixed
    assert fixed.endswith("        for m in self.modules():\n            if type(m) is Block:\n"
                          "                m.fuse_model()\n")
    assert _fix(fixed)[1] == fixed


def test_a_child_named_by_dotted_paths_is_covered():
    source = _net('fuse_modules(self, [["stem", "stem_relu"], ["blocks.0.conv", "blocks.0.bn", "blocks.0.relu"]],'
                  ' inplace=True)\n')
    assert _codes(source) == []


@pytest.mark.parametrize("loop", [
    "for m in self.modules():\n    if type(m) is Block:\n        fuse_modules(m, [['conv', 'bn', 'relu']], inplace=True)\n",
    # corpus9 efficientnet_retrieval.py: the blocks fused one by one, by a loop variable
    "for block in self.blocks:\n    fuse_modules(block, [['conv', 'bn', 'relu']], inplace=True)\n",
])
def test_a_model_fusing_modules_its_groups_cannot_name_is_not_judged_for_its_children(loop):
    """Its twin, test_a_child_run_is_reported_and_fixed_with_a_fuse_model_of_its_own, has no loop."""
    source = _net('fuse_modules(self, [["stem", "stem_relu"]], inplace=True)\n' + loop)
    assert _codes(source) == []


def test_a_child_of_two_models_is_reported_without_a_fix():
    """Two models fusing the same child class: a generated method called from both could be
    run twice on one instance (fuse_modules then raises): no fix."""
    source = _net('fuse_modules(self, [["stem", "stem_relu"]], inplace=True)\n') + textwrap.dedent("""

        class Other(nn.Module):
            def __init__(self):
                super().__init__()
                self.block = Block()
                self.fc = nn.Linear(8, 8)
                self.fc_relu = nn.ReLU()

            def forward(self, x):
                return self.fc_relu(self.fc(self.block(x)))

            def fuse_model(self):
                fuse_modules(self, [["fc", "fc_relu"]], inplace=True)
        """)
    assert _codes(source) == [(14, "QL503", "")]


def test_a_model_whose_fuse_method_cannot_say_is_qat_gets_no_child_hook():
    source = _net('fuse = fuse_modules_qat if self.training else fuse_modules\n'
                  'fuse(self, [["stem", "stem_relu"]], inplace=True)\n').replace(
        "fuse_modules\n", "fuse_modules, fuse_modules_qat\n", 1)
    assert _codes(source) == [(14, "QL503", "")]


def test_own_runs_join_the_first_fuse_list_that_names_real_submodules():
    source = HEADER + textwrap.dedent("""\
        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.conv1 = nn.Conv2d(3, 8, 3)
                self.bn1 = nn.BatchNorm2d(8)
                self.fc = nn.Linear(8, 8)
                self.fc_relu = nn.ReLU()

            def forward(self, x):
                return self.fc_relu(self.fc(self.bn1(self.conv1(x)).mean((2, 3))))

            def fuse_model(self):
                fuse_modules(self, ['conv', 'bn'], inplace=True)  # stale names: QL501
                fuse_modules(self, [
                    ['conv1', 'bn1'],
                ], inplace=True)
        """)
    findings, fixed = _fix(source)
    assert "fuse_modules(self, ['conv', 'bn'], inplace=True)  # stale names: QL501" in fixed
    assert "        fuse_modules(self, [\n            ['conv1', 'bn1'],\n            ['fc', 'fc_relu'],\n        ], inplace=True)" \
        in fixed
    assert not [f for f in findings if f.code == "QL503"]


STUBS = ("import torch.nn as nn\nfrom torch.ao.quantization import DeQuantStub, QuantStub\n\n\n"
         "class Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
         "        self.quant = QuantStub()\n        self.conv = nn.Conv2d(3, 8, 3)\n"
         "        self.conv2 = nn.Conv2d(3, 8, 3)\n{more}\n    def forward(self, {params}):\n{body}")


def _stubs(body: str, params: str = "x", more: str = "        self.dequant = DeQuantStub()\n") -> str:
    return STUBS.format(body=textwrap.indent(textwrap.dedent(body), " " * 8), params=params, more=more)


def test_second_input_used_twice_gets_no_quant_stub():
    """`depth` also feeds a float op: quantizing it at one call would not be the whole story."""
    source = _stubs("""\
        y = self.conv(self.quant(x))
        z = self.conv2(depth)
        return self.dequant(y), depth.mean()
        """, params="x, depth")
    assert _codes(source) == [(15, "QL701", "")]


def test_unused_quant_stub_with_two_inputs_is_reported_without_a_fix():
    source = _stubs("""\
        return self.dequant(self.conv(x) + self.conv2(y))
        """, params="x, y")
    assert ("QL704", "") in [(code, fix) for _, code, fix in _codes(source)]


def test_unused_quant_stub_whose_input_is_read_twice_gets_no_fix():
    """A residual reads `x` again: quantizing its first use would mix a quantized and a float x."""
    source = _stubs("""\
        return self.dequant(self.conv(x) + x)
        """)
    assert [(code, fix) for _, code, fix in _codes(source)] == [("QL704", "")]


def test_quantized_and_float_returns_leave_the_exit_to_the_author():
    source = _stubs("""\
        y = self.conv(self.quant(x))
        if self.training:
            return y
        return y.dequantize()
        """, more="")
    assert [(code, fix) for _, code, fix in _codes(source)] == [("QL704", "")]


def test_a_returned_tuple_gets_a_dequant_stub_per_quantized_element():
    source = _stubs("""\
        y = self.conv(self.quant(x))
        return y, y.shape[1]
        """, more="")
    findings, fixed = _fix(source)
    assert "        return self.dequant(y), y.shape[1]\n" in fixed
    assert "        self.dequant = DeQuantStub()\n" in fixed and not findings


def test_a_dequant_name_taken_by_a_base_class_is_not_reused():
    source = ("import torch.nn as nn\nfrom torch.ao.quantization import QuantStub\n\n\n"
              "class Base(nn.Module):\n    def dequant(self, x):\n        return x\n\n\n"
              "class Net(Base):\n    def __init__(self):\n        super().__init__()\n"
              "        self.quant = QuantStub()\n        self.conv = nn.Conv2d(3, 8, 3)\n\n"
              "    def forward(self, x):\n        return self.conv(self.quant(x))\n")
    findings, fixed = _fix(source)
    assert "self.dequant_1 = DeQuantStub()" in fixed and "return self.dequant_1(self.conv(self.quant(x)))" in fixed


def test_the_generated_method_s_local_name_never_shadows_the_file_s_fuse_function():
    source = _net('fuse(self, [["stem", "stem_relu"]], inplace=True)\n').replace(
        "DeQuantStub, QuantStub, fuse_modules\n", "DeQuantStub, QuantStub, fuse_modules as fuse\n", 1)
    findings, fixed = _fix(source)
    assert "        fuse_function = fuse_modules_qat if is_qat else fuse\n" in fixed and not findings
