"""``quant_report``: which layers of a prepared model lose accuracy, and why.

One row per quantized layer (see ``qlint.runtime.sensitivity`` for what a layer is and
how it is simulated), with the figures a quantization engineer reads first:

- ``name``, ``position`` (execution order of the layer's first output quantization on
  the example inputs; None if it never ran), ``kind`` (module class, function or ``input``), ``fused``, ``module`` (the
  source module path, None for function nodes), ``observer`` (class of the output
  quantization point), ``fake_quant`` (``on``/``off`` as the model has it, None for a
  plain observer), ``range_min``/``range_max`` (the observed range), ``scale``,
  ``zero_point`` (the output qparams ``convert`` takes), ``weight`` (weight scheme);
- ``clipped_share``: share of the layer's output values, on the example inputs in the
  float model, that fall outside what its output qparams can represent;
- ``activation_sqnr_db``: the layer's float output against its own output quantization
  (rounding and clipping of that one point);
- ``sqnr_db``: the layer's output in the model with every layer quantized, against the
  float model (the error accumulated up to this layer);
- ``converted_sqnr_db``: the layer's output in the converted model against the
  fake-quant simulation (None where the converted layer is not a module, or convert failed);
- ``sensitivity_db``: the model output's SQNR against float with only this layer
  quantized (weights and output activation); lower is worse. None when the sweep was
  capped before reaching the layer. Rows rank by it, worst first; below 3 dB (output
  mostly noise) in execution order, so that the first layer that breaks the output leads.

SQNR is in dB, ``inf`` when identical. Cost: a deep copy, a ``convert`` of another copy,
three forward passes, plus one per swept layer (``benchmarks/bench_report.py``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qlint.runtime._machinery import is_fake_quant
from qlint.runtime._modules import as_args, tensors_in
from qlint.runtime._torch import require_torch
from qlint.runtime.sensitivity import (
    Layer,
    Simulation,
    enumerate_layers,
    flow_name,
    histogram,
    quant_modules,
    sqnr_db,
    sweep,
)

# Output SQNR under which the sensitivity figure no longer ranks layers (noise at half
# the output's power or more).
DESTROYED_DB = 3.0

COLUMNS = (
    "name",
    "position",
    "kind",
    "fused",
    "module",
    "observer",
    "fake_quant",
    "range_min",
    "range_max",
    "scale",
    "zero_point",
    "weight",
    "clipped_share",
    "activation_sqnr_db",
    "sqnr_db",
    "converted_sqnr_db",
    "sensitivity_db",
)


@dataclass(frozen=True)
class CheckResult:
    """One runtime check run on the model: passed, or its failure message."""

    name: str
    passed: bool
    message: str = ""


@dataclass
class QuantReport:
    """Per-layer figures of a prepared model; ``str()`` ranks them by sensitivity."""

    model: str
    flow: str
    engine: str
    rows: list[dict[str, Any]]
    summary: dict[str, Any]
    histograms: dict[str, dict[str, Any]] = field(default_factory=dict)
    checks: list[CheckResult] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def ranked(self) -> list[dict[str, Any]]:
        """Rows worst first: by sensitivity_db (unswept last), then sqnr_db.

        Below ``DESTROYED_DB`` the model output is mostly noise and the figure no longer
        tells layers apart (a layer whose weights changed after calibration drags every
        layer after it there, their ranges calibrated on the old activations): those rows
        come first, in execution order, so the first layer that breaks the output leads.
        """

        def key(row):
            sensitivity = row["sensitivity_db"]
            if sensitivity is not None and sensitivity < DESTROYED_DB:
                return (0, _sortable(row["position"]), 0.0)
            return (1 + (sensitivity is None), _sortable(sensitivity), _sortable(row["sqnr_db"]))

        return sorted(self.rows, key=key)

    @property
    def failed_checks(self) -> list[CheckResult]:
        return [check for check in self.checks if not check.passed]

    def __str__(self) -> str:
        lines = [self.headline()]
        lines += [f"  {note}" for note in self.notes]
        header = ("rank", "layer", "kind", "sensitivity", "sqnr", "act_sqnr", "clipped",
                  "converted", "scale", "zp", "range", "fq")
        table = [header] + [
            (
                str(rank),
                layer_label(row),
                row["kind"] + (" (fused)" if row["fused"] else ""),
                _db(row["sensitivity_db"]),
                _db(row["sqnr_db"]),
                _db(row["activation_sqnr_db"]),
                _share(row["clipped_share"]),
                _db(row["converted_sqnr_db"]),
                _number(row["scale"]),
                "-" if row["zero_point"] is None else str(row["zero_point"]),
                _range(row),
                row["fake_quant"] or "-",
            )
            for rank, row in enumerate(self.ranked(), start=1)
        ]
        widths = [max(len(line[column]) for line in table) for column in range(len(header))]
        right = {3, 4, 5, 6, 7, 8, 9}
        lines += [
            "  ".join(
                cell.rjust(width) if column in right else cell.ljust(width)
                for column, (cell, width) in enumerate(zip(line, widths))
            ).rstrip()
            for line in table
        ]
        for check in self.checks:
            first = check.message.splitlines()[0] if check.message else ""
            lines.append(f"{'PASS' if check.passed else 'FAIL'} {check.name}" + (f": {first}" if first else ""))
        return "\n".join(lines)

    def headline(self) -> str:
        summary = self.summary
        swept = summary["swept_layers"]
        sweep_text = (
            f"sensitivity swept {swept} of {summary['layers']} layers"
            + (f" ({summary['sweep_capped_by']})" if summary.get("sweep_capped_by") else "")
            if summary["sensitivity"]
            else "sensitivity sweep off"
        )
        return (
            f"quant_report: {self.model} ({self.flow}, engine {self.engine}): "
            f"{summary['layers']} quantized layers; model output SQNR "
            f"{_db(summary['model_sqnr_db'])} dB quantized vs float, "
            f"{_db(summary['converted_sqnr_db'])} dB converted vs fake-quant; {sweep_text}"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "flow": self.flow,
            "engine": self.engine,
            "summary": self.summary,
            "rows": self.rows,
            "ranking": [row["name"] for row in self.ranked()],
            "histograms": self.histograms,
            "checks": [check.__dict__ for check in self.checks],
            "notes": self.notes,
        }

    def to_json(self, **dump_options: Any) -> str:
        """JSON text; infinite SQNRs (identical tensors) are written as the strings "inf"."""
        return json.dumps(_json_safe(self.as_dict()), **dump_options)

    def to_html(self, path) -> None:
        """Write a self-contained HTML file: tables, and plots when matplotlib is installed."""
        from qlint.runtime.report_html import render_html

        Path(path).write_text(render_html(self), encoding="utf-8")


def layer_label(row) -> str:
    """The layer's name, with its source module when that differs (graph nodes)."""
    module = row["module"]
    return row["name"] if module in (None, row["name"]) else f"{row['name']} [{module}]"


