"""The forward path of a module class, evaluated abstractly.

`forward` and every `self.<method>` it calls are walked in execution order, with loops
known as loops and if/else arms known as exclusive. Each value is classified: an
activation (forward parameters, submodule outputs, anything computed from them), a tensor
that is not an activation (constructors such as `torch.arange(n)`, parameters, buffers), a
Python value (shapes, sizes, numbers, config attributes), a submodule, a container or a
callable with its qualified name. What the forward path does is recorded in a `Trace`:
submodule calls with the call that produced their input, operations with their operands,
and reads of raw nn.Parameters. Rules query the trace; none of them re-walks the code.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import libcst as cst

from qlint.semantic import torch_api as api
from qlint.semantic.model import BUFFER, CONTAINER, MODULE, PARAM, VALUE, ClassModel, FileModel
from qlint.semantic.names import canonical, import_bindings

ACT, TENSOR, NUM, NONE, MOD, SELF, FUNC, SEQ, UNKNOWN, METHOD, CLOSURE = (
    "act", "tensor", "num", "none", "module", "self", "func", "seq", "unknown", "method", "closure")


class V:
    """An abstract value."""

    __slots__ = ("kind", "qname", "key", "cls", "members", "items", "producer", "container", "element")

    def __init__(self, kind, *, qname=None, key=None, cls=None, members=None, items=None,
                 producer=None, container=None, element=None):
        self.kind = kind
        self.qname = qname  # FUNC: qualified name; METHOD: method name
        self.key = key  # MOD: attribute path identifying the instance ("relu", "layers.0")
        self.cls = cls  # MOD: qualified class
        self.members = members  # MOD container: ((name, cls), ...) when literal
        self.items = items  # SEQ: list of V (mutable)
        self.producer = producer  # ACT: the ModuleCall whose output this is, unchanged
        self.container = container  # MOD: "sequential" / "list" / "dict" for containers
        self.element = element  # MOD container: the class of every member, when known
        # CLOSURE: the function or lambda defined in the forward path is kept in `items`

    def is_act(self) -> bool:
        if self.kind == ACT:
            return True
        if self.kind == SEQ:
            return any(item.is_act() for item in self.items)
        return False


ACT_V, TENSOR_V, NUM_V, NONE_V, UNKNOWN_V = V(ACT), V(TENSOR), V(NUM), V(NONE), V(UNKNOWN)


def join(*values: V) -> V:
    """The value of an expression that may be any of `values` (activations dominate)."""
    if any(v.is_act() for v in values):
        return ACT_V
    kinds = {v.kind for v in values}
    if TENSOR in kinds:
        return TENSOR_V
    if kinds <= {NUM, NONE}:
        return NUM_V
    return values[0] if len(values) == 1 else UNKNOWN_V


@dataclass(eq=False)
class ModuleCall:
    """A submodule applied in the forward path (or a FloatFunctional op when `op` is set)."""

    node: cst.Call
    key: Optional[str]  # attribute path of the instance; None for iterated members
    cls: Optional[str]
    op: Optional[str]  # FloatFunctional method
    in_loop: bool
    branch: tuple
    invocation: tuple  # the chain of inlined self-method call sites leading here
    input: Optional["ModuleCall"]
    order: int


@dataclass(eq=False)
class OpUse:
    """An operation in the forward path: a call, method, operator or augmented assignment."""

    node: cst.CSTNode
    kind: str  # "call", "method", "binop", "unary", "compare", "augassign"
    name: str  # qualified function name, method name or operator symbol
    operands: tuple
    call: Optional[cst.Call] = None

    @property
    def on_activation(self) -> bool:
        return any(v.is_act() for v in self.operands)


@dataclass(eq=False)
class ParamRead:
    node: cst.Attribute
    name: str


@dataclass
class Trace:
    calls: list = field(default_factory=list)
    ops: list = field(default_factory=list)
    param_reads: list = field(default_factory=list)
    found: bool = False  # a forward method was found and evaluated


def trace_forward(model: FileModel, cls: ClassModel) -> Trace:
    found = model.find_method(cls, "forward")
    trace = Trace()
    if found is None:
        return trace
    owner, forward = found
    trace.found = True
    _Evaluator(model, cls, trace).run(forward)
    return trace


_BINOPS = {
    cst.Add: "+", cst.Subtract: "-", cst.Multiply: "*", cst.Divide: "/", cst.MatrixMultiply: "@",
    cst.FloorDivide: "//", cst.Modulo: "%", cst.Power: "**", cst.LeftShift: "<<",
    cst.RightShift: ">>", cst.BitAnd: "&", cst.BitOr: "|", cst.BitXor: "^",
}
_AUGOPS = {
    cst.AddAssign: "+=", cst.SubtractAssign: "-=", cst.MultiplyAssign: "*=",
    cst.DivideAssign: "/=", cst.MatrixMultiplyAssign: "@=", cst.FloorDivideAssign: "//=",
    cst.ModuloAssign: "%=", cst.PowerAssign: "**=", cst.BitAndAssign: "&=", cst.BitOrAssign: "|=",
    cst.BitXorAssign: "^=", cst.LeftShiftAssign: "<<=", cst.RightShiftAssign: ">>=",
}
_COMPARE = {
    cst.LessThan: "<", cst.GreaterThan: ">", cst.LessThanEqual: "<=",
    cst.GreaterThanEqual: ">=", cst.Equal: "==", cst.NotEqual: "!=",
}
_NON_TENSOR_TYPES = frozenset({"builtins.int", "builtins.float", "builtins.bool", "builtins.str",
                               "builtins.bytes", "builtins.complex", "torch.Size", "torch.dtype",
                               "torch.device", "builtins.None"})
_CONTAINER_TYPES = frozenset({"typing.Optional", "typing.Union", "typing.List", "typing.Tuple",
                              "typing.Sequence", "typing.Dict", "typing.Iterable", "typing.Mapping",
                              "builtins.list", "builtins.tuple", "builtins.dict",
                              "typing.Final", "typing.Set", "builtins.set"})


class _Return(Exception):
    pass


class _Frame:
    __slots__ = ("env", "returns", "invocation", "loop_depth", "method")

    def __init__(self, env, invocation, loop_depth, method):
        self.env = env
        self.returns: list[V] = []
        self.invocation = invocation
        self.loop_depth = loop_depth
        self.method = method


class _Evaluator:
    MAX_INLINE_DEPTH = 6

    def __init__(self, model: FileModel, cls: ClassModel, trace: Trace):
        self.model = model
        self.cls = cls
        self.trace = trace
        self.index = model.index
        self.attrs = model.index.attrs(cls.qname)
        self.branch: tuple = ()
        self.frames: list[_Frame] = []
        self.order = 0

    # ----- entry and frames --------------------------------------------------------------
    def run(self, forward: cst.FunctionDef) -> None:
        params = forward.params
        env = {}
        for i, param in enumerate([*params.posonly_params, *params.params, *params.kwonly_params]):
            if i == 0 and param.name.value == "self":
                env["self"] = V(SELF)
                continue
            env[param.name.value] = ACT_V if self._may_hold_tensor(param) else NUM_V
        if isinstance(params.star_arg, cst.Param):
            env[params.star_arg.name.value] = V(SEQ, items=[ACT_V])
        if params.star_kwarg is not None:
            env[params.star_kwarg.name.value] = UNKNOWN_V
        self._invoke(forward, env, ())

    def _may_hold_tensor(self, param: cst.Param) -> bool:
        if param.annotation is not None:
            return self._annotation_may_hold_tensor(param.annotation.annotation)
        default = param.default
        if isinstance(default, (cst.Integer, cst.Float, cst.SimpleString, cst.ConcatenatedString)):
            return False
        if isinstance(default, cst.UnaryOperation) and isinstance(default.expression, (cst.Integer, cst.Float)):
            return False
        if isinstance(default, cst.Name) and default.value in ("True", "False"):
            return False
        return True

    def _annotation_may_hold_tensor(self, ann: cst.BaseExpression) -> bool:
        if isinstance(ann, cst.SimpleString):
            return "Tensor" in ann.value or "Any" in ann.value
        if isinstance(ann, cst.Name) and ann.value == "None":
            return False
        if isinstance(ann, cst.BinaryOperation):  # X | None
            return self._annotation_may_hold_tensor(ann.left) or self._annotation_may_hold_tensor(ann.right)
        if isinstance(ann, cst.Subscript):
            outer = self.model.qname(ann.value)
            if outer in _CONTAINER_TYPES or (outer or "").rsplit(".", 1)[-1] in (
                    "Optional", "Union", "List", "Tuple", "Sequence", "Dict", "list", "tuple", "dict"):
                return any(self._annotation_may_hold_tensor(e.slice.value)
                           for e in ann.slice if isinstance(e.slice, cst.Index))
            return True
        qname = self.model.qname(ann)
        if qname is None and isinstance(ann, cst.Name):
            qname = "builtins." + ann.value
        return qname not in _NON_TENSOR_TYPES

    def _invoke(self, func: cst.FunctionDef, env: dict, invocation: tuple) -> V:
        loop_depth = self.frames[-1].loop_depth if self.frames else 0
        frame = _Frame(env, invocation, loop_depth, func.name.value)
        self.frames.append(frame)
        try:
            self._block(func.body)
        except _Return:
            pass
        finally:
            self.frames.pop()
        return _returned(frame.returns)

    @property
    def frame(self) -> _Frame:
        return self.frames[-1]

    # ----- statements ----------------------------------------------------------------------
    def _block(self, block) -> bool:
        """Evaluate a suite; True when it always ends in return/raise/break/continue."""
        body = block.body if isinstance(block, (cst.IndentedBlock, cst.SimpleStatementSuite)) else block
        for stmt in body:
            if self._stmt(stmt):
                return True
        return False

    def _stmt(self, stmt) -> bool:
        if isinstance(stmt, (cst.SimpleStatementLine, cst.SimpleStatementSuite)):
            for small in stmt.body:
                if self._small(small):
                    return True
            return False
        if isinstance(stmt, cst.If):
            return self._if(stmt)
        if isinstance(stmt, cst.For):
            iterated = self._expr(stmt.iter)
            self.frame.loop_depth += 1
            self._assign(stmt.target, self._element_of(iterated))
            self._block(stmt.body)
            self.frame.loop_depth -= 1
            if stmt.orelse is not None:
                self._block(stmt.orelse.body)
            return False
        if isinstance(stmt, cst.While):
            self.frame.loop_depth += 1
            self._expr(stmt.test)
            self._block(stmt.body)
            self.frame.loop_depth -= 1
            return False
        if isinstance(stmt, cst.With):
            for item in stmt.items:
                value = self._expr(item.item)
                if item.asname is not None:
                    self._assign(item.asname.name, value)
            return self._block(stmt.body)
        if isinstance(stmt, (cst.Try, cst.TryStar)):
            ends = self._block(stmt.body)
            saved = self.branch
            for i, handler in enumerate(stmt.handlers):
                self.branch = saved + (((self.frame.invocation, id(stmt)), i),)
                self._block(handler.body)
            self.branch = saved
            if stmt.orelse is not None:
                ends = self._block(stmt.orelse.body)
            if stmt.finalbody is not None:
                self._block(stmt.finalbody.body)
            return ends and not stmt.handlers
        if isinstance(stmt, cst.FunctionDef):
            self.frame.env[stmt.name.value] = V(CLOSURE, items=[stmt])
            return False
        if isinstance(stmt, cst.Match):
            self._expr(stmt.subject)
            saved = self.branch
            for i, case in enumerate(stmt.cases):
                self.branch = saved + (((self.frame.invocation, id(stmt)), i),)
                self._block(case.body)
            self.branch = saved
            return False
        return False

    def _if(self, stmt: cst.If) -> bool:
        self._expr(stmt.test)
        key = (self.frame.invocation, id(stmt))
        saved_branch, env = self.branch, self.frame.env
        then_env = dict(env)
        self.frame.env = then_env
        self.branch = saved_branch + ((key, 0),)
        then_ends = self._block(stmt.body)
        else_env = dict(env)
        self.frame.env = else_env
        self.branch = saved_branch + ((key, 1),)
        else_ends = False
        if stmt.orelse is not None:
            orelse = stmt.orelse
            else_ends = self._block(orelse.body) if isinstance(orelse, cst.Else) else self._if(orelse)
        if then_ends and else_ends:
            self.branch = saved_branch
            self.frame.env = env
            return True
        if then_ends:
            self.frame.env = else_env  # the rest runs only when the if-arm did not
            self.branch = saved_branch + ((key, 1),)
            return False
        if else_ends:
            self.frame.env = then_env
            self.branch = saved_branch + ((key, 0),)
            return False
        self.branch = saved_branch
        merged = dict(env)
        for name in set(then_env) | set(else_env):
            a, b = then_env.get(name), else_env.get(name)
            if a is b:
                merged[name] = a
            elif a is None or b is None:
                merged[name] = a or b
            else:
                merged[name] = a if a.kind == b.kind and a.kind in (MOD, SEQ, FUNC) else join(a, b)
        self.frame.env = merged
        return False

    def _small(self, small) -> bool:
        if isinstance(small, cst.Assign):
            value = self._expr(small.value)
            for target in small.targets:
                self._assign(target.target, value)
        elif isinstance(small, cst.AnnAssign):
            if small.value is not None:
                self._assign(small.target, self._expr(small.value))
        elif isinstance(small, cst.AugAssign):
            value = self._expr(small.value)
            target = self._expr(small.target, reading_for_write=True)
            op = _AUGOPS.get(type(small.operator), "?=")
            if target.kind == SEQ:
                if value.kind == SEQ:
                    target.items.extend(value.items)
                else:
                    target.items.append(value)
            else:
                self._op(small, "augassign", op, (target, value))
                if isinstance(small.target, cst.Name):
                    self.frame.env[small.target.value] = join(target, value) if target.kind != MOD else target
        elif isinstance(small, cst.Expr):
            self._expr(small.value)
        elif isinstance(small, cst.Return):
            value = self._expr(small.value) if small.value is not None else NONE_V
            self.frame.returns.append(value)
            return True
        elif isinstance(small, cst.Raise):
            if small.exc is not None:
                self._expr(small.exc)
            return True
        elif isinstance(small, (cst.Break, cst.Continue)):
            return True
        elif isinstance(small, cst.Assert):
            self._expr(small.test)
        elif isinstance(small, (cst.Import, cst.ImportFrom)):
            for local, qname, _ in import_bindings(small, self.model.package):
                self.frame.env[local] = V(FUNC, qname=canonical(qname))
        return False

    def _assign(self, target, value: V) -> None:
        if isinstance(target, cst.Name):
            self.frame.env[target.value] = value
        elif isinstance(target, (cst.Tuple, cst.List)):
            elements = target.elements
            if value.kind == SEQ and len(value.items) == len(elements) and not any(
                    isinstance(e, cst.StarredElement) for e in elements):
                for element, item in zip(elements, value.items):
                    self._assign(element.value, item)
                return
            element_value = self._element_of(value)
            for element in elements:
                if isinstance(element, cst.StarredElement):
                    self._assign(element.value, V(SEQ, items=[element_value]))
                else:
                    self._assign(element.value, element_value)
        elif isinstance(target, cst.StarredElement):
            self._assign(target.value, V(SEQ, items=[value]))
        elif isinstance(target, cst.Subscript):
            self._expr(target.value, reading_for_write=True)
            for element in target.slice:
                self._slice(element.slice)
        elif isinstance(target, cst.Attribute):
            if not (isinstance(target.value, cst.Name) and target.value.value == "self"):
                self._expr(target.value, reading_for_write=True)

    def _element_of(self, value: V) -> V:
        """The value of one element when iterating or unpacking `value`."""
        if value.kind == MOD:
            if value.container == "dict":
                return NUM_V
            member_cls = value.element
            if value.members:
                classes = {cls for _, cls in value.members}
                member_cls = classes.pop() if len(classes) == 1 else None
            return V(MOD, key=None, cls=member_cls)
        if value.kind == SEQ:
            if not value.items:
                return UNKNOWN_V
            mods = [item for item in value.items if item.kind == MOD]
            if mods and len(mods) == len(value.items):
                return V(MOD, key=None, cls=None)
            if len(value.items) == 1 or len({id(i) for i in value.items}) == 1:
                return value.items[0]
            if all(item.kind == SEQ for item in value.items):
                return value.items[0]
            return join(*value.items)
        if value.kind in (ACT, TENSOR, NUM):
            return value
        return UNKNOWN_V

    # ----- expressions -------------------------------------------------------------------
    def _op(self, node, kind, name, operands, call=None) -> None:
        self.trace.ops.append(OpUse(node, kind, name, tuple(operands), call))

    def _expr(self, expr, reading_for_write=False) -> V:
        if expr is None:
            return NONE_V
        handler = _DISPATCH.get(type(expr))
        if handler is not None:
            return handler(self, expr)
        if isinstance(expr, cst.Attribute):
            return self._attribute(expr, quiet=reading_for_write)
        return UNKNOWN_V

    def _name(self, expr: cst.Name) -> V:
        name = expr.value
        if name in self.frame.env:
            return self.frame.env[name]
        if name in ("True", "False"):
            return NUM_V
        if name == "None":
            return NONE_V
        if name in self.model.constants:
            return NUM_V
        qname = self.model.qname(expr)
        return V(FUNC, qname=qname) if qname is not None else UNKNOWN_V

    def _attribute(self, expr: cst.Attribute, quiet=False) -> V:
        attr = expr.attr.value
        base = expr.value
        if isinstance(base, cst.Name) and base.value == "self" and "self" in self.frame.env:
            return self._self_attr(expr, attr, quiet)
        value = self._expr(base, reading_for_write=quiet or attr in api.SHAPE_ATTRIBUTES)
        if value.kind == FUNC:
            return V(FUNC, qname=canonical(f"{value.qname}.{attr}"))
        if value.kind in (ACT, TENSOR):
            if attr in api.SHAPE_ATTRIBUTES:
                return NUM_V
            if attr in ("T", "mT", "H", "mH", "data", "real", "imag"):
                return value
            return V(METHOD, qname=attr, items=[value])
        if value.kind in (MOD, SEQ, NUM):
            return V(METHOD, qname=attr, items=[value])
        return UNKNOWN_V

    def _self_attr(self, expr: cst.Attribute, attr: str, quiet: bool) -> V:
        info = self.attrs.get(attr)
        if info is None:
            if self.model.find_method(self.cls, attr) is not None:
                return V(METHOD, qname=attr, items=[V(SELF)])
            if attr == "training":
                return NUM_V
            return UNKNOWN_V
        if info.kind == PARAM:
            if not quiet:
                self.trace.param_reads.append(ParamRead(expr, attr))
            return TENSOR_V
        if info.kind == BUFFER:
            return TENSOR_V
        if info.kind in (MODULE, CONTAINER):
            kind = self.index.module_kind(info.cls)
            if kind == VALUE:
                return TENSOR_V if info.cls.startswith("torch.") else NUM_V
            if kind not in (MODULE, CONTAINER):
                return UNKNOWN_V
            container = api.CONTAINERS.get(self.index.torch_base(info.cls)) if kind == CONTAINER else None
            return V(MOD, key=attr, cls=info.cls, members=info.members, container=container,
                     element=info.element)
        if info.kind == VALUE:
            return NUM_V
        return UNKNOWN_V

    def _call(self, call: cst.Call) -> V:
        func = call.func
        # Shape queries on parameters are not uses of them: self.pos_embed.shape / .size()
        quiet_receiver = isinstance(func, cst.Attribute) and func.attr.value in api.SHAPE_METHODS
        callee = self._attribute(func, quiet=quiet_receiver) if isinstance(func, cst.Attribute) else self._expr(func)
        layout_only = (callee.kind == METHOD and callee.qname in api.LAYOUT_ARGUMENT_METHODS) or (
            callee.kind == FUNC and callee.qname in api.SHAPE_FUNCTIONS)
        args = [self._expr(arg.value, reading_for_write=layout_only) for arg in call.args]
        positional = [v for v, arg in zip(args, call.args) if arg.keyword is None]
        kind = callee.kind
        if kind == MOD:
            return self._module_call(call, callee, positional)
        if kind == METHOD:
            receiver = callee.items[0]
            return self._method_call(call, callee.qname, receiver, args, positional)
        if kind == FUNC:
            return self._function_call(call, callee.qname, args, positional)
        if kind == CLOSURE:
            return self._inline_closure(call, callee.items[0], args)
        if kind == ACT:
            return ACT_V
        return ACT_V if any(a.is_act() for a in args) else UNKNOWN_V

    def _module_call(self, call, module: V, positional) -> V:
        first = positional[0] if positional else None
        record = ModuleCall(
            node=call, key=module.key, cls=module.cls, op=None,
            in_loop=self.frame.loop_depth > 0, branch=self.branch,
            invocation=self.frame.invocation,
            input=first.producer if first is not None and first.kind == ACT else None,
            order=self._next())
        self.trace.calls.append(record)
        if self.index.resolve(module.cls) == api.DEQUANT_STUB:
            return TENSOR_V  # leaving the quantized region: a float tensor
        return V(ACT, producer=record)

    def _next(self) -> int:
        self.order += 1
        return self.order

    def _method_call(self, call, method: str, receiver: V, args, positional) -> V:
        if receiver.kind == SELF:
            return self._inline(call, method, args)
        if receiver.kind == MOD:
            cls = self.index.resolve(receiver.cls)
            if cls in api.FLOAT_FUNCTIONAL or self.index.torch_base(cls) in api.FLOAT_FUNCTIONAL:
                self.trace.calls.append(ModuleCall(
                    node=call, key=receiver.key, cls=receiver.cls, op=method,
                    in_loop=self.frame.loop_depth > 0, branch=self.branch,
                    invocation=self.frame.invocation, input=None, order=self._next()))
                return ACT_V
            if method in ("items",):
                return V(SEQ, items=[V(SEQ, items=[NUM_V, self._element_of(receiver)])])
            if method in ("values", "children", "modules"):
                return V(SEQ, items=[self._element_of(receiver)])
            if method in ("parameters", "named_parameters", "buffers", "keys"):
                return UNKNOWN_V
            return ACT_V if any(a.is_act() for a in args) else UNKNOWN_V
        if receiver.kind == SEQ:
            if method in ("append", "insert") and args:
                receiver.items.append(args[-1])
            elif method == "extend" and args:
                receiver.items.extend(args[-1].items if args[-1].kind == SEQ else [args[-1]])
            elif method in ("pop", "copy"):
                return self._element_of(receiver) if method == "pop" else receiver
            elif method in ("items", "values"):
                return V(SEQ, items=[self._element_of(receiver)])
            elif method == "get":
                return self._element_of(receiver)
            return UNKNOWN_V
        if receiver.kind in (ACT, TENSOR):
            self._op(call, "method", method, [receiver, *args], call)
            if method in api.SHAPE_METHODS:
                return TENSOR_V if method.startswith("new_") else NUM_V
            indexed = _index_result(method, receiver, call, positional)
            if indexed is not None:
                return indexed
            if method in ("unbind", "chunk", "split", "tensor_split", "unsafe_chunk"):
                return V(SEQ, items=[receiver])
            if receiver.kind == TENSOR and method not in api.LAYOUT_ARGUMENT_METHODS and any(
                    a.is_act() for a in args):
                return ACT_V
            return receiver if receiver.kind == TENSOR else ACT_V
        if receiver.kind == NUM:
            return NUM_V
        return ACT_V if any(a.is_act() for a in args) else UNKNOWN_V

    def _inline(self, call, method: str, args) -> V:
        found = self.model.find_method(self.cls, method)
        active = [f.method for f in self.frames]
        if found is None or method in active or len(self.frames) > self.MAX_INLINE_DEPTH:
            return ACT_V if any(a.is_act() for a in args) else UNKNOWN_V
        _, func = found
        env = self._bind(func.params, call, args, {})
        return self._invoke(func, env, self.frame.invocation + (call,))

    def _inline_closure(self, call, func, args) -> V:
        """A function or lambda defined in the forward path, called there: its body runs with
        the enclosing variables and the arguments given."""
        key = func.name.value if isinstance(func, cst.FunctionDef) else id(func)
        if len(self.frames) > self.MAX_INLINE_DEPTH or any(f.method == key for f in self.frames):
            return ACT_V if any(a.is_act() for a in args) else UNKNOWN_V
        env = self._bind(func.params, call, args, dict(self.frame.env))
        if isinstance(func, cst.FunctionDef):
            return self._invoke(func, env, self.frame.invocation + (call,))
        frame = _Frame(env, self.frame.invocation + (call,), self.frame.loop_depth, key)
        self.frames.append(frame)
        try:
            return self._expr(func.body)
        finally:
            self.frames.pop()

    def _bind(self, params: cst.Parameters, call, args, env: dict) -> dict:
        """The callee's variables for a call: arguments by position and keyword, defaults,
        *args and **kwargs; `self` when the callee takes it."""
        names = [p for p in [*params.posonly_params, *params.params]]
        positional = [a for a, arg in zip(args, call.args) if arg.keyword is None and not arg.star]
        keywords = {arg.keyword.value: a for a, arg in zip(args, call.args) if arg.keyword is not None}
        has_star = any(arg.star for arg in call.args)
        bound = names[1:] if names and names[0].name.value == "self" else names
        if names and names[0].name.value == "self":
            env["self"] = V(SELF)
        for i, param in enumerate([*bound, *params.kwonly_params]):
            pname = param.name.value
            if param.annotation is not None and not self._may_hold_tensor(param):
                env[pname] = NUM_V  # `n: int` holds no activation, whatever is passed
            elif i < len(positional) and param in bound:
                env[pname] = positional[i]
            elif pname in keywords:
                env[pname] = keywords[pname]
            elif has_star:
                env[pname] = join(*args) if args else UNKNOWN_V
            elif param.default is not None:
                env[pname] = self._default(param.default)
            else:
                env[pname] = UNKNOWN_V
        if isinstance(params.star_arg, cst.Param):
            env[params.star_arg.name.value] = V(SEQ, items=positional[len(bound):] or [UNKNOWN_V])
        if params.star_kwarg is not None:
            env[params.star_kwarg.name.value] = UNKNOWN_V
        return env

    def _default(self, default) -> V:
        if isinstance(default, cst.Name) and default.value == "None":
            return NONE_V
        if isinstance(default, (cst.Integer, cst.Float, cst.SimpleString, cst.Name)):
            return NUM_V
        return UNKNOWN_V

    def _function_call(self, call, qname: str, args, positional) -> V:
        if qname.startswith("builtins."):
            return self._builtin_call(call, qname[9:], args, positional)
        if qname.startswith("torch.") and not qname.startswith("torch.nn.Module"):
            self._op(call, "call", qname, args, call)
            if qname in api.SHAPE_FUNCTIONS:
                return TENSOR_V if qname in api.LIKE_CONSTRUCTORS else NUM_V
            if qname.count(".") == 1 and positional:
                indexed = _index_result(qname[6:], positional[0], call, positional[1:])
                if indexed is not None:
                    return indexed
            if qname in ("torch.split", "torch.chunk", "torch.unbind", "torch.tensor_split"):
                return V(SEQ, items=[join(*args)]) if args else UNKNOWN_V
            if qname in ("torch.nn.Parameter", "torch.tensor", "torch.as_tensor"):
                return TENSOR_V
            if any(a.is_act() for a in args):
                return ACT_V
            return TENSOR_V
        if qname.startswith("math.") or qname.startswith("numpy.") or qname.startswith("operator."):
            return NUM_V
        if qname.startswith("typing.") or qname.startswith("warnings.") or qname.startswith("logging."):
            return UNKNOWN_V
        helper = self.model.functions.get(qname[len(self.model.module_name) + 1:]) \
            if qname.startswith(self.model.module_name + ".") else None
        if helper is not None and helper.returns is not None and any(a.is_act() for a in args):
            annotated = self._annotated_value(helper.returns.annotation)
            if annotated is not None:
                return annotated
        return ACT_V if any(a.is_act() for a in args) else UNKNOWN_V

    def _annotated_value(self, ann) -> Optional[V]:
        """The value a same-file helper returns, from its annotation (None when it does not say):
        `Tuple[Tensor, List[int]]` unpacks into an activation and a Python value."""
        if isinstance(ann, cst.Subscript):
            outer = (self.model.qname(ann.value) or "").rsplit(".", 1)[-1]
            elements = [e.slice.value for e in ann.slice if isinstance(e.slice, cst.Index)]
            if outer in ("Tuple", "tuple") and elements and not any(
                    isinstance(e, cst.Ellipsis) for e in elements):
                values = [self._annotated_value(e) for e in elements]
                return None if any(v is None for v in values) else V(SEQ, items=values)
        return ACT_V if self._annotation_may_hold_tensor(ann) else NUM_V

    def _builtin_call(self, call, name: str, args, positional) -> V:
        if name in ("range", "len", "int", "float", "bool", "str", "isinstance", "hasattr",
                    "callable", "issubclass", "id", "repr", "type", "print", "round", "divmod"):
            return NUM_V
        if name == "abs" and positional and positional[0].is_act():
            self._op(call, "method", "abs", positional, call)
            return ACT_V
        if name == "super":
            return UNKNOWN_V  # super().forward(x): an unknown call, activation in, activation out
        if name == "enumerate" and positional:
            return V(SEQ, items=[V(SEQ, items=[NUM_V, self._element_of(positional[0])])])
        if name == "zip":
            return V(SEQ, items=[V(SEQ, items=[self._element_of(a) for a in positional])])
        if name in ("reversed", "sorted", "list", "tuple", "iter", "set", "frozenset") and positional:
            source = positional[0]
            return source if source.kind in (SEQ, MOD) else V(SEQ, items=[self._element_of(source)])
        if name in ("getattr",) and positional and positional[0].kind == SELF:
            return V(MOD, key=None, cls=None)
        if name in ("min", "max", "sum", "next", "map", "filter", "any", "all", "pow"):
            return join(*args) if args else NUM_V
        if name in ("dict", "object", "slice"):
            return UNKNOWN_V
        return ACT_V if any(a.is_act() for a in args) else UNKNOWN_V

    def _binary(self, expr: cst.BinaryOperation) -> V:
        left, right = self._expr(expr.left), self._expr(expr.right)
        op = _BINOPS.get(type(expr.operator), "?")
        if left.kind == SEQ and right.kind == SEQ and op == "+":
            return V(SEQ, items=left.items + right.items)
        if left.kind == SEQ or right.kind == SEQ:
            return left if left.kind == SEQ else right
        self._op(expr, "binop", op, (left, right))
        return join(left, right)

    def _unary(self, expr: cst.UnaryOperation) -> V:
        value = self._expr(expr.expression)
        if isinstance(expr.operator, cst.Not):
            return NUM_V
        symbol = {cst.Minus: "unary -", cst.Plus: "unary +", cst.BitInvert: "unary ~"}[type(expr.operator)]
        self._op(expr, "unary", symbol, (value,))
        return value if value.kind in (ACT, TENSOR, NUM) else UNKNOWN_V

    def _compare(self, expr: cst.Comparison) -> V:
        left_node = expr.left
        identity = all(isinstance(t.operator, (cst.Is, cst.IsNot, cst.In, cst.NotIn)) for t in expr.comparisons)
        left = self._expr(left_node, reading_for_write=identity)
        values = [left]
        for target in expr.comparisons:
            right = self._expr(target.comparator, reading_for_write=identity)
            symbol = _COMPARE.get(type(target.operator))
            if symbol is not None:
                self._op(expr, "compare", symbol, (values[-1], right))
            values.append(right)
        if identity:
            return NUM_V
        # A comparison of quantized tensors runs and gives a bool mask, not an activation.
        return TENSOR_V if any(v.kind in (ACT, TENSOR) or v.is_act() for v in values) else NUM_V

    def _boolean(self, expr: cst.BooleanOperation) -> V:
        return join(self._expr(expr.left), self._expr(expr.right))

    def _ifexp(self, expr: cst.IfExp) -> V:
        self._expr(expr.test)
        key = (self.frame.invocation, id(expr))
        saved = self.branch
        self.branch = saved + ((key, 0),)
        body = self._expr(expr.body)
        self.branch = saved + ((key, 1),)
        orelse = self._expr(expr.orelse)
        self.branch = saved
        if body.kind == orelse.kind and body.kind in (MOD, SEQ, FUNC):
            return body
        if orelse.kind == NONE:
            return body
        if body.kind == NONE:
            return orelse
        return join(body, orelse)

    def _subscript(self, expr: cst.Subscript) -> V:
        base = expr.value
        if isinstance(base, cst.Attribute) and base.attr.value == "_modules" \
                and isinstance(base.value, cst.Name) and base.value.value == "self":
            name = _literal_index(expr)  # self._modules["act"] is self.act
            if name is not None and name in self.attrs:
                return self._self_attr(expr, name, False)
        value = self._expr(expr.value)
        for element in expr.slice:
            self._slice(element.slice)
        if value.kind == MOD:
            index = _literal_index(expr)
            key = f"{value.key}.{index}" if value.key is not None and index is not None else None
            member_cls = value.element
            if value.members is not None and index is not None:
                member_cls = dict(value.members).get(index)
                if member_cls is None and index.lstrip("-").isdigit():
                    position = int(index)
                    if -len(value.members) <= position < len(value.members):
                        member_cls = value.members[position][1]
            return V(MOD, key=key, cls=member_cls)
        if value.kind == SEQ:
            index = _literal_index(expr)
            if index is not None and index.lstrip("-").isdigit() and value.items:
                position = int(index)
                if -len(value.items) <= position < len(value.items) and len(value.items) > 1:
                    return value.items[position]
            if isinstance(expr.slice[0].slice, cst.Slice):
                return value
            return self._element_of(value)
        if value.kind in (ACT, TENSOR):
            return value
        if value.kind == NUM:
            return NUM_V
        if value.kind == FUNC:
            return value
        return UNKNOWN_V

    def _slice(self, node) -> V:
        if isinstance(node, cst.Index):
            return self._expr(node.value)
        for part in (node.lower, node.upper, node.step):
            if part is not None:
                self._expr(part)
        return NUM_V

    def _sequence(self, expr) -> V:
        items = []
        for element in expr.elements:
            if isinstance(element, cst.StarredElement):
                inner = self._expr(element.value)
                items.extend(inner.items if inner.kind == SEQ else [self._element_of(inner)])
            else:
                items.append(self._expr(element.value))
        return V(SEQ, items=items)

    def _dict(self, expr: cst.Dict) -> V:
        items = []
        for element in expr.elements:
            if isinstance(element, cst.DictElement):
                self._expr(element.key)
                items.append(self._expr(element.value))
            else:
                self._expr(element.value)
        return V(SEQ, items=items)

    def _comprehension(self, expr) -> V:
        env = self.frame.env
        self.frame.env = dict(env)
        self.frame.loop_depth += 1
        node = expr.for_in
        while node is not None:
            iterated = self._expr(node.iter)
            self._assign(node.target, self._element_of(iterated))
            for condition in node.ifs:
                self._expr(condition.test)
            node = node.inner_for_in
        if isinstance(expr, cst.DictComp):
            self._expr(expr.key)
            element = self._expr(expr.value)
        else:
            element = self._expr(expr.elt)
        self.frame.loop_depth -= 1
        self.frame.env = env
        return V(SEQ, items=[element])

    def _named(self, expr: cst.NamedExpr) -> V:
        value = self._expr(expr.value)
        self._assign(expr.target, value)
        return value

    def _await(self, expr) -> V:
        return self._expr(expr.expression)

    def _fstring(self, expr) -> V:
        return NUM_V


def _returned(returns: list) -> V:
    """What a method gives back: its one return's value, tuples element by element."""
    if not returns:
        return NONE_V
    if len(returns) == 1:
        return returns[0]
    if all(r.kind == SEQ for r in returns) and len({len(r.items) for r in returns}) == 1:
        return V(SEQ, items=[join(*column) for column in zip(*(r.items for r in returns))])
    return join(*returns)


