"""Vision-transformer blocks: attention written with matmul and softmax on
tensors, RMSNorm and LayerScale on raw parameters, learned position tokens,
shifted windows; next to a quantization-ready ViT that does the same with
FloatFunctional, nn.Softmax in a float island and an nn.Embedding for positions."""
import math

import torch
import torch.nn as nn
from torch.ao.nn.quantized import FloatFunctional
from torch.ao.quantization import DeQuantStub, QuantStub, float_qparams_weight_only_qconfig
from torch.nn import functional as Fn


class RMSNorm(nn.Module):
    def __init__(self, dim, eps=1e-6):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x):
        variance = x.pow(2).mean(-1, keepdim=True)  # expect: QL104
        x = x * torch.rsqrt(variance + self.eps)  # expect: QL104, QL301
        return self.weight * x  # expect: QL301, QL504


class LayerScale(nn.Module):
    def __init__(self, dim, init_values=1e-5):
        super().__init__()
        self.gamma = nn.Parameter(init_values * torch.ones(dim))

    def forward(self, x):
        return x * self.gamma  # expect: QL301, QL504


class Attention(nn.Module):
    def __init__(self, dim, num_heads=4, qkv_bias=True):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x, mask=None):
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, C // self.num_heads).permute(2, 0, 3, 1, 4)
        q, k, v = qkv[0], qkv[1], qkv[2]
        attn = torch.matmul(q, k.transpose(-2, -1)) / math.sqrt(self.head_dim)  # expect: QL302, QL303
        if mask is not None:
            attn = attn.masked_fill(mask == 0, float("-inf"))
        attn = Fn.softmax(attn, dim=-1)  # expect: QL102
        out = torch.bmm(attn.flatten(0, 1), v.flatten(0, 1))  # expect: QL302
        out = out.reshape(B, self.num_heads, N, self.head_dim).transpose(1, 2)
        return self.proj(out.reshape(B, N, C))


class Block(nn.Module):
    def __init__(self, dim, num_heads, mlp_ratio=4.0):
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.norm1 = RMSNorm(dim)
        self.attn = Attention(dim, num_heads)
        self.ls1 = LayerScale(dim)
        self.norm2_weight = nn.Parameter(torch.ones(dim))
        self.norm2_bias = nn.Parameter(torch.zeros(dim))
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x):
        x = x + self.ls1(self.attn(self.norm1(x)))  # expect: QL301
        h = Fn.layer_norm(x, (x.size(-1),), self.norm2_weight, self.norm2_bias)  # expect: QL102, QL504
        h = self.fc2(Fn.gelu(self.fc1(h)))
        return x.add(h)  # expect: QL302


class ShiftedWindowMixer(nn.Module):
    """Swin-style cyclic shift around a per-window linear mixer."""

    def __init__(self, dim, window=4, shift=2):
        super().__init__()
        self.window = window
        self.shift = shift
        self.mix = nn.Linear(dim, dim)

    def forward(self, x):
        B, H, W, C = x.shape
        x = torch.roll(x, shifts=(-self.shift, -self.shift), dims=(1, 2))  # expect: QL104
        windows = x.view(B, H // self.window, self.window, W // self.window, self.window, C)
        windows = windows.permute(0, 1, 3, 2, 4, 5).reshape(-1, self.window * self.window, C)
        windows = self.mix(windows).view(B, H // self.window, W // self.window, self.window, self.window, C)
        x = windows.permute(0, 1, 3, 2, 4, 5).reshape(B, H, W, C)
        return x.roll(shifts=(self.shift, self.shift), dims=(1, 2))  # expect: QL104


class VisionTransformer(nn.Module):
    def __init__(self, img_size=16, patch_size=4, dim=32, depth=2, num_heads=4, num_classes=10):
        super().__init__()
        num_patches = (img_size // patch_size) ** 2
        self.patch_embed = nn.Conv2d(3, dim, patch_size, patch_size)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.randn(1, num_patches + 1, dim) * 0.02)
        self.blocks = nn.ModuleList([Block(dim, num_heads) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)

    def forward(self, x):
        x = self.patch_embed(x).flatten(2).transpose(1, 2)
        cls = self.cls_token.expand(x.size(0), -1, -1)  # expect: QL504
        x = torch.cat((cls, x), dim=1)  # expect: QL302
        x = x + self.pos_embed  # expect: QL301, QL504
        for block in self.blocks:
            x = block(x)
        return self.head(self.norm(x)[:, 0])


class QuantizableAttention(nn.Module):
    """Scaling, both matmuls through their own FloatFunctional; softmax runs in float."""

    def __init__(self, dim, num_heads=4):
        super().__init__()
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.scale = self.head_dim ** -0.5
        self.qkv = nn.Linear(dim, dim * 3)
        self.scale_q = FloatFunctional()
        self.qk_matmul = FloatFunctional()
        self.dequant_scores = DeQuantStub()
        self.softmax = nn.Softmax(dim=-1)
        self.quant_probs = QuantStub()
        self.av_matmul = FloatFunctional()
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        B, N, C = x.shape
        qkv = self.qkv(x).reshape(B, N, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        q = self.scale_q.mul_scalar(q, self.scale)
        scores = self.qk_matmul.matmul(q, k.transpose(-2, -1))
        probs = self.quant_probs(self.softmax(self.dequant_scores(scores)))
        out = self.av_matmul.matmul(probs, v).transpose(1, 2).reshape(B, N, C)
        return self.proj(out)


class QuantizableBlock(nn.Module):
    def __init__(self, dim, num_heads, mlp_ratio=4.0):
        super().__init__()
        hidden = int(dim * mlp_ratio)
        self.norm1 = nn.LayerNorm(dim)
        self.attn = QuantizableAttention(dim, num_heads)
        self.attn_add = FloatFunctional()
        self.norm2 = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)
        self.mlp_add = FloatFunctional()

    def forward(self, x):
        x = self.attn_add.add(x, self.attn(self.norm1(x)))
        return self.mlp_add.add(x, self.fc2(self.act(self.fc1(self.norm2(x)))))


class QuantizableVisionTransformer(nn.Module):
    """Mean-pooled ViT: positions come from an nn.Embedding (weight-only quantized,
    float output, so it gets its own QuantStub) instead of a raw parameter."""

    def __init__(self, img_size=16, patch_size=4, dim=32, depth=2, num_heads=4, num_classes=10):
        super().__init__()
        num_patches = (img_size // patch_size) ** 2
        self.quant = QuantStub()
        self.patch_embed = nn.Conv2d(3, dim, patch_size, patch_size)
        self.register_buffer("position_ids", torch.arange(num_patches), persistent=False)
        self.pos_embed = nn.Embedding(num_patches, dim)
        self.pos_embed.qconfig = float_qparams_weight_only_qconfig
        self.quant_pos = QuantStub()
        self.pos_add = FloatFunctional()
        self.blocks = nn.ModuleList([QuantizableBlock(dim, num_heads) for _ in range(depth)])
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)
        self.dequant = DeQuantStub()

    def forward(self, x):
        x = self.patch_embed(self.quant(x)).flatten(2).transpose(1, 2)
        x = self.pos_add.add(x, self.quant_pos(self.pos_embed(self.position_ids)))
        for block in self.blocks:
            x = block(x)
        return self.dequant(self.head(self.norm(x).mean(dim=1)))
