"""QL4xx: one module instance doing the work of several."""
from __future__ import annotations

import re
from collections import defaultdict
from typing import Optional

import libcst as cst

from qlint.fixes import Fix
from qlint.registry import UNSAFE, WARNING, Invalid, Rule, register
from qlint.rules.base import Report, forward_traces, short
from qlint.rules.rewrites import SPLITTABLE, constructor, copyable, local_constructor, site
from qlint.semantic import torch_api as api
from qlint.semantic.interpret import exclusive

_HEADER = ("import torch.nn as nn\nfrom torch.ao.nn.quantized import FloatFunctional\n"
           "from torch.ao.quantization import DeQuantStub, QuantStub\n\n\n")


def _class_name(cls) -> str:
    return short(cls) if cls and cls.startswith("torch.") else (cls or "module").rsplit(".", 1)[-1]


_SPLIT_NOTE = (
    "The fix builds a new instance with the constructor's own arguments (copied where they are "
    "literals, module-level names or parameters of `__init__` never rebound) and only for "
    "modules without parameters or buffers (activations, QuantStub, FloatFunctional): the "
    "state_dict keys stay the same and float outputs are equal, but the module tree changes "
    "(one more submodule). Not fixed: modules with parameters (splitting them would change "
    "the model), calls in loops (they need an nn.ModuleList), calls repeated by calling a "
    "helper method twice, instances bound in a base class.")


def _stem(name: str) -> str:
    """`relu1` -> `relu`: the stem new names grow from."""
    return re.sub(r"_?\d+$", "", name) or name


def _split(model, call, stem: str, holder: cst.Attribute) -> Optional[Fix]:
    """A new instance of the reused module for this call: `holder` (`self.relu`) names the new one."""
    if call.key is None or "." in call.key or call.in_loop or model.index.resolve(call.cls) not in SPLITTABLE \
            or not isinstance(holder.value, cst.Name) or holder.value.value != "self":
        return None
    where = site(model, call.node, call.anchor)
    if where is None or where.repeated:
        return None
    built = constructor(model, where.cls, call.key)
    if built is None or not copyable(model, where.cls.methods["__init__"], built):
        return None
    fix = Fix(model)
    member = fix.add_member(where.cls, stem, "{value}", after=call.key, value=built)
    fix.replace(holder.attr, "{name}", name=member)
    return fix


def _repeated(calls):
    """(call, earlier call or None) for each call that repeats an earlier one or runs in a loop."""
    for i, call in enumerate(calls):
        earlier = next((c for c in calls[:i] if not exclusive(c.branch, call.branch)), None)
        if earlier is not None or call.in_loop:
            yield call, earlier


