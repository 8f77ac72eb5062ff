"""Running a copy of a model to see what a forward pass reaches (mechanism only)."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

from qlint.runtime._flow import quant_points
from qlint.runtime._modules import eval_copy
from qlint.runtime._torch import require_torch

if TYPE_CHECKING:
    from torch import nn


def points_reached(model: nn.Module, args: tuple[Any, ...]) -> set[str]:
    """Names of the quantization points (``quant_points``) an eval-mode copy of ``model``
    runs on ``args``; ``model`` itself is not run or changed."""
    torch = require_torch()
    duplicate = eval_copy(model)
    reached: set[str] = set()

    def record(name: str, module: Any, inputs: Any) -> None:
        reached.add(name)

    for point in quant_points(duplicate):
        point.module.register_forward_pre_hook(partial(record, point.name))
    with torch.no_grad():
        duplicate(*args)
    return reached
