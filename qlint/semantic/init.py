"""The `__init__` pass: what each `self.<name>` is, and which names share one instance.

`__init__` (and the methods it calls) is walked once per class. Every object it builds is
an `Instance` whose identity is kept, so that one module bound under two names or two
container positions is seen (QL402); what each attribute ends up holding is summarized
in the class's `ClassSummary` (a module of a class known by qualified name, a container
with its literal members, an nn.Parameter, a buffer, a plain value).
"""
from __future__ import annotations

from typing import Optional

import libcst as cst

from qlint.semantic import ops, torch_api as api
from qlint.semantic.interpret import Walker, exclusive, is_self, literal_index, literal_str
from qlint.semantic.names import canonical
from qlint.semantic.ops import Result
from qlint.semantic.scope import Alias, ClassModel, FileScope, is_super_init
from qlint.semantic.summaries import BUFFER, MODULE, PARAM, UNKNOWN, VALUE, AttrSummary
from qlint.semantic.values import PY, UNKNOWN as UNKNOWN_VALUE, Func, Seq, Unknown, Value


class Instance(Value):
    """An object `__init__` builds: identity matters (aliasing), so never copied."""

    __slots__ = ("cls", "node", "role", "members", "element", "bound", "loop_depth")

    def __init__(self, cls: Optional[str], node, role: Optional[str] = None, members=None,
                 loop_depth: int = 0, element: Optional[str] = None):
        super().__init__()
        self.cls = cls
        self.node = node
        self.role = role  # PARAM, BUFFER, or None for a module (or an object of unknown class)
        self.members = members  # [(name, value)] of a container with literal members
        self.element = element  # the class of every member, for containers built by comprehension
        self.bound: list[tuple[str, tuple]] = []  # (binding, arms it was made under)
        self.loop_depth = loop_depth


class Built(Seq):
    """A local list built in `__init__` (layers = []; layers.append(...)). `known` is False
    once its members depend on a loop or an arm (or are not literal)."""

    __slots__ = ("known", "where", "element")

    def __init__(self, items=None, known: bool = True, where=None, element: Optional[str] = None):
        super().__init__(items)
        self.known = known
        self.where = where  # (loop depth, arms) where it was built
        self.element = element  # the class of every item, for a comprehension


