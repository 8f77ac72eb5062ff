"""QL3xx: tensor arithmetic, which needs a FloatFunctional in eager-mode quantization."""
from __future__ import annotations

from qlint.registry import ERROR, UNSAFE, WARNING, Invalid, Rule, register
from qlint.rules.base import Report, forward_ops, short, snippet
from qlint.rules.float_functional import FIX_SAFETY_NOTE, float_functional_fix, unfixed
from qlint.semantic import torch_api as api

_FF = "import torch\nimport torch.nn as nn\nfrom torch.ao.nn.quantized import FloatFunctional\n\n\n"

_FLOAT_FUNCTIONAL_FOR = {"+": "add (or add_scalar for a Python number)",
                         "-": "add of a negated operand, or a module",
                         "*": "mul (or mul_scalar for a Python number)", "@": "matmul"}


@register
class TensorOperator(Rule):
    code = "QL301"
    name = "tensor-operator"
    severity = ERROR
    summary = "`+`, `-`, `*` or `@` with an activation operand"
    explanation = (
        "Quantized tensors have no `+`, `-`, `*` or `@`, and a Python number operand is "
        "refused too (`promoteTypes with quantized numbers`): after `convert()` the model "
        "raises at the first forward, though the float and fake-quant models ran. Shape "
        "arithmetic (`x.size(0) * 2`) and config arithmetic are fine and not reported.")
    fix = ("Create one FloatFunctional per operation in `__init__` (`self.skip_add = "
           "FloatFunctional()`) and call its method: add, add_scalar, mul, mul_scalar, matmul, "
           "or add_relu for an add followed by a ReLU.")
    valid = (
        _FF + "class Block(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.skip_add = FloatFunctional()\n\n    def forward(self, x, y):\n"
        "        n = x.size(0) * 2\n        return self.skip_add.add(x, y), n\n",
    )
    invalid = (
        Invalid(
            _FF + "class Block(nn.Module):\n    def forward(self, x, y):\n"
            "        z = x + y  # expect: QL301\n        z = z * 0.5  # expect: QL301\n"
            "        return z @ y  # expect: QL301\n",
            fixed=_FF + "class Block(nn.Module):\n    def __init__(self):\n"
            "        super().__init__()\n        self.add = FloatFunctional()\n"
            "        self.mul_scalar = FloatFunctional()\n"
            "        self.matmul = FloatFunctional()\n\n    def forward(self, x, y):\n"
            "        z = self.add.add(x, y)\n"
            "        z = self.mul_scalar.mul_scalar(z, 0.5)\n"
            "        return self.matmul.matmul(z, y)\n"),
        Invalid(
            _FF + "class Head(nn.Module):\n    def __init__(self):\n"
            "        super().__init__()\n        self.proj = nn.Linear(8, 8)\n"
            "        self.scale = nn.Parameter(torch.ones(8))\n\n"
            "    def forward(self, x, y):\n        x = self.proj(x)\n"
            "        d = x - y  # expect: QL301\n        e = 1.0 - d  # expect: QL301\n"
            "        return e * self.scale  # expect: QL301, QL504\n",
            fixed=_FF + "class Head(nn.Module):\n    def __init__(self):\n"
            "        super().__init__()\n        self.proj = nn.Linear(8, 8)\n"
            "        self.scale = nn.Parameter(torch.ones(8))\n"
            "        self.sub = FloatFunctional()\n        self.neg = FloatFunctional()\n"
            "        self.sub_1 = FloatFunctional()\n"
            "        self.neg_1 = FloatFunctional()\n\n    def forward(self, x, y):\n"
            "        x = self.proj(x)\n"
            "        d = self.sub.add(x, self.neg.mul_scalar(y, -1))\n"
            "        e = self.sub_1.add_scalar(self.neg_1.mul_scalar(d, -1), 1.0)\n"
            "        return e * self.scale\n"),
        Invalid(
            _FF + "class Residual(nn.Module):\n    def __init__(self):\n"
            "        super().__init__()\n"
            "        self.conv = nn.Conv2d(8, 8, 3, padding=1)\n"
            "        self.relu = nn.ReLU()\n\n    def forward(self, x):\n"
            "        out = self.conv(x) + x  # expect: QL301\n"
            "        out = self.relu(out)\n        for _ in range(2):\n"
            "            out = out * 2  # expect: QL301\n        return out\n",
            fixed=_FF + "class Residual(nn.Module):\n    def __init__(self):\n"
            "        super().__init__()\n"
            "        self.conv = nn.Conv2d(8, 8, 3, padding=1)\n"
            "        self.relu = nn.ReLU()\n        self.add_relu = FloatFunctional()\n\n"
            "    def forward(self, x):\n"
            "        out = self.add_relu.add_relu(self.conv(x), x)\n"
            "        for _ in range(2):\n            out = out * 2\n        return out\n"),
    )

    fix_safety = UNSAFE
    fix_safety_note = FIX_SAFETY_NOTE

    def check(self, model):
        for op in forward_ops(model, "binop", where=lambda op: op.name in _FLOAT_FUNCTIONAL_FOR):
            fix = float_functional_fix(model, op)
            yield Report(op.node, f"`{snippet(model, op.node)}` applies `{op.name}` to an activation; "
                         f"quantized tensors have no `{op.name}` and convert() makes this raise. "
                         f"Use a FloatFunctional: {_FLOAT_FUNCTIONAL_FOR[op.name]}.{unfixed(fix)}",
                         fix=fix, anchor=op.anchor)


