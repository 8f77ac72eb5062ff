"""QL1xx: functional calls that eager-mode quantization cannot see, swap or run."""
from __future__ import annotations

from typing import Optional

import libcst as cst

from qlint.fixes import Fix, TorchName
from qlint.registry import ERROR, UNSAFE, WARNING, Invalid, Rule, register
from qlint.rules.base import Report, forward_ops, inplace_argument, short, snippet
from qlint.rules.rewrites import rewritable, site
from qlint.semantic import ops, torch_api as api
from qlint.semantic.walk import iter_nodes

_HEADER = "import torch\nimport torch.nn as nn\nimport torch.nn.functional as F\n\n\n"


@register
class FunctionalRelu(Rule):
    code = "QL101"
    name = "functional-relu"
    severity = WARNING
    summary = "ReLU applied as a function, which fusion cannot see"
    explanation = (
        "`fuse_modules` fuses modules by attribute name: Conv-BN-ReLU becomes one ConvReLU2d "
        "only when the ReLU is an `nn.ReLU` submodule. `F.relu`, `torch.relu` and "
        "`x.relu()` run after convert, but reuse the input's quantization parameters and "
        "leave the preceding conv unfused: an extra requantization and lost accuracy.")
    fix = "Add `self.relu = nn.ReLU()` in `__init__` and call `self.relu(x)`; list it in fuse_modules."
    fix_safety = UNSAFE
    fix_safety_note = (
        "The fix adds an `nn.ReLU` (or `nn.ReLU6`) submodule named after the op (`relu`, `relu_1`, "
        "... never a name the class hierarchy uses) and calls it in place of the function: the "
        "state_dict keys stay the same (it has no parameters), float outputs are equal, but the "
        "module tree changes. An in-place form (`F.relu(x, inplace=True)`, `x.relu_()`) is "
        "rewritten only where nothing else sees the write: its operand is a fresh tensor (an "
        "arithmetic result, a conv, batch norm or linear output) or a name bound to one just "
        "before and rebound by the call. Not fixed: calls in loops (one module would run several "
        "times, QL401), in helpers outside the class's methods, with other arguments.")
    valid = (
        _HEADER + "class Block(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.conv = nn.Conv2d(3, 8, 3)\n        self.relu = nn.ReLU()\n\n"
        "    def forward(self, x):\n        return self.relu(self.conv(x))\n",
        _HEADER + "def helper(x):\n    return F.relu(x)  # not a module's forward\n",
    )
    invalid = (
        Invalid(
            _HEADER + "class Block(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
            "        self.conv = nn.Conv2d(3, 8, 3)\n\n    def forward(self, x):\n"
            "        return F.relu(self.conv(x))  # expect: QL101\n",
            fixed=_HEADER + "class Block(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
            "        self.conv = nn.Conv2d(3, 8, 3)\n        self.relu = nn.ReLU()\n\n    def forward(self, x):\n"
            "        return self.relu(self.conv(x))\n"),
        Invalid(
            "import torch as T\nfrom torch import nn\nfrom torch.nn.functional import relu as r\n\n\n"
            "class Block(nn.Module):\n    def forward(self, x):\n        y = r(x)  # expect: QL101\n"
            "        y = T.relu(y)  # expect: QL101\n        return y.relu()  # expect: QL101\n",
            fixed="import torch as T\nfrom torch import nn\nfrom torch.nn.functional import relu as r\n\n\n"
            "class Block(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
            "        self.relu = nn.ReLU()\n        self.relu_1 = nn.ReLU()\n        self.relu_2 = nn.ReLU()\n\n"
            "    def forward(self, x):\n        y = self.relu(x)\n"
            "        y = self.relu_1(y)\n        return self.relu_2(y)\n"),
        Invalid(
            _HEADER + "class Block(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
            "        self.bn = nn.BatchNorm2d(8)\n        self.bn2 = nn.BatchNorm2d(8)\n        self.relu = nn.Identity()\n\n"
            "    def forward(self, x):\n        out = self.bn(x)\n        out.relu_()  # expect: QL101, QL202\n"
            "        x = F.relu6(x, inplace=True)  # expect: QL101, QL202\n"
            "        return F.relu(self.bn2(out), inplace=True), x  # expect: QL101, QL202\n",
            fixed=_HEADER + "class Block(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
            "        self.bn = nn.BatchNorm2d(8)\n        self.bn2 = nn.BatchNorm2d(8)\n        self.relu_2 = nn.ReLU()\n"
            "        self.relu = nn.Identity()\n        self.relu_1 = nn.ReLU()\n\n"
            "    def forward(self, x):\n        out = self.bn(x)\n        out = self.relu_1(out)\n"
            "        x = F.relu6(x, inplace=True)\n"
            "        return self.relu_2(self.bn2(out)), x\n"),
    )

    def check(self, model):
        for op in forward_ops(model, "call", "method", where=_relu):
            module = "nn.ReLU6" if "relu6" in op.name else "nn.ReLU"
            yield Report(op.node, f"`{snippet(model, op.node)}` applies ReLU as a function; "
                         f"fusion cannot see it and it reuses its input's qparams. "
                         f"Use a {module} submodule and fuse it with the layer before.", anchor=op.anchor,
                         fix=_relu_module_fix(model, op))