class InitPass(Walker):
    """Reads `__init__` (and the self-methods it calls) to learn what each `self.<name>` is."""

    SEPARATE_ARMS = False

    def __init__(self, scope: FileScope, cls: ClassModel):
        super().__init__(scope, cls)
        self.attrs: dict[str, Value] = {}
        self.others: dict[str, list] = {}  # attribute -> classes it held before its last binding

    def run(self) -> None:
        init = self.cls.methods.get("__init__")
        summary = self.cls.summary
        if init is not None:
            params = init.params
            env = {p.name.value: UNKNOWN_VALUE for p in [*params.params, *params.kwonly_params]}
            self.invoke(init, env, ())
            named = [*params.posonly_params, *params.params, *params.kwonly_params]
            summary.init_params = tuple((p.name.value, self._default_class(p.default)) for p in named
                                        if p.name.value != "self")
        for name, value in self.attrs.items():
            summary.attrs[name] = _summarize(value, self.others.get(name, ()))
        class_facts(self.cls, self.attrs)

    def _default_class(self, default) -> Optional[str]:
        """The class (or function) a parameter's default names (`act_layer=nn.ReLU`), if any."""
        if isinstance(default, (cst.Name, cst.Attribute)) and not (isinstance(default, cst.Name) and default.value == "None"):
            qname = self.scope.qname(default)
            return canonical(qname) if qname else None
        return None

    # ----- walker hooks ------------------------------------------------------------------
    def bind_self_attr(self, name: str, value: Value, node) -> None:
        self._note_binding(value, f"self.{name}", node)
        previous = self.attrs.get(name)
        if isinstance(previous, Instance) and not isinstance(value, Instance):
            return  # `self.x = None` on one branch keeps what the other branch built
        if isinstance(previous, Instance) and previous.role == PARAM and value.role != PARAM:
            return  # a parameter on one branch, a buffer on the other (train_eps): may be a parameter
        if isinstance(previous, Instance) and isinstance(value, Instance) and previous.cls \
                and previous.cls != value.cls and previous.role is None:
            self.others.setdefault(name, []).append(previous.cls)
        self.attrs[name] = value

    def element_of(self, value: Value) -> Value:
        return PY

    def augmented(self, small: cst.AugAssign) -> None:
        value = self.expr(small.value)
        target = small.target
        if isinstance(target, cst.Name) and isinstance(self.frame.env.get(target.value), Built):
            self._extend(self.frame.env[target.value], value)

    def returned(self, returns: list[Value]) -> Value:
        return next((v for v in returns if isinstance(v, Instance)), PY)

    def inline_refused(self, call, args) -> Value:
        return PY

    def inline_method(self, call: cst.Call, name: str, args: list) -> Value:
        value = super().inline_method(call, name, args)
        if isinstance(value, Instance) and value.cls is not None:
            return value
        found = self.scope.find_method(self.cls, name)
        returned = self.scope.returned_class(found[1]) if found is not None else None
        return Instance(canonical(returned), call, loop_depth=self.loop_depth) if returned else value

    # ----- bindings ----------------------------------------------------------------------
    def _inherited(self, name: str, node) -> Optional[Instance]:
        """A submodule a base class of this file binds in its __init__: already bound once."""
        for base in self.cls.bases:
            other = self.scope.by_qname.get(base)
            attr = other.summary.attrs.get(name) if other is not None else None
            if attr is not None and attr.kind == MODULE:
                inherited = Instance(attr.cls, node)
                inherited.bound.append((f"self.{name}", ()))
                return inherited
        return None

    def _note_binding(self, value: Value, name: str, node) -> None:
        if not isinstance(value, Instance) or value.role is not None:
            return
        if name.startswith("self.") and any(label == name for label, _ in value.bound):
            return  # bound again under the same name: self.layer = self.layer.to(device)
        earlier = next((label for label, arms in value.bound if not exclusive(arms, self.arms)), None)
        if earlier is not None or value.loop_depth < self.loop_depth:
            first = earlier or f"{name} in an earlier loop iteration"
            self.cls.aliases.append(Alias(node, name, first, value.cls, self.anchor))
        value.bound.append((name, self.arms))

    def _grow(self, seq: Built) -> None:
        """Note that `seq` grows here: in a loop or an arm of its own, its members vary."""
        if seq.where != (self.loop_depth, self.arms):
            seq.known = False

    def _extend(self, seq: Built, value: Value) -> None:
        self._grow(seq)
        if isinstance(value, Built):
            seq.items.extend(value.items)
            seq.known = seq.known and value.known
        else:
            seq.known = False

    def _built(self, items, known=True, element=None) -> Built:
        return Built(items, known, (self.loop_depth, self.arms), element)

    # ----- expressions ---------------------------------------------------------------------
    def expr(self, expr, quiet: bool = False) -> Value:
        if isinstance(expr, cst.Call):
            return self._call(expr)
        if isinstance(expr, cst.Name):
            value = self.frame.env.get(expr.value)
            return PY if value is None or isinstance(value, Func) else value
        if isinstance(expr, cst.Attribute) and is_self(expr.value):
            name = expr.attr.value
            if name in self.attrs:
                return self.attrs[name]
            return self._inherited(name, expr) or PY
        if isinstance(expr, (cst.List, cst.Tuple)):
            items, known = [], True
            for element in expr.elements:
                if isinstance(element, cst.StarredElement):
                    inner = self.expr(element.value)
                    if isinstance(inner, Built):
                        items.extend(inner.items)
                        known = known and inner.known
                    else:
                        known = False
                else:
                    items.append(self.expr(element.value))
            return self._built(items, known)
        if isinstance(expr, cst.Subscript):
            return self._member(expr, self.expr(expr.value))
        if isinstance(expr, cst.IfExp):
            body, orelse = self.ifexp_arms(expr)
            return body if isinstance(body, Instance) else orelse
        if isinstance(expr, (cst.ListComp, cst.GeneratorExp)):
            element = self.comprehension(expr)
            return Built(known=False, element=element.cls if isinstance(element, Instance) else None)
        if isinstance(expr, cst.BinaryOperation):
            left, right = self.expr(expr.left), self.expr(expr.right)
            if isinstance(left, Built) and isinstance(right, Built):
                return Built(left.items + right.items, left.known and right.known)
            if isinstance(expr.operator, cst.Multiply) and isinstance(left, Built) and left.items:
                # [layer] * n: the same instance n times, whatever its class
                items = [i if isinstance(i, Instance) else Instance(None, expr) for i in left.items]
                return Built(items * 2, known=True)
            return PY
        return PY

    def _member(self, expr: cst.Subscript, holder: Value) -> Value:
        """`self.blocks[-1]`: the member instance of a container (already bound as its member)."""
        if not isinstance(holder, Instance) or holder.role is not None or (holder.members is None and holder.element is None) \
                or len(expr.slice) != 1 or not isinstance(expr.slice[0].slice, cst.Index):
            return PY  # a slice (`self.features[:4]`) is a new container
        index = literal_index(expr)
        if holder.members is not None:
            names = dict(holder.members)
            if index is not None and index.lstrip("-").isdigit() and -len(holder.members) <= int(index) < len(holder.members):
                index = holder.members[int(index)][0]
            member = names.get(index)
            if isinstance(member, Instance):
                return member
            return PY
        member = Instance(holder.element, expr)
        member.bound.append((f"a member of {holder.bound[0][0] if holder.bound else 'a container'}",
                             holder.bound[0][1] if holder.bound else ()))
        return member

    def _callee_qname(self, func) -> Optional[str]:
        """The qualified name a call's callee means (a local import, or a global)."""
        if isinstance(func, cst.Name) and func.value in self.frame.env:
            local = self.frame.env[func.value]
            return local.qname if isinstance(local, Func) else None
        qname = self.scope.qname(func)
        return canonical(qname) if qname else None

    def _call(self, call: cst.Call) -> Value:
        func = call.func
        if isinstance(func, cst.Attribute):
            method, receiver = func.attr.value, func.value
            op = ops.module_op(method)
            result = op.result if op is not None else None
            if is_self(receiver) and result in ops.BINDING:
                return self._register(call, result)
            if is_self(receiver) and self.cls is not None and self.scope.find_method(self.cls, method) is not None:
                args = [self.expr(arg.value) for arg in call.args]
                return self.inline_method(call, method, args)
            holder = self.expr(receiver)
            if result is Result.MODULE_ITSELF and isinstance(holder, Instance):
                return holder
            if result in (Result.APPEND, Result.EXTEND) and call.args:
                value = self.expr(call.args[-1].value)
                if isinstance(holder, Built):
                    if result is Result.EXTEND:
                        self._extend(holder, value)
                    else:
                        self._grow(holder)
                        holder.items.append(value)
                elif isinstance(holder, Instance) and holder.members is not None:
                    label = f"a member of {holder.bound[0][0] if holder.bound else 'a container'}"
                    self._note_binding(value, label, call.args[-1].value)
                    holder.members = None
                return PY
        if is_super_init(func) and any(api.CONTAINERS.get(b) == "sequential" for b in self.cls.bases):
            args = [self.expr(arg.value) for arg in call.args]
            members = self._members(call, args)
            for name, member, node in members or ():
                self._note_binding(member, f"position {name} of this nn.Sequential", node)
            if members is not None:
                self.cls.summary.members = tuple((name, m.cls if isinstance(m, Instance) else None)
                                                 for name, m, _ in members)
            return PY
        qname = self._callee_qname(func)
        op = ops.lookup(qname) if qname is not None else None
        if op is not None and op.result is Result.SET_ATTRIBUTE and len(call.args) >= 3 and is_self(call.args[0].value):
            name = literal_str(call.args[1].value)
            value = self.expr(call.args[2].value)
            if name is None:
                self.cls.summary.dynamic_attrs = True
            else:
                self.bind_self_attr(name, value, call.args[2].value)
            return PY
        args = [self.expr(arg.value) for arg in call.args]
        if qname is None:
            return Instance(None, call, loop_depth=self.loop_depth)
        if op is not None and op.result is Result.PARAMETER:
            return Instance(qname, call, PARAM)
        if op is not None and op.result is Result.BUFFER:
            return Instance(qname, call, BUFFER)
        returned = self.scope.function_returns.get(qname)
        if returned:
            return Instance(canonical(returned), call, loop_depth=self.loop_depth)
        members = None
        container = api.CONTAINERS.get(qname)
        if container == "dict" and len(call.args) == 1 and isinstance(call.args[0].value, cst.Dict):
            members = self._dict_members(call.args[0].value)
        if container in ("sequential", "list"):
            members = self._members(call, args)
            short = qname.rsplit(".", 1)[-1]
            for name, member, node in members or ():
                self._note_binding(member, f"position {name} of nn.{short}", node)
            if members is not None:
                members = [(name, member) for name, member, _ in members]
        element = args[0].element if len(args) == 1 and isinstance(args[0], Built) else None
        return Instance(qname, call, members=members, loop_depth=self.loop_depth, element=element)

    def _register(self, call: cst.Call, result: Result) -> Value:
        """self.add_module("name", m), self.register_buffer/parameter("name", t)."""
        name = literal_str(call.args[0].value) if call.args else None
        given = call.args[1].value if len(call.args) > 1 else None
        value = self.expr(given) if given is not None else PY
        if isinstance(given, cst.Name) and given.value == "None":
            value = PY  # register_parameter("bias", None): no parameter at all
        elif result is Result.REGISTER_BUFFER:
            value = Instance(None, call, BUFFER)
        elif result is Result.REGISTER_PARAMETER:
            value = Instance(None, call, PARAM)
        if name is None:
            self.cls.summary.dynamic_attrs = True
        else:
            self.bind_self_attr(name, value, given if given is not None else call)
        return PY

    def _dict_members(self, literal: cst.Dict) -> Optional[list]:
        """(key, value) of nn.ModuleDict({"act": nn.ReLU(), ...}) with literal string keys."""
        members = []
        for element in literal.elements:
            key = literal_str(element.key) if isinstance(element, cst.DictElement) else None
            if key is None:
                return None
            value = self.expr(element.value)
            self._note_binding(value, f"key {key!r} of nn.ModuleDict", element.value)
            members.append((key, value))
        return members

    def _members(self, call: cst.Call, args) -> Optional[list]:
        """(name, value, node) of the literal members of nn.Sequential(a, b),
        nn.Sequential(*layers) or nn.ModuleList([a, b]); None when not literal."""
        if len(call.args) == 1 and (call.args[0].star == "*" or isinstance(args[0], Built)):
            seq, inner = args[0], call.args[0].value
            if not isinstance(seq, Built) or not seq.known:
                return None
            nodes = ([e.value for e in inner.elements] if isinstance(inner, (cst.List, cst.Tuple))
                     and len(inner.elements) == len(seq.items) else [call] * len(seq.items))
            return [(str(i), m, n) for i, (m, n) in enumerate(zip(seq.items, nodes))]
        if any(arg.star for arg in call.args):
            return None
        if len(call.args) == 1 and isinstance(args[0], Instance) and args[0].cls in (
                "collections.OrderedDict", "builtins.dict"):
            return None  # nn.Sequential(OrderedDict(...)): named members, not positions
        return [(str(i), m, arg.value) for i, (m, arg) in enumerate(zip(args, call.args))]


