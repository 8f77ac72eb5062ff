"""Which quantization flow made a model, and its quantization points, for every flow.

The one layer the checks (and reports built on them) use to enumerate what quantizes a
model, whatever the flow:

- ``flow_of(model)``: ``"eager"`` (an ``nn.Module`` prepared/converted in place, or by
  ``quantize_dynamic``), ``"fx"`` (a ``GraphModule`` from ``prepare_fx``/``convert_fx``:
  module and Python-function calls) or ``"pt2e"`` (a ``GraphModule`` exported by
  ``torch.export``: ATen operators; torchao's ``prepare_pt2e``/``convert_pt2e``).
- ``quant_points(model)``: each fake-quant module and each observer not inside one, with
  where it quantizes (``QuantPoint``); ``observers(model)``: every observer, those inside
  fake-quants included.  In graph flows a point is named by its module and the graph node
  that calls it, and placed by the source module path of the operators it feeds or
  follows (``nn_module_stack``).
- ``quantized_layers(model)``: the layers of a converted model (eager/FX: quantized modules;
  PT2E: conv/linear nodes with what reaches their input and weight).

Nothing here changes the model.
"""

from __future__ import annotations

import fnmatch
from functools import partial
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from qlint.runtime._machinery import is_fake_quant, is_observer, is_quant_machinery
from qlint.runtime._torch import require_torch

if TYPE_CHECKING:
    from torch import fx, nn

EAGER, FX, PT2E = "eager", "fx", "pt2e"


def flow_of(model: nn.Module) -> str:
    """``"pt2e"`` for an exported (ATen) graph, ``"fx"`` for another GraphModule, else ``"eager"``."""
    torch = require_torch()
    if not isinstance(model, torch.fx.GraphModule):
        return EAGER
    for node in model.graph.nodes:
        if node.op == "call_function" and _is_aten(node.target):
            return PT2E
    return FX


def _is_aten(target: Any) -> bool:
    torch = require_torch()
    return isinstance(target, torch._ops.OpOverload) and target.namespace == "aten"


def is_graph(model: nn.Module) -> bool:
    return flow_of(model) != EAGER


# -- graph nodes ------------------------------------------------------------------------


def module_path(node: fx.Node) -> str | None:
    """The qualified name of the innermost source module a graph node came from.

    Read from ``node.meta["nn_module_stack"]`` (``torch.export`` and FX tracing record it;
    its entries are ``(path, type)``).  Entries that name no module of the model (the
    root, torchao's ``WrapperModule`` of replaced patterns) are skipped.
    """
    stack = node.meta.get("nn_module_stack") or {}
    for path, kind in reversed(list(stack.values())):
        kind_name = kind if isinstance(kind, str) else f"{kind.__module__}.{kind.__qualname__}"
        if path and not kind_name.endswith("export_utils.WrapperModule"):
            return path
    return None


def node_text(node: fx.Node) -> str:
    """``node `relu` (from `layer1.0.relu`)``, or ``model input `x``` for a placeholder."""
    if node.op == "placeholder":
        return f"model input `{node.name}`"
    path = module_path(node)
    return f"node `{node.name}`" + (f" (from `{path}`)" if path else "")


_CONV_LINEAR = ("conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
                "conv_transpose3d", "linear", "convolution")


def is_conv_or_linear(node: fx.Node) -> bool:
    """An ATen conv/linear call (``aten.conv2d.default``, ``aten.linear.default``, ...)."""
    target = node.target
    return (
        node.op == "call_function"
        and _is_aten(target)
        and target._schema.name.removeprefix("aten::") in _CONV_LINEAR
    )


def _call_nodes(model: nn.Module) -> dict[int, list[fx.Node]]:
    """id(module) -> the ``call_module`` nodes that call it, in graph order."""
    calls: dict[int, list[fx.Node]] = {}
    for node in model.graph.nodes:
        if node.op == "call_module":
            try:
                called = model.get_submodule(node.target)
            except AttributeError:
                continue
            calls.setdefault(id(called), []).append(node)
    return calls


