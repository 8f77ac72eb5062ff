"""The semantic model of a file, built once and queried by every rule.

Two phases, so that files can be linted in parallel and still see each other's classes:

1. `FileModel(path, source, module)` parses nothing itself: given a parsed module it
   resolves the file's names (`scope.py`), runs the `__init__` pass of each class
   (`init.py`), and `summary()` summarizes what other files need in a pickleable
   `FileSummary`, with each forward and function as a flow (`forward.summarize`).
2. A `ProjectIndex` merges the summaries of every file of the run; rules then ask the file
   model which classes are nn.Modules (through bases in any file), what their attributes
   are (through inherited `__init__`s) and what their forward paths do in each context the
   run gives them (`runs()`, `trace()`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import libcst as cst

from qlint.semantic.forward import Trace, summarize, trace_forward
from qlint.semantic.fusion import find_fuse_wrappers
from qlint.semantic.index import Context, ProjectIndex
from qlint.semantic.init import InitPass
from qlint.semantic.interpret import annotated_value, default_holds_tensor
from qlint.semantic.pipeline import script_facts
from qlint.semantic.scope import ClassModel, FileScope
from qlint.semantic.walk import iter_nodes
from qlint.semantic import torch_api as api
from qlint.semantic.summaries import FileSummary
from qlint.semantic.values import PY


class FileModel(FileScope):
    """Everything rules may ask about one file."""

    def __init__(self, path: Path, source: str, module: cst.Module):
        super().__init__(path, source, module)
        self._summary_failure: Optional[Exception] = None
        for cls in self.classes.values():
            InitPass(self, cls).run()

    @property
    def index(self) -> Optional[ProjectIndex]:
        return self._index

    @index.setter
    def index(self, index: Optional[ProjectIndex]) -> None:
        """The run's index (phase two): what was derived without it is computed again."""
        self._index = index
        self.cache = {}
        self._runs: Optional[list[Trace]] = None
        self._primary: dict[str, Trace] = {}

    def summary(self) -> FileSummary:
        summary = FileSummary(self.module_name, {c.qname: c.summary for c in self.classes.values()},
                              self.function_returns, dict(self.imported), find_fuse_wrappers(self))
        self.index = ProjectIndex([summary])  # this file alone
        try:
            for cls in self.classes.values():
                if "forward" in cls.methods:
                    cls.summary.forward = summarize(self, self.index, cls, cls.methods["forward"])
            for name, func in self.functions.items():
                if self._may_take_tensors(func):
                    summary.functions[f"{self.module_name}.{name}"] = summarize(self, self.index, None, func)
        except RecursionError:
            raise
        except Exception as exc:  # reported by the rules that need the flows (QL000), never a crash
            self._summary_failure = exc
        summary.scripts = script_facts(self, self.index)
        summary.wrapped = self._wrapped()
        summary.constructions, summary.escaped = self.constructions()
        self.index = None
        return summary

    def _wrapped(self) -> frozenset[str]:
        """Classes whose instances are built inside QuantWrapper(...): their forward is given
        quantized tensors."""
        if "QuantWrapper" not in self.source:
            return frozenset()
        found = set()
        for node in iter_nodes(self.module):
            if isinstance(node, cst.Call) and node.args and isinstance(node.args[0].value, cst.Call) \
                    and self.qname(node.func) == api.QUANT_WRAPPER:
                wrapped = self.qname(node.args[0].value.func)
                if wrapped:
                    found.add(wrapped)
        return frozenset(found)

    def _may_take_tensors(self, func: cst.FunctionDef) -> bool:
        """Whether a function can be given a tensor (by its parameters' annotations and
        defaults): only those are summarized for callers in other files."""
        params = func.params
        return isinstance(params.star_arg, cst.Param) or any(
            annotated_value(self, p.annotation.annotation) is not PY if p.annotation is not None
            else default_holds_tensor(p.default) for p in (*params.posonly_params, *params.params))

    def built_classes(self, cls: ClassModel, method: cst.FunctionDef, call: cst.Call) -> tuple[str, ...]:
        """The classes a call builds: its callee's class, or for a call of an `__init__` parameter
        (`act_layer(inplace=True)` with `act_layer=nn.ReLU`) the classes the constructions of
        the run give it; () when not known."""
        qname = self.qname(call.func)
        if qname is not None:
            return (qname,)
        if not isinstance(call.func, cst.Name) or method is not cls.methods.get("__init__") \
                or _rebinds(method, call.func.value):
            return ()
        return self.index.init_argument_classes(cls.qname, call.func.value)

    def is_top_level(self, cls: ClassModel) -> bool:
        """A model no class of the run calls: its forward's inputs come from the user."""
        return not any(c.known for c in self.index.contexts(("class", cls.qname)))

    def runs(self) -> list[Trace]:
        """Every traced run of the file: each module class's forward in each of its contexts,
        and the methods and functions that other files call, in the contexts they give."""
        if self._summary_failure is not None:
            raise RuntimeError(f"summarizing the file failed: {type(self._summary_failure).__name__}: "
                               f"{self._summary_failure}")
        if self._runs is None:
            self._runs = []
            for cls in self.module_classes():
                found = self.find_method(cls, "forward")
                if found is not None:
                    for context in self.index.contexts(("class", cls.qname)):
                        self._trace(cls, found[1], context)
                for name, method in cls.methods.items():
                    for context in self._foreign(("method", cls.qname, name)):
                        self._trace(cls, method, context)
            for name, func in self.functions.items():
                for context in self._foreign(("function", f"{self.module_name}.{name}")):
                    self._trace(None, func, context)
        return self._runs

    def trace(self, cls: ClassModel) -> Trace:
        """The forward-path trace of a module class in its first context."""
        self.runs()
        if cls.qname not in self._primary:
            found = self.find_method(cls, "forward")
            self._primary[cls.qname] = trace_forward(self, self.index, cls, found[1]) if found else Trace()
        return self._primary[cls.qname]

    def _trace(self, cls: Optional[ClassModel], func: cst.FunctionDef, context: Context) -> None:
        trace = trace_forward(self, self.index, cls, func, context)
        trace.cls = cls
        self._runs.append(trace)
        if cls is not None and func.name.value == "forward" and cls.qname not in self._primary:
            self._primary[cls.qname] = trace

    def _foreign(self, target: tuple) -> list[Context]:
        """The contexts other files' calls give a method or function of this file (calls in this
        file run it inline)."""
        prefix = self.module_name + "."
        return [c for c in self.index.contexts(target)
                if c.known and c.caller is not None and not c.caller.startswith(prefix)]



def _rebinds(func: cst.FunctionDef, name: str) -> bool:
    """Whether the function's body binds `name` (`act_layer = get_act_layer(act_layer)`)."""
    for node in iter_nodes(func.body):
        if isinstance(node, cst.Assign):
            targets = [t.target for t in node.targets]
        elif isinstance(node, (cst.AnnAssign, cst.AugAssign, cst.For, cst.NamedExpr)):
            targets = [node.target]
        elif isinstance(node, cst.WithItem) and node.asname is not None:
            targets = [node.asname.name]
        elif isinstance(node, (cst.FunctionDef, cst.ClassDef)):
            targets = [node.name]
        elif isinstance(node, cst.ImportAlias):
            targets = [node.asname.name if node.asname is not None else node.name]
        else:
            continue
        if any(bound == name for target in targets for bound in _bound_names(target)):
            return True
    return False


def _bound_names(target):
    """The plain names an assignment target binds (`a, *b = ...`: a and b)."""
    if isinstance(target, cst.Name):
        yield target.value
    elif isinstance(target, (cst.Tuple, cst.List)):
        for element in target.elements:
            yield from _bound_names(element.value)
    elif isinstance(target, cst.StarredElement):
        yield from _bound_names(target.value)
