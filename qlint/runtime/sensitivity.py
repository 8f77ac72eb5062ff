"""Per-layer quantization simulation and the sensitivity sweep behind ``quant_report``.

A *layer* is what ``convert`` turns into one quantized op: a module with its own output
quantization point (eager: ``conv1`` with ``conv1.activation_post_process`` and, in QAT,
``conv1.weight_fake_quant``; FX: the node an ``activation_post_process_N`` observes, a
module path such as ``layer1.0.conv1`` or a function node such as ``add_1``; PT2E: a
conv/linear node with its weight point and the output point after its fused bn/relu, or
another observed node such as ``add``, named by node and placed by source module path).

``Simulation`` is an eval deep copy of a prepared model in which every layer can be
quantized or left float on its own, as ``convert`` would quantize it: each activation
point fake-quantizes with the qparams ``convert`` takes from it (fake-quant switches
ignored: ``convert`` quantizes a layer whose fake-quant is off, with whatever qparams it
holds), and weights take the int8 values of a converted copy (or, where names do not
match it, as in PT2E, the qparams their own point holds). One forward pass runs
with any set of layers quantized and records every layer's float input to its output
point and what the point passed on.

Cost: one deep copy and one ``convert`` of a copy, then one forward pass per
configuration: two for the per-layer figures (float, everything quantized), one more per
layer for the sweep (``max_layers`` / ``time_budget`` cap it; the layers whose own output
quantization loses the most are swept first).
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from qlint.runtime._modules import eval_copy, parent_name, tensors_in
from qlint.runtime._torch import require_torch

from qlint.runtime._flow import PT2E, flow_of
from qlint.runtime._flow import quant_points as _quant_points
from qlint.runtime._twins import quantize_weights_as_converted, quantized_range


def quant_modules(model) -> list[tuple[str, Any]]:
    """(name, module) of each fake-quant module and each observer not inside one."""
    return [(point.name, point.module) for point in _quant_points(model)]

_WEIGHT_POINT = "weight_fake_quant"
_OUTPUT_POINT = "activation_post_process"
HISTOGRAM_BINS = 64


@dataclass
class Layer:
    """One quantized layer: its output points, weight points and what describes it."""

    name: str
    kind: str
    fused: bool
    module_path: str | None  # the module the layer is (None for function nodes and inputs)
    output_points: list[str] = field(default_factory=list)
    weight_points: list[str] = field(default_factory=list)


def sqnr_db(signal, other) -> float:
    """10 log10(signal power / power of the difference), in double precision; inf if equal."""
    signal = signal.detach().double().flatten()
    other = other.detach().double().flatten()
    noise = float((other - signal).pow(2).sum())
    power = float(signal.pow(2).sum())
    if noise == 0:
        return math.inf
    return 10 * math.log10(power / noise) if power else -math.inf


def _is_fused(module) -> bool:
    return type(module).__module__.startswith("torch.ao.nn.intrinsic")


def _layers_by_module_path(model, points) -> list[Layer]:
    """Eager (and FX QAT weights): a point ``X.activation_post_process`` belongs to ``X``."""
    layers: dict[str, Layer] = {}
    for name, _ in points:
        owner, _, attribute = name.rpartition(".")
        if attribute not in (_OUTPUT_POINT, _WEIGHT_POINT):
            continue
        module = model.get_submodule(owner)
        layer = layers.get(owner)
        if layer is None:
            layer = layers[owner] = Layer(owner, type(module).__name__, _is_fused(module), owner)
        (layer.weight_points if attribute == _WEIGHT_POINT else layer.output_points).append(name)
    return list(layers.values())


def _fx_layers(model, points) -> list[Layer]:
    """FX: each ``activation_post_process_N`` node belongs to the node it observes."""
    torch = require_torch()
    point_names = {name for name, _ in points}
    layers: dict[str, Layer] = {}
    order: list[str] = []
    for node in model.graph.nodes:
        if node.op != "call_module" or node.target not in point_names:
            continue
        producer = node.args[0] if node.args else None
        if not isinstance(producer, torch.fx.Node):
            continue
        # A chain of points (an input observed twice) belongs to the first producer.
        while producer.op == "call_module" and producer.target in point_names and producer.args:
            producer = producer.args[0]
        if producer.op == "call_module":
            module = model.get_submodule(producer.target)
            key, kind, fused, path = producer.target, type(module).__name__, _is_fused(module), producer.target
        elif producer.op == "placeholder":
            key, kind, fused, path = f"input:{producer.name}", "input", False, None
        else:
            target = producer.target
            kind = target if isinstance(target, str) else getattr(target, "__name__", str(target))
            key, fused, path = producer.name, False, None
        if key not in layers:
            layers[key] = Layer(key, kind, fused, path)
            order.append(key)
        layers[key].output_points.append(node.target)
    # QAT modules in an FX model keep their weight fake-quant as a child.
    for layer in _layers_by_module_path(model, points):
        if layer.weight_points:
            if layer.name not in layers:
                layers[layer.name] = Layer(layer.name, layer.kind, layer.fused, layer.name)
                order.append(layer.name)
            layers[layer.name].weight_points.extend(layer.weight_points)
    return [layers[key] for key in order]


# PT2E ops that fusion patterns put between a conv/linear and the output observer
# (X86InductorQuantizer and XNNPACKQuantizer annotate conv-bn-relu, linear-relu, ...; QAT
# keeps BatchNorm as conv(x, w * factor) / factor + bias -> batch_norm). Arithmetic counts
# only with a parameter expression as its other operand (a residual add does not).
_PT2E_FUSED_TAIL = frozenset({
    "relu", "relu_", "hardtanh", "hardtanh_", "batch_norm", "_native_batch_norm_legit",
    "_native_batch_norm_legit_no_training", "getitem",
})
_PT2E_PARAMETER_ARITHMETIC = frozenset({"add", "add_", "sub", "mul", "div"})


def _parameters_only(value) -> bool:
    """True when a graph value is computed from parameters and constants, not from inputs."""
    frontier, seen = [value], set()
    while frontier:
        current = frontier.pop()
        if not hasattr(current, "op") or current in seen:
            continue
        seen.add(current)
        if current.op == "placeholder" or len(seen) > 32:
            return False
        frontier.extend(arg for arg in current.args if hasattr(arg, "op"))
    return True


def _fused_tail_input(node, op_name):
    """The value a fused-tail op carries on from the conv/linear, or None if it is no tail op."""
    if node.op != "call_function" or not node.args or not hasattr(node.args[0], "op"):
        return None
    name = op_name(node)
    if name in _PT2E_FUSED_TAIL:
        return node.args[0]
    others = [arg for arg in node.args[1:] if hasattr(arg, "op")]
    if name in _PT2E_PARAMETER_ARITHMETIC and all(_parameters_only(arg) for arg in others):
        return node.args[0]
    return None


def _pt2e_layers(model, points) -> list[Layer]:
    """PT2E: weight points belong to the conv/linear node whose weight they quantize; an
    output point to the node it observes, or to the conv/linear a fused tail (bn, relu)
    leads back to. Named by node, placed by source module path (``nn_module_stack``)."""
    from qlint.runtime._flow import _weight_users, is_conv_or_linear, module_path, op_name

    nodes = {node.target: node for node in model.graph.nodes if node.op == "call_module"}
    point_names = {point.name for point in points}
    layers: dict[str, Layer] = {}

    def layer_of(node, fused: bool) -> Layer:
        if node.name not in layers:
            if node.op == "placeholder":
                layers[node.name] = Layer(f"input:{node.name}", "input", False, None)
            else:
                layers[node.name] = Layer(node.name, op_name(node), fused, module_path(node))
        layer = layers[node.name]
        layer.fused = layer.fused or fused
        return layer

    for point in points:
        call = nodes.get(point.name)
        if call is None or not call.args:
            continue
        if point.role == "weight":
            users = _weight_users(call)
            if users:
                layer_of(users[0], False).weight_points.append(point.name)
            continue
        observed, steps = call.args[0], 0
        while observed.op == "call_module" and observed.target in point_names and observed.args:
            observed = observed.args[0]  # a point observing a point: the first producer's
        head = observed
        while not is_conv_or_linear(head) and (carried := _fused_tail_input(head, op_name)) is not None:
            head, steps = carried, steps + 1
        if head.op == "call_function" and is_conv_or_linear(head) and steps:
            layer_of(head, True).output_points.append(point.name)
        else:
            layer_of(observed, False).output_points.append(point.name)
    order = {node.name: index for index, node in enumerate(model.graph.nodes)}
    return sorted(layers.values(), key=lambda layer: order.get(layer.name.removeprefix("input:"), 0))


def enumerate_layers(model) -> list[Layer]:
    """The quantized layers of a prepared model (eager, FX; PT2E with the flow layer), in
    module/graph order."""
    torch = require_torch()
    if flow_of(model) == PT2E:
        return _pt2e_layers(model, _quant_points(model))
    points = quant_modules(model)
    if isinstance(model, torch.fx.GraphModule):
        return _fx_layers(model, points)
    return _layers_by_module_path(model, points)


def flow_name(model) -> str:
    """``eager``, ``fx`` or ``pt2e``."""
    return flow_of(model)


@dataclass
class PointRecord:
    """What one activation point saw in one run: its input (float) and its output."""

    inputs: list = field(default_factory=list)
    outputs: list = field(default_factory=list)
    last: Any = None  # the last output, to tell a re-application from a new call

    def input(self):
        return _joined(self.inputs)

    def output(self):
        return _joined(self.outputs)


def _joined(tensors):
    torch = require_torch()
    if not tensors:
        return None
    return torch.cat([tensor.detach().reshape(-1).float() for tensor in tensors])


class _Switch:
    """The forward of a quantization point: quantize when its layer is on, else pass."""

    def __init__(self, simulation, layer: str, quantize, record: str | None):
        self.simulation, self.layer, self.quantize, self.record = simulation, layer, quantize, record

    def __call__(self, tensor, *args, **kwargs):
        quantized = self.simulation.is_quantized(self.layer)
        output = self.quantize(tensor) if quantized and self.quantize is not None else tensor
        if self.record is not None and self.simulation.records is not None:
            record = self.simulation.records.setdefault(self.layer, PointRecord())
            # An eager fused module is an nn.Sequential that runs its observer child once
            # more on the output the observer hook already produced: not a new value.
            if tensor is not record.last:
                record.inputs.append(tensor.detach())
                record.outputs.append(output.detach())
            record.last = output
        return output


@dataclass(frozen=True)
class OutputQuantizer:
    """The fixed per-tensor quantization convert gives a layer's output."""

    scale: float
    zero_point: int
    quant_min: int
    quant_max: int

    def __call__(self, tensor):
        torch = require_torch()
        return torch.fake_quantize_per_tensor_affine(
            tensor, self.scale, self.zero_point, self.quant_min, self.quant_max
        )

    @property
    def low(self) -> float:
        return (self.quant_min - self.zero_point) * self.scale

    @property
    def high(self) -> float:
        return (self.quant_max - self.zero_point) * self.scale


