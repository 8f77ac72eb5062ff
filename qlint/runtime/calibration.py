"""``assert_calibrated``: every observer saw data and holds a usable range.

Checked: observers that record a range (``min_val``/``max_val``: the min-max, moving
average, per-channel and histogram observers of torch.ao and torchao, and their
subclasses), standalone or inside fake-quant modules, on eager, FX and PT2E models.
Skipped, as they have nothing to calibrate: placeholder (dynamic), no-op, reuse-input,
recording and fixed-qparams observers.

With ``example_inputs``, observers that never ran are told apart by running a copy of the
model on them: an observer the inputs reach was never calibrated; one they do not reach
belongs to a module that never runs (torchvision's MobileNet blocks build a ``skip_add``
and use it only with a residual) and is not reported.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from qlint.runtime._flow import QuantPoint, observers, quant_points
from qlint.runtime._modules import as_args
from qlint.runtime._runs import points_reached
from qlint.runtime._torch import require_torch

if TYPE_CHECKING:
    from torch import nn

_CHANNELS_SHOWN = 5
NEVER_RAN = "never ran"

_FIXES = {
    NEVER_RAN: (
        "run the prepared model on calibration batches that reach these modules before "
        "convert; an observer that never ran sits on a path the inputs did not take "
        "(a branch, an unused module) or was added after calibration."
    ),
    "degenerate range": (
        "calibrate on representative data, not torch.ones/zeros or one constant batch: a "
        "zero-width range gives a scale that clips every other value."
    ),
    "non-finite range": (
        "find the NaN/inf in the calibration inputs or activations (torch.isfinite) and "
        "recalibrate a freshly prepared model."
    ),
}
_NEVER_RAN_WITHOUT_INPUTS = (
    " Pass example_inputs to tell modules that never run from ones never calibrated, or "
    "exclude= the modules meant to stay unused (module-name patterns)."
)
_NEVER_RAN_REACHED = (
    "run the prepared model on calibration batches before convert: the example inputs "
    "reach these observers, so the deployed model will run them (in eval mode) with "
    "the default qparams convert gives an observer that never ran (scale 1.0, zero "
    "point 0)."
)


def _diagnose(observer: Any, is_weight: bool) -> tuple[str, str] | None:
    """(problem kind, detail with the numbers) for an observer, None if calibrated or skipped.

    A weight observer sees the whole weight, so a zero-width range there (a channel of
    one element, or of equal values) is exact, not a calibration problem.
    """
    torch = require_torch()
    low, high = getattr(observer, "min_val", None), getattr(observer, "max_val", None)
    if not (isinstance(low, torch.Tensor) and isinstance(high, torch.Tensor)):
        return None
    low, high = low.detach(), high.detach()
    histogram = getattr(observer, "histogram", None)
    if isinstance(histogram, torch.Tensor) and low.numel() == 1:
        counts = int(histogram.sum().item())
        if counts == 0 or bool(torch.isposinf(low).all()):
            return NEVER_RAN, f"min_val={low.item()} max_val={high.item()}, histogram empty"
    elif low.numel() == 0:
        return NEVER_RAN, "min_val/max_val still empty (no channel seen)"
    elif bool(torch.isposinf(low).all()):
        return NEVER_RAN, f"min_val={low.max().item()} max_val={high.min().item()}"
    if not bool(torch.isfinite(low).all() and torch.isfinite(high).all()):
        bad = int((~(torch.isfinite(low) & torch.isfinite(high))).sum().item())
        return "non-finite range", (
            f"{bad} of {low.numel()} min_val/max_val entries are NaN or inf "
            f"(min_val={low.min().item()}, max_val={high.max().item()})"
        )
    if is_weight:
        return None
    if low.numel() > 1:
        channels = (low == high).nonzero().flatten().tolist()
        if not channels:
            return None
        shown = ", ".join(
            f"channel {channel}: {low[channel].item():.4g}"
            for channel in channels[:_CHANNELS_SHOWN]
        )
        more = ", ..." if len(channels) > _CHANNELS_SHOWN else ""
        axis = getattr(observer, "ch_axis", "?")
        return "degenerate range", (
            f"{len(channels)} of {low.numel()} channels (axis {axis}) have "
            f"min_val == max_val ({shown}{more})"
        )
    if bool((low == high).all()):
        return "degenerate range", (
            f"min_val = max_val = {low.item():.4g}: every value seen was equal"
        )
    return None


def uncalibrated(
    model: nn.Module, example_inputs: Any = None, exclude: Iterable[str] = ()
) -> tuple[list[tuple[str, QuantPoint, str]], list[QuantPoint], list[QuantPoint]]:
    """(problems, observers checked, never-ran observers the example inputs do not reach).

    Each problem is (kind, observer, detail); ``NEVER_RAN`` problems are those the example
    inputs reach (all of them without example inputs).
    """
    exclude = tuple(exclude)
    checked = [point for point in observers(model) if not point.matches(exclude)]
    problems = []
    for point in checked:
        diagnosis = _diagnose(point.module, is_weight=point.role == "weight")
        if diagnosis is not None:
            problems.append((diagnosis[0], point, diagnosis[1]))
    unreached: list[QuantPoint] = []
    if example_inputs is not None and any(kind == NEVER_RAN for kind, _, _ in problems):
        reached = points_reached(model, as_args(example_inputs))
        owners = [point.name for point in quant_points(model)]

        def runs(point: QuantPoint) -> bool:
            owner = max((o for o in owners if point.name == o or point.name.startswith(o + ".")),
                        key=len, default=point.name)
            return owner in reached

        unreached = [point for kind, point, _ in problems if kind == NEVER_RAN and not runs(point)]
        problems = [problem for problem in problems if problem[1] not in unreached]
    return problems, checked, unreached


def assert_calibrated(
    model: nn.Module, example_inputs: Any = None, *, exclude: Iterable[str] = ()
) -> None:
    """Fail if an observer never ran, or saw a zero-width or non-finite range.

    Works on eager, FX and PT2E prepared models.  Names each observer by its qualified name
    (fake-quant observers as ``conv.activation_post_process.activation_post_process``; in
    graph flows with its node and source module path) with its min/max.  Weight observers
    are only checked for having run and for finite ranges: they see the whole weight, so a
    zero-width range there is exact.

    ``example_inputs`` (a tensor or a tuple of positional inputs): observers that never ran
    are checked against an eval-mode copy run on them; those the inputs do not reach belong
    to modules that never run and are not reported.  ``exclude``: module-name patterns
    (``fnmatch``, e.g. ``"features.*.skip_add"``) matched against observer names, their
    source module paths and those names' parents; matching observers are not checked.
    """
    __tracebackhide__ = True
    require_torch()
    exclude = (exclude,) if isinstance(exclude, str) else tuple(exclude)
    if not observers(model):
        raise AssertionError(
            f"assert_calibrated: expected observers to check in {type(model).__name__}; found "
            f"none: {_why_no_observers(model)}\n"
            "  fix: run this check between prepare (prepare/prepare_qat, prepare_fx, "
            "prepare_pt2e/prepare_qat_pt2e) and convert."
        )
    problems, checked, unreached = uncalibrated(model, example_inputs, exclude)
    if not problems:
        return
    found: dict[str, list[str]] = {kind: [] for kind in _FIXES}
    for kind, point, detail in problems:
        found[kind].append(f"      {point.label()}: {detail}")
    fixes = dict(_FIXES)
    if example_inputs is None:
        fixes[NEVER_RAN] += _NEVER_RAN_WITHOUT_INPUTS
    else:
        fixes[NEVER_RAN] = _NEVER_RAN_REACHED
    listed = "\n".join(
        f"  - {kind} ({len(lines)}):\n" + "\n".join(lines) + f"\n    fix: {fixes[kind]}"
        for kind, lines in found.items()
        if lines
    )
    notes = []
    if unreached:
        notes.append(
            f"  not reported: {len(unreached)} observers that never ran and that the example "
            "inputs do not reach either (modules that never run), e.g. "
            + ", ".join(f"`{point.name}`" for point in unreached[:3])
        )
    if exclude:
        notes.append(f"  excluded by {list(exclude)}: {len(observers(model)) - len(checked)} observers")
    tail = "\n" + "\n".join(notes) if notes else ""
    raise AssertionError(
        f"assert_calibrated: expected every observer of {type(model).__name__} to have seen "
        f"calibration data with a usable range; found {len(problems)} of {len(checked)} "
        f"observers not calibrated:\n{listed}{tail}"
    )


def _why_no_observers(model: nn.Module) -> str:
    from qlint.runtime._flow import quantized_layers

    layers = [layer for layer in quantized_layers(model) if layer.scheme != "float"]
    if not layers and "_observed_graph_module_attrs" in getattr(model, "meta", {}):
        return (
            "the model went through prepare_fx or prepare_pt2e, but its qconfig mapping or "
            "quantizer annotated none of its operators, so nothing will be quantized (the "
            "default X86InductorQuantizer, for one, leaves an add that follows no conv or "
            "linear unannotated)."
        )
    if not layers:
        return "the model is not prepared."
    if all(layer.scheme in ("dynamic", "weight-only") for layer in layers):
        return (
            "the model is dynamically quantized: dynamic quantization measures activation "
            "ranges at run time and weights at convert, so there is nothing to calibrate."
        )
    return "the model is already converted (not prepared)."
