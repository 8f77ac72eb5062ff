"""QL7xx: where quantized and float tensors meet. QuantStubs, DeQuantStubs and the modules
convert() swaps set the quantization state of every tensor (`qlint/semantic/values.py`); these
rules report a value crossing a boundary the wrong way, in some context the run gives the
code (see `ProjectIndex.contexts`), and stubs that cannot do what they were built for."""
from __future__ import annotations

import libcst as cst

from qlint.fixes import Fix, TorchName
from qlint.registry import ERROR, UNSAFE, WARNING, Invalid, Rule, register
from qlint.rules.base import Report, short, snippet
from qlint.semantic import torch_api as api
from qlint.semantic.index import FLOAT_INTO_QUANTIZED, QUANTIZE_TWICE, QUANTIZED_INTO_FLOAT
from qlint.semantic.interpret import is_self
from qlint.semantic.summaries import MODULE
from qlint.semantic.values import QUANTIZED, UNKNOWN_STATE, Seq, Tensor, activation_states
from qlint.semantic.walk import iter_nodes

_HEADER = ("import torch\nimport torch.nn as nn\nfrom torch.ao.nn.quantized import FloatFunctional\n"
           "from torch.ao.quantization import DeQuantStub, QuantStub\n\n\n")
_INIT = "    def __init__(self):\n        super().__init__()\n"


def _crossings(model, problem: str, with_trace: bool = False):
    """The wrong-way crossings of one kind in any run of the file, once per node."""
    seen = set()
    for trace in model.runs():
        for crossing in trace.crossings:
            if crossing.problem == problem and id(crossing.node) not in seen:
                seen.add(id(crossing.node))
                yield (trace, crossing) if with_trace else crossing


def _entry_forward(model, cls):
    """The class's own forward, with its tensor parameters (after self) as written."""
    forward = cls.methods.get("forward")
    if forward is None or not isinstance(forward.body, cst.IndentedBlock):
        return None, []
    params = forward.params
    names = [p.name.value for p in (*params.posonly_params, *params.params)]
    return forward, names[1:] if names and names[0] == "self" else []


def _sole_read(func: cst.FunctionDef, name_node: cst.Name) -> bool:
    """Whether `name_node` is the only read of the parameter's value: nothing before its
    statement mentions the name, and after it the name is either rebound by that statement
    (`depth = self.conv(depth)`) or never mentioned again."""
    name = name_node.value
    statements = list(func.body.body)
    position = next((i for i, s in enumerate(statements) if any(n is name_node for n in iter_nodes(s))), None)
    if position is None or any(_uses(s, name) for s in statements[:position]):
        return False
    statement = statements[position]
    rebound = isinstance(statement, cst.SimpleStatementLine) and len(statement.body) == 1 \
        and isinstance(statement.body[0], cst.Assign) and len(statement.body[0].targets) == 1 \
        and isinstance(statement.body[0].targets[0].target, cst.Name) and statement.body[0].targets[0].target.value == name
    others = [n for n in _uses(statement, name) if n is not name_node
              and not (rebound and n is statement.body[0].targets[0].target)]
    if others:
        return False
    return rebound or not any(_uses(s, name) for s in statements[position + 1:])


def _uses(node, name: str) -> list[cst.Name]:
    """The Name nodes reading or binding `name` under a node, in source order."""
    return [n for n in iter_nodes(node) if isinstance(n, cst.Name) and n.value == name]


def _submodule_argument(func: cst.FunctionDef, name_node: cst.Name, attrs) -> bool:
    """Whether the Name is the first positional argument of a call of one of self's submodules,
    in a top-level statement of the function."""
    for statement in func.body.body:
        for node in iter_nodes(statement):
            if isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute) and is_self(node.func.value) \
                    and node.args and node.args[0].keyword is None and not node.args[0].star \
                    and node.args[0].value is name_node:
                info = attrs.get(node.func.attr.value)  # not in a branch or loop: in a simple statement
                return info is not None and info.kind == MODULE and isinstance(statement, cst.SimpleStatementLine)
    return False


def _stubs_of(model, cls) -> set:
    index = model.index
    return {index.resolve(a.cls) for a in index.attrs(cls.qname).values() if a.cls}


def _module(crossing) -> str:
    name = f"self.{crossing.key}" if crossing.key else "this module"
    cls = short(crossing.cls) if crossing.cls and crossing.cls.startswith("torch.") else (crossing.cls or "?").rsplit(".", 1)[-1]
    return f"{name} ({cls})"