def _json_safe(value):
    if isinstance(value, float) and math.isinf(value):
        return "inf" if value > 0 else "-inf"
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(item) for item in value]
    return value


def _sortable(value) -> float:
    return math.inf if value is None else value


def _db(value) -> str:
    if value is None:
        return "-"
    return "inf" if math.isinf(value) and value > 0 else f"{value:.1f}"


def _share(value) -> str:
    return "-" if value is None else f"{value:.1%}"


def _number(value) -> str:
    return "-" if value is None else f"{value:.4g}"


def _range(row) -> str:
    if row["range_min"] is None:
        return "-"
    return f"{row['range_min']:.4g}..{row['range_max']:.4g}"


def _flow_of(model) -> str:
    mode = "qat" if any(is_fake_quant(module) for _, module in quant_modules(model)) else "ptq"
    return f"{flow_name(model)} {mode}"


def _converted_copy(model):
    """The flow's convert of an eval copy (``convert``, ``convert_fx``, ``convert_pt2e``);
    (None, the error text) if it fails."""
    from qlint.runtime._twins import ConvertFailed, converted_copy, kind_of

    try:
        return converted_copy(model, kind_of(model)), None
    except ConvertFailed as error:
        return None, str(error)


def _converted_layer_outputs(converted, layers, inputs):
    """Each module layer's output in the converted model (dequantized), and the model output."""
    torch = require_torch()
    modules = dict(converted.named_modules())
    outputs: dict[str, list] = {}
    handles = []

    def record(layer, module, args, output):
        if isinstance(output, torch.Tensor):
            value = output.dequantize() if output.is_quantized else output
            outputs.setdefault(layer, []).append(value.detach().reshape(-1).float())

    for layer in layers:
        module = modules.get(layer.module_path) if layer.module_path else None
        if module is not None:
            handles.append(module.register_forward_hook(lambda m, a, o, name=layer.name: record(name, m, a, o)))
    try:
        with torch.no_grad():
            output = converted(*inputs)
    finally:
        for handle in handles:
            handle.remove()
    tensors = [
        (tensor.dequantize() if tensor.is_quantized else tensor).reshape(-1).double()
        for tensor in _tensors(output)
    ]
    joined = torch.cat(tensors) if tensors else None
    return {name: torch.cat(values) for name, values in outputs.items()}, joined