def _summarize(value: Value, others=()) -> AttrSummary:
    if isinstance(value, Instance):
        if value.role in (PARAM, BUFFER):
            return AttrSummary(value.role)
        if value.cls is None:
            return AttrSummary(UNKNOWN)
        members = None
        if value.members is not None:
            members = tuple((name, m.cls if isinstance(m, Instance) else None) for name, m in value.members)
        others = tuple(dict.fromkeys(c for c in others if c != value.cls))
        return AttrSummary(MODULE, value.cls, members, value.element, others)  # MODULE until the index says otherwise
    if isinstance(value, Unknown):
        return AttrSummary(UNKNOWN)
    return AttrSummary(VALUE)


def class_facts(cls: ClassModel, attrs: dict) -> None:
    """What a class defines besides its `__init__` bindings, read from every method's
    statements: attributes bound anywhere (`self.x = ...`), `qconfig = None` on itself or on
    a submodule, attributes bound under computed names, stubs its `__init__` builds."""
    summary = cls.summary
    defined = set(cls.methods)
    islands = set()
    for stmt in cls.node.body.body:
        if isinstance(stmt, cst.SimpleStatementLine):
            for small in stmt.body:
                for target in assigned_targets(small):
                    if isinstance(target, cst.Name):
                        defined.add(target.value)
                        if target.value == api.QCONFIG_ATTRIBUTE and _is_none(small):
                            summary.float_island = True
        elif isinstance(stmt, cst.ClassDef):
            defined.add(stmt.name.value)
    for method in cls.methods.values():
        islands |= _loop_islands(method.body)
        for small in _small_statements(method.body):
            if isinstance(small, cst.Expr) and isinstance(small.value, cst.Call):
                _dynamic_binding(small.value, summary, defined)
                continue
            for target in assigned_targets(small):
                path = _self_path(target)
                if path is None:
                    continue
                if "." not in path:
                    defined.add(path)
                elif path.rpartition(".")[2] == api.QCONFIG_ATTRIBUTE and _is_none(small):
                    islands.add(path.rpartition(".")[0])
                if path == api.QCONFIG_ATTRIBUTE and _is_none(small):
                    summary.float_island = True
    summary.defined = frozenset(defined | set(summary.attrs))
    summary.float_attrs = frozenset(islands)
    summary.getattr_hook = "__getattr__" in cls.methods or "__getattribute__" in cls.methods
    stubs = {name: value for name, value in attrs.items()
             if isinstance(value, Instance) and value.cls in (api.QUANT_STUB, api.DEQUANT_STUB)}
    summary.stubs = frozenset(stubs)
    cls.stub_nodes = {name: value.node for name, value in stubs.items()}


