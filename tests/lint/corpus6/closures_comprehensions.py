"""Forwards built from closures and comprehensions: nested helper functions, lambdas,
list / dict / set comprehensions producing tensors, and augmented assignments that mix
Python counters with tensors."""
from typing import Dict, List, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.ao.nn.quantized import FloatFunctional
from torch.ao.quantization import DeQuantStub, QuantStub


class PyramidPooling(nn.Module):
    """PSPNet pooling: pooled branches upsampled by a lambda and concatenated."""

    def __init__(self, ch: int, bins: Tuple[int, ...] = (1, 2, 4)):
        super().__init__()
        self.stages = nn.ModuleList(nn.Sequential(nn.AdaptiveAvgPool2d(b), nn.Conv2d(ch, ch // 4, 1), nn.ReLU()) for b in bins)
        self.bottleneck = nn.Conv2d(ch + ch // 4 * len(bins), ch, 1)

    def forward(self, x):
        h, w = x.shape[-2:]
        upsample = lambda t: F.interpolate(t, size=(h, w), mode="bilinear", align_corners=False)  # noqa: E731
        priors = [upsample(stage(x)) for stage in self.stages] + [x]
        return self.bottleneck(torch.cat(priors, dim=1))  # expect: QL302


class SharedHeadFPN(nn.Module):
    """RetinaNet-style: one classification head applied to every pyramid level."""

    def __init__(self, ch: int, num_classes: int, levels: int = 3):
        super().__init__()
        self.lateral = nn.ModuleList(nn.Conv2d(ch, ch, 1) for _ in range(levels))
        self.head = nn.Conv2d(ch, num_classes, 3, padding=1)
        self.level_scales = [2.0 ** -i for i in range(levels)]

    def forward(self, feats: List[torch.Tensor]) -> Tuple[Dict[str, torch.Tensor], List[int]]:
        laterals = [conv(f) for conv, f in zip(self.lateral, feats)]
        widths = {t.shape[-1] for t in laterals}
        logits = [self.head(t) for t in laterals]  # expect: QL401
        scaled = {f"p{i}": t * s for i, (t, s) in enumerate(zip(logits, self.level_scales))}  # expect: QL301
        return scaled, sorted(widths)


class GatedAttentionPool(nn.Module):
    """Attention written with nested helpers and a swish lambda."""

    def __init__(self, dim: int, heads: int = 2):
        super().__init__()
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(dim, dim)
        self.v = nn.Linear(dim, dim)
        self.heads = heads
        self.scale = (dim // heads) ** -0.5

    def forward(self, x):
        B, N, C = x.shape

        def split(t):
            return t.view(B, N, self.heads, C // self.heads).transpose(1, 2)

        def attend(q, k, v):
            scores = q @ k.transpose(-2, -1) * self.scale  # expect: QL301
            return F.softmax(scores, dim=-1) @ v  # expect: QL102, QL301

        swish = lambda t: t * torch.sigmoid(t)  # noqa: E731  # expect: QL301
        out = attend(split(self.q(x)), split(self.k(x)), split(self.v(x)))
        return swish(out.transpose(1, 2).reshape(B, N, C))


class DecayedStack(nn.Module):
    """Sums block outputs with geometrically decaying weights."""

    def __init__(self, ch: int, depth: int = 3, decay: float = 0.5):
        super().__init__()
        self.blocks = nn.ModuleList(nn.Sequential(nn.Conv2d(ch, ch, 3, padding=1), nn.ReLU()) for _ in range(depth))
        self.decay = decay
        self.seen_pixels = 0

    def forward(self, x):
        scale = 1.0
        pixels = 0
        outs = []
        for block in self.blocks:
            x = block(x)
            scale *= self.decay
            pixels += x.shape[-2] * x.shape[-1]
            outs += [x * scale]  # expect: QL301
        self.seen_pixels += pixels
        acc = outs[0]
        for o in outs[1:]:
            acc += o  # expect: QL203
        return acc


class QuantizableDecayedStack(nn.Module):
    """One FloatFunctional per scaling and per sum; statistics taken after the DeQuantStub."""

    def __init__(self, ch: int, depth: int = 3, decay: float = 0.5):
        super().__init__()
        self.quant = QuantStub()
        self.blocks = nn.ModuleList(nn.Sequential(nn.Conv2d(ch, ch, 3, padding=1), nn.ReLU()) for _ in range(depth))
        self.scalers = nn.ModuleList(FloatFunctional() for _ in range(depth))
        self.adders = nn.ModuleList(FloatFunctional() for _ in range(depth - 1))
        self.dequant = DeQuantStub()
        self.decay = decay
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        x = self.quant(x)
        scale = 1.0
        outs = []
        for block, scaler in zip(self.blocks, self.scalers):
            x = block(x)
            scale *= self.decay
            outs.append(scaler.mul_scalar(x, scale))
        acc = outs[0]
        for adder, o in zip(self.adders, outs[1:]):
            acc = adder.add(acc, o)
        out = self.dequant(acc)
        stats = {name: fn(out) for name, fn in (("mean", torch.mean), ("amax", torch.amax))}
        return out, stats


class TokenCounter(nn.Module):
    """Counts non-padding tokens with a closure while encoding."""

    def __init__(self, vocab: int, dim: int, pad_id: int = 0):
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.encoder = nn.Linear(dim, dim)
        self.pad_id = pad_id
        self.tokens_seen = 0

    def forward(self, ids):
        count = 0

        def tally(mask):
            nonlocal count
            count += int(mask.sum())
            return mask

        keep = tally(ids != self.pad_id)
        h = self.encoder(self.embed(ids))
        self.tokens_seen += count
        return h.masked_fill(~keep[..., None], 0.0), count