@register
class ModuleReused(Rule):
    code = "QL401"
    name = "module-reused"
    severity = WARNING
    summary = "A submodule called at two places of the forward path, or in a loop"
    explanation = (
        "Eager quantization attaches observers and fusion by module: one `self.relu` called "
        "after conv1 and again after the residual add gets one observer for two different "
        "ranges, and `fuse_modules([['conv1', 'relu']])` replaces it with Identity, silently "
        "deleting the second activation. A QuantStub shared by two inputs gives both one "
        "scale. Stateless modules that keep their input's qparams (DeQuantStub, Identity, "
        "Dropout, Flatten, pooling, Upsample) are exempt; FloatFunctionals are QL403.")
    fix = "Give each use its own module instance (self.relu1, self.relu2; one QuantStub per input)."
    fix_safety = UNSAFE
    fix_safety_note = _SPLIT_NOTE
    valid = (
        _HEADER + "class Block(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.conv = nn.Conv2d(3, 3, 1)\n        self.relu1 = nn.ReLU()\n        self.relu2 = nn.ReLU()\n"
        "        self.pool = nn.MaxPool2d(2)\n        self.dequant = DeQuantStub()\n\n"
        "    def forward(self, x):\n        y = self.relu1(self.conv(x))\n"
        "        if self.training:\n            return self.dequant(self.pool(y))\n"
        "        return self.dequant(self.pool(self.relu2(y)))\n",
    )
    invalid = (
        Invalid(
            _HEADER + "class Block(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
            "        self.conv = nn.Conv2d(3, 3, 1)\n        self.relu = nn.ReLU()\n        self.quant = QuantStub()\n"
            "        self.dequant = DeQuantStub()\n\n"
            "    def forward(self, a, b):\n        a = self.quant(a)\n        b = self.quant(b)  # expect: QL401\n"
            "        y = self.relu(self.conv(a))\n        for _ in range(2):\n"
            "            y = self.conv(y)  # expect: QL401\n        return self.dequant(self.relu(y))  # expect: QL401\n",
            fixed=_HEADER + "class Block(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
            "        self.conv = nn.Conv2d(3, 3, 1)\n        self.relu = nn.ReLU()\n        self.relu_1 = nn.ReLU()\n"
            "        self.quant = QuantStub()\n        self.quant_1 = QuantStub()\n"
            "        self.dequant = DeQuantStub()\n\n"
            "    def forward(self, a, b):\n        a = self.quant(a)\n        b = self.quant_1(b)\n"
            "        y = self.relu(self.conv(a))\n        for _ in range(2):\n"
            "            y = self.conv(y)\n        return self.dequant(self.relu_1(y))\n"),
    )

    def check(self, model):
        for _, trace in forward_traces(model):
            by_key = defaultdict(list)
            for call in trace.calls:
                if call.op is None and call.key is not None and model.index.is_stateful(call.cls):
                    by_key[call.key].append(call)
            for key, calls in by_key.items():
                reported = set()
                for call, earlier in _repeated(calls):
                    if id(call.node) in reported:
                        continue
                    reported.add(id(call.node))
                    kind = _class_name(calls[0].cls)
                    if earlier is None:
                        yield Report(call.node, f"self.{key} is called inside a loop: every iteration "
                                     f"shares its observer and quantization parameters. Give each "
                                     f"iteration its own {kind} (an nn.ModuleList).", anchor=call.anchor)
                    elif earlier.node is call.node:
                        again = call.invocation[-1] if call.invocation else call.node
                        yield Report(call.node, f"self.{key} runs again here when the method around it "
                                     f"is called a second time (line {{again}}); both runs share one "
                                     f"module. Give each use its own {kind}.", lines={"again": again},
                                     anchor=call.anchor)
                    else:
                        consequence = ("fusion would replace it with Identity" if kind == "nn.ReLU"
                                       else "both calls share one observer")
                        yield Report(call.node, f"self.{key} is called again here (first call at line "
                                     f"{{first}}); {consequence}. Give each use its own {kind}.",
                                     lines={"first": earlier.node}, anchor=call.anchor,
                                     line_anchors={"first": earlier.anchor},
                                     fix=_split(model, call, _stem(key), call.node.func)
                                     if isinstance(call.node.func, cst.Attribute) else None)


@register
class ModuleAliased(Rule):
    code = "QL402"
    name = "module-aliased"
    severity = WARNING
    summary = "One module instance bound to two names or container positions"
    explanation = (
        "`self.relu2 = self.relu1` or `nn.Sequential(conv, act, conv2, act)` registers one "
        "instance twice. Fusion replaces only the fused name with Identity and keeps the "
        "other, and `prepare` gives the shared instance one observer for two places in the "
        "network: the two uses end up with the same quantization parameters.")
    fix = "Construct a new module for each name or position."
    fix_safety = UNSAFE
    fix_safety_note = _SPLIT_NOTE
    valid = (
        _HEADER + "class Block(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.relu1 = nn.ReLU()\n        self.relu2 = nn.ReLU()\n"
        "        act = nn.SiLU()\n        if self.relu1 is not None:\n"
        "            self.body = nn.Sequential(nn.Conv2d(3, 3, 1), act)\n"
        "        else:\n            self.body = nn.Sequential(nn.Conv2d(3, 3, 3), act)\n",
    )
    invalid = (
        _HEADER + "class Tower(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.query = nn.Linear(8, 8)\n\n\nclass Siamese(Tower):\n    def __init__(self):\n"
        "        super().__init__()\n        self.item = self.query  # expect: QL402\n"
        "        self.query = self.query.to('cpu')\n",
        Invalid(
            _HEADER + "class Block(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
            "        self.relu1 = nn.ReLU()\n        self.relu2 = self.relu1  # expect: QL402\n"
            "        act = nn.SiLU()\n"
            "        self.body = nn.Sequential(nn.Conv2d(3, 3, 1), act, nn.Conv2d(3, 3, 1), act)  # expect: QL402\n",
            fixed=_HEADER + "class Block(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
            "        self.relu1 = nn.ReLU()\n        self.relu2 = nn.ReLU()\n"
            "        act = nn.SiLU()\n"
            "        self.body = nn.Sequential(nn.Conv2d(3, 3, 1), act, nn.Conv2d(3, 3, 1), nn.SiLU())\n"),
    )

    def check(self, model):
        for cls in model.module_classes():
            for alias in cls.aliases:
                # An instance of unknown class bound twice ([layer] * n) is still one module twice.
                if alias.cls is None or (model.index.is_module_class(alias.cls)
                                         and model.index.is_stateful(alias.cls)):
                    yield Report(alias.node, f"this {_class_name(alias.cls) if alias.cls else 'module'} instance is already bound "
                                 f"as {alias.first}; binding it again as {alias.name} shares one "
                                 f"module (and one observer) between two places. Construct a new one.",
                                 anchor=alias.anchor, fix=_unalias(model, alias))


