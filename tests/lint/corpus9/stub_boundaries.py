"""Where QuantStubs and DeQuantStubs go: multi-input models, float islands with qconfig None,
nested blocks with their own stubs, stubs left behind by refactors, and a QuantWrapper'd model
with no stub inside (nothing to report there)."""
import torch
import torch.nn as nn
from torch.ao.nn.quantized import FloatFunctional
from torch.ao.quantization import DeQuantStub, QuantStub, QuantWrapper


class RGBDFusion(nn.Module):
    def __init__(self):
        super().__init__()
        self.quant = QuantStub()
        self.rgb_conv = nn.Conv2d(3, 8, 3, padding=1)
        self.depth_conv = nn.Conv2d(1, 8, 3, padding=1)
        self.fuse = FloatFunctional()
        self.dequant = DeQuantStub()

    def forward(self, rgb, depth):
        r = self.rgb_conv(self.quant(rgb))
        d = self.depth_conv(depth)  # expect: QL701
        return self.dequant(self.fuse.add(r, d))


class RGBDFusionFixed(nn.Module):
    def __init__(self):
        super().__init__()
        self.quant_rgb, self.quant_depth = QuantStub(), QuantStub()
        self.rgb_conv = nn.Conv2d(3, 8, 3, padding=1)
        self.depth_conv = nn.Conv2d(1, 8, 3, padding=1)
        self.fuse = FloatFunctional()
        self.dequant = DeQuantStub()

    def forward(self, rgb, depth):
        r = self.rgb_conv(self.quant_rgb(rgb))
        d = self.depth_conv(self.quant_depth(depth))
        return self.dequant(self.fuse.add(r, d))


class FloatIslandNet(nn.Module):
    """A head kept float (qconfig None) between a DeQuantStub and a QuantStub."""

    def __init__(self):
        super().__init__()
        self.quant = QuantStub()
        self.backbone = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU())
        self.dequant_in = DeQuantStub()  # allow: QL704
        self.island = nn.Sequential(nn.Conv2d(8, 8, 1), nn.GroupNorm(2, 8))
        self.island.qconfig = None
        self.quant_out = QuantStub()
        self.proj = nn.Conv2d(8, 4, 1)
        self.dequant = DeQuantStub()

    def forward(self, x):
        y = self.backbone(self.quant(x))
        y = self.island(self.dequant_in(y))
        y = y * torch.sigmoid(y)
        return self.dequant(self.proj(self.quant_out(y)))


class ForgotDequantBeforeIsland(FloatIslandNet):
    def forward(self, x):
        y = self.backbone(self.quant(x))
        y = self.island(y)  # expect: QL702
        return self.dequant(self.proj(self.quant_out(y)))


class PriorBoxNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.quant = QuantStub()
        self.conv = nn.Conv2d(3, 4, 3, padding=1)
        self.dequant = DeQuantStub()

    def forward(self, x, priors):
        deltas = self.conv(self.quant(x))
        boxes = deltas + priors  # expect: QL301, QL702
        return self.dequant(boxes)


class EncoderBlock(nn.Module):
    def __init__(self):
        super().__init__()
        self.quant = QuantStub()
        self.conv = nn.Conv2d(8, 8, 3, padding=1)
        self.dequant = DeQuantStub()

    def forward(self, x):
        return self.dequant(self.conv(self.quant(x)))  # expect: QL703


class Encoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.quant = QuantStub()
        self.stem = nn.Conv2d(3, 8, 3, padding=1)
        self.block = EncoderBlock()
        self.quant_mask = QuantStub()  # expect: QL704

    def forward(self, x, mask):
        return self.block(self.stem(self.quant(x))), mask  # allow: QL703


class FeatureExtractor(nn.Module):
    def __init__(self):
        super().__init__()
        self.quant = QuantStub()
        self.conv = nn.Conv2d(3, 8, 3)
        self.relu1 = nn.ReLU()

    def forward(self, x):
        return self.relu1(self.conv(self.quant(x)))  # expect: QL704


class RenamedReluNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.quant = QuantStub()
        self.conv = nn.Conv2d(3, 8, 3)
        self.relu1 = nn.ReLU()
        self.dequant = DeQuantStub()

    def forward(self, x):
        x = self.relu(self.conv(self.quant(x)))  # expect: QL705
        return self.dequant(x)


class MultiHeadNet(nn.Module):
    def __init__(self, num_heads=2):
        super().__init__()
        self.quant, self.dequant = QuantStub(), DeQuantStub()
        for i in range(num_heads):
            setattr(self, f"head{i}", nn.Conv2d(3, 4, 1))

    def forward(self, x):
        x = self.quant(x)
        return self.dequant(self.head0(x)), self.dequant(self.head1(x))


class PlainNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 8, 3)
        self.relu = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)

    def forward(self, x):
        return self.pool(self.relu(self.conv(x))).flatten(1)


def wrapped_plain_net():
    return QuantWrapper(PlainNet())