@register
class TensorFunction(Rule):
    code = "QL302"
    name = "tensor-function"
    severity = ERROR
    summary = "torch.add/mul/matmul/cat and Tensor.add/mul on activations"
    explanation = (
        "`torch.add`, `torch.sub`, `torch.mul`, `torch.matmul`, `torch.bmm` and the Tensor "
        "methods `add`, `sub`, `mul`, `matmul` raise on quantized tensors (error). "
        "`torch.cat` and `torch.stack` run, but the result reuses the first input's "
        "quantization parameters, clipping inputs with other ranges (warning).")
    fix = "Use a FloatFunctional per call: add, mul, matmul, or cat for concatenation."
    valid = (
        _FF + "class Merge(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.cat = FloatFunctional()\n\n    def forward(self, a, b):\n"
        "        idx = torch.cat([torch.arange(3), torch.arange(2)])\n"
        "        return self.cat.cat([a, b], dim=1), idx\n",
    )
    invalid = (
        Invalid(
            _FF + "class Merge(nn.Module):\n    def forward(self, a, b):\n"
            "        c = torch.cat([a, b], dim=1)  # expect: QL302\n"
            "        return torch.add(c, 1), a.mul(b)  # expect: QL302\n",
            fixed=_FF + "class Merge(nn.Module):\n    def __init__(self):\n"
            "        super().__init__()\n        self.cat = FloatFunctional()\n"
            "        self.add_scalar = FloatFunctional()\n"
            "        self.mul = FloatFunctional()\n\n    def forward(self, a, b):\n"
            "        c = self.cat.cat([a, b], dim=1)\n"
            "        return self.add_scalar.add_scalar(c, 1), self.mul.mul(a, b)\n"),
        Invalid(
            _FF + "class Attention(nn.Module):\n    def forward(self, q, k, v):\n"
            "        scores = torch.matmul(q, k)  # expect: QL302\n"
            "        out = torch.sub(scores, v)  # expect: QL302\n"
            "        return torch.stack([out, v])  # expect: QL302\n",
            fixed=_FF + "class Attention(nn.Module):\n    def __init__(self):\n"
            "        super().__init__()\n        self.matmul = FloatFunctional()\n"
            "        self.sub = FloatFunctional()\n        self.neg = FloatFunctional()\n"
            "\n    def forward(self, q, k, v):\n"
            "        scores = self.matmul.matmul(q, k)\n"
            "        out = self.sub.add(scores, self.neg.mul_scalar(v, -1))\n"
            "        return torch.stack([out, v])\n"),
    )

    fix_safety = UNSAFE
    fix_safety_note = FIX_SAFETY_NOTE

    def check(self, model):
        for op in forward_ops(model, "call", "method", where=_tensor_function):
            fix = float_functional_fix(model, op)
            if op.kind == "call" and op.name in api.ARITHMETIC_FUNCTIONS:
                method = api.ARITHMETIC_FUNCTIONS[op.name]
                yield Report(op.node, f"{short(op.name)} on activations raises after convert(); "
                             f"use a FloatFunctional ({method}).{unfixed(fix)}", fix=fix, anchor=op.anchor)
            elif op.kind == "method" and op.name in api.ARITHMETIC_METHODS and op.operands[0].is_act():
                method = api.ARITHMETIC_METHODS[op.name]
                yield Report(op.node, f"Tensor.{op.name} on an activation raises after convert(); "
                             f"use a FloatFunctional ({method}).{unfixed(fix)}", fix=fix, anchor=op.anchor)
            elif op.kind == "call" and op.name in api.CONCAT_FUNCTIONS:
                yield Report(op.node, f"{short(op.name)} of activations runs after convert() but "
                             "reuses one input's quantization parameters; use FloatFunctional.cat, "
                             f"which observes its own output range.{unfixed(fix)}", severity=WARNING,
                             fix=fix, anchor=op.anchor)


