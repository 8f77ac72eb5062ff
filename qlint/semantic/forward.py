"""The forward path of a module class, evaluated abstractly.

`forward` and every `self.<method>` and same-file function it calls are walked in execution
order (the shared `Walker`), with loops known as loops and if/else arms known as exclusive.
Each expression evaluates to a typed value (`values.py`): a tensor (an activation or not,
with its quantization state), a Python value, a submodule, a sequence, a function or a bound
method; what an op gives is read from the op table (`ops.py`), what a module call gives from
the project index (`ProjectIndex.module_result`).

The pass runs in one of two modes:

- the summary pass (phase one, no other file known): parameters and call results carry
  origins, and the method becomes a `Flow` (its call sites and what it returns) that the
  index evaluates for every caller;
- a traced run (phase two) in one context (`index.Context`): what the forward path does is
  recorded in a `Trace` (submodule calls with the call that produced their input,
  operations with their operands, reads of raw nn.Parameters, values crossing a
  quantization boundary the wrong way). Rules query traces; none of them re-walks the code.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

import libcst as cst

from qlint.semantic import ops, torch_api as api
from qlint.semantic.index import FLOAT_INTO_QUANTIZED, QUANTIZED_INTO_FLOAT, Context, ProjectIndex
from qlint.semantic.interpret import (Walker, annotated_value, default_holds_tensor, is_self,
                                      literal_index, literal_str)
from qlint.semantic.names import canonical
from qlint.semantic.ops import Result
from qlint.semantic.scope import ClassModel, FileScope
from qlint.semantic.summaries import (BUFFER, CONTAINER, MODULE, PARAM, UNKNOWN as UNKNOWN_ATTR, VALUE, Flow, Site, common_class,
                                      member_class)
from qlint.semantic.values import (ACT, FLOAT, NONE, PY, QUANTIZED, INDEX, FACTORY, WEIGHT, UNKNOWN, Closure, Func, Method,
                                   Module, Py, Seq, SelfRef, Tensor, Unknown, Value, act, activation_state,
                                   activation_states, element_of_sequence, join, mixes_quantized_and_float, origin_of,
                                   unknown_call)
from qlint.semantic.walk import iter_nodes


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
    anchor: Optional[cst.CSTNode] = None  # the method or function it is in (for positions)


@dataclass(eq=False)
class OpUse:
    """An operation in the forward path: a call, method, operator or augmented assignment."""

    node: cst.CSTNode
    kind: str  # "call", "method", "binop", "unary", "compare", "augassign"
    name: str  # qualified function name, method name or operator symbol
    operands: tuple
    call: Optional[cst.Call] = None
    anchor: Optional[cst.CSTNode] = None

    @property
    def on_activation(self) -> bool:
        return any(v.is_act() for v in self.operands)


@dataclass(eq=False)
class ParamRead:
    node: cst.Attribute
    name: str
    anchor: Optional[cst.CSTNode] = None


@dataclass(eq=False)
class Crossing:
    """A value crossing a quantization boundary the wrong way (index.FLOAT_INTO_QUANTIZED,
    QUANTIZED_INTO_FLOAT, QUANTIZE_TWICE), at the call or op that receives it."""

    node: cst.CSTNode
    problem: str
    cls: Optional[str]  # the module called, if any
    key: Optional[str]
    anchor: Optional[cst.CSTNode] = None


@dataclass
class Trace:
    calls: list = field(default_factory=list)
    ops: list = field(default_factory=list)
    param_reads: list = field(default_factory=list)
    crossings: list = field(default_factory=list)
    returns: list = field(default_factory=list)  # (return node, value, anchor) of the entry method
    undefined: list = field(default_factory=list)  # (call, name, anchor): self.<name>(...) with no such attribute
    guarded: set = field(default_factory=set)  # names checked by hasattr(self, name) / getattr(self, name, default)
    found: bool = False  # a forward method was found and evaluated
    context: Optional[Context] = None
    cls: Optional[object] = None  # the ClassModel whose method ran (None for a function)


def trace_forward(scope: FileScope, index: ProjectIndex, cls: Optional[ClassModel], func: cst.FunctionDef,
                  context: Optional[Context] = None) -> Trace:
    """Walk `func` (a forward, a method of `cls`, or a function when `cls` is None) in a context."""
    trace = Trace(found=True, context=context)
    ForwardPass(scope, index, cls, trace, context).run(func)
    return trace


def summarize(scope: FileScope, index: ProjectIndex, cls: Optional[ClassModel], func: cst.FunctionDef) -> Flow:
    """The flow of a forward (or a function when `cls` is None), for the index."""
    walker = ForwardPass(scope, index, cls, Trace(), None, summary=True)
    return walker.run(func)


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
_UNARY = {cst.Minus: "unary -", cst.Plus: "unary +", cst.BitInvert: "unary ~"}
# Ops whose operands are combined into one value (a quantized and a float one cannot be).
_COMBINING = frozenset({"call", "method", "binop", "augassign"})


class ForwardPass(Walker):
    def __init__(self, scope: FileScope, index: ProjectIndex, cls: Optional[ClassModel], trace: Trace,
                 context: Optional[Context] = None, summary: bool = False):
        super().__init__(scope, cls)
        self.trace = trace
        self.index = index
        self.context = context
        self.receiver = context.receiver if context is not None and context.receiver else (
            cls.qname if cls is not None else None)
        self.attrs = index.attrs(self.receiver) if self.receiver is not None else {}
        self.island = context is not None and context.island
        self.summary = summary
        self.sites: list[Site] = []
        self.reads: set[str] = set()
        self.nested_reads: set[str] = set()
        self.calls: set[str] = set()
        self.dynamic = False
        self.order = 0

    # ----- entry -----------------------------------------------------------------------
    def run(self, func: cst.FunctionDef) -> Optional[Flow]:
        params = func.params
        named = [*params.posonly_params, *params.params, *params.kwonly_params]
        env = {}
        if self.cls is not None and named and named[0].name.value == "self":
            env["self"] = SelfRef(self.receiver)
            named = named[1:]
        entry = self._entry_values(named)
        for param, value in zip(named, entry):
            env[param.name.value] = value
        if isinstance(params.star_arg, cst.Param):
            env[params.star_arg.name.value] = Seq([ACT])
        if params.star_kwarg is not None:
            env[params.star_kwarg.name.value] = UNKNOWN
        returned, frame = self.invoke(func, env, ())
        self.trace.returns = [(node, value, func) for node, value in zip(frame.return_nodes, frame.returns)]
        if not self.summary:
            return None
        return Flow(tuple(p.name.value for p in named), tuple(self._kind(p) for p in named),
                    tuple(self.default(p.default).key() if p.default is not None else None for p in named),
                    tuple(self.sites), origin_of(returned), frozenset(self.reads), frozenset(self.nested_reads),
                    frozenset(self.calls), self.dynamic)

    def _kind(self, param: cst.Param) -> str:
        """How a flow binds the parameter (see `summaries.Flow.kinds`)."""
        if param.annotation is not None:
            value = annotated_value(self.scope, param.annotation.annotation)
            return "tensor" if value is ACT else "index" if value is INDEX else "annotated"
        return "tensor" if default_holds_tensor(param.default) else "literal"

    def _declared(self, param: cst.Param) -> Value:
        """A parameter's value when no caller is known: by its annotation, else by its default."""
        if param.annotation is not None:
            return annotated_value(self.scope, param.annotation.annotation)
        return ACT if default_holds_tensor(param.default) else PY

    def _entry_values(self, named: list) -> list[Value]:
        """The parameters' values in this pass's context."""
        context = self.context
        if self.summary:
            return [self._declared(p).with_origin(("param", p.name.value)) if self._kind(p) in ("tensor", "literal")
                    else self._declared(p) for p in named]
        if context is None or not context.known:
            state = None if context is None else FLOAT if context.float_entry or context.island else (
                QUANTIZED if context.quantized_entry else None)
            return [act(state) if state is not None and self._declared(p) is ACT else self._declared(p) for p in named]
        args, keywords = context.bound()
        values = []
        for i, param in enumerate(named):
            name = param.name.value
            if i < len(args):
                value = args[i]
            elif name in keywords:
                value = keywords[name]
            elif param.default is not None:
                value = self.default(param.default)
            else:
                value = UNKNOWN
            if isinstance(value, Unknown):
                value = self._declared(param)
            value = self.parameter(param, value)
            if context.island and isinstance(value, Tensor) and value.activation:
                value = act(FLOAT)
            values.append(value)
        return values

    def invoke(self, func, env, invocation, name=None, closure=False):
        cached = self.scope.integer_parameters.get(id(func))
        if cached is None:
            cached = self.scope.integer_parameters[id(func)] = integer_parameters(func)
        for param in cached:
            if isinstance(env.get(param), Tensor):
                env[param] = INDEX
        return super().invoke(func, env, invocation, name, closure)

    # ----- walker hooks ------------------------------------------------------------------
    def parameter(self, param: cst.Param, value: Value) -> Value:
        """What a parameter holds when given `value`: its annotation may say it holds no
        tensor (`n: int`) or an integer one (`ids: torch.LongTensor`), whatever is passed."""
        if param.annotation is not None and isinstance(value, Tensor):
            declared = annotated_value(self.scope, param.annotation.annotation)
            if declared is not ACT:
                return declared.with_origin(None)
        return value

    def star_argument(self, args: list) -> Value:
        return join(*args) if args else UNKNOWN

    def arm_facts(self, test, truth: bool) -> tuple:
        """Facts about configuration flags (`self.<name>` that `__init__` binds to a value, not a
        module or tensor):
        `x if self.flag else ...` and `... if not self.flag else y` never both run."""
        if isinstance(test, cst.UnaryOperation) and isinstance(test.operator, cst.Not):
            return self.arm_facts(test.expression, not truth)
        if isinstance(test, cst.BooleanOperation):
            # `a and b` true, or `a or b` false, says the same of both; the other cases say nothing
            if isinstance(test.operator, cst.And) == truth:
                return self.arm_facts(test.left, truth) + self.arm_facts(test.right, truth)
            return ()
        if isinstance(test, cst.Attribute) and is_self(test.value) and not self.summary:
            info = self.attrs.get(test.attr.value)
            if info is not None and info.kind in (VALUE, UNKNOWN_ATTR):
                return ((("flag", test.attr.value), truth),)
        return ()

    def inline_refused(self, call, args) -> Value:
        return unknown_call(args)

    def inline_method(self, call: cst.Call, name: str, args: list) -> Value:
        if self.cls is not None and self.scope.find_method(self.cls, name) is None:
            # a method of a base class in another file
            self.calls.add(name)
            return self._site(call, ("method", name), args)
        return super().inline_method(call, name, args)

    def returned(self, returns: list[Value]) -> Value:
        """What a method gives back: its one return's value, tuples element by element."""
        if not returns:
            return NONE
        if len(returns) == 1:
            return returns[0]
        if all(isinstance(r, Seq) for r in returns) and len({len(r.items) for r in returns}) == 1:
            return Seq([join(*column) for column in zip(*(r.items for r in returns))])
        return join(*returns)

    def merge(self, a: Value, b: Value) -> Value:
        if type(a) is type(b) and isinstance(a, (Module, Seq, Func)):
            return a
        if isinstance(a, Py) and a.none:  # `x = None` on one arm: x is what the other arm binds
            return b
        if isinstance(b, Py) and b.none:
            return a
        return join(a, b)

    def bind_other(self, target, value: Value) -> None:
        if isinstance(target, cst.Subscript):
            holder = self.expr(target.value, quiet=True)
            for element in target.slice:
                self._slice(element.slice)
            # `out[:, i] = x`: the tensor (or list) now holds what was written into it
            if isinstance(target.value, cst.Name) and holder is self.frame.env.get(target.value.value):
                if isinstance(holder, Seq):
                    holder.items.append(value)
                elif isinstance(holder, Tensor) and value.is_act():
                    self.frame.env[target.value.value] = join(holder, value)
        elif isinstance(target, cst.Attribute):
            self.expr(target.value, quiet=True)

    def augmented(self, small: cst.AugAssign) -> None:
        value = self.expr(small.value)
        target = self.expr(small.target, quiet=True)
        op = _AUGOPS.get(type(small.operator), "?=")
        if isinstance(target, Seq):
            if isinstance(value, Seq):
                target.items.extend(value.items)
            else:
                target.items.append(value)
        else:
            mixed = self._op(small, "augassign", op, (target, value))
            if isinstance(small.target, cst.Name):
                combined = join(target, value) if not isinstance(target, Module) else target
                self.frame.env[small.target.value] = _unknown_state(combined) if mixed else combined

    def element_of(self, value: Value) -> Value:
        """The value of one element when iterating or unpacking `value`."""
        if isinstance(value, Module):
            if value.container == "dict":
                return PY
            return Module(None, common_class(value.members, value.element), parent=value.key_path)
        if isinstance(value, Seq):
            return element_of_sequence(value)
        if isinstance(value, Tensor) or (isinstance(value, Py) and not value.none):
            return value.with_origin(("item", value.origin, None)) if value.origin is not None else value
        return UNKNOWN

    def unpacked(self, value: Value, position: int) -> Value:
        element = self.element_of(value)
        if value.origin is not None and not isinstance(value, Seq):
            return element.with_origin(("item", value.origin, position))
        return element

    # ----- recording -----------------------------------------------------------------------
    def _op(self, node, kind, name, operands, call=None, combined=None) -> bool:
        """Record an op; True when it mixes quantized and float values (then its result is
        unknown: the mistake is reported once). `combined`: the operands whose values it
        combines (all by default; masks given to masked_fill only place values)."""
        anchor = self.anchor
        self.trace.ops.append(OpUse(node, kind, name, tuple(operands), call, anchor))
        if kind in _COMBINING and mixes_quantized_and_float(operands if combined is None else combined):
            if not self.summary:
                self.trace.crossings.append(Crossing(node, QUANTIZED_INTO_FLOAT, None, None, anchor))
            return True
        return False

    def _next(self) -> int:
        self.order += 1
        return self.order

    def _site(self, call: cst.Call, callee: tuple, args: list, approx: Optional[Value] = None) -> Value:
        """A call the index resolves: in the summary pass, a site of the flow."""
        value = approx if approx is not None else unknown_call(args)
        if not self.summary:
            return value
        keywords = tuple((arg.keyword.value, origin_of(v)) for v, arg in zip(args, call.args) if arg.keyword is not None)
        positional = tuple(origin_of(v) for v, arg in zip(args, call.args) if arg.keyword is None and not arg.star)
        self.sites.append(Site(callee, positional, keywords))
        return value.with_origin(("site", len(self.sites) - 1))

    # ----- expressions -------------------------------------------------------------------
    def expr(self, expr, quiet: bool = False) -> Value:
        if expr is None:
            return NONE
        handler = _DISPATCH.get(type(expr))
        if handler is not None:
            return handler(self, expr)
        if isinstance(expr, cst.Attribute):
            return self._attribute(expr, quiet=quiet)
        return UNKNOWN

    def _name(self, expr: cst.Name) -> Value:
        value = self.name_value(expr)
        return value if value is not None else UNKNOWN

    def _attribute(self, expr: cst.Attribute, quiet=False) -> Value:
        attr = expr.attr.value
        base = expr.value
        if is_self(base) and isinstance(self.frame.env.get("self"), SelfRef):
            return self._self_attr(expr, attr, quiet, self.frame.env["self"])
        op = ops.tensor_op(attr)
        shape_query = op is not None and op.attribute and op.result is Result.PYTHON
        value = self.expr(base, quiet=quiet or shape_query)
        if isinstance(value, SelfRef):
            return self._self_attr(expr, attr, quiet, value)
        if isinstance(value, Func):
            return Func(canonical(f"{value.qname}.{attr}"))
        if isinstance(value, Tensor):
            if op is not None and op.attribute:
                return PY if op.result is Result.PYTHON else value
            if attr not in ops.tensor_attributes():
                # no tensor has it: a submodule's output (`outputs.last_hidden_state`, a field of
                # what it returned) or a value that was no tensor (`cache.seen_tokens`)
                return ACT if value.producer is not None else UNKNOWN
            return Method(attr, value)
        if isinstance(value, Module) and self.summary:
            self.nested_reads.add(attr)
        if isinstance(value, (Module, Seq)) or (isinstance(value, Py) and not value.none):
            return Method(attr, value)
        return UNKNOWN

    def _self_attr(self, expr, attr: str, quiet: bool, receiver: SelfRef) -> Value:
        attrs = self.attrs if receiver.cls == self.receiver else self.index.attrs(receiver.cls)
        if self.summary:
            self.reads.add(attr)
        info = attrs.get(attr)
        if info is None:
            if self.cls is not None and self.scope.find_method(self.cls, attr) is not None \
                    or self.index.method_owner(receiver.cls, attr) is not None:
                return Method(attr, receiver)
            if self.summary and ops.module_op(attr) is None:
                return Method(attr, receiver)  # maybe a method of a base in another file
            op = ops.module_op(attr)
            if op is not None and op.attribute:
                return PY
            return UNKNOWN
        if info.kind == PARAM:
            if not quiet:
                self.trace.param_reads.append(ParamRead(expr, attr, self.anchor))
            return WEIGHT
        if info.kind == BUFFER:
            return WEIGHT
        if info.kind in (MODULE, CONTAINER):
            kind = self.index.module_kind(info.cls)
            if kind == VALUE:
                return WEIGHT if info.cls.startswith("torch.") else PY
            if kind not in (MODULE, CONTAINER):
                return UNKNOWN
            container = api.CONTAINERS.get(self.index.torch_base(info.cls)) if kind == CONTAINER else None
            return Module(attr, info.cls, info.members, container, info.element)
        if info.kind == VALUE:
            return PY
        return UNKNOWN

    def _call(self, call: cst.Call) -> Value:
        func = call.func
        quiet_receiver = False
        if isinstance(func, cst.Attribute):
            op = ops.tensor_op(func.attr.value)
            # Shape queries on parameters are not uses of them: self.pos_embed.shape / .size()
            quiet_receiver = op is not None and op.quiet and op.result in (Result.PYTHON, Result.CONSTRUCTOR)
            callee = self._attribute(func, quiet=quiet_receiver)
            if isinstance(callee, Unknown) and is_self(func.value) and not self.summary \
                    and func.attr.value not in self.attrs and ops.module_op(func.attr.value) is None:
                self.trace.undefined.append((call, func.attr.value, self.anchor))
        else:
            callee = self.expr(func)
        quiet_args = False
        if isinstance(callee, Method):
            op = ops.tensor_op(callee.name)
            quiet_args = op is not None and op.quiet
        elif isinstance(callee, Func):
            op = ops.lookup(callee.qname)
            quiet_args = op is not None and op.quiet
        args = [self.expr(arg.value, quiet=quiet_args) for arg in call.args]
        positional = [v for v, arg in zip(args, call.args) if arg.keyword is None]
        if isinstance(callee, Module):
            return self._module_call(call, callee, args, positional)
        if isinstance(callee, Method):
            return self._method_call(call, callee.name, callee.receiver, args, positional)
        if isinstance(callee, Func):
            return self._function_call(call, callee.qname, args, positional)
        if isinstance(callee, Closure):
            return self.inline_closure(call, callee.node, args)
        if isinstance(callee, Tensor) and callee.activation:
            return ACT
        return unknown_call(args)

    def _module_call(self, call, module: Module, args, positional) -> Value:
        first = positional[0] if positional else None
        record = ModuleCall(
            node=call, key=module.key_path, cls=module.cls, op=None,
            in_loop=self.loop_depth > 0, branch=self.arms,
            invocation=self.frame.invocation,
            input=first.producer if isinstance(first, Tensor) and first.activation else None,
            order=self._next(), anchor=self.anchor)
        self.trace.calls.append(record)
        produced = Tensor(True, producer=record)
        if self.summary:
            callee = (("attr", module.key_path) if module.key_path is not None else
                      ("member", module.parent) if module.parent is not None else
                      ("class", module.cls) if module.cls is not None else None)
            return self._site(call, callee, args, produced) if callee is not None else produced
        keywords = {arg.keyword.value: v for v, arg in zip(args, call.args) if arg.keyword is not None}
        positional = [v for v, arg in zip(args, call.args) if arg.keyword is None and not arg.star]
        path = module.key_path if module.key_path is not None else (
            module.parent + ".*" if module.parent is not None else None)
        float_attr = self.index.float_attr(self.receiver, path, self.context.float_paths if self.context else ())
        value, problem = self.index.module_result(module.cls, positional, keywords, self.island, float_attr,
                                                  module.members, module.element)
        info = self.index.attr_at(self.receiver, module.key_path) if module.key_path is not None else None
        for other in info.others if info is not None else ():  # one of several classes, by configuration
            alternative, other_problem = self.index.module_result(other, positional, keywords, self.island, float_attr)
            value, problem = join(value, alternative), problem or other_problem
        if problem is not None and (problem != FLOAT_INTO_QUANTIZED or self._in_quantized_model()):
            self.trace.crossings.append(Crossing(call, problem, module.cls, module.key_path, self.anchor))
        if isinstance(value, Tensor) and value.activation:
            return Tensor(True, value.state, producer=record)
        return value

    def _in_quantized_model(self) -> bool:
        """Whether this code is known to be converted with its modules: it runs in a context a
        caller or its own stubs give, or its class holds a stub. A float value from a
        QuantWrapper'd submodule of an otherwise float model meets modules that stay float."""
        context = self.context
        if context is not None and (context.known or context.float_entry or context.quantized_entry):
            return True
        stubs = (api.QUANT_STUB, api.DEQUANT_STUB)
        return any(self.index.resolve(a.cls) in stubs for a in self.attrs.values() if a.cls)

    def _method_call(self, call, method: str, receiver: Value, args, positional) -> Value:
        if isinstance(receiver, SelfRef):
            return self.inline_method(call, method, args)
        if isinstance(receiver, Module):
            return self._module_method(call, method, receiver, args)
        if isinstance(receiver, Seq):
            return self._sequence_method(method, receiver, args)
        if isinstance(receiver, Tensor):
            if method not in ops.tensor_attributes():  # no tensor has it: the value was something else
                return unknown_call([a for a in args if a is not receiver])
            return self._tensor_method(call, method, receiver, args, positional)
        if isinstance(receiver, Py):
            return PY
        return unknown_call(args)

    def _module_method(self, call, method: str, receiver: Module, args) -> Value:
        cls = self.index.resolve(receiver.cls)
        if cls in api.FLOAT_FUNCTIONAL or self.index.torch_base(cls) in api.FLOAT_FUNCTIONAL:
            self.trace.calls.append(ModuleCall(
                node=call, key=receiver.key_path, cls=receiver.cls, op=method,
                in_loop=self.loop_depth > 0, branch=self.arms,
                invocation=self.frame.invocation, input=None, order=self._next(), anchor=self.anchor))
            states = activation_states(args)
            if self.summary or self.island:
                return join(ACT, *args)
            if FLOAT in states and self._in_quantized_model():  # FloatFunctional becomes QFunctional: a float operand raises
                self.trace.crossings.append(Crossing(call, FLOAT_INTO_QUANTIZED, receiver.cls, receiver.key_path,
                                                     self.anchor))
                return ACT
            return act(QUANTIZED) if states == {QUANTIZED} else ACT
        op = ops.module_op(method)
        result = op.result if op is not None else None
        if result is Result.MEMBER_PAIRS:
            return Seq([Seq([PY, self.element_of(receiver)])])
        if result is Result.MEMBERS:
            return Seq([self.element_of(receiver)])
        if result is Result.UNKNOWN:
            return UNKNOWN
        return unknown_call(args)

    def _sequence_method(self, method: str, receiver: Seq, args) -> Value:
        op = ops.sequence_op(method)
        result = op.result if op is not None else None
        if result is Result.APPEND and args:
            receiver.items.append(args[-1])
        elif result is Result.EXTEND and args:
            receiver.items.extend(args[-1].items if isinstance(args[-1], Seq) else [args[-1]])
        elif result is Result.ELEMENT:
            return self.element_of(receiver)
        elif result is Result.SEQUENCE:
            return receiver
        elif result is Result.ELEMENTS:
            return Seq([self.element_of(receiver)])
        return UNKNOWN

    def _tensor_method(self, call, method: str, receiver: Tensor, args, positional) -> Value:
        op = ops.tensor_op(method)
        result = op.result if op is not None else None
        mixed = self._op(call, "method", method, [receiver, *args], call,
                         [receiver] if result in (Result.RECEIVER, Result.CAST) else None)
        value = self._tensor_method_result(call, result, receiver, args, positional)
        return _unknown_state(value) if mixed else value

    def _tensor_method_result(self, call, result, receiver: Tensor, args, positional) -> Value:
        if result is Result.PYTHON or (result is Result.CAST and not args):
            return PY
        if result is Result.CONSTRUCTOR:
            return _constructed(result, call, args)
        if result is Result.INTEGER or _integer_dtype(call, args, positional if result is Result.CAST else ()):
            return INDEX
        derived = _derived(result, receiver, call, positional)
        if derived is not None:
            return derived
        if result is Result.SPLIT:
            return Seq([receiver])
        if result in (Result.RECEIVER, Result.CAST):
            return _like(receiver)
        if result is Result.DEQUANTIZE and receiver.activation:
            return act(FLOAT)
        if receiver.activation or any(a.is_act() for a in args):
            return join(receiver, *args)
        return receiver

    def _function_call(self, call, qname: str, args, positional) -> Value:
        op = ops.lookup(qname)
        result = op.result if op is not None else None
        if qname.startswith("builtins."):
            return self._builtin_call(call, result, args, positional)
        if qname.startswith("torch.") and result is not Result.CALL:
            mixed = self._op(call, "call", qname, args, call)
            value = self._torch_function_result(call, result, args, positional)
            return _unknown_state(value) if mixed else value
        if result is Result.PYTHON:
            return PY
        if result is Result.UNKNOWN:
            return UNKNOWN
        helper = self.scope.function(qname)
        if helper is not None:
            return self._inline_function(call, qname, helper, args)
        if op is None:
            return self._site(call, ("function", qname), args, self._function_result(qname, call, args))
        return unknown_call(args)

    def _torch_function_result(self, call, result, args, positional) -> Value:
        if result is Result.PYTHON:
            return PY
        if result in (Result.PARAMETER, Result.BUFFER):
            return WEIGHT
        if result in (Result.CONSTRUCTOR, Result.INDEX_CONSTRUCTOR):
            return _constructed(result, call, args)
        if _integer_dtype(call, args, ()):
            return INDEX
        if positional:
            derived = _derived(result, positional[0], call, positional[1:])
            if derived is not None:
                return derived
        if result is Result.SPLIT:
            return Seq([join(*args)]) if args else UNKNOWN
        if any(a.is_act() for a in args):
            return join(*args)
        tensors = [a for a in args if isinstance(a, Tensor)]
        return join(*tensors) if tensors else FACTORY

    def _function_result(self, qname: str, call, args) -> Value:
        """A function of another file of the run: what its flow returns for these arguments."""
        if self.summary:
            return unknown_call(args)
        keywords = {arg.keyword.value: v for v, arg in zip(args, call.args) if arg.keyword is not None}
        positional = [v for v, arg in zip(args, call.args) if arg.keyword is None and not arg.star]
        target = self.index.site_target(None, ("function", qname))
        return self.index.call_result(None, target, positional, keywords, self.island)[0]

    def _inline_function(self, call, qname: str, func: cst.FunctionDef, args) -> Value:
        """A module-level function of this file, called here: its body runs with the arguments."""
        if not self.can_inline(qname):
            return self._annotated_or_unknown(func, args)
        env = self.bind_arguments(func.params, call, args, {}, None)
        return self.invoke(func, env, self.frame.invocation + (call,), qname)[0]

    def _annotated_or_unknown(self, func: cst.FunctionDef, args) -> Value:
        if func.returns is not None and any(a.is_act() for a in args):
            annotated = self._annotated_value(func.returns.annotation)
            if annotated is not None:
                return annotated
        return unknown_call(args)

    def _annotated_value(self, ann) -> Optional[Value]:
        """The value a helper returns, from its annotation (None when it does not say):
        `Tuple[Tensor, List[int]]` unpacks into an activation and a Python value."""
        if isinstance(ann, cst.Subscript):
            outer = (self.scope.qname(ann.value) or "").rsplit(".", 1)[-1]
            elements = [e.slice.value for e in ann.slice if isinstance(e.slice, cst.Index)]
            if outer in ops.TUPLE_NAMES and elements and not any(isinstance(e, cst.Ellipsis) for e in elements):
                values = [self._annotated_value(e) for e in elements]
                return None if any(v is None for v in values) else Seq(values)
        return annotated_value(self.scope, ann)

    def _builtin_call(self, call, result, args, positional) -> Value:
        if result is Result.PYTHON and len(positional) == 2 and isinstance(positional[0], SelfRef):
            name = literal_str(call.args[1].value)  # hasattr(self, "ln_kv"): an optional attribute
            if name is not None:
                self.trace.guarded.add(name)
        if result is Result.PYTHON:
            return PY
        if result is Result.ABSOLUTE and positional and positional[0].is_act():
            self._op(call, "method", "abs", positional, call)
            return _like(positional[0])
        if result is Result.UNKNOWN:
            return UNKNOWN
        if result is Result.ENUMERATE and positional:
            return Seq([Seq([PY, self.element_of(positional[0])])])
        if result is Result.ZIP:
            return Seq([Seq([self.element_of(a) for a in positional])])
        if result is Result.ELEMENTS and positional:
            source = positional[0]
            return source if isinstance(source, (Seq, Module)) else Seq([self.element_of(source)])
        if result is Result.ATTRIBUTE_OF and positional and isinstance(positional[0], SelfRef):
            name = literal_str(call.args[1].value) if len(call.args) > 1 else None
            if name is not None and len(call.args) > 2:
                self.trace.guarded.add(name)  # getattr(self, "x", None)
            if name is None:
                self.dynamic = True
                return Module(None, None)
            return self._self_attr(call, name, False, positional[0])
        if result is Result.JOIN:
            return join(*args) if args else PY
        return unknown_call(args)

    def _binary(self, expr: cst.BinaryOperation) -> Value:
        left, right = self.expr(expr.left), self.expr(expr.right)
        op = _BINOPS.get(type(expr.operator), "?")
        if isinstance(left, Seq) and isinstance(right, Seq) and op == "+":
            return Seq(left.items + right.items)
        if isinstance(left, Seq) or isinstance(right, Seq):
            return left if isinstance(left, Seq) else right
        if self._integer_operands(op, (expr.left, left), (expr.right, right)):
            left, right = (INDEX if isinstance(v, Tensor) else v for v in (left, right))
        mixed = self._op(expr, "binop", op, (left, right))
        return _unknown_state(join(left, right)) if mixed else join(left, right)

    def _unary(self, expr: cst.UnaryOperation) -> Value:
        value = self.expr(expr.expression)
        if isinstance(expr.operator, cst.Not):
            return PY
        symbol = _UNARY[type(expr.operator)]
        if self._integer_operands(symbol, (expr.expression, value)):
            value = INDEX
        self._op(expr, "unary", symbol, (value,))
        return value if isinstance(value, (Tensor, Py)) and not (isinstance(value, Py) and value.none) else UNKNOWN

    def _integer_operands(self, symbol: str, *operands) -> bool:
        """Whether an operator runs on integer and bool tensors only (`~valid`, `a & b`) and is
        given a tensor: its tensor operands are masks or indices, never activations, and a
        name that holds one is known to from here on."""
        op = ops.operator_op(symbol)
        if op is None or op.result is not Result.INTEGER or not any(isinstance(v, Tensor) for _, v in operands):
            return False
        for node, value in operands:
            if isinstance(node, cst.Name) and isinstance(value, Tensor) and self.frame.env.get(node.value) is value:
                self.frame.env[node.value] = INDEX
        return True

    def _compare(self, expr: cst.Comparison) -> Value:
        identity = all(isinstance(t.operator, (cst.Is, cst.IsNot, cst.In, cst.NotIn)) for t in expr.comparisons)
        left = self.expr(expr.left, quiet=identity)
        values = [left]
        for target in expr.comparisons:
            right = self.expr(target.comparator, quiet=identity)
            symbol = _COMPARE.get(type(target.operator))
            if symbol is not None:
                self._op(expr, "compare", symbol, (values[-1], right))
            values.append(right)
        if identity:
            return PY
        # A comparison of quantized tensors runs and gives a bool mask, not an activation.
        return INDEX if any(isinstance(v, Tensor) or v.is_act() for v in values) else PY

    def _boolean(self, expr: cst.BooleanOperation) -> Value:
        return join(self.expr(expr.left), self.expr(expr.right))

    def _ifexp(self, expr: cst.IfExp) -> Value:
        body, orelse = self.ifexp_arms(expr)
        if type(body) is type(orelse) and isinstance(body, (Module, Seq, Func)):
            return body
        if isinstance(orelse, Py) and orelse.none:
            return body
        if isinstance(body, Py) and body.none:
            return orelse
        return join(body, orelse)

    def _subscript(self, expr: cst.Subscript) -> Value:
        base = expr.value
        submodules = isinstance(base, cst.Attribute) and ops.module_op(base.attr.value) is not None \
            and ops.module_op(base.attr.value).result is Result.SUBMODULES
        if submodules and is_self(base.value) and isinstance(self.frame.env.get("self"), SelfRef):
            name = literal_index(expr)  # self._modules["act"] is self.act
            if name is not None and name in self.attrs:
                return self._self_attr(expr, name, False, self.frame.env["self"])
        value = self.expr(expr.value)
        for element in expr.slice:
            self._slice(element.slice)
        index = literal_index(expr)
        if isinstance(value, Module):
            key = f"{value.key_path}.{index}" if value.key_path is not None and index is not None else None
            member_cls = member_class(value.members, value.element, index) if index is not None else value.element
            return Module(key, member_cls, parent=value.key_path if key is None else None)
        if isinstance(value, Seq):
            if index is not None and index.lstrip("-").isdigit() and value.items:
                position = int(index)
                if -len(value.items) <= position < len(value.items) and len(value.items) > 1:
                    return value.items[position]
            if isinstance(expr.slice[0].slice, cst.Slice):
                return value
            return self.element_of(value)
        if value.origin is not None and isinstance(value, (Tensor, Unknown)):
            position = int(index) if index is not None and index.lstrip("-").isdigit() else None
            if not isinstance(expr.slice[0].slice, cst.Slice) or len(expr.slice) > 1:
                return value.with_origin(("item", value.origin, position))
        if isinstance(value, Tensor):
            return value
        if isinstance(value, Py) and not value.none:
            return PY
        if isinstance(value, Func):
            return value
        return UNKNOWN

    def _slice(self, node) -> Value:
        if isinstance(node, cst.Index):
            return self.expr(node.value)
        for part in (node.lower, node.upper, node.step):
            if part is not None:
                self.expr(part)
        return PY

    def _sequence(self, expr) -> Value:
        items = []
        for element in expr.elements:
            if isinstance(element, cst.StarredElement):
                inner = self.expr(element.value)
                items.extend(inner.items if isinstance(inner, Seq) else [self.element_of(inner)])
            else:
                items.append(self.expr(element.value))
        return Seq(items)

    def _dict(self, expr: cst.Dict) -> Value:
        items = []
        for element in expr.elements:
            if isinstance(element, cst.DictElement):
                self.expr(element.key)
                items.append(self.expr(element.value))
            else:
                self.expr(element.value)
        return Seq(items)

    def _comprehension(self, expr) -> Value:
        return Seq([self.comprehension(expr)])

    def _named(self, expr: cst.NamedExpr) -> Value:
        value = self.expr(expr.value)
        self.assign(expr.target, value, expr.value)
        return value

    def _await(self, expr) -> Value:
        return self.expr(expr.expression)


