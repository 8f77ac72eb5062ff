"""The semantic model: names resolved through imports, activations told apart from shapes
and configuration, module attributes through inheritance, loops and exclusive branches."""
from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from qlint.config import load_config
from qlint.engine import lint_paths, lint_source


def codes_by_line(source: str) -> dict[int, set[str]]:
    found = {}
    for finding in lint_source(textwrap.dedent(source), "case.py"):
        found.setdefault(finding.line, set()).add(finding.code)
    return found


@pytest.mark.parametrize("imports, call", [
    ("import torch.nn.functional as F", "F.relu(x)"),
    ("from torch.nn import functional as Fn", "Fn.relu(x)"),
    ("from torch.nn.functional import relu as r", "r(x)"),
    ("import torch as T", "T.relu(x)"),
    ("import torch", "torch.nn.functional.relu(x)"),
    ("from torch import relu", "relu(x)"),
])
def test_alias_forms_resolve_to_the_same_function(imports, call):
    source = f"{imports}\nimport torch.nn as nn\n\n\nclass M(nn.Module):\n    def forward(self, x):\n        return {call}\n"
    assert codes_by_line(source) == {7: {"QL101"}}


def test_a_local_name_shadowing_an_import_is_not_the_import():
    source = """
        import torch.nn as nn
        from torch.nn.functional import relu


        class M(nn.Module):
            def forward(self, x):
                relu = lambda v: v
                return relu(x)
    """
    assert codes_by_line(source) == {}


@pytest.mark.parametrize("expression", [
    "x.size(0) * 2", "x.shape[-1] ** -0.5", "C // self.num_heads", "torch.arange(n) * 2 + 1",
    "len(x) - 1", "x.dim() + 1", "self.scale * 2", "math.sqrt(C) * n", "int(n * 1.5)",
    "torch.arange(n, dtype=torch.float32) / n", "(x.shape[2] - 1) // 2", "x.numel() / n",
])
def test_shape_and_config_arithmetic_is_silent(expression):
    source = f"""
        import math
        import torch
        import torch.nn as nn


        class M(nn.Module):
            def __init__(self):
                super().__init__()
                self.num_heads = 4
                self.scale = 0.5

            def forward(self, x, n: int):
                B, N, C = x.shape
                value = {expression}
                return x, value
    """
    assert codes_by_line(source) == {}


@pytest.mark.parametrize("annotation, reported", [
    ("int", False), ("float", False), ("bool", False), ("str", False), ("Optional[int]", False),
    ("List[int]", False), ("Tuple[int, int]", False), ("int | None", False),
    ("Tensor", True), ("Optional[Tensor]", True), ("torch.Tensor", True), ("", True),
])
def test_forward_parameters_are_activations_unless_annotated_otherwise(annotation, reported):
    param = f"s: {annotation}" if annotation else "s"
    source = f"""
        from typing import List, Optional, Tuple
        import torch
        import torch.nn as nn
        from torch import Tensor


        class M(nn.Module):
            def forward(self, x, {param}):
                return s * 2
    """
    assert (codes_by_line(source) == {10: {"QL301"}}) is reported


def test_values_flow_through_helper_methods_tuples_and_lists():
    source = """
        import torch
        import torch.nn as nn


        class M(nn.Module):
            def __init__(self):
                super().__init__()
                self.conv = nn.Conv2d(3, 3, 1)

            def forward(self, x):
                feats = []
                for _ in range(2):
                    feats.append(self.conv(x))
                a, b = self._pair(feats)
                h, w = x.shape[-2:]
                return self._merge(a, b), h * w

            def _pair(self, feats):
                return feats[0], feats[1]

            def _merge(self, a, b):
                return a + b
    """
    found = codes_by_line(source)
    assert found == {14: {"QL401"}, 23: {"QL301"}}


def test_branch_arms_are_exclusive_and_early_returns_split_the_path():
    source = """
        import torch.nn as nn


        class M(nn.Module):
            def __init__(self):
                super().__init__()
                self.relu = nn.ReLU()
                self.use_a = True

            def forward(self, x):
                if self.use_a:
                    return self.relu(x)
                y = self.relu(x) if self.training else x
                return y
    """
    assert codes_by_line(source) == {}


def test_iterating_a_module_list_calls_each_member_once():
    source = """
        import torch.nn as nn


        class M(nn.Module):
            def __init__(self):
                super().__init__()
                self.blocks = nn.ModuleList([nn.Conv2d(3, 3, 1) for _ in range(3)])
                self.heads = nn.ModuleList([nn.Conv2d(3, 3, 1) for _ in range(3)])
                self.norm = nn.BatchNorm2d(3)

            def forward(self, x):
                outs = []
                for block in self.blocks:
                    x = block(x)
                for head, feat in zip(self.heads, [x, x, x]):
                    outs.append(head(feat))
                outs += [self.norm(x) for _ in range(1)]
                return outs
    """
    assert codes_by_line(source) == {18: {"QL401"}}


def test_module_classes_through_bases_in_other_files(tmp_path: Path):
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("from .base import Base\n")
    (package / "base.py").write_text(textwrap.dedent("""
        import torch.nn as nn


        class Base(nn.Module):
            def __init__(self):
                super().__init__()
                self.relu = nn.ReLU()
                self.scale = nn.Parameter(nn.init.ones_(nn.Parameter()))
    """))
    (package / "child.py").write_text(textwrap.dedent("""
        from pkg import Base


        class Child(Base):
            def forward(self, x):
                y = self.relu(x)
                return self.relu(y) * self.scale
    """))
    findings = lint_paths(sorted(package.glob("*.py")), load_config(start=tmp_path), jobs=1)
    found = {(Path(f.path).name, f.line, f.code) for f in findings}
    assert found == {("child.py", 8, "QL401"), ("child.py", 8, "QL301"), ("child.py", 8, "QL504")}


