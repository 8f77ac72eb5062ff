"""A prepared model's converted copy and its frozen reference, for every flow (mechanism).

``assert_parity`` compares two deep copies of the model it is given:

- the *converted* copy: ``torch.ao.quantization.convert`` (eager), ``convert_fx`` (FX) or
  torchao's ``convert_pt2e`` (PT2E); a dynamically quantized model is its own converted copy;
- the *reference*: a copy of the prepared model whose quantization no longer learns.  Each
  activation quantization point (fake-quant, or PTQ observer) fake-quantizes with the
  qparams convert takes from it, weights are quantized as convert quantized them; for a
  dynamically quantized model, a float twin with the dequantized weights.

Both run in eval mode.  ``Twins.run_converted`` records what tells the output's quantization
step; ``Twins.isolated`` runs the reference "teacher-forced": at every site both models share
(a module in eager/FX, a graph node in PT2E) the reference output is recorded and replaced by
the converted one, so each comparison sees one module (or the code between modules) alone.

Where the two differ by design of the eager-mode kernels, the reference follows the kernels
(docs/parity.md): activations saturate at the dtype's range (x86 ``reduce_range`` fake-quants
clamp at 127), weights take the converted weight's qparams, averaging modules round to the
grid their converted module used.
"""

from __future__ import annotations

import copy
import re
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

from qlint.runtime._flow import EAGER, FX, PT2E, flow_of, is_dequantize, module_path, quant_points
from qlint.runtime._machinery import (
    FAKE_QUANT_SWITCH,
    flag,
    is_fake_quant,
    is_observer,
    observer_switch,
    set_flag,
)
from qlint.runtime._modules import eval_copy, pt2e_eval, tensors_in
from qlint.runtime._torch import quiet_internals, require_torch, require_torchao_pt2e

if TYPE_CHECKING:
    from torch import nn

PREPARED, DYNAMIC_PREPARED, DYNAMIC = "prepared", "dynamic-prepared", "dynamic"


class ConvertFailed(Exception):
    """convert raised on a copy of the model; ``str()`` says what and where."""


def kind_of(model: nn.Module) -> str | None:
    """``PREPARED`` (static quantization points), ``DYNAMIC_PREPARED`` (FX prepared with a
    dynamic qconfig: only dynamic placeholder observers), ``DYNAMIC`` (dynamically quantized
    modules, no quantization point) or None (nothing to compare)."""
    points = quant_points(model)
    if points:
        if all(_is_dynamic_point(point.module) for point in points):
            return DYNAMIC_PREPARED
        return PREPARED
    if any(_dynamic_module(module) for module in model.modules()):
        return DYNAMIC
    return None


def _is_dynamic_point(module: Any) -> bool:
    return bool(getattr(module, "is_dynamic", False)) and not hasattr(module, "min_val")


def _dynamic_module(module: nn.Module) -> bool:
    package = type(module).__module__
    return package.startswith("torch.ao.nn.quantized.dynamic") or (
        package.startswith("torch.ao.nn.quantized") and type(module).__name__ in
        ("Embedding", "EmbeddingBag")
    )


# -- convert ----------------------------------------------------------------------------


def converted_copy(model: nn.Module, kind: str) -> nn.Module:
    """Convert a deep copy of ``model`` with its flow's convert; eval mode."""
    torch = require_torch()
    flow = flow_of(model)
    if kind == DYNAMIC:
        return eval_copy(model)
    duplicate = copy.deepcopy(model)
    try:
        with quiet_internals():
            if flow == PT2E:
                pt2e = require_torchao_pt2e()
                return pt2e_eval(pt2e.quantize_pt2e.convert_pt2e(duplicate))
            if flow == FX:
                from torch.ao.quantization.quantize_fx import convert_fx

                return convert_fx(duplicate.eval())
            return torch.ao.quantization.convert(duplicate.eval(), inplace=True)
    except Exception as error:  # noqa: BLE001 - every convert failure becomes a message
        raise ConvertFailed(_convert_error_text(flow, error)) from error


_CONVERT_NAMES = {EAGER: "torch.ao.quantization.convert", FX: "convert_fx", PT2E: "convert_pt2e"}


def convert_name(flow: str) -> str:
    return _CONVERT_NAMES[flow]