def _small_statements(block):
    """Every simple statement of a function body, nested blocks included (not nested functions)."""
    stack = [block]
    while stack:
        node = stack.pop()
        if isinstance(node, (cst.SimpleStatementLine, cst.SimpleStatementSuite)):
            yield from node.body
        elif isinstance(node, (cst.IndentedBlock,)):
            stack.extend(reversed(node.body))
        elif isinstance(node, (cst.If, cst.For, cst.While, cst.With, cst.Try, cst.TryStar, cst.Else,
                               cst.ExceptHandler, cst.ExceptStarHandler, cst.Finally, cst.MatchCase)):
            for name in ("finalbody", "orelse", "handlers", "body"):
                child = getattr(node, name, None)
                if isinstance(child, (list, tuple)):
                    stack.extend(reversed(child))
                elif child is not None:
                    stack.append(child)
        elif isinstance(node, cst.Match):
            stack.extend(reversed(node.cases))


def assigned_targets(small):
    """The names, attributes and items a small statement assigns (tuples unpacked)."""
    if isinstance(small, cst.Assign):
        for target in small.targets:
            yield from _unpack(target.target)
    elif isinstance(small, (cst.AnnAssign, cst.AugAssign)):
        yield small.target


def _unpack(target):
    if isinstance(target, (cst.Tuple, cst.List)):
        for element in target.elements:
            yield from _unpack(element.value)
    else:
        yield target


