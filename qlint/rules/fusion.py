"""QL501-QL503: fuse groups that name the wrong modules, or leave fusible ones out."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import libcst as cst

from qlint.fixes import Fix, TorchName
from qlint.registry import ERROR, UNSAFE, WARNING, Invalid, Rule, register
from qlint.rules.base import Report
from qlint.semantic.interpret import exclusive
from qlint.semantic import torch_api as api
from qlint.semantic.fusion import (child_classes, fusible_chains, fuse_calls, fuses_unnamed_modules, names_cover,
                                  sequential_chains)
from qlint.semantic.walk import iter_nodes
from qlint.semantic.summaries import CONTAINER, MODULE, UNKNOWN

_HEADER = "import torch.nn as nn\nfrom torch.ao.quantization import fuse_modules\n\n\n"
_UNFUSED = (_HEADER + "class Block(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
            "        self.conv1 = nn.Conv2d(3, 8, 3)\n        self.relu1 = nn.ReLU()\n"
            "        self.conv2 = nn.Conv2d(8, 8, 3)\n        self.bn2 = nn.BatchNorm2d(8)\n\n"
            "    def forward(self, x):\n        y = self.relu1(self.conv1(x))\n")
# A submodule class with no fuse groups of its own, in a model that fuses only its stem.
_STAGE = ("import torch.nn as nn\nfrom torch.ao.quantization import fuse_modules, fuse_modules_qat\n\n\n"
          "class Stage(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
          "        self.conv = nn.Conv2d(8, 8, 3)\n        self.bn = nn.BatchNorm2d(8)\n"
          "        self.relu = nn.ReLU()\n\n    def forward(self, x):\n")
_NET_WITH_STAGES = (
    "\n\nclass Net(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
    "        self.stem = nn.Conv2d(3, 8, 3)\n        self.stem_bn = nn.BatchNorm2d(8)\n"
    "        self.stages = nn.Sequential(Stage(), Stage())\n\n"
    "    def forward(self, x):\n        return self.stages(self.stem_bn(self.stem(x)))\n\n"
    "    def fuse_model(self, is_qat=False):\n"
    "        fuse = fuse_modules_qat if is_qat else fuse_modules\n"
    "        fuse(self, [['stem', 'stem_bn']], inplace=True)\n")
_BLOCK = (_HEADER + "class Block(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
          "        self.conv = nn.Conv2d(3, 8, 3)\n        self.bn = nn.BatchNorm2d(8)\n"
          "        self.relu = nn.ReLU()\n\n")


def _defines(model, cls_qname: str, path: str):
    """True/False whether `path` names a submodule of the class; None when it cannot be known."""
    index = model.index
    attrs, complete = index.attrs(cls_qname), index.attrs_complete(cls_qname)
    head, _, rest = path.partition(".")
    info = attrs.get(head)
    if info is None and index.is_sequential(cls_qname):  # an nn.Sequential subclass: members '0', '1', ...
        return _member_defines(model, index.sequential_members(cls_qname), path)
    if info is None:
        return False if complete else None
    if not rest:
        return True
    kind = index.module_kind(info.cls)
    if kind == CONTAINER:
        return _member_defines(model, info.members, rest)
    if kind == MODULE and index.summary(info.cls) is not None:
        return _defines(model, info.cls, rest)
    return None


def _member_defines(model, members, path: str):
    """`_defines` for a container with these literal members (None: not literal)."""
    if members is None:
        return None
    member, _, deeper = path.partition(".")
    names = dict(members)
    if member not in names:
        return False
    if not deeper:
        return True
    return _defines(model, names[member], deeper) if names[member] and model.index.summary(names[member]) else None


@register
class FuseUnknownName(Rule):
    code = "QL501"
    name = "fuse-unknown-name"
    severity = ERROR
    summary = "A fuse_modules group names a submodule the model does not define"
    explanation = (
        "`fuse_modules` looks each name up with getattr and raises AttributeError on the first "
        "unknown one. The call usually lives in a `fuse_model` method that nobody runs until "
        "quantization day, after the layers were renamed.")
    fix = "Use the attribute names (or Sequential indices: 'features.0') the module defines."
    valid = (_BLOCK + "    def forward(self, x):\n        return self.relu(self.bn(self.conv(x)))\n\n"
             "    def fuse_model(self):\n        fuse_modules(self, [['conv', 'bn', 'relu']], inplace=True)\n",)
    invalid = (_BLOCK + "    def forward(self, x):\n        return self.relu(self.bn(self.conv(x)))\n\n"
               "    def fuse_model(self):\n"
               "        fuse_modules(self, [['conv', 'batchnorm', 'relu']], inplace=True)  # expect: QL501\n",)

    def check(self, model):
        for cls in model.module_classes():
            known = None
            for fuse in fuse_calls(model, cls):
                for group in fuse.groups or ():
                    for name, node in group.names:
                        if _defines(model, cls.qname, name) is False:
                            if known is None:
                                known = ", ".join(sorted(n for n, a in model.index.attrs(cls.qname).items()
                                                         if a.kind in (MODULE, CONTAINER, UNKNOWN)))
                            yield Report(node, f"'{name}' is not a submodule of {cls.node.name.value}; "
                                         f"fuse_modules raises AttributeError. Its submodules: {known or 'none'}.",
                                         anchor=fuse.anchor)


@register
class FuseNotAdjacent(Rule):
    code = "QL502"
    name = "fuse-not-adjacent"
    severity = ERROR
    summary = "A fuse group whose members do not run back to back, or run elsewhere too"
    explanation = (
        "Fusion replaces the first module of a group with the fused module and every other "
        "member with Identity. If the members are not applied one after the other in forward, "
        "the fused module computes something the float model never did; if a member is also "
        "called elsewhere (a ReLU shared with the residual path), that other call silently "
        "becomes Identity.")
    fix = "Fuse only modules applied back to back, each called once; give shared ones their own instance."
    valid = (_BLOCK + "    def forward(self, x):\n        return self.relu(self.bn(self.conv(x)))\n\n"
             "    def fuse_model(self):\n        fuse_modules(self, [['conv', 'bn', 'relu']], inplace=True)\n",)
    invalid = (_BLOCK + "    def forward(self, x):\n        y = self.relu(self.bn(self.conv(x)))\n"
               "        return self.relu(y + 1)  # expect: QL301, QL401\n\n"
               "    def fuse_model(self):\n"
               "        fuse_modules(self, [['conv', 'bn', 'relu']], inplace=True)  # expect: QL502\n",
               _BLOCK + "    def forward(self, x):\n        return self.bn(self.relu(self.conv(x)))\n\n"
               "    def fuse_model(self):\n"
               "        fuse_modules(self, ['conv', 'bn'], inplace=True)  # expect: QL502\n",)

    def check(self, model):
        for cls in model.module_classes():
            calls = fuse_calls(model, cls)
            if not calls:
                continue
            trace = model.trace(cls)
            if not trace.found:
                continue
            sites = {}
            for call in trace.calls:
                if call.op is None and call.key is not None:
                    sites.setdefault(call.key, []).append(call)
            for fuse in calls:
                for group in fuse.groups or ():
                    problem = self._problem(group, sites)
                    if problem:
                        yield Report(group.node, problem, anchor=fuse.anchor)

    @staticmethod
    def _problem(group, sites):
        names = [name for name, _ in group.names]
        if any("." in name or name not in sites for name in names):
            return None  # nested or never called in forward: nothing certain to say
        for name in names[1:]:
            runs = sites[name]
            if len(runs) > 1 and any(not exclusive(a.branch, b.branch) for a in runs for b in runs if a is not b):
                return (f"'{name}' is fused with {names[0]} but also called elsewhere in forward; "
                        f"fusion makes it Identity there too. Give that use its own module.")
        for before, after in zip(names, names[1:]):
            if not any(call.input is prev for call in sites[after] for prev in sites[before]):
                return (f"fuse group {names} is not applied back to back: '{after}' does not take "
                        f"'{before}''s output directly, so the fused module would compute something "
                        f"else. Fuse only consecutive modules.")
        return None


@register
class UnfusedSequence(Rule):
    code = "QL503"
    name = "unfused-sequence"
    severity = WARNING
    summary = "A fusible Conv/Linear/BN/ReLU run that the model's fuse groups leave out"
    explanation = (
        "In a model that declares fuse groups, a Conv->BN(->ReLU), Conv->ReLU, Linear->ReLU, "
        "Linear->BN or BN->ReLU run left out of them stays unfused: an extra quantize step "
        "between the layers, BN not folded, and lower accuracy and speed. Children count: a run "
        "inside a submodule class with no fuse groups of its own, that the model's groups do not "
        "name by dotted path ('layer1.0.conv1'), stays unfused too.")
    fix = ("Add the run to the fuse groups (fuse_modules or fuse_modules_qat); for a submodule class, "
           "give it a fuse_model and call it from the model's (`for m in self.modules(): if type(m) is "
           "Block: m.fuse_model(is_qat)`, as torchvision's quantizable models do).")
    fix_safety = UNSAFE
    fix_safety_note = (
        "The fix adds the run to the class's literal fuse list, or, for a submodule class with no "
        "fuse groups of its own, gives it a `fuse_model(self, is_qat=False)` (fuse_modules_qat when "
        "is_qat) that the model's fuse method calls for each such submodule, as torchvision's "
        "quantizable models do. The float model is unchanged until fusion runs, but when it runs "
        "the module tree changes (the fused module replaces the first member, Identity the others; "
        "state_dict keys move to `conv.0.weight`) and the quantized model computes with folded BN. "
        "Not offered when the fuse method already dispatches by type in a loop, when another model "
        "of the file fuses the same classes (they would be fused twice), or when a run's module is "
        "also used elsewhere.")
    valid = (_BLOCK + "    def forward(self, x):\n        return self.relu(self.bn(self.conv(x)))\n\n"
             "    def fuse_model(self):\n        fuse_modules(self, [['conv', 'bn', 'relu']], inplace=True)\n",)
    invalid = (
        Invalid(
            _UNFUSED + "        y = self.conv2(y)  # expect: QL503\n        return self.bn2(y)\n\n"
            "    def fuse_model(self):\n        fuse_modules(self, [['conv1', 'relu1']], inplace=True)\n",
            fixed=_UNFUSED + "        y = self.conv2(y)\n        return self.bn2(y)\n\n"
            "    def fuse_model(self):\n        fuse_modules(self, [['conv1', 'relu1'], ['conv2', 'bn2']], inplace=True)\n"),
        Invalid(
            _STAGE + "        return self.relu(self.bn(self.conv(x)))  # expect: QL503\n" + _NET_WITH_STAGES,
            fixed=_STAGE + "        return self.relu(self.bn(self.conv(x)))\n\n"
            "    def fuse_model(self, is_qat=False):\n        fuse = fuse_modules_qat if is_qat else fuse_modules\n"
            "        fuse(self, [[\"conv\", \"bn\", \"relu\"]], inplace=True)\n" + _NET_WITH_STAGES
            + "        for m in self.modules():\n            if type(m) is Stage:\n                m.fuse_model(is_qat)\n"),
    )

    def check(self, model):
        seen = set()
        for root, calls in fuse_roots(model):
            names = {name for call in calls for g in call.groups for name, _ in g.names}
            groups = [{name for name, _ in g.names} for call in calls for g in call.groups]
            plan = fuse_plan(model, root, calls)
            own_fix, children_fix = _fixes(model, plan)
            for chain in fusible_chains(model, model.trace(root)):
                keys = [call.key for call in chain]
                if any(group & set(keys) for group in groups):
                    continue  # fused, partly fused on purpose, or a broken group (QL501/QL502)
                seen.add(id(chain[0].node))
                yield Report(chain[0].node, f"{' -> '.join(keys)} run back to back but no fuse group "
                             f"covers them. Add {keys} to the fuse groups.", anchor=chain[0].anchor,
                             fix=own_fix if plan.extend and keys in plan.extend[1] else None)
            generated = {child.qname for child, _ in plan.generate}
            for child, paths in () if fuses_unnamed_modules(model, root) else child_classes(model, root):
                if fuse_calls(model, child):
                    continue  # it declares its own groups: judged as a root
                for chain in fusible_chains(model, model.trace(child)):
                    keys = [call.key for call in chain]
                    if id(chain[0].node) in seen or names_cover(names, paths, keys):
                        continue
                    seen.add(id(chain[0].node))
                    yield Report(chain[0].node, f"{' -> '.join(keys)} run back to back in "
                                 f"{child.node.name.value}, a submodule of {root.node.name.value} (at "
                                 f"{paths[0]}), but no fuse group covers them: {root.node.name.value}'s "
                                 f"fusion leaves them unfused. Give {child.node.name.value} a fuse_model "
                                 f"that fuses {keys}, and call it from {root.node.name.value}'s.",
                                 anchor=chain[0].anchor, fix=children_fix if child.qname in generated else None)


_PLAIN = ("import torch.nn as nn\n\n\nclass Block(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
          "        self.conv = nn.Conv2d(8, 8, 3)\n        self.bn = nn.BatchNorm2d(8)\n        self.relu = nn.ReLU()\n\n"
          "    def forward(self, x):\n        return self.relu(self.bn(self.conv(x)))\n")
_PLAIN_NET = ("    def __init__(self):\n        super().__init__()\n"
              "        self.stem = nn.Conv2d(3, 8, 3)\n        self.stem_relu = nn.ReLU()\n"
              "        self.blocks = nn.Sequential(Block(), Block())\n\n"
              "    def forward(self, x):\n        return self.blocks(self.stem_relu(self.stem(x)))\n")
_GENERATED = ("\n    def fuse_model(self, is_qat=False):\n"
              "        fuse = fuse_modules_qat if is_qat else fuse_modules\n        fuse(self, {groups}, inplace=True)\n")


@register
class MissingFuseModel(Rule):
    code = "QL506"
    name = "missing-fuse-model"
    severity = WARNING
    opt_in = True
    summary = "A float model with fusible Conv/Linear/BN/ReLU runs and no fuse method"
    explanation = (
        "Eager-mode quantization fuses nothing by itself: a Conv->BN(->ReLU), Conv->ReLU, "
        "Linear->ReLU, Linear->BN or BN->ReLU run that no `fuse_modules` call names is quantized "
        "layer by layer, with a quantize step between the layers and BN not folded (lower "
        "accuracy and speed). A top-level model (one no class of the run calls) whose forward "
        "path, children included, has such runs and that has no fuse method in its hierarchy "
        "leaves all of them unfused. Opt-in: a float model that is never quantized needs no fuse "
        "method.")
    fix = ("Give the model a `fuse_model(self, is_qat=False)` that fuses every run (fuse_modules, or "
           "fuse_modules_qat for QAT), and call it before prepare; for runs inside submodule classes, "
           "give those classes one too and call it from the model's, as torchvision's quantizable "
           "models do.")
    fix_safety = UNSAFE
    fix_safety_note = (
        "The fix generates `fuse_model(self, is_qat=False)` for the model, fusing its own runs "
        "(members of its nn.Sequential submodules by index), and one for each submodule class of "
        "the file with runs, called from the model's (`for m in self.modules(): if type(m) is "
        "Block: m.fuse_model(is_qat)`), as QL503's fix does for submodule classes. The float model "
        "is unchanged until fusion runs, but when it runs the module tree changes (the fused "
        "module replaces the first member, Identity the others; state_dict keys move to "
        "`conv.0.weight`) and the quantized model computes with folded BN. Runs whose modules are "
        "also called elsewhere are left out (fusion would make the other call Identity). Not "
        "offered when a submodule class already fuses itself or has a `fuse_model`, is not a "
        "module-level class, or is also fused by another model of the file (it would be fused "
        "twice).")
    valid = ("import torch\n" + _PLAIN + "\n\nclass Net(nn.Module):\n" + _PLAIN_NET + "\n    def fuse_model(self):\n"
             "        for m in self.modules():\n            if type(m) is Block:\n"
             "                torch.ao.quantization.fuse_modules(m, [['conv', 'bn', 'relu']], inplace=True)\n",
             "import torch.nn as nn\n\n\nclass Head(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
             "        self.fc = nn.Linear(8, 2)\n\n    def forward(self, x):\n        return self.fc(x)\n")
    invalid = (
        Invalid(
            _PLAIN + "\n\nclass Net(nn.Module):  # expect: QL506\n" + _PLAIN_NET,
            fixed=("import torch.nn as nn\nfrom torch.ao.quantization import fuse_modules\n"
                   "from torch.ao.quantization import fuse_modules_qat\n")
            + _PLAIN[len("import torch.nn as nn\n"):] + _GENERATED.format(groups='[["conv", "bn", "relu"]]')
            + "\n\nclass Net(nn.Module):\n" + _PLAIN_NET + _GENERATED.format(groups='[["stem", "stem_relu"]]')
            + "        for m in self.modules():\n            if type(m) is Block:\n                m.fuse_model(is_qat)\n"),
    )

    def check(self, model):
        roots = list(fuse_roots(model))
        fix, generated = Fix(model), set()
        for cls in model.module_classes():
            if fuse_calls(model, cls) or any(model.index.hierarchy(cls.qname).defines(name) for name in _FUSE_METHODS) \
                    or not model.is_top_level(cls):
                continue
            trace = model.trace(cls)
            if not trace.found:
                continue
            runs = [[c.key for c in chain] for chain in fusible_chains(model, trace)]
            own = [keys for keys, chain in zip(runs, fusible_chains(model, trace)) if _called_once(trace, chain)] \
                + sequential_chains(model, cls, trace)
            runs += sequential_chains(model, cls, trace)
            children, reason = [], None
            for child, paths in child_classes(model, cls):
                child_trace = model.trace(child)
                chains = fusible_chains(model, child_trace)
                ran = [[c.key for c in chain] for chain in chains if _called_once(child_trace, chain)] \
                    + sequential_chains(model, child, child_trace)
                runs += [[f"{paths[0]}.{key}" for key in keys] for keys in
                         [[c.key for c in chain] for chain in chains] + sequential_chains(model, child, child_trace)]
                if not chains and not ran:
                    continue
                name = child.node.name.value
                if fuse_calls(model, child) or model.index.hierarchy(child.qname).defines("fuse_model"):
                    reason = reason or f"{name} already has a fuse method; call it from a fuse_model you write"
                elif not _generated_method_fits(model, child):
                    reason = reason or f"{name} is not a module-level class"
                elif any(child.qname in {c.qname for c, _ in child_classes(model, other)} for other, _ in roots):
                    reason = reason or f"{name} is also fused by another model of the file (it would be fused twice)"
                elif ran:
                    children.append((child, ran))
            if not runs:
                continue
            if reason is None and not own and not children:
                reason = "every run's modules are also called elsewhere (fusion would make those calls Identity)"
            shown = ", ".join(" -> ".join(keys) for keys in runs[:3]) + (", ..." if len(runs) > 3 else "")
            message = (f"{cls.node.name.value} runs {len(runs)} fusible sequence(s) ({shown}) but has no fuse "
                       f"method: eager quantization leaves them unfused. Give it a fuse_model that fuses them.")
            if reason is not None:
                yield Report(cls.node.name, message + f" Not fixed: {reason}.", anchor=cls.node)
                continue
            fresh = [(child, groups) for child, groups in children if child.qname not in generated]
            generated |= {child.qname for child, _ in fresh}
            _generate_fuse_models(model, fix, fresh)
            _add_fuse_model(model, fix, cls, own, [child for child, _ in children])
            yield Report(cls.node.name, message, anchor=cls.node, fix=fix)


_FUSE_METHODS = ("fuse_model", "fuse_modules", "fuse")


@dataclass
class FusePlan:
    """How QL503's fix fuses what a root class (one declaring fuse groups) leaves unfused."""

    extend: Optional[tuple]  # (FuseCall whose literal list grows, [groups to add])
    generate: list  # [(child ClassModel, [groups])]: child classes given a fuse_model
    hook: Optional[tuple]  # (root method, [child ClassModel], is_qat argument or None): calls theirs