def _relu_module_fix(model, op) -> Optional[Fix]:
    """`F.relu(x)`, `torch.relu(x)`, `x.relu()` (and in-place forms) -> `self.relu(x)`."""
    call = op.node
    if not isinstance(call, cst.Call):
        return None
    if op.kind == "method":
        if call.args or not isinstance(call.func, cst.Attribute):
            return None
        operand, inplace = call.func.value, op.name.endswith("_")
    else:
        positional = [a for a in call.args if a.keyword is None]
        flag = inplace_argument(call, 1, model.true_constants)
        rest = [a for a in call.args if a is not positional[0] and a is not flag] if positional else None
        if not positional or positional[0].star or rest and not _false_inplace(rest):
            return None
        operand, inplace = positional[0].value, flag is not None or op.name.endswith("_")
    where = site(model, call, op.anchor)
    if where is None:
        return None
    target = rewritable(model, where, call, operand, inplace, new_module=True)
    if target is None:
        return None
    qname, stem = ("torch.nn.ReLU6", "relu6") if "relu6" in op.name else ("torch.nn.ReLU", "relu")
    fix = Fix(model)
    relu = fix.add_member(where.cls, stem, "{module}()", after=_producer(operand), module=TorchName(qname))
    template = "{x} = self.{relu}({x})" if target is not call else "self.{relu}({x})"
    fix.replace(target, template, relu=relu, x=operand)
    return fix


def _false_inplace(args) -> bool:
    """The arguments left are one `inplace=False` (or a positional False)."""
    return len(args) == 1 and (args[0].keyword is None or args[0].keyword.value == "inplace") \
        and isinstance(args[0].value, cst.Name) and args[0].value.value == "False"


def _producer(expr) -> Optional[str]:
    """The submodule whose output the expression applies to (`self.conv(x)` -> "conv")."""
    for node in (expr, *iter_nodes(expr)):
        if isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute) \
                and isinstance(node.func.value, cst.Name) and node.func.value.value == "self":
            return node.func.attr.value
    return None


def _relu(op) -> bool:
    return op.name in api.FUNCTIONAL_RELU or (op.kind == "method" and op.name in api.RELU_METHODS)


def _module_for(op) -> Optional[str]:
    """The nn module counterpart of a functional with no quantized kernel (QL102)."""
    if op.kind == "method":
        functional = api.functional_for_method(op.name) if op.operands[0].is_act() else None
        return api.functional_needs_module().get(functional) if functional else None
    return api.functional_needs_module().get(op.name)


@register
class FunctionalNeedsModule(Rule):
    code = "QL102"
    name = "functional-needs-module"
    severity = ERROR
    summary = "A functional op with no quantized kernel where an nn module exists"
    explanation = (
        "After `convert()`, tensors between QuantStub and DeQuantStub are quantized. These "
        "functionals (`F.hardswish`, `F.silu`, `F.softmax`, `F.layer_norm`, ...) have no "
        "QuantizedCPU kernel and raise at the first forward; their module counterparts are "
        "swapped for quantized implementations or carry their own observers. The list is "
        "measured on a real torch (`qlint/data/quantized_ops.json`).")
    fix = "Use the module counterpart as a submodule (`self.act = nn.Hardswish()`)."
    valid = (
        _HEADER + "class Block(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.act = nn.Hardswish()\n\n    def forward(self, x):\n        return self.act(x)\n",
    )
    invalid = (
        _HEADER + "class Block(nn.Module):\n    def forward(self, x):\n"
        "        return F.hardswish(x)  # expect: QL102\n",
        "import torch\nfrom torch import nn\nfrom torch.nn import functional as Fn\n\n\n"
        "class Attn(nn.Module):\n    def forward(self, q, k):\n"
        "        a = q.softmax(dim=-1)  # expect: QL102\n"
        "        return Fn.softmax(a, dim=-1)  # expect: QL102\n",
    )

    def check(self, model):
        for op in forward_ops(model, "call", "method", where=lambda op: _module_for(op) is not None):
            module = _module_for(op)
            if api.module_converts().get(module):
                advice = f"use a {short(module)} submodule, which convert() swaps for a quantized one."
            else:
                advice = (f"use a {short(module)} submodule with qconfig = None, between a DeQuantStub "
                          f"and a QuantStub (convert() has no quantized {short(module)}).")
            what = f"Tensor.{op.name}" if op.kind == "method" else short(op.name)
            yield Report(op.node, f"{what} has no quantized kernel and raises after convert(); " + advice, anchor=op.anchor)


