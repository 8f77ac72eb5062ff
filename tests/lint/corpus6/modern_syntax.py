"""Python 3.10+ forwards: match statements on configuration and shapes, walrus assignments,
type aliases in annotations, chained comparisons, and autocast / no_grad blocks."""
from typing import Tuple, TypeAlias

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.ao.quantization import DeQuantStub, QuantStub

Tensor: TypeAlias = torch.Tensor
Gain: TypeAlias = float
Size2 = Tuple[int, int]


class NormAct(nn.Module):
    def __init__(self, ch: int, norm: str = "bn", groups: int = 4):
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, padding=1)
        match norm:
            case "bn":
                self.norm = nn.BatchNorm2d(ch)
            case "gn":
                self.norm = nn.GroupNorm(groups, ch)
            case _:
                self.norm = nn.Identity()
        self.act = nn.ReLU()
        self.groups = groups

    def forward(self, x: Tensor, mode: str = "plain", gain: Gain = 1.0) -> Tensor:
        y = self.conv(x)
        match mode:
            case "plain":
                return self.act(self.norm(y))
            case "residual":
                return x + self.act(self.norm(y))  # expect: QL301
            case "functional_gn":
                return F.group_norm(y, self.groups)  # expect: QL102
            case "scaled":
                factor = gain * 2.0 if 0.0 < gain < 1.0 else gain
                return self.act(self.norm(y)) * factor  # expect: QL301
            case _:
                raise ValueError(f"unknown mode {mode!r}")


class TokenProjector(nn.Module):
    """Accepts (B, C, H, W) maps or (B, N, C) tokens and projects the tokens."""

    def __init__(self, dim: int):
        super().__init__()
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tuple[Tensor, Size2]:
        match x.shape:
            case (b, c, h, w):
                x = x.flatten(2).transpose(1, 2)
                grid = (h, w)
            case (b, n, c):
                grid = (1, n)
            case _:
                raise ValueError(f"expected 3 or 4 dims, got {x.dim()}")
        scale = c ** -0.5
        tokens = grid[0] * grid[1]
        assert x.size(1) == tokens and b == x.size(0)
        return self.proj(x) * scale, grid  # expect: QL301


class EarlyExit(nn.Module):
    """Stops after the first stage whose least confident sample clears the threshold."""

    def __init__(self, ch: int, num_classes: int, stages: int = 3, threshold: float = 0.9):
        super().__init__()
        self.stages = nn.ModuleList(nn.Sequential(nn.Conv2d(ch, ch, 3, padding=1), nn.ReLU()) for _ in range(stages))
        self.exits = nn.ModuleList(nn.Linear(ch, num_classes) for _ in range(stages))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.threshold = threshold

    def forward(self, x: Tensor) -> Tuple[Tensor, Tensor]:
        if (batch := x.size(0)) == 0:
            raise ValueError("empty batch")
        for stage, exit_head in zip(self.stages, self.exits):
            x = stage(x)
            logits = exit_head(self.pool(x).flatten(1))
            probs = F.softmax(logits, dim=-1)  # expect: QL102
            if not self.training and (conf := probs.max(-1).values).min() > self.threshold:
                return logits, conf
        return logits, probs.max(-1).values.reshape(batch)


class RangeGate(nn.Module):
    """Zeroes responses outside [lo, hi] and clips the rest."""

    def __init__(self, ch: int, lo: float = -1.0, hi: float = 1.0, drop: float = 0.1):
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, padding=1)
        self.dropout = nn.Dropout(drop)
        self.lo, self.hi, self.drop = lo, hi, drop

    def forward(self, x: Tensor) -> Tuple[Tensor, Tensor]:
        y = self.conv(x)
        if 1 <= y.dim() - 2 <= 3 and 0.0 < self.drop < 1.0 and self.training:
            y = self.dropout(y)
        inside = (self.lo <= y) & (y <= self.hi)
        y = y.masked_fill(~inside, 0.0)
        kept = inside.float().mean()
        return torch.where(inside, y, y.clamp(self.lo, self.hi)), kept  # expect: QL104


class EmaNormalizer(nn.Module):
    """Divides by a running max magnitude tracked without autograd."""

    def __init__(self, ch: int, momentum: float = 0.1):
        super().__init__()
        self.proj = nn.Conv2d(ch, ch, 1)
        self.register_buffer("running_amax", torch.ones(()))
        self.momentum = momentum
        self.updates = 0

    def forward(self, x: Tensor) -> Tensor:
        with torch.autocast(device_type="cpu", enabled=False):
            y = self.proj(x)
        if self.training:
            with torch.no_grad():
                batch_amax = y.detach().abs().amax()  # expect: QL104
                self.running_amax = (1 - self.momentum) * self.running_amax + self.momentum * batch_amax  # expect: QL301
                self.updates += 1
        return y / self.running_amax  # expect: QL303


class QuantizableEmaNormalizer(nn.Module):
    """Same normalizer with the statistics taken in float after a DeQuantStub."""

    def __init__(self, ch: int, momentum: float = 0.1):
        super().__init__()
        self.quant = QuantStub()
        self.proj = nn.Conv2d(ch, ch, 1)
        self.dequant = DeQuantStub()
        self.register_buffer("running_amax", torch.ones(()))
        self.momentum = momentum

    def forward(self, x: Tensor) -> Tensor:
        with torch.autocast(device_type="cpu", enabled=False):
            y = self.dequant(self.proj(self.quant(x)))
        if self.training and (m := self.momentum) > 0:
            with torch.no_grad():
                self.running_amax = (1 - m) * self.running_amax + m * y.detach().abs().amax()
        return y / self.running_amax