def _unalias(model, alias) -> Optional[Fix]:
    """The second binding of a parameter-free module gets a new instance, built as the first."""
    if model.index.resolve(alias.cls) not in SPLITTABLE:
        return None
    where = site(model, alias.node, alias.anchor)
    if where is None or where.method is not where.cls.methods.get("__init__"):
        return None
    node = alias.node
    if isinstance(node, cst.Attribute) and isinstance(node.value, cst.Name) and node.value.value == "self":
        built = constructor(model, where.cls, node.attr.value)
    elif isinstance(node, cst.Name):
        built = local_constructor(where.method, node.value)
    else:
        return None
    if built is None or not copyable(model, where.method, built):
        return None
    return Fix.replacing(model, node, "{value}", value=built)


@register
class FloatFunctionalReused(Rule):
    code = "QL403"
    name = "floatfunctional-reused"
    severity = WARNING
    summary = "One FloatFunctional used for several ops, or in a loop"
    explanation = (
        "A FloatFunctional carries the observer of its op's output. Used for two ops (an "
        "add, then a mul) or once per loop iteration, it records one range for outputs with "
        "different ranges, and every one of them is requantized with the wrong scale.")
    fix = "Create one FloatFunctional per op call (an nn.ModuleList of them for a loop)."
    fix_safety = UNSAFE
    fix_safety_note = _SPLIT_NOTE
    valid = (
        _HEADER + "class Merge(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.add = FloatFunctional()\n        self.mul = FloatFunctional()\n\n"
        "    def forward(self, a, b):\n        return self.mul.mul(self.add.add(a, b), b)\n",
    )
    invalid = (
        Invalid(
            _HEADER + "class Merge(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
            "        self.ff = FloatFunctional()\n\n    def forward(self, a, b):\n"
            "        out = self.ff.add(a, b)\n        return self.ff.mul(out, b)  # expect: QL403\n",
            fixed=_HEADER + "class Merge(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
            "        self.ff = FloatFunctional()\n        self.mul = FloatFunctional()\n\n    def forward(self, a, b):\n"
            "        out = self.ff.add(a, b)\n        return self.mul.mul(out, b)\n"),
    )

    def check(self, model):
        for _, trace in forward_traces(model):
            by_key = defaultdict(list)
            for call in trace.calls:
                if call.op in api.FLOAT_FUNCTIONAL_OPS and call.key is not None:
                    by_key[call.key].append(call)
            for key, calls in by_key.items():
                for call, earlier in _repeated(calls):
                    if earlier is None:
                        yield Report(call.node, f"self.{key}.{call.op} runs in a loop: one observer for "
                                     "every iteration's output. Use one FloatFunctional per iteration "
                                     "(an nn.ModuleList).", anchor=call.anchor)
                    elif earlier.node is not call.node:
                        yield Report(call.node, f"self.{key} is used again here (first for .{earlier.op} "
                                     f"at line {{first}}); one observer for two outputs. Give this "
                                     f".{call.op} its own FloatFunctional.", lines={"first": earlier.node},
                                     anchor=call.anchor, line_anchors={"first": earlier.anchor},
                                     fix=_split(model, call, call.op, call.node.func.value)
                                     if isinstance(call.node.func, cst.Attribute)
                                     and isinstance(call.node.func.value, cst.Attribute) else None)