def _convert_error_text(flow: str, error: Exception) -> str:
    first_line = (without_tensors(str(error)).strip().splitlines() or [""])[0][:300]
    return f"{convert_name(flow)} raised on a copy of the model: {type(error).__name__}: {first_line}"


_TENSOR_REPR = re.compile(r"tensor\(\[.*?\](?:, [a-z_]+=[^)]*)?\)", re.S)


def without_tensors(text: str) -> str:
    """``text`` with each printed tensor (``tensor([inf, inf, ...])``) cut to ``tensor([...])``:
    torch's errors print whole tensors, thousands of characters for a per-channel range."""
    return _TENSOR_REPR.sub("tensor([...])", text)


# -- the frozen reference ----------------------------------------------------------------


def reference_copy(model: nn.Module, converted: nn.Module, kind: str) -> nn.Module:
    """The model as the converted copy should compute it (see the module docstring)."""
    torch = require_torch()
    if kind == DYNAMIC:
        return _float_twin(model, torch)
    reference = eval_copy(model)
    flow = flow_of(model)
    with quiet_internals():
        if flow == PT2E:
            for point in quant_points(reference):
                _freeze_point(point.module, _own_range(point.module, torch), torch)
            return reference
        if kind == DYNAMIC_PREPARED:
            for point in quant_points(reference):
                point.module.forward = _unchanged
            quantize_weights_as_converted(reference, converted, torch)
            return reference
        fake_quant_weights = {
            id(module.weight_fake_quant)
            for module in reference.modules()
            if is_fake_quant(getattr(module, "weight_fake_quant", None))
        }
        for point in quant_points(reference):
            if id(point.module) not in fake_quant_weights:
                _freeze_point(point.module, quantized_range(getattr(point.module, "dtype", None), torch),
                              torch, per_tensor_only=True)
        quantize_weights_as_converted(reference, converted, torch)
        for point in quant_points(reference):  # weight fake-quants left as they are
            if is_fake_quant(point.module):
                set_flag(point.module, observer_switch(point.module), False)
    return reference


def _own_range(point: Any, torch) -> tuple[int, int] | None:
    low, high = getattr(point, "quant_min", None), getattr(point, "quant_max", None)
    if isinstance(low, int) and isinstance(high, int):
        return low, high
    return quantized_range(getattr(point, "dtype", None), torch)


def _freeze_point(point: Any, quant_range, torch, *, per_tensor_only: bool = False) -> None:
    """Make a quantization point fake-quantize with the qparams convert takes from it
    (``calculate_qparams``: learnable scales clamped, zero points rounded), or pass through
    when its fake quantization is switched off."""
    if is_fake_quant(point) and not flag(point, FAKE_QUANT_SWITCH):
        point.forward = _unchanged
        return
    qscheme = getattr(point, "qscheme", None)
    per_tensor = qscheme in (torch.per_tensor_affine, torch.per_tensor_symmetric)
    per_channel = qscheme in (torch.per_channel_affine, torch.per_channel_symmetric)
    if quant_range is None or _is_dynamic_point(point) or not (per_tensor or per_channel):
        if is_observer(point):  # it passes values through anyway; now it records nothing
            point.forward = _unchanged
        return
    if per_channel and per_tensor_only:
        return
    scale, zero_point = point.calculate_qparams()
    if per_tensor:
        point.forward = partial(
            torch.fake_quantize_per_tensor_affine,
            scale=float(scale), zero_point=int(zero_point),
            quant_min=quant_range[0], quant_max=quant_range[1],
        )
    else:
        point.forward = partial(
            torch.fake_quantize_per_channel_affine,
            scale=scale.float(), zero_point=zero_point.int(), axis=getattr(point, "ch_axis", 0),
            quant_min=quant_range[0], quant_max=quant_range[1],
        )