@register
class FunctionalWeightedLayer(Rule):
    code = "QL103"
    name = "functional-weighted-layer"
    severity = ERROR
    summary = "A conv, linear or embedding applied as a function with its own weights"
    explanation = (
        "`convert()` swaps `nn.Conv2d`/`nn.Linear`/`nn.Embedding` modules for quantized ones "
        "and quantizes their weights. `F.conv2d(x, self.weight)` or `F.linear(x, w, b)` is "
        "invisible to it: the weights stay float and the float kernel meets a quantized input.")
    fix = "Hold the weights in the module counterpart (`self.fc = nn.Linear(...)`) and call it."
    valid = (
        _HEADER + "class Head(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.fc = nn.Linear(8, 2)\n\n    def forward(self, x):\n        return self.fc(x)\n",
    )
    invalid = (
        _HEADER + "class Head(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.fc = nn.Linear(8, 2)\n\n    def forward(self, x):\n"
        "        return F.linear(x, self.fc.weight, self.fc.bias)  # expect: QL103\n",
    )

    def check(self, model):
        for op in forward_ops(model, "call", where=lambda op: op.name in api.WEIGHTED_FUNCTIONALS):
            module = api.WEIGHTED_FUNCTIONALS[op.name]
            yield Report(op.node, f"{short(op.name)} applies weights directly; convert() never "
                         f"swaps or quantizes it. Use a {module} submodule.", anchor=op.anchor)


# Crashing ops that another rule reports (QL302/QL303).
_OTHER_RULES_FUNCTIONS = frozenset(api.ARITHMETIC_FUNCTIONS) | api.DIVISION_FUNCTIONS
_OTHER_RULES_METHODS = frozenset(api.ARITHMETIC_METHODS) | api.DIVISION_METHODS


def _no_kernel(op) -> bool:
    if op.kind == "call":
        return (op.name in api.no_kernel_functions() and op.name not in api.functional_needs_module()
                and op.name not in _OTHER_RULES_FUNCTIONS and not _constructs(op))
    if op.kind == "method":
        return (op.name in api.no_kernel_methods() and op.operands[0].is_act() and op.name not in _OTHER_RULES_METHODS
                and api.functional_for_method(op.name) is None and not _constructs(op))
    return op.name in api.no_kernel_operators()


def _constructs(op) -> bool:
    """Whether the op builds a new tensor from its input's shape (torch.zeros_like, x.new_zeros):
    it crashes on a quantized tensor too, but is not a use of the activation's values."""
    entry = ops.lookup(op.name) if op.kind == "call" else ops.tensor_op(op.name)
    return entry is not None and entry.result is ops.Result.CONSTRUCTOR


@register
class NoQuantizedKernel(Rule):
    code = "QL104"
    name = "no-quantized-kernel"
    severity = ERROR
    summary = "An op with no quantized CPU kernel applied to an activation"
    explanation = (
        "Between QuantStub and DeQuantStub the activations of a converted model are quantized "
        "tensors. Ops with no QuantizedCPU kernel (`exp`, `log`, `pow`, `sqrt`, `sum`, `var`, "
        "unary `-x`, `x ** 2`, ...) raise NotImplementedError at the first forward after "
        "`convert()`, though the float and fake-quant models run fine. The table is measured "
        "on a real torch (`qlint/data/quantized_ops.json`).")
    fix = ("Move the op outside the quantized region (DeQuantStub before it, QuantStub after), "
           "or replace it with a quantizable module.")
    valid = (
        _HEADER + "class GeM(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.dequant = torch.ao.quantization.DeQuantStub()\n\n"
        "    def forward(self, x):\n        n = x.size(0) * 2\n        return self.dequant(x), n\n",
    )
    invalid = (
        _HEADER + "class GeM(nn.Module):\n    def forward(self, x):\n"
        "        x = x.clamp(min=1e-6).pow(3)  # expect: QL104\n"
        "        return torch.exp(x)  # expect: QL104\n",
        "import torch as T\nimport torch.nn as nn\n\n\nclass Neg(nn.Module):\n"
        "    def forward(self, x):\n        return -x  # expect: QL104\n",
    )

    def check(self, model):
        for op in forward_ops(model, "call", "method", "binop", "unary", "compare", where=_no_kernel):
            if op.kind == "call":
                what = short(op.name)
            elif op.kind == "method":
                what = f"Tensor.{op.name}"
            else:
                what = f"`{op.name.replace('unary ', '')}`"
            yield Report(op.node, f"{what} has no quantized kernel: `{snippet(model, op.node)}` "
                         f"raises after convert(). Dequantize before it or keep it out of the "
                         f"quantized region.", anchor=op.anchor)