def _self_path(expr, root: str = "self") -> Optional[str]:
    """'x' for `self.x`, 'x.qconfig' for `self.x.qconfig`, 'blocks.0.attn' for
    `self.blocks[0].attn`; None for anything else. `root`: the name the path starts from."""
    parts = []
    while isinstance(expr, (cst.Attribute, cst.Subscript)):
        if isinstance(expr, cst.Attribute):
            parts.append(expr.attr.value)
        else:
            index = literal_index(expr)
            if index is None:
                return None
            parts.append(index)
        expr = expr.value
    if parts and isinstance(expr, cst.Name) and expr.value == root:
        return ".".join(reversed(parts))
    return None


def _loop_islands(block) -> set[str]:
    """`for blk in self.blocks: blk.attn.qconfig = None` gives "blocks.*.attn" (also over
    enumerate(self.blocks))."""
    found = set()
    for node in _statements(block):
        if not isinstance(node, cst.For):
            continue
        iterated, target = node.iter, node.target
        if isinstance(iterated, cst.Call) and isinstance(iterated.func, cst.Name) and iterated.func.value == "enumerate" \
                and iterated.args and isinstance(target, cst.Tuple) and len(target.elements) == 2:
            iterated, target = iterated.args[0].value, target.elements[1].value
        container = _self_path(iterated)
        if container is None or not isinstance(target, cst.Name):
            continue
        for small in _small_statements(node.body):
            for assigned in assigned_targets(small):
                path = _self_path(assigned, target.value)
                if path is not None and path.split(".")[-1] == api.QCONFIG_ATTRIBUTE and _is_none(small):
                    found.add(".".join([container, "*", *path.split(".")[:-1]]))
    return found