def _index_result(name: str, source: V, call: cst.Call, rest: list) -> Optional[V]:
    """What an op that returns no values of its input gives: a mask (x.ne(0)), indices
    (argmax), or values and indices (topk; max along a dim); None for any other op."""
    if name in api.INDEX_OPS or name in api.COMPARISON_OPS:
        return TENSOR_V
    along_dim = (rest and rest[0].kind == NUM) or any(
        a.keyword is not None and a.keyword.value == "dim" for a in call.args)
    if name in api.VALUES_AND_INDICES_OPS and (name not in ("max", "min", "median", "nanmedian") or along_dim):
        values = source if source.kind in (ACT, TENSOR) else UNKNOWN_V
        return V(SEQ, items=[values, TENSOR_V])
    return None


def _literal_index(expr: cst.Subscript) -> Optional[str]:
    if len(expr.slice) != 1 or not isinstance(expr.slice[0].slice, cst.Index):
        return None
    value = expr.slice[0].slice.value
    if isinstance(value, cst.Integer):
        return value.value
    if isinstance(value, cst.UnaryOperation) and isinstance(value.operator, cst.Minus) \
            and isinstance(value.expression, cst.Integer):
        return "-" + value.expression.value
    if isinstance(value, cst.SimpleString):
        evaluated = value.evaluated_value
        return evaluated if isinstance(evaluated, str) else None
    return None


