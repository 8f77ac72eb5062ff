"""What a quantization module is, whichever library made it.

torch.ao.quantization (eager and FX) and torchao (PT2E) each define their own observer and
fake-quant classes, with the same buffer names; user classes derive from either.  A module
is recognized by the base classes of both families, torchao's only when torchao is loaded
(a model holding one of its modules has loaded it), so nothing here imports torchao.

Switches, read from each module's buffers:
- observation: ``static_enabled`` for torch.ao's ``_LearnableFakeQuantize`` (its inherited
  ``observer_enabled`` is never read by its forward), ``observer_enabled`` for every other
  fake-quant (torchao's ``LearnableFakeQuantize`` included); plain observers always observe.
- fake quantization: ``fake_quant_enabled``.
- qparam learning: ``learning_enabled``, on the learnable fake-quants of both families,
  whose ``scale``/``zero_point`` are ``nn.Parameter``s (torchao's only after the first forward).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from qlint.runtime._torch import require_torch

if TYPE_CHECKING:
    from torch import nn

# (module, class) of each family's bases, torch.ao first; torchao's only when loaded.
_OBSERVER_BASES = (
    ("torch.ao.quantization.observer", "ObserverBase"),
    ("torchao.quantization.pt2e.observer", "ObserverBase"),
    ("torchao.quantization.pt2e.observer", "AffineQuantizedObserverBase"),
)
_FAKE_QUANT_BASES = (
    ("torch.ao.quantization.fake_quantize", "FakeQuantizeBase"),
    ("torchao.quantization.pt2e.fake_quantize", "FakeQuantizeBase"),
)
OBSERVER_SWITCH = "observer_enabled"
STATIC_SWITCH = "static_enabled"
FAKE_QUANT_SWITCH = "fake_quant_enabled"
LEARNING_SWITCH = "learning_enabled"


def _loaded(bases: tuple[tuple[str, str], ...]) -> tuple[type, ...]:
    require_torch()
    import torch.ao.quantization  # noqa: F401  (loads torch.ao's modules)

    found = []
    for module_name, class_name in bases:
        module = sys.modules.get(module_name)
        cls = getattr(module, class_name, None)
        if isinstance(cls, type):
            found.append(cls)
    return tuple(found)


def is_observer(module: object) -> bool:
    """An observer of either family (inside a fake-quant or not)."""
    return isinstance(module, _loaded(_OBSERVER_BASES))


def is_fake_quant(module: object) -> bool:
    """A fake-quant module of either family."""
    return isinstance(module, _loaded(_FAKE_QUANT_BASES))


def is_quant_machinery(module: object) -> bool:
    """An observer or a fake-quant module of either family."""
    return isinstance(module, _loaded(_OBSERVER_BASES + _FAKE_QUANT_BASES))


def family(module: nn.Module) -> str:
    """``"torchao"`` for a module of torchao's classes (or a subclass), else ``"torch.ao"``."""
    torchao_bases = _loaded(_OBSERVER_BASES[1:] + _FAKE_QUANT_BASES[1:])
    return "torchao" if torchao_bases and isinstance(module, torchao_bases) else "torch.ao"


def _is_torch_ao_learnable(module: nn.Module) -> bool:
    require_torch()
    from torch.ao.quantization._learnable_fake_quantize import _LearnableFakeQuantize

    return isinstance(module, _LearnableFakeQuantize)


def observer_switch(module: nn.Module) -> str | None:
    """The buffer that turns observation on, None for a plain observer (always observes)."""
    if not is_fake_quant(module):
        return None
    return STATIC_SWITCH if _is_torch_ao_learnable(module) else OBSERVER_SWITCH


def learning_switch(module: nn.Module) -> str | None:
    """``learning_enabled`` for fake-quants that learn their qparams, else None."""
    return LEARNING_SWITCH if is_fake_quant(module) and _has_buffer(module, LEARNING_SWITCH) else None


def _has_buffer(module: nn.Module, name: str) -> bool:
    torch = require_torch()
    return isinstance(getattr(module, name, None), torch.Tensor)


def flag(module: nn.Module, switch: str) -> bool:
    """The value of a switch buffer (uint8 tensors of one element)."""
    return bool(getattr(module, switch).reshape(-1)[0].item())


def set_flag(module: nn.Module, switch: str, enabled: bool) -> None:
    getattr(module, switch).fill_(int(enabled))


def learnable_qparams(module: nn.Module) -> list[tuple[str, object]]:
    """(name, value) of a learnable fake-quant's ``scale`` and ``zero_point`` (None when
    torchao has not created them yet: its first forward does)."""
    return [(name, getattr(module, name, None)) for name in ("scale", "zero_point")]
