"""Generators: a diffusion denoiser with sinusoidal time embeddings and FiLM
residual blocks, and a StyleGAN-like generator with a mapping network, AdaIN,
noise injection and weight-demodulated convolutions."""
import math
from typing import List, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor


class SinusoidalTimeEmbedding(nn.Module):
    def __init__(self, dim: int, max_period: float = 10000.0):
        super().__init__()
        self.dim = dim
        self.max_period = max_period

    def forward(self, t: Tensor) -> Tensor:
        half = self.dim // 2
        freqs = torch.exp(-math.log(self.max_period) * torch.arange(half, dtype=torch.float32) / half)
        args = t[:, None].float() * freqs[None].to(t.device)  # expect: QL301, QL104
        emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)  # expect: QL302, QL104
        return F.pad(emb, (0, 1)) if self.dim % 2 else emb


class FiLMResBlock(nn.Module):
    def __init__(self, ch: int, emb_dim: int, groups: int = 4, act: Optional[nn.Module] = None):
        super().__init__()
        act = act if act is not None else nn.SiLU()
        self.norm1 = nn.GroupNorm(groups, ch)
        self.act1 = act
        self.conv1 = nn.Conv2d(ch, ch, 3, padding=1)
        self.emb_proj = nn.Sequential(nn.SiLU(), nn.Linear(emb_dim, 2 * ch))
        self.norm2 = nn.GroupNorm(groups, ch)
        self.act2 = act  # expect: QL402
        self.conv2 = nn.Conv2d(ch, ch, 3, padding=1)

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        h = self.conv1(self.act1(self.norm1(x)))
        scale, shift = self.emb_proj(emb)[:, :, None, None].chunk(2, dim=1)
        h = self.norm2(h) * (1 + scale) + shift  # expect: QL301
        h = self.conv2(self.act2(h))
        return x + h  # expect: QL301


class TinyDenoiser(nn.Module):
    def __init__(self, in_ch: int = 3, ch: int = 8, emb_dim: int = 16, num_blocks: int = 2, num_classes: int = 10):
        super().__init__()
        self.time_embed = nn.Sequential(SinusoidalTimeEmbedding(ch), nn.Linear(ch, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.class_embed = nn.Embedding(num_classes, emb_dim)
        self.inp = nn.Conv2d(in_ch, ch, 3, padding=1)
        self.blocks = nn.ModuleList(FiLMResBlock(ch, emb_dim) for _ in range(num_blocks))
        self.out = nn.Conv2d(ch, in_ch, 3, padding=1)

    def forward(self, x: Tensor, t: Tensor, y: Optional[Tensor] = None) -> Tensor:
        emb = self.time_embed(t)
        if y is not None:
            emb = emb + self.class_embed(y)  # expect: QL301
        h = self.inp(x)
        for block in self.blocks:
            h = block(h, F.silu(emb))  # expect: QL102
        return self.out(h)

    @torch.no_grad()
    def guided_eps(self, x: Tensor, t: Tensor, y: Tensor, scale: float = 3.0) -> Tensor:
        eps_cond, eps_uncond = self(x, t, y), self(x, t)
        return eps_uncond + scale * (eps_cond - eps_uncond)


class MappingNetwork(nn.Module):
    def __init__(self, z_dim: int = 16, w_dim: int = 16, num_layers: int = 3, w_avg_beta: float = 0.995):
        super().__init__()
        self.fcs = nn.ModuleList(nn.Linear(z_dim if i == 0 else w_dim, w_dim) for i in range(num_layers))
        self.act = nn.LeakyReLU(0.2, True)  # expect: QL201
        self.w_avg_beta = w_avg_beta
        self.register_buffer("w_avg", torch.zeros(w_dim))

    def forward(self, z: Tensor, truncation: float = 1.0) -> Tensor:
        x = z / z.norm(dim=1, keepdim=True).clamp_min(1e-8)  # expect: QL303, QL104
        for fc in self.fcs:
            x = self.act(fc(x))  # expect: QL401
        if self.training:
            self.w_avg.copy_(x.detach().mean(0).lerp(self.w_avg, self.w_avg_beta))  # expect: QL104
        if truncation < 1.0:
            x = self.w_avg + (x - self.w_avg) * truncation  # expect: QL301
        return x


class AdaIN(nn.Module):
    def __init__(self, ch: int, w_dim: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.style = nn.Linear(w_dim, 2 * ch)

    def forward(self, x: Tensor, w: Tensor) -> Tensor:
        mean = x.mean((2, 3), keepdim=True)
        std = x.var((2, 3), keepdim=True, unbiased=False).add(self.eps).sqrt()  # expect: QL104, QL302
        ys, yb = self.style(w)[:, :, None, None].chunk(2, 1)
        return ys * (x - mean) / std + yb  # expect: QL301, QL303


class NoiseInjection(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1, ch, 1, 1))

    def forward(self, x: Tensor, noise: Optional[Tensor] = None) -> Tensor:
        if noise is None:
            noise = torch.randn(x.shape[0], 1, x.shape[2], x.shape[3], device=x.device)
        return x + self.weight * noise  # expect: QL301, QL504


class ModulatedConv2d(nn.Module):
    def __init__(self, in_ch: int, out_ch: int, kernel: int, w_dim: int, demodulate: bool = True):
        super().__init__()
        self.padding = kernel // 2
        self.demodulate = demodulate
        self.weight = nn.Parameter(torch.randn(1, out_ch, in_ch, kernel, kernel))
        self.affine = nn.Linear(w_dim, in_ch)
        self.scale = 1 / math.sqrt(in_ch * kernel ** 2)

    def forward(self, x: Tensor, w: Tensor) -> Tensor:
        b, c, h, wd = x.shape
        weight = self.scale * self.weight * self.affine(w).view(b, 1, c, 1, 1)  # expect: QL301, QL504
        if self.demodulate:
            weight = weight * torch.rsqrt(weight.pow(2).sum([2, 3, 4], keepdim=True) + 1e-8)  # expect: QL104, QL301
        out = F.conv2d(x.reshape(1, -1, h, wd), weight.view(-1, c, *weight.shape[3:]), padding=self.padding, groups=b)  # expect: QL103
        return out.view(b, -1, h, wd)


class TinyStyleGenerator(nn.Module):
    def __init__(self, z_dim: int = 16, w_dim: int = 16, ch: int = 8, num_blocks: int = 2):
        super().__init__()
        self.mapping = MappingNetwork(z_dim, w_dim)
        self.const = nn.Parameter(torch.randn(1, ch, 4, 4))
        self.up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)
        self.convs = nn.ModuleList(ModulatedConv2d(ch, ch, 3, w_dim) for _ in range(num_blocks))
        self.noises = nn.ModuleList(NoiseInjection(ch) for _ in range(num_blocks))
        self.norms = nn.ModuleList(AdaIN(ch, w_dim) for _ in range(num_blocks))
        self.to_rgb = nn.Conv2d(ch, 3, 1)

    def forward(self, z: Tensor, truncation: float = 1.0, noise: Optional[List[Tensor]] = None) -> Tensor:
        w = self.mapping(z, truncation)
        x = self.const.expand(w.shape[0], -1, -1, -1)  # expect: QL504
        for i, (conv, inject, norm) in enumerate(zip(self.convs, self.noises, self.norms)):
            x = self.up(x)
            x = norm(inject(conv(x, w), None if noise is None else noise[i]), w)
        return torch.tanh(self.to_rgb(x))