def _statements(block):
    """Every compound statement of a block, nested ones included (not nested functions)."""
    stack = [block]
    while stack:
        node = stack.pop()
        if isinstance(node, (cst.If, cst.For, cst.While, cst.With, cst.Try, cst.TryStar)):
            yield node
        if isinstance(node, cst.IndentedBlock):
            stack.extend(node.body)
        elif isinstance(node, (cst.If, cst.For, cst.While, cst.With, cst.Try, cst.TryStar, cst.Else,
                               cst.ExceptHandler, cst.Finally)):
            for name in ("body", "orelse", "handlers", "finalbody"):
                child = getattr(node, name, None)
                if isinstance(child, (list, tuple)):
                    stack.extend(child)
                elif child is not None:
                    stack.append(child)


def _is_none(small) -> bool:
    value = getattr(small, "value", None)
    return isinstance(value, cst.Name) and value.value == "None"


def _dynamic_binding(call: cst.Call, summary, defined: set) -> None:
    """setattr(self, name, ...), self.add_module(name, ...), self.register_buffer(name, ...)."""
    func = call.func
    if isinstance(func, cst.Name) and func.value == "setattr" and call.args and is_self(call.args[0].value):
        name_arg = call.args[1].value if len(call.args) > 1 else None
    elif isinstance(func, cst.Attribute) and is_self(func.value) and ops.module_op(func.attr.value) is not None \
            and ops.module_op(func.attr.value).result in ops.BINDING:
        name_arg = call.args[0].value if call.args else None
    else:
        return
    name = literal_str(name_arg) if name_arg is not None else None
    if name is None:
        summary.dynamic_attrs = True
    else:
        defined.add(name)