def fuse_plan(model, root, calls) -> FusePlan:
    """What fixing the root's QL503 findings adds: its own unfused chains to its first literal
    fuse list of `self`'s names (one that names no missing submodule); for child classes with
    no fuse groups of their own, a `fuse_model(self, is_qat=False)` each, called from the
    root's fuse method as torchvision's quantizable models do. Declines (None / empty) where
    that could fuse a module twice."""
    names = {name for call in calls for g in call.groups for name, _ in g.names}
    groups = [{name for name, _ in g.names} for call in calls for g in call.groups]
    trace = model.trace(root)
    own = [[c.key for c in chain] for chain in fusible_chains(model, trace)
           if not any(group & {c.key for c in chain} for group in groups) and _called_once(trace, chain)]
    literal = next((call for call in calls if call.argument is not None and not any(
        _defines(model, root.qname, name) is False for g in call.groups for name, _ in g.names)), None)
    extend = (literal, own) if own and literal is not None else None
    generate, hooked = [], []
    method = calls[0].anchor
    is_qat = _is_qat_argument(method, calls)
    if _children_fixable(model, root, method, is_qat):
        for child, paths in child_classes(model, root):
            if fuse_calls(model, child) or not _generated_method_fits(model, child):
                continue
            child_trace = model.trace(child)
            ran = [[c.key for c in chain] for chain in fusible_chains(model, child_trace)
                   if _called_once(child_trace, chain)] + sequential_chains(model, child, child_trace)
            wanted = [g for g in ran if not names_cover(names, paths, g)]
            if wanted:
                generate.append((child, wanted))
                hooked.append(child)
    hook = (method, hooked, is_qat) if hooked else None
    return FusePlan(extend, generate, hook)


