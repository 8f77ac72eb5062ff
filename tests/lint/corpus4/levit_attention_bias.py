"""timm-style LeViT: Conv/Linear + BatchNorm units, attention biases gathered through a buffer of offsets
and cached in eval mode, Hardswish MLPs, a distillation head and a quantization-ready stem."""
from typing import Dict, Type

import torch
import torch.nn as nn
from torch import Tensor
from torch.ao.quantization import DeQuantStub, QuantStub, fuse_modules


class ConvNorm(nn.Sequential):
    def __init__(self, in_chs: int, out_chs: int, kernel_size: int = 1, stride: int = 1, padding: int = 0, bn_weight_init: float = 1.0) -> None:
        super().__init__()
        self.add_module("c", nn.Conv2d(in_chs, out_chs, kernel_size, stride, padding, bias=False))
        self.add_module("bn", nn.BatchNorm2d(out_chs))
        nn.init.constant_(self.bn.weight, bn_weight_init)


class LinearNorm(nn.Module):
    def __init__(self, in_features: int, out_features: int, bn_weight_init: float = 1.0) -> None:
        super().__init__()
        self.linear = nn.Linear(in_features, out_features, bias=False)
        self.bn = nn.BatchNorm1d(out_features)
        nn.init.constant_(self.bn.weight, bn_weight_init)

    def forward(self, x: Tensor) -> Tensor:
        x = self.linear(x)
        return self.bn(x.flatten(0, 1)).reshape_as(x)


class Attention(nn.Module):
    attention_bias_cache: Dict[str, Tensor]

    def __init__(self, dim: int, key_dim: int, num_heads: int = 2, attn_ratio: float = 2.0, resolution: int = 4, act_layer: Type[nn.Module] = nn.Hardswish) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.scale = key_dim ** -0.5
        self.key_dim = key_dim
        self.val_dim = int(attn_ratio * key_dim)
        self.qkv = LinearNorm(dim, num_heads * (2 * key_dim + self.val_dim))
        self.proj = nn.Sequential(act_layer(), LinearNorm(self.val_dim * num_heads, dim, bn_weight_init=0.0))
        self.softmax = nn.Softmax(dim=-1)
        pos = torch.stack(torch.meshgrid(torch.arange(resolution), torch.arange(resolution), indexing="ij")).flatten(1)
        rel_pos = (pos[..., :, None] - pos[..., None, :]).abs()
        self.attention_biases = nn.Parameter(torch.zeros(num_heads, resolution ** 2))
        self.register_buffer("attention_bias_idxs", rel_pos[0] * resolution + rel_pos[1], persistent=False)
        self.attention_bias_cache = {}

    @torch.no_grad()
    def train(self, mode: bool = True) -> "Attention":
        super().train(mode)
        if mode and self.attention_bias_cache:
            self.attention_bias_cache = {}
        return self

    def get_attention_biases(self, device: torch.device) -> Tensor:
        if torch.jit.is_tracing() or self.training:
            return self.attention_biases[:, self.attention_bias_idxs]  # expect: QL504
        device_key = str(device)
        if device_key not in self.attention_bias_cache:
            self.attention_bias_cache[device_key] = self.attention_biases[:, self.attention_bias_idxs]  # expect: QL504
        return self.attention_bias_cache[device_key]

    def forward(self, x: Tensor) -> Tensor:
        B, N, C = x.shape
        q, k, v = self.qkv(x).view(B, N, self.num_heads, -1).split([self.key_dim, self.key_dim, self.val_dim], dim=3)
        q, k, v = q.permute(0, 2, 1, 3), k.permute(0, 2, 3, 1), v.permute(0, 2, 1, 3)
        attn = q @ k * self.scale + self.get_attention_biases(x.device)  # expect: QL301
        attn = self.softmax(attn)
        x = (attn @ v).transpose(1, 2).reshape(B, N, self.val_dim * self.num_heads)  # expect: QL301
        return self.proj(x)


