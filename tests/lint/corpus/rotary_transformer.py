"""Transformer pieces: rotary embeddings, a Swin-style relative position bias,
causal and padding masks, RMSNorm and a SwiGLU feed-forward."""
import math
from typing import Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor


class RotaryEmbedding(nn.Module):
    def __init__(self, dim: int, base: float = 10000.0):
        super().__init__()
        inv_freq = 1.0 / (base ** (torch.arange(0, dim, 2).float() / dim))
        self.register_buffer("inv_freq", inv_freq, persistent=False)

    def forward(self, seq_len: int, offset: int = 0) -> Tuple[Tensor, Tensor]:
        t = torch.arange(offset, offset + seq_len, dtype=self.inv_freq.dtype)
        freqs = torch.einsum("i,j->ij", t, self.inv_freq)
        emb = torch.cat((freqs, freqs), dim=-1)
        return emb.cos()[None, None], emb.sin()[None, None]


class RMSNorm(nn.Module):
    def __init__(self, dim: int, eps: float = 1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        norm = torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)  # expect: QL104, QL301
        return x * norm * self.weight  # expect: QL301, QL504


class RotaryAttention(nn.Module):
    def __init__(self, dim: int, num_heads: int, dropout: float = 0.0):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.rotary = RotaryEmbedding(self.head_dim)
        self.attn_drop = nn.Dropout(dropout)

    def _apply_rotary(self, x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
        half = self.head_dim // 2
        x1, x2 = x[..., :half], x[..., half:]
        rotated = torch.cat((-x2, x1), dim=-1)  # expect: QL104, QL302
        return x * cos + rotated * sin  # expect: QL301

    def forward(self, x: Tensor, key_padding_mask: Optional[Tensor] = None, causal: bool = True) -> Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(x).view(B, T, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        cos, sin = self.rotary(T)
        q = self._apply_rotary(q, cos, sin)
        k = self._apply_rotary(k, cos, sin)
        scores = torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(self.head_dim)  # expect: QL302, QL303
        if causal:
            scores = scores.masked_fill(torch.ones(T, T, dtype=torch.bool).triu(1), float("-inf"))
        if key_padding_mask is not None:
            scores = scores.masked_fill(key_padding_mask[:, None, None, :], float("-inf"))
        attn = self.attn_drop(F.softmax(scores, dim=-1))  # expect: QL102
        out = (attn @ v).transpose(1, 2).reshape(B, T, C)  # expect: QL301
        return self.out(out)


class RelativePositionBias(nn.Module):
    def __init__(self, window: int, num_heads: int):
        super().__init__()
        self.tokens = window * window
        self.num_heads = num_heads
        self.table = nn.Parameter(torch.zeros((2 * window - 1) ** 2, num_heads))
        coords = torch.stack(torch.meshgrid(torch.arange(window), torch.arange(window), indexing="ij")).flatten(1)
        rel = (coords[:, :, None] - coords[:, None, :]).permute(1, 2, 0) + (window - 1)
        self.register_buffer("index", (rel[..., 0] * (2 * window - 1) + rel[..., 1]).flatten(), persistent=False)
        nn.init.trunc_normal_(self.table, std=0.02)

    def forward(self, attn: Tensor) -> Tensor:
        bias = self.table[self.index].view(self.tokens, self.tokens, self.num_heads).permute(2, 0, 1)  # expect: QL504
        return attn + bias.unsqueeze(0)  # expect: QL301


class WindowAttention(nn.Module):
    def __init__(self, dim: int, window: int, num_heads: int):
        super().__init__()
        self.num_heads = num_heads
        self.scale = (dim // num_heads) ** -0.5
        self.qkv = nn.Linear(dim, dim * 3)
        self.rel_bias = RelativePositionBias(window, num_heads)
        self.softmax = nn.Softmax(dim=-1)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x, mask: Optional[Tensor] = None):
        B_, N, C = x.shape
        qkv = self.qkv(x).reshape(B_, N, 3, self.num_heads, C // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        q = q * self.scale  # expect: QL301
        attn = self.rel_bias(q @ k.transpose(-2, -1))  # expect: QL301
        if mask is not None:
            nw = mask.shape[0]
            attn = attn.view(B_ // nw, nw, self.num_heads, N, N) + mask[None, :, None]  # expect: QL301
            attn = self.softmax(attn.view(-1, self.num_heads, N, N))
        else:
            attn = self.softmax(attn)
        x = torch.bmm(attn.flatten(0, 1), v.flatten(0, 1)).view(B_, self.num_heads, N, -1)  # expect: QL302
        return self.proj(x.transpose(1, 2).reshape(B_, N, C))


class DecoderBlock(nn.Module):
    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 8 / 3):
        super().__init__()
        hidden = 8 * ((int(dim * mlp_ratio) + 7) // 8)
        self.attn_norm = RMSNorm(dim)
        self.attn = RotaryAttention(dim, num_heads)
        self.mlp_norm = RMSNorm(dim)
        self.w1 = nn.Linear(dim, hidden, bias=False)
        self.w2 = nn.Linear(hidden, dim, bias=False)
        self.w3 = nn.Linear(dim, hidden, bias=False)

    def _swiglu(self, x):
        return self.w2(F.silu(self.w1(x)) * self.w3(x))  # expect: QL102, QL301

    def forward(self, x, key_padding_mask: Optional[Tensor] = None):
        h = x + self.attn(self.attn_norm(x), key_padding_mask)  # expect: QL301
        return h + self._swiglu(self.mlp_norm(h))  # expect: QL301


class TinyLM(nn.Module):
    def __init__(self, vocab: int = 50, dim: int = 32, depth: int = 2, num_heads: int = 4):
        super().__init__()
        self.embed = nn.Embedding(vocab, dim)
        self.blocks = nn.ModuleList(DecoderBlock(dim, num_heads) for _ in range(depth))
        self.norm = RMSNorm(dim)
        self.lm_head = nn.Linear(dim, vocab, bias=False)
        self.lm_head.weight = self.embed.weight

    def forward(self, tokens: Tensor, lengths: Optional[Tensor] = None) -> Tensor:
        x = self.embed(tokens)
        pad_mask = None if lengths is None else torch.arange(tokens.size(1))[None, :] >= lengths[:, None]
        for block in self.blocks:
            x = block(x, pad_mask)
        return self.lm_head(self.norm(x))

    @torch.no_grad()
    def generate(self, tokens: Tensor, steps: int, temperature: float = 1.0) -> Tensor:
        for _ in range(steps):
            next_token = torch.multinomial(F.softmax(self(tokens)[:, -1] / temperature, dim=-1), 1)
            tokens = torch.cat([tokens, next_token], dim=1)
        return tokens
