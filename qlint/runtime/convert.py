"""``assert_converted``: nothing float left where quantization was asked for.

Where a qconfig was set is read from the ``qconfig`` attributes that
``convert(..., remove_qconfig=False)`` keeps (each module's own, or its nearest
ancestor's, as ``propagate_qconfig_`` assigns them).  ``convert()`` with its default
``remove_qconfig=True`` deletes them; then a float swappable module cannot be told
apart from one deliberately left float, so every one is reported, and a float
parameter counts as inside the quantized region when its module or that module's
parent has a quantized child.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

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


def assert_converted(model: nn.Module) -> None:
    """Fail if float modules or float parameters remain in the quantized part of ``model``.

    Reports (1) modules of a type torch's default mappings swap (Conv*, Linear, BN,
    LayerNorm, fused and QAT modules, stubs, ...) still float where a qconfig is set,
    subclasses of those types included; (2) float ``nn.Parameter``s owned directly by a
    non-quantized module inside the quantized region (say a ``relative_position_bias_table``
    that convert() skips).  Modules whose qconfig is None are deliberately float and
    not reported.
    """
    __tracebackhide__ = True
    require_torch()
    modules = dict(model.named_modules())
    quantized = [name for name, module in modules.items() if is_quantized_module(module)]
    if not quantized:
        raise AssertionError(
            f"assert_converted: expected quantized modules in {type(model).__name__}; found "
            f"none among its {len(modules)} modules: convert() has not run on it.\n"
            "  fix: model = torch.ao.quantization.convert(prepared_model)."
        )
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
    if not float_modules and not float_parameters:
        return

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
    listed = "\n".join(f"  - {problem}" for problem in problems)
    raise AssertionError(
        f"assert_converted: expected no float module or parameter left in the quantized part "
        f"of {type(model).__name__} ({len(quantized)} quantized modules); found:\n{listed}"
    )