def _called_once(trace, chain) -> bool:
    """Whether every member of a chain is called once (fusion turns the others into Identity)."""
    keys = [c.key for c in chain]
    return all(sum(call.key == key for call in trace.calls) == 1 for key in keys)


_NO_ARGUMENT = ""


def _is_qat_argument(method, calls) -> Optional[str]:
    """What the root's fuse method passes on as `is_qat`: its own `is_qat` parameter, True for
    QAT fusion only, "" for eval fusion only; None when it cannot be told."""
    params = {p.name.value for p in method.params.params}
    if "is_qat" in params:
        return "is_qat"
    kinds = {call.qat for call in calls}
    if kinds == {True}:
        return "is_qat=True"
    if kinds == {False}:
        return _NO_ARGUMENT
    return None


def _children_fixable(model, root, method, is_qat) -> bool:
    """Children are fused from the root only when the root's fuse method dispatches nothing
    by type itself (a loop over modules may fuse them already), says how it fuses, and no
    other root of the file contains the root or shares its children (they would fuse twice)."""
    if is_qat is None or not isinstance(method.body, cst.IndentedBlock) \
            or any(isinstance(node, cst.For) for node in iter_nodes(method.body)):
        return False
    roots = [cls for cls, _ in fuse_roots(model) if cls is not root]
    mine = {child.qname for child, _ in child_classes(model, root)}
    for other in roots:
        theirs = {child.qname for child, _ in child_classes(model, other)}
        if root.qname in theirs or other.qname in mine or mine & theirs:
            return False
    return True


