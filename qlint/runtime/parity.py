"""Parity between a prepared model and its converted copy: ``assert_parity``.

The prepared model (fake quantization from ``prepare_qat``, or observers from ``prepare``)
is what a user trains and evaluates; ``torch.ao.quantization.convert`` turns it into the
model that ships. ``assert_parity`` checks that both compute the same thing, up to the
rounding quantized kernels are allowed, and names the module where they part ways.

Differences are counted in output quantization steps (the scale of the quantized tensor the
final ``DeQuantize`` turns back into float) and judged as a distribution: the share of
elements beyond ``max_steps`` steps (outliers), and the SQNR. Defaults and their measurements:
docs/parity.md.
"""

from __future__ import annotations

import math
import os
import traceback
from contextlib import contextmanager
from dataclasses import dataclass, replace
from functools import partial

from qlint.runtime._modules import as_args, eval_copy, iter_quant_modules, parent_name, tensors_in
from qlint.runtime._torch import require_torch

_ERROR_TEXT_LIMIT = 300
# The default SQNR bar, and how far under the SQNR an output's own quantization keeps it
# drops for outputs resolved by a few steps: a one-step disagreement on every element
# costs about 10.8 dB; measured clean low-resolution outputs stayed within 5 dB
# (docs/parity.md).
_DEFAULT_MIN_SQNR_DB = 15.0
_QUANTIZATION_NOISE_MARGIN_DB = 10.0


@dataclass(frozen=True)
class _Tolerances:
    max_steps: float
    max_outlier_share: float
    min_sqnr_db: float
    follows_resolution: bool  # the default bar, lowered for low-resolution outputs


@dataclass(frozen=True)
class _Comparison:
    """How far a converted tensor is from its fake-quantized counterpart."""

    elements: int
    sqnr_db: float
    step: float | None  # None when the converted tensor is float: only the SQNR applies
    outlier_share: float = 0.0
    share_beyond_one_step: float = 0.0
    largest_steps: float = 0.0
    # SQNR of the fake-quantized tensor against the same model with quantization off; known
    # only when sqnr_db is below the bar, which then drops to the quantization noise floor.
    quantization_sqnr_db: float | None = None

    def required_sqnr_db(self, tolerances: _Tolerances) -> float:
        if self.quantization_sqnr_db is None or not tolerances.follows_resolution:
            return tolerances.min_sqnr_db
        floor = self.quantization_sqnr_db - _QUANTIZATION_NOISE_MARGIN_DB
        return min(tolerances.min_sqnr_db, floor)

    def violations(self, tolerances: _Tolerances) -> list[str]:
        found = []
        if self.step is not None and self.outlier_share > tolerances.max_outlier_share:
            found.append(
                f"{self.outlier_share:.1%} of {self.elements} elements differ by more than "
                f"{tolerances.max_steps:g} steps (allowed {tolerances.max_outlier_share:.1%})"
            )
        required = self.required_sqnr_db(tolerances)
        if self.sqnr_db < required:
            text = f"SQNR {self.sqnr_db:.1f} dB (required {required:.3g} dB or more"
            if self.quantization_sqnr_db is not None:
                text += f"; quantization alone keeps {self.quantization_sqnr_db:.1f} dB"
            found.append(text + ")")
        return found

    def summary(self) -> str:
        if self.step is None:
            return f"SQNR {self.sqnr_db:.1f} dB over {self.elements} elements"
        return (
            f"SQNR {self.sqnr_db:.1f} dB, max {_steps_text(self.largest_steps)}, "
            f"{self.share_beyond_one_step:.1%} of {self.elements} elements beyond one step "
            f"of {self.step:.4g}"
        )


def _steps_text(count: float) -> str:
    return f"{count:.0f} step" if round(count) == 1 else f"{count:.0f} steps"


