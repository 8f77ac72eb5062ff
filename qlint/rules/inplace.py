"""QL2xx: in-place operations, which quantized tensors and observers do not survive."""
from __future__ import annotations

from typing import Optional

import libcst as cst

from qlint.fixes import Fix
from qlint.registry import ERROR, SAFE, UNSAFE, WARNING, Invalid, Rule, register
from qlint.rules.base import Report, forward_ops, inplace_argument, short, snippet
from qlint.rules.float_functional import FIX_SAFETY_NOTE, float_functional_fix, unfixed
from qlint.rules.rewrites import rewritable, site
from qlint.semantic import ops, torch_api as api
from qlint.semantic.walk import iter_nodes

_HEADER = "import torch\nimport torch.nn as nn\nimport torch.nn.functional as F\n\n\n"


@register
class InplaceModule(Rule):
    code = "QL201"
    name = "inplace-module"
    severity = WARNING
    summary = "An activation or dropout module built with inplace=True"
    explanation = (
        "An in-place activation overwrites its input. During QAT the fake-quantized tensor "
        "that autograd saved is modified, and after `prepare` the observer of the previous "
        "layer sees the activated values instead of its own output; fused or converted "
        "modules ignore the flag, so float and quantized models differ in what they compute "
        "where the input is reused (residual connections).")
    fix = "Drop `inplace=True` (the memory saved is small next to a wrong model)."
    fix_safety = UNSAFE
    fix_safety_note = (
        "The fix drops `inplace=True` (a positional `True` before other arguments becomes "
        "`False`). Fused and converted modules ignore the flag, so the quantized model already "
        "computes the out-of-place result; the float model computes something else only where "
        "the module's input is read again after it (an in-place ReLU on a tensor a residual "
        "branch still holds). qlint does not prove that no such read exists, so the fix is "
        "unsafe; where the input is not read again, float outputs are identical.")
    valid = (
        _HEADER + "class Block(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.relu = nn.ReLU()\n        self.act = nn.LeakyReLU(0.1)\n",
    )
    invalid = (
        Invalid(
            _HEADER + "class Block(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
            "        self.relu = nn.ReLU(inplace=True)  # expect: QL201\n"
            "        self.act = nn.LeakyReLU(0.1, True)  # expect: QL201\n"
            "        self.body = nn.Sequential(nn.Conv2d(3, 3, 1), nn.ReLU(True))  # expect: QL201\n",
            fixed=_HEADER + "class Block(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
            "        self.relu = nn.ReLU()\n"
            "        self.act = nn.LeakyReLU(0.1)\n"
            "        self.body = nn.Sequential(nn.Conv2d(3, 3, 1), nn.ReLU())\n"),
    )

    def check(self, model):
        if "True" not in model.source:  # also where a constant holds it
            return
        for cls in model.module_classes():
            for member in cls.node.body.body:
                for node in iter_nodes(member):
                    if not isinstance(node, cst.Call):
                        continue
                    for qname in model.built_classes(cls, member, node):
                        position = api.INPLACE_MODULE_POSITION.get(qname)
                        arg = inplace_argument(node, position, model.true_constants) if position is not None else None
                        if arg is not None:
                            built = short(qname) if model.qname(node.func) else f"{node.func.value} ({short(qname)})"
                            yield Report(node, f"{built} is built with inplace=True: it overwrites its input, "
                                         "which observers and fake-quant saved. Use the default inplace=False.",
                                         fix=Fix.replacing(model, node, _without_inplace(node, arg)), anchor=member)
                            break


def _without_inplace(call: cst.Call, arg: cst.Arg) -> cst.Call:
    """The call without its inplace=True (a positional True before other arguments becomes False)."""
    if arg is not call.args[-1] and arg.keyword is None:
        return call.with_deep_changes(arg, value=cst.Name("False"))
    args = [a for a in call.args if a is not arg]
    if args:
        args[-1] = args[-1].with_changes(comma=cst.MaybeSentinel.DEFAULT)
    return call.with_changes(args=args)