def _generated_method_fits(model, child) -> bool:
    """A module-level class with no `fuse_model` of its own or inherited."""
    index = model.index
    return child.qname == f"{model.module_name}.{child.node.name.value}" \
        and index.method_owner(child.qname, "fuse_model") is None \
        and "fuse_model" not in index.attrs(child.qname)


def _fixes(model, plan: FusePlan) -> tuple[Optional[Fix], Optional[Fix]]:
    """The fix of the root's own findings (its fuse list grows) and the one of its children's
    (a fuse_model per child class, called from the root's fuse method)."""
    own = None
    if plan.extend is not None:
        call, groups = plan.extend
        own = Fix.replacing(model, call.argument, _extended(model, call.argument, groups))
    children = None
    if plan.generate:
        children = Fix(model)
        _generate_fuse_models(model, children, plan.generate)
        method, hooked, is_qat = plan.hook
        last = method.body.body[-1]
        hook = _hook(model, method, hooked, is_qat)
        children.replace(last, cst.FlattenSentinel([hook, last]) if _returns(last) else cst.FlattenSentinel([last, hook]))
    return own, children


def _generate_fuse_models(model, fix: Fix, generate) -> None:
    """Give each class its generated `fuse_model(self, is_qat=False)`, fusing its groups."""
    for cls, groups in generate:
        _add_fuse_model(model, fix, cls, groups)


