"""torchvision-style quantizable classifiers: float base classes whose forward a Quantizable*
subclass wraps in QuantStub/DeQuantStub, float preprocessing (_transform_input) before the
stub, a _forward_impl shared by the float and the quantizable forward, and classifier heads
that leave the last Linear in float (one of them forgets to say so)."""
from typing import List, Optional

import torch
import torch.nn as nn
from torch import Tensor
from torch.ao.nn.quantized import FloatFunctional
from torch.ao.quantization import DeQuantStub, QuantStub, fuse_modules


class BasicConv2d(nn.Module):
    def __init__(self, cin: int, cout: int, **kwargs):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, bias=False, **kwargs)
        self.bn = nn.BatchNorm2d(cout, eps=0.001)
        self.relu = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        return self.relu(self.bn(self.conv(x)))

    def fuse_model(self) -> None:
        fuse_modules(self, ["conv", "bn", "relu"], inplace=True)


class Inception(nn.Module):
    def __init__(self, cin: int, ch1x1: int, ch3x3red: int, ch3x3: int, pool_proj: int):
        super().__init__()
        self.branch1 = BasicConv2d(cin, ch1x1, kernel_size=1)
        self.branch2 = nn.Sequential(
            BasicConv2d(cin, ch3x3red, kernel_size=1), BasicConv2d(ch3x3red, ch3x3, kernel_size=3, padding=1)
        )
        self.branch3 = nn.Sequential(
            nn.MaxPool2d(kernel_size=3, stride=1, padding=1, ceil_mode=True), BasicConv2d(cin, pool_proj, kernel_size=1)
        )
        self.cat = FloatFunctional()

    def _forward(self, x: Tensor) -> List[Tensor]:
        return [self.branch1(x), self.branch2(x), self.branch3(x)]

    def forward(self, x: Tensor) -> Tensor:
        return self.cat.cat(self._forward(x), 1)


class TinyGoogLeNet(nn.Module):
    def __init__(self, num_classes: int = 10, transform_input: bool = True):
        super().__init__()
        self.transform_input = transform_input
        self.conv1 = BasicConv2d(3, 16, kernel_size=7, stride=2, padding=3)
        self.maxpool1 = nn.MaxPool2d(3, stride=2, ceil_mode=True)
        self.inception3a = Inception(16, 8, 8, 16, 8)
        self.inception3b = Inception(32, 16, 8, 16, 8)
        self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
        self.dropout = nn.Dropout(0.2)
        self.fc = nn.Linear(40, num_classes)

    def _transform_input(self, x: Tensor) -> Tensor:
        if self.transform_input:
            x_ch0 = torch.unsqueeze(x[:, 0], 1) * (0.229 / 0.5) + (0.485 - 0.5) / 0.5
            x_ch1 = torch.unsqueeze(x[:, 1], 1) * (0.224 / 0.5) + (0.456 - 0.5) / 0.5
            x_ch2 = torch.unsqueeze(x[:, 2], 1) * (0.225 / 0.5) + (0.406 - 0.5) / 0.5
            x = torch.cat((x_ch0, x_ch1, x_ch2), 1)
        return x

    def _forward(self, x: Tensor) -> Tensor:
        x = self.maxpool1(self.conv1(x))
        x = self.inception3b(self.inception3a(x))
        x = torch.flatten(self.avgpool(x), 1)
        return self.fc(self.dropout(x))

    def forward(self, x: Tensor) -> Tensor:
        x = self._transform_input(x)
        return self._forward(x)


class QuantizableTinyGoogLeNet(TinyGoogLeNet):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.quant = QuantStub()
        self.dequant = DeQuantStub()

    def forward(self, x: Tensor) -> Tensor:
        x = self._transform_input(x)
        x = self.quant(x)
        x = self._forward(x)
        return self.dequant(x)

    def fuse_model(self) -> None:
        for m in self.modules():
            if type(m) is BasicConv2d:
                m.fuse_model()


class QuantizableBasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int = 1, downsample: Optional[nn.Module] = None):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.relu2 = nn.ReLU()
        self.downsample = downsample
        self.skip_add = FloatFunctional()

    def forward(self, x: Tensor) -> Tensor:
        identity = x
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        out = self.skip_add.add(out, identity)
        return self.relu2(out)


class QuantizableBottleneck(nn.Module):
    """Bottleneck whose shared ReLU was split into relu1/relu2 for fusion."""

    def __init__(self, planes: int):
        super().__init__()
        self.conv1 = nn.Conv2d(planes * 4, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu2 = nn.ReLU()
        self.conv3 = nn.Conv2d(planes, planes * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4)
        self.skip_add_relu = FloatFunctional()

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))  # expect: QL705
        out = self.bn3(self.conv3(out))
        return self.skip_add_relu.add_relu(out, x)


class ResNetLite(nn.Module):
    def __init__(self, widths=(16, 32, 64), num_classes: int = 10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, widths[0], 3, 2, 1, bias=False), nn.BatchNorm2d(widths[0]), nn.ReLU())
        blocks = []
        for cin, cout in zip(widths[:-1], widths[1:]):
            down = nn.Sequential(nn.Conv2d(cin, cout, 1, 2, bias=False), nn.BatchNorm2d(cout))
            blocks += [QuantizableBasicBlock(cin, cout, 2, down), QuantizableBasicBlock(cout, cout)]
        self.layers = nn.Sequential(*blocks)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(widths[-1], num_classes)

    def _forward_impl(self, x: Tensor) -> Tensor:
        x = self.layers(self.stem(x))
        x = torch.flatten(self.avgpool(x), 1)
        return self.fc(x)

    def forward(self, x: Tensor) -> Tensor:
        return self._forward_impl(x)


class QuantizableResNetLite(ResNetLite):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.quant = QuantStub()
        self.dequant = DeQuantStub()

    def forward(self, x: Tensor) -> Tensor:
        x = self.quant(x)
        x = self._forward_impl(x)
        return self.dequant(x)


class ResNetLiteFloatHead(QuantizableResNetLite):
    """Logits from a float Linear: the head is excluded from quantization."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fc.qconfig = None

    def forward(self, x: Tensor) -> Tensor:
        x = self.layers(self.stem(self.quant(x)))
        x = self.dequant(torch.flatten(self.avgpool(x), 1))
        return self.fc(x)


class ResNetLiteEarlyDequant(QuantizableResNetLite):
    """Same head, but the Linear still carries the model's qconfig."""

    def forward(self, x: Tensor) -> Tensor:
        x = self.layers(self.stem(self.quant(x)))
        x = self.dequant(torch.flatten(self.avgpool(x), 1))
        return self.fc(x)  # expect: QL701
