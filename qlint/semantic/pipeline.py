"""The quantization script: each model's way from float to int8, and the hazards on the way.

Eager quantization is a sequence of steps in a script (fuse, attach qconfigs, prepare or
prepare_qat, calibrate or train, convert). A small abstract interpreter runs the module body
and every function of a file with unknown arguments, and runs inline what they call in the
file: helper functions, lambdas, partials, the model class's own methods (`fuse_model`
with the call's arguments), constructors (wrappers that store a model as a submodule) and
script classes (trainers). Its values:

- models live on a heap, so that aliases, `.train()`/`.to()` results and wrappers share one
  state: mode, fusions (eval or QAT, folding BatchNorm or not), qconfig kind, prepared
  (PTQ or QAT), the forward passes since prepare and what data they got, converted;
  `copy.deepcopy`, `inplace=False` steps and submodules are models of their own, linked;
- optimizers (the models whose parameters they hold), qconfigs, parameter sets, tensors
  (constant or not), Python constants, sequences, and symbols: unknown values that keep
  their name, so that a condition tested twice (`args.qat`, an `is_qat` argument) takes the
  same arm.

An `if` whose condition is unknown forks the path; loops run their body twice. Facts are
definite on a path or unknown, and a hazard is recorded only from definite facts: a model
handed to a function the interpreter cannot read may have changed in any way, so its mode,
qconfig and calibration become unknown.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, replace
from typing import Optional

import libcst as cst

from qlint.semantic import torch_api as api
from qlint.semantic.model import BUILTIN_NAMES, CONTAINER, MODULE, RETURNS_SELF, ClassModel, FileModel
from qlint.semantic.names import canonical, import_bindings
from qlint.semantic.walk import iter_nodes

TRAIN, EVAL, INHERIT = "train", "eval", "inherit"
NO_QCONFIG, UNKNOWN_KIND = "none", "unknown"
PTQ, QAT, LEARNABLE, WEIGHT_ONLY = api.QCONFIG_PTQ, api.QCONFIG_QAT, api.QCONFIG_LEARNABLE, api.QCONFIG_WEIGHT_ONLY
CALIBRATED = frozenset({PTQ, QAT, LEARNABLE})  # kinds with activation observers that calibration sets

# Hazard kinds: what the QL6xx rules query.
STALE_OPTIMIZER = "stale-optimizer"
EVAL_FUSION_BEFORE_QAT = "eval-fusion-before-qat"
FUSE_IN_TRAIN_MODE = "fuse-in-train-mode"
PTQ_QCONFIG_FOR_QAT = "ptq-qconfig-for-qat"
PREPARE_WITHOUT_QCONFIG = "prepare-without-qconfig"
CONVERT_WITHOUT_CALIBRATION = "convert-without-calibration"
CONSTANT_CALIBRATION = "constant-calibration"
PREPARE_QAT_IN_EVAL_MODE = "prepare-qat-in-eval-mode"
STEP_RESULT_DISCARDED = "step-result-discarded"

MAX_PATHS = 32
MAX_DEPTH = 6
ENTRY_STEPS = 40000
CALL_STEPS = 4000
INIT_STEPS = 1500  # a model class's constructor: only its bindings matter

_BUILTIN_INERT = frozenset("builtins." + name for name in (
    "print", "len", "isinstance", "issubclass", "type", "id", "str", "repr", "hasattr", "format",
    "int", "float", "bool", "range", "min", "max", "sum", "abs", "round", "dict", "set", "callable",
    "getattr", "super", "any", "all", "divmod", "hash", "map", "reversed"))
_BUILTIN_PASSTHROUGH = frozenset({"builtins.list", "builtins.tuple", "builtins.filter", "builtins.iter",
                                  "builtins.sorted", "itertools.chain", "builtins.next"})
_TRAINING_METHODS = frozenset({"step", "zero_grad", "add_param_group"})  # an optimizer trains with these
_PROMOTING_METHODS = frozenset({"train", "eval", "parameters", "named_parameters", "modules",
                                "named_modules", "children", "named_children", "apply", "fuse_model"})
_QUANT_PREFIXES = ("torch.ao.quantization.", "torch.fx.", "torch.export.")


# ----- values ----------------------------------------------------------------------------
class _Unknown:
    __slots__ = ()

    def __repr__(self):
        return "UNKNOWN"


UNKNOWN = _Unknown()


@dataclass(frozen=True)
class Sym:
    """An unknown value with a name: the same symbol tested twice takes the same arm."""

    key: tuple


@dataclass(frozen=True)
class Const:
    value: object


@dataclass(frozen=True)
class Global:
    """An importable name (`torch.optim.SGD`), canonical."""

    qname: str


@dataclass(frozen=True)
class Ref:
    """A model, optimizer or object on the heap."""

    id: int


@dataclass(frozen=True)
class QConfigValue:
    kind: str
    parts: tuple = ()  # the kinds of its activation and weight parts, when built here


@dataclass(frozen=True)
class QConfigPart:
    """An observer or fake-quant class (or its `with_args` partial) for a QConfig."""

    kind: str


@dataclass(frozen=True)
class Params:
    """Parameters of models (`model.parameters()`, param groups built from them)."""

    owners: frozenset


@dataclass(frozen=True)
class Tensor:
    constant: bool
    origin: tuple = ()  # (stack, node) where a constant tensor was made


@dataclass(frozen=True)
class Seq:
    items: tuple


@dataclass(frozen=True)
class Submodules:
    """`model.modules()`, `named_children()`, ...: iterating gives submodules of `owner`."""

    owner: int
    named: bool


@dataclass(frozen=True)
class Enumerated:
    inner: object


@dataclass(frozen=True)
class Function:
    node: object  # cst.FunctionDef or cst.Lambda
    closure: tuple = ()
    owner: Optional[str] = None  # the class whose method this is


@dataclass(frozen=True)
class BoundMethod:
    function: Function
    self_value: object


@dataclass(frozen=True)
class ClassValue:
    qname: str


@dataclass(frozen=True)
class Partial:
    func: object
    args: tuple
    keywords: tuple


# ----- heap objects and events ---------------------------------------------------------------
@dataclass(frozen=True)
class FuseEvent:
    kind: str  # "eval" or "qat"
    report: cst.CSTNode
    folds_bn: Optional[bool]  # a group folds BatchNorm into a conv or linear (None: unknown)
    mode: Optional[str] = None  # the model's mode when it fused


@dataclass(frozen=True)
class PrepareEvent:
    kind: str  # PTQ or QAT
    node: cst.CSTNode
    stack: tuple


@dataclass(frozen=True)
class ForwardEvent:
    report: cst.CSTNode
    constant: bool


@dataclass(frozen=True)
class ModelState:
    cls: Optional[str]
    constructed: bool  # built in this run from a class whose qconfig facts are known
    mode: Optional[str]  # TRAIN, EVAL, INHERIT (a submodule following its parent) or None
    origin: int  # the model this one was first copied from (itself when none)
    parent: Optional[int] = None
    children: tuple = ()  # ((key, id), ...); key is an attribute name or a tuple for "some submodule"
    qconfig: Optional[str] = None  # PTQ, QAT, LEARNABLE, NO_QCONFIG, UNKNOWN_KIND; None: never assigned
    qconfig_unknown: bool = False
    prepared: Optional[PrepareEvent] = None
    forwards: tuple = ()  # ForwardEvents since prepare
    watched: frozenset = frozenset()  # prepare_qat events after which it running matters (QL601)
    ran_after: frozenset = frozenset()  # those of them it (maybe) ran after
    forward_unknown: bool = False
    converted: bool = False


@dataclass(frozen=True)
class OptimizerState:
    owners: frozenset
    node: cst.CSTNode
    stack: tuple
    stale: Optional[tuple] = None  # (PrepareEvent, reason, owner)
    used: bool = False  # used after it went stale


@dataclass(frozen=True)
class ObjectState:
    cls: str
    attrs: tuple = ()


@dataclass(frozen=True)
class Hazard:
    kind: str
    node: cst.CSTNode
    lines: tuple = ()  # (("name", node), ...): other lines the message names
    detail: str = ""


class _State:
    """One path: local variables, the heap, facts about symbols, the fusions each model went
    through, and how the path left its block."""

    __slots__ = ("env", "heap", "facts", "genv", "flow", "ret", "fused")

    def __init__(self, env, heap, facts, genv=None, flow=None, ret=None, fused=None):
        self.env = env
        self.heap = heap
        self.facts = facts
        self.genv = genv  # the module's variables, for functions called from the module body
        self.flow = flow  # None, "return", "break", "continue" or "raise"
        self.ret = ret
        self.fused = {} if fused is None else fused  # model id -> frozenset of FuseEvents

    def fork(self) -> "_State":
        return _State(dict(self.env), dict(self.heap), dict(self.facts), self.genv, self.flow, self.ret,
                      dict(self.fused))

    def same(self, other: "_State") -> bool:
        """The same path but for fusions (kept from both: a fusion on any path), for
        submodules one path looked at and the other did not, and for variables only one
        path bound (an arm's or a loop's own, which the other path does not read)."""
        return (self.flow == other.flow and self.ret == other.ret and _same_env(self.env, other.env)
                and _same_heap(self.heap, other.heap))

    def absorb(self, other: "_State") -> None:
        """Take in a path that ended the same: the facts both knew, the fusions of either."""
        for name, value in other.env.items():
            self.env.setdefault(name, value)
        if self.facts != other.facts:
            self.facts = {k: v for k, v in self.facts.items() if other.facts.get(k) == v}
        if self.fused != other.fused:
            for mid, events in other.fused.items():
                self.fused[mid] = self.fused.get(mid, frozenset()) | events
        if self.heap != other.heap:
            for key, value in other.heap.items():
                mine = self.heap.get(key)
                if mine is None:
                    self.heap[key] = value
                elif mine != value and isinstance(mine, ModelState):
                    children = mine.children + tuple(c for c in value.children if c not in mine.children)
                    self.heap[key] = replace(mine, children=children)


class _Budget(Exception):
    def __init__(self, depth: int):
        super().__init__(depth)
        self.depth = depth


# ----- the interpreter ------------------------------------------------------------------------
class ScriptInterpreter:
    """Runs a file's module body and functions, and records the hazards it finds."""

    def __init__(self, model: FileModel):
        self.model = model
        self.index = model.index
        self._ids = itertools.count(1)
        self._free_memo: dict = {}
        self._child_ids: dict = {}
        self._outcomes: dict = {}
        self._reset()
        self.statics = self._static_globals()

    def _reset(self) -> None:
        self.steps = 0
        self.stack: list[tuple[cst.CSTNode, bool]] = []  # (call, whether it enters a model class's method)
        self.active: list = []  # functions being run, innermost last (no recursion)
        self.owners: list = []  # the class of each running method (for super())
        self.selves: list = []  # the self of each running method
        self.call_starts: list[tuple[int, int]] = []  # (steps at entry, budget) per running call
        self._module_entry = False
        self._discarded = None  # the call of the expression statement being run (its value is dropped)
        self._pending: list[list] = [[]]  # outcomes of the runs under way, innermost last

    # ----- entries ------------------------------------------------------------------------
    def run(self) -> dict[tuple, Hazard]:
        relevant = self._relevant_functions()
        names = {func.name.value for func in relevant} | {name for _, name in self.index.method_effects}
        entries: list[tuple[Optional[cst.FunctionDef], Optional[ClassModel]]] = []
        if self._mentions_steps(self.model.module.body, names, top_level=True):
            entries.append((None, None))
        entries.extend((func, None) for func in self.model.functions.values() if func in relevant)
        for cls in self.model.classes.values():
            is_module = self.index.is_module_class(cls.qname)
            for name, method in cls.methods.items():
                if method in relevant and not (is_module and name in ("forward", "__init__")):
                    entries.append((method, cls))
        for func, cls in entries:
            self._reset()
            try:
                if func is None:
                    self._module_entry = True
                    states = self._exec_block(self.model.module.body, [_State({}, {}, {})], module=True)
                else:
                    states = self._run_function(func, cls)
                self._judge_optimizers(states)
            except _Budget:  # too long to follow: what this run saw is left out, it may be partial
                continue
            self._commit(self._pending.pop())
        hazards: dict[tuple, Hazard] = {}
        for hazard, seen in self._outcomes.values():
            if seen == {True}:
                hazards.setdefault((hazard.kind, id(hazard.node)), hazard)
        return hazards

    def _run_function(self, func: cst.FunctionDef, cls: Optional[ClassModel]) -> list[_State]:
        """A function or method on its own, its arguments unknown. A method of a script class
        (a trainer) runs after its class's `__init__`, which binds what the method reads."""
        state = _State({}, {}, {})
        names = self._param_names(func)
        env = {name: Sym((id(func), name)) for name in names}
        states = [state]
        if cls is not None and names:
            if self.index.is_module_class(cls.qname):
                self_value = Ref(self._new_model(state, cls.qname, constructed=False, mode=None))
            else:
                self_value = Ref(self._new_object(state, cls.qname))
                init = self._find_method(cls.qname, "__init__")
                if init is not None and init.node is not func:
                    init_env = self._bind_params(init.node, _Args([], {}, False), self_value)
                    self.owners.append(cls.qname)
                    self.selves.append(self_value)
                    states = [s for s in self._exec_block(init.node.body.body,
                                                          [_State(init_env, state.heap, {}, fused=state.fused)])
                              if s.flow != "raise"]
                    for s in states:
                        s.flow = None
                    self.owners.pop()
                    self.selves.pop()
            env[names[0]] = self_value
            self.owners.append(cls.qname)
            self.selves.append(self_value)
        self.active.append(func)
        for s in states:
            s.env = dict(env)
        return self._exec_block(func.body.body, states)

    def _relevant_functions(self) -> set:
        """Functions and methods that run a quantization step, directly or through another
        function or method of the file (by name)."""
        functions = list(self.model.functions.values()) + [
            m for cls in self.model.classes.values() for m in cls.methods.values()]
        relevant: set = set()
        names: set = {name for _, name in self.index.method_effects}  # fuse methods of other files
        changed = True
        while changed:
            changed = False
            for func in functions:
                if func not in relevant and self._mentions_steps(func.body, names):
                    relevant.add(func)
                    names.add(func.name.value)
                    changed = True
        return relevant

    def _mentions_steps(self, body, names: set, top_level: bool = False) -> bool:
        nodes = body if isinstance(body, (list, tuple)) else [body]
        for stmt in nodes:
            if top_level and isinstance(stmt, (cst.FunctionDef, cst.ClassDef)):
                continue
            for node in iter_nodes(stmt):
                if isinstance(node, cst.Call):
                    func = node.func
                    name = func.attr.value if isinstance(func, cst.Attribute) else (
                        func.value if isinstance(func, cst.Name) else None)
                    if name in names:
                        return True
                elif isinstance(node, (cst.Name, cst.Attribute)):  # `fuse = fuse_modules_qat if qat else ...`
                    qname = self.model.qname(node)
                    if qname and (qname in api.SCRIPT_STEPS or self.index.resolve(qname) in self.index.fuse_wrappers):
                        return True
        return False

    def _static_globals(self) -> dict:
        """Module-level functions, classes, constants, lambdas, partials and qconfigs: what
        a function of the file sees of the module when it runs on its own."""
        statics: dict = {name: Function(func) for name, func in self.model.functions.items()}
        statics.update((name, ClassValue(cls.qname)) for name, cls in self.model.classes.items())
        self.statics = statics
        for stmt in self.model.module.body:
            if not isinstance(stmt, cst.SimpleStatementLine):
                continue
            for small in stmt.body:
                if isinstance(small, cst.Assign) and len(small.targets) == 1 \
                        and isinstance(small.targets[0].target, cst.Name) and self._static(small.value):
                    value = self._eval(small.value, _State({}, {}, {}))[0][1]
                    if isinstance(value, _STATIC_VALUES):
                        statics[small.targets[0].target.value] = value
        return statics

    def _static(self, expr) -> bool:
        """An expression whose value needs no model: a literal (fuse groups), a name, a lambda,
        a qconfig, `functools.partial(...)`."""
        if isinstance(expr, (cst.Lambda, cst.Name, cst.Attribute, cst.Integer, cst.Float, cst.SimpleString)):
            return True
        if isinstance(expr, (cst.List, cst.Tuple)):
            return all(not isinstance(e, cst.StarredElement) and self._static(e.value) for e in expr.elements)
        if isinstance(expr, cst.Call):
            qname = self.model.qname(expr.func)
            return qname in (api.QCONFIG_CLASS, "functools.partial") or qname in api.QCONFIG_FACTORIES
        return False

    # ----- budget ---------------------------------------------------------------------------
    def _tick(self) -> None:
        self.steps += 1
        if self.steps > ENTRY_STEPS:
            raise _Budget(0)
        if self.call_starts:
            start, budget = self.call_starts[-1]
            if self.steps - start > budget:
                raise _Budget(len(self.call_starts))

    # ----- statements -----------------------------------------------------------------------
    def _exec_block(self, stmts, states: list[_State], module: bool = False) -> list[_State]:
        for stmt in stmts:
            following = []
            for state in states:
                if state.flow is not None:
                    following.append(state)
                else:
                    following.extend(self._exec(stmt, state, module))
            states = self._merge(following)
            if all(s.flow is not None for s in states):
                break
        return states

    def _exec(self, stmt, st: _State, module: bool = False) -> list[_State]:
        self._tick()
        if isinstance(stmt, cst.SimpleStatementLine):
            return self._exec_block(stmt.body, [st], module)
        if isinstance(stmt, cst.If):
            return self._if(stmt, st, module)
        if isinstance(stmt, cst.For):
            return self._for(stmt, st, module)
        if isinstance(stmt, cst.While):
            return self._while(stmt, st, module)
        if isinstance(stmt, cst.With):
            states = [st]
            for item in stmt.items:
                entered = [s for state in states for s, _ in self._eval(item.item, state)]
                states = entered if item.asname is None else [
                    bound for s in entered for bound in self._bind_target(item.asname.name, UNKNOWN, s)]
            return self._exec_block(_suite(stmt.body), states, module)
        if isinstance(stmt, cst.Try):
            states = self._exec_block(_suite(stmt.body), [st], module)
            if stmt.orelse is not None:
                normal = [s for s in states if s.flow is None]
                states = [s for s in states if s.flow is not None] + self._exec_block(
                    _suite(stmt.orelse.body), normal, module)
            if stmt.finalbody is not None:
                finished = []
                for s in states:
                    flow, ret = s.flow, s.ret
                    s.flow = None
                    for after in self._exec_block(_suite(stmt.finalbody.body), [s], module):
                        if after.flow is None:
                            after.flow, after.ret = flow, ret
                        finished.append(after)
                states = finished
            return states
        if isinstance(stmt, cst.FunctionDef):
            st.env[stmt.name.value] = Function(stmt, () if module else tuple(st.env.items()))
            return [st]
        if isinstance(stmt, cst.ClassDef):
            if not module:
                st.env[stmt.name.value] = UNKNOWN
            return [st]
        # small statements
        if isinstance(stmt, cst.Expr):
            self._discarded = stmt.value
            return [s for s, _ in self._eval(stmt.value, st)]
        if isinstance(stmt, cst.Assign):
            out = []
            for s, value in self._eval(stmt.value, st):
                states = [s]
                for target in stmt.targets:
                    states = [bound for state in states for bound in self._bind_target(target.target, value, state)]
                out.extend(states)
            return out
        if isinstance(stmt, cst.AnnAssign):
            if stmt.value is None:
                return [st]
            return [bound for s, v in self._eval(stmt.value, st) for bound in self._bind_target(stmt.target, v, s)]
        if isinstance(stmt, cst.AugAssign):
            out = []
            for s, value in self._eval(stmt.value, st):
                if isinstance(stmt.target, cst.Name):
                    old = s.env.get(stmt.target.value)
                    s.env[stmt.target.value] = Seq(old.items + value.items) if isinstance(old, Seq) and \
                        isinstance(value, Seq) else Sym((id(stmt),))
                out.append(s)
            return out
        if isinstance(stmt, cst.Return):
            if stmt.value is None:
                st.flow, st.ret = "return", Const(None)
                return [st]
            out = []
            for s, value in self._eval(stmt.value, st):
                s.flow, s.ret = "return", value
                out.append(s)
            return out
        if isinstance(stmt, cst.Raise):
            st.flow = "raise"
            return [st]
        if isinstance(stmt, cst.Break):
            st.flow = "break"
            return [st]
        if isinstance(stmt, cst.Continue):
            st.flow = "continue"
            return [st]
        if isinstance(stmt, (cst.Import, cst.ImportFrom)):
            for local, qname, _ in import_bindings(stmt, self.model.package):
                if qname:
                    st.env[local] = Global(canonical(qname))
            return [st]
        if isinstance(stmt, cst.Assert):
            return [s for s, _ in self._eval(stmt.test, st)]
        if isinstance(stmt, cst.Del):
            for element in iter_nodes(stmt.target):
                if isinstance(element, cst.Name):
                    st.env.pop(element.value, None)
            return [st]
        return [st]

    def _if(self, stmt: cst.If, st: _State, module: bool) -> list[_State]:
        out = []
        for s, decision, yes, no in self._decide(stmt.test, st):
            if decision is True:
                out.extend(self._exec_block(_suite(stmt.body), [s], module))
            elif decision is False:
                out.extend(self._orelse(stmt, s, module))
            else:
                other = s.fork()
                s.facts.update(yes)
                other.facts.update(no)
                out.extend(self._exec_block(_suite(stmt.body), [s], module))
                out.extend(self._orelse(stmt, other, module))
        return self._merge(out)

    def _orelse(self, stmt: cst.If, st: _State, module: bool) -> list[_State]:
        if stmt.orelse is None:
            return [st]
        if isinstance(stmt.orelse, cst.If):
            return self._if(stmt.orelse, st, module)
        return self._exec_block(_suite(stmt.orelse.body), [st], module)

    def _loop_body(self, body, states, module, exits) -> list[_State]:
        """One iteration; paths that leave the loop (break, return, raise) go to `exits`."""
        going = []
        for after in self._exec_block(body, states, module):
            if after.flow in (None, "continue"):
                after.flow = None
                going.append(after)
            elif after.flow == "break":
                after.flow = None
                exits.append(after)
            else:
                exits.append(after)
        return self._merge(going)

    def _for(self, stmt: cst.For, st: _State, module: bool) -> list[_State]:
        out = []
        for s, iterable in self._eval(stmt.iter, st):
            items = self._items(iterable)
            listed = items is not None
            if not listed:
                element = self._element(s, iterable, stmt)
                items = [element, element]
            states, exits = [s], []
            for n, item in enumerate(items):
                bound = []
                for state in states:
                    bound.extend(self._bind_target(stmt.target, item, state, tag=(id(stmt), n)))
                leaving = []
                states = self._loop_body(_suite(stmt.body), bound, module, leaving)
                if not listed and n == 0 and states:
                    # a loop over data runs more than once: leaving it in the first pass (`if i >=
                    # n: break` before the work) is the degenerate case, and the second pass
                    # leaves the same way after doing the work once
                    leaving = [e for e in leaving if e.flow == "raise"]
                exits.extend(leaving)
                if not states:
                    break
            if stmt.orelse is not None:
                states = self._exec_block(_suite(stmt.orelse.body), states, module)
            out.extend(states + exits)
        return self._merge(out)

    def _while(self, stmt: cst.While, st: _State, module: bool) -> list[_State]:
        states, exits = [st], []
        for _ in range(2):
            running = []
            for state in states:
                for s, decision, _yes, _no in self._decide(stmt.test, state):
                    (exits if decision is False else running).append(s)
            states = self._loop_body(_suite(stmt.body), running, module, exits)
        return self._merge(states + exits)

    def _merge(self, states: list[_State]) -> list[_State]:
        """Paths that ended the same (variables and heap) become one, knowing the facts both
        knew. Beyond MAX_PATHS paths the rest are dropped: fewer findings, never a wrong one."""
        merged: list[_State] = []
        for state in states:
            for kept in merged:
                if kept.same(state):
                    kept.absorb(state)
                    break
            else:
                merged.append(state)
        return merged[:MAX_PATHS]

    # ----- conditions ------------------------------------------------------------------------
    def _decide(self, expr, st: _State) -> list[tuple[_State, Optional[bool], dict, dict]]:
        """(path, True/False/None, facts of the true arm, facts of the false arm)."""
        out = []
        for s, value in self._eval(expr, st):
            truth = _truth(value)
            if truth is not None:
                out.append((s, truth, {}, {}))
                continue
            key = self._fact(expr, s)
            if key is None:
                out.append((s, None, {}, {}))
                continue
            fact, positive = key
            known = _lookup(s.facts, fact)
            if known is not None:
                out.append((s, known == positive, {}, {}))
            else:
                out.append((s, None, {fact: positive}, {fact: not positive}))
        return out

    def _fact(self, expr, st: _State) -> Optional[tuple[tuple, bool]]:
        """The fact a condition tests, and whether it holds when the condition does:
        `x` / `not x` (truth of a symbol), `x == "qat"`, `x is None`, `x != 1`."""
        if isinstance(expr, cst.UnaryOperation) and isinstance(expr.operator, cst.Not):
            inner = self._fact(expr.expression, st)
            return (inner[0], not inner[1]) if inner else None
        if isinstance(expr, (cst.Name, cst.Attribute)):
            value = self._peek(expr, st)
            return (("truth", value.key), True) if isinstance(value, Sym) else None
        if isinstance(expr, cst.Comparison) and len(expr.comparisons) == 1:
            target = expr.comparisons[0]
            operator = target.operator
            if not isinstance(operator, (cst.Equal, cst.NotEqual, cst.Is, cst.IsNot)):
                return None
            left, right = self._peek(expr.left, st), self._peek(target.comparator, st)
            if isinstance(right, Sym) and isinstance(left, Const):
                left, right = right, left
            if isinstance(left, Sym) and isinstance(right, Const) and _hashable(right.value):
                return ("eq", left.key, right.value), isinstance(operator, (cst.Equal, cst.Is))
        return None

    def _peek(self, expr, st: _State):
        """The value of a name or attribute chain, without running anything."""
        if isinstance(expr, cst.Name):
            return self._name(expr.value, st)
        if isinstance(expr, cst.Attribute):
            base = self._peek(expr.value, st)
            return None if base is None else self._attribute(st, base, expr)
        if isinstance(expr, (cst.Integer, cst.Float, cst.SimpleString)):
            return Const(expr.evaluated_value)
        return None

    # ----- binding ---------------------------------------------------------------------------
    def _bind_target(self, target, value, st: _State, tag=None) -> list[_State]:
        if isinstance(target, cst.Name):
            if value is UNKNOWN:
                value = Sym((id(target), tag))
            st.env[target.value] = value
            return [st]
        if isinstance(target, (cst.Tuple, cst.List)):
            elements = [e.value for e in target.elements]
            starred = any(isinstance(e, cst.StarredElement) for e in target.elements)
            if isinstance(value, Seq) and len(value.items) == len(elements) and not starred:
                items = list(value.items)
            else:
                item = value if isinstance(value, (Params, Tensor)) else UNKNOWN
                items = [item] * len(elements)
            states = [st]
            for element, item in zip(elements, items):
                states = [s2 for s in states for s2 in self._bind_target(element, item, s, tag)]
            return states
        if isinstance(target, cst.Attribute):
            return [self._assign_attribute(s, owner, target, value) for s, owner in self._eval(target.value, st)]
        if isinstance(target, cst.Subscript):
            return [s for s, _ in self._eval(target.value, st)]
        return [st]

    def _assign_attribute(self, st: _State, owner, target: cst.Attribute, value) -> _State:
        name = target.attr.value
        if isinstance(owner, Sym) and name == "qconfig":
            owner = Ref(self._promote(owner, st))
        if not isinstance(owner, Ref):
            return st
        obj = st.heap.get(owner.id)
        if isinstance(obj, ModelState):
            if name == "qconfig":
                self._update(st, owner.id, qconfig=_qconfig_kind(value))
            elif isinstance(value, Ref) and isinstance(st.heap.get(value.id), ModelState) and value.id != owner.id:
                self._link(st, owner.id, name, value.id)
        elif isinstance(obj, ObjectState):
            attrs = dict(obj.attrs)
            attrs[name] = Sym((id(target), owner.id)) if value is UNKNOWN else value
            st.heap[owner.id] = replace(obj, attrs=tuple(attrs.items()))
        return st

    def _promote(self, value, st: _State) -> Optional[int]:
        """The model an unknown value is, once it is used as one (`model.train()`,
        `prepare(model)`): the same symbol is the same model in every function it reaches."""
        if isinstance(value, Ref):
            return value.id if isinstance(st.heap.get(value.id), ModelState) else None
        if not isinstance(value, Sym):
            return None
        mid = st.heap.get(("sym", value.key))
        if mid is None:
            mid = self._new_model(st, None, constructed=False, mode=None)
            st.heap[("sym", value.key)] = mid
        return mid

    def _resolve(self, value, st: _State):
        """A symbol already known to be a model is that model."""
        if isinstance(value, Sym):
            mid = st.heap.get(("sym", value.key))
            if mid is not None:
                return Ref(mid)
        return value

    # ----- expressions -----------------------------------------------------------------------
    def _eval(self, expr, st: _State) -> list[tuple[_State, object]]:
        kind = type(expr)
        if kind is cst.Name:
            return [(st, self._name(expr.value, st))]
        if kind is cst.Attribute:
            return [(s, self._attribute(s, base, expr)) for s, base in self._eval(expr.value, st)]
        if kind is cst.Call:
            return self._call(expr, st)
        if kind in (cst.Integer, cst.Float, cst.SimpleString, cst.Imaginary):
            return [(st, Const(expr.evaluated_value))]
        if kind is cst.ConcatenatedString:
            value = expr.evaluated_value
            return [(st, Const(value) if isinstance(value, str) else UNKNOWN)]
        if kind is cst.FormattedString:
            return self._fstring(expr, st)
        if kind in (cst.Tuple, cst.List, cst.Set):
            return self._sequence(expr.elements, st)
        if kind is cst.Dict:
            return self._sequence([e for e in expr.elements if isinstance(e, cst.DictElement)], st)
        if kind is cst.IfExp:
            out = []
            for s, decision, yes, no in self._decide(expr.test, st):
                if decision is None:
                    other = s.fork()
                    s.facts.update(yes)
                    other.facts.update(no)
                    out.extend(self._eval(expr.body, s) + self._eval(expr.orelse, other))
                else:
                    out.extend(self._eval(expr.body if decision else expr.orelse, s))
            return out
        if kind is cst.UnaryOperation:
            out = []
            for s, value in self._eval(expr.expression, st):
                if isinstance(expr.operator, cst.Not):
                    truth = _truth(value)
                    out.append((s, Const(not truth) if truth is not None else UNKNOWN))
                elif isinstance(value, Tensor):
                    out.append((s, value))
                else:
                    out.append((s, UNKNOWN))
            return out
        if kind is cst.BooleanOperation:
            out = []
            is_and = isinstance(expr.operator, cst.And)
            for s, left in self._eval(expr.left, st):
                truth = _truth(left)
                if truth is not None and truth != is_and:
                    out.append((s, left))
                    continue
                for s2, right in self._eval(expr.right, s):
                    out.append((s2, right if truth is not None else UNKNOWN))
            return out
        if kind is cst.Comparison:
            return self._comparison(expr, st)
        if kind is cst.BinaryOperation:
            out = []
            for s, left in self._eval(expr.left, st):
                for s2, right in self._eval(expr.right, s):
                    out.append((s2, _binary(expr.operator, left, right)))
            return out
        if kind in (cst.ListComp, cst.SetComp, cst.GeneratorExp, cst.DictComp):
            return self._comprehension(expr, st)
        if kind is cst.Subscript:
            out = []
            for s, base in self._eval(expr.value, st):
                index = None
                for element in expr.slice:
                    if isinstance(element.slice, cst.Index):
                        s, index = self._eval(element.slice.value, s)[0]
                out.append((s, self._item(s, base, index, expr)))
            return out
        if kind is cst.Lambda:
            return [(st, Function(expr, tuple(st.env.items())))]
        if kind is cst.NamedExpr:
            out = []
            for s, value in self._eval(expr.value, st):
                out.extend((s2, value) for s2 in self._bind_target(expr.target, value, s))
            return out
        if kind in (cst.Await, cst.Yield) and getattr(expr, "expression", None) is not None \
                and isinstance(expr.expression, cst.BaseExpression):
            return [(s, UNKNOWN) for s, _ in self._eval(expr.expression, st)]
        return [(st, UNKNOWN)]

    def _sequence(self, elements, st: _State) -> list[tuple[_State, object]]:
        results = [(st, ())]
        for element in elements:
            following = []
            for s, items in results:
                for s2, value in self._eval(element.value, s):
                    if isinstance(element, cst.StarredElement):
                        following.append((s2, items + (value.items if isinstance(value, Seq) else (UNKNOWN,))))
                    else:
                        following.append((s2, items + (value,)))
            results = following
        return [(s, Seq(items)) for s, items in results]

    def _fstring(self, expr: cst.FormattedString, st: _State):
        parts, states = [], [st]
        for part in expr.parts:
            if isinstance(part, cst.FormattedStringText):
                parts.append(part.value)
                continue
            results = self._eval(part.expression, states[0])
            states = [s for s, _ in results]
            value = results[0][1] if results else UNKNOWN
            if isinstance(value, Const) and part.format_spec is None and part.conversion is None:
                parts.append(str(value.value))
            else:
                parts.append(None)
        text = "".join(parts) if all(p is not None for p in parts) else None
        return [(s, Const(text) if text is not None else UNKNOWN) for s in states]

    def _comparison(self, expr: cst.Comparison, st: _State):
        results = [(st, [])]
        for operand in [expr.left] + [c.comparator for c in expr.comparisons]:
            results = [(s2, values + [v]) for s, values in results for s2, v in self._eval(operand, s)]
        out = []
        for s, values in results:
            value = UNKNOWN
            if all(isinstance(v, Const) for v in values):
                try:
                    value = Const(all(_compare(c.operator, a.value, b.value)
                                      for c, a, b in zip(expr.comparisons, values, values[1:])))
                except (TypeError, ValueError):
                    value = UNKNOWN
            out.append((s, value))
        return out

    def _comprehension(self, expr, st: _State):
        saved = dict(st.env)
        states = [st]
        level = expr.for_in
        while level is not None:
            following = []
            for s in states:
                for s2, iterable in self._eval(level.iter, s):
                    element = self._element(s2, iterable, level)
                    for s3 in self._bind_target(level.target, element, s2, tag=(id(level),)):
                        for condition in level.ifs:
                            s3 = self._eval(condition.test, s3)[0][0]
                        following.append(s3)
            states = following
            level = level.inner_for_in
        out = []
        for s in states:
            results = (self._eval(expr.value, s) if isinstance(expr, cst.DictComp) else self._eval(expr.elt, s))
            for s2, value in results:
                s2.env = dict(saved)  # the comprehension's variables are its own
                owners = _owners(value)
                if owners:
                    value = Params(owners)
                out.append((s2, value if isinstance(value, (Params, Tensor)) and value != Tensor(False) else UNKNOWN))
        return out

    def _name(self, name: str, st: _State):
        if name in _LITERALS:
            return _LITERALS[name]
        if name in st.env:
            return self._resolve(st.env[name], st)
        if st.genv is not None and name in st.genv:
            return self._resolve(st.genv[name], st)
        if name in self.statics:
            return self.statics[name]
        if name == "__name__":
            return Const("__main__")
        qname = self.model.globals.get(name)
        if qname:
            return _global_value(canonical(qname))
        if name in BUILTIN_NAMES:
            return Global("builtins." + name)
        return UNKNOWN

    def _attribute(self, st: _State, base, expr: cst.Attribute):
        name = expr.attr.value
        if isinstance(base, Global):
            return _global_value(canonical(f"{base.qname}.{name}"))
        if isinstance(base, Sym):
            return self._resolve(Sym(base.key + (name,)), st)
        if isinstance(base, QConfigPart) and name == "with_args":
            return base
        if isinstance(base, QConfigValue) and base.parts and name in ("activation", "weight"):
            kind = base.parts[name == "weight"]
            return QConfigPart(kind) if kind else UNKNOWN
        if isinstance(base, Ref):
            obj = st.heap.get(base.id)
            if isinstance(obj, ModelState):
                return self._model_attribute(st, base.id, name)
            if isinstance(obj, ObjectState):
                attrs = dict(obj.attrs)
                if name in attrs:
                    return self._resolve(attrs[name], st)
                method = self._find_method(obj.cls, name)
                if method is not None:
                    return BoundMethod(method, base)
                return self._resolve(Sym((base.id, name)), st)
        return UNKNOWN

    def _model_attribute(self, st: _State, mid: int, name: str):
        model = st.heap[mid]
        if name == "training":
            mode = self._mode(st, mid)
            return Const(mode == TRAIN) if mode in (TRAIN, EVAL) else Sym((mid, "training"))
        if name == "qconfig":
            if model.qconfig in (PTQ, QAT, LEARNABLE, WEIGHT_ONLY):
                return QConfigValue(model.qconfig)
            return Const(None) if model.qconfig == NO_QCONFIG else UNKNOWN
        for key, child, _ in model.children:
            if key == name:
                return Ref(child)
        cls = None
        if model.cls is not None:
            attr = self.index.attrs(model.cls).get(name)
            if attr is not None:
                if attr.kind not in (MODULE, CONTAINER) or self.index.module_kind(attr.cls) not in (MODULE, CONTAINER):
                    return UNKNOWN
                cls = attr.cls
            elif self._find_method(model.cls, name) is not None or self.index.attrs_complete(model.cls):
                return UNKNOWN
        return Ref(self._child(st, mid, name, cls))

    def _item(self, st: _State, base, index, expr):
        if isinstance(base, Ref) and isinstance(st.heap.get(base.id), ModelState):
            key = ("item", index.value) if isinstance(index, Const) and _hashable(index.value) else ("item", id(expr))
            return Ref(self._child(st, base.id, key, None))
        if isinstance(base, Seq) and isinstance(index, Const) and isinstance(index.value, int) \
                and -len(base.items) <= index.value < len(base.items):
            return base.items[index.value]
        if isinstance(base, (Params, Tensor)):
            return base
        if isinstance(base, Sym) and isinstance(index, Const) and _hashable(index.value):
            return Sym(base.key + (("item", index.value),))
        return UNKNOWN

    def _items(self, iterable) -> Optional[list]:
        """The values a loop takes one by one, when few and known (`for opt in (a, b)`)."""
        if isinstance(iterable, Seq) and 0 < len(iterable.items) <= 4:
            return list(iterable.items)
        if isinstance(iterable, Enumerated) and isinstance(iterable.inner, Seq) and 0 < len(iterable.inner.items) <= 4:
            return [Seq((Const(i), item)) for i, item in enumerate(iterable.inner.items)]
        return None

    def _element(self, st: _State, iterable, loop):
        """What a loop over `iterable` binds when its values are not listed one by one."""
        if isinstance(iterable, (Params, Tensor)):
            return iterable if iterable != Tensor(False) else UNKNOWN
        if isinstance(iterable, Seq):
            items = set(iterable.items)
            if len(items) == 1:
                return next(iter(items))
            params = [i for i in items if isinstance(i, Params)]
            if params:
                return Params(frozenset().union(*(p.owners for p in params)))
            return UNKNOWN
        if isinstance(iterable, Submodules):
            sub = Ref(self._child(st, iterable.owner, ("sub", id(loop)), None))
            return Seq((UNKNOWN, sub)) if iterable.named else sub
        if isinstance(iterable, Enumerated):
            return Seq((UNKNOWN, self._element(st, iterable.inner, loop)))
        if isinstance(iterable, Ref) and isinstance(st.heap.get(iterable.id), ModelState):
            return Ref(self._child(st, iterable.id, ("sub", id(loop)), None))
        return UNKNOWN

    # ----- calls -----------------------------------------------------------------------------
    def _eval_args(self, call: cst.Call, st: _State) -> list[tuple[_State, "_Args"]]:
        results = [(st, _Args([], {}, False))]
        for arg in call.args:
            following = []
            for s, args in results:
                for s2, value in self._eval(arg.value, s):
                    following.append((s2, args.add(arg, value)))
            results = following
        return results

    def _call(self, call: cst.Call, st: _State) -> list[tuple[_State, object]]:
        self._tick()
        func = call.func
        out = []
        if isinstance(func, cst.Attribute):
            if _is_super(func.value):
                for s, args in self._eval_args(call, st):
                    out.extend(self._super(call, func.attr.value, args, s))
                return out
            for s, receiver in self._eval(func.value, st):
                for s2, args in self._eval_args(call, s):
                    out.extend(self._method(call, func.value, receiver, func.attr.value, args, s2))
            return out
        for s, callee in self._eval(func, st):
            for s2, args in self._eval_args(call, s):
                out.extend(self._apply(call, callee, args, s2))
        return out

    def _apply(self, call, callee, a: "_Args", st: _State):
        if isinstance(callee, Global):
            return self._global_call(call, callee.qname, a, st)
        if isinstance(callee, QConfigPart):
            return [(st, callee)]
        if isinstance(callee, Function):
            return self._invoke(call, callee, a, st)
        if isinstance(callee, BoundMethod):
            obj = st.heap.get(callee.self_value.id) if isinstance(callee.self_value, Ref) else None
            return self._invoke(call, callee.function, a, st, callee.self_value, isinstance(obj, ModelState))
        if isinstance(callee, Partial):
            merged = _Args(list(callee.args) + a.positional, {**dict(callee.keywords), **a.keywords}, a.unaligned)
            return self._apply(call, callee.func, merged, st)
        if isinstance(callee, ClassValue):
            return self._construct(call, callee.qname, a, st)
        if isinstance(callee, Ref):
            obj = st.heap.get(callee.id)
            if isinstance(obj, ModelState):
                self._forward(st, call, callee.id, a.positional)
                return [(st, UNKNOWN)]
            if isinstance(obj, ObjectState):
                method = self._find_method(obj.cls, "__call__")
                if method is not None:
                    return self._invoke(call, method, a, st, callee)
        self._unknown_effects(st, a.values())
        return [(st, UNKNOWN)]

    def _method(self, call, receiver_expr, receiver, name: str, a: "_Args", st: _State):
        if isinstance(receiver, Global):
            return self._apply(call, _global_value(canonical(f"{receiver.qname}.{name}")), a, st)
        if isinstance(receiver, QConfigPart):
            return [(st, receiver)]
        if isinstance(receiver, Sym) and name in _PROMOTING_METHODS:
            receiver = Ref(self._promote(receiver, st))
        if isinstance(receiver, Ref):
            obj = st.heap.get(receiver.id)
            if isinstance(obj, ModelState):
                return self._model_method(call, receiver.id, name, a, st)
            if isinstance(obj, OptimizerState):
                if name in _TRAINING_METHODS:  # not state_dict() for a checkpoint, nor printing it
                    self._use_optimizer(st, receiver.id)
                self._unknown_effects(st, a.values())
                return [(st, UNKNOWN)]
            if isinstance(obj, ObjectState):
                attrs = dict(obj.attrs)
                if name in attrs:
                    return self._apply(call, attrs[name], a, st)
                method = self._find_method(obj.cls, name)
                if method is not None:
                    return self._invoke(call, method, a, st, receiver)
        if isinstance(receiver, Tensor):
            keeps = receiver.constant and name in api.CONSTANT_PRESERVING_METHODS
            return [(st, receiver if keeps else UNKNOWN)]
        if isinstance(receiver, Seq) and name in ("append", "extend", "insert"):
            item = a.positional[-1] if a.positional else UNKNOWN
            added = (item.items if isinstance(item, Seq) else (UNKNOWN,)) if name == "extend" else (item,)
            # `decay.append(p)`, or `(no_decay if p.ndim <= 1 else decay).append(p)`: both lists
            # may hold it
            arms = ([receiver_expr.body, receiver_expr.orelse] if isinstance(receiver_expr, cst.IfExp)
                    else [receiver_expr])
            for arm in arms:
                if isinstance(arm, cst.Name) and isinstance(st.env.get(arm.value), Seq):
                    st.env[arm.value] = Seq((st.env[arm.value].items + added)[:16])
            return [(st, Const(None))]
        if isinstance(receiver, (Params, Submodules, Seq, Const, Function, ClassValue, QConfigValue)):
            return [(st, UNKNOWN)]
        self._unknown_effects(st, a.values())
        return [(st, UNKNOWN)]

    def _super(self, call, name: str, a: "_Args", st: _State):
        """`super().__init__(...)` and other calls of a base class's method from a method."""
        owner, self_value = (self.owners[-1], self.selves[-1]) if self.owners else (None, None)
        cls = self.model.by_qname.get(owner) if owner else None
        if cls is None or self_value is None:
            return [(st, UNKNOWN)]
        for base in cls.bases:
            base_cls = self.model.by_qname.get(self.index.resolve(base))
            found = self.model.find_method(base_cls, name) if base_cls is not None else None
            if found is not None:
                obj = st.heap.get(self_value.id)
                return self._invoke(call, Function(found[1], owner=found[0].qname), a, st, self_value,
                                    isinstance(obj, ModelState))
        if name == "__init__" and isinstance(st.heap.get(self_value.id), ModelState):
            for i, value in enumerate(a.positional):  # nn.Sequential.__init__(conv, bn, relu)
                if isinstance(value, Ref) and isinstance(st.heap.get(value.id), ModelState):
                    self._link(st, self_value.id, ("arg", i), value.id)
        return [(st, UNKNOWN)]

    def _invoke(self, call, function: Function, a: "_Args", st: _State, self_value=None,
                module_method: bool = False, budget: int = CALL_STEPS):
        """Run a function of the file with the call's arguments; one result per way it ends."""
        node = function.node
        if node in self.active or len(self.active) >= MAX_DEPTH:
            self._unknown_effects(st, a.values() + ([self_value] if self_value is not None else []))
            return [(st, UNKNOWN)]
        env = dict(function.closure)
        env.update(self._bind_params(node, a, self_value))
        in_module = st.genv is None and not self.active and self._module_entry
        callee = _State(env, dict(st.heap), dict(st.facts), st.env if in_module else st.genv, fused=dict(st.fused))
        self.active.append(node)
        self.owners.append(function.owner)
        self.selves.append(self_value)
        self.stack.append((call, module_method))
        self.call_starts.append((self.steps, budget))
        self._pending.append([])
        depth = len(self.call_starts)
        try:
            if isinstance(node, cst.Lambda):
                ends = self._eval(node.body, callee)
            else:
                ends = [(s, s.ret if s.flow == "return" else Const(None))
                        for s in self._exec_block(node.body.body, [callee]) if s.flow != "raise"]
        except _Budget as exhausted:
            if exhausted.depth != depth:
                raise
            ends = None
        finally:
            self.active.pop()
            self.owners.pop()
            self.selves.pop()
            self.stack.pop()
            self.call_starts.pop()
            outcomes = self._pending.pop()
        if ends is not None:
            self._pending[-1].extend(outcomes)
        if ends is None:
            self._unknown_effects(st, a.values() + ([self_value] if self_value is not None else []))
            return [(st, UNKNOWN)]
        return [(_State(st.env if i == 0 else dict(st.env), s.heap, s.facts, st.genv, fused=s.fused), value)
                for i, (s, value) in enumerate(_join_returns(ends))]

    def _bind_params(self, node, a: "_Args", self_value) -> dict:
        params = node.params
        ordered = list(params.posonly_params) + list(params.params)
        positional = ([self_value] if self_value is not None else []) + list(a.positional)
        keywords = dict(a.keywords)
        env = {}

        def missing(param):
            if a.unaligned:
                return Sym((id(param), next(self._ids)))
            if param.default is not None:
                return self._default(param.default)
            return Sym((id(param), next(self._ids)))

        for i, param in enumerate(ordered):
            name = param.name.value
            if i < len(positional):
                env[name] = positional[i]
            elif name in keywords:
                env[name] = keywords.pop(name)
            else:
                env[name] = missing(param)
        if isinstance(params.star_arg, cst.Param):
            rest = tuple(positional[len(ordered):])
            env[params.star_arg.name.value] = Sym((id(params.star_arg), next(self._ids))) if a.unaligned else Seq(rest)
        for param in params.kwonly_params:
            env[param.name.value] = keywords.pop(param.name.value) if param.name.value in keywords else missing(param)
        if isinstance(params.star_kwarg, cst.Param):
            env[params.star_kwarg.name.value] = Sym((id(params.star_kwarg), next(self._ids)))
        return env

    def _default(self, expr):
        value = self._eval(expr, _State({}, {}, {}))[0][1]
        return UNKNOWN if isinstance(value, (Ref, Params, Submodules)) else value

    @staticmethod
    def _param_names(func) -> list[str]:
        params = func.params
        return [p.name.value for p in (*params.posonly_params, *params.params, *params.kwonly_params)]

    def _find_method(self, cls: Optional[str], name: str) -> Optional[Function]:
        if cls is None:
            return None
        model_cls = self.model.by_qname.get(self.index.resolve(cls))
        found = self.model.find_method(model_cls, name) if model_cls is not None else None
        return Function(found[1], owner=found[0].qname) if found is not None else None

    def _construct(self, call, qname: str, a: "_Args", st: _State):
        """An instance of a class of this file: its `__init__` runs with the call's arguments."""
        is_module = self.index.is_module_class(qname)
        if is_module:
            value = Ref(self._new_model(st, qname, constructed=True, mode=TRAIN))
        else:
            value = Ref(self._new_object(st, qname))
        init = self._find_method(qname, "__init__")
        if init is None:
            if is_module:
                self._link_arguments(st, value.id, a)
            return [(st, value)]
        results = self._invoke(call, init, a, st, value, is_module, INIT_STEPS if is_module else CALL_STEPS)
        if not is_module or not results:
            return [(s, value) for s, _ in results]
        first, returned = results[0]
        signature = self._qconfig_signature(first, value.id)
        if returned is UNKNOWN or any(self._qconfig_signature(s, value.id) != signature for s, _ in results[1:]):
            self._update(first, value.id, qconfig_unknown=True, mode=TRAIN)
        return [(first, value)]

    def _link_arguments(self, st: _State, mid: int, a: "_Args") -> None:
        """Models given to a module's constructor become its submodules (wrappers, containers)."""
        for i, value in enumerate(a.values()):
            if isinstance(value, Ref) and value.id != mid and isinstance(st.heap.get(value.id), ModelState):
                self._link(st, mid, ("arg", i), value.id)

    def _global_call(self, call, qname: str, a: "_Args", st: _State):
        step = api.SCRIPT_STEPS.get(qname)
        if step is not None:
            return self._step(call, step, a, st)
        if qname == "copy.deepcopy":
            source = self._model_argument(st, a, 0, "x")
            return [(st, Ref(self._copy(st, source)) if source is not None else UNKNOWN)]
        if qname in api.QCONFIG_FACTORIES:
            return [(st, QConfigValue(api.QCONFIG_FACTORIES[qname]))]
        if qname == api.QCONFIG_CLASS:
            return [(st, _qconfig_from_parts(a))]
        if _is_optimizer(qname):
            params = a.positional[0] if a.positional else a.keywords.get("params", UNKNOWN)
            oid = next(self._ids)
            st.heap[oid] = OptimizerState(_owners(params), call, tuple(self.stack))
            return [(st, Ref(oid))]
        if qname in api.CONSTANT_TENSORS or (qname == "torch.tensor" and a.positional and _literal(a.positional[0])):
            return [(st, Tensor(True, (tuple(self.stack), call)))]
        if qname in api.RANDOM_TENSORS:
            return [(st, Tensor(False))]
        if qname in api.FORWARDING_FUNCTIONS:
            model_at, inputs_at = api.FORWARDING_FUNCTIONS[qname]
            target = self._model_argument(st, a, model_at, None)
            if target is not None:
                inputs = a.positional[inputs_at] if len(a.positional) > inputs_at else UNKNOWN
                self._forward(st, call, target, list(inputs.items) if isinstance(inputs, Seq) else [inputs])
            return [(st, UNKNOWN)]
        if qname == "builtins.setattr" and len(a.positional) >= 3 and a.positional[1] == Const("qconfig") \
                and isinstance(a.positional[0], Ref) and isinstance(st.heap.get(a.positional[0].id), ModelState):
            self._update(st, a.positional[0].id, qconfig=_qconfig_kind(a.positional[2]))
            return [(st, Const(None))]
        if qname in _BUILTIN_INERT:
            return [(st, UNKNOWN)]
        if qname in _BUILTIN_PASSTHROUGH:
            return [(st, _passthrough(a.positional))]
        if qname == "builtins.enumerate" and a.positional:
            return [(st, Enumerated(a.positional[0]))]
        if qname == "functools.partial" and a.positional:
            return [(st, Partial(a.positional[0], tuple(a.positional[1:]), tuple(a.keywords.items())))]
        resolved = self.index.resolve(qname)
        if resolved in self.model.by_qname:
            return self._construct(call, resolved, a, st)
        if self.index.is_module_class(resolved):
            constructed = api.is_torch_module_class(resolved) or self.index.summary(resolved) is not None
            mid = self._new_model(st, resolved, constructed=constructed, mode=TRAIN)
            self._link_arguments(st, mid, a)
            return [(st, Ref(mid))]
        returned = self.index.function_returns.get(resolved)
        if qname.startswith("torch.") and not qname.startswith(_QUANT_PREFIXES):
            return [(st, UNKNOWN)]
        self._unknown_effects(st, a.values())
        if returned and self.index.is_module_class(canonical(returned)):
            return [(st, Ref(self._new_model(st, canonical(returned), constructed=False, mode=None)))]
        return [(st, UNKNOWN)]

    def _model_argument(self, st: _State, a: "_Args", position: int, keyword: Optional[str]) -> Optional[int]:
        """The model a step is given (an unknown value there becomes a model)."""
        if len(a.positional) > position:
            return self._promote(a.positional[position], st)
        if keyword is not None and keyword in a.keywords:
            return self._promote(a.keywords[keyword], st)
        return None

    def _step(self, call, step: tuple, a: "_Args", st: _State):
        action, kind, position = step
        mid = self._model_argument(st, a, 0, "module" if action == "convert" else "model")
        if mid is None:
            self._unknown_effects(st, a.values())
            return [(st, UNKNOWN)]
        inplace = _inplace(a, position)
        if action != "quantize":
            self._outcome(STEP_RESULT_DISCARDED, call, call, call is self._discarded and not inplace)
        if action == "fuse":
            groups = a.positional[1] if len(a.positional) > 1 else a.keywords.get("modules_to_fuse", UNKNOWN)
            return [(st, Ref(self._fuse(st, call, mid, kind, groups, inplace)))]
        if action == "prepare":
            return [(st, Ref(self._prepare(st, call, mid, kind, inplace)))]
        if action == "convert":
            return [(st, Ref(self._convert(st, call, mid, inplace)))]
        prepared = self._prepare(st, call, mid, kind, inplace)  # quantize(model, run_fn, run_args)
        run_fn = a.positional[1] if len(a.positional) > 1 else a.keywords.get("run_fn", UNKNOWN)
        run_args = a.positional[2] if len(a.positional) > 2 else a.keywords.get("run_args", UNKNOWN)
        given = [Ref(prepared)] + (list(run_args.items) if isinstance(run_args, Seq) else [])
        results = self._apply(call, run_fn, _Args(given, {}, not isinstance(run_args, Seq)), st)
        return [(s, Ref(self._convert(s, call, prepared, True))) for s, _ in results]

    # ----- what the steps do to a model ----------------------------------------------------------
    def _fuse(self, st: _State, call, mid: int, kind: str, groups, inplace: bool) -> int:
        target = mid if inplace else self._copy(st, mid)
        folds = self._folds_bn(st, target, groups)
        report = self._fusion_site(call)
        if kind == "eval":
            self._outcome(FUSE_IN_TRAIN_MODE, call, report, folds is True and self._mode(st, target) == TRAIN)
        event = FuseEvent(kind, report, folds, self._mode(st, target))
        for member in [target, *self._ancestors(st, target)]:
            st.fused[member] = st.fused.get(member, frozenset()) | {event}
        return target

    def _prepare(self, st: _State, call, mid: int, kind: str, inplace: bool) -> int:
        self._outcome(PREPARE_WITHOUT_QCONFIG, call, call, self._no_qconfig(st, mid, own_class=True))
        kinds, unknown = self._qconfig_kinds(st, mid)
        if kind == QAT:
            self._outcome(PREPARE_QAT_IN_EVAL_MODE, call, call, self._mode(st, mid) == EVAL)
            self._outcome(PTQ_QCONFIG_FOR_QAT, call, call, not unknown and kinds == {PTQ})
            for event in self._fusions(st, mid):
                if event.kind == "eval" and event.folds_bn is not False:
                    self._outcome(EVAL_FUSION_BEFORE_QAT, event.report, event.report, True, (("prepare", call),))
        target = mid if inplace else self._copy(st, mid)
        event = PrepareEvent(kind, call, tuple(self.stack))
        if kind == QAT:
            self._stale_optimizers(st, event, mid, target, LEARNABLE in kinds)
        self._update(st, target, prepared=event, forwards=(), forward_unknown=False, converted=False)
        return target

    def _convert(self, st: _State, call, mid: int, inplace: bool) -> int:
        model = st.heap[mid]
        prepared = model.prepared is not None and not model.converted
        kinds, unknown = self._qconfig_kinds(st, mid)
        # observers to calibrate: a qconfig with activation observers, all of them known
        known = prepared and not model.forward_unknown and not unknown and bool(kinds & CALIBRATED)
        lines = (("prepare", model.prepared.node),) if model.prepared is not None else ()
        # prepared with observers: by prepare, or by prepare_qat given a PTQ qconfig (QL604)
        observed = known and (model.prepared.kind == PTQ or kinds == {PTQ})
        self._outcome(CONVERT_WITHOUT_CALIBRATION, call, call, observed and not model.forwards, lines)
        constant = known and all(f.constant for f in model.forwards)
        for forward in (model.forwards if prepared else ()):
            self._outcome(CONSTANT_CALIBRATION, forward.report, forward.report, constant, (("convert", call),))
        target = mid if inplace else self._copy(st, mid)
        self._update(st, target, converted=True)
        return target

    def _forward(self, st: _State, call, mid: int, inputs: list) -> None:
        constant = bool(inputs) and all(isinstance(v, Tensor) and v.constant for v in inputs)
        report = call
        if constant:
            origin_stack, _ = inputs[0].origin
            report = _frame_node(tuple(self.stack), call, origin_stack)
        event = ForwardEvent(report, constant)
        for member in self._family(st, mid):
            model = st.heap[member]
            forwards = model.forwards + (event,) if model.prepared is not None and not model.converted \
                and len(model.forwards) < 8 else model.forwards
            st.heap[member] = replace(model, forwards=forwards, ran_after=model.ran_after | model.watched)

    def _stale_optimizers(self, st: _State, event: PrepareEvent, mid: int, target: int, learnable: bool) -> None:
        """Optimizers of this model (or of one it was copied from, or copied to) that prepare_qat
        leaves holding parameters the prepared model does not train."""
        origins = {st.heap[m].origin for m in self._family(st, mid)}
        kept = set(self._family(st, target))
        for oid, optimizer in list(st.heap.items()):
            if not isinstance(optimizer, OptimizerState) or optimizer.stale is not None:
                continue
            for owner in optimizer.owners:
                if owner not in st.heap or not origins & {st.heap[m].origin for m in self._family(st, owner)}:
                    continue
                if owner not in kept:
                    reason = "copy"
                elif learnable:
                    reason = "learnable"
                else:
                    continue
                st.heap[oid] = replace(optimizer, stale=(event, reason, owner))
                self._update(st, owner, watched=st.heap[owner].watched | {event})
                break

    def _use_optimizer(self, st: _State, oid: int) -> None:
        optimizer = st.heap[oid]
        if optimizer.stale is not None and not optimizer.used:
            st.heap[oid] = replace(optimizer, used=True)

    def _judge_optimizers(self, states: list[_State]) -> None:
        """At the end of a run: an optimizer used after prepare_qat left it stale is a hazard,
        unless it was stale only for holding the model prepare_qat copied and that model ran
        again (two models trained side by side, each with its own optimizer). A run that
        ends with the optimizer unused, or not stale, speaks against it only when another of
        its paths found it a hazard (a branch qlint cannot decide): a method of a trainer
        that builds the optimizer or prepares the model is one stage of a longer run."""
        judged: dict[int, list] = {}
        for st in states:
            if st.flow == "return":
                self._unknown_effects(st, [st.ret])  # returned: the caller uses it
            for optimizer in st.heap.values():
                if not isinstance(optimizer, OptimizerState):
                    continue
                if optimizer.stale is None:
                    outcome = (STALE_OPTIMIZER, optimizer.node, _frame_node(optimizer.stack, optimizer.node, ()),
                               False, (), "")
                else:
                    event, reason, owner = optimizer.stale
                    positive = optimizer.used and not (reason == "copy" and event in st.heap[owner].ran_after)
                    node = _frame_node(optimizer.stack, optimizer.node, event.stack)
                    outcome = (STALE_OPTIMIZER, optimizer.node, node, positive, (("prepare", event.node),), reason)
                judged.setdefault(id(optimizer.node), []).append(outcome)
        for outcomes in judged.values():
            if any(outcome[3] for outcome in outcomes):
                for outcome in outcomes:
                    self._outcome(*outcome)

    def _model_method(self, call, mid: int, name: str, a: "_Args", st: _State):
        if name == "train":
            flag = a.positional[0] if a.positional else a.keywords.get("mode", Const(True))
            self._set_mode(st, mid, (TRAIN if flag.value else EVAL) if isinstance(flag, Const) else None)
            return [(st, Ref(mid))]
        if name == "eval":
            self._set_mode(st, mid, EVAL)
            return [(st, Ref(mid))]
        if name == "apply":
            function = a.positional[0] if a.positional else UNKNOWN
            if isinstance(function, Function):
                self._update(st, mid, qconfig_unknown=True)
            elif not (isinstance(function, Global) and function.qname in api.MODULE_TOGGLES):
                self._taint(st, mid)
            return [(st, Ref(mid))]
        if name in RETURNS_SELF:
            return [(st, Ref(mid))]
        if name in ("parameters", "named_parameters"):
            return [(st, Params(frozenset({mid})))]
        if name in ("modules", "named_modules", "children", "named_children"):
            return [(st, Submodules(mid, name.startswith("named")))]
        if name == "forward":
            self._forward(st, call, mid, a.positional)
            return [(st, UNKNOWN)]
        if name in api.INERT_MODULE_METHODS:
            return [(st, UNKNOWN)]
        method = self._find_method(st.heap[mid].cls, name)
        if method is not None:
            return self._invoke(call, method, a, st, Ref(mid), True)
        effect = self._method_effect(st.heap[mid].cls, name)
        if effect is not None and self._apply_effect(call, mid, effect, a, st):
            return [(st, UNKNOWN)]
        self._taint(st, mid)
        self._unknown_effects(st, a.values())
        return [(st, UNKNOWN)]

    def _method_effect(self, cls: Optional[str], name: str) -> Optional["MethodEffect"]:
        """The summarized effect of a model method defined in another file of the run."""
        queue, seen = [cls], set()
        while queue:
            current = self.index.resolve(queue.pop(0))
            if current is None or current in seen:
                continue
            seen.add(current)
            effect = self.index.method_effects.get((current, name))
            if effect is not None:
                return effect
            summary = self.index.summary(current)
            if summary is None or name in summary.methods:
                return None
            queue.extend(summary.bases)
        return None

    def _apply_effect(self, call, mid: int, effect: "MethodEffect", a: "_Args", st: _State) -> bool:
        """Apply a summarized method to the model, for the call's boolean arguments and the
        model's mode; False when they do not decide which case applies."""
        flags = []
        for position, default in zip(effect.flags, effect.defaults):
            name = effect.params[position]
            value = a.positional[position] if position < len(a.positional) else a.keywords.get(name, Const(default))
            truth = _truth(value)
            if truth is None and isinstance(value, Sym):
                truth = _lookup(st.facts, ("truth", value.key))
            if truth is None:
                return False
            flags.append(truth)
        mode = self._mode(st, mid)
        outcome = dict(effect.cases).get((mode, tuple(flags)))
        if outcome is None:
            return False
        report = self._fusion_site(call)
        for i, (kind, folds, fused_mode) in enumerate(outcome.fusions):
            if kind == "eval":
                self._outcome(FUSE_IN_TRAIN_MODE, (id(call), i), report, folds is True and fused_mode == TRAIN)
            event = FuseEvent(kind, report, folds, fused_mode)
            for member in [mid, *self._ancestors(st, mid)]:
                st.fused[member] = st.fused.get(member, frozenset()) | {event}
        if outcome.mode != mode:
            self._set_mode(st, mid, outcome.mode)
        if outcome.qconfig is not None:
            self._update(st, mid, qconfig=outcome.qconfig)
        if outcome.unknown:
            self._taint(st, mid)
        return True

    def method_effect(self, cls: ClassModel, method: cst.FunctionDef) -> Optional["MethodEffect"]:
        """What calling `method` does to a model of class `cls`, for each mode the model may be
        in and each value of the method's boolean parameters (at most two)."""
        nodes = [*method.params.posonly_params, *method.params.params][1:]
        params = tuple(p.name.value for p in nodes)
        flags = tuple(i for i, p in enumerate(nodes) if p.default is not None
                      and _truth(_LITERALS.get(getattr(p.default, "value", None))) is not None)[:2]
        defaults = tuple(_LITERALS[nodes[i].default.value].value for i in flags)
        cases = []
        for mode in (TRAIN, EVAL, None):
            for values in itertools.product((True, False), repeat=len(flags)):
                self._reset()
                st = _State({}, {}, {})
                mid = self._new_model(st, cls.qname, constructed=True, mode=mode)
                keywords = {params[i]: Const(v) for i, v in zip(flags, values)}
                try:
                    ends = self._invoke(method, Function(method, owner=cls.qname), _Args([], keywords, False), st,
                                        Ref(mid), True)
                except _Budget:
                    ends = []
                outcomes = {self._outcome_of(s, mid) for s, _ in ends}
                cases.append(((mode, values), outcomes.pop() if len(outcomes) == 1 else None))
        return MethodEffect(params, flags, defaults, tuple(cases))

    def _outcome_of(self, st: _State, mid: int) -> "MethodOutcome":
        model = st.heap[mid]
        fusions = tuple(sorted({(e.kind, e.folds_bn, e.mode) for e in st.fused.get(mid, ())}, key=repr))
        return MethodOutcome(fusions, self._mode(st, mid), model.qconfig,
                             model.qconfig_unknown or model.forward_unknown)

    def _unknown_effects(self, st: _State, values, depth: int = 0) -> None:
        """What a function the interpreter cannot read may do to what it is given."""
        for value in values:
            if isinstance(value, Seq):
                self._unknown_effects(st, value.items, depth)
            elif isinstance(value, Partial):
                self._unknown_effects(st, value.args, depth)
            elif isinstance(value, Submodules):
                self._taint(st, value.owner)
            elif isinstance(value, Enumerated):
                self._unknown_effects(st, [value.inner], depth)
            elif isinstance(value, Ref):
                obj = st.heap.get(value.id)
                if isinstance(obj, ModelState):
                    self._taint(st, value.id)
                elif isinstance(obj, OptimizerState):
                    self._use_optimizer(st, value.id)
                elif isinstance(obj, ObjectState) and depth == 0:
                    self._unknown_effects(st, [v for _, v in obj.attrs], 1)

    def _taint(self, st: _State, mid: int) -> None:
        self._set_mode(st, mid, None)
        self._update(st, mid, qconfig_unknown=True)
        for member in self._family(st, mid):
            model = st.heap[member]
            st.heap[member] = replace(model, forward_unknown=True, ran_after=model.ran_after | model.watched)

    # ----- model facts -----------------------------------------------------------------------
    def _new_model(self, st: _State, cls, constructed: bool, mode, parent=None) -> int:
        mid = next(self._ids)
        st.heap[mid] = ModelState(cls=cls, constructed=constructed, mode=mode, origin=mid, parent=parent)
        return mid

    def _new_object(self, st: _State, cls: str) -> int:
        oid = next(self._ids)
        st.heap[oid] = ObjectState(cls)
        return oid

    def _update(self, st: _State, mid: int, **changes) -> None:
        st.heap[mid] = replace(st.heap[mid], **changes)

    def _child(self, st: _State, mid: int, key, cls) -> int:
        """A submodule looked at (`model.backbone`, one of `model.modules()`): the same id on
        every path, so that paths differing only in what they looked at are one."""
        model = st.heap[mid]
        for existing, child, _ in model.children:
            if existing == key:
                return child
        child = self._child_ids.setdefault((mid, key), next(self._ids))
        st.heap[child] = ModelState(cls=cls, constructed=model.constructed and cls is not None, mode=INHERIT,
                                    origin=child, parent=mid)
        self._update(st, mid, children=model.children + ((key, child, False),))
        return child

    def _link(self, st: _State, mid: int, key, child: int) -> None:
        """`child` becomes a submodule of `mid` (an attribute, or a constructor's argument)."""
        if child == mid or child in self._ancestors(st, mid):
            return
        model = st.heap[mid]
        children = tuple(c for c in model.children if c[0] != key) + ((key, child, True),)
        self._update(st, mid, children=children)
        self._update(st, child, parent=mid)

    def _copy(self, st: _State, mid: int, parent: Optional[int] = None) -> int:
        model = st.heap[mid]
        new = next(self._ids)
        st.heap[new] = model  # reserved: the children's copies point here
        mode = model.mode if parent is not None else self._mode(st, mid)
        children = tuple((key, self._copy(st, child, new), linked) for key, child, linked in model.children)
        st.heap[new] = replace(model, mode=mode, parent=parent, children=children)
        if mid in st.fused:
            st.fused[new] = st.fused[mid]
        return new

    def _mode(self, st: _State, mid: Optional[int]) -> Optional[str]:
        for _ in range(64):
            if mid is None:
                return None
            model = st.heap[mid]
            if model.mode != INHERIT:
                return model.mode
            mid = model.parent
        return None

    def _set_mode(self, st: _State, mid: int, mode: Optional[str]) -> None:
        self._update(st, mid, mode=mode)
        for member in self._descendants(st, mid):
            if st.heap[member].mode != INHERIT:
                self._update(st, member, mode=INHERIT)

    def _descendants(self, st: _State, mid: int) -> list[int]:
        found, queue = [], [child for _, child, _ in st.heap[mid].children]
        while queue and len(found) < 256:
            member = queue.pop()
            if member in found or member == mid:
                continue
            found.append(member)
            queue.extend(child for _, child, _ in st.heap[member].children)
        return found

    def _ancestors(self, st: _State, mid: int) -> list[int]:
        found = []
        parent = st.heap[mid].parent
        while parent is not None and parent not in found and len(found) < 64:
            found.append(parent)
            parent = st.heap[parent].parent
        return found

    def _family(self, st: _State, mid: int) -> list[int]:
        """The model, the models it is part of, and its submodules (shared by identity)."""
        return [mid, *self._ancestors(st, mid), *self._descendants(st, mid)]

    def _fusions(self, st: _State, mid: int) -> list[FuseEvent]:
        events: set = set()
        for member in [mid, *self._descendants(st, mid)]:
            events |= st.fused.get(member, frozenset())
        return sorted(events, key=lambda e: id(e.report))

    def _qconfig_kinds(self, st: _State, mid: int) -> tuple[set, bool]:
        """The qconfig kinds given to the model and its submodules, and whether some are unknown."""
        kinds, unknown = set(), False
        for member in [mid, *self._descendants(st, mid)]:
            model = st.heap[member]
            unknown = unknown or model.qconfig_unknown or model.qconfig == UNKNOWN_KIND
            if model.qconfig in (PTQ, QAT, LEARNABLE, WEIGHT_ONLY):
                kinds.add(model.qconfig)
        return kinds, unknown

    def _qconfig_signature(self, st: _State, mid: int):
        return tuple(sorted(self._qconfig_kinds(st, mid)[0])), self._qconfig_kinds(st, mid)[1]

    def _no_qconfig(self, st: _State, mid: int, own_class: bool) -> bool:
        """Whether the model and its submodules surely have no qconfig: none assigned here,
        none possibly assigned by code the interpreter cannot read, none set by their classes."""
        model = st.heap[mid]
        if model.qconfig not in (None, NO_QCONFIG) or model.qconfig_unknown:
            return False
        if own_class:
            if not model.constructed:
                return False
            linked = frozenset(key for key, _, is_linked in model.children if is_linked and isinstance(key, str))
            if not self._class_sets_no_qconfig(model.cls, linked):
                return False
        return all(self._no_qconfig(st, child, is_linked) for _, child, is_linked in model.children)

    def _class_sets_no_qconfig(self, cls: Optional[str], skip: frozenset = frozenset()) -> bool:
        if cls is None:
            return False
        cls = self.index.resolve(cls)
        if api.is_torch_module_class(cls):
            return True
        key = (cls, skip)
        if key not in self._free_memo:
            self._free_memo[key] = False  # breaks cycles
            self._free_memo[key] = self._find_class_sets_no_qconfig(cls, skip)
        return self._free_memo[key]

    def _find_class_sets_no_qconfig(self, cls: str, skip: frozenset) -> bool:
        summary = self.index.summary(cls)
        if summary is None or summary.dynamic_attrs or cls in self.index.qconfig_classes:
            return False
        if not all(base in api.MODULE_BASES or self._class_sets_no_qconfig(base) for base in summary.bases):
            return False
        for name, attr in self.index.attrs(cls).items():
            if name in skip:
                continue
            if attr.kind == MODULE and self.index.module_kind(attr.cls) == MODULE \
                    and not self._class_sets_no_qconfig(attr.cls):
                return False
            if attr.kind == CONTAINER:
                classes = [c for _, c in attr.members] if attr.members is not None else (
                    [attr.element] if attr.element else None)
                if classes is None or not all(self._class_sets_no_qconfig(c) for c in classes):
                    return False
        return True

    def _folds_bn(self, st: _State, mid: int, groups_value) -> Optional[bool]:
        """Whether a fusion folds BatchNorm into a conv or linear: a group of three is
        conv-bn-relu (the only three-module pattern); others by the classes of their names."""
        groups = _fuse_groups(groups_value)
        if groups is None:
            return None
        if any(len(group) >= 3 for group in groups):
            return True
        unknown = False
        cls = st.heap[mid].cls
        for group in groups:
            roles = [self._role(cls, name) if name is not None else None for name in group]
            if None in roles:
                unknown = True
            elif "bn" in roles and any(r in roles for r in ("conv", "linear", "convtranspose")):
                return True
        return None if unknown else False

    def _role(self, cls: Optional[str], dotted: str) -> Optional[str]:
        members = element = None
        for part in dotted.split("."):
            if members is not None or element is not None:
                cls = dict(members or ()).get(part) or element
                members = element = None
                continue
            attr = self.index.attrs(cls).get(part) if cls is not None else None
            if attr is None:
                return None
            if attr.kind == MODULE:
                cls = attr.cls
            elif attr.kind == CONTAINER and (attr.members is not None or attr.element):
                members, element, cls = attr.members, attr.element, None
            else:
                return None
        if cls is None or members is not None or element is not None:
            return None
        return api.fusion_role(self.index.torch_base(cls))

    def _fusion_site(self, call) -> cst.CSTNode:
        """Fusion inside a model class's own method is reported where the script calls it."""
        for node, enters_model_method in self.stack:
            if enters_model_method:
                return node
        return call

    def _outcome(self, kind: str, site, report, hazard: bool, lines: tuple = (), detail: str = "") -> None:
        """Whether a step (`site`) is a hazard this time it runs. A hazard is reported only
        where every time the step runs, on every path and in every call, it is one: a step
        that is a hazard on one arm of a branch qlint cannot decide, or for one caller of a
        helper and not another, is left unknown. Outcomes of a run cut short by its step
        budget are dropped (the run may be partial)."""
        self._pending[-1].append((kind, site, report, hazard, lines, detail))

    def _commit(self, outcomes: list) -> None:
        for outcome in outcomes:
            self._record(*outcome)

    def _record(self, kind: str, site, report, hazard: bool, lines: tuple, detail: str) -> None:
        key = (kind, site if isinstance(site, tuple) else id(site), id(report))
        entry = self._outcomes.get(key)
        if entry is None:
            entry = self._outcomes[key] = [Hazard(kind, report, lines, detail), set()]
        elif hazard and not entry[1] - {False}:
            entry[0] = Hazard(kind, report, lines, detail)
        entry[1].add(hazard)


