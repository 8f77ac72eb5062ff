"""The semantic model of a file, built once and queried by every rule.

Two phases, so that files can be linted in parallel and still see each other's classes:

1. `FileModel.build` parses nothing itself: given a parsed module it resolves the imports,
   finds the classes and what each `self.<name>` is from `__init__` (a module of a class
   known by qualified name, a container with its literal members, an nn.Parameter, a
   buffer, a plain value), and summarizes them in pickleable `ClassSummary`s.
2. A `ProjectIndex` merges the summaries of every file of the run; rules then ask the file
   model which classes are nn.Modules (through bases in any file), what their attributes
   are (through inherited `__init__`s) and what their forward path does (`forward.py`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Optional

import libcst as cst

from qlint.semantic import torch_api as api
from qlint.semantic.names import canonical, dotted, import_bindings, module_name_for
from qlint.semantic.walk import iter_nodes

MODULE, CONTAINER, PARAM, BUFFER, VALUE, UNKNOWN = (
    "module", "container", "param", "buffer", "value", "unknown")


@dataclass(frozen=True)
class AttrSummary:
    """What one `self.<name>` is, as `__init__` binds it."""

    kind: str  # MODULE, CONTAINER, PARAM, BUFFER, VALUE or UNKNOWN
    cls: Optional[str] = None  # qualified class of a module or container
    members: Optional[tuple] = None  # literal container members: ((name, cls), ...)
    element: Optional[str] = None  # the class of every member, when a comprehension built them


@dataclass
class ClassSummary:
    """A class as other files see it (pickleable)."""

    qname: str
    bases: tuple[str, ...]
    attrs: dict[str, AttrSummary]
    methods: frozenset[str]
    dynamic_attrs: bool = False  # attributes bound under computed names (setattr, add_module)


@dataclass
class FileSummary:
    module_name: str
    classes: dict[str, ClassSummary]
    function_returns: dict[str, str]  # function qname -> qualified class it returns
    exports: dict[str, str]  # module-level import bindings, for re-exports
    fuse_wrappers: dict[str, tuple[int, int]]  # function qname -> (model, groups) parameter indices
    scripts: Optional[object] = None  # pipeline.ScriptFacts: fuse methods, classes that set a qconfig


class ProjectIndex:
    """Every class and module-building function of a run, by qualified name."""

    def __init__(self, summaries: list[FileSummary]):
        self.classes: dict[str, ClassSummary] = {}
        self.function_returns: dict[str, str] = {}
        self.exports: dict[str, str] = {}
        self.fuse_wrappers: dict[str, tuple[int, int]] = {}
        self.method_effects: dict = {}  # (class, method) -> pipeline.MethodEffect
        self.qconfig_classes: set[str] = set()  # classes whose code mentions a qconfig
        for summary in summaries:
            self.classes.update(summary.classes)
            self.function_returns.update(summary.function_returns)
            self.fuse_wrappers.update(summary.fuse_wrappers)
            if summary.scripts is not None:
                self.method_effects.update(summary.scripts.methods)
                self.qconfig_classes |= summary.scripts.qconfig_classes
            for name, target in summary.exports.items():
                self.exports[f"{summary.module_name}.{name}"] = target
        self._module_memo: dict[str, bool] = {}
        self._attrs_memo: dict[str, dict[str, AttrSummary]] = {}
        self._torch_base_memo: dict[Optional[str], Optional[str]] = {}

    def resolve(self, qname: Optional[str]) -> Optional[str]:
        """Follow re-exports (`pkg.Block` imported in pkg/__init__.py from pkg.blocks)."""
        for _ in range(8):
            if qname is None or qname in self.classes or qname not in self.exports:
                return qname
            qname = canonical(self.exports[qname])
        return qname

    def summary(self, qname: Optional[str]) -> Optional[ClassSummary]:
        return self.classes.get(self.resolve(qname))

    def is_module_class(self, qname: Optional[str]) -> bool:
        if qname is None:
            return False
        qname = self.resolve(qname)
        if qname in self._module_memo:
            return self._module_memo[qname]
        self._module_memo[qname] = False  # breaks cycles
        summary = self.classes.get(qname)
        if summary is None:
            result = api.is_torch_module_class(qname)
        else:
            result = any(self.is_module_class(base) for base in summary.bases)
        self._module_memo[qname] = result
        return result

    def torch_base(self, qname: Optional[str]) -> Optional[str]:
        """The torch class a module class derives from (itself if it is one)."""
        if qname not in self._torch_base_memo:
            self._torch_base_memo[qname] = self._find_torch_base(qname)
        return self._torch_base_memo[qname]

    def _find_torch_base(self, qname: Optional[str]) -> Optional[str]:
        seen = set()
        stack = [self.resolve(qname)]
        while stack:
            current = stack.pop(0)
            if current is None or current in seen:
                continue
            seen.add(current)
            summary = self.classes.get(current)
            if summary is None:
                if api.is_torch_module_class(current) and current not in api.MODULE_BASES:
                    return current
                continue
            stack.extend(self.resolve(b) for b in summary.bases)
        return None

    def attrs(self, qname: str) -> dict[str, AttrSummary]:
        """`self.<name>` bindings of a class, inherited `__init__`s included."""
        qname = self.resolve(qname)
        if qname in self._attrs_memo:
            return self._attrs_memo[qname]
        self._attrs_memo[qname] = {}
        summary = self.classes.get(qname)
        merged: dict[str, AttrSummary] = {}
        if summary is not None:
            for base in reversed(summary.bases):
                merged.update(self.attrs(base))
            merged.update(summary.attrs)
        else:  # a torch layer: the parameters it registers itself
            merged.update({name: AttrSummary(PARAM) for name in api.REGISTERED_PARAMETERS.get(qname, ())})
        self._attrs_memo[qname] = merged
        return merged

    def attrs_complete(self, qname: str) -> bool:
        """Whether every attribute of the class is known (all bases in the run, no setattr)."""
        summary = self.summary(qname)
        if summary is None:
            return api.is_torch_module_class(self.resolve(qname) or "")
        if summary.dynamic_attrs:
            return False
        return all(self.attrs_complete(b) for b in summary.bases)

    def module_kind(self, cls: Optional[str]) -> str:
        """MODULE, CONTAINER or VALUE for an instance of `cls` (UNKNOWN when unsure)."""
        if cls is None:
            return UNKNOWN
        torch_cls = self.torch_base(cls)
        if torch_cls in api.CONTAINERS:
            return CONTAINER
        if self.is_module_class(cls):
            return MODULE
        if self.summary(cls) is not None or cls.startswith("torch.") or cls.startswith("builtins."):
            return VALUE
        return UNKNOWN

    def is_stateful(self, cls: Optional[str]) -> Optional[bool]:
        """Whether reusing an instance shares state that quantization cares about
        (observers, fusion targets, parameters). None when the class is not known."""
        if cls is None:
            return None
        resolved = self.resolve(cls)
        if resolved in api.STATELESS_MODULES:
            return False
        summary = self.classes.get(resolved)
        if summary is None:
            return True if api.is_torch_module_class(resolved) else None
        torch_cls = self.torch_base(resolved)
        if torch_cls in api.STATELESS_MODULES:
            return False
        for attr in self.attrs(resolved).values():
            if attr.kind in (PARAM, CONTAINER):
                return True
            if attr.kind == MODULE and self.is_stateful(attr.cls) is not False:
                return True
        return torch_cls is not None and torch_cls not in api.MODULE_BASES


@dataclass
class Alias:
    """A module instance bound under a second name or container position (QL402)."""

    node: cst.CSTNode
    name: str  # this binding ("self.relu2", "position 3 of nn.Sequential")
    first: str  # the first binding of the same instance
    cls: Optional[str]


@dataclass
class ClassModel:
    node: cst.ClassDef
    qname: str
    bases: tuple[str, ...]
    methods: dict[str, cst.FunctionDef]
    summary: ClassSummary
    aliases: list[Alias] = field(default_factory=list)


class FileModel:
    """Everything rules may ask about one file."""

    def __init__(self, path: Path, source: str, module: cst.Module):
        self.path = path
        self.source = source
        self.module = module
        self.module_name = module_name_for(path) or path.stem
        self.package = self.module_name if path.stem == "__init__" else self.module_name.rpartition(".")[0]
        self.globals: dict[str, str] = {}  # name -> qualified name
        self.imported: dict[str, str] = {}  # module-level import bindings (re-exports)
        self.classes: dict[str, ClassModel] = {}
        self.functions: dict[str, cst.FunctionDef] = {}
        self.constants: set[str] = set()  # module-level names bound to plain values
        self.true_constants: set[str] = set()  # module-level names bound to True
        self.function_returns: dict[str, str] = {}
        self.index: Optional[ProjectIndex] = None
        self._traces: dict[str, object] = {}
        self.cache: dict = {}  # derived facts rules share (fuse calls), computed on first use
        self._collect(module.body)
        self.by_qname = {cls.qname: cls for cls in self.classes.values()}
        for name, func in self.functions.items():
            returned = self._returned_class(func, {})
            if returned:
                self.function_returns[f"{self.module_name}.{name}"] = returned
        for cls in self.classes.values():
            InitEvaluator(self, cls).run()

    # ----- names -------------------------------------------------------------------
    def raw_qname(self, expr: cst.BaseExpression, local: Optional[dict] = None) -> Optional[str]:
        """The qualified name of a dotted expression as written, before canonicalization."""
        path = dotted(expr)
        if path is None:
            return None
        head, _, rest = path.partition(".")
        if local is not None and head in local:
            return None
        target = self.globals.get(head)
        if target is None:
            if head in BUILTIN_NAMES:
                target = "builtins." + head
            else:
                return None
        return f"{target}.{rest}" if rest else target

    def qname(self, expr: cst.BaseExpression, local: Optional[dict] = None) -> Optional[str]:
        raw = self.raw_qname(expr, local)
        return canonical(raw) if raw else None

    def _collect(self, body) -> None:
        for stmt in body:
            if isinstance(stmt, cst.SimpleStatementLine):
                for small in stmt.body:
                    if isinstance(small, (cst.Import, cst.ImportFrom)):
                        for local, qname, _ in import_bindings(small, self.package):
                            if qname:
                                self.globals[local] = qname
                                self.imported[local] = qname
                    elif (isinstance(small, cst.Assign) and len(small.targets) == 1) or (
                            isinstance(small, cst.AnnAssign) and small.value is not None):
                        # `Gain: TypeAlias = float` is an alias like `Gain = float`
                        target = small.targets[0].target if isinstance(small, cst.Assign) else small.target
                        if isinstance(target, cst.Name):
                            aliased = self.raw_qname(small.value)
                            if aliased:
                                self.globals[target.value] = aliased
                            else:  # a value of this module (a constant, a lambda, a partial)
                                self.globals[target.value] = f"{self.module_name}.{target.value}"
                                self.constants.add(target.value)
                                if isinstance(small.value, cst.Name) and small.value.value == "True":
                                    self.true_constants.add(target.value)
            elif isinstance(stmt, cst.ClassDef):
                qname = f"{self.module_name}.{stmt.name.value}"
                self.globals[stmt.name.value] = qname
                bases = tuple(q for q in (self.qname(arg.value) for arg in stmt.bases if arg.keyword is None) if q)
                methods = {s.name.value: s for s in stmt.body.body if isinstance(s, cst.FunctionDef)}
                summary = ClassSummary(qname, bases, {}, frozenset(methods))
                self.classes[stmt.name.value] = ClassModel(stmt, qname, bases, methods, summary)
            elif isinstance(stmt, cst.FunctionDef):
                self.globals[stmt.name.value] = f"{self.module_name}.{stmt.name.value}"
                self.functions[stmt.name.value] = stmt
            elif isinstance(stmt, cst.If):
                self._collect(stmt.body.body)
                if stmt.orelse is not None:
                    self._collect(stmt.orelse.body.body if isinstance(stmt.orelse, cst.Else) else [stmt.orelse])
            elif isinstance(stmt, cst.Try):
                self._collect(stmt.body.body)
                for handler in stmt.handlers:
                    self._collect(handler.body.body)

    def _returned_class(self, func: cst.FunctionDef, local: dict) -> Optional[str]:
        """The class a module-building function returns: its annotation or a returned call."""
        if func.returns is not None:
            annotated = self.qname(func.returns.annotation)
            if annotated and annotated.rsplit(".", 1)[-1][:1].isupper():
                return annotated
        for node in iter_nodes(func.body, into_functions=False):
            if isinstance(node, cst.Return) and isinstance(node.value, cst.Call):
                called = self.qname(node.value.func, local)
                if called and called.rsplit(".", 1)[-1][:1].isupper():
                    return called
        return None

    # ----- summaries and project queries ------------------------------------------------
    def summary(self) -> FileSummary:
        from qlint.semantic.fusion import find_fuse_wrappers

        from qlint.semantic.pipeline import script_facts

        summary = FileSummary(self.module_name, {c.qname: c.summary for c in self.classes.values()},
                              self.function_returns, dict(self.imported), find_fuse_wrappers(self))
        summary.scripts = script_facts(self, ProjectIndex([summary]))
        return summary

    def module_classes(self) -> Iterator[ClassModel]:
        """The classes of this file that are nn.Modules, directly or through any base."""
        for cls in self.classes.values():
            if self.index.is_module_class(cls.qname):
                yield cls

    def find_method(self, cls: ClassModel, name: str) -> Optional[tuple[ClassModel, cst.FunctionDef]]:
        """A method of the class or of a base class defined in this file (MRO order)."""
        key = ("method", cls.qname, name)
        if key not in self.cache:
            self.cache[key] = self._find_method(cls, name)
        return self.cache[key]

    def _find_method(self, cls: ClassModel, name: str) -> Optional[tuple[ClassModel, cst.FunctionDef]]:
        seen = set()
        queue = [cls]
        while queue:
            current = queue.pop(0)
            if current.qname in seen:
                continue
            seen.add(current.qname)
            if name in current.methods:
                return current, current.methods[name]
            queue.extend(c for c in (self.by_qname.get(self.index.resolve(b)) for b in current.bases) if c)
        return None

    def trace(self, cls: ClassModel):
        """The forward-path trace of a module class (computed once)."""
        from qlint.semantic.forward import trace_forward

        if cls.qname not in self._traces:
            self._traces[cls.qname] = trace_forward(self, cls)
        return self._traces[cls.qname]


BUILTIN_NAMES = frozenset({
    "len", "int", "float", "bool", "str", "list", "tuple", "dict", "set", "range", "enumerate",
    "zip", "map", "filter", "sorted", "reversed", "min", "max", "sum", "abs", "round", "any",
    "all", "isinstance", "issubclass", "hasattr", "getattr", "setattr", "super", "print",
    "type", "iter", "next", "object", "divmod", "pow", "repr", "id", "callable", "frozenset",
    "slice", "NotImplementedError", "ValueError", "RuntimeError", "TypeError", "AssertionError",
})


class _Instance:
    """A value built in `__init__`: identity matters (aliasing), so never copied."""

    __slots__ = ("cls", "node", "members", "bound", "loop_depth", "kind", "element")

    def __init__(self, cls, node, kind=None, members=None, loop_depth=0, element=None):
        self.cls = cls
        self.node = node
        self.kind = kind  # PARAM, BUFFER or None (decided by the class later)
        self.members = members  # list of (name, value) for literal containers
        self.element = element  # the class of every member, for containers built by comprehension
        self.bound: list[tuple[str, tuple]] = []  # (binding, if-arms it was made under)
        self.loop_depth = loop_depth


# nn.Module methods that return the module itself: nn.Conv2d(...).to(dtype=torch.float)
RETURNS_SELF = frozenset({"to", "cpu", "cuda", "float", "double", "half", "bfloat16", "train",
                           "eval", "requires_grad_", "apply", "type", "to_empty", "share_memory"})

_UNKNOWN = object()  # a value __init__ cannot know, such as one of its own parameters


class _Seq:
    """A local Python list of values built in `__init__` (layers = []; layers.append(...)).
    `known` is False once its members depend on a loop or an if-arm (or are not literal)."""

    __slots__ = ("items", "known", "where", "element")

    def __init__(self, items=None, known=True, where=None, element=None):
        self.items = list(items or [])
        self.known = known
        self.where = where  # (loop depth, if-arms) where it was built
        self.element = element  # the class of every item, for a comprehension


class InitEvaluator:
    """Reads `__init__` (and the self-methods it calls) to learn what each `self.<name>` is."""

    MAX_DEPTH = 4

    def __init__(self, model: FileModel, cls: ClassModel):
        self.model = model
        self.cls = cls
        self.attrs: dict[str, object] = {}
        self.loop_depth = 0
        self.depth = 0
        self.arms: tuple = ()  # the if-arms the current statement runs under

    def run(self) -> None:
        init = self.cls.methods.get("__init__")
        if init is not None:
            params = init.params
            env = {p.name.value: _UNKNOWN for p in [*params.params, *params.kwonly_params]}
            self._body(init.body.body, env)
        summary = self.cls.summary
        for name, value in self.attrs.items():
            summary.attrs[name] = self._summarize(value)

    def _summarize(self, value) -> AttrSummary:
        if isinstance(value, _Instance):
            if value.kind in (PARAM, BUFFER):
                return AttrSummary(value.kind)
            if value.cls is None:
                return AttrSummary(UNKNOWN)
            members = None
            if value.members is not None:
                members = tuple((name, m.cls if isinstance(m, _Instance) else None)
                                for name, m in value.members)
            return AttrSummary(MODULE, value.cls, members, value.element)  # MODULE until the index says otherwise
        if value is _UNKNOWN:
            return AttrSummary(UNKNOWN)
        return AttrSummary(VALUE)

    # ----- statements -------------------------------------------------------------------
    def _body(self, body, env: dict) -> None:
        for stmt in body:
            if isinstance(stmt, cst.SimpleStatementLine):
                for small in stmt.body:
                    self._small(small, env)
            elif isinstance(stmt, cst.If):
                self._expr(stmt.test, env)
                outer = self.arms
                self.arms = outer + ((id(stmt), 0),)
                self._body(stmt.body.body, env)
                if stmt.orelse is not None:
                    orelse = stmt.orelse
                    self.arms = outer + ((id(stmt), 1),)
                    self._body(orelse.body.body if isinstance(orelse, cst.Else) else [orelse], env)
                self.arms = outer
            elif isinstance(stmt, (cst.For, cst.While)):
                if isinstance(stmt, cst.For):
                    self._expr(stmt.iter, env)
                    self._bind(stmt.target, None, env, stmt.target)
                self.loop_depth += 1
                self._body(stmt.body.body, env)
                self.loop_depth -= 1
            elif isinstance(stmt, (cst.With, cst.Try)):
                self._body(stmt.body.body, env)
                for handler in getattr(stmt, "handlers", ()):
                    self._body(handler.body.body, env)
            elif isinstance(stmt, cst.FunctionDef):
                env[stmt.name.value] = None

    def _small(self, small, env) -> None:
        if isinstance(small, cst.Assign):
            value = self._expr(small.value, env)
            for target in small.targets:
                self._bind(target.target, value, env, small.value)
        elif isinstance(small, cst.AnnAssign) and small.value is not None:
            self._bind(small.target, self._expr(small.value, env), env, small.value)
        elif isinstance(small, cst.AugAssign):
            value = self._expr(small.value, env)
            target = small.target
            if isinstance(target, cst.Name) and isinstance(env.get(target.value), _Seq):
                self._extend(env[target.value], value)
        elif isinstance(small, cst.Expr):
            self._expr(small.value, env)
        elif isinstance(small, (cst.Import, cst.ImportFrom)):
            for local, qname, _ in import_bindings(small, self.model.package):
                env[local] = ("qname", qname)

    def _bind(self, target, value, env, node) -> None:
        if isinstance(target, cst.Name):
            env[target.value] = value
        elif isinstance(target, cst.Attribute) and _is_self(target.value):
            self._set_attr(target.attr.value, value, node)
        elif isinstance(target, (cst.Tuple, cst.List)):
            items = value.items if isinstance(value, _Seq) and len(value.items) == len(target.elements) else None
            values = node.elements if items is not None and isinstance(node, (cst.Tuple, cst.List)) else None
            for i, element in enumerate(target.elements):
                item_node = values[i].value if values is not None else node
                self._bind(element.value, items[i] if items is not None else None, env, item_node)

    def _inherited(self, name: str, node):
        """A submodule a base class of this file binds in its __init__: already bound once."""
        for base in self.cls.bases:
            other = self.model.by_qname.get(base)
            attr = other.summary.attrs.get(name) if other is not None else None
            if attr is not None and attr.kind == MODULE:
                inherited = _Instance(attr.cls, node)
                inherited.bound.append((f"self.{name}", ()))
                return inherited
        return None

    def _set_attr(self, name: str, value, node) -> None:
        self._note_binding(value, f"self.{name}", node)
        previous = self.attrs.get(name)
        if isinstance(previous, _Instance) and not isinstance(value, _Instance):
            return  # `self.x = None` on one branch keeps what the other branch built
        if isinstance(previous, _Instance) and previous.kind == PARAM and value.kind != PARAM:
            return  # a parameter on one branch, a buffer on the other (train_eps): may be a parameter
        self.attrs[name] = value

    def _note_binding(self, value, name: str, node) -> None:
        if not isinstance(value, _Instance) or value.kind is not None:
            return
        if name.startswith("self.") and any(label == name for label, _ in value.bound):
            return  # bound again under the same name: self.layer = self.layer.to(device)
        earlier = next((label for label, arms in value.bound if not exclusive(arms, self.arms)), None)
        if earlier is not None or value.loop_depth < self.loop_depth:
            first = earlier or f"{name} in an earlier loop iteration"
            self.cls.aliases.append(Alias(node, name, first, value.cls))
        value.bound.append((name, self.arms))

    def _grow(self, seq: _Seq) -> None:
        """Note that `seq` grows here: in a loop or an if-arm of its own, its members vary."""
        if seq.where != (self.loop_depth, self.arms):
            seq.known = False

    def _extend(self, seq: _Seq, value) -> None:
        self._grow(seq)
        if isinstance(value, _Seq):
            seq.items.extend(value.items)
            seq.known = seq.known and value.known
        else:
            seq.known = False

    # ----- expressions --------------------------------------------------------------------
    def _expr(self, expr, env):
        if isinstance(expr, cst.Call):
            return self._call(expr, env)
        if isinstance(expr, cst.Name):
            value = env.get(expr.value)
            return value if not isinstance(value, tuple) else None
        if isinstance(expr, cst.Attribute) and _is_self(expr.value):
            name = expr.attr.value
            return self.attrs[name] if name in self.attrs else self._inherited(name, expr)
        if isinstance(expr, (cst.List, cst.Tuple)):
            items, known = [], True
            for element in expr.elements:
                if isinstance(element, cst.StarredElement):
                    inner = self._expr(element.value, env)
                    if isinstance(inner, _Seq):
                        items.extend(inner.items)
                        known = known and inner.known
                    else:
                        known = False
                else:
                    items.append(self._expr(element.value, env))
            return _Seq(items, known, (self.loop_depth, self.arms))
        if isinstance(expr, cst.IfExp):
            body, orelse = self._expr(expr.body, env), self._expr(expr.orelse, env)
            return body if isinstance(body, _Instance) else orelse
        if isinstance(expr, (cst.ListComp, cst.GeneratorExp)):
            self.loop_depth += 1
            element = self._expr(expr.elt, env)
            self.loop_depth -= 1
            return _Seq(known=False, element=element.cls if isinstance(element, _Instance) else None)
        if isinstance(expr, cst.BinaryOperation):
            left, right = self._expr(expr.left, env), self._expr(expr.right, env)
            if isinstance(left, _Seq) and isinstance(right, _Seq):
                return _Seq(left.items + right.items, left.known and right.known)
            if isinstance(expr.operator, cst.Multiply) and isinstance(left, _Seq) and left.items:
                # [layer] * n: the same instance n times, whatever its class
                items = [i if isinstance(i, _Instance) else _Instance(None, expr) for i in left.items]
                return _Seq(items * 2, known=True)
            return None
        return None

    def _call(self, call: cst.Call, env):
        func = call.func
        # self.add_module("name", m), self.register_buffer/parameter, layers.append(m)
        if isinstance(func, cst.Attribute):
            method = func.attr.value
            receiver = func.value
            if _is_self(receiver) and method in ("add_module", "register_module", "register_buffer",
                                                 "register_parameter"):
                name = _literal_str(call.args[0].value) if call.args else None
                value = self._expr(call.args[1].value, env) if len(call.args) > 1 else None
                given = call.args[1].value if len(call.args) > 1 else None
                if _is_none(given):
                    value = None  # register_parameter("bias", None): no parameter at all
                elif method == "register_buffer":
                    value = _Instance(None, call, BUFFER)
                elif method == "register_parameter":
                    value = _Instance(None, call, PARAM)
                if name is None:
                    self.cls.summary.dynamic_attrs = True
                else:
                    self._set_attr(name, value, call.args[1].value if len(call.args) > 1 else call)
                return None
            if _is_self(receiver) and method in self.cls.methods and self.depth < self.MAX_DEPTH:
                target = self.cls.methods[method]
                for arg in call.args:
                    self._expr(arg.value, env)
                self.depth += 1
                self._body(target.body.body, {})
                self.depth -= 1
                returned = self.model._returned_class(target, {})
                return _Instance(canonical(returned), call, loop_depth=self.loop_depth) if returned else None
            holder = self._expr(receiver, env)
            if method in RETURNS_SELF and isinstance(holder, _Instance):
                return holder
            if method in ("append", "extend", "insert") and call.args:
                value = self._expr(call.args[-1].value, env)
                if isinstance(holder, _Seq):
                    if method == "extend":
                        self._extend(holder, value)
                    else:
                        self._grow(holder)
                        holder.items.append(value)
                elif isinstance(holder, _Instance) and holder.members is not None:
                    label = f"a member of {holder.bound[0][0] if holder.bound else 'a container'}"
                    self._note_binding(value, label, call.args[-1].value)
                    holder.members = None
                return None
        if isinstance(func, cst.Attribute) and func.attr.value == "__init__" and isinstance(func.value, cst.Call) \
                and isinstance(func.value.func, cst.Name) and func.value.func.value == "super" \
                and "torch.nn.Sequential" in self.cls.bases:
            args = [self._expr(arg.value, env) for arg in call.args]
            for name, member, node in self._members(call, args) or ():
                self._note_binding(member, f"position {name} of this nn.Sequential", node)
            return None
        if isinstance(func, cst.Name) and func.value == "setattr" and len(call.args) >= 3 \
                and _is_self(call.args[0].value):
            name = _literal_str(call.args[1].value)
            value = self._expr(call.args[2].value, env)
            if name is None:
                self.cls.summary.dynamic_attrs = True
            else:
                self._set_attr(name, value, call.args[2].value)
            return None
        local = env.get(func.value) if isinstance(func, cst.Name) else None
        qname = local[1] if isinstance(local, tuple) else None
        if qname is None and not (isinstance(func, cst.Name) and func.value in env):
            qname = self.model.qname(func)
        qname = canonical(qname) if qname else None
        args = [self._expr(arg.value, env) for arg in call.args]
        if qname is None:
            return _Instance(None, call, loop_depth=self.loop_depth)
        if qname == api.PARAMETER:
            return _Instance(qname, call, PARAM)
        if qname == "torch.nn.Buffer":
            return _Instance(qname, call, BUFFER)
        returned = self.model.function_returns.get(qname)
        if returned:
            return _Instance(canonical(returned), call, loop_depth=self.loop_depth)
        members = None
        if api.CONTAINERS.get(qname) == "dict" and len(call.args) == 1 and isinstance(call.args[0].value, cst.Dict):
            members = self._dict_members(call.args[0].value, env)
        if api.CONTAINERS.get(qname) in ("sequential", "list"):
            members = self._members(call, args)
            short = qname.rsplit(".", 1)[-1]
            for name, member, node in members or ():
                self._note_binding(member, f"position {name} of nn.{short}", node)
            if members is not None:
                members = [(name, member) for name, member, _ in members]
        element = args[0].element if len(args) == 1 and isinstance(args[0], _Seq) else None
        return _Instance(qname, call, members=members, loop_depth=self.loop_depth, element=element)

    def _dict_members(self, literal: cst.Dict, env) -> Optional[list]:
        """(key, value) of nn.ModuleDict({"act": nn.ReLU(), ...}) with literal string keys."""
        members = []
        for element in literal.elements:
            key = _literal_str(element.key) if isinstance(element, cst.DictElement) else None
            if key is None:
                return None
            value = self._expr(element.value, env)
            self._note_binding(value, f"key {key!r} of nn.ModuleDict", element.value)
            members.append((key, value))
        return members

    def _members(self, call: cst.Call, args) -> Optional[list]:
        """(name, value, node) of the literal members of nn.Sequential(a, b),
        nn.Sequential(*layers) or nn.ModuleList([a, b]); None when not literal."""
        if len(call.args) == 1 and (call.args[0].star == "*" or isinstance(args[0], _Seq)):
            seq, inner = args[0], call.args[0].value
            if not isinstance(seq, _Seq) or not seq.known:
                return None
            nodes = ([e.value for e in inner.elements] if isinstance(inner, (cst.List, cst.Tuple))
                     and len(inner.elements) == len(seq.items) else [call] * len(seq.items))
            return [(str(i), m, n) for i, (m, n) in enumerate(zip(seq.items, nodes))]
        if any(arg.star for arg in call.args):
            return None
        if len(call.args) == 1 and isinstance(args[0], _Instance) and args[0].cls in (
                "collections.OrderedDict", "builtins.dict"):
            return None  # nn.Sequential(OrderedDict(...)): named members, not positions
        return [(str(i), m, arg.value) for i, (m, arg) in enumerate(zip(args, call.args))]


def exclusive(a: tuple, b: tuple) -> bool:
    """Whether two paths of if-arms ((if id, arm), ...) can never both run."""
    arms = dict(a)
    return any(key in arms and arms[key] != arm for key, arm in b)


def _is_none(expr) -> bool:
    return isinstance(expr, cst.Name) and expr.value == "None"


def _is_self(expr) -> bool:
    return isinstance(expr, cst.Name) and expr.value == "self"


def _literal_str(expr) -> Optional[str]:
    if isinstance(expr, cst.SimpleString):
        value = expr.evaluated_value
        return value if isinstance(value, str) else None
    return None