@register
class InplaceCall(Rule):
    code = "QL202"
    name = "inplace-call"
    severity = WARNING
    summary = "An in-place op on an activation"
    explanation = (
        "In-place Tensor methods (`x.add_(y)`, `x.relu_()`), `torch.*_` functions and "
        "functionals called with `inplace=True` modify an activation that an observer, a "
        "fake-quant or another branch still holds. Quantized tensors mostly have no in-place "
        "kernels, and the ones that run change what the float model computed.")
    fix = "Use the out-of-place form and, for arithmetic, a FloatFunctional."
    fix_safety = SAFE
    fix_safety_note = (
        "The fix writes the out-of-place form (`x.add_(y)` -> `x = x.add(y)`, `torch.sigmoid_(x)` "
        "-> `torch.sigmoid(x)`, `F.dropout(x, p, training, True)` -> `F.dropout(x, p, training)`) "
        "only where no other reference can see the in-place write: the operand is a fresh tensor "
        "(an arithmetic result, a conv, batch norm or linear output), or a local name bound to one "
        "earlier in the same block, not mentioned since, and rebound by the fix. The values are "
        "then the same in float, fake-quant and converted models. An input of forward, an alias "
        "or a name read elsewhere is left for you.")
    valid = (
        _HEADER + "class Block(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.relu = nn.ReLU()\n\n    def forward(self, x):\n"
        "        mask = torch.zeros(4)\n        mask.fill_(1.0)\n        return self.relu(x), mask\n",
    )
    invalid = (
        _HEADER + "class Block(nn.Module):\n    def forward(self, x, y):\n"
        "        x.add_(y)  # expect: QL202\n"
        "        y = F.dropout(x, 0.1, True, True)  # expect: QL202\n"
        "        return torch.sigmoid_(y)  # expect: QL202\n",
        Invalid(
            _HEADER + "class Block(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
            "        self.fc1 = nn.Linear(4, 4)\n        self.fc2 = nn.Linear(4, 4)\n        self.fc3 = nn.Linear(4, 4)\n\n"
            "    def forward(self, x, y):\n        out = self.fc1(x)\n        out.mul_(y)  # expect: QL202\n"
            "        h = self.fc2(y)\n        h = F.dropout(h, 0.1, self.training, True)  # expect: QL202\n"
            "        return torch.sigmoid_(self.fc3(h)), out  # expect: QL202\n",
            fixed=_HEADER + "class Block(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
            "        self.fc1 = nn.Linear(4, 4)\n        self.fc2 = nn.Linear(4, 4)\n        self.fc3 = nn.Linear(4, 4)\n\n"
            "    def forward(self, x, y):\n        out = self.fc1(x)\n        out = out.mul(y)\n"
            "        h = self.fc2(y)\n        h = F.dropout(h, 0.1, self.training)\n"
            "        return torch.sigmoid(self.fc3(h)), out\n"),
    )

    def check(self, model):
        def inplace(op) -> bool:
            if op.kind == "method":
                return (op.name.endswith("_") and not op.name.endswith("__")
                        and op.name not in api.INPLACE_METHOD_EXCEPTIONS and op.operands[0].is_act())
            position = api.INPLACE_FUNCTION_POSITION.get(op.name)
            return (position is not None and inplace_argument(op.call, position, model.true_constants) is not None) or (
                op.name.startswith("torch.") and op.name.endswith("_") and not op.name.endswith("__")
                and op.name.count(".") == 1)

        for op in forward_ops(model, "call", "method", where=inplace):
            yield Report(op.node, f"`{snippet(model, op.node)}` modifies an activation in place; "
                         "use the out-of-place form.", anchor=op.anchor, fix=_out_of_place_fix(model, op))


# In-place methods whose out-of-place namesake computes something else (`x.bernoulli_(p)` fills x
# with draws of probability p; `x.bernoulli()` draws with x as probabilities).
_NOT_TWINS = frozenset({"bernoulli_", "resize_"})


def _out_of_place_fix(model, op) -> Optional[Fix]:
    """The out-of-place form of an in-place op, where nothing else sees the write (see the note)."""
    call = op.node
    if not isinstance(call, cst.Call) or any(a.star for a in call.args):
        return None
    position = api.INPLACE_FUNCTION_POSITION.get(op.name)
    if op.kind == "method":
        if not isinstance(call.func, cst.Attribute) or op.name[:-1] not in ops.tensor_attributes() \
                or op.name in _NOT_TWINS:
            return None
        operand = call.func.value
        new = call.with_deep_changes(call.func.attr, value=op.name[:-1])
    elif position is not None:
        positional = [a for a in call.args if a.keyword is None]
        if not positional:
            return None
        operand = positional[0].value
        new = _without_inplace(call, inplace_argument(call, position, model.true_constants))
    else:  # torch.sigmoid_(x), F.relu_(x)
        name = op.name.rsplit(".", 1)[1]
        if not isinstance(call.func, cst.Attribute) or name[:-1] not in ops.tensor_attributes() \
                or name in _NOT_TWINS or not call.args or call.args[0].keyword is not None:
            return None
        operand = call.args[0].value
        new = call.with_deep_changes(call.func.attr, value=call.func.attr.value[:-1])
    where = site(model, call, op.anchor)
    target = rewritable(model, where, call, operand, True, new_module=False) if where else None
    if target is None:
        return None
    if target is call:
        return Fix.replacing(model, call, new)
    return Fix.replacing(model, target, "{x} = {value}", x=operand, value=new)