@register
class FloatIntoQuantized(Rule):
    code = "QL701"
    name = "float-into-quantized"
    severity = ERROR
    summary = "A float tensor passed to a module that convert() replaces by a quantized one"
    explanation = (
        "After `convert()`, Conv, Linear, BatchNorm, the fused modules and FloatFunctional are "
        "quantized modules that take quantized tensors. A tensor that never went through a "
        "QuantStub (a second forward input, in a class that quantizes the first) or that came "
        "out of a DeQuantStub is float there, and the model raises at the first forward: "
        "`NotImplementedError: Could not run 'quantized::conv2d.new' with arguments from the "
        "'CPU' backend`. The float model and the prepared model run; only the converted one fails.")
    fix = ("Quantize the tensor first (one QuantStub per input), or keep the module float with "
           "`self.module.qconfig = None` between a DeQuantStub and a QuantStub.")
    valid = (
        _HEADER + "class TwoInputs(nn.Module):\n" + _INIT +
        "        self.quant_image, self.quant_depth = QuantStub(), QuantStub()\n"
        "        self.image_conv = nn.Conv2d(3, 8, 3)\n        self.depth_conv = nn.Conv2d(1, 8, 3)\n"
        "        self.dequant = DeQuantStub()\n\n"
        "    def forward(self, image, depth):\n"
        "        image = self.image_conv(self.quant_image(image))\n"
        "        depth = self.depth_conv(self.quant_depth(depth))\n"
        "        return self.dequant(image), self.dequant(depth)\n",
        _HEADER + "class Refine(nn.Module):\n" + _INIT +
        "        self.quant = QuantStub()\n        self.conv1 = nn.Conv2d(3, 8, 3)\n"
        "        self.dequant = DeQuantStub()\n        self.conv2 = nn.Conv2d(8, 8, 3)\n"
        "        self.conv2.qconfig = None  # a float island\n\n"
        "    def forward(self, x):\n        x = self.dequant(self.conv1(self.quant(x)))\n"
        "        return self.conv2(x)\n",
    )
    invalid = (
        Invalid(
            _HEADER + "class TwoInputs(nn.Module):\n" + _INIT +
            "        self.quant = QuantStub()\n        self.image_conv = nn.Conv2d(3, 8, 3)\n"
            "        self.depth_conv = nn.Conv2d(1, 8, 3)\n        self.dequant = DeQuantStub()\n\n"
            "    def forward(self, image, depth):\n"
            "        image = self.image_conv(self.quant(image))\n"
            "        depth = self.depth_conv(depth)  # expect: QL701\n"
            "        return self.dequant(image), self.dequant(depth)\n",
            fixed=_HEADER + "class TwoInputs(nn.Module):\n" + _INIT +
            "        self.quant = QuantStub()\n        self.quant_depth = QuantStub()\n"
            "        self.image_conv = nn.Conv2d(3, 8, 3)\n"
            "        self.depth_conv = nn.Conv2d(1, 8, 3)\n        self.dequant = DeQuantStub()\n\n"
            "    def forward(self, image, depth):\n"
            "        image = self.image_conv(self.quant(image))\n"
            "        depth = self.depth_conv(self.quant_depth(depth))\n"
            "        return self.dequant(image), self.dequant(depth)\n"),
        _HEADER + "class Refine(nn.Module):\n" + _INIT +
        "        self.quant = QuantStub()\n        self.conv1 = nn.Conv2d(3, 8, 3)\n"
        "        self.dequant = DeQuantStub()\n        self.conv2 = nn.Conv2d(8, 8, 3)\n\n"
        "    def forward(self, x):\n        x = self.dequant(self.conv1(self.quant(x)))\n"
        "        return self.conv2(x)  # expect: QL701\n",
    )

    fix_safety = UNSAFE
    fix_safety_note = (
        "Where the float tensor is a forward input of a top-level model (one no class calls) that "
        "quantizes its other inputs, used once, directly as a submodule's input, and the model has a "
        "DeQuantStub, the fix builds a QuantStub for it in `__init__` (`self.quant_depth = "
        "QuantStub()`) and applies it there. The float model computes the same (a QuantStub is the "
        "identity until convert) and the state_dict keys stay, but the module tree gains a "
        "submodule and the converted model quantizes that input. Elsewhere (a DeQuantStub output, "
        "a float island) the right boundary is a design choice: no fix.")

    def check(self, model):
        for trace, crossing in _crossings(model, FLOAT_INTO_QUANTIZED, with_trace=True):
            yield Report(crossing.node, f"{_module(crossing)} is given a float tensor here (it never went "
                         "through a QuantStub, or came out of a DeQuantStub); after convert() the quantized "
                         "module raises on it. Quantize it first, or give the module qconfig = None.",
                         anchor=crossing.anchor, fix=self._quantize_input(model, trace, crossing))

    @staticmethod
    def _quantize_input(model, trace, crossing):
        """A QuantStub on the forward input the module is given, when that is unambiguous."""
        cls, call = trace.cls, crossing.node
        if cls is None or not isinstance(call, cst.Call) or not call.args:
            return None
        forward, params = _entry_forward(model, cls)
        argument = call.args[0].value
        if forward is None or crossing.anchor is not forward or not isinstance(argument, cst.Name) \
                or argument.value not in params or not model.is_top_level(cls) \
                or api.DEQUANT_STUB not in _stubs_of(model, cls):
            return None
        if not _sole_read(forward, argument) or not _submodule_argument(forward, argument, model.index.attrs(cls.qname)):
            return None
        fix = Fix(model)
        quant = next((n for n, a in model.index.attrs(cls.qname).items() if model.index.resolve(a.cls) == api.QUANT_STUB), None)
        stub = fix.add_member(cls, f"quant_{argument.value}", "{QuantStub}()", after=quant,
                              QuantStub=TorchName(api.QUANT_STUB))
        fix.replace(argument, "self.{stub}({x})", stub=stub, x=argument)
        return fix