class _Args:
    """A call's evaluated arguments."""

    __slots__ = ("positional", "keywords", "unaligned")

    def __init__(self, positional, keywords, unaligned):
        self.positional = positional
        self.keywords = keywords
        self.unaligned = unaligned  # after a *args of unknown length, positions are unknown

    def add(self, arg: cst.Arg, value) -> "_Args":
        positional, keywords, unaligned = list(self.positional), dict(self.keywords), self.unaligned
        if arg.star == "*":
            if isinstance(value, Seq) and not unaligned:
                positional.extend(value.items)
            else:
                unaligned = True
        elif arg.keyword is not None:
            keywords[arg.keyword.value] = value
        elif not arg.star and not unaligned:
            positional.append(value)
        return _Args(positional, keywords, unaligned)

    def values(self) -> list:
        return [*self.positional, *self.keywords.values()]


# ----- helpers ---------------------------------------------------------------------------------
_LITERALS = {"True": Const(True), "False": Const(False), "None": Const(None)}
_STATIC_VALUES = (Const, Function, Partial, Global, QConfigValue, QConfigPart, ClassValue, Seq)


def _suite(body) -> list:
    """The statements of an indented block or of a one-line suite (`if x: return`)."""
    return list(body.body)


def _untouched(value) -> bool:
    """A submodule only looked at: nothing done to it that its parent did not do."""
    return isinstance(value, ModelState) and value.mode == INHERIT and value.qconfig is None \
        and not value.qconfig_unknown and value.prepared is None and not value.converted \
        and not any(linked for _, _, linked in value.children)


