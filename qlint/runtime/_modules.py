"""Module-walking utilities shared by the runtime checks (one copy for every helper).

Everything here imports torch lazily through ``require_torch`` and never changes the
model it is given.

- ``as_args(example_inputs)``: a tensor or a tuple of positional inputs -> a tuple.
- ``eval_copy(model)``: a deep copy in eval mode, safe to run and hook (PT2E: moved to
  eval by torchao, since ``.eval()`` raises on exported models).
- ``tensors_in(value)``: the tensors in a (nested) output, in order.
- ``module_type(module)``: the class before parametrizations, as torch's mappings see it.
- ``is_quantized_module(module)``: a module produced by ``convert()`` (static, dynamic,
  reference), per torch's default module mappings.
- ``swappable_float_types()``: the module types ``convert()``/``prepare_qat()`` swap.
- ``effective_qconfigs(model)``: each module's qconfig as ``propagate_qconfig_`` would
  assign it, or None when no module carries a ``qconfig`` attribute.
- ``parent_name(name)``: ``"layer1.0.relu"`` -> ``"layer1.0"``.
"""

from __future__ import annotations

import copy
import functools
from typing import TYPE_CHECKING, Any

from qlint.runtime._torch import require_torch, require_torchao_pt2e

if TYPE_CHECKING:
    import torch
    from torch import nn


def as_args(example_inputs: torch.Tensor | tuple[Any, ...]) -> tuple[Any, ...]:
    """Positional arguments for ``model(*args)`` from a tensor or a tuple of inputs."""
    torch = require_torch()
    if isinstance(example_inputs, torch.Tensor):
        return (example_inputs,)
    if isinstance(example_inputs, tuple):
        return example_inputs
    raise TypeError(
        "example_inputs must be a tensor or a tuple of positional inputs, "
        f"got {type(example_inputs).__name__}"
    )


def eval_copy(model: nn.Module) -> nn.Module:
    """A deep copy of ``model`` in eval mode; the original is left as it was."""
    from qlint.runtime._flow import PT2E, flow_of

    duplicate = copy.deepcopy(model)
    if flow_of(duplicate) == PT2E:
        return pt2e_eval(duplicate)
    return duplicate.eval()


def pt2e_eval(model: nn.Module) -> nn.Module:
    """An exported model moved to eval by torchao, only when it has a train-mode operator
    (the move re-exports torchao's patterns, seconds per call, and deep copies lose the
    flag torchao keeps to skip it)."""
    from qlint.runtime._flow import needs_eval

    if not needs_eval(model):
        return model
    return require_torchao_pt2e().move_exported_model_to_eval(model)


def tensors_in(value: Any) -> list[torch.Tensor]:
    """The tensors in ``value`` (a tensor, or tuples/lists/dicts of them), in order."""
    torch = require_torch()
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, (tuple, list)):
        return [tensor for item in value for tensor in tensors_in(item)]
    if isinstance(value, dict):
        return [tensor for item in value.values() for tensor in tensors_in(item)]
    return []


def module_type(module: nn.Module) -> type:
    """The module's class before parametrizations, the key torch's mappings use."""
    require_torch()
    from torch.nn.utils.parametrize import type_before_parametrizations

    return type_before_parametrizations(module)


@functools.cache
def _mappings() -> tuple[tuple[type, ...], tuple[type, ...]]:
    """(swappable float/QAT types, quantized types) from torch's default module mappings."""
    require_torch()
    from torch.ao.quantization.quantization_mappings import (
        get_default_dynamic_quant_module_mappings,
        get_default_qat_module_mappings,
        get_default_static_quant_module_mappings,
        get_default_static_quant_reference_module_mappings,
    )

    static = get_default_static_quant_module_mappings()
    quantized = set(static.values())
    quantized.update(get_default_static_quant_reference_module_mappings().values())
    quantized.update(get_default_dynamic_quant_module_mappings().values())
    swappable = set(static) | set(get_default_qat_module_mappings())
    return tuple(swappable - quantized), tuple(quantized)


def is_quantized_module(module: nn.Module) -> bool:
    """True for modules that ``convert()`` or ``quantize_dynamic()`` produce."""
    return isinstance(module, _mappings()[1])


def swappable_float_types() -> tuple[type, ...]:
    """Float, fused and QAT module types that ``convert()`` swaps for quantized ones."""
    return _mappings()[0]


def parent_name(name: str) -> str:
    """The qualified name of the parent module (``""`` for the root's children)."""
    return name.rpartition(".")[0]


def effective_qconfigs(model: nn.Module) -> dict[str, Any] | None:
    """Qualified name -> qconfig (own, else the nearest ancestor's, else None).

    None when no module has a ``qconfig`` attribute at all: nothing tells which part
    of the model is meant to be quantized (``convert()`` deletes the attributes unless
    called with ``remove_qconfig=False``).
    """
    qconfigs: dict[str, Any] = {}
    found = False
    for name, module in model.named_modules(remove_duplicate=False):
        found = found or hasattr(module, "qconfig")
        inherited = qconfigs.get(parent_name(name)) if name else None
        qconfigs[name] = getattr(module, "qconfig", inherited)
    return qconfigs if found else None
