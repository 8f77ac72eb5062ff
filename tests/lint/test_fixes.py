"""qlint/fixes.py: the edit model rules' fixes are made of, applied in one pass."""
from __future__ import annotations

import textwrap
from pathlib import Path

import libcst as cst

from qlint.fixes import Fix, TorchName, apply_fixes
from qlint.semantic.model import FileModel, ProjectIndex
from qlint.semantic.walk import iter_nodes


def _model(source: str) -> FileModel:
    source = textwrap.dedent(source)
    model = FileModel(Path("m.py"), source, cst.parse_module(source))
    model.index = ProjectIndex([model.summary()])
    return model


def _calls(model: FileModel, qname: str) -> list[cst.Call]:
    return [n for n in iter_nodes(model.module) if isinstance(n, cst.Call) and model.qname(n.func) == qname]


def _relu_fixes(model: FileModel, cls: str, after=None) -> list[Fix]:
    fixes = []
    for call in _calls(model, "torch.relu"):
        fix = Fix(model)
        relu = fix.add_member(model.classes[cls], "relu", "{ReLU}()", after=after, ReLU=TorchName("torch.nn.ReLU"))
        fix.replace(call, "self.{relu}({x})", relu=relu, x=call.args[0].value)
        fixes.append(fix)
    return fixes


def test_new_members_take_free_names_and_go_after_their_relatives():
    model = _model('''
        import torch
        import torch.nn as nn


        class Base(nn.Module):
            def relu(self, x):  # inherited: taken
                return x


        class Block(Base):
            def __init__(self):
                super().__init__()
                self.conv = nn.Conv2d(3, 3, 1)  # kept
                self.relu_1 = nn.ReLU()
                self.n = 3

            def forward(self, x):
                return torch.relu(self.conv(x)) + torch.relu(x)
        ''')
    module, applied = apply_fixes(model, _relu_fixes(model, "Block", after="conv"))
    assert applied == 2
    assert module.code == model.source.replace(
        "# kept\n", "# kept\n        self.relu_2 = nn.ReLU()\n        self.relu_3 = nn.ReLU()\n").replace(
        "torch.relu(self.conv(x)) + torch.relu(x)", "self.relu_2(self.conv(x)) + self.relu_3(x)")


def test_a_class_without_init_gets_one_and_an_import_is_added_only_when_nothing_binds_the_name():
    model = _model('''
        """Doc."""
        from torch import nn


        class Block(nn.Module):
            x = 1

            def forward(self, x):
                return x
        ''')
    fix = Fix(model)
    fix.add_member(model.classes["Block"], "add", "{FF}()", FF=TorchName("torch.ao.nn.quantized.FloatFunctional"))
    fix.add_member(model.classes["Block"], "relu", "{ReLU}()", ReLU=TorchName("torch.nn.ReLU"))
    fix.add_method(model.classes["Block"], "fuse_model", "def fuse_model(self, is_qat=False):\n    pass\n")
    module, applied = apply_fixes(model, [fix])
    assert applied == 1
    assert module.code == textwrap.dedent('''
        """Doc."""
        from torch import nn
        from torch.ao.nn.quantized import FloatFunctional


        class Block(nn.Module):
            x = 1

            def __init__(self):
                super().__init__()
                self.add = FloatFunctional()
                self.relu = nn.ReLU()

            def forward(self, x):
                return x

            def fuse_model(self, is_qat=False):
                pass
        ''')


def test_a_subclass_of_a_project_class_passes_its_arguments_on():
    model = _model('''
        import torch
        import torch.nn as nn


        class Base(nn.Module):
            def __init__(self, n):
                super().__init__()
                self.n = n


        class Block(Base):
            def forward(self, x):
                return torch.relu(x)
        ''')
    module, _ = apply_fixes(model, _relu_fixes(model, "Block"))
    assert "    def __init__(self, *args, **kwargs):\n        super().__init__(*args, **kwargs)\n" \
           "        self.relu = nn.ReLU()\n" in module.code


def test_names_defined_by_subclasses_and_nn_module_are_taken_too():
    model = _model('''
        import torch
        import torch.nn as nn


        class Block(nn.Module):
            def __init__(self):
                super().__init__()

            def forward(self, x):
                return torch.relu(x)


        class Child(Block):
            def __init__(self):
                super().__init__()
                self.relu = nn.ReLU6()
        ''')
    module, _ = apply_fixes(model, _relu_fixes(model, "Block"))
    assert "        super().__init__()\n        self.relu_1 = nn.ReLU()\n" in module.code
    fix = Fix(model)
    fix.add_method(model.classes["Block"], "train", "def train(self, mode=True):\n    pass\n")
    assert fix.unfixable and apply_fixes(model, [fix])[1] == 0


def test_members_of_a_class_with_an_unknown_base_are_not_added():
    model = _model('''
        import torch
        from elsewhere import Base


        class Block(Base):
            def forward(self, x):
                return torch.relu(x)
        ''')
    fixes = _relu_fixes(model, "Block")
    assert "not all known" in fixes[0].unfixable
    assert apply_fixes(model, fixes) == (model.module, 0)


def test_overlapping_fixes_wait_for_the_next_pass():
    model = _model('''
        import torch


        def f(x):
            return torch.relu(torch.relu(x))
        ''')
    outer, inner = _calls(model, "torch.relu")
    fixes = [Fix.replacing(model, inner, "{x}.relu()", x=inner.args[0].value),
             Fix.replacing(model, outer, "{x}.relu()", x=outer.args[0].value)]
    module, applied = apply_fixes(model, fixes)
    assert applied == 1 and "return torch.relu(x.relu())" in module.code


def test_members_never_go_before_the_base_init():
    model = _model('''
        import torch
        import torch.nn as nn


        class Block(nn.Module):
            def __init__(self, n):
                self.n = n  # a plain value may come first; a module may not
                super().__init__()

            def forward(self, x):
                return torch.relu(x)
        ''')
    module, _ = apply_fixes(model, _relu_fixes(model, "Block"))
    assert "        super().__init__()\n        self.relu = nn.ReLU()\n" in module.code