def assert_parity(
    model,
    example_inputs,
    *,
    max_steps: float = 8,
    max_outlier_share: float = 0.01,
    min_sqnr_db: float | None = None,
) -> None:
    """Assert that ``torch.ao.quantization.convert(model)`` computes what ``model`` computes.

    ``model`` is prepared and calibrated (``prepare_qat`` or ``prepare``); ``example_inputs``
    is a tensor or a tuple of positional inputs. Deep copies run in eval mode on the current
    quantized engine: a converted copy, and a reference copy of the prepared model whose
    quantization is frozen (fake-quant switches kept as the model has them; ``prepare``
    observers fake-quantize with their qparams). ``model`` itself is not changed.

    Each output passes when at most ``max_outlier_share`` of its elements differ by more
    than ``max_steps`` output quantization steps and its SQNR (fake-quant output over the
    difference) is at least ``min_sqnr_db``. Left at None, that bar is 15 dB, lowered for an
    output resolved by a few steps to 10 dB under the SQNR its own quantization keeps
    (against the model with fake quantization off); a number is a fixed bar. A failure
    names the first module whose input or output diverges; a crash of the converted model
    names the module whose forward raised.
    """
    __tracebackhide__ = True
    tolerances = _validated_tolerances(max_steps, max_outlier_share, min_sqnr_db)
    torch = require_torch()
    inputs = as_args(example_inputs)
    outputs = _compared_outputs(model, inputs, tolerances, torch)
    failures = []
    for where, comparison, step_source in outputs.comparisons:
        problems = comparison.violations(tolerances)
        if problems:
            failures.append((where, comparison, problems, step_source))
    if failures:
        divergence = _first_divergence(model, outputs, inputs, tolerances, torch)
        disabled = [
            name
            for name, module in iter_quant_modules(model)
            if isinstance(module, torch.ao.quantization.FakeQuantizeBase)
            and not bool(module.fake_quant_enabled)
        ]
        raise AssertionError(_divergence_message(failures, divergence, disabled, model, torch))


@dataclass(frozen=True)
class _ComparedOutputs:
    reference: object  # the frozen prepared copy
    converted: object
    run: _ConvertedRun
    comparisons: list  # (where, _Comparison, where the step comes from) per float output


def _compared_outputs(model, inputs, tolerances, torch) -> _ComparedOutputs:
    """Convert a copy, run it and the frozen reference, compare every float output.

    Under the default SQNR bar, outputs below it are also measured against the model with
    quantization off (one more copy and forward, only then).
    """
    __tracebackhide__ = True
    converted = torch.ao.quantization.convert(eval_copy(model), inplace=True)
    with torch.no_grad():
        reference = _frozen_reference(model, converted, torch)
        try:
            found, run = _run_converted(converted, reference, inputs, torch)
        except Exception as error:  # noqa: BLE001 - any crash is reported with its module
            raise AssertionError(_crash_message(converted, inputs, error, torch)) from error
        with run.averages_rounded_in(reference):
            expected = reference(*inputs)

    expected_tensors, found_tensors = tensors_in(expected), tensors_in(found)
    if len(expected_tensors) != len(found_tensors):
        raise AssertionError(
            f"the converted model returns {len(found_tensors)} tensors, the prepared model "
            f"{len(expected_tensors)}; expected the same outputs"
        )
    comparisons = []
    for index, (expected_tensor, found_tensor) in enumerate(zip(expected_tensors, found_tensors)):
        if not expected_tensor.is_floating_point():
            continue
        where = "output" if len(expected_tensors) == 1 else f"output tensor {index}"
        step, step_source = run.output_step(found_tensor)
        if step is None:
            raise AssertionError(
                f"{where} of the converted model is float and no DeQuantize ran: nothing was "
                "quantized; expected a model prepared with a qconfig and QuantStub/DeQuantStub "
                "around its quantized part"
            )
        comparison = _compare(expected_tensor, found_tensor, step, tolerances)
        comparisons.append((index, where, comparison, step_source))

    if tolerances.follows_resolution and any(
        comparison.sqnr_db < tolerances.min_sqnr_db for _, _, comparison, _ in comparisons
    ):
        with torch.no_grad():
            unquantized = tensors_in(_unquantized_copy(model, torch)(*inputs))
        comparisons = [
            (index, where, _with_quantization_sqnr(comparison, expected_tensors[index],
                                                   unquantized[index], tolerances), step_source)
            for index, where, comparison, step_source in comparisons
        ]
    return _ComparedOutputs(reference, converted, run, [entry[1:] for entry in comparisons])


