"""Parity between a prepared model and its converted copy: ``assert_parity``.

The prepared model (fake quantization from QAT, or observers from PTQ) is what a user trains
and evaluates; convert turns it into the model that ships. ``assert_parity`` checks that
both compute the same thing, up to the rounding quantized kernels are allowed, and names
the module (PT2E: the graph node) where they part ways. Eager, FX and PT2E prepared models
and dynamically quantized models; the copies and runs are built in ``_twins``, the
judgement (tolerances, messages) lives here.

Differences are counted in quantization steps (the scale of the quantized tensor the output
is dequantized from) and judged as a distribution: the share of elements beyond
``max_steps`` steps (outliers), and the SQNR. Defaults and their measurements:
docs/parity.md.
"""

from __future__ import annotations

import math
import os
import traceback
from dataclasses import dataclass, replace
from functools import partial

from qlint.runtime._flow import EAGER, PT2E, quant_points
from qlint.runtime._machinery import FAKE_QUANT_SWITCH, flag, is_fake_quant
from qlint.runtime._modules import as_args, is_quantized_module, parent_name, swappable_float_types, tensors_in
from qlint.runtime._torch import require_torch
from qlint.runtime._twins import (
    DYNAMIC,
    PREPARED,
    ConvertFailed,
    Twins,
    convert_name,
    kind_of,
    unquantized_copy,
    without_tensors,
)
from qlint.runtime.calibration import NEVER_RAN, uncalibrated

_ERROR_TEXT_LIMIT = 300
# The default SQNR bar, and how far under the SQNR an output's own quantization keeps it
# drops for outputs resolved by a few steps: a one-step disagreement on every element
# costs about 10.8 dB; measured clean low-resolution outputs stayed within 5 dB
# (docs/parity.md).
_DEFAULT_MIN_SQNR_DB = 15.0
_QUANTIZATION_NOISE_MARGIN_DB = 10.0
_NAMES_SHOWN = 8


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
    # Dynamic quantization: sqnr_db is the worst slice along the first dimension (a sample
    # of the batch), whose quantization step the other samples set.
    worst_sample: int | None = None

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
            sample = "" if self.worst_sample is None else f" in sample {self.worst_sample}"
            text = f"SQNR {self.sqnr_db:.1f} dB{sample} (required {required:.3g} dB or more"
            if self.quantization_sqnr_db is not None:
                text += f"; quantization alone keeps {self.quantization_sqnr_db:.1f} dB"
            found.append(text + ")")
        return found

    def isolated_violations(self, tolerances: _Tolerances) -> list[str]:
        """Violations of one module given the same input in both models: a difference of
        at most one step everywhere is rounding, whatever the SQNR of a coarse tensor."""
        if self.step is not None and self.largest_steps <= 1 + 1e-3:
            return []
        return self.violations(tolerances)

    def summary(self) -> str:
        if self.step is None:
            if self.worst_sample is not None:
                return (
                    f"SQNR {self.sqnr_db:.1f} dB in sample {self.worst_sample} (the worst "
                    f"along the first dimension), {self.elements} elements"
                )
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
    """Assert that the converted ``model`` computes what ``model`` computes.

    ``model`` is prepared and calibrated: eager (``prepare_qat``/``prepare``), FX
    (``prepare_qat_fx``/``prepare_fx``, dynamic qconfigs included) or PT2E (torchao's
    ``prepare_qat_pt2e``/``prepare_pt2e``), or dynamically quantized (``quantize_dynamic``,
    compared with a float twin holding its dequantized weights).  ``example_inputs`` is a
    tensor or a tuple of positional inputs.  Deep copies run in eval mode on the current
    quantized engine: a converted copy (its flow's convert), and a reference copy of the
    prepared model whose quantization is frozen (fake-quant switches kept as the model has
    them; PTQ observers fake-quantize with their qparams). ``model`` itself is not changed.

    Observers that never ran though the example inputs reach them fail first: calibration is
    missing there. Each output passes when at most ``max_outlier_share`` of its elements
    differ by more than ``max_steps`` quantization steps and its SQNR (fake-quant output over
    the difference) is at least ``min_sqnr_db``. Left at None, that bar is 15 dB, lowered for
    an output resolved by a few steps to 10 dB under the SQNR its own quantization keeps; a
    number is a fixed bar. An output that fails is traced to the first module (PT2E: node),
    or code between modules, that diverges given the same input in both models; with the
    default bar, an output whose every module agrees that way passes (rounding that builds
    up over depth).  A crash of convert or of the converted model names its cause.
    """
    __tracebackhide__ = True
    tolerances = _validated_tolerances(max_steps, max_outlier_share, min_sqnr_db)
    torch = require_torch()
    inputs = as_args(example_inputs)
    kind = kind_of(model)
    if kind is None:
        raise AssertionError(
            f"assert_parity: nothing was quantized in {type(model).__name__}: expected a "
            "prepared model (observers or fake-quants from prepare/prepare_qat, prepare_fx, "
            "prepare_pt2e) or a dynamically quantized one; found no observer, fake-quant or "
            "quantized module (a qconfig/quantizer that reached no module, or stubs without "
            "a qconfig)."
        )
    if kind == PREPARED:
        _fail_if_calibration_missing(model, inputs)
    twins, run, comparisons = output_comparisons(model, kind, inputs, tolerances, torch)
    failures = [
        (where, comparison, problems, source)
        for where, comparison, source in comparisons
        if (problems := comparison.violations(tolerances))
    ]
    if not failures:
        return
    divergence = _first_divergence(twins, inputs, run, tolerances, torch)
    if divergence is None and tolerances.follows_resolution:
        return  # every module agrees given the same input: rounding built up over depth
    disabled = [
        point.name
        for point in quant_points(model)
        if is_fake_quant(point.module) and not flag(point.module, FAKE_QUANT_SWITCH)
    ]
    raise AssertionError(_divergence_message(failures, divergence, disabled, twins, torch))


