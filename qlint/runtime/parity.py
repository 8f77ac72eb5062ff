"""Parity between a prepared model and its converted copy: ``assert_parity``.

The prepared model (fake quantization from ``prepare_qat``, or observers from ``prepare``)
is what a user trains and evaluates; ``torch.ao.quantization.convert`` turns it into the
model that ships. ``assert_parity`` checks that both compute the same thing, up to the
rounding that quantized kernels are allowed, and names the module where they part ways.

Differences are counted in output quantization steps: the scale of the quantized tensor
that the final ``DeQuantize`` turns back into float. Defaults are calibrated in
docs/parity.md.
"""

from __future__ import annotations

import copy
import math
import os
import traceback
from contextlib import contextmanager
from dataclasses import dataclass
from functools import partial

from qlint.runtime._torch import require_torch

# Two tensors on one quantization grid differ by whole steps; the margin absorbs float32
# rounding in the dequantized values, so that exactly one step is not counted as "beyond".
_ONE_STEP = 1.0 + 1e-3
_ERROR_TEXT_LIMIT = 300


@dataclass(frozen=True)
class _Tolerances:
    max_share_beyond_one_step: float
    max_steps: float
    min_sqnr_db: float


@dataclass(frozen=True)
class _Comparison:
    """How far the converted tensor is from the fake-quantized one."""

    elements: int
    sqnr_db: float
    step: float | None  # None when the converted tensor is float with no known step
    share_beyond_one_step: float = 0.0
    max_steps: float = 0.0

    def violations(self, tolerances: _Tolerances) -> list[str]:
        found = []
        if self.step is not None:
            if self.share_beyond_one_step > tolerances.max_share_beyond_one_step:
                found.append(
                    f"{self.share_beyond_one_step:.2%} of {self.elements} elements differ by "
                    f"more than one step (allowed {tolerances.max_share_beyond_one_step:.2%})"
                )
            if self.max_steps > tolerances.max_steps:
                found.append(
                    f"max difference {self.max_steps:.1f} steps (allowed {tolerances.max_steps:g})"
                )
        if self.sqnr_db < tolerances.min_sqnr_db:
            found.append(
                f"SQNR {self.sqnr_db:.1f} dB (required {tolerances.min_sqnr_db:g} dB or more)"
            )
        return found

    def summary(self) -> str:
        text = f"SQNR {self.sqnr_db:.1f} dB"
        if self.step is not None:
            text += (
                f", {self.share_beyond_one_step:.2%} of {self.elements} elements beyond one step,"
                f" max {self.max_steps:.1f} steps of {self.step:.4g}"
            )
        return text


def assert_parity(
    model,
    example_inputs,
    *,
    max_share_beyond_one_step: float = 0.05,
    max_steps: float = 16,
    min_sqnr_db: float = 30.0,
) -> None:
    """Assert that ``torch.ao.quantization.convert(model)`` computes what ``model`` computes.

    ``model`` is prepared and calibrated (``prepare_qat`` or ``prepare``); ``example_inputs``
    is a tensor or a tuple of positional arguments. Deep copies are compared in eval mode on
    the current quantized engine: the prepared copy with its observers frozen (fake-quant
    switches as the model has them; ``prepare`` observers fake-quantize with their qparams and
    weights are the ones convert quantizes) against a converted copy. ``model`` is not changed.

    Each output passes when at most ``max_share_beyond_one_step`` of its elements differ by
    more than one output quantization step, none by more than ``max_steps`` steps, and its
    SQNR (converted against fake-quant) is at least ``min_sqnr_db``. On failure the message
    names the first module whose output diverges; a crash of the converted model names the
    module whose forward raised.
    """
    __tracebackhide__ = True
    tolerances = _validated_tolerances(max_share_beyond_one_step, max_steps, min_sqnr_db)
    torch = require_torch()
    inputs = example_inputs if isinstance(example_inputs, tuple) else (example_inputs,)

    converted = torch.ao.quantization.convert(copy.deepcopy(model).eval(), inplace=False)
    with torch.no_grad():
        reference = _frozen_reference(model, inputs, torch)
        _load_converted_weights(reference, converted, torch)
        try:
            found, run = _run_converted(converted, reference, inputs, torch)
        except Exception as error:  # noqa: BLE001 - any crash is reported with its module
            raise AssertionError(_crash_message(converted, inputs, error, torch)) from error
        with run.averages_rounded_in(reference):
            expected = reference(*inputs)

    expected_leaves = dict(_tensor_leaves(expected, "output", torch))
    found_leaves = dict(_tensor_leaves(found, "output", torch))
    if expected_leaves.keys() != found_leaves.keys():
        raise AssertionError(
            f"the converted model returns tensors at {sorted(found_leaves)}, the prepared model "
            f"at {sorted(expected_leaves)}; expected the same output structure"
        )

    failures = []
    for where, expected_tensor in expected_leaves.items():
        if not (expected_tensor.is_floating_point() or expected_tensor.is_quantized):
            continue
        found_tensor = found_leaves[where]
        step, step_source = run.output_step(found_tensor)
        if step is None:
            raise AssertionError(
                f"{where} of the converted model is float and no DeQuantize ran: nothing was "
                "quantized, so there is no output step to compare in; expected a model prepared "
                "with a qconfig and QuantStub/DeQuantStub around the quantized part"
            )
        comparison = _compare(expected_tensor, found_tensor, step, torch)
        problems = comparison.violations(tolerances)
        if problems:
            failures.append((where, comparison, problems, step_source))

    if failures:
        layer_report = _localize(reference, converted, run, inputs, tolerances, torch)
        raise AssertionError(
            _divergence_message(failures, layer_report, _disabled_fake_quants(model, torch), torch)
        )


