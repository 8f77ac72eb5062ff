"""``assert_calibrated``: every observer saw data and holds a usable range.

Checked: ``MinMaxObserver``, ``PerChannelMinMaxObserver``, ``HistogramObserver`` and
their subclasses (moving-average variants included), standalone or inside fake-quant
modules.  Skipped, as they have nothing to calibrate: placeholder, no-op, reuse-input,
recording and fixed-qparams observers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from qlint.runtime._modules import iter_observers
from qlint.runtime._torch import require_torch

if TYPE_CHECKING:
    from torch import nn

_CHANNELS_SHOWN = 5

_FIXES = {
    "never ran": (
        "run the prepared model on calibration batches that reach these modules before "
        "convert(); an observer that never ran sits on a path the inputs did not take "
        "(a branch, an unused module) or was added after calibration."
    ),
    "degenerate range": (
        "calibrate on representative data, not torch.ones/zeros or one constant batch: a "
        "zero-width range gives a scale that clips every other value."
    ),
    "non-finite range": (
        "find the NaN/inf in the calibration inputs or activations (torch.isfinite) and "
        "recalibrate after torch.ao.quantization.prepare on a fresh model."
    ),
}


def _diagnose(observer: nn.Module, is_weight: bool) -> tuple[str, str] | None:
    """(problem kind, detail with the numbers) for an observer, None if calibrated or skipped.

    A weight observer sees the whole weight, so a zero-width range there (a channel of
    one element, or of equal values) is exact, not a calibration problem.
    """
    torch = require_torch()
    from torch.ao.quantization.observer import (
        HistogramObserver,
        MinMaxObserver,
        PerChannelMinMaxObserver,
    )

    if not isinstance(observer, (MinMaxObserver, PerChannelMinMaxObserver, HistogramObserver)):
        return None
    low, high = observer.min_val.detach(), observer.max_val.detach()
    if isinstance(observer, HistogramObserver):
        counts = int(observer.histogram.sum().item())
        if counts == 0 or bool(torch.isposinf(low).all()):
            return "never ran", f"min_val={low.item()} max_val={high.item()}, histogram empty"
    elif low.numel() == 0:
        return "never ran", "min_val/max_val still empty (no channel seen)"
    elif bool(torch.isposinf(low).all()):
        return "never ran", f"min_val={low.max().item()} max_val={high.min().item()}"
    if not bool(torch.isfinite(low).all() and torch.isfinite(high).all()):
        bad = int((~(torch.isfinite(low) & torch.isfinite(high))).sum().item())
        return "non-finite range", (
            f"{bad} of {low.numel()} min_val/max_val entries are NaN or inf "
            f"(min_val={low.min().item()}, max_val={high.max().item()})"
        )
    if is_weight:
        return None
    if isinstance(observer, PerChannelMinMaxObserver):
        channels = (low == high).nonzero().flatten().tolist()
        if not channels:
            return None
        shown = ", ".join(
            f"channel {channel}: {low[channel].item():.4g}"
            for channel in channels[:_CHANNELS_SHOWN]
        )
        more = ", ..." if len(channels) > _CHANNELS_SHOWN else ""
        return "degenerate range", (
            f"{len(channels)} of {low.numel()} channels (axis {observer.ch_axis}) have "
            f"min_val == max_val ({shown}{more})"
        )
    if bool((low == high).all()):
        return "degenerate range", (
            f"min_val = max_val = {low.item():.4g}: every value seen was equal"
        )
    return None


def assert_calibrated(model: nn.Module) -> None:
    """Fail if an observer never ran, or saw a zero-width or non-finite range.

    Names each observer by its qualified name (fake-quant observers as
    ``conv.activation_post_process.activation_post_process``) with its min/max.
    Weight observers (inside ``weight_fake_quant``) are only checked for having run and
    for finite ranges: they see the whole weight, so a zero-width range there is exact.
    """
    __tracebackhide__ = True
    require_torch()
    observers = list(iter_observers(model))
    if not observers:
        raise AssertionError(
            f"assert_calibrated: expected observers to check in {type(model).__name__}; found "
            "none: the model is not prepared (or already converted).\n"
            "  fix: run this check between prepare()/prepare_qat() and convert()."
        )
    found: dict[str, list[str]] = {kind: [] for kind in _FIXES}
    for name, observer in observers:
        diagnosis = _diagnose(observer, is_weight="weight_fake_quant" in name.split("."))
        if diagnosis is not None:
            kind, detail = diagnosis
            found[kind].append(f"      `{name}` ({type(observer).__name__}): {detail}")
    failing = sum(len(lines) for lines in found.values())
    if not failing:
        return
    listed = "\n".join(
        f"  - {kind} ({len(lines)}):\n" + "\n".join(lines) + f"\n    fix: {_FIXES[kind]}"
        for kind, lines in found.items()
        if lines
    )
    raise AssertionError(
        f"assert_calibrated: expected every observer of {type(model).__name__} to have seen "
        f"calibration data with a usable range; found {failing} of {len(observers)} observers "
        f"not calibrated:\n{listed}"
    )
