"""Blocks assembled from mixins and class hierarchies: a mixin supplies the residual helper
forward calls, base classes own forward while subclasses own __init__, and nn.Sequential
subclasses override forward."""
import torch
import torch.nn as nn
from torch.ao.nn.quantized import FloatFunctional
from torch.ao.quantization import fuse_modules


class ResidualMixin:
    """Adds the shortcut when shapes allow; mixed in before nn.Module."""

    use_residual = True

    def residual(self, x, y):
        if self.use_residual and x.shape == y.shape:
            return x + y  # expect: QL301
        return y


class SkipAddMixin:
    """The quantization-ready shortcut; the class provides self.skip_add."""

    use_residual = True

    def residual(self, x, y):
        if self.use_residual and x.shape == y.shape:
            return self.skip_add.add(x, y)
        return y


class _ConvNormActBase(nn.Module):
    """Runs conv -> norm -> act; subclasses choose the layers."""

    def forward(self, x):
        return self.act(self.norm(self.conv(x)))


class ConvBNReLU(_ConvNormActBase):
    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.norm = nn.BatchNorm2d(cout)
        self.act = nn.ReLU(inplace=True)  # expect: QL201


class ConvBNHardswish(_ConvNormActBase):
    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.norm = nn.BatchNorm2d(cout)
        self.act = nn.Hardswish()

    def fuse_model(self):
        fuse_modules(self, [["conv", "norm"]], inplace=True)


class _TwoConvBase(nn.Module):
    """Two convolutions; the subclass supplies one activation module for both."""

    def forward(self, x):
        y = self.act(self.bn1(self.conv1(x)))
        y = self.act(self.bn2(self.conv2(y)))  # expect: QL401
        return self.residual(x, y)


class BasicBlock(ResidualMixin, _TwoConvBase):
    def __init__(self, ch: int):
        super().__init__()
        self.conv1 = nn.Conv2d(ch, ch, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(ch)
        self.conv2 = nn.Conv2d(ch, ch, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(ch)
        self.act = nn.ReLU()


class QuantizableBasicBlock(SkipAddMixin, nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.conv1 = nn.Conv2d(ch, ch, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(ch)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(ch, ch, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(ch)
        self.relu2 = nn.ReLU()
        self.skip_add = FloatFunctional()

    def forward(self, x):
        y = self.relu1(self.bn1(self.conv1(x)))
        y = self.relu2(self.bn2(self.conv2(y)))
        return self.residual(x, y)

    def fuse_model(self):
        fuse_modules(self, [["conv1", "bn1", "relu1"], ["conv2", "bn2", "relu2"]], inplace=True)


class ResidualSequential(nn.Sequential):
    """Runs its children in order, then adds the input back."""

    def forward(self, x):
        out = x
        for module in self:
            out = module(out)
        return out + x  # expect: QL301


class GatedSequential(nn.Sequential):
    def forward(self, x):
        return super().forward(x) * torch.sigmoid(x)  # expect: QL301


class TwinConv(nn.Sequential):
    """One activation instance passed at two positions of the container."""

    def __init__(self, ch: int):
        act = nn.ReLU()
        super().__init__(nn.Conv2d(ch, ch, 3, padding=1), act, nn.Conv2d(ch, ch, 3, padding=1), act)  # expect: QL402


class QuantizableResidualSequential(nn.Sequential):
    def __init__(self, *layers: nn.Module):
        super().__init__(*layers)
        self.skip_add = FloatFunctional()

    def forward(self, x):
        out = x
        for name, module in self.named_children():
            if name != "skip_add":
                out = module(out)
        return self.skip_add.add(out, x)


class Stage(nn.Module):
    """Stacks the blocks above; the stage itself only chains them."""

    def __init__(self, ch: int, depth: int = 2, quantizable: bool = False):
        super().__init__()
        block = QuantizableBasicBlock if quantizable else BasicBlock
        self.stem = ConvBNHardswish(ch, ch) if quantizable else ConvBNReLU(ch, ch)
        self.blocks = nn.Sequential(*[block(ch) for _ in range(depth)])
        self.depth = depth

    def forward(self, x):
        x = self.stem(x)
        for i, blk in enumerate(self.blocks):
            x = blk(x)
            if i == self.depth - 1:
                break
        return x