@register
class QuantizedIntoFloat(Rule):
    code = "QL702"
    name = "quantized-into-float"
    severity = ERROR
    summary = "A quantized tensor combined with a float one, or passed to a module kept float"
    explanation = (
        "A tensor that went through a QuantStub (and the modules convert() swaps) is quantized "
        "after `convert()`. Added to, concatenated or multiplied with a float tensor, it raises "
        "(`promoteTypes with quantized numbers is not handled yet`); passed to a module whose "
        "`qconfig` is None, which convert() leaves float, it meets float kernels and raises. "
        "The value mixed is unknown afterwards, so one mistake is reported once.")
    fix = "Put a DeQuantStub on the quantized tensor first (or a QuantStub on the float one)."
    valid = (
        _HEADER + "class Residual(nn.Module):\n" + _INIT +
        "        self.quant = QuantStub()\n        self.conv = nn.Conv2d(3, 3, 3, padding=1)\n"
        "        self.dequant = DeQuantStub()\n\n"
        "    def forward(self, x):\n        y = self.dequant(self.conv(self.quant(x)))\n"
        "        return torch.cat([y, x], dim=1)\n",
    )
    invalid = (
        _HEADER + "class Residual(nn.Module):\n" + _INIT +
        "        self.quant = QuantStub()\n        self.conv = nn.Conv2d(3, 3, 3, padding=1)\n"
        "        self.dequant = DeQuantStub()\n\n"
        "    def forward(self, x):\n        y = self.conv(self.quant(x))\n"
        "        return self.dequant(torch.cat([y, x], dim=1))  # expect: QL302, QL702\n",
        _HEADER + "class WithFloatHead(nn.Module):\n" + _INIT +
        "        self.quant = QuantStub()\n        self.conv = nn.Conv2d(3, 8, 3)\n"
        "        self.head = nn.Linear(8, 2)\n        self.head.qconfig = None\n\n"
        "    def forward(self, x):\n        y = self.conv(self.quant(x)).mean((2, 3))\n"
        "        return self.head(y)  # expect: QL702\n",
    )

    def check(self, model):
        for crossing in _crossings(model, QUANTIZED_INTO_FLOAT):
            if crossing.cls is not None:
                message = (f"{_module(crossing)} has qconfig = None and stays float, but it is given a "
                           "quantized tensor here; after convert() its float kernels raise. Put a "
                           "DeQuantStub before it.")
            else:
                message = (f"`{snippet(model, crossing.node)}` combines a quantized tensor with a float "
                           "one; after convert() this raises. DeQuantStub the quantized one first (or "
                           "quantize the float one).")
            yield Report(crossing.node, message, anchor=crossing.anchor)


