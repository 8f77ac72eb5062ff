"""Module and FloatFunctional reuse: siamese encoders, recurrent cells unrolled in a
loop, aliases made in __init__, and their hard negatives (stateless modules reused,
a ModuleList indexed per step, module classes instantiated twice, and modules that
only a non-forward method calls a second time)."""
import torch
import torch.nn as nn
from torch.ao.nn.quantized import FloatFunctional
from torch.ao.quantization import DeQuantStub, QuantStub


class SiameseEncoder(nn.Module):
    def __init__(self):
        super().__init__()
        self.quant = QuantStub()
        self.encoder = nn.Sequential(nn.Conv2d(3, 8, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.dequant = DeQuantStub()

    def forward(self, anchor, positive):
        ea = self.encoder(self.quant(anchor))
        ep = self.encoder(self.quant(positive))  # expect: QL401
        return self.dequant(ea), self.dequant(ep)


class Classifier(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.quant = QuantStub()
        self.features = nn.Sequential(nn.Conv2d(3, 16, 3, stride=2), nn.ReLU(), nn.AdaptiveAvgPool2d(2))
        self.flatten = nn.Flatten()
        self.dropout = nn.Dropout(0.2)
        self.fc1 = nn.Linear(64, 32)
        self.fc2 = nn.Linear(32, num_classes)
        self.identity = nn.Identity()
        self.dequant = DeQuantStub()

    def forward(self, x):
        x = self.identity(self.features(self.quant(x)))
        x = self.dropout(self.flatten(x))
        x = self.dropout(self.fc1(x))
        return self.dequant(self.identity(self.fc2(x)))

    def extract_features(self, x):
        """Used by the retrieval demo only; never called from forward."""
        return self.dequant(self.flatten(self.features(self.quant(x))))


class UnrolledRNN(nn.Module):
    def __init__(self, dim=8, steps=4):
        super().__init__()
        self.steps = steps
        self.quant = QuantStub()
        self.ih = nn.Linear(dim, dim)
        self.hh = nn.Linear(dim, dim)
        self.adds = nn.ModuleList(FloatFunctional() for _ in range(steps))
        self.dequant = DeQuantStub()

    def forward(self, x):
        x = self.quant(x)
        h = self.ih(x[:, 0])
        for t in range(1, self.steps):
            h = self.adds[t].add_relu(self.ih(x[:, t]), self.hh(h))  # expect: QL401
        return self.dequant(h)


class AliasedStack(nn.Module):
    def __init__(self, ch=8, norm_layer=nn.BatchNorm2d, act_layer=nn.ReLU):
        super().__init__()
        act = nn.ReLU()
        self.body = nn.Sequential(nn.Conv2d(ch, ch, 3, padding=1), act, nn.Conv2d(ch, ch, 3, padding=1), act)  # expect: QL402
        self.blocks = nn.ModuleList([nn.Conv2d(ch, ch, 1) for _ in range(3)])
        self.last_block = self.blocks[-1]  # expect: QL402
        self.bn_a = norm_layer(ch)
        self.bn_b = norm_layer(ch)
        self.head = nn.Sequential(*[act_layer() for _ in range(2)])
        self.tail = nn.Sequential(*[nn.ReLU()] * 2)  # expect: QL402

    def forward(self, x):
        x = self.bn_a(self.body(x))
        for block in self.blocks:
            x = block(x)
        return self.tail(self.head(self.bn_b(x)))


class GatedResidual(nn.Module):
    def __init__(self, ch=8):
        super().__init__()
        self.gate = nn.Sequential(nn.Conv2d(ch, ch, 1), nn.Sigmoid())
        self.ff = FloatFunctional()
        self.mul = FloatFunctional()
        self.add_relu = FloatFunctional()

    def forward(self, x):
        y = self.ff.mul(x, self.gate(x))
        return self.ff.add_relu(y, x)  # expect: QL403

    def forward_fixed(self, x):
        return self.add_relu.add_relu(self.mul.mul(x, self.gate(x)), x)
