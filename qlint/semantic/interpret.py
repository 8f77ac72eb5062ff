"""The statement walker and binder both passes share (`__init__` and `forward`).

A `Walker` runs a method body in execution order: assignments bind values to names,
tuples and starred targets; if/else arms, try handlers and match cases are exclusive
branches (recorded in `arms`); loops are walked once and counted in `loop_depth`; a
`self.<method>(...)` call or a call of a function defined in the body runs the callee's
body in a new frame with its parameters bound to the arguments (up to
`MAX_INLINE_DEPTH` frames). What an expression evaluates to is left to the pass: it
implements `expr`, and the hooks for `self.<name> = ...`, loop elements, merging the
values of two arms and the value a callee returns.
"""
from __future__ import annotations

from typing import Optional

import libcst as cst

from qlint.semantic import ops
from qlint.semantic.names import canonical, import_bindings
from qlint.semantic.scope import ClassModel, FileScope
from qlint.semantic.values import ACT, NONE, PY, INDEX, UNKNOWN, Closure, Func, Seq, SelfRef, Value


class Frame:
    __slots__ = ("env", "returns", "invocation", "loop_depth", "name", "return_nodes", "func")

    def __init__(self, env: dict, invocation: tuple, loop_depth: int, name, func=None):
        self.env = env
        self.returns: list[Value] = []
        self.return_nodes: list[cst.Return] = []
        self.invocation = invocation  # the chain of inlined call sites leading here
        self.loop_depth = loop_depth
        self.name = name
        self.func = func  # the method or module-level function walked (None: a closure or lambda)