def _same_env(a: dict, b: dict) -> bool:
    if a == b:
        return True
    return all(a[name] == b[name] for name in a.keys() & b.keys())


def _same_heap(a: dict, b: dict) -> bool:
    if a == b:
        return True
    for key in a.keys() | b.keys():
        x, y = a.get(key), b.get(key)
        if x == y:
            continue
        if x is None or y is None:
            if not _untouched(x or y):
                return False
        elif isinstance(x, ModelState) and isinstance(y, ModelState) \
                and replace(x, children=()) == replace(y, children=()):
            for _, child, linked in set(x.children) ^ set(y.children):
                if linked or not _untouched(a.get(child) or b.get(child)):
                    return False
        else:
            return False
    return True


def _join_returns(ends: list) -> list:
    """Ways a call ends that leave the heap the same are one: the value is the one they all
    return, or unknown, and the facts are those they share."""
    joined: list = []
    for state, value in ends:
        for i, (kept, kept_value) in enumerate(joined):
            if _same_heap(kept.heap, state.heap):
                kept.absorb(state)
                if kept_value != value:
                    joined[i] = (kept, UNKNOWN)
                break
        else:
            joined.append((state, value))
    return joined


def _truth(value) -> Optional[bool]:
    if isinstance(value, Const):
        try:
            return bool(value.value)
        except Exception:  # noqa: BLE001 - a literal's truth never fails, but stay safe
            return None
    if isinstance(value, (Ref, Global, Function, BoundMethod, ClassValue, QConfigValue, QConfigPart, Partial)):
        return True
    if isinstance(value, Seq):
        return bool(value.items)
    return None