def integer_parameters(func) -> frozenset:
    """Parameters the function never rebinds and uses where only an integer or bool tensor
    runs: as an index (`pe[:, coord[..., 1]]`) or a bitwise operand (`~valid`, `a & b`),
    directly or through indexing and methods that keep its dtype. Given a tensor, they hold
    indices or masks everywhere in the function, whatever the annotation says."""
    params = func.params
    names = {p.name.value for p in (*params.posonly_params, *params.params, *params.kwonly_params)}
    used, rebound = set(), set()
    for node in iter_nodes(func.body, into_functions=False):
        target = _target(node)
        if target is not None:
            rebound.update(n.value for n in iter_nodes(target) if isinstance(n, cst.Name))
        if isinstance(node, cst.Subscript):
            used.update(_dtype_root(e.slice.value) for e in node.slice if isinstance(e.slice, cst.Index))
        elif isinstance(node, cst.UnaryOperation) and isinstance(node.operator, cst.BitInvert):
            used.add(_dtype_root(node.expression))
        elif isinstance(node, cst.BinaryOperation) and isinstance(node.operator, _BITWISE):
            used.update((_dtype_root(node.left), _dtype_root(node.right)))
    return frozenset((used & names) - rebound)


_BITWISE = (cst.BitAnd, cst.BitOr, cst.BitXor, cst.LeftShift, cst.RightShift)


