"""MobileNetV3 / EfficientNet-style blocks: functional hard-swish, SiLU and ReLU6,
squeeze-excitation gates multiplied in as tensors, hand-written activations from
old ports, next to a quantization-ready MobileNetV3 with a module per activation."""
import torch
import torch.nn as nn
from torch.ao.nn.quantized import FloatFunctional
from torch.ao.quantization import DeQuantStub, QuantStub, fuse_modules
from torch.nn import functional as Fn


def _make_divisible(value: float, divisor: int = 8) -> int:
    new_value = max(divisor, int(value + divisor / 2) // divisor * divisor)
    if new_value < 0.9 * value:
        new_value += divisor
    return new_value


class HSwish(nn.Module):
    """Hard-swish as the first MobileNetV3 ports wrote it, before nn.Hardswish existed."""

    def forward(self, x):
        return x * Fn.relu6(x + 3.0) / 6.0  # expect: QL101, QL301, QL303


class Swish(nn.Module):
    def forward(self, x):
        return x * torch.sigmoid(x)  # expect: QL301


class ChannelPReLU(nn.Module):
    """PReLU spelled out with a learnable slope, as in ports from other frameworks."""

    def __init__(self, channels):
        super().__init__()
        self.alpha = nn.Parameter(torch.full((channels, 1, 1), 0.25))

    def forward(self, x):
        return Fn.relu(x) - self.alpha * Fn.relu(-x)  # expect: QL101, QL104, QL301, QL504


class SqueezeExcitation(nn.Module):
    def __init__(self, channels, squeeze_factor=4):
        super().__init__()
        squeeze = _make_divisible(channels // squeeze_factor)
        self.fc1 = nn.Conv2d(channels, squeeze, 1)
        self.fc2 = nn.Conv2d(squeeze, channels, 1)

    def _scale(self, x):
        scale = Fn.adaptive_avg_pool2d(x, 1)
        scale = Fn.relu(self.fc1(scale), inplace=True)  # expect: QL101, QL202
        return Fn.hardsigmoid(self.fc2(scale))

    def forward(self, x):
        return x.mul(self._scale(x))  # expect: QL302


class InvertedResidual(nn.Module):
    """MobileNetV3 block: activation chosen per block, applied functionally."""

    def __init__(self, inp, oup, kernel_size, stride, expand_ratio, use_se, use_hs):
        super().__init__()
        hidden = _make_divisible(inp * expand_ratio)
        self.use_res_connect = stride == 1 and inp == oup
        self.use_hs = use_hs
        self.expand = nn.Conv2d(inp, hidden, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(hidden)
        self.dw = nn.Conv2d(hidden, hidden, kernel_size, stride, kernel_size // 2, groups=hidden, bias=False)
        self.bn2 = nn.BatchNorm2d(hidden)
        self.se = SqueezeExcitation(hidden) if use_se else nn.Identity()
        self.project = nn.Conv2d(hidden, oup, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(oup)

    def _act(self, x):
        return Fn.hardswish(x) if self.use_hs else Fn.relu6(x)  # expect: QL101, QL102

    def forward(self, x):
        out = self._act(self.bn1(self.expand(x)))
        out = self.se(self._act(self.bn2(self.dw(out))))
        out = self.bn3(self.project(out))
        if self.use_res_connect:
            out = out + x  # expect: QL301
        return out


class MBConv(nn.Module):
    """EfficientNet block: SiLU activations and stochastic depth on the residual."""

    def __init__(self, channels, expand_ratio=4, drop_path=0.1):
        super().__init__()
        hidden = channels * expand_ratio
        self.drop_path = drop_path
        self.expand = nn.Conv2d(channels, hidden, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(hidden)
        self.dw = nn.Conv2d(hidden, hidden, 3, 1, 1, groups=hidden, bias=False)
        self.bn2 = nn.BatchNorm2d(hidden)
        self.act2 = Swish()
        self.project = nn.Conv2d(hidden, channels, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(channels)

    def forward(self, x):
        out = Fn.silu(self.bn1(self.expand(x)))  # expect: QL102
        out = self.act2(self.bn2(self.dw(out)))
        out = self.bn3(self.project(out))
        if self.training and self.drop_path > 0:
            keep = torch.rand(x.size(0), 1, 1, 1) >= self.drop_path
            out = out * keep / (1.0 - self.drop_path)  # expect: QL301, QL303
        return x + out  # expect: QL301


class MobileNetV3(nn.Module):
    def __init__(self, num_classes=10, width_mult=1.0):
        super().__init__()
        stem = _make_divisible(16 * width_mult)
        self.stem = nn.Conv2d(3, stem, 3, 2, 1, bias=False)
        self.stem_bn = nn.BatchNorm2d(stem)
        self.stem_act = HSwish()
        self.blocks = nn.Sequential(
            InvertedResidual(stem, stem, 3, 1, 1, use_se=True, use_hs=False),
            InvertedResidual(stem, 24, 3, 2, 4, use_se=False, use_hs=True),
            MBConv(24),
        )
        self.classifier = nn.Sequential(
            nn.Linear(24, 64),
            nn.Hardswish(),
            nn.Dropout(0.2, inplace=True),  # expect: QL201
            nn.Linear(64, num_classes),
        )

    def forward(self, x):
        x = self.stem_act(self.stem_bn(self.stem(x)))
        x = self.blocks(x)
        return self.classifier(Fn.adaptive_avg_pool2d(x, 1).flatten(1))


class QuantizableSqueezeExcitation(nn.Module):
    def __init__(self, channels, squeeze_factor=4):
        super().__init__()
        squeeze = _make_divisible(channels // squeeze_factor)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc1 = nn.Conv2d(channels, squeeze, 1)
        self.relu = nn.ReLU()
        self.fc2 = nn.Conv2d(squeeze, channels, 1)
        self.gate = nn.Hardsigmoid()
        self.scale_mul = FloatFunctional()

    def forward(self, x):
        scale = self.gate(self.fc2(self.relu(self.fc1(self.pool(x)))))
        return self.scale_mul.mul(x, scale)

    def fuse_model(self):
        fuse_modules(self, [["fc1", "relu"]], inplace=True)


class QuantizableInvertedResidual(nn.Module):
    """Hard-swish blocks as modules, the residual through FloatFunctional."""

    def __init__(self, inp, oup, kernel_size, stride, expand_ratio, use_se):
        super().__init__()
        hidden = _make_divisible(inp * expand_ratio)
        self.use_res_connect = stride == 1 and inp == oup
        self.expand = nn.Conv2d(inp, hidden, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(hidden)
        self.act1 = nn.Hardswish()
        self.dw = nn.Conv2d(hidden, hidden, kernel_size, stride, kernel_size // 2, groups=hidden, bias=False)
        self.bn2 = nn.BatchNorm2d(hidden)
        self.act2 = nn.Hardswish()
        self.se = QuantizableSqueezeExcitation(hidden) if use_se else nn.Identity()
        self.project = nn.Conv2d(hidden, oup, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(oup)
        self.skip_add = FloatFunctional()

    def forward(self, x):
        out = self.act1(self.bn1(self.expand(x)))
        out = self.se(self.act2(self.bn2(self.dw(out))))
        out = self.bn3(self.project(out))
        if self.use_res_connect:
            return self.skip_add.add(out, x)
        return out

    def fuse_model(self):
        fuse_modules(self, [["expand", "bn1"], ["dw", "bn2"], ["project", "bn3"]], inplace=True)
        if isinstance(self.se, QuantizableSqueezeExcitation):
            self.se.fuse_model()


class QuantizableMobileNetV3(nn.Module):
    def __init__(self, num_classes=10, width_mult=1.0):
        super().__init__()
        stem = _make_divisible(16 * width_mult)
        self.quant = QuantStub()
        self.stem = nn.Conv2d(3, stem, 3, 2, 1, bias=False)
        self.stem_bn = nn.BatchNorm2d(stem)
        self.stem_act = nn.Hardswish()
        self.blocks = nn.Sequential(
            QuantizableInvertedResidual(stem, stem, 3, 1, 1, use_se=True),
            QuantizableInvertedResidual(stem, 24, 3, 2, 4, use_se=False),
            QuantizableInvertedResidual(24, 24, 5, 1, 3, use_se=True),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Sequential(
            nn.Linear(24, 64),
            nn.Hardswish(),
            nn.Dropout(0.2),
            nn.Linear(64, num_classes),
        )
        self.dequant = DeQuantStub()

    def forward(self, x):
        x = self.quant(x)
        x = self.stem_act(self.stem_bn(self.stem(x)))
        x = self.blocks(x)
        x = self.classifier(self.pool(x).flatten(1))
        return self.dequant(x)

    def fuse_model(self):
        fuse_modules(self, [["stem", "stem_bn"]], inplace=True)
        for module in self.modules():
            if type(module) is QuantizableInvertedResidual:
                module.fuse_model()