def _unquantized_copy(model, torch):
    """The prepared model with every fake-quant off (``prepare`` observers pass values)."""
    unquantized = eval_copy(model)
    unquantized.apply(torch.ao.quantization.disable_fake_quant)
    unquantized.apply(torch.ao.quantization.disable_observer)
    return unquantized


def _with_quantization_sqnr(comparison, expected, unquantized, tolerances):
    """Attach the SQNR quantization itself keeps, for comparisons below ``min_sqnr_db``."""
    if comparison.sqnr_db >= tolerances.min_sqnr_db or unquantized.shape != expected.shape:
        return comparison
    return replace(comparison, quantization_sqnr_db=_sqnr_db(unquantized, expected))


def _validated_tolerances(max_steps, max_outlier_share, min_sqnr_db) -> _Tolerances:
    if not max_steps >= 1:
        raise ValueError(f"max_steps must be at least 1 (one rounding step), got {max_steps!r}")
    if not 0.0 <= max_outlier_share <= 1.0:
        raise ValueError(
            "max_outlier_share must be a share between 0 and 1, "
            f"got {max_outlier_share!r}"
        )
    if min_sqnr_db is None:
        return _Tolerances(float(max_steps), float(max_outlier_share), _DEFAULT_MIN_SQNR_DB, True)
    if math.isnan(min_sqnr_db):
        raise ValueError("min_sqnr_db must be a number of decibels, got nan")
    return _Tolerances(float(max_steps), float(max_outlier_share), float(min_sqnr_db), False)


def _frozen_reference(model, converted, torch):
    """Deep copy in eval mode whose quantization no longer learns from the data it sees.

    Every activation quantization point (fake-quant, or ``prepare`` observer) fake-quantizes
    with its current qparams, and weights are quantized as ``convert`` quantized them. Where
    the two models differ by design of eager-mode kernels rather than of the model, the
    reference follows the kernels: they saturate at the dtype's range even where the qconfig
    reduces it (x86/fbgemm ``reduce_range`` fake-quant clamps at 127), and ``convert``
    re-observes weights and computes their qparams with the observer's formula (the fused
    fake-quant kernel's symmetric scale differs by 1/255).
    """
    reference = eval_copy(model)
    fake_quant_type = torch.ao.quantization.FakeQuantizeBase
    weight_fake_quants = {
        id(module.weight_fake_quant)
        for module in reference.modules()
        if isinstance(getattr(module, "weight_fake_quant", None), fake_quant_type)
    }
    for _, point in iter_quant_modules(reference):
        if not isinstance(point, fake_quant_type):
            _freeze_activation(point, True, torch)
        elif id(point) not in weight_fake_quants:
            _freeze_activation(point, bool(point.fake_quant_enabled), torch)
    _quantize_weights_as_converted(reference, converted, torch)
    reference.apply(torch.ao.quantization.disable_observer)
    return reference


def _freeze_activation(point, enabled, torch):
    """Make an 8-bit per-tensor activation quantization point fake-quantize with the qparams
    ``convert`` takes from it (learnable scales clamped, zero points rounded), or pass
    through when switched off."""
    dtype_range = _dtype_range(getattr(point, "dtype", None), torch)
    per_tensor = getattr(point, "qscheme", None) in (
        torch.per_tensor_affine,
        torch.per_tensor_symmetric,
    )
    if dtype_range is None or not per_tensor:
        return
    if not enabled:
        point.forward = _unchanged
        return
    scale, zero_point = point.calculate_qparams()
    point.forward = partial(
        torch.fake_quantize_per_tensor_affine,
        scale=float(scale),
        zero_point=int(zero_point),
        quant_min=dtype_range[0],
        quant_max=dtype_range[1],
    )


def _quantize_weights_as_converted(reference, converted, torch):
    """QAT weight fake-quants take convert's qparams; ``prepare`` weights its int8 values."""
    reference_modules = dict(reference.named_modules())
    for name, quantized_module in converted.named_modules():
        weight = getattr(quantized_module, "weight", None)
        float_module = reference_modules.get(name)
        if not callable(weight) or isinstance(weight, torch.nn.Module) or float_module is None:
            continue
        quantized_weight = weight()
        if not (isinstance(quantized_weight, torch.Tensor) and quantized_weight.is_quantized):
            continue
        fake_quant = getattr(float_module, "weight_fake_quant", None)
        if fake_quant is not None:
            _freeze_weight(fake_quant, quantized_weight, torch)
            continue
        if isinstance(float_module, torch.ao.nn.intrinsic.modules.fused._FusedModule):
            float_module = float_module[0]
        float_weight = getattr(float_module, "weight", None)
        if isinstance(float_weight, torch.Tensor) and float_weight.shape == quantized_weight.shape:
            float_weight.copy_(quantized_weight.dequantize())