def _target(node):
    """What a statement or expression binds (None: it binds nothing)."""
    if isinstance(node, cst.Assign):
        return cst.Tuple([cst.Element(t.target) for t in node.targets])
    if isinstance(node, (cst.AugAssign, cst.AnnAssign, cst.For, cst.NamedExpr, cst.CompFor)):
        return node.target
    if isinstance(node, cst.WithItem) and node.asname is not None:
        return node.asname.name
    return None


def _dtype_root(expr) -> Optional[str]:
    """The name whose dtype `expr` has: through indexing and methods that keep the receiver's
    dtype (unlisted ones, views, masked_fill); None for anything else."""
    while True:
        if isinstance(expr, cst.Name):
            return expr.value
        if isinstance(expr, cst.Subscript):
            expr = expr.value
        elif isinstance(expr, cst.Call) and isinstance(expr.func, cst.Attribute):
            op = ops.tensor_op(expr.func.attr.value)
            if op is not None and op.result not in (Result.RECEIVER, Result.SAME):
                return None
            expr = expr.func.value
        else:
            return None


def _constructed(result: Result, call: cst.Call, args: list) -> Tensor:
    """A new tensor: an integer one (arange) or a float one, unless a dtype says otherwise."""
    dtypes = [v.qname for v, arg in zip(args, call.args) if isinstance(v, Func)
              and arg.keyword is not None and arg.keyword.value == ops.DTYPE_KEYWORD]
    if any(d in ops.INTEGER_DTYPES for d in dtypes):
        return INDEX
    if result is Result.INDEX_CONSTRUCTOR and not any(d in ops.FLOAT_DTYPES for d in dtypes):
        return INDEX
    return FACTORY