def _lookup(facts: dict, fact: tuple) -> Optional[bool]:
    known = facts.get(fact)
    if known is not None:
        return known
    for other, holds in facts.items():
        if not holds or other[0] != "eq" or other[1] != fact[1]:
            continue
        if fact[0] == "eq" and other[2] != fact[2]:
            return False  # x == "ptq" is known: x == "qat" is not
        if fact[0] == "truth":
            return bool(other[2])
    return None


def _hashable(value) -> bool:
    try:
        hash(value)
    except TypeError:
        return False
    return True


def _compare(operator, left, right) -> bool:
    if isinstance(operator, (cst.Equal, cst.Is)):
        return left == right
    if isinstance(operator, (cst.NotEqual, cst.IsNot)):
        return left != right
    if isinstance(operator, cst.LessThan):
        return left < right
    if isinstance(operator, cst.GreaterThan):
        return left > right
    if isinstance(operator, cst.LessThanEqual):
        return left <= right
    if isinstance(operator, cst.GreaterThanEqual):
        return left >= right
    if isinstance(operator, cst.In):
        return left in right
    if isinstance(operator, cst.NotIn):
        return left not in right
    raise TypeError(operator)


def _binary(operator, left, right):
    if isinstance(left, Tensor) or isinstance(right, Tensor):
        tensors = [v for v in (left, right) if isinstance(v, Tensor)]
        if all(isinstance(v, Const) or (isinstance(v, Tensor) and v.constant) for v in (left, right)):
            return tensors[0]
        return UNKNOWN
    if isinstance(left, Seq) and isinstance(right, Seq) and isinstance(operator, cst.Add):
        return Seq(left.items + right.items)
    if isinstance(left, Const) and isinstance(right, Const) and isinstance(operator, cst.Add) \
            and isinstance(left.value, str) and isinstance(right.value, str):
        return Const(left.value + right.value)
    return UNKNOWN


