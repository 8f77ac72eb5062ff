"""MobileViT and EdgeNeXt hybrids: local convolutions, feature maps unfolded into
patches with reshapes and transposes, a transformer over patches, folding back,
MobileViTv2 separable linear attention over F.unfold patches, and EdgeNeXt's
split depthwise convolutions with cross-covariance attention."""
import math
from typing import Dict, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor


class TransformerLayer(nn.Module):
    def __init__(self, dim: int, heads: int = 2, mlp_ratio: int = 2):
        super().__init__()
        self.norm1, self.norm2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = nn.MultiheadAttention(dim, heads, batch_first=True)
        self.mlp = nn.Sequential(nn.Linear(dim, dim * mlp_ratio), nn.Hardswish(inplace=True), nn.Linear(dim * mlp_ratio, dim))  # expect: QL201

    def forward(self, x: Tensor) -> Tensor:
        h = self.norm1(x)
        x = x + self.attn(h, h, h, need_weights=False)[0]  # expect: QL301
        return x + self.mlp(self.norm2(x))  # expect: QL301


class MobileViTBlock(nn.Module):
    def __init__(self, in_ch: int = 8, dim: int = 16, depth: int = 2, patch_size: Tuple[int, int] = (2, 2)):
        super().__init__()
        self.patch_h, self.patch_w = patch_size
        self.patch_area = self.patch_h * self.patch_w
        self.local_rep = nn.Sequential(nn.Conv2d(in_ch, in_ch, 3, padding=1, bias=False), nn.BatchNorm2d(in_ch), nn.SiLU(), nn.Conv2d(in_ch, dim, 1, bias=False))
        self.global_rep = nn.Sequential(*[TransformerLayer(dim) for _ in range(depth)], nn.LayerNorm(dim))
        self.conv_proj = nn.Sequential(nn.Conv2d(dim, in_ch, 1, bias=False), nn.BatchNorm2d(in_ch), nn.SiLU())
        self.fusion = nn.Sequential(nn.Conv2d(2 * in_ch, in_ch, 3, padding=1, bias=False), nn.BatchNorm2d(in_ch), nn.SiLU())

    def unfolding(self, feature_map: Tensor) -> Tuple[Tensor, Dict]:
        batch_size, in_channels, orig_h, orig_w = feature_map.shape
        new_h = int(math.ceil(orig_h / self.patch_h) * self.patch_h)
        new_w = int(math.ceil(orig_w / self.patch_w) * self.patch_w)
        interpolate = new_w != orig_w or new_h != orig_h
        if interpolate:
            feature_map = F.interpolate(feature_map, size=(new_h, new_w), mode="bilinear", align_corners=False)
        num_patch_w, num_patch_h = new_w // self.patch_w, new_h // self.patch_h
        num_patches = num_patch_h * num_patch_w
        patches = feature_map.reshape(batch_size * in_channels * num_patch_h, self.patch_h, num_patch_w, self.patch_w).transpose(1, 2)
        patches = patches.reshape(batch_size, in_channels, num_patches, self.patch_area).transpose(1, 3)
        info = {"orig_size": (orig_h, orig_w), "batch_size": batch_size, "interpolate": interpolate, "num_patches_w": num_patch_w, "num_patches_h": num_patch_h}
        return patches.reshape(batch_size * self.patch_area, num_patches, -1), info

    def folding(self, patches: Tensor, info: Dict) -> Tensor:
        assert patches.dim() == 3, f"Tensor should be of shape BPxNxC. Got: {patches.shape}"
        patches = patches.contiguous().view(info["batch_size"], self.patch_area, info["num_patches_h"] * info["num_patches_w"], -1)
        batch_size, _, _, channels = patches.size()
        patches = patches.transpose(1, 3).reshape(batch_size * channels * info["num_patches_h"], info["num_patches_w"], self.patch_h, self.patch_w)
        feature_map = patches.transpose(1, 2).reshape(batch_size, channels, info["num_patches_h"] * self.patch_h, info["num_patches_w"] * self.patch_w)
        if info["interpolate"]:
            feature_map = F.interpolate(feature_map, size=info["orig_size"], mode="bilinear", align_corners=False)
        return feature_map

    def forward(self, x: Tensor) -> Tensor:
        res = x
        patches, info = self.unfolding(self.local_rep(x))
        fm = self.conv_proj(self.folding(self.global_rep(patches), info))
        return self.fusion(torch.cat((res, fm), dim=1))  # expect: QL302


