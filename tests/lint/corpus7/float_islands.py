"""Float islands inside quantized models: GroupNorm + SiLU blocks kept float by a class
attribute, a Conv2d subclass that quantization leaves alone, attention layers excluded by a
loop in the parent's __init__, a refinement MLP excluded by its parent; DeQuantStub before
and QuantStub after each island, except where they were forgotten."""
import torch
import torch.nn as nn
from torch.ao.nn.quantized import FloatFunctional
from torch.ao.quantization import DeQuantStub, QuantStub


class GroupNormSiLU(nn.Module):
    """No int8 SiLU kernel: normalization and activation stay float."""

    qconfig = None

    def __init__(self, ch: int, groups: int = 4):
        super().__init__()
        self.norm = nn.GroupNorm(groups, ch)
        self.act = nn.SiLU()

    def forward(self, x):
        return self.act(self.norm(x))


class FloatConv2d(nn.Conv2d):
    """A Conv2d that eager-mode quantization leaves in float."""

    qconfig = None


class ResBlock(nn.Module):
    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.dequant1 = DeQuantStub()
        self.norm_act1 = GroupNormSiLU(cin)
        self.quant1 = QuantStub()
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.dequant2 = DeQuantStub()
        self.norm_act2 = GroupNormSiLU(cout)
        self.quant2 = QuantStub()
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()
        self.add = FloatFunctional()

    def forward(self, x):
        h = self.conv1(self.quant1(self.norm_act1(self.dequant1(x))))
        h = self.conv2(self.quant2(self.norm_act2(self.dequant2(h))))
        return self.add.add(self.skip(x), h)


class Downsample(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.dequant = DeQuantStub()
        self.norm_act = GroupNormSiLU(ch)
        self.conv = nn.Conv2d(ch, ch, 3, 2, 1)

    def forward(self, x):
        return self.conv(self.norm_act(self.dequant(x)))  # expect: QL701


class TinyDenoiser(nn.Module):
    def __init__(self, ch: int = 16, downsample: bool = False):
        super().__init__()
        self.quant = QuantStub()
        self.conv_in = nn.Conv2d(3, ch, 3, padding=1)
        self.block1 = ResBlock(ch, ch)
        self.down = Downsample(ch) if downsample else nn.Identity()
        self.block2 = ResBlock(ch, 2 * ch)
        self.dequant_out = DeQuantStub()
        self.norm_out = GroupNormSiLU(2 * ch)
        self.conv_out = FloatConv2d(2 * ch, 3, 3, padding=1)

    def forward(self, x):
        h = self.block1(self.conv_in(self.quant(x)))
        h = self.block2(self.down(h))
        return self.conv_out(self.norm_out(self.dequant_out(h)))


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.heads, self.scale = heads, (dim // heads) ** -0.5
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        B, N, C = x.shape
        q, k, v = self.qkv(x).reshape(B, N, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4).unbind(0)
        attn = (q @ k.transpose(-2, -1)) * self.scale
        x = (attn.softmax(dim=-1) @ v).transpose(1, 2).reshape(B, N, C)
        return self.proj(x)


class Block(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.dequant_attn = DeQuantStub()
        self.attn = Attention(dim, heads)
        self.quant_attn = QuantStub()
        self.add1 = FloatFunctional()
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.ReLU(), nn.Linear(2 * dim, dim))
        self.add2 = FloatFunctional()

    def forward(self, x):
        x = self.add1.add(x, self.quant_attn(self.attn(self.dequant_attn(self.norm1(x)))))
        return self.add2.add(x, self.mlp(self.norm2(x)))


class TinyViT(nn.Module):
    """Attention runs in float in every block; the MLPs and the patch embedding are int8."""

    def __init__(self, dim: int = 32, depth: int = 2, heads: int = 4, num_classes: int = 10):
        super().__init__()
        self.quant = QuantStub()
        self.patch_embed = nn.Conv2d(3, dim, 4, 4)
        self.blocks = nn.Sequential(*[Block(dim, heads) for _ in range(depth)])
        for blk in self.blocks:
            blk.attn.qconfig = None
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)
        self.dequant = DeQuantStub()

    def forward(self, x):
        x = self.patch_embed(self.quant(x)).flatten(2).transpose(1, 2)
        x = self.blocks(x)
        return self.dequant(self.head(self.norm(x).mean(dim=1)))


class PoseRegressor(nn.Module):
    """Heatmaps in int8; a float MLP refines sub-pixel offsets from them."""

    def __init__(self, keypoints: int = 4, dequantize_heatmaps: bool = True):
        super().__init__()
        self.dequantize_heatmaps = dequantize_heatmaps
        self.quant = QuantStub()
        self.backbone = nn.Sequential(nn.Conv2d(3, 16, 3, 2, 1), nn.ReLU(), nn.Conv2d(16, 16, 3, 2, 1), nn.ReLU())
        self.heatmap = nn.Conv2d(16, keypoints, 1)
        self.dequant = DeQuantStub()
        self.refine = nn.Sequential(nn.Flatten(), nn.Linear(keypoints * 64, 64), nn.ReLU(), nn.Linear(64, 2 * keypoints))
        self.refine.qconfig = None

    def forward(self, x):
        hm = self.heatmap(self.backbone(self.quant(x)))
        if self.dequantize_heatmaps:
            hm = self.dequant(hm)
            return hm, self.refine(hm)
        return self.dequant(hm), self.refine(hm)  # expect: QL702