def _tensors(value):
    return [tensor for tensor in tensors_in(value) if tensor.is_floating_point() or tensor.is_quantized]


def _describe_points(model, layer: Layer) -> dict[str, Any]:
    """Observer class, fake-quant switch, observed range and weight scheme, from ``model``."""
    torch = require_torch()
    modules = dict(model.named_modules())
    described: dict[str, Any] = {"observer": None, "fake_quant": None, "range_min": None,
                                 "range_max": None, "weight": None}
    if layer.output_points:
        point = modules[layer.output_points[0]]
        described["observer"] = type(point).__name__
        if is_fake_quant(point):
            described["fake_quant"] = "on" if bool(point.fake_quant_enabled) else "off"
        observer = getattr(point, "activation_post_process", point)
        low, high = getattr(observer, "min_val", None), getattr(observer, "max_val", None)
        if isinstance(low, torch.Tensor) and low.numel() == 1 and bool(torch.isfinite(low)):
            described["range_min"], described["range_max"] = float(low), float(high)
    if layer.weight_points:
        point = modules[layer.weight_points[0]]
        described["weight"] = _scheme(point, torch)
    else:
        module = modules.get(layer.module_path) if layer.module_path else None
        qconfig = getattr(module, "qconfig", None)
        if qconfig is not None and _has_weight(module, torch):
            described["weight"] = _scheme(qconfig.weight(), torch)
    return described


def _has_weight(module, torch) -> bool:
    if type(module).__module__.startswith("torch.ao.nn.intrinsic") and len(module):
        module = module[0]
    return isinstance(getattr(module, "weight", None), torch.nn.Parameter)


def _scheme(point, torch) -> str:
    qscheme = getattr(point, "qscheme", None)
    dtype = str(getattr(point, "dtype", "")).removeprefix("torch.")
    per = "per-channel" if qscheme in (torch.per_channel_affine, torch.per_channel_symmetric) else "per-tensor"
    return f"{per} {dtype}".strip()


