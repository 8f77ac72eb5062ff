"""The semantic model of a file, built once and queried by every rule.

Two phases, so that files can be linted in parallel and still see each other's classes:

1. `FileModel(path, source, module)` parses nothing itself: given a parsed module it
   resolves the file's names (`scope.py`), runs the `__init__` pass of each class
   (`init.py`) and summarizes what other files need in a pickleable `FileSummary`.
2. A `ProjectIndex` merges the summaries of every file of the run; rules then ask the file
   model which classes are nn.Modules (through bases in any file), what their attributes
   are (through inherited `__init__`s) and what their forward path does (`forward.py`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import libcst as cst

from qlint.semantic.forward import Trace, trace_forward
from qlint.semantic.fusion import find_fuse_wrappers
from qlint.semantic.index import ProjectIndex
from qlint.semantic.init import InitPass
from qlint.semantic.scope import ClassModel, FileScope
from qlint.semantic.summaries import FileSummary


class FileModel(FileScope):
    """Everything rules may ask about one file."""

    def __init__(self, path: Path, source: str, module: cst.Module):
        super().__init__(path, source, module)
        self._traces: dict[str, Trace] = {}
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
        self._traces = {}

    def summary(self) -> FileSummary:
        return FileSummary(self.module_name, {c.qname: c.summary for c in self.classes.values()},
                           self.function_returns, dict(self.imported), find_fuse_wrappers(self))

    def trace(self, cls: ClassModel) -> Trace:
        """The forward-path trace of a module class (computed once)."""
        if cls.qname not in self._traces:
            self._traces[cls.qname] = trace_forward(self, self.index, cls)
        return self._traces[cls.qname]
