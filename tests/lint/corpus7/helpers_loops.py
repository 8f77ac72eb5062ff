"""Module-level helpers and loops on the forward path: channel shuffle and coordinate grids
called with quantized and float tensors, an inference copy of a block, a stub per resolution branch built in a loop, a
shared stem added in front of branches that kept their stubs, and an FPN top-down loop
whose per-level outputs are dequantized."""
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.ao.nn.quantized import FloatFunctional
from torch.ao.quantization import DeQuantStub, QuantStub


def channel_shuffle(x, groups: int):
    b, c, h, w = x.size()
    x = x.view(b, groups, c // groups, h, w)
    return torch.transpose(x, 1, 2).contiguous().view(b, -1, h, w)


def coord_grid(x):
    """(B, 2, H, W) pixel coordinates in [-1, 1] for the spatial size of x."""
    b, _, h, w = x.shape
    ys = torch.linspace(-1.0, 1.0, h).view(1, 1, h, 1).expand(b, 1, h, w)
    xs = torch.linspace(-1.0, 1.0, w).view(1, 1, 1, w).expand(b, 1, h, w)
    return torch.cat([xs, ys], dim=1)


def add_coords(x):
    return torch.cat([x, coord_grid(x)], dim=1)  # expect: QL702, QL302


class ConvBNReLU(nn.Sequential):
    def __init__(self, cin: int, cout: int, stride: int = 1, groups: int = 1):
        super().__init__(nn.Conv2d(cin, cout, 3, stride, 1, groups=groups, bias=False), nn.BatchNorm2d(cout), nn.ReLU())


class ShuffleBlock(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        half = ch // 2
        self.branch = nn.Sequential(ConvBNReLU(half, half, groups=half), nn.Conv2d(half, half, 1), nn.ReLU())
        self.cat = FloatFunctional()

    def forward(self, x):
        x1, x2 = x.chunk(2, dim=1)
        return channel_shuffle(self.cat.cat([x1, self.branch(x2)], dim=1), 2)


class ShuffleBlockInference(ShuffleBlock):
    """Inference copy of a training block; stochastic depth was dropped from __init__."""

    def forward(self, x):
        x1, x2 = x.chunk(2, dim=1)
        return channel_shuffle(self.cat.cat([x1, self.drop_path(self.branch(x2))], dim=1), 2)  # expect: QL705


class CoordConvNet(nn.Module):
    """Coordinates get their own stub and join the image channels."""

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.quant = QuantStub()
        self.quant_coords = QuantStub()
        self.cat = FloatFunctional()
        self.stem = ConvBNReLU(5, 16, 2)
        self.blocks = nn.Sequential(*[ShuffleBlock(16) for _ in range(2)])
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, num_classes)
        self.dequant = DeQuantStub()

    def forward(self, x):
        x = self.cat.cat([self.quant(x), self.quant_coords(coord_grid(x))], dim=1)
        x = self.blocks(self.stem(x))
        return self.dequant(self.fc(torch.flatten(self.pool(x), 1)))


class CoordConvHead(nn.Module):
    """Adds coordinates in the middle of the network (SOLO-style mask branch)."""

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.quant = QuantStub()
        self.stem = ConvBNReLU(3, 16, 2)
        self.mask_conv = ConvBNReLU(18, 16)
        self.out = nn.Conv2d(16, num_classes, 1)
        self.dequant = DeQuantStub()

    def forward(self, x):
        x = self.stem(self.quant(x))
        return self.dequant(self.out(self.mask_conv(add_coords(x))))


class MultiResolutionNet(nn.Module):
    """Each branch sees the image at its own resolution, through its own stub."""

    def __init__(self, scales=(1, 2, 4), width: int = 16, num_classes: int = 10):
        super().__init__()
        self.scales = scales
        self.quants = nn.ModuleList(QuantStub() for _ in scales)
        self.branches = nn.ModuleList(nn.Sequential(ConvBNReLU(3, width, 2), ConvBNReLU(width, width)) for _ in scales)
        self.ups = nn.ModuleList(nn.Upsample(scale_factor=s, mode="nearest") for s in scales)
        self.adds = nn.ModuleList(FloatFunctional() for _ in scales[1:])
        self.head = nn.Conv2d(width, num_classes, 1)
        self.dequant = DeQuantStub()

    def forward(self, x):
        out = None
        for i, s in enumerate(self.scales):
            xi = x if s == 1 else F.avg_pool2d(x, s)
            yi = self.ups[i](self.branches[i](self.quants[i](xi)))
            out = yi if out is None else self.adds[i - 1].add(out, yi)
        return self.dequant(self.head(out))


class SharedStemMultiBranch(nn.Module):
    """A shared stem was put in front of the branches; the branches kept their stubs."""

    def __init__(self, branches: int = 3, width: int = 16, num_classes: int = 10):
        super().__init__()
        self.quant = QuantStub()
        self.stem = ConvBNReLU(3, width, 2)
        self.branch_quants = nn.ModuleList(QuantStub() for _ in range(branches))
        self.branches = nn.ModuleList(ConvBNReLU(width, width) for _ in range(branches))
        self.cat = FloatFunctional()
        self.head = nn.Conv2d(branches * width, num_classes, 1)
        self.dequant = DeQuantStub()

    def forward(self, x):
        x = self.stem(self.quant(x))
        outs = []
        for i, branch in enumerate(self.branches):
            outs.append(branch(self.branch_quants[i](x)))  # expect: QL703
        return self.dequant(self.head(self.cat.cat(outs, dim=1)))


class FPNLite(nn.Module):
    def __init__(self, width: int = 16, levels: int = 3):
        super().__init__()
        self.quant = QuantStub()
        self.stages = nn.ModuleList([ConvBNReLU(3, width, 2)] + [ConvBNReLU(width, width, 2) for _ in range(levels - 1)])
        self.laterals = nn.ModuleList(nn.Conv2d(width, width, 1) for _ in range(levels))
        self.smooths = nn.ModuleList(nn.Conv2d(width, width, 3, padding=1) for _ in range(levels))
        self.adds = nn.ModuleList(FloatFunctional() for _ in range(levels - 1))
        self.upsample = nn.Upsample(scale_factor=2, mode="nearest")
        self.dequants = nn.ModuleList(DeQuantStub() for _ in range(levels))

    def _backbone(self, x):
        feats = []
        for stage in self.stages:
            x = stage(x)
            feats.append(x)
        return feats

    def forward(self, x):
        feats = self._backbone(self.quant(x))
        prev = self.laterals[-1](feats[-1])
        outs = [self.dequants[-1](self.smooths[-1](prev))]
        for i in range(len(feats) - 2, -1, -1):
            prev = self.adds[i].add(self.laterals[i](feats[i]), self.upsample(prev))
            outs.insert(0, self.dequants[i](self.smooths[i](prev)))
        return outs


class FPNLiteReusedOutput(FPNLite):
    """Feeds the dequantized output of each level to the next level's merge."""

    def forward(self, x):
        feats = self._backbone(self.quant(x))
        prev = self.dequants[-1](self.smooths[-1](self.laterals[-1](feats[-1])))
        outs = [prev]
        for i in range(len(feats) - 2, -1, -1):
            merged = self.adds[i].add(self.laterals[i](feats[i]), self.upsample(prev))  # expect: QL701; allow: QL702
            prev = self.dequants[i](self.smooths[i](merged))
            outs.insert(0, prev)
        return outs