def _integer_dtype(call: cst.Call, args: list, positional) -> bool:
    """Whether the call asks for an integer or bool result: `dtype=torch.long`, or (for a
    cast) `.to(torch.bool)`: the result is an index or a mask, not an activation."""
    dtypes = [v for v, arg in zip(args, call.args) if arg.keyword is not None and arg.keyword.value == ops.DTYPE_KEYWORD]
    return any(isinstance(v, Func) and v.qname in ops.INTEGER_DTYPES for v in (*dtypes, *positional))


def _unknown_state(value: Value) -> Value:
    """A value that mixed quantized and float data: its state is unknown from here on."""
    if isinstance(value, Tensor) and value.activation:
        return ACT.with_origin(value.origin)
    if isinstance(value, Seq):
        return Seq([_unknown_state(item) for item in value.items])
    return value


def _like(value: Value) -> Value:
    """An activation computed from `value` alone (its state and origin, not its producer)."""
    if isinstance(value, Tensor) and value.activation:
        return act(value.state).with_origin(value.origin)
    return value


def _derived(result: Optional[Result], source: Value, call: cst.Call, rest: list) -> Optional[Value]:
    """What an op that returns no values of its input gives: a mask (x.ne(0)), indices
    (argmax), or values and indices (topk; max along a dim); None for any other op."""
    if result is Result.INDEX:
        return INDEX
    if result is Result.VALUES_AND_INDICES or (result is Result.VALUES_AND_INDICES_ALONG_DIM and (
            (rest and isinstance(rest[0], Py)) or any(
            a.keyword is not None and a.keyword.value == ops.DIM_KEYWORD for a in call.args))):
        values = _like(source) if isinstance(source, Tensor) else UNKNOWN
        return Seq([values, INDEX])
    return None


