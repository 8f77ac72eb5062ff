"""Swin V2 shifted-window attention (cosine attention, a continuous position bias
MLP indexed by buffers) and MLP-Mixer / ResMLP / gMLP token-mixing blocks."""
import math
from typing import Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor
from torch.ao.nn.quantized import FloatFunctional


def window_partition(x: Tensor, ws: int) -> Tensor:
    B, H, W, C = x.shape
    x = x.view(B, H // ws, ws, W // ws, ws, C)
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, ws * ws, C)


def window_reverse(windows: Tensor, ws: int, H: int, W: int) -> Tensor:
    x = windows.view(-1, H // ws, W // ws, ws, ws, windows.shape[-1])
    return x.permute(0, 1, 3, 2, 4, 5).reshape(-1, H, W, windows.shape[-1])


class WindowAttentionV2(nn.Module):
    def __init__(self, dim: int, window_size: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.logit_scale = nn.Parameter(torch.log(10 * torch.ones(num_heads, 1, 1)))
        self.cpb_mlp = nn.Sequential(nn.Linear(2, 16), nn.ReLU(inplace=True), nn.Linear(16, num_heads, bias=False))  # expect: QL201
        ws = window_size
        rel = torch.arange(-(ws - 1), ws, dtype=torch.float32)
        table = torch.stack(torch.meshgrid(rel, rel, indexing="ij")).permute(1, 2, 0)[None]
        table = torch.sign(table) * torch.log2(table.abs() / max(ws - 1, 1) * 8 + 1.0) / math.log2(8)
        self.register_buffer("relative_coords_table", table, persistent=False)
        coords = torch.stack(torch.meshgrid(torch.arange(ws), torch.arange(ws), indexing="ij")).flatten(1)
        relative = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (ws - 1)
        self.register_buffer("relative_position_index", relative[..., 0] * (2 * ws - 1) + relative[..., 1], persistent=False)
        self.qkv = nn.Linear(dim, dim * 3)
        self.softmax = nn.Softmax(dim=-1)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor, mask: Optional[Tensor] = None) -> Tensor:
        B_, N, C = x.shape
        q, k, v = self.qkv(x).reshape(B_, N, 3, self.num_heads, -1).permute(2, 0, 3, 1, 4).unbind(0)
        attn = F.normalize(q, dim=-1) @ F.normalize(k, dim=-1).transpose(-2, -1)  # expect: QL301, QL104
        logit_scale = torch.clamp(self.logit_scale, max=math.log(100.0)).exp()  # expect: QL504
        attn = attn * logit_scale  # expect: QL301
        bias_table = self.cpb_mlp(self.relative_coords_table).view(-1, self.num_heads)
        bias = bias_table[self.relative_position_index.view(-1)].view(N, N, -1).permute(2, 0, 1)
        bias = 16 * torch.sigmoid(bias)  # expect: QL301
        attn = attn + bias.unsqueeze(0)  # expect: QL301
        if mask is not None:
            nW = mask.shape[0]
            attn = attn.view(B_ // nW, nW, self.num_heads, N, N) + mask.unsqueeze(1).unsqueeze(0)  # expect: QL301
            attn = attn.view(-1, self.num_heads, N, N)
        return self.proj((self.softmax(attn) @ v).transpose(1, 2).reshape(B_, N, C))  # expect: QL301


class SwinBlock(nn.Module):
    def __init__(self, dim: int, resolution: Tuple[int, int], num_heads: int, window_size: int = 2, shift_size: int = 0):
        super().__init__()
        self.resolution = resolution
        self.window_size = window_size
        self.shift_size = shift_size
        self.attn = WindowAttentionV2(dim, window_size, num_heads)
        self.norm1 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))
        self.norm2 = nn.LayerNorm(dim)
        attn_mask = None
        if shift_size > 0:
            img_mask, cnt = torch.zeros((1, *resolution, 1)), 0
            spans = (slice(0, -window_size), slice(-window_size, -shift_size), slice(-shift_size, None))
            for hs in spans:
                for wsl in spans:
                    img_mask[:, hs, wsl, :] = cnt
                    cnt += 1
            mask_windows = window_partition(img_mask, window_size).squeeze(-1)
            attn_mask = mask_windows.unsqueeze(1) - mask_windows.unsqueeze(2)
            attn_mask = attn_mask.masked_fill(attn_mask != 0, -100.0)
        self.register_buffer("attn_mask", attn_mask, persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        H, W = self.resolution
        B, L, C = x.shape
        shifted = x.view(B, H, W, C)
        if self.shift_size > 0:
            shifts = (-self.shift_size, -self.shift_size)
            shifted = torch.roll(shifted, shifts=shifts, dims=(1, 2))  # expect: QL104
        attn = window_reverse(self.attn(window_partition(shifted, self.window_size), self.attn_mask), self.window_size, H, W)
        if self.shift_size > 0:
            attn = attn.roll((self.shift_size, self.shift_size), (1, 2))  # expect: QL104
        x = x + self.norm1(attn.reshape(B, L, C))  # expect: QL301
        return x + self.norm2(self.mlp(x))  # expect: QL301


class MixerBlock(nn.Module):
    def __init__(self, num_tokens: int, dim: int, token_hidden: int, channel_hidden: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.token_mlp = nn.Sequential(nn.Linear(num_tokens, token_hidden), nn.GELU(), nn.Linear(token_hidden, num_tokens))
        self.norm2 = nn.LayerNorm(dim)
        self.channel_mlp = nn.Sequential(nn.Linear(dim, channel_hidden), nn.GELU(), nn.Linear(channel_hidden, dim))

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.token_mlp(self.norm1(x).transpose(1, 2)).transpose(1, 2)  # expect: QL301
        return x + self.channel_mlp(self.norm2(x))  # expect: QL301


class QuantizableMixerBlock(MixerBlock):
    def __init__(self, num_tokens: int, dim: int, token_hidden: int, channel_hidden: int):
        super().__init__(num_tokens, dim, token_hidden, channel_hidden)
        self.token_add = FloatFunctional()
        self.channel_add = FloatFunctional()

    def forward(self, x: Tensor) -> Tensor:
        x = self.token_add.add(x, self.token_mlp(self.norm1(x).transpose(1, 2)).transpose(1, 2))
        return self.channel_add.add(x, self.channel_mlp(self.norm2(x)))


class Affine(nn.Module):
    """ResMLP's pre-norm: a per-channel scale and shift."""

    def __init__(self, dim: int):
        super().__init__()
        self.alpha = nn.Parameter(torch.ones(dim))
        self.beta = nn.Parameter(torch.zeros(dim))

    def forward(self, x: Tensor) -> Tensor:
        return torch.addcmul(self.beta, self.alpha, x)  # expect: QL504, QL104


class SpatialGatingUnit(nn.Module):
    def __init__(self, dim: int, seq_len: int):
        super().__init__()
        self.norm = nn.LayerNorm(dim // 2)
        self.proj = nn.Linear(seq_len, seq_len)
        nn.init.zeros_(self.proj.weight)
        nn.init.ones_(self.proj.bias)

    def forward(self, x: Tensor) -> Tensor:
        u, v = x.chunk(2, dim=-1)
        v = self.proj(self.norm(v).transpose(-1, -2))
        return u * v.transpose(-1, -2)  # expect: QL301
