"""Queries the fixes of several rules share: where a forward op sits in its method, whether an
in-place write there could be seen by anything else, and how a module was constructed."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import libcst as cst

from qlint.semantic import torch_api as api
from qlint.semantic.init import assigned_targets
from qlint.semantic.model import FileModel
from qlint.semantic.scope import ClassModel
from qlint.semantic.walk import iter_nodes

# Parameter-free modules whose instances a fix may split: a new instance adds no state_dict key.
SPLITTABLE = frozenset(api.INPLACE_MODULE_POSITION) | {
    api.NN + name for name in ("Sigmoid", "Tanh", "GELU", "Hardshrink", "Softshrink", "Softsign", "Tanhshrink",
                               "LogSigmoid", "Softplus", "Softmax", "LogSoftmax", "Softmin")
} | {"torch.ao.quantization.QuantStub", "torch.ao.nn.quantized.FloatFunctional"}


@dataclass
class Site:
    """Where a node of a method is: the class and method, the block holding the statement
    around it, and that statement's position in the block."""

    cls: ClassModel
    method: cst.FunctionDef
    block: tuple  # the statements of the enclosing block
    index: int  # the position of the statement holding the node
    repeated: bool  # it may run more than once per forward: in a loop or comprehension, or in
    # a helper method not called exactly once from forward (outside loops)


def site(model: FileModel, node: cst.CSTNode, anchor) -> Optional[Site]:
    """The site of `node` in a plain method (first parameter `self`, no decorator) of a class of
    the file; None elsewhere (a module-level function, a nested function, a lambda)."""
    for cls in model.classes.values():
        method = next((m for m in cls.methods.values() if m is anchor), None)
        if method is None:
            continue
        params = method.params.params
        if method.decorators or not params or params[0].name.value != "self":
            return None
        found = _find(method.body, node, False)
        if found is None:
            return None
        block, index, in_loop = found
        return Site(cls, method, block, index, in_loop or not _runs_once(cls, method, 0))
    return None


def _runs_once(cls: ClassModel, method: cst.FunctionDef, depth: int) -> bool:
    """Whether a method runs once per forward: forward itself, or a helper named once in the
    class (`self.name(...)`) by a method that runs once, outside loops."""
    name = method.name.value
    if name == "forward":
        return True
    if depth > 3:
        return False
    uses = [(caller, node) for caller in cls.methods.values() for node in iter_nodes(caller.body)
            if isinstance(node, cst.Attribute) and isinstance(node.value, cst.Name)
            and node.value.value == "self" and node.attr.value == name]
    if len(uses) != 1:
        return False
    caller, node = uses[0]
    found = _find(caller.body, node, False)
    return found is not None and not found[2] and _runs_once(cls, caller, depth + 1)


def _find(block, node, in_loop) -> Optional[tuple]:
    statements = tuple(block.body) if isinstance(block, cst.IndentedBlock) else ()
    for i, statement in enumerate(statements):
        if isinstance(statement, cst.SimpleStatementLine):
            for inner in _subtree(statement):
                if inner is node:
                    return statements, i, in_loop or _in_comprehension(statement, node)
            continue
        if isinstance(statement, (cst.FunctionDef, cst.ClassDef)):
            continue
        loop = in_loop or isinstance(statement, (cst.For, cst.While))
        for child in _blocks(statement):
            found = _find(child, node, loop)
            if found is not None:
                return found
        if any(inner is node for inner in _subtree(statement)):
            return None  # in a header (an if's test, a with's item)
    return None


def _blocks(statement):
    for name in ("body", "orelse", "finalbody"):
        part = getattr(statement, name, None)
        if isinstance(part, cst.IndentedBlock):
            yield part
        elif part is not None and hasattr(part, "body"):
            if isinstance(part, cst.If):
                yield from _blocks(part)
            elif isinstance(part.body, cst.IndentedBlock):
                yield part.body
    for handler in getattr(statement, "handlers", ()):
        yield handler.body


def _subtree(node):
    yield node
    yield from iter_nodes(node)


def _in_comprehension(statement, node) -> bool:
    for inner in iter_nodes(statement):
        if isinstance(inner, (cst.ListComp, cst.SetComp, cst.DictComp, cst.GeneratorExp, cst.Lambda)) \
                and any(n is node for n in _subtree(inner)):
            return True
    return False


def _mentions(node, name: str) -> bool:
    return any(isinstance(n, cst.Name) and n.value == name for n in _subtree(node))


def fresh(model: FileModel, cls: ClassModel, expr: cst.BaseExpression) -> bool:
    """Whether an expression makes a new tensor no other name holds: arithmetic, or a call of a
    torch layer with parameters held by the class (a conv, batch norm or linear's output)."""
    if isinstance(expr, cst.BinaryOperation):
        return True
    if isinstance(expr, cst.Call) and isinstance(expr.func, cst.Attribute) \
            and isinstance(expr.func.value, cst.Name) and expr.func.value.value == "self":
        attr = model.index.attrs(cls.qname).get(expr.func.attr.value)
        return attr is not None and model.index.resolve(attr.cls) in api.REGISTERED_PARAMETERS
    return False


def unobserved(model: FileModel, where: Site, operand: cst.BaseExpression) -> bool:
    """Whether writing into `operand` at `where` is seen by nothing else: it is fresh, or a
    local name bound to a fresh value earlier in the same block and since then not mentioned but
    by its own augmented assignments and rebindings computed from itself alone."""
    if fresh(model, where.cls, operand):
        return True
    if not isinstance(operand, cst.Name):
        return False
    name = operand.value
    for statement in reversed(where.block[:where.index]):
        if not _mentions(statement, name) or _updates_in_place(statement, name):
            continue
        if isinstance(statement, cst.SimpleStatementLine) and len(statement.body) == 1:
            small = statement.body[0]
            if isinstance(small, cst.Assign) and len(small.targets) == 1 \
                    and isinstance(small.targets[0].target, cst.Name) and small.targets[0].target.value == name:
                if fresh(model, where.cls, small.value):
                    return True
                if _from_itself(model, small.value, name):
                    continue  # `out = self.bn(out)`: at most the tensor `out` held before
                return False
        return False
    return False