def _const(value: Value):
    return lambda self, expr: value


_DISPATCH = {
    cst.Name: ForwardPass._name,
    cst.Call: ForwardPass._call,
    cst.BinaryOperation: ForwardPass._binary,
    cst.UnaryOperation: ForwardPass._unary,
    cst.Comparison: ForwardPass._compare,
    cst.BooleanOperation: ForwardPass._boolean,
    cst.IfExp: ForwardPass._ifexp,
    cst.Subscript: ForwardPass._subscript,
    cst.List: ForwardPass._sequence,
    cst.Tuple: ForwardPass._sequence,
    cst.Set: ForwardPass._sequence,
    cst.Dict: ForwardPass._dict,
    cst.ListComp: ForwardPass._comprehension,
    cst.SetComp: ForwardPass._comprehension,
    cst.GeneratorExp: ForwardPass._comprehension,
    cst.DictComp: ForwardPass._comprehension,
    cst.NamedExpr: ForwardPass._named,
    cst.Await: ForwardPass._await,
    cst.Integer: _const(PY),
    cst.Float: _const(PY),
    cst.Imaginary: _const(PY),
    cst.SimpleString: _const(PY),
    cst.ConcatenatedString: _const(PY),
    cst.FormattedString: _const(PY),
    cst.Ellipsis: _const(PY),
    cst.Lambda: lambda self, expr: Closure(expr),
}