def _is_super(expr) -> bool:
    return isinstance(expr, cst.Call) and isinstance(expr.func, cst.Name) and expr.func.value == "super"


def _global_value(qname: str):
    """A name of torch's quantization API as the value it is (a qconfig, an observer class)."""
    if qname in api.QCONFIGS:
        return QConfigValue(api.QCONFIGS[qname])
    if qname in api.QCONFIG_PARTS:
        return QConfigPart(api.QCONFIG_PARTS[qname])
    return Global(qname)


def _qconfig_kind(value) -> str:
    if isinstance(value, QConfigValue):
        return value.kind
    if value == Const(None):
        return NO_QCONFIG
    return UNKNOWN_KIND


def _qconfig_from_parts(a: _Args) -> QConfigValue:
    """QConfig(activation=..., weight=...): learnable if a part is, QAT if a part fake-quantizes,
    PTQ when both are observers."""
    parts = [a.keywords.get("activation"), a.keywords.get("weight")]
    for i, value in enumerate(a.positional[:2]):
        parts[i] = value
    kinds = tuple(p.kind if isinstance(p, QConfigPart) else None for p in parts)
    if LEARNABLE in kinds:
        return QConfigValue(LEARNABLE, kinds)
    if QAT in kinds:
        return QConfigValue(QAT, kinds)
    if kinds[0] == api.QCONFIG_PLACEHOLDER and kinds[1] in (PTQ, api.QCONFIG_PLACEHOLDER):
        return QConfigValue(WEIGHT_ONLY, kinds)
    return QConfigValue(PTQ if kinds == (PTQ, PTQ) else UNKNOWN_KIND, kinds)


