"""A file's names: its imports, module-level values, functions and classes, and what a
dotted expression written in it means. The interpreters read a file through its scope."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Optional

import libcst as cst

from qlint.semantic import ops
from qlint.semantic.index import ProjectIndex
from qlint.semantic.names import canonical, dotted, import_bindings, module_name_for
from qlint.semantic.summaries import ClassSummary, Construction
from qlint.semantic.walk import iter_nodes


@dataclass
class Alias:
    """A module instance bound under a second name or container position (QL402)."""

    node: cst.CSTNode
    name: str  # this binding ("self.relu2", "position 3 of nn.Sequential")
    first: str  # the first binding of the same instance
    cls: Optional[str]
    anchor: Optional[cst.CSTNode] = None  # the method it is in (for positions)


@dataclass
class ClassModel:
    node: cst.ClassDef
    qname: str
    bases: tuple[str, ...]
    methods: dict[str, cst.FunctionDef]
    summary: ClassSummary
    aliases: list[Alias] = field(default_factory=list)
    stub_nodes: dict = field(default_factory=dict)  # stub attribute -> the call building it


class FileScope:
    """The names of one file, resolved through its own statements only."""

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
        self.integer_parameters: dict[int, frozenset] = {}  # id(function) -> see forward.integer_parameters
        self.index: Optional[ProjectIndex] = None
        self.cache: dict = {}  # derived facts rules share (fuse calls), computed on first use
        self._collect(module.body)
        self.by_qname = {cls.qname: cls for cls in self.classes.values()}
        for name, func in self.functions.items():
            returned = self.returned_class(func)
            if returned:
                self.function_returns[f"{self.module_name}.{name}"] = returned

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
            if head in ops.BUILTINS:
                target = "builtins." + head
            else:
                return None
        return f"{target}.{rest}" if rest else target

    def qname(self, expr: cst.BaseExpression, local: Optional[dict] = None) -> Optional[str]:
        raw = self.raw_qname(expr, local)
        return canonical(raw) if raw else None

    def function(self, qname: Optional[str]) -> Optional[cst.FunctionDef]:
        """The module-level function of this file with this qualified name."""
        if qname is None or not qname.startswith(self.module_name + "."):
            return None
        return self.functions.get(qname[len(self.module_name) + 1:])

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

    def returned_class(self, func: cst.FunctionDef) -> Optional[str]:
        """The class a module-building function returns: its annotation or a returned call."""
        if func.returns is not None:
            annotated = self.qname(func.returns.annotation)
            if annotated and annotated.rsplit(".", 1)[-1][:1].isupper():
                return annotated
        for node in iter_nodes(func.body, into_functions=False):
            if isinstance(node, cst.Return) and isinstance(node.value, cst.Call):
                called = self.qname(node.value.func)
                if called and called.rsplit(".", 1)[-1][:1].isupper():
                    return called
        return None

    def constructions(self) -> tuple[tuple[Construction, ...], frozenset[str]]:
        """Every call that builds a class of another module or this one (`Block(8, act_layer=nn.ReLU)`,
        a subclass's `super().__init__(...)`, for each of its bases), and the qualified names the
        file uses other than as a callee, a base or an import (`block=Bottleneck`: built elsewhere)."""
        found, used, skipped = [], set(), set()
        for node in iter_nodes(self.module):
            if id(node) in skipped:
                continue
            if isinstance(node, (cst.Import, cst.ImportFrom)):
                skipped.update(id(n) for n in iter_nodes(node))
            elif isinstance(node, cst.ClassDef):
                skipped.add(id(node.name))
                skipped.update(id(n) for arg in node.bases for n in iter_nodes(arg.value))
                inits = [m for m in node.body.body if isinstance(m, cst.FunctionDef) and m.name.value == "__init__"] \
                    if isinstance(node.body, cst.IndentedBlock) else []
                for inner in (n for init in inits for n in iter_nodes(init.body)):
                    if isinstance(inner, cst.Call) and is_super_init(inner.func):
                        found.extend(self._construction(base, inner) for base in
                                     (self.qname(arg.value) for arg in node.bases if arg.keyword is None) if base)
            elif isinstance(node, (cst.FunctionDef, cst.Param)):
                skipped.add(id(node.name))
            elif isinstance(node, cst.Arg) and node.keyword is not None:
                skipped.add(id(node.keyword))
            elif isinstance(node, cst.Call):
                qname = self.qname(node.func)
                if qname is not None and not qname.startswith(_OUTSIDE_THE_RUN):
                    found.append(self._construction(qname, node))
                skipped.update(_dotted_nodes(node.func))
            elif isinstance(node, cst.Attribute):
                skipped.add(id(node.attr))
                qname = self.qname(node)
                if qname is not None:
                    used.add(qname)
                    skipped.update(_dotted_nodes(node))
            elif isinstance(node, cst.Name):
                qname = self.qname(node)
                if qname is not None:
                    used.add(qname)
        return tuple(found), frozenset(q for q in used if not q.startswith(_OUTSIDE_THE_RUN))

    def _construction(self, qname: str, call: cst.Call) -> Construction:
        def named(arg):
            return self.qname(arg.value) if isinstance(arg.value, (cst.Name, cst.Attribute)) else None
        return Construction(qname, tuple(named(a) for a in call.args if a.keyword is None and not a.star),
                            tuple((a.keyword.value, named(a)) for a in call.args if a.keyword is not None),
                            any(a.star for a in call.args))

    # ----- classes ----------------------------------------------------------------------
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
            queue.extend(c for c in (self.by_qname.get(self._resolve(b)) for b in current.bases) if c)
        return None

    def _resolve(self, qname: str) -> str:
        return self.index.resolve(qname) if self.index is not None else qname


# Namespaces whose classes are never defined in a run (their calls and names are not recorded).
_OUTSIDE_THE_RUN = ("torch.", "builtins.")


def _dotted_nodes(expr) -> list[int]:
    """The ids of the nodes of a dotted name (`nn.ReLU`: the Attribute, `nn`, `ReLU`)."""
    found = []
    while isinstance(expr, cst.Attribute):
        found += [id(expr), id(expr.attr)]
        expr = expr.value
    return found + [id(expr)]


def is_super_init(func) -> bool:
    return (isinstance(func, cst.Attribute) and func.attr.value == "__init__" and isinstance(func.value, cst.Call)
            and isinstance(func.value.func, cst.Name) and func.value.func.value == "super")