class Walker:
    MAX_INLINE_DEPTH = 6
    # Whether if/else arms bind names in copies of the environment, merged after the if
    # (False: one environment, the last binding wins).
    SEPARATE_ARMS = True

    def __init__(self, scope: FileScope, cls: Optional[ClassModel]):
        self.scope = scope
        self.cls = cls
        self.arms: tuple = ()  # the exclusive branches the current statement runs under
        self.frames: list[Frame] = []

    # ----- hooks a pass implements -----------------------------------------------------------
    def expr(self, expr, quiet: bool = False) -> Value:
        raise NotImplementedError

    def bind_self_attr(self, name: str, value: Value, node) -> None:
        """`self.<name> = value`."""

    def bind_other(self, target, value: Value) -> None:
        """`x[i] = value`, `obj.attr = value` (not on self)."""

    def element_of(self, value: Value) -> Value:
        return UNKNOWN

    def unpacked(self, value: Value, position: int) -> Value:
        """The value bound to position `position` of a tuple target (`a, b = value`)."""
        return self.element_of(value)

    def merge(self, a: Value, b: Value) -> Value:
        """The value of a name bound differently by two arms."""
        return a

    def returned(self, returns: list[Value]) -> Value:
        """What a callee gives back, from the values of its return statements."""
        return returns[0] if len(returns) == 1 else (UNKNOWN if returns else NONE)

    def augmented(self, small: cst.AugAssign) -> None:
        self.expr(small.value)

    def inline_refused(self, call, args) -> Value:
        return UNKNOWN

    def arm_facts(self, test, truth: bool) -> tuple:
        """What an arm knows from its test being `truth`, as entries of `arms` (a fact known
        true on one arm and false on another makes them exclusive: two if-expressions on the
        same configuration flag)."""
        return ()

    # ----- frames ------------------------------------------------------------------------
    @property
    def frame(self) -> Frame:
        return self.frames[-1]

    @property
    def anchor(self):
        """The method or module-level function the current statement is in (for positions)."""
        for frame in reversed(self.frames):
            if frame.func is not None:
                return frame.func
        return None

    @property
    def loop_depth(self) -> int:
        return self.frames[-1].loop_depth if self.frames else 0

    def invoke(self, func: cst.FunctionDef, env: dict, invocation: tuple, name=None,
               closure: bool = False) -> tuple[Value, Frame]:
        """Run a function body in a new frame; its returned value and the frame."""
        frame = Frame(env, invocation, self.loop_depth, name or func.name.value, None if closure else func)
        self.frames.append(frame)
        try:
            self.block(func.body)
        finally:
            self.frames.pop()
        return self.returned(frame.returns), frame

    def can_inline(self, name) -> bool:
        return len(self.frames) <= self.MAX_INLINE_DEPTH and all(f.name != name for f in self.frames)

    def inline_method(self, call: cst.Call, name: str, args: list) -> Value:
        """`self.<name>(...)` for a method of the class (or a base) defined in this file."""
        found = self.scope.find_method(self.cls, name) if self.cls is not None else None
        if found is None or not self.can_inline(name):
            return self.inline_refused(call, args)
        _, func = found
        env = self.bind_arguments(func.params, call, args, {}, SelfRef(self.cls.qname))
        return self.invoke(func, env, self.frame.invocation + (call,))[0]

    def inline_closure(self, call: cst.Call, node, args: list) -> Value:
        """A function or lambda defined in the method, called there: its body runs with the
        enclosing variables and the arguments given."""
        name = node.name.value if isinstance(node, cst.FunctionDef) else id(node)
        if not self.can_inline(name):
            return self.inline_refused(call, args)
        env = self.bind_arguments(node.params, call, args, dict(self.frame.env), None)
        if isinstance(node, cst.FunctionDef):
            return self.invoke(node, env, self.frame.invocation + (call,), closure=True)[0]
        frame = Frame(env, self.frame.invocation + (call,), self.loop_depth, name)
        self.frames.append(frame)
        try:
            return self.expr(node.body)
        finally:
            self.frames.pop()

    def bind_arguments(self, params: cst.Parameters, call: cst.Call, args: list, env: dict,
                       self_value: Optional[Value]) -> dict:
        """The callee's variables for a call: arguments by position and keyword, defaults,
        *args and **kwargs; `self` when the callee takes it."""
        names = [*params.posonly_params, *params.params]
        positional = [a for a, arg in zip(args, call.args) if arg.keyword is None and not arg.star]
        keywords = {arg.keyword.value: a for a, arg in zip(args, call.args) if arg.keyword is not None}
        has_star = any(arg.star for arg in call.args)
        bound = names
        if self_value is not None and names and names[0].name.value == "self":
            env["self"] = self_value
            bound = names[1:]
        for i, param in enumerate([*bound, *params.kwonly_params]):
            pname = param.name.value
            if i < len(positional) and i < len(bound):
                value = positional[i]
            elif pname in keywords:
                value = keywords[pname]
            elif has_star:
                value = self.star_argument(args)
            elif param.default is not None:
                value = self.default(param.default)
            else:
                value = UNKNOWN
            env[pname] = self.parameter(param, value)
        if isinstance(params.star_arg, cst.Param):
            env[params.star_arg.name.value] = Seq(positional[len(bound):] or [UNKNOWN])
        if params.star_kwarg is not None:
            env[params.star_kwarg.name.value] = UNKNOWN
        return env

    def parameter(self, param: cst.Param, value: Value) -> Value:
        """The value a parameter holds when given `value` (its annotation may say more)."""
        return value

    def star_argument(self, args: list) -> Value:
        return UNKNOWN

    def default(self, default) -> Value:
        if isinstance(default, cst.Name) and default.value == "None":
            return NONE
        if isinstance(default, (cst.Integer, cst.Float, cst.SimpleString, cst.Name)):
            return PY
        return UNKNOWN

    # ----- statements ----------------------------------------------------------------------
    def block(self, block) -> bool:
        """Walk a suite; True when it always ends in return/raise/break/continue."""
        body = block.body if isinstance(block, (cst.IndentedBlock, cst.SimpleStatementSuite)) else block
        for stmt in body:
            if self.stmt(stmt):
                return True
        return False

    def branch_key(self, node) -> tuple:
        return (self.frame.invocation, id(node))

    def stmt(self, stmt) -> bool:
        if isinstance(stmt, (cst.SimpleStatementLine, cst.SimpleStatementSuite)):
            for small in stmt.body:
                if self.small(small):
                    return True
            return False
        if isinstance(stmt, cst.If):
            return self.if_(stmt)
        if isinstance(stmt, cst.For):
            iterated = self.expr(stmt.iter)
            self.frame.loop_depth += 1
            self.assign(stmt.target, self.element_of(iterated), stmt.target)
            self.block(stmt.body)
            self.frame.loop_depth -= 1
            if stmt.orelse is not None:
                self.block(stmt.orelse.body)
            return False
        if isinstance(stmt, cst.While):
            self.frame.loop_depth += 1
            self.expr(stmt.test)
            self.block(stmt.body)
            self.frame.loop_depth -= 1
            return False
        if isinstance(stmt, cst.With):
            for item in stmt.items:
                value = self.expr(item.item)
                if item.asname is not None:
                    self.assign(item.asname.name, value, item.item)
            return self.block(stmt.body)
        if isinstance(stmt, (cst.Try, cst.TryStar)):
            ends = self.block(stmt.body)
            saved = self.arms
            for i, handler in enumerate(stmt.handlers):
                self.arms = saved + ((self.branch_key(stmt), i),)
                self.block(handler.body)
            self.arms = saved
            if stmt.orelse is not None:
                ends = self.block(stmt.orelse.body)
            if stmt.finalbody is not None:
                self.block(stmt.finalbody.body)
            return ends and not stmt.handlers
        if isinstance(stmt, cst.FunctionDef):
            self.frame.env[stmt.name.value] = Closure(stmt)
            return False
        if isinstance(stmt, cst.Match):
            self.expr(stmt.subject)
            saved = self.arms
            for i, case in enumerate(stmt.cases):
                self.arms = saved + ((self.branch_key(stmt), i),)
                self.block(case.body)
            self.arms = saved
            return False
        return False

    def if_(self, stmt: cst.If) -> bool:
        self.expr(stmt.test)
        key = self.branch_key(stmt)
        saved_arms, env = self.arms, self.frame.env
        separate = self.SEPARATE_ARMS
        then_env = dict(env) if separate else env
        self.frame.env = then_env
        then_arms = saved_arms + ((key, 0),) + self.arm_facts(stmt.test, True)
        else_arms = saved_arms + ((key, 1),) + self.arm_facts(stmt.test, False)
        self.arms = then_arms
        then_ends = self.block(stmt.body)
        else_env = dict(env) if separate else env
        self.frame.env = else_env
        self.arms = else_arms
        else_ends = False
        if stmt.orelse is not None:
            orelse = stmt.orelse
            else_ends = self.block(orelse.body) if isinstance(orelse, cst.Else) else self.if_(orelse)
        if then_ends and else_ends:
            self.arms = saved_arms
            self.frame.env = env
            return True
        if then_ends:
            self.frame.env = else_env  # the rest runs only when the if-arm did not
            self.arms = else_arms
            return False
        if else_ends:
            self.frame.env = then_env
            self.arms = then_arms
            return False
        self.arms = saved_arms
        if not separate:
            self.frame.env = env
            return False
        merged = dict(env)
        for name in set(then_env) | set(else_env):
            a, b = then_env.get(name), else_env.get(name)
            if a is b:
                merged[name] = a
            elif a is None or b is None:
                merged[name] = a or b
            else:
                merged[name] = self.merge(a, b)
        self.frame.env = merged
        return False

    def small(self, small) -> bool:
        if isinstance(small, cst.Assign):
            value = self.expr(small.value)
            for target in small.targets:
                self.assign(target.target, value, small.value)
        elif isinstance(small, cst.AnnAssign):
            if small.value is not None:
                self.assign(small.target, self.expr(small.value), small.value)
        elif isinstance(small, cst.AugAssign):
            self.augmented(small)
        elif isinstance(small, cst.Expr):
            self.expr(small.value)
        elif isinstance(small, cst.Return):
            value = self.expr(small.value) if small.value is not None else NONE
            self.frame.returns.append(value)
            self.frame.return_nodes.append(small)
            return True
        elif isinstance(small, cst.Raise):
            if small.exc is not None:
                self.expr(small.exc)
            return True
        elif isinstance(small, (cst.Break, cst.Continue)):
            return True
        elif isinstance(small, cst.Assert):
            self.expr(small.test)
        elif isinstance(small, (cst.Import, cst.ImportFrom)):
            for local, qname, _ in import_bindings(small, self.scope.package):
                self.frame.env[local] = Func(canonical(qname))
        return False

    def assign(self, target, value: Value, node) -> None:
        """Bind `value` to an assignment target (`node`: the expression that computed it)."""
        if isinstance(target, cst.Name):
            self.frame.env[target.value] = value
        elif isinstance(target, (cst.Tuple, cst.List)):
            elements = target.elements
            if isinstance(value, Seq) and len(value.items) == len(elements) and not any(
                    isinstance(e, cst.StarredElement) for e in elements):
                nodes = node.elements if isinstance(node, (cst.Tuple, cst.List)) \
                    and len(node.elements) == len(elements) else None
                for i, (element, item) in enumerate(zip(elements, value.items)):
                    self.assign(element.value, item, nodes[i].value if nodes else node)
                return
            for i, element in enumerate(elements):
                if isinstance(element, cst.StarredElement):
                    self.assign(element.value, Seq([self.element_of(value)]), node)
                else:
                    self.assign(element.value, self.unpacked(value, i), node)
        elif isinstance(target, cst.StarredElement):
            self.assign(target.value, Seq([value]), node)
        elif isinstance(target, cst.Attribute) and is_self(target.value):
            self.bind_self_attr(target.attr.value, value, node)
        else:
            self.bind_other(target, value)

    # ----- expressions both passes read alike ------------------------------------------------
    def name_value(self, expr: cst.Name) -> Optional[Value]:
        """A name's value from the frame, a literal name, or a global (None: not known)."""
        name = expr.value
        env = self.frame.env
        if name in env:
            return env[name]
        if name in ("True", "False"):
            return PY
        if name == "None":
            return NONE
        if name in self.scope.constants:
            return PY
        qname = self.scope.qname(expr)
        return Func(qname) if qname is not None else None

    def comprehension(self, expr) -> Value:
        """The element a comprehension computes (its loop variables bound in a copy of the env)."""
        env = self.frame.env
        self.frame.env = dict(env)
        self.frame.loop_depth += 1
        node = expr.for_in
        while node is not None:
            iterated = self.expr(node.iter)
            self.assign(node.target, self.element_of(iterated), node.iter)
            for condition in node.ifs:
                self.expr(condition.test)
            node = node.inner_for_in
        if isinstance(expr, cst.DictComp):
            self.expr(expr.key)
            element = self.expr(expr.value)
        else:
            element = self.expr(expr.elt)
        self.frame.loop_depth -= 1
        self.frame.env = env
        return element

    def ifexp_arms(self, expr: cst.IfExp) -> tuple[Value, Value]:
        self.expr(expr.test)
        key = self.branch_key(expr)
        saved = self.arms
        self.arms = saved + ((key, 0),) + self.arm_facts(expr.test, True)
        body = self.expr(expr.body)
        self.arms = saved + ((key, 1),) + self.arm_facts(expr.test, False)
        orelse = self.expr(expr.orelse)
        self.arms = saved
        return body, orelse


