"""The FloatFunctional fix of QL203, QL301, QL302 and QL303: an arithmetic site on
activations becomes a call of a new FloatFunctional that `__init__` creates, one per site.

Float outputs stay bit-identical: a FloatFunctional's float methods are the torch ops
themselves (tests/runtime/test_fix_proof_floatfunctional.py runs each form).

- `a + b`, `a * b`, `a @ b`, `torch.add/mul/matmul/mm/bmm`, `Tensor.add/mul/matmul/mm/bmm`,
  `+=`, `*=`, `@=`: add, mul, matmul; with a Python number add_scalar or mul_scalar (the
  operands swapped when the number comes first: IEEE + and * commute).
- `a - b`: add(a, mul_scalar(b, -1)); `a - c`: add_scalar(a, -c); `c - b`:
  add_scalar(mul_scalar(b, -1), c). Negation and `x + (-y)` are exact in IEEE arithmetic.
  The negation has a FloatFunctional of its own (one used for two ops is QL403).
- `a / c` (torch.div, Tensor.div, `/=`): mul_scalar(a, 1 / c), only for a number literal
  c = ±2**k with |k| <= 126: 1/c is then exact in float32, and x / c == x * (1/c) bit for
  bit. Any other reciprocal is rounded (x / 3.0 and x * (1 / 3.0) differ in the last bit
  for some x): reported unfixed.
- `torch.cat(xs, dim)`: cat.
- `y = a + b` (or `y += b`) followed by `y = relu(y)` or `return relu(y)`, the ReLU an
  nn.ReLU submodule or F.relu / torch.relu: one add_relu (torch fuses the two when
  quantized).

A site is left unfixed, its finding saying why, where the rewrite could change what runs
or what is observed: an operand that is neither an activation nor a Python number (a
parameter, a buffer, a constant tensor), keyword arguments with no FloatFunctional form
(alpha, out, rounding_mode), torch.stack, an augmented assignment to an attribute or an item
or to a name that may hold another name's tensor (the rebinding would stop updating it),
code that runs more than once per forward (a loop, a comprehension, a helper not called
exactly once: one FloatFunctional would observe every run), code outside a plain method of
an nn.Module class (`rewrites.site`).
"""
from __future__ import annotations

import ast
import math
from dataclasses import dataclass
from typing import Optional, Union

import libcst as cst

from qlint.fixes import Fix, TorchName
from qlint.rules.rewrites import site, unobserved
from qlint.semantic import torch_api as api
from qlint.semantic.ops import DIM_KEYWORD
from qlint.semantic.values import Py, Seq, Tensor

FLOAT_FUNCTIONAL = TorchName("torch.ao.nn.quantized.FloatFunctional")
FIX_SAFETY_NOTE = (
    "Unsafe: the fix adds a FloatFunctional submodule per site to `__init__`, so the module "
    "tree changes (prepare() gives each one an observer). The state_dict keys do not change, "
    "since a FloatFunctional has no parameter or buffer, and the float outputs are "
    "bit-identical: its float methods are the torch ops themselves.")
# Function and method names by the operator they compute.
_SYMBOL = {"add": "+", "sub": "-", "subtract": "-", "mul": "*", "multiply": "*", "matmul": "@",
           "mm": "@", "bmm": "@", "div": "/", "divide": "/", "true_divide": "/"}
_RELUS = frozenset({"torch.nn.functional.relu", "torch.relu"})
_LARGEST_EXPONENT = 126  # 2**k and 2**-k both normal float32 numbers


@dataclass
class _Call:
    """A FloatFunctional call of the fix: `self.<new member named stem>.method(*args)`."""

    stem: str
    method: str
    args: tuple  # cst expressions of the file, source text (a number), or _Call
    gap: Optional[cst.ParenthesizedWhitespace] = None  # a line break (and comment) to keep after the first argument


Arg = Union[cst.BaseExpression, str, _Call]


def float_functional_fix(model, op) -> Fix:
    """The fix of an arithmetic op of the forward path (an `OpUse`); `fix.unfixable` says
    why there is none."""
    fix = Fix(model)
    where = site(model, op.node, op.anchor)
    reason = _refusal(model, op, where)
    if reason is None:
        planned = _plan(model, op, where)
        if isinstance(planned, str):
            reason = planned
        else:
            _build(fix, where.cls, *planned)
    if reason is not None:
        fix.unfixable = reason
    return fix


def unfixed(fix: Fix) -> str:
    """What a finding's message adds when its fix is impossible."""
    return f" Not fixed: {fix.unfixable}." if fix.unfixable else ""


def _refusal(model, op, where) -> Optional[str]:
    if where is None or not model.index.is_module_class(where.cls.qname):
        return ("it is not in a statement of a plain method (`self` first, no decorator) of an "
                "nn.Module class, where a FloatFunctional could live")
    if where.repeated:
        return ("it may run more than once per forward (a loop, a comprehension, or a helper "
                "not called exactly once from forward), and one FloatFunctional would observe "
                "every run; give each run its own (an nn.ModuleList)")
    if op.kind == "augassign" and isinstance(op.node.target, cst.Name) and not unobserved(model, where, op.node.target):
        return (f"`{op.node.target.value}` may hold a tensor another name holds too (an input, "
                "an alias), which the in-place update changes as well and a rebinding would not")
    return None