def _quant_range(point, torch) -> tuple[int, int] | None:
    """Where a point's quantized values saturate: torch.ao's quantized kernels at the dtype's
    range (x86 ``reduce_range`` observers compute qparams for 0..127, the kernels clamp at
    255); PT2E's quantize ops (plain int8/uint8 dtypes) at the point's own quant_min/max."""
    dtype = getattr(point, "dtype", None)
    dtype_range = quantized_range(dtype, torch)
    if dtype_range is not None:
        return dtype_range
    low, high = getattr(point, "quant_min", None), getattr(point, "quant_max", None)
    if dtype in (torch.int8, torch.uint8) and isinstance(low, int) and isinstance(high, int):
        return low, high
    return None


def _frozen_quantizer(point):
    """A weight point fake-quantizing with the qparams it holds (``calculate_qparams``)."""
    torch = require_torch()
    quant_range = _quant_range(point, torch)
    qscheme = getattr(point, "qscheme", None)
    if quant_range is None:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        scale, zero_point = point.calculate_qparams()
    if qscheme in (torch.per_channel_affine, torch.per_channel_symmetric):
        return partial(
            torch.fake_quantize_per_channel_affine, scale=scale.float(), zero_point=zero_point.int(),
            axis=getattr(point, "ch_axis", 0), quant_min=quant_range[0], quant_max=quant_range[1],
        )
    return partial(
        torch.fake_quantize_per_tensor_affine, scale=float(scale), zero_point=int(zero_point),
        quant_min=quant_range[0], quant_max=quant_range[1],
    )