def exclusive(a: tuple, b: tuple) -> bool:
    """Whether two paths of arms ((branch key, arm), ...) can never both run."""
    arms = dict(a)
    return any(key in arms and arms[key] != arm for key, arm in b)


def is_self(expr) -> bool:
    return isinstance(expr, cst.Name) and expr.value == "self"


def literal_str(expr) -> Optional[str]:
    if isinstance(expr, cst.SimpleString):
        value = expr.evaluated_value
        return value if isinstance(value, str) else None
    return None


def literal_index(expr: cst.Subscript) -> Optional[str]:
    """`"3"`, `"-1"` or `"name"` for x[3], x[-1], x["name"]; None for anything else."""
    if len(expr.slice) != 1 or not isinstance(expr.slice[0].slice, cst.Index):
        return None
    value = expr.slice[0].slice.value
    if isinstance(value, cst.Integer):
        return value.value
    if isinstance(value, cst.UnaryOperation) and isinstance(value.operator, cst.Minus) \
            and isinstance(value.expression, cst.Integer):
        return "-" + value.expression.value
    return literal_str(value)


def annotated_value(scope: FileScope, ann: cst.BaseExpression) -> Value:
    """What a parameter annotated so holds: ACT (may hold an activation), INDEX (an integer
    or bool tensor, never an activation) or PY (no tensor)."""
    if isinstance(ann, cst.SimpleString):
        return ACT if "Tensor" in ann.value or "Any" in ann.value else PY
    if isinstance(ann, cst.Name) and ann.value == "None":
        return PY
    if isinstance(ann, cst.BinaryOperation):  # X | None
        return _widest(annotated_value(scope, ann.left), annotated_value(scope, ann.right))
    if isinstance(ann, cst.Subscript):
        outer = scope.qname(ann.value)
        if ops.ANNOTATIONS.get(outer) is ops.Annotation.WRAPPER or (outer or "").rsplit(".", 1)[-1] in ops.WRAPPER_NAMES:
            return _widest(*(annotated_value(scope, e.slice.value) for e in ann.slice if isinstance(e.slice, cst.Index)))
        return ACT
    qname = scope.qname(ann)
    if qname is None:  # a name nothing binds
        return PY if isinstance(ann, cst.Name) and ann.value in ops.PYTHON_TYPES else ACT
    kind = ops.ANNOTATIONS.get(qname)
    if kind in (ops.Annotation.TENSOR, ops.Annotation.ANY):
        return ACT
    return INDEX if kind is ops.Annotation.INDEX else PY


def _widest(*values: Value) -> Value:
    if any(v is ACT for v in values):
        return ACT
    return INDEX if any(v is INDEX for v in values) else PY


def default_holds_tensor(default) -> bool:
    """Whether a parameter with this default may hold a tensor (a literal default says no)."""
    if isinstance(default, (cst.Integer, cst.Float, cst.SimpleString, cst.ConcatenatedString)):
        return False
    if isinstance(default, cst.UnaryOperation) and isinstance(default.expression, (cst.Integer, cst.Float)):
        return False
    if isinstance(default, cst.Name) and default.value in ("True", "False"):
        return False
    return True
