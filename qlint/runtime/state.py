"""Observer / fake-quant / qparam-learning state of a prepared model, and a toggle.

Works on torch.ao's modules (eager, FX) and torchao's (PT2E), user subclasses included;
each module's switches are read from its own buffers (``_machinery``).  Observers inside a
fake-quant module follow their owner's switches and get no row.  ``set_quant_state`` sets
the switches on both families alike: torch.ao's ``disable_fake_quant``/``disable_observer``
do nothing to torchao's modules, and torchao's do nothing to torch.ao's.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from qlint.runtime._flow import QuantPoint, quant_points
from qlint.runtime._machinery import (
    FAKE_QUANT_SWITCH,
    family,
    flag,
    is_fake_quant,
    learnable_qparams,
    learning_switch,
    observer_switch,
    set_flag,
)
from qlint.runtime._torch import require_torch

if TYPE_CHECKING:
    import torch
    from torch import nn


@dataclass(frozen=True)
class QuantStateRow:
    """State of one fake-quant module or plain observer.

    ``observer_switch`` names the buffer that turns observation on (None for a plain
    observer, which has none); ``fake_quant`` is None for a plain observer and
    ``learning`` is None for modules that cannot learn qparams.  ``where`` says what the
    module quantizes; ``node`` is the graph node that calls it (FX, PT2E).
    """

    name: str
    kind: str
    observer: bool
    observer_switch: str | None
    fake_quant: bool | None
    learning: bool | None
    qparams: str
    where: str = ""
    node: str | None = None


@dataclass(frozen=True)
class QuantState:
    """Per-module state table; ``str()`` prints it aligned."""

    rows: tuple[QuantStateRow, ...]

    def __iter__(self) -> Iterator[QuantStateRow]:
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def __str__(self) -> str:
        header = ("module", "class", "observer", "fake_quant", "learning", "qparams", "where")
        lines = [header] + [
            (
                row.name,
                row.kind,
                _on_off(row.observer) if row.observer_switch else "always",
                _on_off(row.fake_quant),
                _on_off(row.learning),
                row.qparams,
                row.where,
            )
            for row in self.rows
        ]
        widths = [max(len(line[column]) for line in lines) for column in range(len(header))]
        return "\n".join(
            "  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip()
            for line in lines
        )


def _on_off(value: bool | None) -> str:
    return "-" if value is None else ("on" if value else "off")


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


def _row(point: QuantPoint) -> QuantStateRow:
    module = point.module
    switch = observer_switch(module)
    learning = learning_switch(module)
    return QuantStateRow(
        point.name,
        type(module).__name__,
        observer=flag(module, switch) if switch else True,
        observer_switch=switch,
        fake_quant=flag(module, FAKE_QUANT_SWITCH) if is_fake_quant(module) else None,
        learning=flag(module, learning) if learning else None,
        qparams=_qparams(module),
        where=point.where,
        node=point.node,
    )


def quant_state(model: nn.Module) -> QuantState:
    """The state of every fake-quant module and plain observer in ``model``, in order."""
    require_torch()
    return QuantState(tuple(_row(point) for point in quant_points(model)))


def set_quant_state(
    model: nn.Module,
    *,
    observers: bool | None = None,
    fake_quant: bool | None = None,
    qparam_learning: bool | None = None,
) -> None:
    """Switch observation, fake quantization and qparam learning on or off in ``model``.

    The same switches ``assert_quant_state`` reads, on torch.ao's and torchao's modules
    alike (eager, FX, PT2E); ``None`` leaves a setting as it is.  Learning also sets
    ``requires_grad`` of the learnable ``scale``/``zero_point``, as the modules' own
    toggles do.  Raises ValueError when no module has the switch asked for (plain observers
    from ``prepare``/``prepare_pt2e`` always observe and have none).
    """
    require_torch()
    points = quant_points(model)
    settings = [
        ("observers", observers, observer_switch),
        ("fake_quant", fake_quant, lambda m: FAKE_QUANT_SWITCH if is_fake_quant(m) else None),
        ("qparam_learning", qparam_learning, learning_switch),
    ]
    if all(value is None for _, value, _ in settings):
        raise TypeError("set_quant_state needs at least one of observers=, fake_quant=, qparam_learning=")
    for setting, value, switch_of in settings:
        if value is None:
            continue
        switched = [(point.module, switch_of(point.module)) for point in points]
        switched = [(module, switch) for module, switch in switched if switch]
        if not switched:
            raise ValueError(
                f"set_quant_state: no module of {type(model).__name__} has a {setting} switch "
                f"({len(points)} observers/fake-quants; plain observers always observe)"
            )
        for module, switch in switched:
            set_flag(module, switch, value)
            if setting == "qparam_learning":
                for _, parameter in learnable_qparams(module):
                    if parameter is not None:
                        parameter.requires_grad_(value)


_TABLE_ROWS_IN_MESSAGE = 30

_TOGGLES = {
    "observers": ("disable_observer", "enable_observer"),
    "fake_quant": ("disable_fake_quant", "enable_fake_quant"),
}


def _fix(setting: str, expected: bool, families: set[str]) -> str:
    """The toggle that puts every module of the model's families in the expected state."""
    ours = f"qlint.runtime.set_quant_state(model, {setting}={expected})"
    if setting == "qparam_learning":
        theirs = {
            "torch.ao": (
                "enable_param_learning() (learning on, static observation off) on every "
                "_LearnableFakeQuantize" if expected else
                "toggle_qparam_learning(False) (or enable_static_estimate()) on every "
                "_LearnableFakeQuantize"
            ),
            "torchao": "model.apply(torchao.quantization.pt2e."
            + ("enable_range_learning)" if expected else "disable_range_learning)"),
        }
        return f"{ours} (either family), or " + " and ".join(theirs[name] for name in sorted(families))
    toggle = _TOGGLES[setting][expected]
    libraries = {"torch.ao": "torch.ao.quantization", "torchao": "torchao.quantization.pt2e"}
    theirs = " and ".join(f"model.apply({libraries[name]}.{toggle})" for name in sorted(families))
    return f"{ours} (either family), or {theirs}"


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