@register
class InplaceAugAssign(Rule):
    code = "QL203"
    name = "inplace-augassign"
    severity = ERROR
    summary = "An augmented assignment (+=, -=, *=, /=, @=) on an activation"
    explanation = (
        "`out += identity` is an in-place `add_` on a tensor that is quantized after "
        "`convert()`: there is no kernel for it and the model raises. Even before convert, it "
        "modifies a tensor an observer has seen.")
    fix = "Use a FloatFunctional: `out = self.skip_add.add(out, identity)`."
    valid = (
        "import torch.nn as nn\nfrom torch.ao.nn.quantized import FloatFunctional\n\n\n"
        "class Block(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.skip_add = FloatFunctional()\n        self.calls = 0\n\n"
        "    def forward(self, x, identity):\n        self.calls += 1\n        outs = []\n"
        "        outs += [x]\n        return self.skip_add.add(x, identity), outs\n",
    )
    invalid = (
        Invalid(
            "import torch.nn as nn\n\n\nclass Block(nn.Module):\n"
            "    def __init__(self):\n        super().__init__()\n"
            "        self.conv = nn.Conv2d(8, 8, 3, padding=1)\n\n"
            "    def forward(self, x, identity):\n        out = self.conv(x)\n"
            "        out += identity  # expect: QL203\n"
            "        out *= 0.5  # expect: QL203\n        return out\n",
            fixed="import torch.nn as nn\nfrom torch.ao.nn.quantized import FloatFunctional\n\n"
            "\nclass Block(nn.Module):\n    def __init__(self):\n"
            "        super().__init__()\n"
            "        self.conv = nn.Conv2d(8, 8, 3, padding=1)\n"
            "        self.add = FloatFunctional()\n"
            "        self.mul_scalar = FloatFunctional()\n\n"
            "    def forward(self, x, identity):\n        out = self.conv(x)\n"
            "        out = self.add.add(out, identity)\n"
            "        out = self.mul_scalar.mul_scalar(out, 0.5)\n        return out\n"),
        Invalid(
            "import torch.nn as nn\nimport torch.nn.functional as F\n\n\n"
            "class Bottleneck(nn.Module):\n    def __init__(self):\n"
            "        super().__init__()\n        self.conv = nn.Conv2d(8, 8, 1)\n\n"
            "    def forward(self, x):\n        out = self.conv(x)\n"
            "        out[:, :4] += x[:, :4]  # expect: QL203\n"
            "        out += x  # expect: QL203\n"
            "        return F.relu(out)  # allow: QL101\n",
            fixed="import torch.nn as nn\nimport torch.nn.functional as F\n"
            "from torch.ao.nn.quantized import FloatFunctional\n\n\n"
            "class Bottleneck(nn.Module):\n    def __init__(self):\n"
            "        super().__init__()\n        self.conv = nn.Conv2d(8, 8, 1)\n"
            "        self.add_relu = FloatFunctional()\n\n    def forward(self, x):\n"
            "        out = self.conv(x)\n        out[:, :4] += x[:, :4]\n"
            "        out = self.add_relu.add_relu(out, x)\n        return out\n"),
        # Not fixed: `out` is the caller's `x`, which the in-place update changes too.
        "import torch.nn as nn\n\n\nclass Alias(nn.Module):\n"
        "    def forward(self, x, identity):\n        out = x\n"
        "        out += identity  # expect: QL203\n        return out, x\n",
    )
    fix_safety = UNSAFE
    fix_safety_note = FIX_SAFETY_NOTE + (
        " The in-place update becomes a rebinding (`out = self.add.add(out, identity)`): "
        "another name bound to the same tensor no longer sees the update.")
    _OPERATORS = frozenset({"+=", "-=", "*=", "/=", "@="})

    def check(self, model):
        for op in forward_ops(model, "augassign", where=lambda op: op.name in self._OPERATORS and op.operands[0].is_act()):
            fix = float_functional_fix(model, op)
            yield Report(op.node, f"`{snippet(model, op.node)}` is an in-place {op.name[0]} on an "
                         "activation; it raises after convert(). Use a FloatFunctional "
                         f"(`out = self.skip_add.add(out, identity)`).{unfixed(fix)}", fix=fix, anchor=op.anchor)