def _add_fuse_model(model, fix: Fix, cls, groups, hooked=()) -> None:
    holes = dict(fuse=TorchName(api.FUSE_EVAL), fuse_qat=TorchName(api.FUSE_QAT)) if groups else {}
    fix.add_method(cls, "fuse_model", _fuse_model_source(model, groups, hooked), **holes)


def _fuse_model_source(model, groups, hooked=()) -> str:
    """The generated method: its own groups fused, then (QL506) each of `hooked`'s instances'."""
    local = next(n for n in ("fuse", "fuse_function", "fuse_groups") if n not in model.globals)
    source = _FUSE_MODEL.format(groups=_groups_source(groups), local=local) if groups \
        else "def fuse_model(self, is_qat=False):\n"
    if hooked:
        source += "".join("    " + line + "\n" for line in _hook_source({"self", "is_qat", local}, hooked, "is_qat").splitlines())
    return source


# What QL503's fix gives a child class (torchvision's quantizable blocks fuse the same way);
# `local` is a name no module-level binding of the file has (the torch names are spelled
# through those).
_FUSE_MODEL = ("def fuse_model(self, is_qat=False):\n"
               "    {local} = {{fuse_qat}} if is_qat else {{fuse}}\n"
               "    {local}(self, {groups}, inplace=True)\n")