def quantize_weights_as_converted(reference, converted, torch) -> None:
    """QAT weight fake-quants take convert's qparams; other weights its (dequantized) values."""
    reference_modules = dict(reference.named_modules())
    for name, quantized_module in converted.named_modules():
        float_module = reference_modules.get(name)
        if float_module is None:
            continue
        quantized_weight = _quantized_weight(quantized_module, torch)
        if quantized_weight is None:
            continue
        fake_quant = getattr(float_module, "weight_fake_quant", None)
        if fake_quant is not None:
            _freeze_weight(fake_quant, quantized_weight, torch)
            continue
        if isinstance(float_module, torch.ao.nn.intrinsic.modules.fused._FusedModule):
            float_module = float_module[0]
        float_weight = getattr(float_module, "weight", None)
        if isinstance(float_weight, torch.Tensor) and float_weight.shape == quantized_weight.shape:
            with torch.no_grad():
                float_weight.copy_(quantized_weight.dequantize().to(float_weight.dtype))


def _quantized_weight(module, torch):
    weight = getattr(module, "weight", None)
    if not callable(weight) or isinstance(weight, torch.nn.Module):
        return None
    try:
        value = weight()
    except Exception:  # noqa: BLE001 - a module whose weight() needs more is skipped
        return None
    if isinstance(value, torch.Tensor) and (value.is_quantized or value.dtype == torch.float16):
        return value
    return None


def _freeze_weight(fake_quant, quantized_weight, torch) -> None:
    dtype_range = quantized_range(quantized_weight.dtype, torch)
    if not flag(fake_quant, FAKE_QUANT_SWITCH):
        fake_quant.forward = _unchanged
        return
    if dtype_range is None or not quantized_weight.is_quantized:
        return
    qscheme = quantized_weight.qscheme()
    if qscheme in (torch.per_channel_affine, torch.per_channel_symmetric):
        fake_quant.forward = partial(
            torch.fake_quantize_per_channel_affine,
            scale=quantized_weight.q_per_channel_scales().float(),
            zero_point=quantized_weight.q_per_channel_zero_points().int(),
            axis=quantized_weight.q_per_channel_axis(),
            quant_min=dtype_range[0], quant_max=dtype_range[1],
        )
    elif qscheme in (torch.per_tensor_affine, torch.per_tensor_symmetric):
        fake_quant.forward = partial(
            torch.fake_quantize_per_tensor_affine,
            scale=quantized_weight.q_scale(), zero_point=quantized_weight.q_zero_point(),
            quant_min=dtype_range[0], quant_max=dtype_range[1],
        )


def _unchanged(tensor):
    return tensor


def quantized_range(dtype, torch):
    """The integer range quantized kernels saturate at, for 8-bit dtypes."""
    return {torch.quint8: (0, 255), torch.qint8: (-128, 127)}.get(dtype)


def _float_twin(model: nn.Module, torch) -> nn.Module:
    """A copy of a dynamically quantized model with each quantized module replaced by its
    float counterpart holding the dequantized weights (activations stay float)."""
    twin = eval_copy(model)
    for name, module in list(twin.named_modules()):
        if name and _dynamic_module(module):
            replacement = _float_module(module, torch)
            if replacement is not None:
                parent, _, child = name.rpartition(".")
                setattr(twin.get_submodule(parent), child, replacement.eval())
    return twin


def _dequantized(value, torch):
    if isinstance(value, torch.Tensor):
        return value.dequantize() if value.is_quantized else value.float()
    return value


def _float_module(module: nn.Module, torch) -> nn.Module | None:
    nn = torch.nn
    name = type(module).__name__
    with torch.no_grad():
        if name == "Linear":
            weight, bias = module._weight_bias()
            linear = nn.Linear(module.in_features, module.out_features, bias=bias is not None)
            linear.weight.copy_(_dequantized(weight, torch))
            if bias is not None:
                linear.bias.copy_(_dequantized(bias, torch))
            return linear
        if name in ("LSTM", "GRU"):
            rnn = getattr(nn, name)(
                module.input_size, module.hidden_size, module.num_layers, bias=module.bias,
                batch_first=module.batch_first, dropout=float(module.dropout),
                bidirectional=module.bidirectional,
            )
            for key, value in {**module.get_weight(), **module.get_bias()}.items():
                if value is not None and hasattr(rnn, key):
                    getattr(rnn, key).copy_(_dequantized(value, torch))
            return rnn
        if name in ("LSTMCell", "GRUCell", "RNNCell"):
            cell = getattr(nn, name)(module.input_size, module.hidden_size, bias=module.bias)
            for key, value in {**module.get_weight(), **module.get_bias()}.items():
                if value is not None and hasattr(cell, key):
                    getattr(cell, key).copy_(_dequantized(value, torch))
            return cell
        if name in ("Embedding", "EmbeddingBag"):
            weight = _dequantized(module.weight(), torch)
            if name == "Embedding":
                return nn.Embedding.from_pretrained(weight, freeze=True)
            return nn.EmbeddingBag.from_pretrained(weight, freeze=True, mode=module.mode)
    return None


