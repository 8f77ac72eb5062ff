"""Models with several inputs: RGB-D fusion with one stub per input, early fusion that
quantizes the concatenated inputs, image + tabular metadata with a float metadata MLP,
siamese pairs, and inputs that are masks or lengths (never quantized, never given to a
quantized layer)."""
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.ao.nn.quantized import FloatFunctional
from torch.ao.quantization import DeQuantStub, QuantStub


class ConvBNReLU(nn.Sequential):
    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())


class RGBDFusionNet(nn.Module):
    def __init__(self, num_classes: int = 13):
        super().__init__()
        self.quant_rgb = QuantStub()
        self.quant_depth = QuantStub()
        self.rgb_stem = ConvBNReLU(3, 16, 2)
        self.depth_stem = ConvBNReLU(1, 16, 2)
        self.cat = FloatFunctional()
        self.fuse = ConvBNReLU(32, 32, 2)
        self.classifier = nn.Conv2d(32, num_classes, 1)
        self.dequant = DeQuantStub()

    def forward(self, rgb, depth):
        rgb = self.quant_rgb(rgb)
        depth = self.quant_depth(depth)
        x = self.cat.cat([self.rgb_stem(rgb), self.depth_stem(depth)], dim=1)
        return self.dequant(self.classifier(self.fuse(x)))


class RGBDEarlyFusionNet(nn.Module):
    """Concatenates the raw inputs in float, then quantizes once."""

    def __init__(self, num_classes: int = 13):
        super().__init__()
        self.quant = QuantStub()
        self.body = nn.Sequential(ConvBNReLU(4, 16, 2), ConvBNReLU(16, 32, 2))
        self.classifier = nn.Conv2d(32, num_classes, 1)
        self.dequant = DeQuantStub()

    def forward(self, rgb, depth):
        depth = (depth - depth.mean()) / (depth.std() + 1e-6)
        x = self.quant(torch.cat([rgb, depth], dim=1))
        return self.dequant(self.classifier(self.body(x)))


class RGBDLateFusionNet(nn.Module):
    """The depth branch was added later and never got its own stub."""

    def __init__(self, num_classes: int = 13):
        super().__init__()
        self.quant = QuantStub()
        self.rgb_stem = ConvBNReLU(3, 16, 2)
        self.depth_conv = nn.Conv2d(1, 16, 3, 2, 1)
        self.depth_relu = nn.ReLU()
        self.cat = FloatFunctional()
        self.classifier = nn.Conv2d(32, num_classes, 1)
        self.dequant = DeQuantStub()

    def forward(self, rgb, depth):
        x = self.rgb_stem(self.quant(rgb))
        d = self.depth_relu(self.depth_conv(depth))  # expect: QL701
        x = self.cat.cat([x, d], dim=1)
        return self.dequant(self.classifier(x))


class WideAndDeep(nn.Module):
    """Image tower quantized; the wide (metadata) part stays float."""

    def __init__(self, meta_dim: int = 8, num_classes: int = 5, requantize: bool = True):
        super().__init__()
        self.requantize = requantize
        self.quant_img = QuantStub()
        self.quant_meta = QuantStub()
        self.backbone = nn.Sequential(ConvBNReLU(3, 16, 2), ConvBNReLU(16, 32, 2), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.meta_mlp = nn.Sequential(nn.Linear(meta_dim, 16), nn.ReLU(), nn.Linear(16, 16))
        self.meta_mlp.qconfig = None
        self.cat = FloatFunctional()
        self.deep = nn.Linear(48, num_classes)
        self.deep_img = nn.Linear(32, num_classes)
        self.wide = nn.Linear(16, num_classes)
        self.wide.qconfig = None
        self.dequant = DeQuantStub()

    def forward(self, image, meta):
        feats = self.backbone(self.quant_img(image))
        meta = self.meta_mlp(meta)
        if self.requantize:
            fused = self.cat.cat([feats, self.quant_meta(meta)], 1)
            return self.dequant(self.deep(fused))
        return self.deep_img(feats) + self.wide(meta)  # expect: QL702, QL301


class Encoder(nn.Module):
    def __init__(self, dim: int = 32):
        super().__init__()
        self.conv1 = ConvBNReLU(3, dim // 2, 2)
        self.conv2 = ConvBNReLU(dim // 2, dim, 2)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x):
        return self.proj(torch.flatten(self.pool(self.conv2(self.conv1(x))), 1))  # expect: QL701


class SiameseVerifier(nn.Module):
    """Shared encoder, one stub per view, distance computed after dequantization."""

    def __init__(self):
        super().__init__()
        self.quant_a = QuantStub()
        self.quant_b = QuantStub()
        self.encoder = Encoder()
        self.dequant_a = DeQuantStub()
        self.dequant_b = DeQuantStub()

    def forward(self, a, b):
        za = self.dequant_a(self.encoder(self.quant_a(a)))
        zb = self.dequant_b(self.encoder(self.quant_b(b)))  # expect: QL401
        return torch.norm(za - zb, dim=1)


class SiameseSharedStub(nn.Module):
    """Only the anchor view passes the stub; the candidate reaches the shared encoder in float."""

    def __init__(self):
        super().__init__()
        self.quant = QuantStub()
        self.encoder = Encoder()
        self.dequant_a = DeQuantStub()
        self.dequant_c = DeQuantStub()

    def forward(self, anchor, candidate):
        za = self.dequant_a(self.encoder(self.quant(anchor)))
        zc = self.dequant_c(self.encoder(candidate))  # expect: QL401; allow: QL701
        return F.cosine_similarity(za, zc, dim=1)


class MaskedSetClassifier(nn.Module):
    """Point features with a validity mask and a count per sample; only `points` is quantized."""

    def __init__(self, in_dim: int = 6, dim: int = 32, num_classes: int = 4):
        super().__init__()
        self.quant = QuantStub()
        self.quant_extra = QuantStub()  # expect: QL704
        self.mlp = nn.Sequential(nn.Linear(in_dim, dim), nn.ReLU(), nn.Linear(dim, dim), nn.ReLU())
        self.head = nn.Linear(dim, num_classes)
        self.dequant = DeQuantStub()
        self.dequant_counts = DeQuantStub()

    def forward(self, points, mask, counts):
        x = self.mlp(self.quant(points))
        x = x.masked_fill(~mask.unsqueeze(-1), 0.0)
        x = x.mean(dim=1)
        logits = self.dequant(self.head(x))
        return logits * (counts.float() / mask.shape[1]).unsqueeze(1), self.dequant_counts(counts.float())