@register
class QuantizeTwice(Rule):
    code = "QL703"
    name = "quantize-twice"
    severity = ERROR
    summary = "A QuantStub applied to a tensor that is already quantized"
    explanation = (
        "convert() replaces each QuantStub with a Quantize module that calls "
        "`quantize_per_tensor`, which has no QuantizedCPU kernel: given a tensor that is "
        "already quantized it raises `Could not run 'aten::quantize_per_tensor' with arguments "
        "from the 'QuantizedCPU' backend`. It happens when a block with its own QuantStub is "
        "called by a parent that quantized first.")
    fix = "Quantize once: drop the inner QuantStub (and its DeQuantStub), or the parent's."
    valid = (
        _HEADER + "class Block(nn.Module):\n" + _INIT +
        "        self.conv = nn.Conv2d(8, 8, 3, padding=1)\n\n"
        "    def forward(self, x):\n        return self.conv(x)\n\n\n"
        "class Net(nn.Module):\n" + _INIT +
        "        self.quant = QuantStub()\n        self.stem = nn.Conv2d(3, 8, 3)\n"
        "        self.block = Block()\n        self.dequant = DeQuantStub()\n\n"
        "    def forward(self, x):\n        return self.dequant(self.block(self.stem(self.quant(x))))\n",
    )
    invalid = (
        _HEADER + "class Block(nn.Module):\n" + _INIT +
        "        self.quant = QuantStub()\n        self.conv = nn.Conv2d(8, 8, 3, padding=1)\n"
        "        self.dequant = DeQuantStub()\n\n"
        "    def forward(self, x):\n        return self.dequant(self.conv(self.quant(x)))  # expect: QL703\n\n\n"
        "class Net(nn.Module):\n" + _INIT +
        "        self.quant = QuantStub()\n        self.stem = nn.Conv2d(3, 8, 3)\n        self.block = Block()\n\n"
        "    def forward(self, x):\n        return self.block(self.stem(self.quant(x)))\n",
    )

    def check(self, model):
        for crossing in _crossings(model, QUANTIZE_TWICE):
            yield Report(crossing.node, f"{_module(crossing)} quantizes a tensor that is already quantized "
                         "here (its caller quantized it); after convert() quantize_per_tensor raises on "
                         "it. Quantize once.", anchor=crossing.anchor)