def test_a_class_that_is_not_a_module_is_not_linted():
    source = """
        class Plain:
            def forward(self, x, y):
                return x + y
    """
    assert codes_by_line(source) == {}


def test_unknown_modules_are_not_judged_for_reuse():
    source = """
        import torch.nn as nn


        class M(nn.Module):
            def __init__(self, act_layer, block):
                super().__init__()
                self.act = act_layer()
                self.block = block
                self.drop = nn.Dropout(0.1)

            def forward(self, x):
                x = self.drop(self.act(x))
                return self.drop(self.act(self.block(x)))
    """
    assert codes_by_line(source) == {}


def test_masks_and_constructors_are_not_value_ops_but_conversions_crash():
    source = """
        import torch
        import torch.nn as nn


        class M(nn.Module):
            def forward(self, x, y):
                mask = (x > 0) & (y < 1)
                noise = torch.zeros_like(x) + x.new_zeros(3).sum()
                z = x.masked_fill(~mask, 0.0)
                return z.float(), noise
    """
    assert codes_by_line(source) == {11: {"QL104"}}


def test_method_and_function_spellings_of_one_op_get_one_code():
    source = """
        import torch
        import torch.nn as nn


        class M(nn.Module):
            def forward(self, x, y):
                a = x.softmax(dim=-1)
                b = torch.softmax(x, -1)
                c = x.exp()
                d = torch.multiply(x, y)
                return a, b, c, d
    """
    assert codes_by_line(source) == {8: {"QL102"}, 9: {"QL102"}, 10: {"QL104"}, 11: {"QL302"}}


def test_fuse_groups_through_a_wrapper_function_in_another_file(tmp_path: Path):
    """torchvision fuses through `_fuse_modules(model, groups, is_qat)`; the groups still count."""
    package = tmp_path / "zoo"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "utils.py").write_text(textwrap.dedent("""
        import torch


        def _fuse_modules(model, modules_to_fuse, is_qat, **kwargs):
            method = torch.ao.quantization.fuse_modules_qat if is_qat else torch.ao.quantization.fuse_modules
            return method(model, modules_to_fuse, **kwargs)
    """))
    (package / "block.py").write_text(textwrap.dedent("""
        import torch.nn as nn
        from .utils import _fuse_modules


        class Block(nn.Module):
            def __init__(self, norm_layer=nn.BatchNorm2d):
                super().__init__()
                self.conv = nn.Conv2d(3, 3, 1)
                self.bn = norm_layer(3)
                self.relu = nn.ReLU()

            def forward(self, x):
                return self.relu(self.bn(self.conv(x)))

            def fuse_model(self, is_qat=None):
                _fuse_modules(self, [["conv", "bn", "relu"], ["conv", "norm"]], is_qat, inplace=True)
    """))
    findings = lint_paths(sorted(package.glob("*.py")), load_config(start=tmp_path), jobs=1)
    assert [(Path(f.path).name, f.line, f.code) for f in findings] == [("block.py", 17, "QL501")]
    assert "'norm' is not a submodule of Block" in findings[0].message
    assert "Its submodules: bn, conv, relu." in findings[0].message


def test_a_file_linted_alone_finds_its_base_class_in_the_project(tmp_path: Path):
    """pre-commit and `pytest --qlint` hand over one file: its base class in another file of
    the project (through a package re-export) is read on demand, and reported as a dependency."""
    from qlint.engine import lint_with_dependencies

    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("from .base import Base\n")
    (package / "base.py").write_text(
        "import torch.nn as nn\n\n\nclass Base(nn.Module):\n    def __init__(self):\n"
        "        super().__init__()\n        self.relu = nn.ReLU()\n")
    child = package / "child.py"
    child.write_text("from pkg import Base\n\n\nclass Child(Base):\n    def forward(self, x):\n"
                     "        return self.relu(self.relu(x)) + x\n")
    findings, dependencies = lint_with_dependencies([child], load_config(start=tmp_path), jobs=1)
    assert {(f.line, f.code) for f in findings} == {(6, "QL401"), (6, "QL301")}
    assert sorted(p.name for p in dependencies) == ["__init__.py", "base.py"]


def test_indices_are_not_activations_but_values_are():
    source = """
        import torch
        import torch.nn as nn


        class M(nn.Module):
            def forward(self, x, y):
                scores, inds = x.flatten(1).topk(5)
                rows = inds // 7
                best, where = torch.max(x, 1)
                both = torch.max(x, y)
                return scores * 2, rows, where % 3, best - 1, both + 1
    """
    assert codes_by_line(source) == {12: {"QL301"}}


def test_sequential_of_an_ordered_dict_has_named_members():
    source = """
        from collections import OrderedDict
        import torch.nn as nn
        from torch.ao.quantization import fuse_modules


        class M(nn.Module):
            def __init__(self):
                super().__init__()
                self.features = nn.Sequential(OrderedDict([
                    ("conv", nn.Conv2d(3, 8, 3)), ("bn", nn.BatchNorm2d(8)), ("relu", nn.ReLU())]))

            def forward(self, x):
                return self.features(x)

            def fuse_model(self):
                fuse_modules(self, [["features.conv", "features.bn", "features.relu"]], inplace=True)
    """
    assert codes_by_line(source) == {}