# Train-mode switch of each BatchNorm/dropout operator an exported graph may hold: the
# position of its ``training`` argument, True (always training) or False (never).
_MODE_ARGUMENT = {
    "batch_norm": 5,
    "native_batch_norm": 5,
    "_native_batch_norm_legit": 5,
    "cudnn_batch_norm": 5,
    "_batch_norm_with_update": True,
    "_native_batch_norm_legit_no_training": False,
    "_batch_norm_no_update": False,
    "dropout": 2,
    "dropout_": 2,
    "native_dropout": 2,
    "feature_dropout": 2,
    "alpha_dropout": 2,
}


def is_batch_norm(node: fx.Node) -> bool:
    return node.op == "call_function" and "batch_norm" in op_name(node) and op_name(node) in _MODE_ARGUMENT


def in_train_mode(node: fx.Node) -> bool:
    """A BatchNorm (batch statistics) or dropout operator of an exported graph that runs
    in train mode."""
    if node.op != "call_function" or not _is_aten(node.target):
        return False
    mode = _MODE_ARGUMENT.get(op_name(node))
    if isinstance(mode, bool) or mode is None:
        return bool(mode)
    return len(node.args) > mode and bool(node.args[mode])


def needs_eval(model: nn.Module) -> bool:
    """An exported graph with a BatchNorm or dropout in train mode (what torchao's
    ``move_exported_model_to_eval`` rewrites; it re-exports its patterns every call)."""
    return any(in_train_mode(node) for node in model.graph.nodes)


# -- quantization points ---------------------------------------------------------------


@dataclass(frozen=True)
class QuantPoint:
    """One observer or fake-quant module of a prepared model, and where it quantizes.

    ``name``: qualified module name (``model.get_submodule(name)``).  ``role``:
    ``"weight"`` or ``"activation"``.  ``module_path``: the source module it belongs to (eager:
    the module that owns it; graph flows: the module whose operator it feeds, for weights,
    or whose output it observes); ``None`` when no module is known (a model input).
    ``node``: the graph node that calls it (graph flows).  ``where``: all of that for people.
    """

    name: str
    module: Any
    role: str
    module_path: str | None
    node: str | None
    where: str

    def matches(self, patterns: Iterable[str]) -> bool:
        """True when a pattern (``fnmatch``, e.g. ``"features.*.skip_add"``) matches the
        module name, the source module path, the node, or a parent of a name or path."""
        names = [self.name, self.module_path or "", self.node or ""]
        candidates = {prefix for name in names if name for prefix in _prefixes(name)}
        return any(fnmatch.fnmatchcase(name, pattern) for pattern in patterns for name in candidates)

    def label(self) -> str:
        """``\\`name\\` (Class)`` for messages; graph points add where they quantize (an
        eager name already says it: ``conv1.activation_post_process``)."""
        kind = type(self.module).__name__
        return f"`{self.name}` ({kind}, {self.where})" if self.node else f"`{self.name}` ({kind})"


def _prefixes(name: str) -> Iterator[str]:
    parts = name.split(".")
    for end in range(1, len(parts) + 1):
        yield ".".join(parts[:end])


def quant_points(model: nn.Module) -> list[QuantPoint]:
    """Fake-quant modules and the observers that are not inside one, in model order.

    An observer inside a fake-quant module is driven by its owner's switches, so it is not
    a point of its own.  In graph flows a module called by several nodes (FX shares one
    observer between ops with shared qparams) is one point, named by its first node.
    """
    return [point for point in _points(model) if not _inside_fake_quant(model, point.name)]


def observers(model: nn.Module) -> list[QuantPoint]:
    """Every observer, also those inside fake-quant modules (``*.activation_post_process``),
    placed where their fake-quant is."""
    found = []
    for point in _points(model):
        if is_observer(point.module):
            found.append(point)
        elif is_fake_quant(point.module):
            for child_name, child in point.module.named_modules():
                if child_name and is_observer(child):
                    found.append(_replace(point, f"{point.name}.{child_name}", child))
    return found