def unquantized_copy(model: nn.Module, kind: str) -> nn.Module:
    """The prepared model with every fake-quant passing values through (PTQ observers do)."""
    reference = eval_copy(model)
    if kind != DYNAMIC:
        for point in quant_points(reference):
            point.module.forward = _unchanged
    else:
        reference = _float_twin(model, require_torch())
    return reference


# -- runs -------------------------------------------------------------------------------


# torch.nn modules whose quantized kernels round their result to the input's grid while
# the fake-quant model keeps the exact float result: the reference rounds them the same way.
_AVERAGING_MODULES = (
    "AvgPool1d", "AvgPool2d", "AvgPool3d", "AdaptiveAvgPool1d", "AdaptiveAvgPool2d",
    "AdaptiveAvgPool3d", "Upsample", "UpsamplingBilinear2d", "UpsamplingNearest2d",
)


@dataclass
class ConvertedRun:
    """What a run of the converted model tells about quantization grids."""

    dequantized: list = field(default_factory=list)  # (output tensor, input scale, where)
    averaged: dict = field(default_factory=dict)  # module name -> [(scale, zp, dtype) per call]

    def output_step(self, found):
        """The quantization step of a converted output, and where it comes from."""
        if found.is_quantized:
            return found.q_scale(), "the output's own scale"
        for output, scale, where in self.dequantized:
            if output is found:
                return scale, f"scale of the tensor entering {where}"
        if self.dequantized:
            _, scale, where = self.dequantized[-1]
            return scale, f"scale of the tensor entering {where}, the last dequantize that ran"
        return None, ""


@dataclass
class Site:
    """One comparison of the teacher-forced run: a module's (or node's) input or output."""

    kind: str  # "input", "output" or "model output"
    name: str  # module qualified name or node name
    call: int
    expected: Any
    found: Any
    leaf: bool = True  # no compared site inside it (a module's own computation)
    step: float | None = None  # PT2E: the scale of the quantize node the value feeds


class Twins:
    """The converted copy and the frozen reference of one prepared model."""

    def __init__(self, model: nn.Module, kind: str):
        self.model = model
        self.kind = kind
        self.flow = flow_of(model)
        self.converted = converted_copy(model, kind)
        with quiet_internals():
            self.reference = reference_copy(model, self.converted, kind)

    # converted run --------------------------------------------------------------------
    def run_converted(self, inputs) -> tuple[Any, ConvertedRun]:
        torch = require_torch()
        run = ConvertedRun()
        if self.flow == EAGER or self.kind == DYNAMIC:
            return self._run_converted_modules(inputs, run, torch), run
        return _GraphRecorder(self.converted, run, torch).run(*inputs), run

    def _run_converted_modules(self, inputs, run, torch):
        averaging_types = {getattr(torch.nn, name) for name in _AVERAGING_MODULES}
        reference_types = {name: type(module) for name, module in self.reference.named_modules()}
        handles = []

        def record_dequantize(name, module, args, output):
            if args and isinstance(args[0], torch.Tensor) and args[0].is_quantized:
                run.dequantized.append((output, args[0].q_scale(), f"`{name}`"))

        def record_average(name, module, args, output):
            if isinstance(output, torch.Tensor) and output.is_quantized:
                grid = (output.q_scale(), output.q_zero_point(), output.dtype)
                run.averaged.setdefault(name, []).append(grid)

        for name, module in self.converted.named_modules():
            if isinstance(module, torch.ao.nn.quantized.DeQuantize):
                handles.append(module.register_forward_hook(partial(record_dequantize, name)))
            elif type(module) in averaging_types and reference_types.get(name) is type(module):
                handles.append(module.register_forward_hook(partial(record_average, name)))
        try:
            with torch.no_grad():
                return self.converted(*inputs)
        finally:
            for handle in handles:
                handle.remove()

    # reference run --------------------------------------------------------------------
    def run_reference(self, inputs, run: ConvertedRun):
        torch = require_torch()
        with torch.no_grad(), self.averages_rounded(run):
            return self.reference(*inputs)

    @contextmanager
    def averages_rounded(self, run: ConvertedRun):
        """Round the reference's averaging modules to the grids the converted ones used."""
        torch = require_torch()
        modules = dict(self.reference.named_modules())

        def round_to_grid(grids, module, args, output):
            scale, zero_point, dtype = next(grids, (None, None, None))
            dtype_range = quantized_range(dtype, torch)
            if dtype_range is None:
                return None
            return torch.fake_quantize_per_tensor_affine(
                output, scale, zero_point, dtype_range[0], dtype_range[1]
            )

        handles = [
            modules[name].register_forward_hook(partial(round_to_grid, iter(grids)))
            for name, grids in run.averaged.items()
            if name in modules
        ]
        try:
            yield
        finally:
            for handle in handles:
                handle.remove()

    # teacher-forced run ---------------------------------------------------------------
    def isolated(self, inputs, run: ConvertedRun) -> list[Site]:
        """Sites in reference call order, each compared with upstream forced to agree."""
        torch = require_torch()
        if self.flow == PT2E and self.kind != DYNAMIC:
            return _isolated_nodes(self.reference, self.converted, inputs, torch)
        return _isolated_modules(self, inputs, run, torch)