def output_comparisons(model, kind, inputs, tolerances, torch):
    """(twins, converted run, [(where, comparison, step source) per float output]): convert a
    copy, run it and the frozen reference, and compare each output; under the default bar,
    outputs below it also get the SQNR their quantization keeps (one more forward)."""
    __tracebackhide__ = True
    try:
        twins = Twins(model, kind)
    except ConvertFailed as error:
        raise AssertionError(_convert_failure_message(model, error)) from error.__cause__
    try:
        found, run = twins.run_converted(inputs)
    except Exception as error:  # noqa: BLE001 - any crash is reported with its module
        _fail_if_the_prepared_model_raises(twins, inputs, torch)
        raise AssertionError(_crash_message(twins, inputs, error, torch)) from error
    expected = twins.run_reference(inputs, run)

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
        if step is None and twins.flow == EAGER and kind == PREPARED and not run.dequantized:
            raise AssertionError(
                f"{where} of the converted model is float and no DeQuantize ran: nothing was "
                "quantized; expected a model prepared with a qconfig and QuantStub/DeQuantStub "
                "around its quantized part"
            )
        comparison = _compare(expected_tensor, found_tensor, step, tolerances,
                              per_sample=kind != PREPARED)
        comparisons.append((index, where, comparison, step_source or "float output: SQNR only"))
    if kind == PREPARED and tolerances.follows_resolution and any(
        comparison.sqnr_db < tolerances.min_sqnr_db for _, _, comparison, _ in comparisons
    ):
        with torch.no_grad():
            unquantized = tensors_in(unquantized_copy(model, kind)(*inputs))
        comparisons = [
            (index, where, _with_quantization_sqnr(comparison, expected_tensors[index],
                                                   unquantized[index], tolerances), source)
            for index, where, comparison, source in comparisons
        ]
    return twins, run, [entry[1:] for entry in comparisons]


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


# -- calibration and convert failures ----------------------------------------------------