def _validated_tolerances(
    max_share_beyond_one_step: float, max_steps: float, min_sqnr_db: float
) -> _Tolerances:
    if not 0.0 <= max_share_beyond_one_step <= 1.0:
        raise ValueError(
            f"max_share_beyond_one_step must be a share between 0 and 1, got "
            f"{max_share_beyond_one_step!r}"
        )
    if not max_steps >= 1:
        raise ValueError(f"max_steps must be at least 1 (one rounding step), got {max_steps!r}")
    if math.isnan(min_sqnr_db):
        raise ValueError("min_sqnr_db must be a number of decibels, got nan")
    return _Tolerances(float(max_share_beyond_one_step), float(max_steps), float(min_sqnr_db))


def _frozen_reference(model, inputs, torch):
    """Deep copy in eval mode whose quantization no longer learns from the data it sees.

    Two differences are by design of eager-mode kernels, not of the model, and the reference
    takes them over: ``convert`` runs each weight fake-quant once on the weights it quantizes
    (one forward with only those observers on gives the reference the same weight qparams),
    and quantized kernels saturate at the dtype's range even where the qconfig reduces the
    range (x86/fbgemm ``reduce_range``: fake-quant clamps at 127). Then every observer is
    frozen.
    """
    reference = copy.deepcopy(model).eval()
    fake_quant_type = torch.ao.quantization.FakeQuantizeBase
    weight_fake_quants = {
        id(module.weight_fake_quant)
        for module in reference.modules()
        if isinstance(getattr(module, "weight_fake_quant", None), fake_quant_type)
    }
    for module in reference.modules():
        if isinstance(module, fake_quant_type) and id(module) not in weight_fake_quants:
            module.disable_observer()
            dtype_range = _dtype_range(getattr(module, "dtype", None), torch)
            if dtype_range is not None:
                # The fused fake-quant reads the range from its observer.
                for holder in (module, getattr(module, "activation_post_process", None)):
                    if hasattr(holder, "quant_max"):
                        holder.quant_min, holder.quant_max = dtype_range
    _freeze_observers_as_fake_quant(reference, torch)
    if weight_fake_quants:
        reference(*inputs)
    reference.apply(torch.ao.quantization.disable_observer)
    return reference


def _freeze_observers_as_fake_quant(reference, torch):
    """Plain observers (``prepare``) pass values through: make them fake-quantize instead."""
    observer_type = torch.ao.quantization.observer.UniformQuantizationObserverBase
    fake_quant_type = torch.ao.quantization.FakeQuantizeBase
    for parent in reference.modules():
        if isinstance(parent, fake_quant_type):
            continue  # the observer inside a fake-quant only feeds it
        for observer in parent.children():
            dtype_range = _dtype_range(getattr(observer, "dtype", None), torch)
            if (
                isinstance(observer, observer_type)
                and observer.qscheme in (torch.per_tensor_affine, torch.per_tensor_symmetric)
                and dtype_range is not None
            ):
                scale, zero_point = observer.calculate_qparams()
                observer.register_forward_hook(
                    partial(
                        _fake_quantize_output,
                        torch=torch,
                        scale=float(scale),
                        zero_point=int(zero_point),
                        quant_min=dtype_range[0],
                        quant_max=dtype_range[1],
                    )
                )