# ----- what the site computes -------------------------------------------------------------
def _plan(model, op, where):
    """(node to replace, _Call, a second (node, replacement) or None), or why there is none."""
    node = op.node
    if op.kind == "call" and op.name in api.CONCAT_FUNCTIONS:
        return _concatenation(op)
    if op.kind == "augassign":
        if not isinstance(node.target, cst.Name):
            return "the augmented assignment is to an attribute or an item, which it modifies in place"
        symbol, left, right = op.name[:-1], node.target, node.value
    elif op.kind == "binop":
        symbol, left, right = op.name, node.left, node.right
    else:
        args = node.args
        if any(a.keyword is not None or a.star for a in args):
            return "its keyword arguments (alpha, out, rounding_mode, ...) have no FloatFunctional form"
        name = op.name.rpartition(".")[2]
        if op.kind == "method":
            if len(args) != 1:
                return "it does not take exactly one operand"
            left, right = node.func.value, args[0].value
        else:
            if len(args) != 2:
                return "it does not take exactly two operands"
            left, right = args[0].value, args[1].value
        symbol = _SYMBOL[name]
    call = _arithmetic(model, symbol, left, right, *op.operands[:2])
    if isinstance(call, str):
        return call
    if op.kind == "binop":  # `(a  # comment` / `+ b)`: the line break and its comment stay
        call.gap = next((w for w in (node.operator.whitespace_before, node.operator.whitespace_after)
                         if isinstance(w, cst.ParenthesizedWhitespace)), None)
    relu = _relu_after(model, op, where, call)
    if relu is not None:
        return relu
    return node, call, None


def _concatenation(op):
    if op.name == "torch.stack":
        return "FloatFunctional has no stack (torch.stack of activations stays as it is)"
    args = op.node.args
    items = op.operands[0].items if isinstance(op.operands[0], Seq) else ()
    if any(isinstance(item, Tensor) and not item.is_act() for item in items):
        return ("a concatenated tensor is not an activation (a parameter or a tensor the forward "
                "builds): FloatFunctional.cat takes activations only")
    if any(a.star for a in args) or any(a.keyword is not None and a.keyword.value != DIM_KEYWORD for a in args) \
            or not 1 <= len(args) <= 2:
        return "its arguments (out=, axis=) have no FloatFunctional.cat form"
    return op.node.func, _Call("cat", "cat", ()), None  # the arguments stay as written


def _kind(value) -> str:
    if isinstance(value, Tensor):
        return "act" if value.is_act() else value.kind
    if isinstance(value, Py) and not value.none:
        return "number"
    return "unknown"


def _arithmetic(model, symbol: str, left, right, left_value, right_value):
    """The FloatFunctional call computing `left <symbol> right`, or why there is none."""
    kinds = (_kind(left_value), _kind(right_value))
    if kinds == ("act", "act"):
        if symbol == "-":
            return _Call("sub", "add", (left, _Call("neg", "mul_scalar", (right, "-1"))))
        if symbol == "/":
            return "the divisor is an activation, and there is no quantized division"
        method = {"+": "add", "*": "mul", "@": "matmul"}[symbol]
        return _Call(method, method, (left, right))
    if kinds == ("act", "number"):
        if symbol == "+":
            return _Call("add_scalar", "add_scalar", (left, right))
        if symbol == "-":
            return _Call("sub", "add_scalar", (left, _negated(right)))
        if symbol == "*":
            return _Call("mul_scalar", "mul_scalar", (left, right))
        if symbol == "/":
            reciprocal, reason = _exact_reciprocal(model, right)
            return reason or _Call("div", "mul_scalar", (left, reciprocal))
        return "matmul with a Python number is not a matrix product"
    if kinds == ("number", "act"):
        if symbol in "+*":
            method = "add_scalar" if symbol == "+" else "mul_scalar"
            return _Call(method, method, (right, left))
        if symbol == "-":
            return _Call("sub", "add_scalar", (_Call("neg", "mul_scalar", (right, "-1")), left))
        return "a Python number divided by an activation has no FloatFunctional form"
    other = next(k for k in kinds if k != "act")
    what = {"weight": "a parameter or buffer", "float": "a tensor the forward builds",
            "index": "an integer or bool tensor", "number": "a Python number"}.get(other, "a value of unknown kind")
    return (f"an operand is {what}, not an activation: FloatFunctional ops take activations "
            "(add_scalar and mul_scalar a Python number)")


def _negated(number: cst.BaseExpression) -> Arg:
    if isinstance(number, cst.UnaryOperation) and isinstance(number.operator, cst.Minus) and not number.lpar:
        return number.expression
    if isinstance(number, (cst.Integer, cst.Float)):
        return "-" + number.value
    if not isinstance(number, (cst.Name, cst.Attribute, cst.Call, cst.Subscript)) and not number.lpar:
        number = number.with_changes(lpar=[cst.LeftParen()], rpar=[cst.RightParen()])
    return cst.UnaryOperation(cst.Minus(), number)