class LinearSelfAttention(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.dim = dim
        self.qkv_proj = nn.Conv2d(dim, 1 + 2 * dim, 1)
        self.out_proj = nn.Conv2d(dim, dim, 1)

    def forward(self, x: Tensor) -> Tensor:
        query, key, value = torch.split(self.qkv_proj(x), [1, self.dim, self.dim], dim=1)
        context_scores = F.softmax(query, dim=-1)  # expect: QL102
        context_vector = (key * context_scores).sum(dim=-1, keepdim=True)  # expect: QL104, QL301
        return self.out_proj(F.relu(value) * context_vector.expand_as(value))  # expect: QL101, QL301


class MobileViTV2Block(nn.Module):
    def __init__(self, ch: int = 8, dim: int = 16, patch: int = 2):
        super().__init__()
        self.patch = patch
        self.local_rep = nn.Sequential(nn.Conv2d(ch, ch, 3, padding=1, groups=ch, bias=False), nn.BatchNorm2d(ch), nn.SiLU(), nn.Conv2d(ch, dim, 1, bias=False))
        self.norm = nn.GroupNorm(1, dim)
        self.attn = LinearSelfAttention(dim)
        self.conv_proj = nn.Sequential(nn.Conv2d(dim, ch, 1, bias=False), nn.BatchNorm2d(ch))

    def forward(self, x: Tensor) -> Tensor:
        b, _, h, w = x.shape
        fm = self.local_rep(x)
        c, area = fm.shape[1], self.patch * self.patch
        patches = F.unfold(fm, kernel_size=self.patch, stride=self.patch).reshape(b, c, area, -1)  # expect: QL102
        patches = patches + self.attn(self.norm(patches))  # expect: QL301
        fm = F.fold(patches.reshape(b, c * area, -1), output_size=(h, w), kernel_size=self.patch, stride=self.patch)  # expect: QL102
        return self.conv_proj(fm)


class XCA(nn.Module):
    """Cross-covariance attention: heads attend over channels, scaled by a learned temperature."""

    def __init__(self, dim: int, num_heads: int = 2):
        super().__init__()
        self.num_heads = num_heads
        self.temperature = nn.Parameter(torch.ones(num_heads, 1, 1))
        self.qkv = nn.Linear(dim, dim * 3)
        self.softmax = nn.Softmax(dim=-1)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        B, N, C = x.shape
        q, k, v = self.qkv(x).reshape(B, N, 3, self.num_heads, C // self.num_heads).permute(2, 0, 3, 1, 4).unbind(0)
        q = F.normalize(q.transpose(-2, -1), dim=-1)  # expect: QL104
        k = F.normalize(k.transpose(-2, -1), dim=-1)  # expect: QL104
        attn = self.softmax((q @ k.transpose(-2, -1)) * self.temperature)  # expect: QL301, QL504
        return self.proj((attn @ v.transpose(-2, -1)).permute(0, 3, 1, 2).reshape(B, N, C))  # expect: QL301


class SDTAEncoder(nn.Module):
    def __init__(self, dim: int = 16, scales: int = 2, layer_scale_init: float = 1e-6):
        super().__init__()
        self.width = max(int(math.ceil(dim / scales)), int(math.floor(dim // scales)))
        self.convs = nn.ModuleList(nn.Conv2d(self.width, self.width, 3, padding=1, groups=self.width) for _ in range(scales - 1))
        self.norm_xca = nn.LayerNorm(dim)
        self.gamma_xca = nn.Parameter(layer_scale_init * torch.ones(dim))
        self.xca = XCA(dim)
        self.norm = nn.LayerNorm(dim)
        self.pwconv1, self.act, self.pwconv2 = nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim)

    def forward(self, x: Tensor) -> Tensor:
        inp = x
        spx = list(x.split(self.width, 1))
        outs = []
        for i, conv in enumerate(self.convs):
            sp = conv(spx[i] if i == 0 else outs[-1] + spx[i])  # expect: QL301
            outs.append(sp)
        x = torch.cat(outs + spx[len(self.convs):], 1)  # expect: QL302
        B, C, H, W = x.shape
        x = x.reshape(B, C, H * W).permute(0, 2, 1)
        x = x + self.gamma_xca * self.xca(self.norm_xca(x))  # expect: QL301, QL504
        x = self.pwconv2(self.act(self.pwconv1(self.norm(x))))
        return inp + x.reshape(B, H, W, C).permute(0, 3, 1, 2)  # expect: QL301