def _dtype_range(dtype, torch):
    """The integer range quantized kernels saturate at, for 8-bit activation dtypes."""
    return {torch.quint8: (0, 255), torch.qint8: (-128, 127)}.get(dtype)


def _fake_quantize_output(module, args, output, *, torch, scale, zero_point, quant_min, quant_max):
    return torch.fake_quantize_per_tensor_affine(output, scale, zero_point, quant_min, quant_max)


def _load_converted_weights(reference, converted, torch):
    """Give weights that only convert quantizes (``prepare`` models) their quantized values."""
    reference_modules = dict(reference.named_modules())
    for name, quantized in converted.named_modules():
        weight = getattr(quantized, "weight", None)
        if not callable(weight) or isinstance(weight, torch.nn.Module):
            continue
        float_module = reference_modules.get(name)
        if float_module is None or hasattr(float_module, "weight_fake_quant"):
            continue  # QAT modules fake-quantize their weights themselves
        if isinstance(float_module, torch.ao.nn.intrinsic.modules.fused._FusedModule):
            float_module = float_module[0]
        quantized_weight = weight()
        float_weight = getattr(float_module, "weight", None)
        if (
            isinstance(float_weight, torch.Tensor)
            and quantized_weight.is_quantized
            and float_weight.shape == quantized_weight.shape
        ):
            with torch.no_grad():
                float_weight.copy_(quantized_weight.dequantize())


# Modules whose quantized kernels round their result to the input's grid while the
# fake-quant model keeps the exact float result: the reference rounds them the same way.
_AVERAGING_MODULES = (
    "AvgPool1d",
    "AvgPool2d",
    "AvgPool3d",
    "AdaptiveAvgPool1d",
    "AdaptiveAvgPool2d",
    "AdaptiveAvgPool3d",
    "Upsample",
    "UpsamplingBilinear2d",
    "UpsamplingNearest2d",
)


class _ConvertedRun:
    """What a run of the converted model tells about quantization steps."""

    def __init__(self, torch):
        self._torch = torch
        self.dequantized = []  # (output tensor, input scale, module name) per DeQuantize call
        self.averaged = {}  # module name -> (scale, zero_point, dtype) per call

    def record_dequantize(self, name, module, args, output):
        if args and isinstance(args[0], self._torch.Tensor) and args[0].is_quantized:
            self.dequantized.append((output, args[0].q_scale(), name))

    def record_average(self, name, module, args, output):
        if isinstance(output, self._torch.Tensor) and output.is_quantized:
            grid = (output.q_scale(), output.q_zero_point(), output.dtype)
            self.averaged.setdefault(name, []).append(grid)

    def output_step(self, found):
        """The quantization step of an output, and where it comes from."""
        if found.is_quantized:
            return found.q_scale(), "the output's own scale"
        for output, scale, name in self.dequantized:
            if output is found:
                return scale, f"scale of the tensor entering `{name}`"
        if self.dequantized:
            _, scale, name = self.dequantized[-1]
            return scale, f"scale of the tensor entering `{name}`, the last DeQuantize that ran"
        return None, ""

    @contextmanager
    def averages_rounded_in(self, reference):
        """Round the reference's averaging modules to the grids the converted ones used."""
        modules = dict(reference.named_modules())
        calls = {name: iter(grids) for name, grids in self.averaged.items()}
        handles = [
            modules[name].register_forward_hook(partial(self._round_to_grid, grids))
            for name, grids in calls.items()
        ]
        try:
            yield
        finally:
            for handle in handles:
                handle.remove()

    def _round_to_grid(self, grids, module, args, output):
        scale, zero_point, dtype = next(grids, (None, None, None))
        dtype_range = _dtype_range(dtype, self._torch)
        if dtype_range is None:
            return None
        quant_min, quant_max = dtype_range
        return self._torch.fake_quantize_per_tensor_affine(
            output, scale, zero_point, quant_min, quant_max
        )


