"""Stubs across module boundaries: stub-less children called by a parent that quantizes, a
self-contained int8 embedder reused inside bigger models (in one of them its QuantStub sees an
already quantized tensor), QuantWrapper around models with and without their own stubs,
a two-stage pipeline that dequantizes between the stages, services that return int8
features or float scores, and a stacking ensemble over members that return float logits
next to their embeddings."""
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.ao.nn.quantized import FloatFunctional
from torch.ao.quantization import DeQuantStub, QuantStub, QuantWrapper


class ConvBNReLU(nn.Sequential):
    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())


class PatchEmbed(nn.Module):
    def __init__(self, cin: int = 3, dim: int = 32, patch: int = 4):
        super().__init__()
        self.proj = nn.Conv2d(cin, dim, patch, patch)
        self.norm = nn.LayerNorm(dim)

    def forward(self, x):
        return self.norm(self.proj(x).flatten(2).transpose(1, 2))


class MixerBlock(nn.Module):
    def __init__(self, tokens: int, dim: int):
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.token_mlp = nn.Sequential(nn.Linear(tokens, tokens), nn.ReLU(), nn.Linear(tokens, tokens))
        self.add1 = FloatFunctional()
        self.norm2 = nn.LayerNorm(dim)
        self.channel_mlp = nn.Sequential(nn.Linear(dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim))
        self.add2 = FloatFunctional()

    def forward(self, x):
        x = self.add1.add(x, self.token_mlp(self.norm1(x).transpose(1, 2)).transpose(1, 2))
        return self.add2.add(x, self.channel_mlp(self.norm2(x)))


class TinyMixer(nn.Module):
    def __init__(self, image_size: int = 32, dim: int = 32, depth: int = 2, num_classes: int = 10):
        super().__init__()
        self.quant = QuantStub()
        self.patch_embed = PatchEmbed(dim=dim)
        self.blocks = nn.ModuleList(MixerBlock((image_size // 4) ** 2, dim) for _ in range(depth))
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, num_classes)
        self.dequant = DeQuantStub()

    def forward(self, x):
        x = self.patch_embed(self.quant(x))
        for blk in self.blocks:
            x = blk(x)
        return self.dequant(self.head(self.norm(x).mean(dim=1)))


class QuantizedEmbedder(nn.Module):
    """Self-contained int8 embedder, also served on its own."""

    def __init__(self, dim: int = 32):
        super().__init__()
        self.quant = QuantStub()
        self.body = nn.Sequential(ConvBNReLU(3, 16, 2), ConvBNReLU(16, 32, 2))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(32, dim)
        self.dequant = DeQuantStub()

    def forward(self, x):
        x = self.quant(x)  # expect: QL703
        return self.dequant(self.fc(torch.flatten(self.pool(self.body(x)), 1)))


class RetrievalModel(nn.Module):
    """A learned color transform in front of the embedder, quantized with it."""

    def __init__(self):
        super().__init__()
        self.quant = QuantStub()
        self.color = nn.Conv2d(3, 3, 1)
        self.embedder = QuantizedEmbedder()

    def forward(self, x):
        x = self.color(self.quant(x))
        return F.normalize(self.embedder(x), dim=1)


class TwoStageClassifier(nn.Module):
    """Stage one localizes the object; the crop is resampled in float for the embedder."""

    def __init__(self):
        super().__init__()
        self.quant = QuantStub()
        self.localizer = nn.Sequential(ConvBNReLU(3, 8, 2), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(8, 4))
        self.dequant_box = DeQuantStub()
        self.embedder = QuantizedEmbedder()

    def forward(self, x):
        box = self.dequant_box(self.localizer(self.quant(x))).sigmoid()
        zeros = torch.zeros_like(box[:, 0])
        theta = torch.stack([box[:, 2], zeros, box[:, 0] * 2 - 1, zeros, box[:, 3], box[:, 1] * 2 - 1], dim=1)
        grid = F.affine_grid(theta.view(-1, 2, 3), list(x.shape), align_corners=False)
        return self.embedder(F.grid_sample(x, grid, align_corners=False))


class EdgeClassifier(nn.Module):
    """Shipped quantization-ready, with its own stubs."""

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.quant = QuantStub()
        self.features = nn.Sequential(ConvBNReLU(3, 16, 2), ConvBNReLU(16, 32, 2))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(32, num_classes)
        self.dequant = DeQuantStub()

    def forward(self, x):
        x = self.quant(x)  # expect: QL703
        x = torch.flatten(self.pool(self.features(x)), 1)
        return self.dequant(self.fc(x))


def wrap_for_mobile(num_classes: int = 10):
    """The mobile exporter wraps every model, whether or not it has stubs already."""
    return QuantWrapper(EdgeClassifier(num_classes)), QuantWrapper(nn.Sequential(ConvBNReLU(3, 8), nn.Conv2d(8, 1, 1)))


class SharedBackbone(nn.Module):
    def __init__(self):
        super().__init__()
        self.stages = nn.Sequential(ConvBNReLU(3, 16, 2), ConvBNReLU(16, 32, 2), ConvBNReLU(32, 32, 2))

    def forward(self, x):
        return self.stages(x)


class ScoreHead(nn.Module):
    def __init__(self, cin: int = 32, num_classes: int = 5):
        super().__init__()
        self.fc = nn.Linear(cin, num_classes)
        self.dequant = DeQuantStub()

    def forward(self, x):
        return self.dequant(self.fc(x)).softmax(dim=-1)


class FeatureService(nn.Module):
    """Returns int8 feature maps to an int8 consumer."""

    def __init__(self):
        super().__init__()
        self.quant = QuantStub()
        self.backbone = SharedBackbone()

    def forward(self, x):
        return self.backbone(self.quant(x))  # expect: QL704


class ScoringService(nn.Module):
    def __init__(self):
        super().__init__()
        self.quant = QuantStub()
        self.backbone = SharedBackbone()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = ScoreHead()

    def forward(self, x):
        return self.head(torch.flatten(self.pool(self.backbone(self.quant(x))), 1))


class Member(nn.Module):
    """Returns float logits and its int8 embedding."""

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.quant = QuantStub()
        self.features = nn.Sequential(ConvBNReLU(3, 16, 2), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.fc = nn.Linear(16, num_classes)
        self.dequant = DeQuantStub()

    def forward(self, x):
        emb = self.features(self.quant(x))
        return self.dequant(self.fc(emb)), emb


class MemberFloatEmbedding(Member):
    def __init__(self, num_classes: int = 10):
        super().__init__(num_classes)
        self.dequant_emb = DeQuantStub()

    def forward(self, x):
        emb = self.features(self.quant(x))
        return self.dequant(self.fc(emb)), self.dequant_emb(emb)


class StackingEnsemble(nn.Module):
    """A float meta-classifier over the members' logits and embeddings."""

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.a = Member(num_classes)
        self.b = Member(num_classes)
        self.meta = nn.Linear(2 * num_classes + 2 * 16, num_classes)
        self.meta.qconfig = None

    def forward(self, x):
        la, ea = self.a(x)
        lb, eb = self.b(x)
        return self.meta(torch.cat([la, lb, ea, eb], dim=1))  # expect: QL702, QL302


class StackingEnsembleFloatEmbeddings(StackingEnsemble):
    def __init__(self, num_classes: int = 10):
        super().__init__(num_classes)
        self.a = MemberFloatEmbedding(num_classes)
        self.b = MemberFloatEmbedding(num_classes)
