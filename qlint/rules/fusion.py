"""QL501-QL503: fuse groups that name the wrong modules, or leave fusible ones out."""
from __future__ import annotations

from qlint.registry import ERROR, WARNING, Rule, register
from qlint.rules.base import Report
from qlint.semantic.interpret import exclusive
from qlint.semantic.fusion import fusible_chains, fuse_calls
from qlint.semantic.summaries import CONTAINER, MODULE, UNKNOWN

_HEADER = "import torch.nn as nn\nfrom torch.ao.quantization import fuse_modules\n\n\n"
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
        "between the layers, BN not folded, and lower accuracy and speed.")
    fix = "Add the run to the fuse groups (fuse_modules or fuse_modules_qat)."
    valid = (_BLOCK + "    def forward(self, x):\n        return self.relu(self.bn(self.conv(x)))\n\n"
             "    def fuse_model(self):\n        fuse_modules(self, [['conv', 'bn', 'relu']], inplace=True)\n",)
    invalid = (_HEADER + "class Block(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
               "        self.conv1 = nn.Conv2d(3, 8, 3)\n        self.relu1 = nn.ReLU()\n"
               "        self.conv2 = nn.Conv2d(8, 8, 3)\n        self.bn2 = nn.BatchNorm2d(8)\n\n"
               "    def forward(self, x):\n        y = self.relu1(self.conv1(x))\n"
               "        y = self.conv2(y)  # expect: QL503\n        return self.bn2(y)\n\n"
               "    def fuse_model(self):\n        fuse_modules(self, [['conv1', 'relu1']], inplace=True)\n",)

    def check(self, model):
        for cls in model.module_classes():
            calls = fuse_calls(model, cls)
            if not calls or any(call.groups is None for call in calls):
                continue  # no fuse groups, or some that cannot be read: nothing certain to say
            trace = model.trace(cls)
            groups = [{name for name, _ in g.names} for call in calls for g in call.groups]
            for chain in fusible_chains(model, trace):
                keys = [call.key for call in chain]
                if any(group & set(keys) for group in groups):
                    continue  # fused, partly fused on purpose, or a broken group (QL501/QL502)
                yield Report(chain[0].node, f"{' -> '.join(keys)} run back to back but no fuse group "
                             f"covers them. Add {keys} to the fuse groups.", anchor=chain[0].anchor)
