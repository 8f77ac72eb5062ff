"""Inference heads written for TorchScript: `@torch.no_grad()` forwards, `@torch.jit.unused`
and `@torch.jit.ignore` helpers, static and class methods, properties, and quantization
imports that fall back to the legacy namespace on old torch releases."""
import math
from typing import Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

try:
    from torch.ao.quantization import DeQuantStub, QuantStub
except ImportError:  # torch < 1.10
    from torch.quantization import DeQuantStub, QuantStub  # expect: QL505


class TemperatureHead(nn.Module):
    """Classifier that returns calibrated probabilities and their normalized entropy."""

    def __init__(self, dim: int, num_classes: int, temperature: float = 1.5):
        super().__init__()
        self.fc = nn.Linear(dim, num_classes)
        self.log_temperature = nn.Parameter(torch.tensor(math.log(temperature)))
        self.num_classes = num_classes

    @property
    def max_entropy(self) -> float:
        return math.log(self.num_classes)

    @torch.jit.unused
    def _entropy(self, probs):
        ent = -(probs * torch.log(probs.clamp_min(1e-6))).sum(-1)  # expect: QL104, QL301
        return ent / self.max_entropy  # expect: QL303

    @torch.jit.ignore
    def expected_calibration_error(self, x, labels, bins: int = 10):
        """Evaluation helper; forward never calls it."""
        conf, pred = F.softmax(self.fc(x), dim=-1).max(-1)
        edges = torch.linspace(0, 1, bins + 1)
        err = torch.zeros(())
        for lo, hi in zip(edges[:-1], edges[1:]):
            in_bin = (conf > lo) & (conf <= hi)
            if in_bin.any():
                gap = conf[in_bin].mean() - (pred[in_bin] == labels[in_bin]).float().mean()
                err += in_bin.float().mean() * gap.abs()
        return err

    @torch.no_grad()
    def forward(self, x):
        logits = self.fc(x)
        logits = logits / self.log_temperature.exp()  # expect: QL303, QL504
        probs = F.softmax(logits, dim=-1)  # expect: QL102
        return probs, self._entropy(probs)


class BoxCoder(nn.Module):
    """Regresses anchor deltas and decodes them with static helpers."""

    def __init__(self, in_channels: int, num_anchors: int = 3, bbox_clip: float = math.log(1000.0 / 16)):
        super().__init__()
        self.reg = nn.Conv2d(in_channels, num_anchors * 4, 3, padding=1)
        self.num_anchors = num_anchors
        self.bbox_clip = bbox_clip
        self.register_buffer("weights", torch.tensor([10.0, 10.0, 5.0, 5.0]))

    @staticmethod
    def _grid_size(h: int, w: int, stride: int) -> Tuple[int, int]:
        return (h + stride - 1) // stride, (w + stride - 1) // stride

    @staticmethod
    def _decode(deltas, anchors, clip: float):
        dx, dy, dw, dh = deltas.unbind(-1)
        ctr_x = anchors[..., 0] + dx * anchors[..., 2]  # expect: QL301
        ctr_y = anchors[..., 1] + dy * anchors[..., 3]  # expect: QL301
        w = anchors[..., 2] * torch.exp(dw.clamp(max=clip))  # expect: QL104, QL301
        h = anchors[..., 3] * torch.exp(dh.clamp(max=clip))  # expect: QL104, QL301
        return torch.stack((ctr_x - 0.5 * w, ctr_y - 0.5 * h, ctr_x + 0.5 * w, ctr_y + 0.5 * h), dim=-1)  # expect: QL301, QL302

    def forward(self, feat, anchors):
        n, _, h, w = feat.shape
        gh, gw = self._grid_size(h, w, 1)
        deltas = self.reg(feat).permute(0, 2, 3, 1).reshape(n, gh * gw * self.num_anchors, 4)
        deltas = deltas / self.weights  # expect: QL303
        return self._decode(deltas, anchors, self.bbox_clip)


class QuantizableTemperatureHead(nn.Module):
    """Quantized trunk; temperature and softmax are applied in float after the DeQuantStub."""

    def __init__(self, dim: int, num_classes: int, temperature: float = 1.5):
        super().__init__()
        self.quant = QuantStub()
        self.fc = nn.Linear(dim, num_classes)
        self.act = nn.ReLU()
        self.out = nn.Linear(num_classes, num_classes)
        self.dequant = DeQuantStub()
        self.temperature = temperature

    @property
    def inv_temperature(self) -> float:
        return 1.0 / self.temperature

    @staticmethod
    def _log_normalize(logits, inv_t: float):
        return F.log_softmax(logits * inv_t, dim=-1)

    @torch.no_grad()
    def forward(self, x):
        logits = self.dequant(self.out(self.act(self.fc(self.quant(x)))))
        probs = F.softmax(logits * self.inv_temperature, dim=-1)
        return probs, self._log_normalize(logits, self.inv_temperature)


class ScriptableEmbedding(nn.Module):
    """Token embedding whose scale and padding helpers stay out of TorchScript."""

    def __init__(self, vocab: int, dim: int, padding_idx: int = 0):
        super().__init__()
        self.embed = nn.Embedding(vocab, dim, padding_idx=padding_idx)
        self.proj = nn.Linear(dim, dim)
        self.dim = dim

    @classmethod
    def from_pretrained(cls, weights: torch.Tensor, padding_idx: int = 0) -> "ScriptableEmbedding":
        module = cls(weights.shape[0], weights.shape[1], padding_idx)
        module.embed.weight.data.copy_(weights)
        return module

    @staticmethod
    def _round_up(n: int, multiple: int) -> int:
        return (n + multiple - 1) // multiple * multiple

    @property
    def embed_scale(self) -> float:
        return self.dim ** 0.5

    @torch.jit.unused
    def _pad_to(self, h, target: int):
        return F.pad(h, (0, 0, 0, target - h.size(1)))

    def forward(self, tokens):
        h = self.embed(tokens) * self.embed_scale  # expect: QL301
        if not torch.jit.is_scripting():
            h = self._pad_to(h, self._round_up(h.size(1), 8))
        return self.proj(h)
