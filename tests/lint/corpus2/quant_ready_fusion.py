"""Hand-written quantization-ready MobileNetV2/ResNet pieces with fuse_model methods, correct and
stale (a renamed layer, the wrong order, a group across a pooling op, a shared activation)."""
from typing import List

import torch.nn as nn
from torch import Tensor
from torch.ao.nn.quantized import FloatFunctional
from torch.ao.quantization import DeQuantStub, QuantStub, fuse_modules, fuse_modules_qat


class ConvBNReLU(nn.Sequential):
    def __init__(self, in_ch: int, out_ch: int, kernel_size: int = 3, stride: int = 1, groups: int = 1):
        super().__init__(
            nn.Conv2d(in_ch, out_ch, kernel_size, stride, (kernel_size - 1) // 2, groups=groups, bias=False), nn.BatchNorm2d(out_ch), nn.ReLU()
        )


class QuantInvertedResidual(nn.Module):
    def __init__(self, inp: int, oup: int, stride: int, expand_ratio: int):
        super().__init__()
        hidden = inp * expand_ratio
        self.use_res_connect = stride == 1 and inp == oup
        layers: List[nn.Module] = [ConvBNReLU(inp, hidden, kernel_size=1)] if expand_ratio != 1 else []
        layers += [ConvBNReLU(hidden, hidden, stride=stride, groups=hidden), nn.Conv2d(hidden, oup, 1, bias=False), nn.BatchNorm2d(oup)]
        self.conv = nn.Sequential(*layers)
        self.skip_add = FloatFunctional()

    def forward(self, x: Tensor) -> Tensor:
        return self.skip_add.add(x, self.conv(x)) if self.use_res_connect else self.conv(x)


class QuantMobileNetV2(nn.Module):
    def __init__(self, num_classes: int = 10, width_mult: float = 0.25, setting=((1, 16, 1, 1), (6, 24, 2, 2))):
        super().__init__()
        input_channel = max(8, int(32 * width_mult))
        last_channel = max(16, int(1280 * width_mult))
        features: List[nn.Module] = [ConvBNReLU(3, input_channel, stride=2)]
        for t, c, n, s in setting:
            output_channel = max(8, int(c * width_mult))
            for i in range(n):
                features.append(QuantInvertedResidual(input_channel, output_channel, s if i == 0 else 1, t))
                input_channel = output_channel
        features.append(ConvBNReLU(input_channel, last_channel, kernel_size=1))
        self.features = nn.Sequential(*features)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(last_channel, num_classes))
        self.quant = QuantStub()
        self.dequant = DeQuantStub()

    def forward(self, x: Tensor) -> Tensor:
        x = self.features(self.quant(x))
        x = x.mean((2, 3)).reshape(x.shape[0], -1)
        return self.dequant(self.classifier(x))

    def fuse_model(self, is_qat: bool = False):
        fuse = fuse_modules_qat if is_qat else fuse_modules
        for m in self.modules():
            if type(m) is ConvBNReLU:
                fuse(m, ["0", "1", "2"], inplace=True)
            elif type(m) is QuantInvertedResidual:
                for idx in range(len(m.conv)):
                    if type(m.conv[idx]) is nn.Conv2d:
                        fuse(m.conv, [str(idx), str(idx + 1)], inplace=True)


class RenamedBottleneck(nn.Module):
    """conv3/bn3 were renamed project/project_bn; fuse_model still lists the old names."""

    def __init__(self, inplanes: int, planes: int):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.relu2 = nn.ReLU()
        self.project = nn.Conv2d(planes, inplanes, 1, bias=False)
        self.project_bn = nn.BatchNorm2d(inplanes)
        self.add_relu = FloatFunctional()

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.relu2(self.bn2(self.conv2(out)))
        out = self.project_bn(self.project(out))  # expect: QL503
        return self.add_relu.add_relu(out, x)

    def fuse_model(self, is_qat: bool = False):
        fuse = fuse_modules_qat if is_qat else fuse_modules
        fuse(self, [[f"conv{i}", f"bn{i}", f"relu{i}"] for i in (1, 2)], inplace=True)
        fuse(self, ["conv3", "bn3"], inplace=True)  # expect: QL501


class StaleStem(nn.Module):
    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.quant = QuantStub()
        self.conv1 = nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.pool = nn.MaxPool2d(2)
        self.relu2 = nn.ReLU()
        self.fc = nn.Linear(8, num_classes)
        self.dequant = DeQuantStub()

    def forward(self, x: Tensor) -> Tensor:
        x = self.relu(self.bn1(self.conv1(self.quant(x))))
        x = self.relu2(self.pool(self.conv2(x)))
        x = self.relu(x.mean((2, 3)))  # expect: QL401
        return self.dequant(self.fc(x))

    def fuse_model(self):
        fuse_modules(self, ["conv1", "bn1", "relu"], inplace=True)  # expect: QL502
        fuse_modules(self, ["conv2", "relu2"], inplace=True)  # expect: QL502


class WrongOrderHead(nn.Module):
    def __init__(self, ch: int = 8, num_classes: int = 10):
        super().__init__()
        self.conv = nn.Conv2d(ch, ch, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(ch)
        self.fc = nn.Linear(ch, num_classes)
        self.fc_relu = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        # The stale group names conv and bn, in the wrong order: whether they count as left out is open.
        y = self.bn(self.conv(x))  # allow: QL503
        return self.fc_relu(self.fc(y.mean((2, 3))))

    def fuse_model(self):
        fuse_modules(self, [["bn", "conv"], ["fc", "fc_relu"]], inplace=True)  # expect: QL502


class QuantRGBDNet(nn.Module):
    def __init__(self, ch: int = 8, num_classes: int = 10):
        super().__init__()
        self.quant_rgb, self.quant_depth = QuantStub(), QuantStub()
        self.rgb = ConvBNReLU(3, ch)
        self.depth = ConvBNReLU(1, ch)
        self.cat = FloatFunctional()
        self.head = nn.Linear(2 * ch, num_classes)
        self.dequant = DeQuantStub()

    def forward(self, rgb: Tensor, depth: Tensor) -> Tensor:
        x = self.cat.cat([self.rgb(self.quant_rgb(rgb)), self.depth(self.quant_depth(depth))], dim=1)
        return self.dequant(self.head(x.mean((2, 3))))

    def fuse_model(self, is_qat: bool = False):
        for branch in (self.rgb, self.depth):
            (fuse_modules_qat if is_qat else fuse_modules)(branch, ["0", "1", "2"], inplace=True)