def _usable(value, torch) -> bool:
    return isinstance(value, torch.Tensor) and (value.is_floating_point() or value.is_quantized)


def _float(value):
    return value.dequantize() if value.is_quantized else value


def _shared_sites(reference: nn.Module, converted: nn.Module) -> list[str]:
    """Module names both copies have, without observers/fake-quants and their insides."""
    from qlint.runtime._machinery import is_quant_machinery

    converted_modules = dict(converted.named_modules())
    shared, machinery = [], []
    for name, module in reference.named_modules():
        if not name or any(name.startswith(prefix + ".") for prefix in machinery):
            continue
        if is_quant_machinery(module):
            machinery.append(name)
            continue
        if name in converted_modules and not is_quant_machinery(converted_modules[name]):
            shared.append(name)
    return shared


def _isolated_modules(twins: Twins, inputs, run: ConvertedRun, torch) -> list[Site]:
    reference, converted = twins.reference, twins.converted
    names = _shared_sites(reference, converted)
    found: dict[tuple[str, str, int], Any] = {}
    calls: dict[tuple[str, str], int] = {}

    def count(kind, name):
        calls[kind, name] = calls.get((kind, name), -1) + 1
        return calls[kind, name]

    def on_converted_input(name, module, args):
        tensor = next((arg for arg in args if isinstance(arg, torch.Tensor)), None)
        found["input", name, count("input", name)] = tensor

    def on_converted_output(name, module, args, output):
        found["output", name, count("output", name)] = output

    converted_modules = dict(converted.named_modules())
    handles = []
    for name in names:
        handles.append(converted_modules[name].register_forward_pre_hook(partial(on_converted_input, name)))
        handles.append(converted_modules[name].register_forward_hook(partial(on_converted_output, name)))
    try:
        with torch.no_grad():
            converted_output = converted(*inputs)
    finally:
        for handle in handles:
            handle.remove()

    sites: list[Site] = []
    calls.clear()
    open_sites: list[Site] = []

    def on_reference_input(name, module, args):
        call = count("input", name)
        tensor = next((arg for arg in args if isinstance(arg, torch.Tensor)), None)
        if open_sites:
            open_sites[-1].leaf = False
        converted_tensor = found.get(("input", name, call))
        site = Site("output", name, call, None, found.get(("output", name, call)))
        if _usable(tensor, torch) and _usable(converted_tensor, torch):
            sites.append(Site("input", name, call, tensor, converted_tensor))
        open_sites.append(site)

    def on_reference_output(name, module, args, output):
        site = open_sites.pop()
        site.expected = output
        if _usable(output, torch) and _usable(site.found, torch) and output.shape == site.found.shape:
            sites.append(site)
            return _float(site.found).to(output.dtype)
        return None

    reference_modules = dict(reference.named_modules())
    handles = []
    for name in names:
        handles.append(reference_modules[name].register_forward_pre_hook(partial(on_reference_input, name)))
        handles.append(reference_modules[name].register_forward_hook(partial(on_reference_output, name)))
    try:
        with torch.no_grad(), twins.averages_rounded(run):
            reference_output = reference(*inputs)
    finally:
        for handle in handles:
            handle.remove()
    expected_tensors, found_tensors = tensors_in(reference_output), tensors_in(converted_output)
    for index, (expected, actual) in enumerate(zip(expected_tensors, found_tensors)):
        if _usable(expected, torch) and _usable(actual, torch) and expected.shape == actual.shape:
            sites.append(Site("model output", str(index), 0, expected, actual))
    return sites