def quant_report(
    model,
    example_inputs,
    *,
    sensitivity: bool = True,
    max_layers: int | None = None,
    time_budget: float | None = None,
    checks: bool = False,
    progress: Callable[[int, int, str], None] | None = None,
) -> QuantReport:
    """Per-layer quantization report of a prepared, calibrated model (eager or FX).

    ``example_inputs``: a tensor or a tuple of positional inputs, run through deep copies
    (``model`` is not changed). ``sensitivity``: run the sweep (one forward pass per
    layer); ``max_layers`` sweeps at most that many layers and ``time_budget`` stops it
    after that many seconds, worst ``activation_sqnr_db`` first, so a capped sweep still
    reaches the suspicious layers. ``checks``: also run every runtime check (``assert_*``)
    that applies and record the results. ``progress(done, total, layer)`` is called after
    each swept layer.
    """
    torch = require_torch()
    inputs = as_args(example_inputs)
    layers = enumerate_layers(model)
    if not layers:
        raise ValueError(
            f"quant_report: expected a prepared model (observers or fake-quant modules); "
            f"found none in {type(model).__name__}: run prepare()/prepare_qat() (or "
            "prepare_fx) and calibrate first"
        )
    converted, convert_error = _converted_copy(model)
    notes = []
    if convert_error:
        notes.append(
            f"convert() of a copy failed ({convert_error}): weights are quantized by their own "
            "observers and converted_sqnr_db is not measured"
        )
    simulation = Simulation(model, layers, converted)
    float_output, float_records = simulation.run(inputs, [], record=True)
    quantized_output, quantized_records = simulation.run(inputs, None, record=True)

    converted_outputs, converted_output = {}, None
    if converted is not None:
        try:
            converted_outputs, converted_output = _converted_layer_outputs(converted, layers, inputs)
        except Exception as error:  # noqa: BLE001 - the report goes on without these figures
            first = (str(error).strip().splitlines() or [""])[0][:300]
            notes.append(f"the converted model crashed ({type(error).__name__}: {first}): "
                         "converted_sqnr_db is not measured")

    rows, histograms, local = [], {}, {}
    positions = {name: index for index, name in enumerate(float_records)}  # first-call order
    for layer in layers:
        quantizer = simulation.output_quantizers.get(layer.name)
        float_record = float_records.get(layer.name)
        quantized_record = quantized_records.get(layer.name)
        row: dict[str, Any] = {
            "name": layer.name,
            "position": positions.get(layer.name),
            "kind": layer.kind,
            "fused": layer.fused,
            "module": layer.module_path,
            **_describe_points(model, layer),
            "scale": quantizer.scale if quantizer else None,
            "zero_point": quantizer.zero_point if quantizer else None,
            "clipped_share": None,
            "activation_sqnr_db": None,
            "sqnr_db": None,
            "converted_sqnr_db": None,
            "sensitivity_db": None,
        }
        if float_record is not None and float_record.inputs:
            values = float_record.input()
            if quantizer is not None:
                margin = quantizer.scale / 2
                clipped = (values < quantizer.low - margin) | (values > quantizer.high + margin)
                row["clipped_share"] = float(clipped.double().mean())
                row["activation_sqnr_db"] = sqnr_db(values, quantizer(values))
            if quantized_record is not None:
                row["sqnr_db"] = sqnr_db(values, quantized_record.output())
                found = converted_outputs.get(layer.name)
                if found is not None and found.shape == quantized_record.output().shape:
                    row["converted_sqnr_db"] = sqnr_db(quantized_record.output(), found)
            histograms[layer.name] = {
                **histogram(values),
                "quant_low": quantizer.low if quantizer else None,
                "quant_high": quantizer.high if quantizer else None,
            }
        local[layer.name] = row["activation_sqnr_db"]
        rows.append(row)

    summary: dict[str, Any] = {
        "layers": len(layers),
        "model_sqnr_db": sqnr_db(float_output, quantized_output),
        "converted_sqnr_db": (
            sqnr_db(quantized_output, converted_output)
            if converted_output is not None and converted_output.shape == quantized_output.shape
            else None
        ),
        "sensitivity": sensitivity,
        "swept_layers": 0,
        "sweep_capped_by": None,
        "sweep_seconds": 0.0,
    }
    if sensitivity:
        order = sorted((layer.name for layer in layers), key=lambda name: _sortable(local[name]))
        result = sweep(simulation, inputs, float_output, order, max_layers=max_layers,
                       time_budget=time_budget, progress=progress)
        for row in rows:
            row["sensitivity_db"] = result.sensitivity_db.get(row["name"])
        summary.update(swept_layers=len(result.sensitivity_db), sweep_capped_by=result.reason,
                       sweep_seconds=result.seconds)

    report = QuantReport(
        model=type(model).__name__,
        flow=_flow_of(model),
        engine=torch.backends.quantized.engine,
        rows=rows,
        summary=summary,
        histograms=histograms,
        notes=notes,
    )
    if checks:
        report.checks = run_checks(model, example_inputs)
    return report


def _assert_converted_copy(model, assert_converted) -> None:
    __tracebackhide__ = True
    converted, error = _converted_copy(model)
    if converted is None:
        raise AssertionError(f"assert_converted: convert() of a copy of the model failed: {error}")
    assert_converted(converted)


def run_checks(model, example_inputs) -> list[CheckResult]:
    """Every runtime check that applies to a prepared model, each caught as a result."""
    from qlint.runtime.calibration import assert_calibrated
    from qlint.runtime.convert import assert_converted
    from qlint.runtime.fusion import assert_fused
    from qlint.runtime.parity import assert_parity
    from qlint.runtime.state import assert_quant_state

    has_fake_quant = any(is_fake_quant(module) for _, module in quant_modules(model))
    planned: list[tuple[str, Callable[[], None]]] = [
        ("assert_fused", lambda: assert_fused(model, example_inputs)),
        ("assert_calibrated", lambda: assert_calibrated(model)),
    ]
    if has_fake_quant:
        planned.append(("assert_quant_state", lambda: assert_quant_state(model, fake_quant=True)))
    planned.append(("assert_parity", lambda: assert_parity(model, example_inputs)))
    planned.append(("assert_converted", lambda: _assert_converted_copy(model, assert_converted)))
    results = []
    for name, check in planned:
        try:
            check()
        except AssertionError as error:
            results.append(CheckResult(name, False, str(error)))
        except Exception as error:  # noqa: BLE001 - a crash inside a check is its failure
            results.append(CheckResult(name, False, f"{type(error).__name__}: {error}"))
        else:
            results.append(CheckResult(name, True))
    return results
