"""torchvision-style quantizable MobileNetV3: ConvBNActivation blocks built as
Sequentials, a squeeze-excitation with a FloatFunctional multiply, and a fuse_model
that walks the tree. The stem and the classifier were edited later."""
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.ao.nn.quantized import FloatFunctional
from torch.ao.quantization import DeQuantStub, QuantStub, fuse_modules


def _make_divisible(v, divisor=8, min_value=None):
    min_value = min_value or divisor
    new_v = max(min_value, int(v + divisor / 2) // divisor * divisor)
    if new_v < 0.9 * v:
        new_v += divisor
    return new_v


class ConvBNActivation(nn.Sequential):
    def __init__(self, in_planes, out_planes, kernel_size=3, stride=1, groups=1, norm_layer=nn.BatchNorm2d,
                 activation_layer=nn.ReLU):
        padding = (kernel_size - 1) // 2
        super().__init__(
            nn.Conv2d(in_planes, out_planes, kernel_size, stride, padding, groups=groups, bias=False),
            norm_layer(out_planes),
            activation_layer(),
        )


class QuantizableSqueezeExcitation(nn.Module):
    def __init__(self, input_channels, squeeze_factor=4):
        super().__init__()
        squeeze_channels = _make_divisible(input_channels // squeeze_factor, 8)
        self.fc1 = nn.Conv2d(input_channels, squeeze_channels, 1)
        self.relu = nn.ReLU()
        self.fc2 = nn.Conv2d(squeeze_channels, input_channels, 1)
        self.scale_activation = nn.Hardsigmoid()
        self.skip_mul = FloatFunctional()

    def forward(self, x):
        scale = F.adaptive_avg_pool2d(x, 1)
        scale = self.scale_activation(self.fc2(self.relu(self.fc1(scale))))
        return self.skip_mul.mul(scale, x)

    def fuse_model(self):
        fuse_modules(self, ["fc1", "relu"], inplace=True)


class QuantizableInvertedResidual(nn.Module):
    def __init__(self, inp, hidden, oup, stride, use_se, use_hs):
        super().__init__()
        act = nn.Hardswish if use_hs else nn.ReLU
        layers = []
        if hidden != inp:
            layers.append(ConvBNActivation(inp, hidden, kernel_size=1, activation_layer=act))
        layers.append(ConvBNActivation(hidden, hidden, stride=stride, groups=hidden, activation_layer=act))
        if use_se:
            layers.append(QuantizableSqueezeExcitation(hidden))
        layers.append(ConvBNActivation(hidden, oup, kernel_size=1, activation_layer=nn.Identity))
        self.block = nn.Sequential(*layers)
        self.use_res_connect = stride == 1 and inp == oup
        self.skip_add = FloatFunctional()

    def forward(self, x):
        if self.use_res_connect:
            return self.skip_add.add(x, self.block(x))
        return self.block(x)


class QuantizableMobileNetV3(nn.Module):
    def __init__(self, width_mult=1.0, num_classes=10):
        super().__init__()
        stem = _make_divisible(16 * width_mult)
        self.quant = QuantStub()
        self.stem_conv = nn.Conv2d(3, stem, 3, 2, 1, bias=False)  # allow: QL503
        self.stem_bn = nn.BatchNorm2d(stem)
        self.stem_act = nn.Hardswish()
        self.blocks = nn.Sequential(
            QuantizableInvertedResidual(stem, stem, stem, 1, True, False),
            QuantizableInvertedResidual(stem, 4 * stem, 24, 2, False, True),
        )
        last = _make_divisible(24 * 6 * width_mult)
        self.last_conv = ConvBNActivation(24, last, kernel_size=1, activation_layer=nn.Hardswish)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(
            nn.Linear(last, 128),
            nn.Hardswish(),
            nn.Dropout(p=0.2, inplace=True),  # expect: QL201
            nn.Linear(128, num_classes),
        )
        self.dequant = DeQuantStub()

    def forward(self, x):
        x = self.quant(x)
        x = self.stem_conv(x)  # expect: QL503
        x = self.stem_act(self.stem_bn(x))
        x = self.last_conv(self.blocks(x))
        x = torch.flatten(self.avgpool(x), 1)
        x = self.classifier(x)
        return self.dequant(x)

    def fuse_model(self, is_qat=False):
        for m in self.modules():
            if type(m) is ConvBNActivation:
                modules_to_fuse = ["0", "1"]
                if len(m) == 3 and type(m[2]) is nn.ReLU:
                    modules_to_fuse.append("2")
                fuse_modules(m, modules_to_fuse, inplace=True)
            elif type(m) is QuantizableSqueezeExcitation:
                m.fuse_model()


class MobileNetV3WithFunctionalHead(QuantizableMobileNetV3):
    def forward(self, x):
        x = self.quant(x)
        x = self.stem_act(self.stem_bn(self.stem_conv(x)))  # expect: QL503
        x = self.last_conv(self.blocks(x))
        x = F.hardswish(self.avgpool(x))  # expect: QL102
        x = self.classifier(torch.flatten(x, 1))
        return self.dequant(x)
