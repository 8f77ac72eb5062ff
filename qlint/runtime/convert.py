"""``assert_converted``: nothing float left where quantization was asked for, in every flow.

- Observers or fake-quants still in the model: convert has not run on it, or its result was
  not kept (``convert``/``convert_fx`` return a new model unless told otherwise).
- Eager static: where a qconfig was set is read from the ``qconfig`` attributes that
  ``convert(..., remove_qconfig=False)`` keeps (each module's own, or its nearest
  ancestor's, as ``propagate_qconfig_`` assigns them).  ``convert()`` with its default
  ``remove_qconfig=True`` deletes them; then a float swappable module cannot be told
  apart from one deliberately left float, so every one is reported, and a float
  parameter counts as inside the quantized region when its module or that module's
  parent has a quantized child.
- FX: ``convert_fx`` places every float module behind a dequantize from the graph's own
  qconfig mapping, so a float module there is deliberate; only leftovers are reported.
- PT2E: every conv/linear the quantizer annotated (or that is half quantized) takes its
  input through a quantize->dequantize pair and its weight through a dequantize of int8
  values that an observer measured; its output may stay float (X86InductorQuantizer leaves
  the last linear so).
- Dynamic and weight-only: modules left float are not errors (``quantize_dynamic`` swaps
  the types it is given); ``dynamic=`` names the types that must have been swapped.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from qlint.runtime._flow import EAGER, FX, PT2E, flow_of, quant_points, quantized_layers
from qlint.runtime._machinery import is_fake_quant
from qlint.runtime._modules import (
    effective_qconfigs,
    is_quantized_module,
    module_type,
    parent_name,
    swappable_float_types,
)
from qlint.runtime._torch import require_torch

if TYPE_CHECKING:
    from torch import nn

_NAMES_SHOWN = 8
_CONVERT_CALLS = {
    EAGER: "model = torch.ao.quantization.convert(model)",
    FX: "model = convert_fx(model)",
    PT2E: "model = convert_pt2e(model)",
}


def _swap_note(module: nn.Module) -> str:
    """Why convert() left this swappable module float, as far as its type tells."""
    require_torch()
    from torch.ao.quantization.quantization_mappings import (
        get_default_qat_module_mappings,
        get_default_static_quant_module_mappings,
    )

    cls = module_type(module)
    known = set(get_default_static_quant_module_mappings()) | set(get_default_qat_module_mappings())
    if cls not in known:
        base = next(base for base in cls.__mro__ if base in known)
        return (
            f"a subclass of {base.__module__}.{base.__name__}: convert() looks types up "
            "exactly, so it is never swapped; pass mapping={...} to convert() or "
            "quantize it as a custom module"
        )
    if module.__class__.__module__.startswith("torch.ao.nn."):
        return "a fused/QAT module convert() never reached: run convert() on the whole model"
    return "run convert() after prepare() on the model that holds it"


def assert_converted(model: nn.Module, *, dynamic: Iterable[type] | None = None) -> None:
    """Fail if ``model`` is not (fully) converted where quantization was asked for.

    Eager, FX, PT2E and dynamically quantized models.  Reports observers/fake-quants left
    (convert not run, or its result not kept); eager: modules of a type torch's default
    mappings swap (Conv*, Linear, BN, fused and QAT modules, stubs, ...) still float where
    a qconfig is set, subclasses of those types included, and float ``nn.Parameter``s owned
    by a non-quantized module inside the quantized region; PT2E: conv/linear nodes the
    quantizer annotated whose input is not quantized or whose weight is float or was never
    observed (convert_pt2e before calibration).  Modules whose qconfig is None are
    deliberately float and not reported; in a dynamically quantized model float modules are
    not errors, and ``dynamic`` (module types, e.g. ``{nn.LSTM, nn.Linear}``) names the types
    that must each have been quantized.
    """
    __tracebackhide__ = True
    require_torch()
    flow = flow_of(model)
    leftovers = quant_points(model)
    layers = [layer for layer in quantized_layers(model) if layer.scheme != "float"]
    if not layers and not leftovers and not dynamic:
        raise AssertionError(
            f"assert_converted: expected quantized layers in {type(model).__name__}; found "
            f"none among its {len(dict(model.named_modules()))} modules: convert has not run "
            f"on it.\n  fix: {_CONVERT_CALLS[flow]} (for dynamic quantization: "
            "torch.ao.quantization.quantize_dynamic(model, {nn.Linear, ...}))."
        )
    is_dynamic = bool(layers) and all(layer.scheme in ("dynamic", "weight-only") for layer in layers)
    problems, reported = [], set()
    if flow == PT2E:
        problems += _pt2e_problems(model)
    elif flow == EAGER and layers and not is_dynamic:
        eager_problems, reported = _eager_problems(model)
        problems += eager_problems
    leftovers = [
        point for point in leftovers
        if not any(point.name.startswith(f"{name}.") for name in reported)
    ]
    if leftovers and not layers:
        problems.insert(0, _leftover_problem(leftovers, flow))
    elif leftovers:
        # In a converted model: observers pass values through; fake-quants raise on the
        # quantized tensors their hooks are given.
        fake_quants = [point for point in leftovers if is_fake_quant(point.module)]
        if fake_quants:
            problems.insert(0, _leftover_fake_quant_problem(fake_quants))
    if dynamic is not None:
        problems += _dynamic_problems(model, tuple(dynamic))
    if problems:
        listed = "\n".join(f"  - {problem}" for problem in problems)
        raise AssertionError(
            "assert_converted: expected no float layer, parameter or observer left where "
            f"quantization was asked for in {type(model).__name__} ({len(layers)} quantized "
            f"layers); found:\n{listed}"
        )


def _leftover_problem(leftovers, flow: str) -> str:
    shown = "\n".join(f"      {point.label()}" for point in leftovers[:_NAMES_SHOWN])
    more = f"\n      ... and {len(leftovers) - _NAMES_SHOWN} more" if len(leftovers) > _NAMES_SHOWN else ""
    return (
        f"{len(leftovers)} observers/fake-quants still in the model: convert has not run on "
        "it, or its result was not kept:\n"
        f"{shown}{more}\n"
        f"    fix: {_CONVERT_CALLS[flow]}: convert returns the converted model "
        "(convert_fx always, eager convert unless inplace=True); check that one."
    )


def _leftover_fake_quant_problem(fake_quants) -> str:
    shown = "\n".join(f"      {point.label()}" for point in fake_quants[:_NAMES_SHOWN])
    more = (
        f"\n      ... and {len(fake_quants) - _NAMES_SHOWN} more"
        if len(fake_quants) > _NAMES_SHOWN else ""
    )
    return (
        f"{len(fake_quants)} fake-quant(s) left in the converted model, on modules convert "
        "does not swap (Hardsigmoid, Sigmoid, ...): their forward hooks fake-quantize the "
        "quantized tensors those modules return, which raises (Could not run "
        "'aten::_fake_quantize_...' with arguments from the 'QuantizedCPU' backend):\n"
        f"{shown}{more}\n"
        "    fix: convert(..., remove_qconfig=False) keeps them; ship a model converted with "
        "the default remove_qconfig=True. To keep the qconfig attributes for this check, "
        "remove them after convert: from torch.ao.quantization.quantize import "
        "_remove_activation_post_process; model.apply(_remove_activation_post_process)."
    )


def _pt2e_problems(model: nn.Module) -> list[str]:
    nodes = {node.name: node for node in model.graph.nodes}
    found, fixes = [], set()
    for layer in quantized_layers(model):
        if not (layer.annotated or layer.input == "quantized" or layer.weight != "float"):
            continue
        reasons = []
        if layer.input != "quantized" and _static_intent(nodes[layer.node]):
            reasons.append(
                "its input is float (no quantize->dequantize pair before it) though the "
                "quantizer annotated its output: it runs weight-only"
            )
            fixes.add(
                "annotate the input of each layer in the quantizer (QuantizationAnnotation "
                "input_qspec_map with the input node and the weight node)"
            )
        if layer.weight == "float":
            reasons.append("its weight is float (no dequantize of int8 values)")
            fixes.add("annotate the weight in input_qspec_map")
        elif layer.weight == "unobserved":
            reasons.append(
                "its int8 weight holds only -1/0/1 with scale 1.0: convert's default qparams "
                "for an observer that never ran (convert_pt2e before any calibration forward)"
            )
            fixes.add("run calibration batches (PTQ) or training steps (QAT) before convert_pt2e")
        if reasons:
            found.append(f"{layer.label()}: " + "; ".join(reasons))
    if not found:
        return []
    return [
        f"{len(found)} conv/linear node(s) not fully quantized:\n"
        + "\n".join(f"      {line}" for line in found)
        + f"\n    fix: {'; '.join(sorted(fixes))}."
    ]


def _static_intent(node) -> bool:
    """The quantizer meant the layer to take a quantized input: it annotated the input,
    or the output (a weight-only annotation, input and output float, is deliberate)."""
    annotation = node.meta.get("quantization_annotation")
    if annotation is None:
        return False
    return node.args[0] in annotation.input_qspec_map or annotation.output_qspec is not None


def _dynamic_problems(model: nn.Module, wanted: tuple[type, ...]) -> list[str]:
    left = [
        (name, module)
        for name, module in model.named_modules()
        if isinstance(module, wanted) and not is_quantized_module(module)
    ]
    if not left:
        return []
    lines = []
    for name, module in left:
        note = ""
        if type(module) not in wanted:
            base = next(cls for cls in wanted if isinstance(module, cls))
            note = (
                f": a subclass of {base.__name__}; quantize_dynamic looks types up exactly, "
                "so list it in qconfig_spec and mapping"
            )
        lines.append(f"      `{name}` ({type(module).__name__}){note}")
    names = ", ".join(sorted({cls.__name__ for cls in wanted}))
    return [
        f"{len(left)} module(s) of the dynamic types ({names}) left float:\n"
        + "\n".join(lines)
        + "\n    fix: include their types in quantize_dynamic's qconfig_spec, e.g. "
        "quantize_dynamic(model, {nn.LSTM, nn.Linear}, dtype=torch.qint8)."
    ]


def _eager_problems(model: nn.Module) -> tuple[list[str], set[str]]:
    """The problems, and the names of the float modules reported (their insides are not)."""
    modules = dict(model.named_modules())
    quantized = [name for name, module in modules.items() if is_quantized_module(module)]
    qconfigs = effective_qconfigs(model)
    knows_qconfig = qconfigs is not None
    has_quantized_child = {parent_name(name) for name in quantized if name}

    def in_region(name: str) -> bool:
        if knows_qconfig:
            return qconfigs[name] is not None
        return name in has_quantized_child or (
            bool(name) and parent_name(name) in has_quantized_child
        )

    swappable = swappable_float_types()
    float_modules: list[tuple[str, nn.Module]] = []
    for name, module in modules.items():
        inside_reported = any(name.startswith(f"{outer}.") for outer, _ in float_modules)
        if (
            isinstance(module, swappable)
            and not is_quantized_module(module)
            and not inside_reported
            and (not knows_qconfig or in_region(name))
        ):
            float_modules.append((name, module))
    reported = {name for name, _ in float_modules}
    float_parameters = [
        (name, parameter_name, parameter)
        for name, module in modules.items()
        if not any(name == outer or name.startswith(f"{outer}.") for outer in reported)
        and not is_quantized_module(module)
        and in_region(name)
        for parameter_name, parameter in module.named_parameters(recurse=False)
        if parameter.is_floating_point()
    ]
    problems = []
    if float_modules:
        lines = "\n".join(
            f"      `{name}` ({type(module).__name__}): {_swap_note(module)}"
            for name, module in float_modules
        )
        region = (
            "with a qconfig set"
            if knows_qconfig
            else "(no qconfig attributes left to tell deliberate float modules apart: if one "
            "is meant to stay float, convert with remove_qconfig=False so its qconfig=None "
            "is visible)"
        )
        problems.append(f"{len(float_modules)} float swappable module(s) {region}:\n{lines}")
    if float_parameters:
        lines = "\n".join(
            f"      `{f'{name}.' if name else ''}{parameter_name}` on "
            f"{type(modules[name]).__name__}: shape {tuple(parameter.shape)}, "
            f"{str(parameter.dtype).removeprefix('torch.')}"
            for name, parameter_name, parameter in float_parameters
        )
        problems.append(
            f"{len(float_parameters)} float nn.Parameter(s) inside the quantized region; "
            "convert() swaps only mapped module types, so these stay float and meet "
            f"quantized tensors (a crash, or silently float math):\n{lines}\n"
            "    fix: move the computation into a module convert() swaps, dequantize "
            "around it (DeQuantStub ... QuantStub) with its qconfig set to None, or add a "
            "custom module mapping."
        )
    return problems, reported
