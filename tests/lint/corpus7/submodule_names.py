"""Submodule names in forward: stages registered with setattr and add_module, a wrapper that
forwards attribute lookups with its own __getattr__, a property and a mixin method called
like submodules, a classifier built by reset_classifier, an abstract base whose forward uses
what subclasses build; and the names that quantization edits left behind."""
import torch
import torch.nn as nn
from torch.ao.nn.quantized import FloatFunctional
from torch.ao.quantization import DeQuantStub, QuantStub


class ConvBNReLU(nn.Sequential):
    def __init__(self, cin: int, cout: int, stride: int = 1, groups: int = 1):
        super().__init__(nn.Conv2d(cin, cout, 3, stride, 1, groups=groups, bias=False), nn.BatchNorm2d(cout), nn.ReLU())


class HRStem(nn.Module):
    def __init__(self, widths=(16, 32, 64)):
        super().__init__()
        self.quant = QuantStub()
        self.stem = ConvBNReLU(3, widths[0], 2)
        for i in range(1, len(widths)):
            setattr(self, f"transition{i}", ConvBNReLU(widths[i - 1], widths[i], 2))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.dequant = DeQuantStub()

    def forward(self, x):
        x = self.stem(self.quant(x))
        x = self.transition2(self.transition1(x))
        return self.dequant(torch.flatten(self.pool(x), 1))


class DenseLayer(nn.Module):
    def __init__(self, cin: int, growth: int):
        super().__init__()
        self.conv = ConvBNReLU(cin, growth)
        self.cat = FloatFunctional()

    def forward(self, x):
        return self.cat.cat([x, self.conv(x)], 1)


class DenseLite(nn.Module):
    def __init__(self, growth: int = 8, layers: int = 2, num_classes: int = 10):
        super().__init__()
        self.add_module("quant", QuantStub())
        self.add_module("conv0", nn.Conv2d(3, 16, 3, 2, 1))
        self.add_module("relu0", nn.ReLU())
        for i in range(layers):
            self.add_module(f"denselayer{i + 1}", DenseLayer(16 + i * growth, growth))
        self.add_module("pool", nn.AdaptiveAvgPool2d(1))
        self.add_module("classifier", nn.Linear(16 + layers * growth, num_classes))
        self.add_module("dequant", DeQuantStub())

    def forward(self, x):
        x = self.relu0(self.conv0(self.quant(x)))
        x = self.denselayer2(self.denselayer1(x))
        return self.dequant(self.classifier(torch.flatten(self.pool(x), 1)))


class ChannelShuffleMixin:
    groups = 2

    def shuffle(self, x):
        b, c, h, w = x.shape
        return x.view(b, self.groups, c // self.groups, h, w).transpose(1, 2).reshape(b, c, h, w)


class _UnitBase(nn.Module):
    """Subclasses build branch and merge."""

    def forward(self, x):
        return self.shuffle(self.merge.cat([x, self.branch(x)], 1))


class ShuffleUnit(ChannelShuffleMixin, _UnitBase):
    def __init__(self, ch: int):
        super().__init__()
        self.branch = nn.Sequential(ConvBNReLU(ch, ch, groups=ch), nn.Conv2d(ch, ch, 1), nn.ReLU())
        self.merge = FloatFunctional()


class GatedClassifier(nn.Module):
    def __init__(self, num_classes: int = 10, num_features: int = 32, hard_gate: bool = True):
        super().__init__()
        self.hard_gate = hard_gate
        self.quant = QuantStub()
        self.features = nn.Sequential(ConvBNReLU(3, 16, 2), ShuffleUnit(16))
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self._hard = nn.Hardsigmoid()
        self._soft = nn.Sigmoid()
        self.gate_mul = FloatFunctional()
        self.dequant = DeQuantStub()
        self.reset_classifier(num_classes, num_features)

    @property
    def gate(self):
        return self._hard if self.hard_gate else self._soft

    def reset_classifier(self, num_classes: int, num_features: int):
        self.head = nn.Linear(num_features, num_classes) if num_classes > 0 else nn.Identity()

    def forward(self, x):
        x = torch.flatten(self.global_pool(self.features(self.quant(x))), 1)
        return self.dequant(self.head(self.gate_mul.mul(x, self.gate(x))))


class LiteNet(nn.Module):
    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.features = nn.Sequential(ConvBNReLU(3, 16, 2), ConvBNReLU(16, 32, 2))
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(32, num_classes)

    def forward(self, x):
        return self.head(torch.flatten(self.global_pool(self.features(x)), 1))


class DelegatingWrapper(nn.Module):
    """Adds stubs around a float model and exposes the model's attributes as its own."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.quant = QuantStub()
        self.dequant = DeQuantStub()

    def __getattr__(self, name):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self.model, name)

    def forward(self, x):
        x = torch.flatten(self.global_pool(self.features(self.quant(x))), 1)
        return self.dequant(self.head(x))


def quantizable_litenet(num_classes: int = 10) -> nn.Module:
    return DelegatingWrapper(LiteNet(num_classes))


class QuantizableMobileBlock(nn.Module):
    def __init__(self, ch: int = 16):
        super().__init__()
        self.quant = QuantStub()
        self.dw = ConvBNReLU(ch, ch, groups=ch)
        self.pw = nn.Conv2d(ch, ch, 1)
        self.skip_add = FloatFunctional()
        self.dequant = DeQuantStub()  # expect: QL704

    def forward(self, x):
        x = self.quant(x)
        x = self.skip_add.add(x, self.pw(self.dw(x)))
        return self.dequant_stub(x)  # expect: QL705


class PoolHead(nn.Module):
    def __init__(self, cin: int = 16, num_classes: int = 10):
        super().__init__()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.act = nn.ReLU()
        self.classifier = nn.Linear(cin, num_classes)

    def forward(self, x):
        return self.classifier(torch.flatten(self.act(self.pool(x)), 1))


class TwoLayerPoolHead(PoolHead):
    def __init__(self, cin: int = 16, num_classes: int = 10):
        super().__init__(cin, num_classes)
        self.hidden = nn.Linear(cin, cin)

    def forward(self, x):
        x = self.act(self.hidden(torch.flatten(self.pool(x), 1)))
        return self.classifer(self.act2(x))  # expect: QL705


class TimmStyleNet(nn.Module):
    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.quant = QuantStub()
        self.stem = ConvBNReLU(3, 16, 2)
        self.stages = nn.Sequential(ShuffleUnit(16), ConvBNReLU(32, 32, 2))
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(32, num_classes)
        self.dequant = DeQuantStub()

    def forward_features(self, x):
        return self.stages(self.stem(x))

    def forward_head(self, x, pre_logits: bool = False):
        x = torch.flatten(self.global_pool(x), 1)
        return x if pre_logits else self.head(x)

    def forward(self, x):
        return self.dequant(self.forward_head(self.forward_features(self.quant(x))))


class TimmStyleEmbedder(TimmStyleNet):
    def forward(self, x):
        x = self.forward_feature(self.quant(x))  # expect: QL705
        return self.dequant(self.forward_head(x, pre_logits=True))


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.features = nn.Sequential(ConvBNReLU(3, 16, 2), ShuffleUnit(16))
        self.head = PoolHead(32)

    def forward(self, x):
        return self.head(self.features(x))


class QuantizableNet(Net):
    def __init__(self):
        super().__init__()
        self.dequant = DeQuantStub()

    def forward(self, x):
        x = self.quant(x)  # expect: QL705
        return self.dequant(self.head(self.features(x)))
