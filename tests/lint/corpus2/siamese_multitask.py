"""Siamese, triplet, contrastive and multi-task models: one backbone applied to
several inputs, heads in a ModuleDict, and quantization-ready two-tower twins."""
import copy
import math
from typing import Dict, List, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor
from torch.ao.nn.quantized import FloatFunctional
from torch.ao.quantization import DeQuantStub, QuantStub, fuse_modules


class Encoder(nn.Module):
    def __init__(self, in_ch: int = 3, dim: int = 16):
        super().__init__()
        self.conv1 = nn.Conv2d(in_ch, 8, 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(8, dim, 3, stride=2, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(dim)
        self.relu2 = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)

    def forward(self, x: Tensor) -> Tensor:
        x = self.relu1(self.bn1(self.conv1(x)))
        x = self.relu2(self.bn2(self.conv2(x)))
        return torch.flatten(self.pool(x), 1)

    def fuse_model(self):
        fuse_modules(self, [["conv1", "bn1", "relu1"], ["conv2", "bn2", "relu2"]], inplace=True)


class SiameseNet(nn.Module):
    def __init__(self, dim: int = 16):
        super().__init__()
        self.backbone = Encoder(dim=dim)
        self.head = nn.Sequential(nn.Linear(4 * dim, dim), nn.ReLU(), nn.Linear(dim, 1))

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        fa = self.backbone(a)
        fb = self.backbone(b)  # expect: QL401
        pair = torch.cat([fa, fb, fa * fb, (fa - fb).abs()], dim=1)  # expect: QL104, QL301, QL302
        return torch.sigmoid(self.head(pair)).squeeze(1)


class BatchedSiamese(SiameseNet):
    """Both images go through the backbone as one batch."""

    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        fa, fb = self.backbone(torch.cat([a, b], dim=0)).chunk(2, dim=0)  # expect: QL302
        return F.pairwise_distance(fa, fb)  # expect: QL104


class ClampedSiamese(SiameseNet):
    def forward(self, a: Tensor, b: Tensor) -> Tensor:
        return super().forward(a, b).clamp(1e-4, 1 - 1e-4)


class TripletEmbedder(nn.Module):
    def __init__(self, dim: int = 16, margin: float = 0.2):
        super().__init__()
        self.embed = Encoder(dim=dim)
        self.margin = margin

    def forward(self, anchor: Tensor, positive: Tensor, negative: Optional[Tensor] = None) -> Tensor:
        inputs = [anchor, positive] if negative is None else [anchor, positive, negative]
        embs = [F.normalize(self.embed(x), dim=1) for x in inputs]  # expect: QL401, QL104
        d_ap = (embs[0] - embs[1]).pow(2).sum(1)  # expect: QL104, QL301
        if negative is None:
            return d_ap
        d_an = (embs[0] - embs[2]).pow(2).sum(1)  # expect: QL104, QL301
        return F.relu(d_ap - d_an + self.margin)  # expect: QL101, QL301


class ContrastiveDualEncoder(nn.Module):
    def __init__(self, dim: int = 16, embed: int = 8, vocab: int = 50):
        super().__init__()
        self.image_encoder = Encoder(dim=dim)
        self.text_encoder = nn.EmbeddingBag(vocab, dim)
        self.image_proj = nn.Linear(dim, embed, bias=False)
        self.text_proj = nn.Linear(dim, embed, bias=False)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(1 / 0.07)))

    def forward(self, images: Tensor, tokens: Tensor) -> Tensor:
        img = F.normalize(self.image_proj(self.image_encoder(images)), dim=-1)  # expect: QL104
        txt = F.normalize(self.text_proj(self.text_encoder(tokens)), dim=-1)  # expect: QL104
        logits = self.logit_scale.exp() * img @ txt.t()  # expect: QL301, QL504
        labels = torch.arange(logits.size(0))
        return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels)) / 2  # expect: QL301, QL303, QL104


class MultiTaskNet(nn.Module):
    def __init__(self, tasks: Optional[Dict[str, int]] = None, dim: int = 16, max_depth: float = 10.0):
        super().__init__()
        tasks = tasks or {"seg": 3, "depth": 1}
        self.max_depth = max_depth
        self.task_names = list(tasks)
        self.trunk = nn.Sequential(nn.Conv2d(3, dim, 3, padding=1), nn.BatchNorm2d(dim), nn.ReLU())
        self.heads = nn.ModuleDict({name: nn.Conv2d(dim, ch, 1) for name, ch in tasks.items()})
        self.log_vars = nn.Parameter(torch.zeros(len(tasks)))

    def forward(self, x: Tensor, tasks: Optional[List[str]] = None) -> Dict[str, Tensor]:
        feat = self.trunk(x)
        out = {name: self.heads[name](feat) for name in (tasks or self.task_names)}
        if "depth" in out:
            out["depth"] = torch.sigmoid(out["depth"]) * self.max_depth  # expect: QL301
        if "seg" in out and not self.training:
            labels = out["seg"].argmax(dim=1)  # expect: QL104
            out["seg_labels"] = labels
            out["class_fraction"] = F.one_hot(labels, out["seg"].shape[1]).sum((1, 2)) / labels[0].numel()
        return out

    def weighted_loss(self, losses: Dict[str, Tensor]) -> Tensor:
        total = 0.0
        for i, name in enumerate(self.task_names):
            total = total + torch.exp(-self.log_vars[i]) * losses[name] + self.log_vars[i]
        return total


class QuantizableTwoTower(nn.Module):
    """Each input has its own QuantStub and its own tower (a copy, not an alias)."""

    def __init__(self, dim: int = 16):
        super().__init__()
        self.quant_query = QuantStub()
        self.quant_item = QuantStub()
        self.query_tower = Encoder(dim=dim)
        self.item_tower = copy.deepcopy(self.query_tower)
        self.mul = FloatFunctional()
        self.score = nn.Linear(dim, 1)
        self.dequant = DeQuantStub()

    def forward(self, query: Tensor, item: Tensor) -> Tensor:
        q = self.query_tower(self.quant_query(query))
        i = self.item_tower(self.quant_item(item))
        return self.dequant(self.score(self.mul.mul(q, i))).squeeze(1)

    def fuse_model(self):
        for tower in (self.query_tower, self.item_tower):
            tower.fuse_model()


class SharedTowerRanker(QuantizableTwoTower):
    def __init__(self, dim: int = 16):
        super().__init__(dim)
        self.item_tower = self.query_tower  # expect: QL402