class _GraphRecorder:
    """Runs a converted GraphModule, recording the scale of every dequantized tensor."""

    def __init__(self, graph_module, run: ConvertedRun, torch):
        self.graph_module, self.run_record, self.torch = graph_module, run, torch

    def run(self, *inputs):
        torch = self.torch
        record = self.run_record

        class Recorder(torch.fx.Interpreter):
            def run_node(self, node):
                value = super().run_node(node)
                if _is_graph_dequantize(node) and isinstance(value, torch.Tensor):
                    scale = _dequantize_scale(self, node, torch)
                    if scale is not None:
                        record.dequantized.append((value, scale, f"node `{node.name}`"))
                return value

        with torch.no_grad():
            return Recorder(self.graph_module).run(*inputs)


def _is_graph_dequantize(node) -> bool:
    if node.op == "call_method" and node.target == "dequantize":
        return True
    return is_dequantize(node)


def _dequantize_scale(interpreter, node, torch) -> float | None:
    """The step of the tensor a dequantize node turns into float (per-tensor only)."""
    if node.op == "call_method":
        source = interpreter.env.get(node.args[0])
        if isinstance(source, torch.Tensor) and source.is_quantized and source.qscheme() in (
            torch.per_tensor_affine, torch.per_tensor_symmetric
        ):
            return source.q_scale()
        return None
    if "per_tensor" not in str(node.target):
        return None
    scale = node.args[1] if len(node.args) > 1 else None
    if hasattr(scale, "op"):
        scale = interpreter.env.get(scale)
    if isinstance(scale, torch.Tensor):
        return float(scale.reshape(-1)[0]) if scale.numel() == 1 else None
    return float(scale) if isinstance(scale, (int, float)) else None


def _node_key(node) -> tuple[str, Any, str | None]:
    return node.name, node.target, module_path(node)


def _isolated_nodes(reference, converted, inputs, torch) -> list[Site]:
    """PT2E: compare every node both graphs share (same name and operator), in reference
    order; each reference node then continues with the converted value."""
    found: dict[tuple[str, Any], Any] = {}
    steps: dict[str, float] = {}

    class Recorder(torch.fx.Interpreter):
        def run_node(self, node):
            value = super().run_node(node)
            if node.op == "call_function":
                found[_node_key(node)] = value
                for user in node.users:
                    if user.op == "call_function" and "quantize_per_tensor" in str(user.target) \
                            and "dequantize" not in str(user.target):
                        scale = user.args[1]
                        if isinstance(scale, (int, float)):
                            steps[node.name] = float(scale)
            return value

    with torch.no_grad():
        converted_output = Recorder(converted).run(*inputs)

    sites: list[Site] = []

    class Forced(torch.fx.Interpreter):
        def run_node(self, node):
            value = super().run_node(node)
            key = _node_key(node)
            if node.op != "call_function" or key not in found:
                return value
            actual = found[key]
            if _usable(value, torch) and _usable(actual, torch) and value.shape == actual.shape:
                sites.append(Site("output", node.name, 0, value, actual, step=steps.get(node.name)))
                return _float(actual).to(value.dtype)
            return value

    with torch.no_grad():
        reference_output = Forced(reference).run(*inputs)
    for index, (expected, actual) in enumerate(
        zip(tensors_in(reference_output), tensors_in(converted_output))
    ):
        if _usable(expected, torch) and _usable(actual, torch) and expected.shape == actual.shape:
            sites.append(Site("model output", str(index), 0, expected, actual))
    return sites

