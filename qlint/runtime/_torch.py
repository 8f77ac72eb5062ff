"""Lazy access to torch, so that ``qlint`` imports without it."""

from __future__ import annotations

from types import ModuleType

_MISSING_TORCH = "torch-qlint's runtime checks need torch: pip install 'torch-qlint[torch]'"


def require_torch() -> ModuleType:
    """Import and return ``torch``; raise ModuleNotFoundError with an install hint if absent."""
    try:
        import torch
    except ModuleNotFoundError as error:
        if error.name != "torch":
            raise
        raise ModuleNotFoundError(_MISSING_TORCH, name="torch") from error
    return torch