def _tensor_function(op) -> bool:
    if op.kind == "call":
        return op.name in api.ARITHMETIC_FUNCTIONS or op.name in api.CONCAT_FUNCTIONS
    return op.name in api.ARITHMETIC_METHODS and op.operands[0].is_act()


def _division(op) -> bool:
    return (op.kind == "binop" and op.name == "/") or (op.kind == "call" and op.name in api.DIVISION_FUNCTIONS) or (
        op.kind == "method" and op.name in api.DIVISION_METHODS and op.operands[0].is_act())


@register
class TensorDivision(Rule):
    code = "QL303"
    name = "tensor-division"
    severity = ERROR
    summary = "Division of an activation"
    explanation = (
        "There is no quantized division kernel and no FloatFunctional for it: `/`, "
        "`torch.div` and `true_divide` on a quantized activation raise after `convert()`.")
    fix = ("Divide by a constant as a multiplication (FloatFunctional.mul_scalar(x, 1 / c)), "
           "fold the constant into the previous layer's weights, or dequantize around it.")
    valid = (
        _FF + "class Scale(nn.Module):\n    def __init__(self, dim):\n        super().__init__()\n"
        "        self.mul = FloatFunctional()\n        self.scale = dim ** -0.5\n\n"
        "    def forward(self, x):\n        return self.mul.mul_scalar(x, self.scale)\n",
    )
    invalid = (
        Invalid(
            _FF + "class Scale(nn.Module):\n    def forward(self, x, y):\n"
            "        x = x / 8.0  # expect: QL303\n"
            "        return torch.div(x, y)  # expect: QL303\n",
            fixed=_FF + "class Scale(nn.Module):\n    def __init__(self):\n"
            "        super().__init__()\n        self.div = FloatFunctional()\n\n"
            "    def forward(self, x, y):\n        x = self.div.mul_scalar(x, 0.125)\n"
            "        return torch.div(x, y)\n"),
        Invalid(
            _FF + "class Norm(nn.Module):\n    def forward(self, x):\n"
            "        x = x.div(0.25)  # expect: QL303\n"
            "        return x / 3.0  # expect: QL303\n",
            fixed=_FF + "class Norm(nn.Module):\n    def __init__(self):\n"
            "        super().__init__()\n        self.div = FloatFunctional()\n\n"
            "    def forward(self, x):\n        x = self.div.mul_scalar(x, 4.0)\n"
            "        return x / 3.0\n"),
    )

    fix_safety = UNSAFE
    fix_safety_note = FIX_SAFETY_NOTE + (
        " Only a division by a number literal that is a power of two (`x / 8`, `x / -0.25`) "
        "is fixed: its reciprocal is exact, so `mul_scalar(x, 0.125)` equals `x / 8` bit for "
        "bit. `x / 3` is not `x * 0.333...` in the last bit for some x, and is left to you.")

    def check(self, model):
        for op in forward_ops(model, "binop", "call", "method", where=_division):
            fix = float_functional_fix(model, op)
            yield Report(op.node, f"`{snippet(model, op.node)}` divides an activation; there is no "
                         "quantized division. Multiply by the reciprocal with "
                         f"FloatFunctional.mul_scalar, or dequantize around it.{unfixed(fix)}",
                         fix=fix, anchor=op.anchor)