def _described(row: QuantStateRow) -> str:
    return f"`{row.name}` ({row.kind}" + (f", {row.where}" if row.node else "") + ")"


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
    fake-quant modules, ``qparam_learning`` to learnable fake-quants (torch.ao's
    ``_LearnableFakeQuantize``, torchao's ``LearnableFakeQuantize``).  Works on eager, FX and
    PT2E models.  Asking for a setting to be on when no module has that switch fails.
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
    points = quant_points(model)
    state = QuantState(tuple(_row(point) for point in points))
    if not state.rows:
        raise AssertionError(
            f"assert_quant_state: expected {stated}; found no observer or fake-quant module in "
            f"{type(model).__name__}: it is not prepared (or already converted).\n"
            "  fix: run this check between prepare (prepare/prepare_qat, prepare_fx/"
            "prepare_qat_fx, prepare_pt2e/prepare_qat_pt2e) and convert."
        )
    families = {family(point.module) for point in points}
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
                    "prepare for QAT (prepare_qat with a QAT qconfig, prepare_qat_fx, "
                    "prepare_qat_pt2e with an is_qat quantization config): fake-quant modules."
                    if setting == "fake_quant"
                    else "use a learnable fake-quant (torch.ao's _LearnableFakeQuantize, "
                    "torchao's LearnableFakeQuantize) in the qconfig/quantization spec."
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
        listed = "\n".join(f"      {_described(row)}: {reason}" for row, reason in offenders)
        plain = sum(row.observer_switch is None for row, _ in offenders)
        fixes = [] if plain == len(offenders) else [_fix(setting, expected, families)]
        if plain:
            fixes.append(
                "plain observers from prepare() cannot be switched off: convert() the "
                "model, or prepare for QAT (fake-quant modules have switches)"
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