def _replace(point: QuantPoint, name: str, module: Any) -> QuantPoint:
    return QuantPoint(name, module, point.role, point.module_path, point.node, point.where)


def _inside_fake_quant(model: nn.Module, name: str) -> bool:
    parts = name.split(".")
    for end in range(1, len(parts)):
        if is_fake_quant(model.get_submodule(".".join(parts[:end]))):
            return True
    return False


def _points(model: nn.Module) -> list[QuantPoint]:
    """Every observer/fake-quant module that is not inside a fake-quant, described."""
    torch = require_torch()
    is_graph_module = isinstance(model, torch.fx.GraphModule)
    calls = _call_nodes(model) if is_graph_module else {}
    points, seen = [], set()
    inside: list[str] = []
    for name, module in model.named_modules():
        if any(name.startswith(prefix + ".") for prefix in inside):
            continue
        if not is_quant_machinery(module) or id(module) in seen:
            continue
        seen.add(id(module))
        if is_fake_quant(module):
            inside.append(name)
        nodes = calls.get(id(module))
        if nodes:
            points.append(_graph_point(model, name, module, nodes[0]))
        else:
            points.append(_eager_point(model, name, module))
    if is_graph_module:
        nodes = list(model.graph.nodes)
        order = {node.name: index for index, node in enumerate(nodes)}
        points.sort(key=partial(_graph_position, nodes, order))
    return points


def _graph_position(nodes: list[Any], order: dict[str, int], point: QuantPoint) -> int:
    """Where a point acts in graph order: a weight at the layer that uses it, an
    activation at its own node, a module's weight fake-quant at that module's call."""
    if point.node is None:
        calls = [node.name for node in nodes if node.op == "call_module" and node.target == point.module_path]
        return order.get(calls[0], len(order)) if calls else len(order)
    node = nodes[order[point.node]]
    if point.role == "weight":
        users = _weight_users(node) or list(node.users)
        return min((order[user.name] for user in users), default=order[point.node])
    return order[point.node]


def _eager_point(model: nn.Module, name: str, module: Any) -> QuantPoint:
    """A point placed by the module that owns it (``conv.activation_post_process``: the
    output of ``conv``; ``conv.weight_fake_quant``: the weight of ``conv``)."""
    parts = name.split(".")
    if "weight_fake_quant" in parts:
        owner = ".".join(parts[: parts.index("weight_fake_quant")])
        return QuantPoint(name, module, "weight", owner, None, f"weight of `{owner or '(model)'}`")
    owner = ".".join(parts[:-1])
    owner_type = type(model.get_submodule(owner)).__name__
    where = f"output of `{owner}` ({owner_type})" if owner else f"output of {owner_type}"
    return QuantPoint(name, module, "activation", owner or None, None, where)


def _graph_point(model: nn.Module, name: str, module: Any, node: fx.Node) -> QuantPoint:
    """A point placed by the graph node it observes and the nodes that use its output."""
    observed = node.args[0] if node.args and hasattr(node.args[0], "op") else None
    users = list(node.users)
    weight_user = next((user for user in users if _weight_argument(user) is node), None)
    if weight_user is None and observed is not None and _feeds_weight(node):
        weight_user = next(iter(_weight_users(node)), None)
    if weight_user is not None:
        path = module_path(weight_user) or _module_of_call(weight_user)
        return QuantPoint(
            name, module, "weight", path, node.name,
            f"weight of {_user_text(model, weight_user)}",
        )
    parts = []
    path = None
    if observed is not None:
        path = module_path(observed) or _module_of_call(observed)
        parts.append(f"output of {_user_text(model, observed)}")
    consumers = [user for user in users if user.op != "output"]
    if consumers:
        parts.append(f"input of {_user_text(model, consumers[0])}")
        if path is None:
            path = module_path(consumers[0]) or _module_of_call(consumers[0])
    elif any(user.op == "output" for user in users):
        parts.append("model output")
    where = ", ".join(parts) or "not used"
    if node.name != name:
        where = f"node `{node.name}`: {where}"
    return QuantPoint(name, module, "activation", path, node.name, where)


