"""``assert_qparams_in_optimizer``: the optimizer trains the model as it is now.

The classic failures: an optimizer built before ``prepare_qat`` (eager), ``prepare_qat_fx``
or ``prepare_qat_pt2e`` never sees the ``scale``/``zero_point`` parameters of learnable
fake-quants (torch.ao's ``_LearnableFakeQuantize`` creates them in prepare, torchao's
``LearnableFakeQuantize`` only on its first forward), and ``prepare_qat(inplace=False)``
copies every module, so an optimizer built on the float model updates stale weights the
QAT model no longer uses.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from qlint.runtime._machinery import learnable_qparams, learning_switch
from qlint.runtime._torch import require_torch

if TYPE_CHECKING:
    import torch
    from torch import nn


def _shape(tensor: torch.Tensor) -> str:
    return f"shape {tuple(tensor.shape)} {str(tensor.dtype).removeprefix('torch.')}"


def assert_qparams_in_optimizer(model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
    """Fail unless every trainable parameter of ``model`` is in ``optimizer``, by identity.

    Trainable means ``requires_grad``; the ``scale``/``zero_point`` of every learnable
    fake-quant (torch.ao's ``_LearnableFakeQuantize``, torchao's ``LearnableFakeQuantize``)
    count as trainable whatever their current ``requires_grad`` (``toggle_qparam_learning``
    flips it later); a torchao learnable fake-quant that has not created them yet (no
    forward since prepare) fails.  Works on eager, FX and PT2E models.  Also fails on
    parameters the optimizer holds that the model no longer has, and names the model
    parameter each such stale tensor copies when shape and values match.
    """
    __tracebackhide__ = True
    torch = require_torch()

    held: dict[int, tuple[int, int, torch.Tensor]] = {}
    for group_index, group in enumerate(optimizer.param_groups):
        for position, parameter in enumerate(group["params"]):
            held.setdefault(id(parameter), (group_index, position, parameter))

    owned: dict[int, tuple[str, torch.Tensor]] = {}
    expected: list[tuple[str, torch.Tensor, bool]] = []
    uncreated: list[str] = []
    for module_name, module in model.named_modules():
        learnable = learning_switch(module) is not None
        if learnable and any(value is None for _, value in learnable_qparams(module)):
            uncreated.append(f"      `{module_name}` ({type(module).__name__})")
        for parameter_name, parameter in module.named_parameters(recurse=False):
            if id(parameter) in owned:
                continue
            name = f"{module_name}.{parameter_name}" if module_name else parameter_name
            owned[id(parameter)] = (name, parameter)
            if parameter.requires_grad or learnable:
                expected.append((name, parameter, learnable))

    missing = [entry for entry in expected if id(entry[1]) not in held]
    stale = [entry for key, entry in held.items() if key not in owned]
    if not missing and not stale and not uncreated:
        return

    problems = []
    if uncreated:
        problems.append(
            f"{len(uncreated)} learnable fake-quant(s) without scale/zero_point yet (torchao's "
            "LearnableFakeQuantize creates them as parameters on its first forward, so an "
            "optimizer built before that never trains them):\n" + "\n".join(uncreated)
        )
    if missing:
        lines = "\n".join(
            f"      `{name}` ({_shape(parameter)}"
            + (", learnable fake-quant qparam)" if learnable else ")")
            for name, parameter, learnable in missing
        )
        problems.append(f"{len(missing)} missing from the optimizer:\n{lines}")
    if stale:
        lines = []
        for group_index, position, parameter in stale:
            copies = [
                name
                for name, candidate in owned.values()
                if candidate.shape == parameter.shape
                and candidate.dtype == parameter.dtype
                and torch.equal(candidate.detach(), parameter.detach())
            ]
            origin = f", same values as `{copies[0]}` (a stale copy)" if copies else ""
            lines.append(
                f"      param_groups[{group_index}]['params'][{position}] "
                f"({_shape(parameter)}{origin})"
            )
        problems.append(
            f"{len(stale)} held by the optimizer but not in the model (stale):\n"
            + "\n".join(lines)
        )
    listed = "\n".join(f"  - {problem}" for problem in problems)
    raise AssertionError(
        f"assert_qparams_in_optimizer: expected the {len(expected)} trainable parameters of "
        f"{type(model).__name__} (learnable scale/zero_point included) in the optimizer "
        f"({type(optimizer).__name__}: {len(optimizer.param_groups)} param group(s), "
        f"{len(held)} tensors); found:\n{listed}\n"
        "  fix: build the optimizer from the prepared model after prepare_qat()/"
        "prepare_qat_fx()/prepare_qat_pt2e() (for torchao's LearnableFakeQuantize: after one "
        "forward), e.g. torch.optim.SGD(qat_model.parameters(), lr=...): prepare_qat creates "
        "the _LearnableFakeQuantize scale/zero_point, and with inplace=False copies every module."
    )