@register
class UnusedStub(Rule):
    code = "QL704"
    name = "unused-stub"
    severity = WARNING
    summary = "A QuantStub or DeQuantStub never called, or quantized outputs never dequantized"
    explanation = (
        "A stub built in `__init__` but never called on the forward path quantizes nothing: its "
        "observer never sees data, convert() warns `must run observer before calling "
        "calculate_qparams` and the tensor it was meant for stays float (usually a renamed or "
        "forgotten call). A class with QuantStubs and no DeQuantStub at all, that no other class "
        "calls, returns quantized tensors to whoever runs it.")
    fix = "Call the stub on its input in forward (or delete it); end the quantized region with a DeQuantStub."
    valid = (
        _HEADER + "class Net(nn.Module):\n" + _INIT +
        "        self.quant = QuantStub()\n        self.conv = nn.Conv2d(3, 8, 3)\n"
        "        self.dequant = DeQuantStub()\n\n"
        "    def forward(self, x):\n        return self.dequant(self.conv(self.quant(x)))\n",
    )
    invalid = (
        _HEADER + "class Net(nn.Module):\n" + _INIT +
        "        self.quant = QuantStub()\n        self.quant_mask = QuantStub()  # expect: QL704\n"
        "        self.conv = nn.Conv2d(3, 8, 3)\n        self.dequant = DeQuantStub()\n\n"
        "    def forward(self, x, mask):\n        return self.dequant(self.conv(self.quant(x))), mask\n",
        Invalid(
            _HEADER + "class Encoder(nn.Module):\n" + _INIT +
            "        self.quant = QuantStub()\n        self.conv = nn.Conv2d(3, 8, 3)\n\n"
            "    def forward(self, x):\n        return self.conv(self.quant(x))  # expect: QL704\n",
            fixed=_HEADER + "class Encoder(nn.Module):\n" + _INIT +
            "        self.quant = QuantStub()\n        self.conv = nn.Conv2d(3, 8, 3)\n"
            "        self.dequant = DeQuantStub()\n\n"
            "    def forward(self, x):\n        return self.dequant(self.conv(self.quant(x)))\n"),
        Invalid(
            _HEADER + "class Net(nn.Module):\n" + _INIT +
            "        self.quant = QuantStub()  # expect: QL704\n        self.conv = nn.Conv2d(3, 8, 3)\n"
            "        self.dequant = DeQuantStub()\n\n"
            "    def forward(self, x):\n        x = self.conv(x)\n        return self.dequant(x)\n",
            fixed=_HEADER + "class Net(nn.Module):\n" + _INIT +
            "        self.quant = QuantStub()\n        self.conv = nn.Conv2d(3, 8, 3)\n"
            "        self.dequant = DeQuantStub()\n\n"
            "    def forward(self, x):\n        x = self.conv(self.quant(x))\n        return self.dequant(x)\n"),
    )

    fix_safety = UNSAFE
    fix_safety_note = (
        "In a top-level model (one no class calls): a model that quantizes and has no DeQuantStub "
        "gets one (`self.dequant = DeQuantStub()`) applied to each quantized tensor it returns "
        "(each element of a returned tuple); a QuantStub never called, in a model whose forward "
        "takes one input, calls no other QuantStub and has a DeQuantStub, is applied to that input "
        "where a submodule first takes it. The float model computes the same (stubs are the "
        "identity until convert) and the state_dict keys stay, but the module tree gains a "
        "submodule and the converted model quantizes or dequantizes there. No fix where the "
        "boundary is ambiguous: several inputs, a return whose state is unknown, a first use in a "
        "branch or outside a submodule call.")

    def check(self, model):
        index = model.index
        for cls in model.module_classes():
            if cls.stub_nodes:
                hierarchy = index.hierarchy(cls.qname)
                if hierarchy.known:
                    for name, node in cls.stub_nodes.items():
                        if hierarchy.reads_on_forward_path(name) is False:
                            yield Report(node, f"self.{name} is built here but never called on the forward "
                                         "path: it quantizes nothing (its observer never runs). Call it "
                                         "on its input in forward, or delete it.",
                                         anchor=_member(cls, "__init__"), fix=self._call_at_entry(model, cls, name))
            yield from self._quantized_returns(model, cls)

    @staticmethod
    def _call_at_entry(model, cls, name):
        """The unused QuantStub applied to the model's one input where a submodule first takes it."""
        index = model.index
        attrs = index.attrs(cls.qname)
        forward, params = _entry_forward(model, cls)
        if forward is None or len(params) != 1 or forward.params.star_arg not in (None, cst.MaybeSentinel.DEFAULT) \
                or forward.params.star_kwarg is not None or forward.params.kwonly_params \
                or index.resolve(attrs[name].cls) != api.QUANT_STUB or not model.is_top_level(cls):
            return None
        unused = [n for n, a in attrs.items() if n in cls.stub_nodes and index.resolve(a.cls) == api.QUANT_STUB
                  and index.hierarchy(cls.qname).reads_on_forward_path(n) is False]
        called = {index.resolve(call.cls) for call in model.trace(cls).calls}
        if unused != [name] or api.QUANT_STUB in called or api.DEQUANT_STUB not in called:
            return None
        targets = {id(t.target) for n in iter_nodes(forward.body) if isinstance(n, cst.Assign) for t in n.targets}
        reads = [n for n in _uses(forward.body, params[0]) if id(n) not in targets]
        if not reads or not _sole_read(forward, reads[0]) or not _submodule_argument(forward, reads[0], attrs):
            return None
        return Fix.replacing(model, reads[0], "self.{stub}({x})", stub=cst.Name(name), x=reads[0])

    @staticmethod
    def _quantized_returns(model, cls):
        index = model.index
        stubs = {index.resolve(a.cls) for a in index.attrs(cls.qname).values() if a.cls} | {
            index.resolve(member) for a in index.attrs(cls.qname).values() for _, member in a.members or ()}
        if api.QUANT_STUB not in stubs or api.DEQUANT_STUB in stubs:
            return
        trace = model.trace(cls)
        if trace.context is None or trace.context.known:
            return  # another class calls it: the caller may dequantize
        reported = [(node, value, anchor) for node, value, anchor in trace.returns
                    if QUANTIZED in activation_states([value])]
        fix = UnusedStub._dequantize_returns(model, cls, trace) if reported else None
        for node, value, anchor in reported:
            yield Report(node, f"{cls.node.name.value} quantizes its input and has no DeQuantStub: this "
                         "returns a quantized tensor to whoever runs the model. Add a DeQuantStub "
                         "before returning.", anchor=anchor, fix=fix)

    @staticmethod
    def _dequantize_returns(model, cls, trace):
        """A new DeQuantStub applied to every quantized tensor the forward returns; None when a
        return's state is not known element by element."""
        forward, _ = _entry_forward(model, cls)
        if forward is None or any(anchor is not forward for _, _, anchor in trace.returns):
            return None
        wrapped, float_returns = [], False
        for node, value, _ in trace.returns:
            if node.value is None:
                continue
            if isinstance(value, Seq) and isinstance(node.value, cst.Tuple) and len(value.items) == len(
                    node.value.elements) and not any(isinstance(e, cst.StarredElement) for e in node.value.elements):
                pairs = [(e.value, item) for e, item in zip(node.value.elements, value.items)]
            else:
                pairs = [(node.value, value)]
            for expr, item in pairs:
                states = activation_states([item])
                if isinstance(item, Seq) or (isinstance(item, Tensor) and item.activation and item.state is UNKNOWN_STATE) \
                        or (QUANTIZED in states and (not isinstance(item, Tensor) or len(states) > 1)):
                    return None  # quantized or not, it cannot be told here
                if QUANTIZED in states:
                    wrapped.append(expr)
                elif states:
                    float_returns = True
        if not wrapped or float_returns:
            return None  # some paths return float activations: the exit is the author's choice
        fix = Fix(model)
        stub = fix.add_member(cls, "dequant", "{DeQuantStub}()", DeQuantStub=TorchName(api.DEQUANT_STUB))
        for expr in wrapped:
            fix.replace(expr, "self.{stub}({x})", stub=stub, x=expr)
        return fix