def _is_optimizer(qname: str) -> bool:
    if not qname.startswith("torch.optim.") or ".lr_scheduler." in qname or ".swa_utils." in qname:
        return False
    return qname.rsplit(".", 1)[-1][:1].isupper()


def _owners(value) -> frozenset:
    if isinstance(value, Params):
        return value.owners
    if isinstance(value, Seq):
        return frozenset().union(*(_owners(item) for item in value.items)) if value.items else frozenset()
    return frozenset()


def _passthrough(values: list):
    """list(x), filter(f, x), sorted(x), itertools.chain(a, b): what they hold."""
    params = [v for v in values if isinstance(v, Params)]
    if params:
        return Params(frozenset().union(*(p.owners for p in params)))
    data = [v for v in values if not isinstance(v, (Function, Global))]
    if len(data) == 1 and isinstance(data[0], (Seq, Submodules, Tensor)):
        return data[0]
    return UNKNOWN


def _literal(value) -> bool:
    if isinstance(value, Const):
        return isinstance(value.value, (int, float, bool))
    return isinstance(value, Seq) and bool(value.items) and all(_literal(item) for item in value.items)


def _inplace(a: _Args, position: int) -> bool:
    value = a.keywords.get("inplace")
    if value is None and len(a.positional) > position:
        value = a.positional[position]
    if value is None:
        return False
    return bool(value.value) if isinstance(value, Const) else True