def _output_quantizer(point) -> OutputQuantizer | None:
    """convert's qparams of an 8-bit per-tensor point."""
    torch = require_torch()
    dtype_range = _quant_range(point, torch)
    qscheme = getattr(point, "qscheme", None)
    if dtype_range is None or qscheme not in (torch.per_tensor_affine, torch.per_tensor_symmetric):
        return None
    with warnings.catch_warnings():  # an observer that never ran: reported by its row
        warnings.simplefilter("ignore", UserWarning)
        scale, zero_point = point.calculate_qparams()
    return OutputQuantizer(float(scale), int(zero_point), *dtype_range)


class Simulation:
    """An eval copy of a prepared model whose layers are quantized one by one or together.

    ``converted`` (optional) is ``convert`` of a copy of the same model: weights then take
    its int8 values; without it weights are quantized by their own fake-quant (QAT) or by
    their qconfig's weight observer (PTQ).
    """

    def __init__(self, model, layers: list[Layer], converted=None):
        torch = require_torch()
        self.layers = layers
        self.model = eval_copy(model)
        self.records: dict[str, PointRecord] | None = None
        self._quantized: frozenset[str] | None = frozenset()
        self.output_quantizers: dict[str, OutputQuantizer] = {}
        modules = dict(self.model.named_modules())
        layer_of_point = {
            point: layer.name for layer in layers for point in layer.output_points + layer.weight_points
        }
        # Weights: QAT weight fake-quants forced on; PTQ weights get convert's values.
        for layer in layers:
            for point in layer.weight_points:
                switch = getattr(modules[point], "fake_quant_enabled", None)
                if switch is not None:
                    switch.fill_(1)
        float_weights = {
            name: parameter.detach().clone() for name, parameter in self.model.named_parameters()
        }
        with torch.no_grad():
            if converted is not None:
                quantize_weights_as_converted(self.model, converted, torch)
            else:
                self._quantize_weights_alone(layers, modules, torch)
        parameters = dict(self.model.named_parameters())
        layer_names = {layer.module_path: layer.name for layer in layers if layer.module_path}
        self._weights: list[tuple[str, Any, Any, Any]] = []  # (layer, parameter, float, quantized)
        for name, parameter in parameters.items():
            if torch.equal(parameter.detach(), float_weights[name]):
                continue
            owner = parent_name(name)
            layer = layer_names.get(owner) or layer_names.get(parent_name(owner))
            self._weights.append((layer, parameter, float_weights[name], parameter.detach().clone()))
        weight_points = {point for layer in layers for point in layer.weight_points}
        for name, point in quant_modules(self.model):
            layer = layer_of_point.get(name)
            if layer is None:
                continue
            if name in weight_points:
                frozen = point.forward if isinstance(point.forward, partial) else None
                point.forward = _Switch(self, layer, frozen or _frozen_quantizer(point), None)
                continue
            quantizer = _output_quantizer(point)
            if quantizer is not None:
                self.output_quantizers.setdefault(layer, quantizer)
            point.forward = _Switch(self, layer, quantizer, record=name)
        self.model.apply(torch.ao.quantization.disable_observer)
        self.set_quantized(frozenset())

    @staticmethod
    def _quantize_weights_alone(layers, modules, torch):
        """PTQ without a converted copy: quantize each weight with its qconfig's observer."""
        for layer in layers:
            module = modules.get(layer.module_path) if layer.module_path else None
            qconfig = getattr(module, "qconfig", None)
            if module is None or layer.weight_points or qconfig is None:
                continue
            if _is_fused(module):
                module = module[0]
            weight = getattr(module, "weight", None)
            if not isinstance(weight, torch.nn.Parameter):
                continue
            observer = qconfig.weight()
            observer(weight.detach())
            scale, zero_point = observer.calculate_qparams()
            quantized = (
                torch.quantize_per_channel(weight.detach(), scale, zero_point, observer.ch_axis, observer.dtype)
                if scale.numel() > 1
                else torch.quantize_per_tensor(weight.detach(), float(scale), int(zero_point), observer.dtype)
            )
            weight.copy_(quantized.dequantize())

    def is_quantized(self, layer: str) -> bool:
        return self._quantized is None or layer in self._quantized

    def set_quantized(self, layers: Iterable[str] | None) -> None:
        """Quantize exactly ``layers`` (None: every layer)."""
        self._quantized = None if layers is None else frozenset(layers)
        for layer, parameter, float_value, quantized_value in self._weights:
            parameter.data.copy_(quantized_value if self.is_quantized(layer) else float_value)

    def run(self, inputs, quantized: Iterable[str] | None, *, record: bool = False):
        """Model outputs (float tensors, flattened and joined) with ``quantized`` layers on."""
        torch = require_torch()
        self.set_quantized(quantized)
        self.records = {} if record else None
        try:
            with torch.no_grad():
                output = self.model(*inputs)
        finally:
            records, self.records = self.records, None
        tensors = [
            (tensor.dequantize() if tensor.is_quantized else tensor).reshape(-1).double()
            for tensor in tensors_in(output)
            if tensor.is_floating_point() or tensor.is_quantized
        ]
        joined = torch.cat(tensors) if tensors else torch.zeros(0, dtype=torch.double)
        return joined, records


