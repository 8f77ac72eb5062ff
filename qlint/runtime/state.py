"""Observer / fake-quant / qparam-learning state of a prepared model.

Each class keeps its switches in its own buffers, read here by isinstance, most
specific class first (user subclasses included):
- ``_LearnableFakeQuantize``: ``static_enabled`` is its observer switch (its inherited
  ``observer_enabled`` buffer is never read by its forward), ``fake_quant_enabled``,
  ``learning_enabled``.
- other ``FakeQuantizeBase`` (``FakeQuantize``, ``FusedMovingAvgObsFakeQuantize``,
  ``FixedQParamsFakeQuantize``): ``observer_enabled``, ``fake_quant_enabled``.
- plain observers (``ObserverBase``, from PTQ ``prepare``): always observe, no fake-quant.
Observers inside a fake-quant module follow their owner's flags and get no row.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from qlint.runtime._modules import iter_quant_modules
from qlint.runtime._torch import require_torch

if TYPE_CHECKING:
    import torch
    from torch import nn


@dataclass(frozen=True)
class QuantStateRow:
    """State of one fake-quant module or plain observer.

    ``observer_switch`` names the buffer that turns observation on (None for a plain
    observer, which has none); ``fake_quant`` is None for a plain observer and
    ``learning`` is None for modules that cannot learn qparams.
    """

    name: str
    kind: str
    observer: bool
    observer_switch: str | None
    fake_quant: bool | None
    learning: bool | None
    qparams: str


@dataclass(frozen=True)
class QuantState:
    """Per-module state table; ``str()`` prints it aligned."""

    rows: tuple[QuantStateRow, ...]

    def __iter__(self) -> Iterator[QuantStateRow]:
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def __str__(self) -> str:
        header = ("module", "class", "observer", "fake_quant", "learning", "qparams")
        lines = [header] + [
            (
                row.name,
                row.kind,
                _on_off(row.observer) if row.observer_switch else "always",
                _on_off(row.fake_quant),
                _on_off(row.learning),
                row.qparams,
            )
            for row in self.rows
        ]
        widths = [max(len(line[column]) for line in lines) for column in range(len(header))]
        return "\n".join(
            "  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip()
            for line in lines
        )


def _on_off(flag: bool | None) -> str:
    return "-" if flag is None else ("on" if flag else "off")


def _flag(buffer: torch.Tensor) -> bool:
    return bool(buffer.reshape(-1)[0].item())


def _values(label: str, tensor: torch.Tensor) -> str:
    values = tensor.detach().reshape(-1).float()
    if values.numel() == 0:
        return f"{label}=[]"
    if values.numel() == 1:
        return f"{label}={values.item():.4g}"
    return f"{label}[{values.numel()}]={values.min().item():.4g}..{values.max().item():.4g}"


def _qparams(module: nn.Module) -> str:
    """Scale/zero_point of a fake-quant module, or the observed range of an observer."""
    torch = require_torch()
    scale, zero_point = getattr(module, "scale", None), getattr(module, "zero_point", None)
    if isinstance(scale, torch.Tensor) and isinstance(zero_point, torch.Tensor):
        return f"{_values('scale', scale)} {_values('zp', zero_point)}"
    low, high = getattr(module, "min_val", None), getattr(module, "max_val", None)
    if isinstance(low, torch.Tensor) and isinstance(high, torch.Tensor):
        if low.numel() == 0 or bool(torch.isposinf(low).any()):
            return "not run"
        return f"{_values('min', low)} {_values('max', high)}"
    return "-"


def _row(name: str, module: nn.Module) -> QuantStateRow:
    require_torch()
    from torch.ao.quantization import FakeQuantizeBase
    from torch.ao.quantization._learnable_fake_quantize import _LearnableFakeQuantize

    kind = type(module).__name__
    if isinstance(module, _LearnableFakeQuantize):
        return QuantStateRow(
            name,
            kind,
            observer=_flag(module.static_enabled),
            observer_switch="static_enabled",
            fake_quant=_flag(module.fake_quant_enabled),
            learning=_flag(module.learning_enabled),
            qparams=_qparams(module),
        )
    if isinstance(module, FakeQuantizeBase):
        return QuantStateRow(
            name,
            kind,
            observer=_flag(module.observer_enabled),
            observer_switch="observer_enabled",
            fake_quant=_flag(module.fake_quant_enabled),
            learning=None,
            qparams=_qparams(module),
        )
    return QuantStateRow(name, kind, True, None, None, None, _qparams(module))


def quant_state(model: nn.Module) -> QuantState:
    """The state of every fake-quant module and plain observer in ``model``, in order."""
    require_torch()
    return QuantState(tuple(_row(name, module) for name, module in iter_quant_modules(model)))


_TABLE_ROWS_IN_MESSAGE = 30

_FIXES = {
    ("observers", True): "model.apply(torch.ao.quantization.enable_observer)",
    ("observers", False): "model.apply(torch.ao.quantization.disable_observer)",
    ("fake_quant", True): "model.apply(torch.ao.quantization.enable_fake_quant)",
    ("fake_quant", False): "model.apply(torch.ao.quantization.disable_fake_quant)",
    ("qparam_learning", True): (
        "call enable_param_learning() (learning on, static observation off) or "
        "toggle_qparam_learning(True) on every _LearnableFakeQuantize"
    ),
    ("qparam_learning", False): (
        "call toggle_qparam_learning(False) (or enable_static_estimate()) on every "
        "_LearnableFakeQuantize"
    ),
}


def _mismatch(row: QuantStateRow, setting: str, expected: bool) -> str | None:
    """Why ``row`` is not in the expected state for ``setting``, or None."""
    if setting == "observers":
        if row.observer == expected:
            return None
        if row.observer_switch is None:
            return "a plain observer always observes (no switch)"
        return f"{row.observer_switch}={int(row.observer)}"
    if setting == "fake_quant":
        if row.fake_quant is None or row.fake_quant == expected:
            return None
        return f"fake_quant_enabled={int(row.fake_quant)}"
    if row.learning is None or row.learning == expected:
        return None
    return f"learning_enabled={int(row.learning)}"


def assert_quant_state(
    model: nn.Module,
    *,
    observers: bool | None = None,
    fake_quant: bool | None = None,
    qparam_learning: bool | None = None,
) -> None:
    """Fail unless every observer / fake-quant module is in the stated state.

    ``None`` leaves a setting unchecked; at least one must be given.  ``observers``
    applies to every row (plain PTQ observers always observe), ``fake_quant`` to
    fake-quant modules, ``qparam_learning`` to ``_LearnableFakeQuantize`` modules.
    Asking for a setting to be on when no module has that switch fails.
    """
    __tracebackhide__ = True
    require_torch()
    wanted = {
        setting: value
        for setting, value in (
            ("observers", observers),
            ("fake_quant", fake_quant),
            ("qparam_learning", qparam_learning),
        )
        if value is not None
    }
    if not wanted:
        raise TypeError(
            "assert_quant_state needs at least one of observers=, fake_quant=, qparam_learning="
        )
    stated = ", ".join(f"{setting} {_on_off(value)}" for setting, value in wanted.items())
    state = quant_state(model)
    if not state.rows:
        raise AssertionError(
            f"assert_quant_state: expected {stated}; found no observer or fake-quant module in "
            f"{type(model).__name__}: it is not prepared (or already converted).\n"
            "  fix: run torch.ao.quantization.prepare / prepare_qat before this check."
        )
    problems = []
    for setting, expected in wanted.items():
        switchable = [
            row
            for row in state.rows
            if setting == "observers"
            or (setting == "fake_quant" and row.fake_quant is not None)
            or (setting == "qparam_learning" and row.learning is not None)
        ]
        if expected and not switchable:
            kinds = sorted({row.kind for row in state.rows})
            problems.append(
                f"{setting} (expected on): none of the {len(state.rows)} quant modules has "
                f"that switch (classes: {', '.join(kinds)}).\n    fix: "
                + (
                    "prepare_qat with a QAT qconfig (fake-quant modules)."
                    if setting == "fake_quant"
                    else "use a QConfig built on _LearnableFakeQuantize."
                )
            )
            continue
        offenders = [
            (row, reason)
            for row in switchable
            if (reason := _mismatch(row, setting, expected)) is not None
        ]
        if not offenders:
            continue
        listed = "\n".join(
            f"      `{row.name}` ({row.kind}): {reason}" for row, reason in offenders
        )
        plain = sum(row.observer_switch is None for row, _ in offenders)
        fixes = [] if plain == len(offenders) else [_FIXES[(setting, expected)]]
        if plain:
            fixes.append(
                "plain observers from prepare() cannot be switched off: convert() the "
                "model, or prepare_qat with a QAT qconfig"
            )
        verb = "is" if len(offenders) == 1 else "are"
        problems.append(
            f"{setting} (expected {_on_off(expected)}): {len(offenders)} of {len(switchable)} "
            f"modules {verb} {_on_off(not expected)}:\n{listed}\n    fix: {'; '.join(fixes)}."
        )
    if problems:
        listed = "\n".join(f"  - {problem}" for problem in problems)
        if len(state.rows) <= _TABLE_ROWS_IN_MESSAGE:
            table = "\n".join(f"    {line}" for line in str(state).splitlines())
            table = f"\n  state table:\n{table}"
        else:
            table = f"\n  print(qlint.runtime.quant_state(model)) shows all {len(state.rows)} rows."
        raise AssertionError(
            f"assert_quant_state: expected {stated} in {type(model).__name__}; found:\n"
            f"{listed}{table}"
        )
