"""Fuse groups a module class declares, and the fusible chains its forward path runs."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import libcst as cst

from qlint.semantic import torch_api as api
from qlint.semantic.forward import ModuleCall, Trace
from qlint.semantic.scope import ClassModel, FileScope
from qlint.semantic.walk import iter_nodes


@dataclass
class FuseGroup:
    node: cst.CSTNode  # the group's list, or the call for a flat list of names
    names: list[tuple[str, cst.CSTNode]]  # full dotted names from the class, with their strings


@dataclass
class FuseCall:
    node: cst.Call
    qat: Optional[bool]  # None when either function may be called
    groups: Optional[list[FuseGroup]]  # None when they are computed (a comprehension, a variable)
    anchor: Optional[cst.CSTNode] = None  # the method it is in (for positions)
    argument: Optional[cst.BaseExpression] = None  # the groups as written, when a literal list of `self`'s names


def _fuse_function(model: FileScope, expr, aliases: dict) -> Optional[set[str]]:
    """The fuse functions an expression may be (through local `fuse = a if qat else b`)."""
    if isinstance(expr, cst.Name) and expr.value in aliases:
        return aliases[expr.value]
    if isinstance(expr, cst.IfExp):
        found = [_fuse_function(model, e, aliases) for e in (expr.body, expr.orelse)]
        return set().union(*found) if all(found) else None
    qname = model.qname(expr)
    return {qname} if qname in api.FUSE_FUNCTIONS else None


def _self_path(expr) -> Optional[str]:
    """'' for `self`, 'features' for `self.features`; None for anything else."""
    parts = []
    while isinstance(expr, cst.Attribute):
        parts.append(expr.attr.value)
        expr = expr.value
    if isinstance(expr, cst.Name) and expr.value == "self":
        return ".".join(reversed(parts))
    return None


class _NotStatic(Exception):
    pass


def _static(expr, env: dict):
    """The value of an expression built from literals, f-strings, range() and comprehensions
    over them (`[[f"conv{i}", f"bn{i}"] for i in (1, 2)]`); _NotStatic otherwise."""
    if isinstance(expr, (cst.SimpleString, cst.Integer)):
        return expr.evaluated_value
    if isinstance(expr, cst.Name) and expr.value in env:
        return env[expr.value]
    if isinstance(expr, cst.FormattedString):
        parts = []
        for part in expr.parts:
            if isinstance(part, cst.FormattedStringText):
                parts.append(part.value)
            elif part.format_spec is None and part.conversion is None:
                parts.append(str(_static(part.expression, env)))
            else:
                raise _NotStatic
        return "".join(parts)
    if isinstance(expr, (cst.List, cst.Tuple)) and not any(isinstance(e, cst.StarredElement) for e in expr.elements):
        return [_static(e.value, env) for e in expr.elements]
    if isinstance(expr, cst.BinaryOperation) and isinstance(expr.operator, (cst.Add, cst.Subtract)):
        left, right = _static(expr.left, env), _static(expr.right, env)
        if isinstance(left, int) and isinstance(right, int):
            return left + right if isinstance(expr.operator, cst.Add) else left - right
    if isinstance(expr, cst.Call) and isinstance(expr.func, cst.Name) and not any(a.keyword for a in expr.args):
        args = [_static(a.value, env) for a in expr.args]
        if expr.func.value == "str" and len(args) == 1:
            return str(args[0])
        if expr.func.value == "range" and all(isinstance(a, int) for a in args) and 1 <= len(args) <= 3:
            return list(range(*args))
    if isinstance(expr, cst.ListComp) and expr.for_in.inner_for_in is None and not expr.for_in.ifs \
            and isinstance(expr.for_in.target, cst.Name):
        values = _static(expr.for_in.iter, env)
        if isinstance(values, list):
            name = expr.for_in.target.value
            return [_static(expr.elt, {**env, name: value}) for value in values]
    raise _NotStatic


def _groups(expr, prefix: str, env: dict) -> Optional[list[FuseGroup]]:
    """The fuse groups of a groups argument: one flat list of names, or a list of them."""
    try:
        value = _static(expr, env)
    except _NotStatic:
        return None
    if not isinstance(value, list) or not value:
        return None
    literal = isinstance(expr, (cst.List, cst.Tuple))
    join = (lambda name: f"{prefix}.{name}") if prefix else (lambda name: name)
    if all(isinstance(v, str) for v in value):
        nodes = [e.value for e in expr.elements] if literal else [expr] * len(value)
        return [FuseGroup(expr, [(join(v), n) for v, n in zip(value, nodes)])]
    groups = []
    for i, group in enumerate(value):
        if not isinstance(group, list) or not all(isinstance(v, str) for v in group):
            return None
        inner = expr.elements[i].value if literal else expr
        nodes = ([e.value for e in inner.elements] if isinstance(inner, (cst.List, cst.Tuple))
                 and len(inner.elements) == len(group) else [inner] * len(group))
        groups.append(FuseGroup(inner, [(join(v), n) for v, n in zip(group, nodes)]))
    return groups


def _loop_bindings(body) -> dict[int, list[dict]]:
    """For calls inside `for i in <static iterable>:` loops: the values the loop variable takes."""
    bindings: dict[int, list[dict]] = {}
    for node in iter_nodes(body):
        if isinstance(node, cst.For) and isinstance(node.target, cst.Name):
            try:
                values = _static(node.iter, {})
            except _NotStatic:
                continue
            if isinstance(values, list):
                envs = [{node.target.value: value} for value in values]
                for inner in iter_nodes(node.body):
                    if isinstance(inner, cst.Call):
                        bindings.setdefault(id(inner), envs)
    return bindings


def find_fuse_wrappers(model: FileScope) -> dict[str, tuple[int, int]]:
    """Module-level functions that pass two of their parameters on as the model and the groups
    of fuse_modules / fuse_modules_qat (torchvision's `_fuse_modules(model, groups, is_qat)`):
    {qualified name: (model parameter index, groups parameter index)}."""
    wrappers = {}
    if "fuse_modules" not in model.source:
        return wrappers
    for name, func in model.functions.items():
        params = [p.name.value for p in func.params.params]
        aliases: dict[str, set[str]] = {}
        for node in iter_nodes(func.body, into_functions=False):
            if isinstance(node, cst.Assign) and len(node.targets) == 1 and isinstance(node.targets[0].target, cst.Name):
                found = _fuse_function(model, node.value, aliases)
                if found:
                    aliases[node.targets[0].target.value] = found
            elif isinstance(node, cst.Call) and _fuse_function(model, node.func, aliases):
                positional = [a.value for a in node.args if a.keyword is None and not a.star]
                if len(positional) >= 2 and all(isinstance(v, cst.Name) and v.value in params for v in positional[:2]):
                    wrappers[f"{model.module_name}.{name}"] = (params.index(positional[0].value),
                                                               params.index(positional[1].value))
    return wrappers


def fuse_calls(model: FileScope, cls: ClassModel) -> list[FuseCall]:
    """Every fuse_modules / fuse_modules_qat call in the class that fuses its own submodules,
    directly or through a wrapper function of the run."""
    if "fuse_modules" not in model.source and not model.index.fuse_wrappers:
        return []
    cached = model.cache.get(("fuse_calls", cls.qname))
    if cached is None:
        cached = model.cache[("fuse_calls", cls.qname)] = _find_fuse_calls(model, cls)
    return cached


def _find_fuse_calls(model: FileScope, cls: ClassModel) -> list[FuseCall]:
    calls = []
    for method in cls.methods.values():
        aliases: dict[str, set[str]] = {}
        loops = _loop_bindings(method.body)
        for node in iter_nodes(method.body):
            if isinstance(node, cst.Assign) and len(node.targets) == 1 and isinstance(node.targets[0].target, cst.Name):
                found = _fuse_function(model, node.value, aliases)
                if found:
                    aliases[node.targets[0].target.value] = found
            if not isinstance(node, cst.Call):
                continue
            functions = _fuse_function(model, node.func, aliases)
            positional = [a for a in node.args if a.keyword is None]
            named = {a.keyword.value: a for a in node.args if a.keyword is not None}
            if functions:
                target = positional[0] if positional else named.get("model")
                groups_arg = positional[1] if len(positional) > 1 else named.get("modules_to_fuse")
            else:
                wrapper = model.index.fuse_wrappers.get(model.index.resolve(model.qname(node.func)))
                if wrapper is None or len(positional) <= max(wrapper):
                    continue
                target, groups_arg = positional[wrapper[0]], positional[wrapper[1]]
                functions = set(api.FUSE_FUNCTIONS)
            if target is None or groups_arg is None:
                continue
            prefix = _self_path(target.value)
            if prefix is None:
                continue
            qat = None if len(functions) > 1 else api.FUSE_QAT in functions
            literal = prefix == "" and id(node) not in loops and isinstance(groups_arg.value, (cst.List, cst.Tuple))
            groups = []
            for env in loops.get(id(node), [{}]):
                found = _groups(groups_arg.value, prefix, env)
                if found is None:
                    groups = None
                    break
                groups.extend(found)
            calls.append(FuseCall(node, qat, groups, method, groups_arg.value if literal and groups else None))
    return calls


_MODULE_ITERATORS = frozenset({"modules", "named_modules", "children", "named_children"})


def fuses_unnamed_modules(model: FileScope, cls: ClassModel) -> bool:
    """Whether the class fuses modules its fuse groups cannot name: a fuse call (or wrapper call)
    on a module that is no attribute path of self (`for block in self.blocks: fuse_modules(block,
    ...)`), or a loop over self.modules() (fusion dispatched by type)."""
    for method in cls.methods.values():
        aliases: dict[str, set[str]] = {}
        for node in iter_nodes(method.body):
            if isinstance(node, cst.For) and isinstance(node.iter, cst.Call) \
                    and isinstance(node.iter.func, cst.Attribute) and node.iter.func.attr.value in _MODULE_ITERATORS:
                return True
            if isinstance(node, cst.Assign) and len(node.targets) == 1 and isinstance(node.targets[0].target, cst.Name):
                found = _fuse_function(model, node.value, aliases)
                if found:
                    aliases[node.targets[0].target.value] = found
            if isinstance(node, cst.Call) and node.args and node.args[0].keyword is None:
                fuses = _fuse_function(model, node.func, aliases) or (
                    model.index.resolve(model.qname(node.func)) in model.index.fuse_wrappers)
                if fuses and _self_path(node.args[0].value) is None:
                    return True
    return False


def fusible_chains(model: FileScope, trace: Trace) -> list[list[ModuleCall]]:
    """Maximal runs of directly chained submodule calls matching torch's fusion patterns
    (Conv-BN-ReLU, Conv-ReLU, Linear-ReLU, Linear-BN, BN-ReLU, ...)."""
    def role(call: ModuleCall):
        return api.fusion_role(model.index.torch_base(call.cls)) if call.op is None else None

    consumers: dict[int, list[ModuleCall]] = {}
    for call in trace.calls:
        if call.input is not None:
            consumers.setdefault(id(call.input), []).append(call)
    chains, used = [], set()
    for call in trace.calls:
        if id(call) in used or call.key is None or role(call) is None:
            continue
        chain, roles = [call], (role(call),)
        while True:
            following = consumers.get(id(chain[-1]), [])
            if len(following) != 1 or following[0].key is None:
                break
            nxt = following[0]
            extended = roles + (role(nxt),)
            if not _may_grow(extended):
                break
            chain.append(nxt)
            roles = extended
        chain = chain[: _pattern_length(roles)]
        if len(chain) > 1:
            used.update(id(c) for c in chain)
            chains.append(chain)
    return chains


def _may_grow(roles: tuple) -> bool:
    return any(p[: len(roles)] == roles for p in api.FUSIBLE_PATTERNS)


def _pattern_length(roles: tuple) -> int:
    """The length of the longest fusion pattern `roles` starts with (0 when none)."""
    return max((len(p) for p in api.FUSIBLE_PATTERNS if roles[: len(p)] == p), default=0)


def sequential_chains(model: FileScope, cls: ClassModel, trace: Trace) -> list[list[str]]:
    """Fusible runs of members inside the nn.Sequential submodules the forward path calls, by
    dotted name ("features.0", "features.1"): fuse_modules reaches them by index."""
    index, chains, seen = model.index, [], set()
    for call in trace.calls:
        if call.op is not None or call.key is None or call.key in seen \
                or api.CONTAINERS.get(index.torch_base(call.cls)) != "sequential":
            continue
        seen.add(call.key)
        info = index.attr_at(cls.qname, call.key)
        members = info.members if info is not None else None
        if not members:
            continue
        roles = [api.fusion_role(index.torch_base(member)) for _, member in members]
        start = 0
        while start < len(members):
            end = start + 1
            while end < len(members) and roles[start] is not None and _may_grow(tuple(roles[start:end + 1])):
                end += 1
            length = _pattern_length(tuple(roles[start:end])) if roles[start] is not None else 0
            if length > 1:
                chains.append([f"{call.key}.{name}" for name, _ in members[start:start + length]])
                start += length
            else:
                start += 1
    return chains


def run_groups(model: FileScope, cls: ClassModel) -> list[list[str]]:
    """Every fusible run the class's forward path applies, by the names fuse_modules takes
    relative to the class: its own chains of submodules, then runs inside its nn.Sequentials."""
    trace = model.trace(cls)
    groups = [[call.key for call in chain] for chain in fusible_chains(model, trace)]
    return groups + [g for g in sequential_chains(model, cls, trace) if g not in groups]


def child_classes(model: FileScope, cls: ClassModel) -> list[tuple[ClassModel, tuple[str, ...]]]:
    """The module classes of this file a class is built of, at any depth, each with the dotted
    paths its instances have ("layer1.0", "blocks.*" for members of unknown position), in
    the order they are met."""
    index, found, paths = model.index, [], {}
    queue = [(cls.qname, "")]
    while queue:
        owner, prefix = queue.pop(0)
        for name, info in index.attrs(owner).items():
            places = [(name, info.cls), *((f"{name}.{member}", member_cls) for member, member_cls in info.members or ())]
            if info.members is None and info.element is not None:
                places.append((f"{name}.*", info.element))
            for path, member_cls in places:
                child = model.by_qname.get(index.resolve(member_cls) or "")
                if child is None or child is cls or prefix.count(".") > 8:
                    continue
                if child.qname not in paths:
                    paths[child.qname] = []
                    found.append(child)
                paths[child.qname].append(prefix + path)
                queue.append((child.qname, prefix + path + "."))
    return [(child, tuple(paths[child.qname])) for child in found]


def names_cover(names, paths, group: list[str]) -> bool:
    """Whether fuse group names (full dotted names, "*" matching one index) name any module of
    a child's group at one of its paths."""
    for path in paths:
        for member in group:
            wanted = f"{path}.{member}".split(".")
            for name in names:
                parts = name.split(".")
                if len(parts) == len(wanted) and all(w in ("*", p) for w, p in zip(wanted, parts)):
                    return True
    return False