def _fail_if_calibration_missing(model, inputs) -> None:
    """Observers that never ran but the example inputs reach: convert would give them its
    default qparams (scale 1.0, zero point 0), which nothing in the prepared model uses."""
    __tracebackhide__ = True
    problems, _, _ = uncalibrated(model, inputs)
    never_ran = [point for kind, point, _ in problems if kind == NEVER_RAN]
    if not never_ran:
        return
    owners = {point.name: point.module for point in quant_points(model)}
    lines = []
    for point in never_ran[:_NAMES_SHOWN]:
        owner = next(
            (module for name, module in owners.items()
             if point.name == name or point.name.startswith(name + ".")),
            point.module,
        )
        note = ""
        if is_fake_quant(owner) and not flag(owner, FAKE_QUANT_SWITCH):
            note = (
                " (its fake-quant is switched off too: the prepared model keeps this point "
                "float; to keep it float after convert, set its qconfig to None)"
            )
        lines.append(f"      {point.label()}{note}")
    more = f"\n      ... and {len(never_ran) - _NAMES_SHOWN} more" if len(never_ran) > _NAMES_SHOWN else ""
    raise AssertionError(
        f"assert_parity: calibration is missing: {len(never_ran)} observers of "
        f"{type(model).__name__} never ran, though the example inputs reach them:\n"
        + "\n".join(lines) + more + "\n"
        "  The converted copy would quantize there with convert's default qparams (scale "
        "1.0, zero point 0), which the prepared model never used, so the two cannot match.\n"
        "  how to fix: run the prepared model on calibration batches (PTQ) or train it (QAT) "
        "before converting; qlint.runtime.assert_calibrated(model, example_inputs) lists every "
        "observer to calibrate."
    )


def _convert_failure_message(model, error: ConvertFailed) -> str:
    return (
        f"assert_parity: {error}\n"
        f"expected the prepared {type(model).__name__} to convert; the model itself was not "
        "changed.\n"
        "how to fix: convert needs every observer calibrated (assert_calibrated names the "
        "ones that are not) and a model prepared by the same flow's prepare function (eager "
        "prepare/prepare_qat with convert, prepare_fx with convert_fx, prepare_pt2e with "
        "convert_pt2e)."
    )


# -- comparisons ------------------------------------------------------------------------


def _with_quantization_sqnr(comparison, expected, unquantized, tolerances):
    """Attach the SQNR quantization itself keeps, for comparisons below ``min_sqnr_db``."""
    if comparison.sqnr_db >= tolerances.min_sqnr_db or unquantized.shape != expected.shape:
        return comparison
    if comparison.worst_sample is not None:
        index = comparison.worst_sample
        return replace(comparison, quantization_sqnr_db=_sqnr_db(unquantized[index], expected[index]))
    return replace(comparison, quantization_sqnr_db=_sqnr_db(unquantized, expected))


def _sqnr_db(signal, other) -> float:
    """10 log10(signal power / power of the difference), in double precision."""
    signal = (signal.dequantize() if signal.is_quantized else signal.detach()).double().flatten()
    other = (other.dequantize() if other.is_quantized else other.detach()).double().flatten()
    noise = float((other - signal).pow(2).sum())
    power = float(signal.pow(2).sum())
    if noise == 0:
        return math.inf
    return 10 * math.log10(power / noise) if power else -math.inf


def _compare(expected, found, step, tolerances, *, per_sample: bool = False) -> _Comparison:
    sqnr_db = _sqnr_db(expected, found)
    elements = expected.numel()
    if per_sample and step is None and expected.dim() >= 2 and expected.shape[0] > 1:
        by_sample = [_sqnr_db(expected[index], found[index]) for index in range(expected.shape[0])]
        worst = min(range(len(by_sample)), key=by_sample.__getitem__)
        return _Comparison(elements=elements, sqnr_db=by_sample[worst], step=None, worst_sample=worst)
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
    """The first site where the converted model leaves the reference, given the same input."""

    kind: str  # "input", "output" or "model output"
    name: str  # module qualified name, or PT2E node name
    leaf: bool
    comparison: _Comparison
    problems: list[str]
    converted_input: object = None  # the converted module's input, for diagnoses


def _site_step(site):
    if site.step is not None:
        return site.step
    if site.found.is_quantized and site.found.qscheme() in _per_tensor_schemes():
        return site.found.q_scale()
    return None


def _per_tensor_schemes():
    torch = require_torch()
    return (torch.per_tensor_affine, torch.per_tensor_symmetric)


def _first_divergence(twins: Twins, inputs, run, tolerances, torch) -> _Divergence | None:
    """The first site, in reference call order, that diverges with upstream forced equal."""
    sites = twins.isolated(inputs, run)
    inputs_by_key = {(site.name, site.call): site.found for site in sites if site.kind == "input"}
    for site in sites:
        comparison = _compare(site.expected, site.found, _site_step(site), tolerances,
                              per_sample=twins.kind != PREPARED)
        problems = comparison.isolated_violations(tolerances)
        if problems:
            return _Divergence(
                site.kind, site.name, site.leaf, comparison, problems,
                inputs_by_key.get((site.name, site.call)),
            )
    return None