def _fuse_groups(value) -> Optional[list[list]]:
    """fuse_modules' groups as lists of names (None for a name not known, as in
    `[str(i), str(i + 1), str(i + 2)]`): one flat list, or a list of them."""
    if not isinstance(value, Seq) or not value.items:
        python = _python(value)
        return _fuse_groups(Seq(tuple(Const(item) if not isinstance(item, list) else Seq(tuple(map(Const, item)))
                                      for item in python))) if isinstance(python, list) and python else None
    if all(isinstance(item, Seq) for item in value.items):
        groups = [[_name(name) for name in item.items] for item in value.items]
        return groups if all(groups) else None
    if any(isinstance(item, Seq) for item in value.items):
        return None
    return [[_name(name) for name in value.items]]


def _name(value) -> Optional[str]:
    return value.value if isinstance(value, Const) and isinstance(value.value, str) else None


def _python(value):
    if isinstance(value, Const):
        return value.value
    if isinstance(value, Seq):
        items = [_python(item) for item in value.items]
        return None if any(item is None for item in items) else items
    return None


def _frame_node(stack: tuple, node, other_stack: tuple):
    """Where to report an event that happened at `node` (under the calls `stack`) and that
    another event (under `other_stack`) explains: the call, in the innermost function both
    run under, that leads to `node`; `node` itself when it is in that function."""
    common = 0
    for (a, _), (b, _) in zip(stack, other_stack):
        if a is not b:
            break
        common += 1
    return stack[common][0] if len(stack) > common else node