def _member(cls, name: str):
    return cls.methods.get(name)


@register
class UndefinedSubmodule(Rule):
    code = "QL705"
    name = "undefined-submodule"
    severity = ERROR
    summary = "forward calls a self.<name> that no class of a fully known hierarchy defines"
    explanation = (
        "nn.Module looks attributes up in its parameters, buffers and submodules and raises "
        "`AttributeError: 'Net' object has no attribute 'relu'` for anything else. Calls left "
        "behind by a rename (ReLUs renamed relu1/relu2 for fusion, `self.dequant_stub` called "
        "but never built) fail at the first forward. Reported only when the class and every base "
        "and subclass are known and nothing binds attributes by computed name (setattr, "
        "add_module) or through a `__getattr__` of their own.")
    fix = "Call the attribute `__init__` builds, or build the one forward calls."
    valid = (
        _HEADER + "class Net(nn.Module):\n" + _INIT +
        "        self.conv = nn.Conv2d(3, 8, 3)\n        self.relu1 = nn.ReLU()\n\n"
        "    def forward(self, x):\n        return self.relu1(self.conv(x))\n",
        _HEADER + "class Lazy(nn.Module):\n" + _INIT +
        "        for i in range(2):\n            setattr(self, f'conv{i}', nn.Conv2d(3, 3, 1))\n\n"
        "    def forward(self, x):\n        return self.conv1(self.conv0(x))\n",
    )
    invalid = (
        _HEADER + "class Net(nn.Module):\n" + _INIT +
        "        self.quant = QuantStub()\n        self.conv = nn.Conv2d(3, 8, 3)\n"
        "        self.relu1 = nn.ReLU()\n        self.dequant = DeQuantStub()\n\n"
        "    def forward(self, x):\n        x = self.relu(self.conv(self.quant(x)))  # expect: QL705\n"
        "        return self.dequant(x)\n",
    )

    def check(self, model):
        seen = set()
        for trace in model.runs():
            if trace.cls is None or not trace.undefined:
                continue
            receiver = trace.context.receiver if trace.context and trace.context.receiver else trace.cls.qname
            hierarchy = model.index.hierarchy(receiver)
            if not hierarchy.known:
                continue
            for call, name, anchor in trace.undefined:
                if id(call) not in seen and not hierarchy.defines(name) and name not in trace.guarded:
                    seen.add(id(call))
                    yield Report(call, f"self.{name} is called here, but {receiver.rsplit('.', 1)[-1]} and its "
                                 f"bases never define {name}: the first forward raises AttributeError. "
                                 "Call the attribute __init__ builds, or build this one.", anchor=anchor)