def _const(value: V):
    return lambda self, expr: value


_DISPATCH = {
    cst.Name: _Evaluator._name,
    cst.Call: _Evaluator._call,
    cst.BinaryOperation: _Evaluator._binary,
    cst.UnaryOperation: _Evaluator._unary,
    cst.Comparison: _Evaluator._compare,
    cst.BooleanOperation: _Evaluator._boolean,
    cst.IfExp: _Evaluator._ifexp,
    cst.Subscript: _Evaluator._subscript,
    cst.List: _Evaluator._sequence,
    cst.Tuple: _Evaluator._sequence,
    cst.Set: _Evaluator._sequence,
    cst.Dict: _Evaluator._dict,
    cst.ListComp: _Evaluator._comprehension,
    cst.SetComp: _Evaluator._comprehension,
    cst.GeneratorExp: _Evaluator._comprehension,
    cst.DictComp: _Evaluator._comprehension,
    cst.NamedExpr: _Evaluator._named,
    cst.Await: _Evaluator._await,
    cst.Integer: _const(NUM_V),
    cst.Float: _const(NUM_V),
    cst.Imaginary: _const(NUM_V),
    cst.SimpleString: _const(NUM_V),
    cst.ConcatenatedString: _const(NUM_V),
    cst.FormattedString: _Evaluator._fstring,
    cst.Ellipsis: _const(NUM_V),
    cst.Lambda: lambda self, expr: V(CLOSURE, items=[expr]),
}