def _groups_source(groups: list[list[str]], quote: str = '"') -> str:
    return "[" + ", ".join("[" + ", ".join(f"{quote}{name}{quote}" for name in group) + "]" for group in groups) + "]"


def _extended(model, argument, groups: list[list[str]]) -> cst.BaseExpression:
    """The literal groups argument with `groups` appended, written in its quotes and commas."""
    strings = [n for n in iter_nodes(argument) if isinstance(n, cst.SimpleString)]
    quote = strings[0].quote if strings and strings[0].quote in ("'", '"') else '"'
    config = model.module.config_for_parsing
    new = [cst.Element(cst.parse_expression(_groups_source([g], quote)[1:-1], config)) for g in groups]
    elements = list(argument.elements)
    if all(isinstance(e.value, cst.SimpleString) for e in elements):  # one flat group: a list of two
        return cst.List([cst.Element(argument, comma=cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))), *new])
    last = elements[-1]
    opening = getattr(argument, "lbracket", None)
    if len(elements) > 1 and isinstance(elements[-2].comma, cst.Comma):
        separator = elements[-2].comma
    elif opening is not None and isinstance(opening.whitespace_after, cst.ParenthesizedWhitespace):
        separator = cst.Comma(whitespace_after=opening.whitespace_after)  # one group per line
    else:
        separator = cst.Comma(whitespace_after=cst.SimpleWhitespace(" "))
    elements[-1] = last.with_changes(comma=separator)
    for element in new[:-1]:
        elements.append(element.with_changes(comma=separator))
    elements.append(new[-1].with_changes(comma=last.comma))  # a trailing comma stays trailing
    return argument.with_changes(elements=elements)