def _exact_reciprocal(model, divisor: cst.BaseExpression) -> tuple[Optional[str], Optional[str]]:
    """(1 / divisor as source text, None) when the divisor is a number literal ±2**k
    (|k| <= 126), else (None, why the site is left)."""
    try:
        value = ast.literal_eval(model.module.code_for_node(divisor).strip())
    except (ValueError, SyntaxError):
        value = None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value == 0:
        return None, ("the divisor is not a number literal, and multiplying by its reciprocal "
                      "is exact only for a power of two")
    mantissa, exponent = math.frexp(value)
    if abs(mantissa) != 0.5 or abs(exponent - 1) > _LARGEST_EXPONENT:
        return None, (f"1/{model.module.code_for_node(divisor).strip()} is not exact in floating point, so "
                "multiplying by it would change the float outputs in the last bit; only a power of "
                "two is rewritten (FloatFunctional.mul_scalar by the reciprocal, written by hand, "
                "accepts that)")
    return repr(1 / value), None


def _relu_after(model, op, where, call: _Call):
    """The add_relu plan when the add's result goes straight into a ReLU: `y = a + b` or
    `y += b`, then `y = relu(y)` (removed) or `return relu(y)` (returns y)."""
    if call.method != "add" or where.index + 1 >= len(where.block):
        return None
    line, after = where.block[where.index], where.block[where.index + 1]
    if len(line.body) != 1 or not isinstance(after, cst.SimpleStatementLine) or len(after.body) != 1:
        return None
    small = line.body[0]
    if isinstance(small, cst.AugAssign) and small is op.node:
        name = small.target.value
    elif isinstance(small, cst.Assign) and small.value is op.node and len(small.targets) == 1 \
            and isinstance(small.targets[0].target, cst.Name):
        name = small.targets[0].target.value
    else:
        return None
    statement = after.body[0]
    if isinstance(statement, cst.Assign) and len(statement.targets) == 1 and _is_name(statement.targets[0].target, name) \
            and not _has_comment(after):  # the line goes: its comments would be lost
        relu = statement.value
    elif isinstance(statement, cst.Return):
        relu = statement.value
    else:
        return None
    if not _is_relu_of(model, relu, name):
        return None
    fused = _Call("add_relu", "add_relu", call.args, call.gap)
    if isinstance(statement, cst.Return):
        return op.node, fused, (relu, cst.Name(name))
    return op.node, fused, (after, cst.RemoveFromParent())


def _has_comment(line: cst.SimpleStatementLine) -> bool:
    return line.trailing_whitespace.comment is not None or any(e.comment is not None for e in line.leading_lines)


def _is_name(node, name: str) -> bool:
    return isinstance(node, cst.Name) and node.value == name


def _is_relu_of(model, node, name: str) -> bool:
    """`relu(name)`: an nn.ReLU submodule of the model, F.relu or torch.relu, given only `name`
    (an `inplace` keyword aside)."""
    if not isinstance(node, cst.Call):
        return False
    args = [a for a in node.args if not (a.keyword is not None and a.keyword.value == "inplace")]
    if len(args) != 1 or args[0].keyword is not None or args[0].star or not _is_name(args[0].value, name):
        return False
    if model.qname(node.func) in _RELUS:
        return True
    return any(call.node is node and call.cls == "torch.nn.ReLU" and call.op is None
               for trace in model.runs() for call in trace.calls)


# ----- the edits ----------------------------------------------------------------------------
def _build(fix: Fix, owner, node, call: _Call, extra) -> None:
    holes: dict = {}
    template = _template(fix, owner, call, holes)
    if isinstance(node, cst.AugAssign):
        template = "{target} = " + template
        holes["target"] = node.target
    elif call.method == "cat" and not call.args:  # torch.cat(...) -> self.cat.cat(...)
        template = template[: -len("()")]
    fix.replace(node, template, **holes)
    if extra is not None:
        fix.replace(*extra)


def _template(fix: Fix, owner, call: _Call, holes: dict) -> str:
    member = fix.add_member(owner, call.stem, "{FloatFunctional}()", FloatFunctional=FLOAT_FUNCTIONAL)
    hole = f"m{len(holes)}"
    holes[hole] = member
    args = []
    for i, arg in enumerate(call.args):
        if isinstance(arg, _Call):
            args.append(_template(fix, owner, arg, holes))
        elif isinstance(arg, str):
            args.append(arg)
        else:
            name = f"a{len(holes)}"
            holes[name] = arg
            if i == 0 and call.gap is not None and len(call.args) > 1:
                holes[name] = cst.Arg(arg, comma=cst.Comma(whitespace_after=call.gap))
            args.append("{" + name + "}")
    return f"self.{{{hole}}}.{call.method}({', '.join(args)})"
