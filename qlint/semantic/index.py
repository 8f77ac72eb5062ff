"""The project index: every class and module-building function of a run, by qualified
name, and the queries that follow bases across files (is this an nn.Module, what are its
attributes, which torch class does it derive from)."""
from __future__ import annotations

from typing import Optional

from qlint.semantic import torch_api as api
from qlint.semantic.names import canonical
from qlint.semantic.summaries import (BUFFER, CONTAINER, MODULE, PARAM, UNKNOWN, VALUE, AttrSummary,
                                      ClassSummary, FileSummary)


class ProjectIndex:
    """Every class and module-building function of a run, by qualified name."""

    def __init__(self, summaries: list[FileSummary]):
        self.classes: dict[str, ClassSummary] = {}
        self.function_returns: dict[str, str] = {}
        self.exports: dict[str, str] = {}
        self.fuse_wrappers: dict[str, tuple[int, int]] = {}
        for summary in summaries:
            self.classes.update(summary.classes)
            self.function_returns.update(summary.function_returns)
            self.fuse_wrappers.update(summary.fuse_wrappers)
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
