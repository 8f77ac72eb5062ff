"""QL2xx: in-place operations, which quantized tensors and observers do not survive."""
from __future__ import annotations

import libcst as cst

from qlint.registry import ERROR, SAFE, WARNING, Rule, register
from qlint.rules.base import Report, forward_ops, inplace_argument, short, snippet
from qlint.semantic import torch_api as api
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
    fix_safety = SAFE
    valid = (
        _HEADER + "class Block(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.relu = nn.ReLU()\n        self.act = nn.LeakyReLU(0.1)\n",
    )
    invalid = (
        _HEADER + "class Block(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.relu = nn.ReLU(inplace=True)  # expect: QL201\n"
        "        self.act = nn.LeakyReLU(0.1, True)  # expect: QL201\n"
        "        self.body = nn.Sequential(nn.Conv2d(3, 3, 1), nn.ReLU(True))  # expect: QL201\n",
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
                                         fix=(node, _without_inplace(node, arg)), anchor=member)
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
                         "use the out-of-place form.", anchor=op.anchor)


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
        "import torch.nn as nn\n\n\nclass Block(nn.Module):\n"
        "    def forward(self, x, identity):\n        out = x\n"
        "        out += identity  # expect: QL203\n        out *= 0.5  # expect: QL203\n        return out\n",
    )
    _OPERATORS = frozenset({"+=", "-=", "*=", "/=", "@="})

    def check(self, model):
        for op in forward_ops(model, "augassign", where=lambda op: op.name in self._OPERATORS and op.operands[0].is_act()):
            yield Report(op.node, f"`{snippet(model, op.node)}` is an in-place {op.name[0]} on an "
                             "activation; it raises after convert(). Use a FloatFunctional "
                             "(`out = self.skip_add.add(out, identity)`).", anchor=op.anchor)