def _run_converted(converted, reference, inputs, torch):
    """Run ``converted`` and record the grids of its DeQuantize inputs and averaging outputs."""
    run = _ConvertedRun(torch)
    reference_types = {name: type(module) for name, module in reference.named_modules()}
    handles = []
    for name, module in converted.named_modules():
        if isinstance(module, torch.ao.nn.quantized.DeQuantize):
            handles.append(module.register_forward_hook(partial(run.record_dequantize, name)))
        elif (
            type(module).__name__ in _AVERAGING_MODULES
            and type(module).__module__.startswith("torch.nn.")
            and reference_types.get(name) is type(module)
        ):
            handles.append(module.register_forward_hook(partial(run.record_average, name)))
    try:
        return converted(*inputs), run
    finally:
        for handle in handles:
            handle.remove()


def _tensor_leaves(value, where, torch):
    if isinstance(value, torch.Tensor):
        yield where, value
    elif isinstance(value, (tuple, list)):
        for index, item in enumerate(value):
            yield from _tensor_leaves(item, f"{where}[{index}]", torch)
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _tensor_leaves(item, f"{where}[{key!r}]", torch)


def _compare(expected, found, step, torch) -> _Comparison:
    expected = _as_float(expected).double().flatten()
    found = _as_float(found).double().flatten()
    error = found - expected
    noise = float((error * error).sum())
    signal = float((expected * expected).sum())
    sqnr_db = math.inf if noise == 0 else 10 * math.log10(signal / noise) if signal else -math.inf
    if step is None:
        return _Comparison(elements=expected.numel(), sqnr_db=sqnr_db, step=None)
    steps = error.abs() / step
    return _Comparison(
        elements=expected.numel(),
        sqnr_db=sqnr_db,
        step=step,
        share_beyond_one_step=float((steps > _ONE_STEP).double().mean()) if steps.numel() else 0.0,
        max_steps=float(steps.max()) if steps.numel() else 0.0,
    )


def _as_float(tensor):
    return tensor.dequantize() if tensor.is_quantized else tensor.detach()


@dataclass(frozen=True)
class _LayerReport:
    diverging: tuple[str, str, _Comparison, list[str]] | None  # name, types, comparison, problems
    last_agreeing: tuple[str, _Comparison] | None


def _localize(reference, converted, run, inputs, tolerances, torch) -> _LayerReport:
    """Compare per-module outputs of both copies; find the first that diverges."""
    reference_modules = dict(reference.named_modules())
    converted_modules = dict(converted.named_modules())
    shared = [name for name in reference_modules if name and name in converted_modules]
    with torch.no_grad():
        with run.averages_rounded_in(reference):
            expected_calls = _module_outputs(reference, reference_modules, shared, inputs, torch)
        found_calls = _module_outputs(converted, converted_modules, shared, inputs, torch)

    found_by_call = {}
    for name, output in found_calls:
        found_by_call.setdefault(name, []).append(output)
    calls_seen = {}
    last_agreeing = None
    for name, expected in expected_calls:
        index = calls_seen.get(name, 0)
        calls_seen[name] = index + 1
        found_outputs = found_by_call.get(name, [])
        if index >= len(found_outputs) or found_outputs[index].shape != expected.shape:
            continue
        found = found_outputs[index]
        step = found.q_scale() if found.is_quantized else None
        comparison = _compare(expected, found, step, torch)
        problems = comparison.violations(tolerances)
        if problems:
            types = (
                f"{type(reference_modules[name]).__name__} -> "
                f"{type(converted_modules[name]).__name__}"
            )
            return _LayerReport((name, types, comparison, problems), last_agreeing)
        last_agreeing = (name, comparison)
    return _LayerReport(None, last_agreeing)


def _module_outputs(model, modules, names, inputs, torch):
    """(name, output) of every call of the named modules, in the order the calls finished."""
    calls = []

    def record(name, module, args, output):
        if isinstance(output, torch.Tensor) and (output.is_floating_point() or output.is_quantized):
            calls.append((name, output))

    handles = [modules[name].register_forward_hook(partial(record, name)) for name in names]
    try:
        model(*inputs)
    finally:
        for handle in handles:
            handle.remove()
    return calls


def _display_name(name: str) -> str:
    """FloatFunctional ops are only visible through their activation_post_process child."""
    suffix = ".activation_post_process"
    return name[: -len(suffix)] if name.endswith(suffix) else name