def _mentions_qconfig(node) -> bool:
    """A class whose body reads or writes a `qconfig` (it may set one on its modules)."""
    for inner in iter_nodes(node):
        if isinstance(inner, cst.Attribute) and inner.attr.value == "qconfig":
            return True
        if isinstance(inner, cst.SimpleString) and "qconfig" in inner.value:
            return True
    return False


# ----- what other files see (pickleable, in the file summary) -----------------------------------
@dataclass(frozen=True)
class MethodOutcome:
    fusions: tuple  # ((kind, folds_bn, the model's mode then), ...)
    mode: Optional[str]  # the model's mode after the call
    qconfig: Optional[str]  # the qconfig kind it gives the model, if any
    unknown: bool  # it did something qlint cannot follow (the model's state becomes unknown)


@dataclass(frozen=True)
class MethodEffect:
    """What calling a model class's fuse method does, by the model's mode and the values of
    its boolean parameters (`fuse_model(is_qat=False)`); None where that run is undecided."""

    params: tuple  # parameter names after self
    flags: tuple  # positions (in params) of the boolean parameters the cases vary
    defaults: tuple  # their defaults
    cases: tuple  # (((mode, flag values), MethodOutcome or None), ...)


@dataclass(frozen=True)
class ScriptFacts:
    """A file's facts for the script interpreter of other files: which classes may set a
    qconfig, and what their fuse methods do."""

    qconfig_classes: frozenset
    methods: dict  # (class qname, method name) -> MethodEffect


def script_facts(model: FileModel, index) -> ScriptFacts:
    """Computed from the file alone (`index` holds its own summary), while it is summarized."""
    qconfig_classes = frozenset(cls.qname for cls in model.classes.values()
                                if "qconfig" in model.source and _mentions_qconfig(cls.node))
    methods = {}
    if "fuse" in model.source:
        saved, model.index = model.index, index
        try:
            interpreter = ScriptInterpreter(model)
            fusing = interpreter._relevant_functions()
            for cls in model.classes.values():
                if not index.is_module_class(cls.qname):
                    continue
                for name, method in cls.methods.items():
                    if method in fusing and not name.startswith("__") and name != "forward":
                        methods[(cls.qname, name)] = interpreter.method_effect(cls, method)
        finally:
            model.index = saved
    return ScriptFacts(qconfig_classes, methods)


# ----- the query rules use ---------------------------------------------------------------------
_STEP_WORDS = ("fuse", "prepare", "convert", "quantize")


def script_hazards(model: FileModel, kind: str) -> list[Hazard]:
    """The hazards of one kind the script interpreter finds in a file (computed once)."""
    hazards = model.cache.get("script_hazards")
    if hazards is None:
        found = {}
        if any(word in model.source for word in _STEP_WORDS):
            found = ScriptInterpreter(model).run()
        hazards = model.cache["script_hazards"] = {}
        for hazard in found.values():
            hazards.setdefault(hazard.kind, []).append(hazard)
    return hazards.get(kind, [])
