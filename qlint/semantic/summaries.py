"""What one file tells the others: pickleable summaries of its classes and functions.

Files are summarized in parallel (phase one) and the summaries merged into one
`ProjectIndex` (phase two); nothing here refers to a syntax tree.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

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
    """A class as other files see it."""

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
    fuse_wrappers: dict[str, tuple[int, int]] = field(default_factory=dict)  # function qname -> (model, groups) parameter indices