class LevitMlp(nn.Module):
    def __init__(self, in_features: int, hidden_features: int, act_layer: Type[nn.Module] = nn.Hardswish) -> None:
        super().__init__()
        self.ln1 = LinearNorm(in_features, hidden_features)
        self.act = act_layer()
        self.ln2 = LinearNorm(hidden_features, in_features, bn_weight_init=0.0)

    def forward(self, x: Tensor) -> Tensor:
        return self.ln2(self.act(self.ln1(x)))


class LevitResidual(nn.Module):
    def __init__(self, m: nn.Module, drop: float = 0.0) -> None:
        super().__init__()
        self.m = m
        self.drop = drop

    def forward(self, x: Tensor) -> Tensor:
        if self.training and self.drop > 0:
            keep = torch.rand(x.size(0), 1, 1, device=x.device).ge_(self.drop).div(1 - self.drop).detach()
            return x + self.m(x) * keep  # expect: QL301
        return x + self.m(x)  # expect: QL301


class TinyLevit(nn.Module):
    def __init__(self, img_size: int = 16, in_chans: int = 3, num_classes: int = 10, embed_dim: int = 16, key_dim: int = 8, depth: int = 2, act_layer: str = "Hardswish", drop_path_rate: float = 0.0, distillation: bool = True) -> None:
        super().__init__()
        act = getattr(nn, act_layer)
        self.resolution = img_size // 4
        self.stem = nn.Sequential(ConvNorm(in_chans, embed_dim // 2, 3, 2, 1), act(), ConvNorm(embed_dim // 2, embed_dim, 3, 2, 1))
        blocks = []
        for _ in range(depth):
            blocks.append(LevitResidual(Attention(embed_dim, key_dim, resolution=self.resolution, act_layer=act), drop_path_rate))
            blocks.append(LevitResidual(LevitMlp(embed_dim, 2 * embed_dim, act_layer=act), drop_path_rate))
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Sequential(nn.BatchNorm1d(embed_dim), nn.Linear(embed_dim, num_classes)) if num_classes > 0 else nn.Identity()
        self.head_dist = nn.Sequential(nn.BatchNorm1d(embed_dim), nn.Linear(embed_dim, num_classes)) if distillation and num_classes > 0 else None
        self.distilled_training = False

    @property
    def num_tokens(self) -> int:
        return self.resolution * self.resolution

    def forward_features(self, x: Tensor) -> Tensor:
        x = self.stem(x).flatten(2).transpose(1, 2)
        return self.blocks(x)

    def forward_head(self, x: Tensor, pre_logits: bool = False):
        x = x.mean(dim=1)
        if pre_logits or self.head_dist is None:
            return x if pre_logits else self.head(x)
        x, x_dist = self.head(x), self.head_dist(x)
        if self.distilled_training and self.training and not torch.jit.is_scripting():
            return x, x_dist
        return (x + x_dist) / 2  # expect: QL301, QL303

    def forward(self, x: Tensor):
        return self.forward_head(self.forward_features(x))


class QuantizableLevitStem(nn.Module):
    """The convolutional stem alone runs in int8: each Conv+BN pair fuses, Hardswish is a module."""

    def __init__(self, in_chans: int = 3, embed_dim: int = 16) -> None:
        super().__init__()
        self.quant = QuantStub()
        self.conv1 = ConvNorm(in_chans, embed_dim // 2, 3, 2, 1)
        self.act1 = nn.Hardswish()
        self.conv2 = ConvNorm(embed_dim // 2, embed_dim, 3, 2, 1)
        self.dequant = DeQuantStub()

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv2(self.act1(self.conv1(self.quant(x))))
        return self.dequant(x).flatten(2).transpose(1, 2)

    def fuse_model(self) -> None:
        fuse_modules(self, [["conv1.c", "conv1.bn"], ["conv2.c", "conv2.bn"]], inplace=True)
