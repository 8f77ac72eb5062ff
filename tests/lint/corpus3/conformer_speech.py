"""Conformer speech encoder pieces: relative sinusoidal positions, macaron half-step feed-forward
modules, relative-position self-attention with learned u/v biases, a GLU + depthwise convolution
module, a streaming causal depthwise convolution and a quantizable convolution module."""
import math
from typing import List, Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor
from torch.ao.nn.quantized import FloatFunctional
from torch.ao.quantization import fuse_modules


class RelPositionalEncoding(nn.Module):
    def __init__(self, d_model: int, max_len: int = 64, dropout: float = 0.1):
        super().__init__()
        self.xscale, self.dropout = math.sqrt(d_model), nn.Dropout(dropout)
        pos = torch.arange(max_len - 1, -max_len, -1.0).unsqueeze(1)
        div_term = torch.exp(torch.arange(0, d_model, 2, dtype=torch.float32) * -(math.log(10000.0) / d_model))
        pe = torch.zeros(2 * max_len - 1, d_model)
        pe[:, 0::2], pe[:, 1::2] = torch.sin(pos * div_term), torch.cos(pos * div_term)
        self.register_buffer("pe", pe.unsqueeze(0), persistent=False)
        self.center = max_len - 1

    def forward(self, x: Tensor) -> Tuple[Tensor, Tensor]:
        t = x.size(1)
        pos_emb = self.pe[:, self.center - t + 1 : self.center + t]
        return self.dropout(x * self.xscale), self.dropout(pos_emb)  # expect: QL301


def feed_forward(d_model: int, expansion: int = 4, dropout: float = 0.1) -> nn.Sequential:
    hidden = d_model * expansion
    return nn.Sequential(nn.LayerNorm(d_model), nn.Linear(d_model, hidden), nn.SiLU(), nn.Dropout(dropout), nn.Linear(hidden, d_model), nn.Dropout(dropout))


