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
    others: tuple = ()  # other classes bound to it on other arms (`if sine: ... else: ...`)


@dataclass
class ClassSummary:
    """A class as other files see it."""

    qname: str
    bases: tuple[str, ...]
    attrs: dict[str, AttrSummary]
    methods: frozenset[str]
    dynamic_attrs: bool = False  # attributes bound under computed names (setattr, add_module)
    float_island: bool = False  # `self.qconfig = None`: convert() leaves the class float
    float_attrs: frozenset[str] = frozenset()  # attribute paths given `qconfig = None`
    stubs: frozenset[str] = frozenset()  # QuantStub/DeQuantStub attributes its own __init__ builds
    defined: frozenset[str] = frozenset()  # every name an instance has: methods, class and self attributes
    getattr_hook: bool = False  # defines __getattr__ or __getattribute__
    forward: Optional["Flow"] = None  # its own forward method, summarized
    members: Optional[tuple] = None  # an nn.Sequential subclass's members from super().__init__(...): ((name, cls), ...)
    init_params: tuple = ()  # `__init__`'s parameters without self: ((name, class its default names or None), ...)


@dataclass
class FileSummary:
    module_name: str
    classes: dict[str, ClassSummary]
    function_returns: dict[str, str]  # function qname -> qualified class it returns
    exports: dict[str, str]  # module-level import bindings, for re-exports
    fuse_wrappers: dict[str, tuple[int, int]] = field(default_factory=dict)  # function qname -> (model, groups) parameter indices
    functions: dict[str, "Flow"] = field(default_factory=dict)  # module-level functions, summarized
    scripts: Optional[object] = None  # pipeline.ScriptFacts: fuse methods, classes that set a qconfig
    wrapped: frozenset[str] = frozenset()  # classes built inside QuantWrapper(...): QuantWrapper(Net())
    constructions: tuple = ()  # every `Cls(...)` and `super().__init__(...)` call: `Construction`s
    escaped: frozenset[str] = frozenset()  # qualified names used other than as a callee or base (`block=Bottleneck`)


@dataclass(frozen=True)
class Construction:
    """A call building a class (or a subclass's `super().__init__(...)`): the class each
    argument names (None: a value that is not a class name)."""

    cls: str
    args: tuple  # Optional[str] per positional argument
    keywords: tuple  # (name, Optional[str])
    star: bool  # *args or **kwargs: any parameter may be given


# ----- flows: how a method's values derive from its parameters and its calls ----------------
# An origin is a small tuple the project index evaluates for each caller:
#   ("param", name)            the value a parameter is given
#   ("site", k)                what the k-th call site of the flow returns
#   ("item", origin, i)        item i of a sequence (i None: any element)
#   ("join", (origin, ...))    a value computed from several (activations dominate)
#   ("seq", (origin, ...))     a tuple or list of values
#   ("const", key)             a value known without the caller (`values.Value.key()`)


@dataclass(frozen=True)
class Site:
    """A call whose callee is resolved by the index:
    ("attr", "layers.0")   the submodule at an attribute path of self;
    ("member", "layers")   a member of the container at that path, reached by iteration;
    ("class", qname)       a module of a known class (no path);
    ("method", name)       a method of self not defined in this file;
    ("function", qname)    a function defined in another file of the run."""

    callee: tuple
    args: tuple  # origins of the positional arguments
    keywords: tuple  # (name, origin) of the keyword arguments


@dataclass(frozen=True)
class Flow:
    """A method or function summarized for its callers."""

    params: tuple[str, ...]  # parameter names, without self
    kinds: tuple[str, ...]  # each: "tensor" (may hold one), "annotated" (annotated as no tensor), "literal" (a literal default)
    defaults: tuple  # each: the key of its default value, or None
    sites: tuple[Site, ...]
    returns: tuple  # origin of the returned value
    reads: frozenset[str] = frozenset()  # self attributes read on the path
    nested_reads: frozenset[str] = frozenset()  # attributes read on submodules (self.block.quant)
    calls: frozenset[str] = frozenset()  # self methods it calls that this file does not define
    dynamic: bool = False  # it reads self attributes by computed name (getattr(self, name))


# ----- container members ------------------------------------------------------------------
def member_class(members: Optional[tuple], element: Optional[str], name: str) -> Optional[str]:
    """The class of a container's member by name or position ("act", "0", "-1"): from its
    literal members ((name, cls), ...), else the class every member has."""
    if members is not None:
        found = dict(members).get(name)
        if found is None and name.lstrip("-").isdigit() and -len(members) <= int(name) < len(members):
            found = members[int(name)][1]
        return found
    return element


def common_class(members: Optional[tuple], element: Optional[str]) -> Optional[str]:
    """The class every member of a container has (None when they differ or are unknown)."""
    if members:
        classes = {cls for _, cls in members}
        return classes.pop() if len(classes) == 1 else None
    return element