def _from_itself(model: FileModel, value: cst.BaseExpression, name: str) -> bool:
    """Whether an expression reads no local name but `name` (and `self`, module-level names):
    whatever it returns (its input itself, a view of it) is held by no other local."""
    return all(n in (name, "self", "True", "False", "None") or n in model.globals for n in _read_names(value))


def _read_names(node):
    """The names an expression reads (not attribute names or keywords)."""
    if isinstance(node, cst.Name):
        yield node.value
    elif isinstance(node, cst.Attribute):
        yield from _read_names(node.value)
    elif isinstance(node, cst.Arg):
        yield from _read_names(node.value)
    else:
        for child in node.children:
            yield from _read_names(child)


def _updates_in_place(statement, name: str) -> bool:
    """`name += ...` or `name[...] += ...`: the name still holds the tensor it held before."""
    if not isinstance(statement, cst.SimpleStatementLine) or len(statement.body) != 1:
        return False
    small = statement.body[0]
    target = small.target.value if isinstance(small, cst.AugAssign) and isinstance(small.target, cst.Subscript) \
        else getattr(small, "target", None)
    return isinstance(small, cst.AugAssign) and isinstance(target, cst.Name) and target.value == name


def rewritable(model: FileModel, where: Site, call: cst.BaseExpression, operand: cst.BaseExpression,
               inplace: bool, new_module: bool) -> Optional[cst.CSTNode]:
    """The node an out-of-place form of `call` replaces, or None when it cannot say the same:
    the call itself when it is not in place; for an in-place call on an operand whose change
    nothing else sees (`unobserved`), the call when it is the whole value of `return call` or of
    `name = call` rebinding the operand's name, the statement when it is the bare `call` on a
    name (it becomes `name = ...`). A `new_module` is never put where it would run twice."""
    if new_module and where.repeated:
        return None
    if not inplace:
        return call
    if not unobserved(model, where, operand):
        return None
    line = where.block[where.index]
    small = line.body[0] if len(line.body) == 1 else None
    if isinstance(small, cst.Return) and small.value is call:
        return call
    if fresh(model, where.cls, operand):
        return call
    if isinstance(small, cst.Assign) and small.value is call and len(small.targets) == 1 \
            and isinstance(small.targets[0].target, cst.Name) and small.targets[0].target.value == operand.value:
        return call
    if isinstance(small, cst.Expr) and small.value is call:
        return small
    return None


# ----- constructors ---------------------------------------------------------------------
def constructor(model: FileModel, cls: ClassModel, attr: str) -> Optional[cst.Call]:
    """The call that builds `self.<attr>`: its one binding in the class, a top-level statement
    of `__init__` (or a local name bound once there and assigned to it)."""
    init = cls.methods.get("__init__")
    bindings = [small for method in cls.methods.values() for small in _smalls(method)
                if any(_is_self_attr(t, attr) for t in assigned_targets(small))]
    if init is None or len(bindings) != 1 or not isinstance(bindings[0], cst.Assign):
        return None
    value = bindings[0].value
    if not any(bindings[0] is s for s in _top_smalls(init)):
        return None
    if isinstance(value, cst.Name):
        return local_constructor(init, value.value)
    return value if isinstance(value, cst.Call) else None


def local_constructor(init: cst.FunctionDef, name: str) -> Optional[cst.Call]:
    """The call a local name of `__init__` is bound to, when it is bound once, at top level."""
    bindings = [small for small in _smalls(init) if any(isinstance(t, cst.Name) and t.value == name
                                                        for t in assigned_targets(small))]
    if len(bindings) != 1 or not isinstance(bindings[0], cst.Assign) \
            or not any(bindings[0] is s for s in _top_smalls(init)):
        return None
    return bindings[0].value if isinstance(bindings[0].value, cst.Call) else None


def copyable(model: FileModel, init: cst.FunctionDef, call: cst.Call) -> bool:
    """Whether a constructor call means the same written again at the end of `__init__`: its
    arguments are literals, module-level names, or parameters of `__init__` never rebound."""
    params = {p.name.value for p in (*init.params.params, *init.params.kwonly_params, *init.params.posonly_params)}
    rebound = {t.value for small in _smalls(init) for t in assigned_targets(small) if isinstance(t, cst.Name)}
    for arg in call.args:
        if arg.star:
            return False
        for node in _subtree(arg.value):
            if isinstance(node, (cst.Call, cst.Lambda, cst.NamedExpr, cst.Await, cst.Yield)):
                return False
            if isinstance(node, cst.Name) and not (
                    node.value in ("True", "False", "None") or node.value in model.globals
                    or (node.value in params and node.value not in rebound)):
                return False
    return True


def _smalls(func: cst.FunctionDef):
    for node in iter_nodes(func.body):
        if isinstance(node, cst.BaseSmallStatement):
            yield node


def _top_smalls(func: cst.FunctionDef):
    for statement in func.body.body if isinstance(func.body, cst.IndentedBlock) else ():
        if isinstance(statement, cst.SimpleStatementLine):
            yield from statement.body


def _is_self_attr(target, attr: str) -> bool:
    return isinstance(target, cst.Attribute) and isinstance(target.value, cst.Name) \
        and target.value.value == "self" and target.attr.value == attr
