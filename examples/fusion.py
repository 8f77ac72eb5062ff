"""fuse_model done wrong and right, and the ways one module instance ends up
serving two places: aliased attributes, a Sequential listing one activation
twice, a FloatFunctional or a block reused across calls and loop iterations."""
import torch.nn as nn
from torch.ao.nn.quantized import FloatFunctional
from torch.ao.quantization import DeQuantStub, QuantStub, fuse_modules


class StaleFuseNet(nn.Module):
    """fuse_model kept from an older forward: a typo, a pair that is no longer
    back to back, and a conv-bn pair added later and never listed."""

    def __init__(self, num_classes=10):
        super().__init__()
        self.quant = QuantStub()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
        self.pool = nn.AvgPool2d(2)
        self.relu2 = nn.ReLU()
        self.conv3 = nn.Conv2d(16, 16, 3, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(16)
        self.fc = nn.Linear(16, 32)
        self.fc_relu = nn.ReLU()
        self.classifier = nn.Linear(32, num_classes)
        self.dequant = DeQuantStub()

    def forward(self, x):
        x = self.quant(x)
        x = self.relu1(self.bn1(self.conv1(x)))  # allow: QL503
        x = self.relu2(self.pool(self.conv2(x)))
        x = self.bn3(self.conv3(x))  # expect: QL503
        x = self.fc_relu(self.fc(x.mean((2, 3))))
        return self.dequant(self.classifier(x))

    def fuse_model(self):
        fuse_modules(self, [["conv1", "bn_1", "relu1"]], inplace=True)  # expect: QL501
        fuse_modules(self, [["conv2", "relu2"]], inplace=True)  # expect: QL502
        fuse_modules(self, [["fc", "fc_relu"]], inplace=True)


class SharedActivationStem(nn.Module):
    """Activations shared by aliasing: fusion leaves both names in place, but
    prepare gives the two uses one observer."""

    def __init__(self, channels=8):
        super().__init__()
        self.conv1 = nn.Conv2d(3, channels, 3, padding=1)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.relu2 = self.relu1  # expect: QL402
        act = nn.Hardswish()
        self.head = nn.Sequential(nn.Conv2d(channels, channels, 1), act, nn.Conv2d(channels, channels, 1), act)  # expect: QL402

    def forward(self, x):
        x = self.relu1(self.conv1(x))
        x = self.relu2(self.conv2(x))
        return self.head(x)


class IterativeRefiner(nn.Module):
    """Recurrent refinement and dense skips through shared modules."""

    def __init__(self, channels=8, iterations=3):
        super().__init__()
        self.iterations = iterations
        self.refine = nn.Conv2d(channels, channels, 3, padding=1)
        self.convs = nn.ModuleList(nn.Conv2d(channels, channels, 3, padding=1) for _ in range(2))
        self.skip = FloatFunctional()
        self.merge = FloatFunctional()

    def forward(self, x):
        for _ in range(self.iterations):
            x = self.refine(x)  # expect: QL401
        for conv in self.convs:
            x = self.skip.add(x, conv(x))  # expect: QL403
        y = self.merge.add(x, x)
        return self.merge.mul(y, x)  # expect: QL403


class QuantizableStem(nn.Module):
    """Every fusible group listed, one activation and one FloatFunctional per use,
    a FloatFunctional per loop iteration from a ModuleList."""

    def __init__(self, channels=8, num_classes=10):
        super().__init__()
        self.quant = QuantStub()
        self.conv1 = nn.Conv2d(3, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1)
        self.relu2 = nn.ReLU()
        self.pool = nn.AvgPool2d(2)
        self.convs = nn.ModuleList(nn.Conv2d(channels, channels, 3, padding=1) for _ in range(2))
        self.skips = nn.ModuleList(FloatFunctional() for _ in range(2))
        self.conv3 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn3 = nn.BatchNorm2d(channels)
        self.fc = nn.Linear(channels, 32)
        self.fc_relu = nn.ReLU()
        self.classifier = nn.Linear(32, num_classes)
        self.dequant = DeQuantStub()

    def forward(self, x):
        x = self.quant(x)
        x = self.relu1(self.bn1(self.conv1(x)))
        x = self.pool(self.relu2(self.conv2(x)))
        for conv, skip in zip(self.convs, self.skips):
            x = skip.add(x, conv(x))
        x = self.bn3(self.conv3(x))
        x = self.fc_relu(self.fc(x.mean((2, 3))))
        return self.dequant(self.classifier(x))

    def fuse_model(self):
        fuse_modules(
            self,
            [["conv1", "bn1", "relu1"], ["conv2", "relu2"], ["conv3", "bn3"], ["fc", "fc_relu"]],
            inplace=True,
        )
