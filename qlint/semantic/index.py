"""The project index: every class and function of a run, by qualified name, and the
queries that follow bases and calls across files.

Besides what a class is (an nn.Module? which attributes, through inherited `__init__`s?
which torch class is it?), the index answers what a call gives and who calls whom: each
class's forward and each module-level function is summarized as a `Flow` (its call sites
and returned value, as origins over its parameters). From them the index derives

- what a module call returns for given arguments (`module_result`): a QuantStub makes
  float quantized, a DeQuantStub makes quantized float, a module convert() swaps takes and
  returns quantized values, a module given `qconfig = None` returns float, a user class
  returns what its forward computes;
- the contexts a class's forward (or a method or function called from another file) runs
  in (`contexts`): one per call site in the run, evaluated in each of the caller's own
  contexts, beside a float-entry context for a class that quantizes its own inputs.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from qlint.semantic import torch_api as api
from qlint.semantic.names import canonical
from qlint.semantic.summaries import (BUFFER, CONTAINER, MODULE, PARAM, UNKNOWN, VALUE, AttrSummary,
                                      ClassSummary, FileSummary, Flow, common_class, member_class)
from qlint.semantic.values import (ACT, NONE, PY, INDEX, UNKNOWN as UNKNOWN_VALUE, FLOAT, QUANTIZED, Module, Py,
                                   Quant, Seq, Tensor, Unknown, Value, act, activation_state, element_of_sequence, from_key, join, unknown_call)

# Problems at a module call, found when the states of its inputs are known.
FLOAT_INTO_QUANTIZED = "float-into-quantized"
QUANTIZED_INTO_FLOAT = "quantized-into-float"
QUANTIZE_TWICE = "quantize-twice"

MAX_CONTEXTS = 8  # per class, method or function; more are not told apart
# Bases that never make a class an nn.Module (mixins of the standard library, torch's own non-module classes).
_NOT_MODULE_BASES = ("builtins.", "typing.", "abc.", "collections.", "enum.", "dataclasses.", "torch.")


@dataclass(frozen=True)
class Context:
    """What a forward path (or a method or function) is given by one caller.

    `args`/`keywords` hold value keys (`Value.key()`); none of them for the default context
    (no known caller: parameters by their annotations), the float-entry context (a class
    that quantizes its own inputs: every tensor parameter is a float activation) and the
    quantized-entry context (a class wrapped in QuantWrapper: every one is quantized)."""

    receiver: Optional[str]  # the class whose attributes `self` has
    args: tuple = ()
    keywords: tuple = ()
    island: bool = False  # runs under `qconfig = None`: nothing in it is converted
    float_entry: bool = False
    quantized_entry: bool = False  # built inside QuantWrapper(...): its inputs are quantized
    float_paths: tuple = ()  # its submodules' paths a caller gave `qconfig = None` ("attn")
    caller: Optional[str] = None  # the calling class or function, for messages
    known: bool = False  # given by a call site

    def bound(self) -> tuple[list[Value], dict[str, Value]]:
        return [from_key(k) for k in self.args], {name: from_key(k) for name, k in self.keywords}


class ProjectIndex:
    """Every class and module-building function of a run, by qualified name."""

    def __init__(self, summaries: list[FileSummary]):
        self.classes: dict[str, ClassSummary] = {}
        self.function_returns: dict[str, str] = {}
        self.exports: dict[str, str] = {}
        self.fuse_wrappers: dict[str, tuple[int, int]] = {}
        self.functions: dict[str, Flow] = {}
        self.method_effects: dict = {}  # (class, method) -> pipeline.MethodEffect
        self.qconfig_classes: set[str] = set()  # classes whose code mentions a qconfig
        self.wrapped: set[str] = set()  # classes built inside QuantWrapper(...)
        self.constructions: dict[str, list] = {}  # class -> the Constructions that build it
        self.escaped: set[str] = set()  # qualified names used as values (`block=Bottleneck`)
        for summary in summaries:
            self.wrapped |= summary.wrapped
            self.classes.update(summary.classes)
            self.function_returns.update(summary.function_returns)
            self.fuse_wrappers.update(summary.fuse_wrappers)
            self.functions.update(summary.functions)
            if summary.scripts is not None:
                self.method_effects.update(summary.scripts.methods)
                self.qconfig_classes |= summary.scripts.qconfig_classes
            for name, target in summary.exports.items():
                self.exports[f"{summary.module_name}.{name}"] = target
        for summary in summaries:  # by the classes' own names, once every re-export is known
            self.escaped |= {self.resolve(name) for name in summary.escaped}
            for construction in summary.constructions:
                self.constructions.setdefault(self.resolve(construction.cls), []).append(construction)
        self._module_memo: dict[str, bool] = {}
        self._attrs_memo: dict[str, dict[str, AttrSummary]] = {}
        self._torch_base_memo: dict[Optional[str], Optional[str]] = {}
        self._flow_memo: dict = {}
        self._contexts_memo: dict = {}
        self._callers: Optional[dict] = None
        self._subclasses: Optional[dict] = None
        self._nested: Optional[frozenset] = None

    def resolve(self, qname: Optional[str]) -> Optional[str]:
        """Follow re-exports (`pkg.Block` imported in pkg/__init__.py from pkg.blocks)."""
        for _ in range(8):
            if qname is None or qname in self.classes or qname in self.functions or qname not in self.exports:
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
            result = any(self.is_module_class(base) for base in summary.bases) or self._module_like(qname)
        self._module_memo[qname] = result
        return result

    def _module_like(self, qname: str) -> bool:
        """A class built on a base the run cannot resolve (transformers' PreTrainedModel,
        GradientCheckpointingLayer) that defines forward and builds nn modules in __init__."""
        hierarchy = self.mro(qname)
        unresolved = any(self.resolve(b) not in self.classes and not b.startswith(_NOT_MODULE_BASES)
                         for s in hierarchy for b in s.bases)
        if not unresolved or not any("forward" in s.methods for s in hierarchy):
            return False
        return any(a.kind in (MODULE, CONTAINER) and a.cls is not None and self.is_module_class(a.cls)
                   for a in self.attrs(qname).values())

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

    def is_sequential(self, qname: Optional[str]) -> bool:
        return api.CONTAINERS.get(self.torch_base(qname)) == "sequential"

    def sequential_members(self, qname: str) -> Optional[tuple]:
        """The members ((name, cls), ...) an nn.Sequential subclass gives `super().__init__(...)`
        (None when they are not literal)."""
        return next((s.members for s in self.mro(qname) if s.members is not None), None)

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
        if resolved in api.STATELESS_MODULES or resolved in api.WEIGHT_ONLY_MODULES:
            return False
        summary = self.classes.get(resolved)
        if summary is None:
            return True if api.is_torch_module_class(resolved) else None
        torch_cls = self.torch_base(resolved)
        if torch_cls in api.STATELESS_MODULES or torch_cls in api.WEIGHT_ONLY_MODULES:
            return False
        for attr in self.attrs(resolved).values():
            if attr.kind in (PARAM, CONTAINER):
                return True
            if attr.kind == MODULE and self.is_stateful(attr.cls) is not False:
                return True
        return torch_cls is not None and torch_cls not in api.MODULE_BASES

    # ----- hierarchy ----------------------------------------------------------------------
    def mro(self, qname: Optional[str]) -> list[ClassSummary]:
        """The classes of the run a class is made of, itself first (bases breadth first)."""
        found, seen, queue = [], set(), [self.resolve(qname)]
        while queue:
            current = queue.pop(0)
            if current is None or current in seen:
                continue
            seen.add(current)
            summary = self.classes.get(current)
            if summary is not None:
                found.append(summary)
                queue.extend(self.resolve(b) for b in summary.bases)
        return found

    def subclasses(self, qname: Optional[str]) -> list[str]:
        """The classes of the run that derive from `qname`, directly or not."""
        if self._subclasses is None:
            self._subclasses = _subclass_map(self)
        found, queue = [], list(self._subclasses.get(self.resolve(qname), ()))
        while queue:
            current = queue.pop(0)
            if current not in found:
                found.append(current)
                queue.extend(self._subclasses.get(current, ()))
        return found

    def init_argument_classes(self, qname: str, name: str) -> tuple[str, ...]:
        """The classes `__init__`'s parameter `name` may be given, over every construction of the
        class in the run (the default where one leaves it out); () when one passes something else,
        the class is used as a value (built where the run cannot see) or the default names none."""
        summary = self.summary(qname)
        params = [p for p, _ in summary.init_params] if summary is not None else []
        if name not in params:
            return ()
        qname, position, default = summary.qname, params.index(name), summary.init_params[params.index(name)][1]
        if any(used == qname or used.startswith(qname + ".") for used in self.escaped):
            return ()
        found = []
        for construction in self._constructions_of(qname):
            if construction.star:
                return ()
            keywords = dict(construction.keywords)
            given = construction.args[position] if position < len(construction.args) else keywords.get(name, default)
            if given is None:
                return ()
            found.append(given)
        return tuple(dict.fromkeys(found or ([default] if default else [])))

    def _constructions_of(self, qname: str) -> list:
        """The calls that run the class's `__init__`: its own constructions and those of its
        subclasses that inherit that `__init__`."""
        found = list(self.constructions.get(qname, ()))
        for subclass in self.subclasses(qname):
            between = []
            for summary in self.mro(subclass):
                if summary.qname == qname:
                    break
                between.append(summary)
            if not any("__init__" in s.methods for s in between):
                found.extend(self.constructions.get(subclass, ()))
        return found

    def nested_reads(self) -> frozenset[str]:
        """Attribute names any forward of the run reads on a submodule (self.block.quant)."""
        if self._nested is None:
            self._nested = frozenset(name for s in self.classes.values() if s.forward is not None
                                     for name in s.forward.nested_reads)
        return self._nested

    def hierarchy(self, qname: str) -> "Hierarchy":
        return Hierarchy(self, self.resolve(qname))

    def forward_flow(self, qname: Optional[str]) -> Optional[Flow]:
        """The summarized forward a class runs (its own or a base's)."""
        for summary in self.mro(qname):
            if "forward" in summary.methods:
                return summary.forward
        return None

    def method_owner(self, qname: Optional[str], name: str) -> Optional[str]:
        return next((s.qname for s in self.mro(qname) if name in s.methods), None)

    def float_island(self, qname: Optional[str]) -> bool:
        """Whether instances of the class stay float (`self.qconfig = None` in it or a base)."""
        return any(s.float_island for s in self.mro(qname))

    def float_paths(self, qname: Optional[str]) -> tuple[str, ...]:
        """Attribute paths the class (or a base) gives `qconfig = None` ("head", "blocks.*.attn")."""
        return tuple(p for s in self.mro(qname) for p in s.float_attrs)

    def float_attr(self, qname: Optional[str], path: Optional[str], more: tuple = ()) -> bool:
        """Whether the submodule at `path` of the class is given `qconfig = None` (by the class,
        or by `more` paths its context got from a caller)."""
        return path is not None and any(_covers(p, path) for p in (*self.float_paths(qname), *more))

    def attr_at(self, qname: Optional[str], path: str) -> Optional[AttrSummary]:
        """What the submodule at a dotted attribute path of the class is ("layers.0", "block.conv")."""
        info = None
        for part in path.split("."):
            if info is None:
                info = self.attrs(qname).get(part) if qname is not None else None
            elif info.members is not None or info.element is not None:
                member = member_class(info.members, info.element, part)
                info = AttrSummary(MODULE, member) if member is not None else None
            elif info.cls is not None and self.summary(info.cls) is not None:
                info = self.attrs(info.cls).get(part)
            else:
                return None
            if info is None:
                return None
        return info

    # ----- calls ------------------------------------------------------------------------------
    def site_target(self, receiver: Optional[str], callee: tuple) -> Optional[tuple]:
        """What a summarized call calls: ("module", class, float attr, members, element),
        ("method", owner, name) or ("function", qname); None when it cannot be told."""
        kind, name = callee
        if kind in ("attr", "member"):
            info = self.attr_at(receiver, name)
            if info is None:
                return None
            float_attr = self.float_attr(receiver, name)
            if kind == "attr":
                return ("module", info.cls, float_attr, info.members, info.element, info.others)
            return ("module", common_class(info.members, info.element), float_attr, None, None, ())
        if kind == "class":
            return ("module", name, False, None, None, ())
        if kind == "method":
            owner = self.method_owner(receiver, name)
            return ("method", owner, name) if owner is not None else None
        resolved = self.resolve(name)
        return ("function", resolved) if resolved in self.functions else None

    def call_result(self, receiver: Optional[str], target: Optional[tuple], args: list, keywords: dict,
                    island: bool) -> tuple[Value, Optional[str]]:
        """What a call gives, and the boundary problem at it (None when there is none)."""
        if target is None or target[0] == "method":
            return unknown_call([*args, *keywords.values()]), None
        if target[0] == "function":
            flow = self.functions[target[1]]
            return self.run_flow(None, flow, self.bind(flow, args, keywords), island)[1], None
        _, cls, float_attr, members, element, others = target
        value, problem = self.module_result(cls, args, keywords, island, float_attr, members, element)
        for other in others:  # one of several classes, by configuration
            alternative, other_problem = self.module_result(other, args, keywords, island, float_attr)
            value, problem = join(value, alternative), problem or other_problem
        return value, problem

    def module_result(self, cls: Optional[str], args: list, keywords: dict, island: bool = False,
                      float_attr: bool = False, members=None, element=None) -> tuple[Value, Optional[str]]:
        """What calling a module of class `cls` gives, and the boundary problem at the call."""
        state = activation_state([*args, *keywords.values()])
        resolved = self.resolve(cls)
        if resolved is None:
            return ACT, None
        if not island and (float_attr or self.float_island(resolved)):
            problem = QUANTIZED_INTO_FLOAT if state is QUANTIZED else None
            return act(FLOAT), problem
        summary = self.classes.get(resolved)
        if summary is None:
            return self._torch_module_result(resolved, state, args, island, members, element)
        flow = self.forward_flow(resolved)
        if flow is None:
            if self.is_sequential(resolved):
                return self._chain(self.sequential_members(resolved), None, state, island, args)
            return ACT if state is None else act(state), None
        return self.run_flow(resolved, flow, self.bind(flow, args, keywords), island)[1], None

    def _torch_module_result(self, cls: str, state: Optional[Quant], args: list, island: bool,
                             members, element) -> tuple[Value, Optional[str]]:
        if island:  # nothing is converted: every module passes its input's state on
            if state is None and any(isinstance(a, Tensor) for a in args):
                return act(FLOAT), None  # computed in float from indices or buffers (an embedding lookup)
            return ACT if state is None else act(state), None
        if cls == api.QUANT_STUB:
            return act(QUANTIZED), (QUANTIZE_TWICE if state is QUANTIZED else None)
        if cls in (api.DEQUANT_STUB, api.QUANT_WRAPPER):
            return act(FLOAT), None
        if cls in api.SWAPPED_MODULES:
            if state is FLOAT:
                return ACT, FLOAT_INTO_QUANTIZED
            return (act(QUANTIZED) if state is QUANTIZED else ACT), None
        if api.CONTAINERS.get(cls) == "sequential":
            return self._chain(members, element, state, island, args)
        return ACT if state is None else act(state), None

    def _chain(self, members, element, state, island, args) -> tuple[Value, Optional[str]]:
        """An nn.Sequential: each member applied to the previous one's output."""
        classes = [cls for _, cls in members] if members is not None else ([element] if element else None)
        if classes is None:  # members unknown: a quantized input stays quantized
            return (act(QUANTIZED) if state is QUANTIZED else ACT), None
        value, first_problem = (args[0] if args else ACT), None
        for cls in classes:
            value, problem = self.module_result(cls, [value], {}, island)
            first_problem = first_problem or problem
        return value, first_problem

    def bind(self, flow: Flow, args: list, keywords: dict) -> dict[str, Value]:
        """A flow's parameters given a call's arguments (see `Flow.kinds`)."""
        env = {}
        for i, name in enumerate(flow.params):
            kind = flow.kinds[i]
            if i < len(args):
                value = args[i]
            elif name in keywords:
                value = keywords[name]
            elif flow.defaults[i] is not None:
                value = from_key(flow.defaults[i])
            else:
                value = UNKNOWN_VALUE
            if isinstance(value, Unknown):
                value = _DECLARED[kind]
            elif isinstance(value, Tensor) and kind in ("annotated", "index"):
                value = _DECLARED[kind]  # `n: int`, `ids: torch.LongTensor`: whatever is passed
            env[name] = value
        return env

    def entry_env(self, flow: Flow, context: Context) -> dict[str, Value]:
        """A flow's parameters in a context (see `Context`)."""
        if context.known:
            env = self.bind(flow, *context.bound())
        else:
            entry = act(FLOAT) if context.float_entry or context.island else (
                act(QUANTIZED) if context.quantized_entry else ACT)
            env = {name: entry if kind == "tensor" else _DECLARED[kind] for name, kind in zip(flow.params, flow.kinds)}
        if context.island:
            env = {name: (act(FLOAT) if v.is_act() and isinstance(v, Tensor) else v) for name, v in env.items()}
        return env

    def run_flow(self, receiver: Optional[str], flow: Flow, env: dict, island: bool) -> tuple[list, Value]:
        """The values a flow's call sites give, and what it returns, for parameters `env`."""
        key = (receiver, id(flow), tuple(sorted((name, v.key()) for name, v in env.items())), island)
        memo = self._flow_memo.get(key)
        if memo is not None:
            return memo
        self._flow_memo[key] = ([UNKNOWN_VALUE] * len(flow.sites), ACT)  # recursion: unknown
        sites: list[Value] = []
        for site in flow.sites:
            args = [self._evaluate(o, env, sites) for o in site.args]
            keywords = {name: self._evaluate(o, env, sites) for name, o in site.keywords}
            sites.append(self.call_result(receiver, self.site_target(receiver, site.callee), args, keywords, island)[0])
        result = (sites, self._evaluate(flow.returns, env, sites))
        self._flow_memo[key] = result
        return result

    def _evaluate(self, origin: tuple, env: dict, sites: list) -> Value:
        kind = origin[0]
        if kind == "param":
            return env.get(origin[1], UNKNOWN_VALUE)
        if kind == "site":
            return sites[origin[1]] if origin[1] < len(sites) else UNKNOWN_VALUE
        if kind == "item":
            value, index = self._evaluate(origin[1], env, sites), origin[2]
            if isinstance(value, Seq):
                if index is not None and -len(value.items) <= index < len(value.items):
                    return value.items[index]
                return element_of_sequence(value)
            return value if isinstance(value, Tensor) or (isinstance(value, Py) and not value.none) else UNKNOWN_VALUE
        if kind == "join":
            return join(*(self._evaluate(o, env, sites) for o in origin[1]))
        if kind == "seq":
            return Seq([self._evaluate(o, env, sites) for o in origin[1]])
        return from_key(origin[1])

    # ----- contexts -----------------------------------------------------------------------------
    def contexts(self, target: tuple) -> list[Context]:
        """The contexts a forward path runs in: ("class", qname), ("method", owner, name) for a
        method called from a subclass's forward, ("function", qname) for a function called
        from a forward path."""
        memo = self._contexts_memo.get(target)
        if memo is not None:
            return memo
        receiver = target[1] if target[0] == "class" else None
        island = target[0] == "class" and self.float_island(receiver)
        # A class nobody calls runs in the default context; a method or function nobody calls
        # from a forward path does not run (a cycle is cut the same way).
        default = [Context(receiver, island=island)] if target[0] == "class" else []
        self._contexts_memo[target] = default
        found = []
        if target[0] == "class" and self.quantizes_inputs(receiver):
            found.append(Context(receiver, island=island, float_entry=True))
        if target[0] == "class" and receiver in {self.resolve(w) for w in self.wrapped}:
            found.append(Context(receiver, island=island, quantized_entry=True))
        for caller, flow, k, position in self._callers_of().get(target, ()):
            caller_receiver = caller[1] if caller[0] == "class" else None
            site = flow.sites[k]
            path = _callee_path(site.callee, position)
            for context in self.contexts(caller):
                env = self.entry_env(flow, context)
                sites = self.run_flow(caller_receiver, flow, env, context.island)[0]
                args = [self._evaluate(o, env, sites) for o in site.args]
                keywords = [(name, self._evaluate(o, env, sites)) for name, o in site.keywords]
                if position is not None:  # a member of an nn.Sequential: the members before it ran first
                    args, keywords = self._sequence_input(caller_receiver, site, position, args, context.island), []
                patterns = (*self.float_paths(caller_receiver), *context.float_paths)
                site_island = context.island or island or self.float_attr(caller_receiver, path, context.float_paths)
                found.append(Context(receiver if target[0] != "method" else caller_receiver,
                                     tuple(v.key() for v in args), tuple((n, v.key()) for n, v in keywords),
                                     site_island, caller=caller[1], known=True,
                                     float_paths=_below(patterns, path)))
            if len(found) >= MAX_CONTEXTS:
                break
        unique = list(dict.fromkeys(found))[:MAX_CONTEXTS]
        result = unique or default
        self._contexts_memo[target] = result
        return result

    def _sequence_input(self, receiver: Optional[str], site, position: int, args: list, island: bool) -> list:
        """What member `position` of the nn.Sequential a site calls is given."""
        target = self.site_target(receiver, site.callee)
        classes = [cls for _, cls in target[3]] if target[3] is not None else [target[4]] * (position + 1)
        value = args[0] if args else ACT
        for cls in classes[:position]:
            value = self.module_result(cls, [value], {}, island)[0]
        return [value]

    def quantizes_inputs(self, qname: Optional[str]) -> bool:
        """Whether the class's forward applies a QuantStub to (what it computes from) its inputs."""
        flow = self.forward_flow(qname)
        if flow is None:
            return False
        for site in flow.sites:
            target = self.site_target(qname, site.callee)
            if target is not None and target[0] == "module" and self.resolve(target[1]) == api.QUANT_STUB \
                    and any(self._from_inputs(qname, o, flow) for o in site.args):
                return True
        return False

    def _from_inputs(self, qname: str, origin: tuple, flow: Flow, depth: int = 0) -> Optional[bool]:
        """Whether a value is computed from the flow's parameters alone (through ops, methods,
        functions and submodules given `qconfig = None`, which compute in float from what
        they are given): True; from another submodule's output too (a QuantStub after a
        DeQuantStub quantizes no input): False; from neither: None."""
        kind = origin[0]
        if kind == "param":
            return True
        if kind == "const" or depth > 16:
            return None
        if kind == "site":
            site = flow.sites[origin[1]]
            if site.callee[0] not in ("method", "function") and not self._float_site(qname, site.callee):
                return False
            parts = (*site.args, *(o for _, o in site.keywords))
        elif kind == "item":
            parts = (origin[1],)
        else:
            parts = origin[1]
        found = [self._from_inputs(qname, o, flow, depth + 1) for o in parts]
        return False if False in found else (True if True in found else None)

    def _float_site(self, qname: str, callee: tuple) -> bool:
        """Whether a summarized call calls a submodule that stays float (`qconfig = None`)."""
        target = self.site_target(qname, callee)
        return target is not None and target[0] == "module" and (target[2] or self.float_island(target[1]))

    def _callers_of(self) -> dict:
        """target -> [(caller, flow, site index)] over every summarized call of the run."""
        if self._callers is not None:
            return self._callers
        callers: dict = {}
        for qname in self.classes:
            flow = self.forward_flow(qname)
            if flow is not None:
                self._note_callers(callers, ("class", qname), qname, flow)
        for qname, flow in self.functions.items():
            self._note_callers(callers, ("function", qname), None, flow)
        self._callers = callers
        return callers

    def _note_callers(self, callers: dict, caller: tuple, receiver: Optional[str], flow: Flow) -> None:
        for k, site in enumerate(flow.sites):
            target = self.site_target(receiver, site.callee)
            if target is None:
                continue
            if target[0] == "module":
                for cls in (target[1], *target[5]):
                    resolved = self.resolve(cls)
                    if resolved in self.classes:
                        callers.setdefault(("class", resolved), []).append((caller, flow, k, None))
                for position, cls in _sequence_members(target):
                    resolved = self.resolve(cls)
                    if resolved in self.classes:
                        callers.setdefault(("class", resolved), []).append((caller, flow, k, position))
            else:
                callers.setdefault(target, []).append((caller, flow, k, None))


def _sequence_members(target: tuple):
    """(position, class) of the members of an nn.Sequential target (position 0 for all when
    only their common class is known)."""
    _, cls, _, members, element, _ = target
    if members is not None:
        yield from ((i, member) for i, (_, member) in enumerate(members) if member)
    elif element is not None:
        yield 0, element


def _callee_path(callee: tuple, position: Optional[int]) -> Optional[str]:
    """The attribute path a site calls ("blocks.*" for iterated members, "layers.2" for a
    member of an nn.Sequential)."""
    if callee[0] not in ("attr", "member"):
        return None
    path = callee[1] if callee[0] == "attr" else callee[1] + ".*"
    return path if position is None else f"{path}.{position}"


def _covers(pattern: str, path: str) -> bool:
    """Whether `qconfig = None` on `pattern` reaches the module at `path` ("*": any member)."""
    wanted, parts = pattern.split("."), path.split(".")
    return len(wanted) <= len(parts) and all(w == p or "*" in (w, p) for w, p in zip(wanted, parts))


def _below(patterns, path: Optional[str]) -> tuple:
    """The parts of `patterns` below the module at `path`, relative to it."""
    if path is None:
        return ()
    parts, found = path.split("."), []
    for pattern in patterns:
        wanted = pattern.split(".")
        if len(wanted) > len(parts) and all(w == p or "*" in (w, p) for w, p in zip(wanted, parts)):
            found.append(".".join(wanted[len(parts):]))
    return tuple(dict.fromkeys(found))


# A parameter's value when its caller gives none, by `Flow.kinds`.
_DECLARED = {"tensor": ACT, "index": INDEX, "annotated": PY, "literal": PY}


class Hierarchy:
    """Queries over a class, its bases, its subclasses and their other bases (QL704, QL705)."""

    def __init__(self, index: ProjectIndex, qname: str):
        self.index = index
        self.bases = index.mro(qname)
        below = {}
        for subclass in index.subclasses(qname):  # with their own other bases (mixins)
            below.update((s.qname, s) for s in index.mro(subclass))
        self.below = [s for q, s in below.items() if q not in {b.qname for b in self.bases}]

    @property
    def known(self) -> bool:
        """Every base is in the run (nn.Module aside) and no attribute is bound by a computed
        name or served by a `__getattr__` of its own."""
        index = self.index
        for summary in (*self.bases, *self.below):
            if summary.dynamic_attrs or summary.getattr_hook:
                return False
            for base in summary.bases:
                if index.resolve(base) not in index.classes and base not in api.MODULE_BASES:
                    return False
        return True

    def defines(self, name: str) -> bool:
        return name in api.NN_MODULE_ATTRIBUTES or any(name in s.defined for s in (*self.bases, *self.below))

    def reads_on_forward_path(self, name: str) -> Optional[bool]:
        """Whether a forward of the hierarchy reads self.<name>, or any forward of the run reads
        <name> on a submodule (None: a forward there calls a method of another file, whose
        reads are not summarized, or reads attributes by computed name; or none is known)."""
        owners = [s for s in (*self.bases, *self.below) if s.forward is not None]
        if not owners:
            return None
        for owner in owners:
            flow = owner.forward
            if flow.dynamic or any(self.index.method_owner(owner.qname, m) is not None for m in flow.calls):
                return None
        return any(name in s.forward.reads for s in owners) or name in self.index.nested_reads()


def _subclass_map(index: ProjectIndex) -> dict:
    below: dict = {}
    for qname, summary in index.classes.items():
        for base in summary.bases:
            below.setdefault(index.resolve(base), []).append(qname)
    return below
