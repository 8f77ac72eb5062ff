"""Lazy access to torch and torchao, so that ``qlint`` imports without them, and calls
into torch's quantization APIs that stay quiet in the user's test run."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType

_MISSING_TORCH = "torch-qlint's runtime checks need torch: pip install 'torch-qlint[torch]'"
_MISSING_TORCHAO = (
    "checking a PT2E model needs torchao (convert_pt2e lives there): "
    "pip install 'torch-qlint[torchao]'"
)


def require_torch() -> ModuleType:
    """Import and return ``torch``; raise ModuleNotFoundError with an install hint if absent."""
    try:
        import torch
    except ModuleNotFoundError as error:
        if error.name != "torch":
            raise
        raise ModuleNotFoundError(_MISSING_TORCH, name="torch") from error
    return torch


def require_torchao_pt2e() -> ModuleType:
    """Import and return ``torchao.quantization.pt2e``, with an install hint if absent."""
    require_torch()
    try:
        with quiet_internals():
            import torchao.quantization.pt2e as pt2e
            import torchao.quantization.pt2e.quantize_pt2e  # noqa: F401
    except ModuleNotFoundError as error:
        if not (error.name or "").startswith("torchao"):
            raise
        raise ModuleNotFoundError(_MISSING_TORCHAO, name="torchao") from error
    return pt2e


@contextmanager
def quiet_internals() -> Iterator[None]:
    """Silence the deprecation warnings torch emits for qlint's own calls.

    torch 2.13 marks every ``torch.ao.quantization`` prepare/convert call deprecated (the
    warning points at the caller's frame); a check's internal ``convert`` of a copy is not
    the user's call and must not fail a run under ``-W error``.  The user's own calls,
    outside this block, still warn as torch intends.  torch's UserWarnings about the copy
    (an observer that never ran) are silenced too: the checks report them in their own
    words.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", FutureWarning)
        warnings.simplefilter("ignore", UserWarning)
        yield
