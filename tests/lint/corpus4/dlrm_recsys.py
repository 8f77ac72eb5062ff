"""DLRM-style recommendation: a dense bottom MLP, EmbeddingBag tables looked up with offsets,
pairwise dot-product interaction over lower-triangle indices, per-task top MLPs in a ModuleDict,
a DCN-v2 cross network over a ParameterList, and a dense arm that runs in int8 while the
embedding tables get weight-only quantization."""
from dataclasses import dataclass
from typing import Dict, List, Sequence, Tuple

import torch
import torch.nn as nn
from torch import Tensor
from torch.ao.quantization import (
    DeQuantStub, QuantStub, convert, float_qparams_weight_only_qconfig, fuse_modules, get_default_qconfig, prepare,
)


@dataclass
class DLRMConfig:
    dense_in: int = 13
    bottom_mlp: Tuple[int, ...] = (32, 16)
    table_sizes: Tuple[int, ...] = (50, 40, 30)
    embedding_dim: int = 16
    top_mlp: Tuple[int, ...] = (32, 1)
    tasks: Tuple[str, ...] = ("ctr", "cvr")
    interaction_itself: bool = False
    loss_threshold: float = 0.0


def mlp_layers(sizes: Sequence[int], sigmoid_layer: int = -1) -> List[nn.Module]:
    layers: List[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        layers.append(nn.Sigmoid() if i == sigmoid_layer else nn.ReLU())
    return layers


class QuantizableDenseArch(nn.Module):
    """The bottom MLP in int8: each Linear+ReLU pair fuses; the stubs sit at both ends."""

    def __init__(self, sizes: Sequence[int]) -> None:
        super().__init__()
        self.quant = QuantStub()
        self.mlp = nn.Sequential(*mlp_layers(sizes))
        self.dequant = DeQuantStub()

    def forward(self, dense_x: Tensor) -> Tensor:
        return self.dequant(self.mlp(self.quant(dense_x)))

    def fuse_model(self) -> None:
        fuse_modules(self.mlp, [[str(i), str(i + 1)] for i in range(0, len(self.mlp), 2)], inplace=True)


class DLRM(nn.Module):
    def __init__(self, cfg: DLRMConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.bot_l = QuantizableDenseArch((cfg.dense_in, *cfg.bottom_mlp))
        self.emb_l = nn.ModuleList(nn.EmbeddingBag(n, cfg.embedding_dim, mode="sum") for n in cfg.table_sizes)
        num_features = len(cfg.table_sizes) + 1
        li, lj = torch.tril_indices(num_features, num_features, offset=0 if cfg.interaction_itself else -1)
        self.register_buffer("li", li, persistent=False)
        self.register_buffer("lj", lj, persistent=False)
        top_sizes = (cfg.embedding_dim + li.numel(), *cfg.top_mlp)
        self.top_l = nn.ModuleDict({task: nn.Sequential(*mlp_layers(top_sizes, len(cfg.top_mlp) - 1)) for task in cfg.tasks})
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for emb in self.emb_l:
            bound = (1.0 / emb.num_embeddings) ** 0.5
            nn.init.uniform_(emb.weight, -bound, bound)
        for layer in self.modules():
            if isinstance(layer, nn.Linear):
                fan_out, fan_in = layer.weight.shape
                nn.init.normal_(layer.weight, 0.0, (2.0 / (fan_in + fan_out)) ** 0.5)
                nn.init.normal_(layer.bias, 0.0, (1.0 / fan_out) ** 0.5)

    @property
    def num_interactions(self) -> int:
        return self.li.numel()

    def interact_features(self, x: Tensor, ly: List[Tensor]) -> Tensor:
        batch_size, d = x.shape
        T = torch.cat([x] + ly, dim=1).view((batch_size, -1, d))  # expect: QL302
        Z = torch.bmm(T, torch.transpose(T, 1, 2))  # expect: QL302
        Zflat = Z[:, self.li, self.lj]
        return torch.cat([x, Zflat], dim=1)  # expect: QL302

    def forward(self, dense_x: Tensor, lS_o: List[Tensor], lS_i: List[Tensor], task: str = "ctr") -> Tensor:
        x = self.bot_l(dense_x)
        ly = [emb(indices, offsets) for emb, indices, offsets in zip(self.emb_l, lS_i, lS_o)]
        p = self.top_l[task](self.interact_features(x, ly))
        if 0.0 < self.cfg.loss_threshold < 1.0:
            p = torch.clamp(p, min=self.cfg.loss_threshold, max=1.0 - self.cfg.loss_threshold)
        return p


class CrossNetV2(nn.Module):
    def __init__(self, in_features: int, num_layers: int = 2) -> None:
        super().__init__()
        self.kernels = nn.ParameterList(nn.Parameter(nn.init.xavier_normal_(torch.empty(in_features, in_features))) for _ in range(num_layers))
        self.bias = nn.ParameterList(nn.Parameter(torch.zeros(in_features, 1)) for _ in range(num_layers))

    def forward(self, x0: Tensor) -> Tensor:
        x0 = x0.unsqueeze(2)
        x_l = x0
        # The ParameterList attributes are read here; whether that is a raw parameter read is open.
        for kernel, bias in zip(self.kernels, self.bias):  # allow: QL504
            xl_w = torch.matmul(kernel, x_l) + bias  # expect: QL301, QL302
            x_l = x0 * xl_w + x_l  # expect: QL301
        return x_l.squeeze(2)


def quantize_dlrm(model: DLRM, calibration: List[Tuple[Tensor, List[Tensor], List[Tensor]]], backend: str = "x86") -> DLRM:
    model.eval()
    model.bot_l.fuse_model()
    model.bot_l.qconfig = get_default_qconfig(backend)
    for emb in model.emb_l:
        emb.qconfig = float_qparams_weight_only_qconfig
    prepare(model, inplace=True)
    with torch.no_grad():
        for dense_x, offsets, indices in calibration:
            model(dense_x, offsets, indices)
    return convert(model, inplace=True)


def table_stats(model: DLRM) -> Dict[str, int]:
    rows = sum(emb.num_embeddings for emb in model.emb_l)
    return {"tables": len(model.emb_l), "rows": rows, "interactions": model.num_interactions}