# -- messages ---------------------------------------------------------------------------


def _display_name(name: str) -> str:
    """FloatFunctional ops show only through their activation_post_process child."""
    suffix = ".activation_post_process"
    return name[: -len(suffix)] if name.endswith(suffix) else name


def _types(twins: Twins, name: str) -> str:
    reference = dict(twins.reference.named_modules())
    converted = dict(twins.converted.named_modules())
    if name not in reference or name not in converted:
        return ""
    found = converted[name]
    found_name = found._get_name() if twins.kind != PREPARED else type(found).__name__
    return f"{type(reference[name]).__name__} -> {found_name}"


def _node_description(twins: Twins, name: str) -> str:
    from qlint.runtime._flow import node_text

    node = next((node for node in twins.reference.graph.nodes if node.name == name), None)
    return node_text(node) if node is not None else f"node `{name}`"


def _divergence_message(failures, divergence, disabled_fake_quants, twins: Twins, torch) -> str:
    convert = convert_name(twins.flow) if twins.kind != DYNAMIC else "dynamic quantization"
    reference = "its float twin" if twins.kind == DYNAMIC else "the prepared (fake-quant) model"
    lines = [
        f"the converted model ({convert}) diverges from {reference} "
        f"(quantized engine {torch.backends.quantized.engine}):"
    ]
    for where, comparison, problems, step_source in failures:
        lines.append(f"  {where}: {'; '.join(problems)}")
        lines.append(f"    measured: {comparison.summary()} ({step_source})")
    if divergence is None:
        lines.append(
            "no module (or code between modules) diverges given the same input in both "
            "models: the difference is rounding that builds up over several modules; "
            "min_sqnr_db= is a fixed bar here, leave it at None to judge that as rounding, "
            "or loosen max_steps=, max_outlier_share="
        )
    elif twins.flow == PT2E and twins.kind != DYNAMIC and divergence.kind == "output":
        lines.append(
            f"first divergence: the output of {_node_description(twins, divergence.name)}, "
            f"given the same inputs in both models: {'; '.join(divergence.problems)}"
        )
        lines.append(f"    measured: {divergence.comparison.summary()}")
        lines.append(
            "how to fix: this operator computes differently once converted; check that the "
            "fake-quants around it are enabled and calibrated (quant_state(model))."
        )
    elif divergence.kind == "model output":
        lines.append(
            "first divergence: code after the last module of the model's forward, while "
            f"every module agrees: {'; '.join(divergence.problems)}"
        )
        lines.append(f"    measured: {divergence.comparison.summary()}")
    elif divergence.kind == "output":
        lines.extend(_output_divergence_lines(divergence, twins, torch))
    else:
        name = _display_name(divergence.name)
        owner = parent_name(divergence.name)
        owner_type = type(twins.model.get_submodule(owner)).__name__
        owner_text = f"{owner_type}.forward (`{owner}`)" if owner else f"{owner_type}.forward"
        lines.append(
            f"first divergence: the input of `{name}` ({_types(twins, divergence.name)}), while "
            f"every module output before it agrees: {'; '.join(divergence.problems)}"
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
            + ", ".join(f"`{name}`" for name in disabled_fake_quants[:_NAMES_SHOWN])
            + (" ..." if len(disabled_fake_quants) > _NAMES_SHOWN else "")
            + " (the prepared model skips quantization there, the converted model does not)"
        )
    return "\n".join(lines)


def _output_divergence_lines(divergence: _Divergence, twins: Twins, torch) -> list[str]:
    name = _display_name(divergence.name)
    types = _types(twins, divergence.name)
    lines = [
        f"first divergence: the output of `{name}`" + (f" ({types})" if types else "")
        + f", given the same input in both models: {'; '.join(divergence.problems)}",
        f"    measured: {divergence.comparison.summary()}",
    ]
    if twins.kind != PREPARED:
        return lines + _dynamic_range_lines(divergence, name)
    saturation = _int16_saturation(divergence, twins, torch)
    if saturation:
        return lines + saturation
    if not divergence.leaf:
        owner_type = type(twins.model.get_submodule(divergence.name)).__name__
        lines.append(
            f"how to fix: its submodules agree, so the difference comes from code in "
            f"{owner_type}.forward (`{name}`) that runs between them: an operation on quantized "
            "tensors that the fake-quant model does not quantize (torch.cat/torch.stack "
            "requantize every input to the first one's scale: use FloatFunctional.cat)."
        )
        return lines
    lines.append(
        f"how to fix: `{name}` computes differently once converted. Check that its "
        "fake-quant is enabled and calibrated (a fake-quant switched off trains and "
        "evaluates without quantization there, while convert quantizes it with whatever "
        "qparams it holds), and that the module is not called at two places with "
        "different inputs."
    )
    return lines