def _freeze_weight(fake_quant, quantized_weight, torch):
    dtype_range = _dtype_range(quantized_weight.dtype, torch)
    qscheme = quantized_weight.qscheme()
    if not bool(fake_quant.fake_quant_enabled):
        fake_quant.forward = _unchanged
    elif dtype_range is None:
        return
    elif qscheme in (torch.per_channel_affine, torch.per_channel_symmetric):
        fake_quant.forward = partial(
            torch.fake_quantize_per_channel_affine,
            scale=quantized_weight.q_per_channel_scales().float(),
            zero_point=quantized_weight.q_per_channel_zero_points().int(),
            axis=quantized_weight.q_per_channel_axis(),
            quant_min=dtype_range[0],
            quant_max=dtype_range[1],
        )
    elif qscheme in (torch.per_tensor_affine, torch.per_tensor_symmetric):
        fake_quant.forward = partial(
            torch.fake_quantize_per_tensor_affine,
            scale=quantized_weight.q_scale(),
            zero_point=quantized_weight.q_zero_point(),
            quant_min=dtype_range[0],
            quant_max=dtype_range[1],
        )


def _unchanged(tensor):
    return tensor


def _dtype_range(dtype, torch):
    """The integer range quantized kernels saturate at, for 8-bit dtypes."""
    return {torch.quint8: (0, 255), torch.qint8: (-128, 127)}.get(dtype)