@dataclass
class SweepResult:
    """Per-layer model-output SQNR with only that layer quantized; what was left out."""

    sensitivity_db: dict[str, float]
    skipped: list[str]
    reason: str | None
    seconds: float


def sweep(
    simulation: Simulation,
    inputs,
    float_output,
    order: list[str],
    *,
    max_layers: int | None = None,
    time_budget: float | None = None,
    progress: Callable[[int, int, str], None] | None = None,
) -> SweepResult:
    """Quantize one layer at a time, in ``order``, until ``max_layers`` or ``time_budget`` s."""
    started = time.perf_counter()
    limit = len(order) if max_layers is None else min(max_layers, len(order))
    results: dict[str, float] = {}
    reason = None
    for index, layer in enumerate(order[:limit]):
        if time_budget is not None and index and time.perf_counter() - started > time_budget:
            reason = f"time budget of {time_budget:g} s reached"
            break
        output, _ = simulation.run(inputs, [layer])
        results[layer] = sqnr_db(float_output, output)
        if progress is not None:
            progress(index + 1, limit, layer)
    if reason is None and limit < len(order):
        reason = f"max_layers={max_layers}"
    skipped = [layer for layer in order if layer not in results]
    return SweepResult(results, skipped, reason if skipped else None, time.perf_counter() - started)


def histogram(values, bins: int = HISTOGRAM_BINS) -> dict[str, Any]:
    """Counts of ``values`` over ``bins`` equal bins between their min and max."""
    torch = require_torch()
    values = values.double()
    low, high = float(values.min()), float(values.max())
    if low == high:
        high = low + 1e-12
    counts = torch.histc(values, bins=bins, min=low, max=high)
    return {"low": low, "high": high, "counts": [int(count) for count in counts.tolist()]}