def _dynamic_range_lines(divergence: _Divergence, name: str) -> list[str]:
    """Dynamic quantization: one step for the whole input tensor, set by its largest value."""
    lines = []
    sample = divergence.comparison.worst_sample
    tensor = divergence.converted_input
    if sample is not None and tensor is not None and tensor.dim() >= 2 and tensor.is_floating_point():
        ranges = tensor.detach().abs().flatten(1).amax(1)
        loudest = int(ranges.argmax())
        lines.append(
            f"why: dynamic quantization quantizes the input of `{name}` per tensor, with one "
            f"step for the whole batch: sample {sample} reaches {float(ranges[sample]):.3g}, "
            f"sample {loudest} reaches {float(ranges[loudest]):.3g}, so sample {sample} gets "
            "few quantization steps."
        )
    lines.append(
        f"how to fix: keep `{name}` float (leave its type out of qconfig_spec, or give it "
        "qconfig None), bring its input to a common range (normalization, no padding values "
        "far outside the data), or batch such inputs apart."
    )
    return lines


def _int16_saturation(divergence: _Divergence, twins: Twins, torch) -> list[str]:
    """x86/fbgemm with reduce_range: inputs above 127 overflow int16 pair sums (no VNNI)."""
    quantized_input = divergence.converted_input
    if (
        torch.backends.quantized.engine not in ("x86", "fbgemm")
        or quantized_input is None
        or not getattr(quantized_input, "is_quantized", False)
        or quantized_input.dtype != torch.quint8
    ):
        return []
    reduce_range = any(
        getattr(point.module, "quant_max", None) == 127
        and getattr(point.module, "dtype", None) == torch.quint8
        for point in quant_points(twins.model)
    )
    share = float((quantized_input.int_repr() > 127).double().mean())
    if not reduce_range or share == 0:
        return []
    capability = torch.backends.cpu.get_cpu_capability()
    return [
        f"why: {share:.1%} of its quantized input values are above 127, the top of the 7-bit "
        "range the x86 qconfig (reduce_range) calibrates activations for: they lie beyond the "
        "calibrated range, where the fake-quant model clips them at 127. The x86 (fbgemm) "
        "kernels sum pairs of u8 x s8 products in int16 on CPUs without VNNI (this one: "
        f"{capability}), which saturates for inputs above 127, so the converted layer "
        "computes wrong values there.",
        "how to fix: calibrate activation ranges on the activations the deployed model sees. "
        "Observers that saw only training-mode activations (BatchNorm with batch statistics) "
        "miss the eval-mode ones while BatchNorm's running statistics still differ (few QAT "
        "steps): freeze BN statistics (torch.ao.nn.intrinsic.qat.freeze_bn_stats) and keep "
        "observers on for enough steps after, or recalibrate the observers in eval mode "
        "before convert. assert_calibrated and quant_state show the ranges.",
    ]


def _crash_message(twins: Twins, inputs, error, torch) -> str:
    if twins.flow != EAGER and twins.kind != DYNAMIC:
        return _graph_crash_message(twins, inputs, error, torch)
    converted = twins.converted
    name, module_type = _module_that_raised(converted, inputs, torch)
    where = f"`{name}` ({module_type}.forward)" if name else f"{module_type}.forward (the model)"
    frame = _last_frame_outside_torch(error, torch)
    at = f" at {frame.filename}:{frame.lineno} `{frame.line}`" if frame is not None else ""
    first_line = (without_tensors(str(error)).strip().splitlines() or [""])[0]
    first_sentence = first_line.split(". ")[0][:_ERROR_TEXT_LIMIT]
    module = converted.get_submodule(name)
    return (
        f"the converted model crashed in {where}{at}: {type(error).__name__}: {first_sentence}\n"
        f"expected the converted copy ({convert_name(twins.flow)}) to run on the example "
        "inputs like the prepared model does\n"
        f"how to fix: {_crash_fix(name, module, first_line, twins)}"
    )