def _disabled_fake_quants(model, torch) -> list[str]:
    return [
        name
        for name, module in model.named_modules()
        if isinstance(module, torch.ao.quantization.FakeQuantizeBase)
        and not bool(module.fake_quant_enabled)
    ]


def _divergence_message(failures, layer_report, disabled_fake_quants, torch) -> str:
    lines = [
        "the converted model diverges from the prepared (fake-quant) model "
        f"(quantized engine {torch.backends.quantized.engine}):"
    ]
    for where, comparison, problems, step_source in failures:
        lines.append(
            f"  {where}: {'; '.join(problems)}; "
            f"max {comparison.max_steps:.1f} steps, SQNR {comparison.sqnr_db:.1f} dB over "
            f"{comparison.elements} elements (one step = {comparison.step:.4g}, {step_source})"
        )
    if layer_report.diverging is not None:
        name, types, comparison, problems = layer_report.diverging
        lines.append(
            f"first diverging module: `{_display_name(name)}` ({types}): {'; '.join(problems)} "
            f"[{comparison.summary()}]"
        )
    else:
        lines.append(
            "no submodule output diverges by itself: the difference arises in operations "
            "written in a forward between submodules"
        )
    if layer_report.last_agreeing is not None:
        name, comparison = layer_report.last_agreeing
        lines.append(
            f"last module that agrees before it: `{_display_name(name)}` [{comparison.summary()}]"
        )
    if disabled_fake_quants:
        lines.append(
            "fake quantization is disabled in: "
            + ", ".join(f"`{name}`" for name in disabled_fake_quants)
            + " (the prepared model skips quantization there, the converted model does not)"
        )
    lines.append(
        "how to fix: make the prepared model compute what convert produces at that module: "
        "FloatFunctional.add_scalar/mul_scalar are not fake-quantized but the converted kernels "
        "derive new qparams (fold the constant into a neighbouring layer, or add a tensor with "
        "FloatFunctional.add); a module called at two places shares one observer (give each "
        "call its own module); re-enable fake quantization and run calibration again after "
        "changing weights. If the difference is expected, pass looser max_share_beyond_one_step="
        ", max_steps= or min_sqnr_db= to assert_parity."
    )
    return "\n".join(lines)


def _crash_message(converted, inputs, error, torch) -> str:
    name, module_type = _module_that_raised(converted, inputs, torch)
    where = f"`{name}` ({module_type}.forward)" if name else f"the model's own forward ({module_type}.forward)"
    frame = _last_frame_outside_torch(error, torch)
    at = f" at {frame.filename}:{frame.lineno} `{frame.line}`" if frame is not None else ""
    first_line = (str(error).strip().splitlines() or [""])[0][:_ERROR_TEXT_LIMIT]
    return (
        f"the converted model crashed in {where}{at}: {type(error).__name__}: {first_line}\n"
        "expected the converted copy (torch.ao.quantization.convert) to run on the example "
        "inputs like the prepared model does\n"
        "how to fix: quantized tensors support few operations. Write tensor arithmetic "
        "(+, *, torch.add, cat) with a torch.ao.nn.quantized.FloatFunctional created in "
        "__init__ (self.add = FloatFunctional(); self.add.add(a, b)); a float tensor or "
        "parameter cannot meet a quantized activation: dequantize first (DeQuantStub), compute "
        "in float, and quantize again (QuantStub), or move the parameter into a quantizable "
        "module"
    )


def _module_that_raised(converted, inputs, torch) -> tuple[str, str]:
    """Run ``converted`` again, tracking entered modules; the innermost still open raised."""
    open_modules = []
    handles = []
    for name, module in converted.named_modules():
        handles.append(
            module.register_forward_pre_hook(lambda module, args, name=name: open_modules.append(name))
        )
        handles.append(module.register_forward_hook(lambda module, args, output: open_modules.pop()))
    try:
        with torch.no_grad():
            converted(*inputs)
    except Exception:  # noqa: BLE001 - the same crash again, now with the module stack
        pass
    finally:
        for handle in handles:
            handle.remove()
    name = open_modules[-1] if open_modules else ""
    return name, type(converted.get_submodule(name)).__name__


def _last_frame_outside_torch(error, torch):
    torch_dir = os.path.dirname(torch.__file__) + os.sep
    frames = [
        frame
        for frame in traceback.extract_tb(error.__traceback__)
        if not frame.filename.startswith(torch_dir) and frame.filename != __file__
    ]
    return frames[-1] if frames else None
