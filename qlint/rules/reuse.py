"""QL4xx: one module instance doing the work of several."""
from __future__ import annotations

from collections import defaultdict

from qlint.registry import WARNING, Rule, register
from qlint.rules.base import Report, forward_traces, short
from qlint.semantic import torch_api as api
from qlint.semantic.interpret import exclusive

_HEADER = ("import torch.nn as nn\nfrom torch.ao.nn.quantized import FloatFunctional\n"
           "from torch.ao.quantization import DeQuantStub, QuantStub\n\n\n")


def _class_name(cls) -> str:
    return short(cls) if cls and cls.startswith("torch.") else (cls or "module").rsplit(".", 1)[-1]


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
    valid = (
        _HEADER + "class Block(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.conv = nn.Conv2d(3, 3, 1)\n        self.relu1 = nn.ReLU()\n        self.relu2 = nn.ReLU()\n"
        "        self.pool = nn.MaxPool2d(2)\n        self.dequant = DeQuantStub()\n\n"
        "    def forward(self, x):\n        y = self.relu1(self.conv(x))\n"
        "        if self.training:\n            return self.dequant(self.pool(y))\n"
        "        return self.dequant(self.pool(self.relu2(y)))\n",
    )
    invalid = (
        _HEADER + "class Block(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.conv = nn.Conv2d(3, 3, 1)\n        self.relu = nn.ReLU()\n        self.quant = QuantStub()\n"
        "        self.dequant = DeQuantStub()\n\n"
        "    def forward(self, a, b):\n        a = self.quant(a)\n        b = self.quant(b)  # expect: QL401\n"
        "        y = self.relu(self.conv(a))\n        for _ in range(2):\n"
        "            y = self.conv(y)  # expect: QL401\n        return self.dequant(self.relu(y))  # expect: QL401\n",
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
                                     line_anchors={"first": earlier.anchor})


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
        _HEADER + "class Block(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.relu1 = nn.ReLU()\n        self.relu2 = self.relu1  # expect: QL402\n"
        "        act = nn.SiLU()\n"
        "        self.body = nn.Sequential(nn.Conv2d(3, 3, 1), act, nn.Conv2d(3, 3, 1), act)  # expect: QL402\n",
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
                                 anchor=alias.anchor)


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
    valid = (
        _HEADER + "class Merge(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.add = FloatFunctional()\n        self.mul = FloatFunctional()\n\n"
        "    def forward(self, a, b):\n        return self.mul.mul(self.add.add(a, b), b)\n",
    )
    invalid = (
        _HEADER + "class Merge(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
        "        self.ff = FloatFunctional()\n\n    def forward(self, a, b):\n"
        "        out = self.ff.add(a, b)\n        return self.ff.mul(out, b)  # expect: QL403\n",
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
                                     anchor=call.anchor, line_anchors={"first": earlier.anchor})