def _fail_if_the_prepared_model_raises(twins: Twins, inputs, torch) -> None:
    """A converted copy that raises says nothing when the prepared model raises too."""
    __tracebackhide__ = True
    try:
        with torch.no_grad():
            twins.reference(*inputs)
    except Exception as error:  # noqa: BLE001 - the model's own failure, reported as such
        first_line = (without_tensors(str(error)).strip().splitlines() or [""])[0]
        raise AssertionError(
            f"assert_parity: the prepared {type(twins.model).__name__} itself raises on the "
            f"example inputs ({type(error).__name__}: {first_line[:_ERROR_TEXT_LIMIT]}); expected "
            "example inputs the model runs on, as a tensor or a tuple of positional inputs."
        ) from error


def _graph_crash_message(twins: Twins, inputs, error, torch) -> str:
    """A converted GraphModule crashed: name the node that raised, and how to keep its
    operator float."""
    from qlint.runtime._flow import module_path

    node = _node_that_raised(twins.converted, inputs, torch)
    first_line = (without_tensors(str(error)).strip().splitlines() or [""])[0]
    first_sentence = first_line.split(". ")[0][:_ERROR_TEXT_LIMIT]
    if node is None:
        where, target = "GraphModule.forward", "the operator"
    else:
        target = _op_text(node, torch)
        path = module_path(node)
        where = f"node `{node.name}` ({target}" + (f", from `{path}`" if path else "") + ")"
    return (
        f"the converted model crashed at {where}: {type(error).__name__}: {first_sentence}\n"
        f"expected the converted copy ({convert_name(twins.flow)}) to run on the example "
        "inputs like the prepared model does\n"
        f"how to fix: {convert_name(twins.flow)} quantized {target} here and its quantized "
        "kernel cannot run this input; keep that operator float: "
        f"qconfig_mapping.set_object_type({target}, None) (or set_module_name for the module "
        "it belongs to) before prepare."
    )


def _op_text(node, torch) -> str:
    """``torch.mean``, ``Tensor.mean``, ``operator.add``: the operator as code names it."""
    if node.op == "call_method":
        return f"Tensor.{node.target}"
    name = getattr(node.target, "__name__", str(node.target))
    if getattr(torch, name, None) is node.target:
        return f"torch.{name}"
    module = getattr(node.target, "__module__", None)
    if module == "_operator":
        return f"operator.{name}"
    return f"{module}.{name}" if module and module != "builtins" else name


def _node_that_raised(converted, inputs, torch):
    """Run ``converted`` again node by node: the node running when it raises."""
    current = []

    class Tracker(torch.fx.Interpreter):
        def run_node(self, node):
            current[:] = [node]
            return super().run_node(node)

    try:
        with torch.no_grad():
            Tracker(converted).run(*inputs)
    except Exception:  # noqa: BLE001, S110 - the same crash again, now with the node
        pass
    return current[0] if current else None


def _crash_fix(name: str, module, error_text: str, twins: Twins) -> str:
    """Tell a module left without qconfig from a raw op on quantized tensors."""
    if name and isinstance(module, swappable_float_types()) and not is_quantized_module(module):
        return (
            f"`{name}` ({type(module).__name__}) stayed float: no qconfig reached it (its own "
            "or its parents' is None or missing), yet it receives a quantized tensor. Give it "
            "a qconfig (or its parent), or keep it float on purpose with a DeQuantStub before "
            "it and a QuantStub after it."
        )
    if name and is_quantized_module(module) and "'CPU' backend" in error_text:
        return (
            f"`{name}` ({type(module).__name__}) is quantized but receives a float tensor: a "
            "QuantStub is missing before it (or a DeQuantStub runs too early)."
        )
    return (
        "quantized tensors support few operations. Write tensor arithmetic "
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
    here = os.path.dirname(__file__) + os.sep
    frames = [
        frame
        for frame in traceback.extract_tb(error.__traceback__)
        if not frame.filename.startswith(torch_dir) and not frame.filename.startswith(here)
    ]
    return frames[-1] if frames else None