def _module_of_call(node: fx.Node) -> str | None:
    """For an FX ``call_module`` node without a recorded stack: its target."""
    return node.target if node.op == "call_module" else None


def _user_text(model: nn.Module, node: fx.Node) -> str:
    if node.op == "call_module" and module_path(node) is None:
        return f"`{node.target}` ({type(model.get_submodule(node.target)).__name__})"
    return node_text(node)


def _weight_argument(node: fx.Node) -> Any:
    """The weight argument of an ATen conv/linear node, else None."""
    if is_conv_or_linear(node) and len(node.args) > 1:
        return node.args[1]
    return None


def _weight_users(node: fx.Node) -> list[fx.Node]:
    """conv/linear nodes whose weight is ``node``'s value, directly or through layout ops."""
    found, frontier, seen = [], [node], set()
    while frontier:
        current = frontier.pop()
        for user in current.users:
            if user in seen:
                continue
            seen.add(user)
            if _weight_argument(user) is current:
                found.append(user)
            elif user.op == "call_function" and not is_conv_or_linear(user) and len(seen) < 16:
                frontier.append(user)
    return found


def _feeds_weight(node: fx.Node) -> bool:
    """The observed value is a parameter (a ``get_attr`` of a weight, possibly scaled first,
    as PT2E QAT scales conv weights by the BatchNorm factor: a few operators at most)."""
    frontier, seen = [node.args[0]], set()
    while frontier:
        current = frontier.pop()
        if not hasattr(current, "op") or current in seen or len(seen) > 8:
            continue
        seen.add(current)
        if current.op == "get_attr":
            return True
        if current.op == "call_function":
            frontier.extend(arg for arg in current.args if hasattr(arg, "op"))
    return False


# -- converted models -------------------------------------------------------------------


@dataclass(frozen=True)
class QuantizedLayer:
    """A layer of a converted model.

    Eager/FX: a quantized module (``name`` its qualified name; ``module_path`` the source
    module, which FX may have renamed).  PT2E: a conv/linear node; ``input``/``weight`` say
    how each reaches it: ``"quantized"`` (through a dequantize of a quantized value),
    ``"float"``, or, for the weight, ``"unobserved"`` (int8 values of convert's default
    qparams: the observer never ran).  ``scheme``: ``"static"``, ``"dynamic"``,
    ``"weight-only"``, ``"reference"`` (FX reference modules) or ``"float"`` (a PT2E
    conv/linear left unquantized).
    """

    name: str
    kind: str
    module_path: str | None
    node: str | None
    input: str
    weight: str
    scheme: str
    annotated: bool = False

    def label(self) -> str:
        if self.node is None:
            return f"`{self.name}` ({self.kind})"
        path = f", from `{self.module_path}`" if self.module_path else ""
        return f"node `{self.node}` ({self.kind}{path})"


_DEQUANTIZE = ("dequantize_per_tensor", "dequantize_per_channel", "dequantize_affine",
               "dequantize_per_channel_group", "dequantize_per_token")
_QUANTIZE = ("quantize_per_tensor", "quantize_per_channel", "quantize_affine",
             "quantize_per_channel_group", "quantize_per_token")


def op_name(node: fx.Node) -> str:
    """``quantize_per_tensor`` for ``quantized_decomposed.quantize_per_tensor.default``, the
    schema name without namespace for other operators, else the target's name."""
    torch = require_torch()
    target = node.target
    if isinstance(target, torch._ops.OpOverload):
        return target._schema.name.split("::")[-1]
    return getattr(target, "__name__", str(target))


def is_dequantize(node: Any) -> bool:
    return getattr(node, "op", None) == "call_function" and op_name(node) in _DEQUANTIZE


def is_quantize(node: Any) -> bool:
    return getattr(node, "op", None) == "call_function" and op_name(node) in _QUANTIZE