class RelPositionMultiHeadAttention(nn.Module):
    def __init__(self, n_head: int, n_feat: int, dropout: float = 0.1):
        super().__init__()
        self.h, self.d_k = n_head, n_feat // n_head
        self.linear_q, self.linear_k, self.linear_v = nn.Linear(n_feat, n_feat), nn.Linear(n_feat, n_feat), nn.Linear(n_feat, n_feat)
        self.linear_out, self.linear_pos = nn.Linear(n_feat, n_feat), nn.Linear(n_feat, n_feat, bias=False)
        self.pos_bias_u, self.pos_bias_v = nn.Parameter(torch.zeros(self.h, self.d_k)), nn.Parameter(torch.zeros(self.h, self.d_k))
        self.dropout = nn.Dropout(dropout)

    def rel_shift(self, x: Tensor) -> Tensor:
        b, h, t, pos_len = x.size()
        zero_pad = torch.zeros((b, h, t, 1), dtype=x.dtype)
        x_padded = torch.cat([zero_pad, x], dim=-1).view(b, h, pos_len + 1, t)  # expect: QL302
        return x_padded[:, :, 1:].view_as(x)[:, :, :, : pos_len // 2 + 1]

    def forward(self, x: Tensor, pos_emb: Tensor, mask: Optional[Tensor] = None) -> Tensor:
        b, t, _ = x.size()
        q = self.linear_q(x).view(b, -1, self.h, self.d_k)
        k = self.linear_k(x).view(b, -1, self.h, self.d_k).transpose(1, 2)
        v = self.linear_v(x).view(b, -1, self.h, self.d_k).transpose(1, 2)
        p = self.linear_pos(pos_emb).view(pos_emb.size(0), -1, self.h, self.d_k).transpose(1, 2)
        q_u = (q + self.pos_bias_u).transpose(1, 2)  # expect: QL301, QL504
        q_v = (q + self.pos_bias_v).transpose(1, 2)  # expect: QL301, QL504
        matrix_ac = torch.matmul(q_u, k.transpose(-2, -1))  # expect: QL302
        matrix_bd = self.rel_shift(torch.matmul(q_v, p.transpose(-2, -1)))  # expect: QL302
        scores = (matrix_ac + matrix_bd) / math.sqrt(self.d_k)  # expect: QL301, QL303
        if mask is not None:
            scores = scores.masked_fill(mask.eq(0)[:, None, None, :], -10000.0)
        attn = self.dropout(F.softmax(scores, dim=-1))  # expect: QL102
        return self.linear_out(torch.matmul(attn, v).transpose(1, 2).reshape(b, t, -1))  # expect: QL302


class ConvolutionModule(nn.Module):
    def __init__(self, channels: int, kernel_size: int = 7):
        super().__init__()
        self.norm = nn.LayerNorm(channels)
        self.pointwise_conv1 = nn.Conv1d(channels, 2 * channels, 1)
        self.depthwise_conv = nn.Conv1d(channels, channels, kernel_size, padding=(kernel_size - 1) // 2, groups=channels)
        self.batch_norm, self.activation = nn.BatchNorm1d(channels), nn.SiLU()
        self.pointwise_conv2 = nn.Conv1d(channels, channels, 1)
        self.dropout = nn.Dropout(0.1)

    def forward(self, x: Tensor, mask: Optional[Tensor] = None) -> Tensor:
        x = self.pointwise_conv1(self.norm(x).transpose(1, 2))
        # F.glu has no quantized kernel; it also matches QL102's wording, since an nn.GLU module exists.
        x = F.glu(x, dim=1)  # expect: QL102
        if mask is not None:
            x = x.masked_fill(mask.eq(0).unsqueeze(1), 0.0)
        x = self.activation(self.batch_norm(self.depthwise_conv(x)))
        return self.dropout(self.pointwise_conv2(x)).transpose(1, 2)


class CausalDepthwiseConv(nn.Module):
    def __init__(self, channels: int, kernel_size: int = 5):
        super().__init__()
        self.channels, self.left_pad = channels, kernel_size - 1
        self.weight = nn.Parameter(torch.randn(channels, 1, kernel_size) / math.sqrt(kernel_size))

    def forward(self, x: Tensor, cache: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
        x = F.pad(x, (self.left_pad, 0)) if cache is None else torch.cat([cache, x], dim=2)  # expect: QL302
        return F.conv1d(x, self.weight, groups=self.channels), x[:, :, -self.left_pad :]  # expect: QL103, QL504


class ConformerBlock(nn.Module):
    def __init__(self, d_model: int = 16, n_head: int = 2, kernel_size: int = 7):
        super().__init__()
        self.ffn1, self.ffn2 = feed_forward(d_model), feed_forward(d_model)
        self.norm_mha, self.final_norm = nn.LayerNorm(d_model), nn.LayerNorm(d_model)
        self.mha = RelPositionMultiHeadAttention(n_head, d_model)
        self.conv = ConvolutionModule(d_model, kernel_size)
        self.ff_scale = 0.5

    def forward(self, x: Tensor, pos_emb: Tensor, mask: Optional[Tensor] = None) -> Tensor:
        x = x + self.ff_scale * self.ffn1(x)  # expect: QL301
        x = x + self.mha(self.norm_mha(x), pos_emb, mask)  # expect: QL301
        x = x + self.conv(x, mask)  # expect: QL301
        residual = x
        x = self.ffn2(x)
        x = x * self.ff_scale + residual  # expect: QL301
        return self.final_norm(x)


class ConformerEncoder(nn.Module):
    def __init__(self, idim: int = 20, d_model: int = 16, num_blocks: int = 2):
        super().__init__()
        self.input_proj = nn.Linear(idim, d_model)
        self.pos_enc = RelPositionalEncoding(d_model)
        self.blocks = nn.ModuleList(ConformerBlock(d_model) for _ in range(num_blocks))

    def forward(self, feats: Tensor, lengths: Optional[List[int]] = None) -> Tensor:
        x, pos_emb = self.pos_enc(self.input_proj(feats))
        mask = None if lengths is None else torch.arange(x.size(1))[None, :] < torch.tensor(lengths)[:, None]
        for block in self.blocks:
            x = block(x, pos_emb, mask)
        return x


class QuantizableConvModule(nn.Module):
    def __init__(self, channels: int, kernel_size: int = 7):
        super().__init__()
        self.pointwise_a, self.pointwise_b = nn.Conv1d(channels, channels, 1), nn.Conv1d(channels, channels, 1)
        self.gate, self.glu_mul = nn.Sigmoid(), FloatFunctional()
        self.depthwise_conv = nn.Conv1d(channels, channels, kernel_size, padding=kernel_size // 2, groups=channels, bias=False)
        self.batch_norm, self.activation = nn.BatchNorm1d(channels), nn.ReLU()
        self.pointwise_conv2 = nn.Conv1d(channels, channels, 1)
        self.skip_add = FloatFunctional()

    def forward(self, x: Tensor) -> Tensor:
        y = self.glu_mul.mul(self.pointwise_a(x), self.gate(self.pointwise_b(x)))
        y = self.activation(self.batch_norm(self.depthwise_conv(y)))
        return self.skip_add.add(x, self.pointwise_conv2(y))

    def fuse_model(self):
        fuse_modules(self, [["depthwise_conv", "batch_norm", "activation"]], inplace=True)