def _hook(model, method, classes, is_qat) -> cst.BaseStatement:
    """`for m in self.modules(): if type(m) is Block: m.fuse_model(is_qat)` (torchvision's loop)."""
    used = {n.value for n in iter_nodes(method) if isinstance(n, cst.Name)}
    return cst.parse_statement(_hook_source(used, classes, is_qat), model.module.config_for_parsing)


def _hook_source(used, classes, is_qat) -> str:
    var = next(name for name in ("m", "module", "submodule", "child_module") + tuple(f"m{i}" for i in range(1, 99))
               if name not in used)
    names = [cls.node.name.value for cls in classes]
    test = f"type({var}) is {names[0]}" if len(names) == 1 else f"type({var}) in ({', '.join(names)})"
    return f"for {var} in self.modules():\n    if {test}:\n        {var}.fuse_model({is_qat})\n"


def _returns(statement) -> bool:
    return isinstance(statement, cst.SimpleStatementLine) and any(isinstance(s, cst.Return) for s in statement.body)


def fuse_roots(model):
    """The module classes of the file that declare fuse groups, all of them readable, with
    their fuse calls."""
    for cls in model.module_classes():
        calls = fuse_calls(model, cls)
        if calls and all(call.groups is not None for call in calls):
            yield cls, calls