def quantized_layers(model: nn.Module) -> list[QuantizedLayer]:
    """The layers of a converted model, in model (graph) order."""
    from qlint.runtime._modules import is_quantized_module

    if flow_of(model) == PT2E:
        return _pt2e_layers(model)
    torch = require_torch()
    is_graph_module = isinstance(model, torch.fx.GraphModule)
    calls = _call_nodes(model) if is_graph_module else {}
    layers = []
    if is_graph_module:  # FX: quantized functional operators (quantized.add, ...) too
        for node in model.graph.nodes:
            if node.op == "call_function" and _namespace(node.target) == "quantized":
                layers.append(QuantizedLayer(
                    node.name, f"quantized.{getattr(node.target, '__name__', node.target)}",
                    module_path(node), node.name, "quantized", "float", "static",
                ))
    for name, module in model.named_modules():
        if not is_quantized_module(module):
            continue
        nodes = calls.get(id(module)) or [None]
        path = module_path(nodes[0]) if nodes[0] is not None else None
        scheme = _module_scheme(module)
        layers.append(
            QuantizedLayer(
                name,
                type(module).__name__,
                path or name,
                None,
                "float" if scheme in ("dynamic", "weight-only") else "quantized",
                "quantized",
                scheme,
            )
        )
    return layers


def _namespace(target: Any) -> str | None:
    """The operator namespace of an ``OpOverloadPacket`` (``quantized::add``) or
    ``OpOverload``, else None."""
    qualified = getattr(target, "_qualified_op_name", None)
    if isinstance(qualified, str):
        return qualified.split("::")[0]
    return getattr(target, "namespace", None)


def _module_scheme(module: nn.Module) -> str:
    package = type(module).__module__
    if package.startswith("torch.ao.nn.quantized.dynamic"):
        return "dynamic"
    if package.startswith("torch.ao.nn.quantized.reference"):
        return "reference"
    if type(module).__name__ in ("Embedding", "EmbeddingBag"):
        return "weight-only"
    return "static"


def _pt2e_layers(model: nn.Module) -> list[QuantizedLayer]:
    layers = []
    for node in model.graph.nodes:
        if not is_conv_or_linear(node):
            continue
        annotation = node.meta.get("quantization_annotation")
        quantized_input = is_dequantize(node.args[0])
        weight = _weight_state(model, node.args[1]) if len(node.args) > 1 else "float"
        if quantized_input:
            scheme = "static"
        else:
            scheme = "float" if weight == "float" else "weight-only"
        layers.append(
            QuantizedLayer(
                name=node.name,
                kind=str(node.target).removesuffix(".default"),
                module_path=module_path(node),
                node=node.name,
                input="quantized" if quantized_input else "float",
                weight=weight,
                scheme=scheme,
                annotated=bool(annotation is not None and getattr(annotation, "_annotated", True)),
            )
        )
    return layers


def _weight_state(model: nn.Module, weight: Any) -> str:
    """How a PT2E weight argument is stored: dequantize of an int8 constant (or of a
    quantize at run time), ``"unobserved"`` when its int8 values and qparams are convert's
    defaults for an observer that never ran, else ``"float"``."""
    torch = require_torch()
    if not is_dequantize(weight):
        return "float"
    source = weight.args[0]
    if is_quantize(source):
        return "quantized"
    if getattr(source, "op", None) != "get_attr":
        return "quantized"
    values = _attr(model, source.target)
    scale = weight.args[1]
    if getattr(scale, "op", None) == "get_attr":
        scale = _attr(model, scale.target)
    if (
        isinstance(values, torch.Tensor)
        and not values.is_floating_point()
        and values.numel()
        and int(values.abs().max()) <= 1
        and _all_ones(scale)
    ):
        return "unobserved"
    return "quantized"


def _all_ones(scale: Any) -> bool:
    torch = require_torch()
    if isinstance(scale, torch.Tensor):
        return bool((scale == 1).all())
    return scale == 1.0


def _attr(model: nn.Module, target: str) -> Any:
    value: Any = model
    for part in target.split("."):
        value = getattr(value, part, None)
    return value