# torch.nn modules whose quantized kernels round their result to the input's grid while
# the fake-quant model keeps the exact float result: the reference rounds them the same way.
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
    """What a run of the converted model tells about quantization grids."""

    def __init__(self, torch):
        self._torch = torch
        self.dequantized = []  # (output tensor, input scale, module name) per DeQuantize call
        self.averaged = {}  # module name -> [(scale, zero_point, dtype) per call]

    def record_dequantize(self, name, module, args, output):
        if args and isinstance(args[0], self._torch.Tensor) and args[0].is_quantized:
            self.dequantized.append((output, args[0].q_scale(), name))

    def record_average(self, name, module, args, output):
        if isinstance(output, self._torch.Tensor) and output.is_quantized:
            grid = (output.q_scale(), output.q_zero_point(), output.dtype)
            self.averaged.setdefault(name, []).append(grid)

    def output_step(self, found):
        """The quantization step of a converted output, and where it comes from."""
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
        handles = [
            modules[name].register_forward_hook(partial(self._round_to_grid, iter(grids)))
            for name, grids in self.averaged.items()
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
        return self._torch.fake_quantize_per_tensor_affine(
            output, scale, zero_point, dtype_range[0], dtype_range[1]
        )


def _run_converted(converted, reference, inputs, torch):
    """Run ``converted``, recording the grids of its DeQuantize inputs and averaging outputs."""
    run = _ConvertedRun(torch)
    averaging_types = {getattr(torch.nn, name) for name in _AVERAGING_MODULES}
    reference_types = {name: type(module) for name, module in reference.named_modules()}
    handles = []
    for name, module in converted.named_modules():
        if isinstance(module, torch.ao.nn.quantized.DeQuantize):
            handles.append(module.register_forward_hook(partial(run.record_dequantize, name)))
        elif type(module) in averaging_types and reference_types.get(name) is type(module):
            handles.append(module.register_forward_hook(partial(run.record_average, name)))
    try:
        return converted(*inputs), run
    finally:
        for handle in handles:
            handle.remove()


def _sqnr_db(signal, other) -> float:
    """10 log10(signal power / power of the difference), in double precision."""
    signal = (signal.dequantize() if signal.is_quantized else signal.detach()).double().flatten()
    other = (other.dequantize() if other.is_quantized else other.detach()).double().flatten()
    noise = float((other - signal).pow(2).sum())
    power = float(signal.pow(2).sum())
    if noise == 0:
        return math.inf
    return 10 * math.log10(power / noise) if power else -math.inf


def _compare(expected, found, step, tolerances) -> _Comparison:
    sqnr_db = _sqnr_db(expected, found)
    elements = expected.numel()
    if step is None or not elements:
        return _Comparison(elements=elements, sqnr_db=sqnr_db, step=step)
    found = found.dequantize() if found.is_quantized else found.detach()
    # Tensors on one grid differ by whole steps; the margin absorbs float32 rounding.
    steps = (found.double() - expected.detach().double()).abs().flatten() / step
    return _Comparison(
        elements=elements,
        sqnr_db=sqnr_db,
        step=step,
        outlier_share=float((steps > tolerances.max_steps + 1e-3).double().mean()),
        share_beyond_one_step=float((steps > 1 + 1e-3).double().mean()),
        largest_steps=float(steps.max()),
    )


@dataclass(frozen=True)
class _Divergence:
    """The first module boundary where the converted model leaves the reference."""

    name: str  # qualified module name
    kind: str  # "input" or "output"
    types: str
    comparison: _Comparison
    problems: list[str]


def _first_divergence(model, outputs, inputs, tolerances, torch):
    """Compare the inputs and outputs of every module both models share, in call order."""
    reference, converted, run = outputs.reference, outputs.converted, outputs.run
    reference_modules = dict(reference.named_modules())
    converted_modules = dict(converted.named_modules())
    shared = [name for name in reference_modules if name and name in converted_modules]
    with torch.no_grad():
        with run.averages_rounded_in(reference):
            expected_events = _boundary_events(reference, reference_modules, shared, inputs, torch)
        found_events = _boundary_events(converted, converted_modules, shared, inputs, torch)
        unquantized_events = []
        if tolerances.follows_resolution:
            unquantized = _unquantized_copy(model, torch)
            unquantized_modules = dict(unquantized.named_modules())
            unquantized_events = _boundary_events(
                unquantized, unquantized_modules, shared, inputs, torch
            )

    found_by_key = dict(_keyed(found_events))
    unquantized_by_key = dict(_keyed(unquantized_events))
    for key, expected in _keyed(expected_events):
        found = found_by_key.get(key)
        if found is None or found.shape != expected.shape:
            continue
        step = found.q_scale() if found.is_quantized else None
        comparison = _compare(expected, found, step, tolerances)
        if key in unquantized_by_key:
            comparison = _with_quantization_sqnr(
                comparison, expected, unquantized_by_key[key], tolerances
            )
        problems = comparison.violations(tolerances)
        if problems:
            kind, name, _ = key
            types = (
                f"{type(reference_modules[name]).__name__} -> "
                f"{type(converted_modules[name]).__name__}"
            )
            return _Divergence(name, kind, types, comparison, problems)
    return None


def _keyed(events):
    """((kind, name, call number), tensor) for each event."""
    calls = {}
    for kind, name, tensor in events:
        calls[kind, name] = calls.get((kind, name), -1) + 1
        yield (kind, name, calls[kind, name]), tensor


def _boundary_events(model, modules, names, inputs, torch):
    """(kind, name, tensor): each named module's first tensor input and its output, in order."""
    events = []

    def usable(value):
        return isinstance(value, torch.Tensor) and (value.is_floating_point() or value.is_quantized)

    def on_input(name, module, args):
        tensor = next((arg for arg in args if isinstance(arg, torch.Tensor)), None)
        if usable(tensor):
            events.append(("input", name, tensor))

    def on_output(name, module, args, output):
        if usable(output):
            events.append(("output", name, output))

    handles = []
    for name in names:
        handles.append(modules[name].register_forward_pre_hook(partial(on_input, name)))
        handles.append(modules[name].register_forward_hook(partial(on_output, name)))
    try:
        model(*inputs)
    finally:
        for handle in handles:
            handle.remove()
    return events


def _display_name(name: str) -> str:
    """FloatFunctional ops show only through their activation_post_process child."""
    suffix = ".activation_post_process"
    return name[: -len(suffix)] if name.endswith(suffix) else name


def _divergence_message(failures, divergence, disabled_fake_quants, model, torch) -> str:
    lines = [
        "the converted model diverges from the prepared (fake-quant) model "
        f"(quantized engine {torch.backends.quantized.engine}):"
    ]
    for where, comparison, problems, step_source in failures:
        lines.append(f"  {where}: {'; '.join(problems)}")
        lines.append(f"    measured: {comparison.summary()} ({step_source})")
    if divergence is None:
        lines.append(
            "no module input or output diverges by itself: the difference builds up over "
            "several modules; loosen max_steps=, max_outlier_share= or min_sqnr_db= if expected"
        )
    elif divergence.kind == "output":
        name = _display_name(divergence.name)
        lines.append(
            f"first divergence: the output of `{name}` ({divergence.types}): "
            f"{'; '.join(divergence.problems)}"
        )
        lines.append(f"    measured: {divergence.comparison.summary()}")
        lines.append(
            f"how to fix: `{name}` computes differently once converted. Check that its "
            "fake-quant is enabled and calibrated (a fake-quant switched off trains and "
            "evaluates without quantization there, while convert quantizes it with whatever "
            "qparams it holds), and that the module is not called at two places with "
            "different inputs."
        )
    else:
        name = _display_name(divergence.name)
        owner = parent_name(divergence.name)
        owner_type = type(model.get_submodule(owner)).__name__
        owner_text = f"{owner_type}.forward (`{owner}`)" if owner else f"{owner_type}.forward"
        lines.append(
            f"first divergence: the input of `{name}` ({divergence.types}), while every module "
            f"output before it agrees: {'; '.join(divergence.problems)}"
        )
        lines.append(f"    measured: {divergence.comparison.summary()}")
        lines.append(
            f"how to fix: the difference comes from code in {owner_text} that runs between "
            f"modules, just before `{name}`: an operation on quantized tensors that the "
            "fake-quant model does not quantize. torch.cat/torch.stack requantize every input "
            "to the first one's scale and clip the others; use a FloatFunctional.cat, whose "
            "observer covers the joined range."
        )
    if disabled_fake_quants:
        lines.append(
            "fake quantization is switched off in: "
            + ", ".join(f"`{name}`" for name in disabled_fake_quants)
            + " (the prepared model skips quantization there, the converted model does not)"
        )
    return "\n".join(lines)


def _crash_message(converted, inputs, error, torch) -> str:
    name, module_type = _module_that_raised(converted, inputs, torch)
    where = f"`{name}` ({module_type}.forward)" if name else f"{module_type}.forward (the model)"
    frame = _last_frame_outside_torch(error, torch)
    at = f" at {frame.filename}:{frame.lineno} `{frame.line}`" if frame is not None else ""
    first_line = (str(error).strip().splitlines() or [""])[0]
    first_sentence = first_line.split(". ")[0][:_ERROR_TEXT_LIMIT]
    return (
        f"the converted model crashed in {where}{at}: {type(error).__name__}: {first_sentence}\n"
        "expected the converted copy (torch.ao.quantization.convert) to run on the example "
        "inputs like the prepared model does\n"
        "how to fix: quantized tensors support few operations. Write tensor arithmetic "
        "(+, *, torch.add, torch.cat) with a torch.ao.nn.quantized.FloatFunctional created in "
        "__init__ (self.add = FloatFunctional(); self.add.add(a, b)). A float tensor or "
        "parameter cannot meet a quantized activation: dequantize first (DeQuantStub), compute "
        "in float and quantize again (QuantStub), or move the parameter into a quantizable "
        "module."
    )


def _module_that_raised(converted, inputs, torch) -> tuple[str, str]:
    """Run ``converted`` again, tracking entered modules: the innermost still open raised."""
    open_modules = []

    def enter(name, module, args):
        open_modules.append(name)

    def leave(module, args, output):
        open_modules.pop()

    handles = []
    for name, module in converted.named_modules():
        handles.append(module.register_forward_pre_hook(partial(enter, name)))
        handles.append(module.register_forward_hook(leave))
    try:
        with torch.no_grad():
            converted(*inputs)
    except Exception:  # noqa: BLE001, S110 - the same crash again, now with the module stack
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
