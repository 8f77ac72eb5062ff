"""ResNet-family blocks as float model zoos write them (shared in-place ReLU,
functional activations under import aliases, tensor arithmetic on the
residual path), next to a quantization-ready ResNet that fuses every group."""
import torch as T
import torch.nn as nn
from torch.ao.nn.quantized import FloatFunctional
from torch.ao.quantization import DeQuantStub, QuantStub, fuse_modules, fuse_modules_qat
from torch.nn import functional as Fn
from torch.nn.functional import relu as r


def conv3x3(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=3, stride=stride, padding=1, bias=False)


def conv1x1(in_planes: int, out_planes: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(in_planes, out_planes, kernel_size=1, stride=stride, bias=False)


class BasicBlock(nn.Module):
    """One in-place ReLU serves both activations; the residual is a plain tensor add."""

    expansion = 1

    def __init__(self, inplanes, planes, stride=1):
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)  # expect: QL201
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(conv1x1(inplanes, planes, stride), nn.BatchNorm2d(planes))

    def forward(self, x):
        identity = x
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.downsample is not None:
            identity = self.downsample(x)
        out = T.add(out, identity)  # expect: QL302
        return self.relu(out)  # expect: QL401


class PreActBottleneck(nn.Module):
    """Pre-activation bottleneck (ResNet v2) with functional ReLUs under import aliases."""

    expansion = 4

    def __init__(self, inplanes, planes, stride=1):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(inplanes)
        self.conv1 = conv1x1(inplanes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = conv3x3(planes, planes, stride)
        self.bn3 = nn.BatchNorm2d(planes)
        self.conv3 = conv1x1(planes, planes * self.expansion)
        self.shortcut = None
        if stride != 1 or inplanes != planes * self.expansion:
            self.shortcut = conv1x1(inplanes, planes * self.expansion, stride)

    def forward(self, x):
        out = r(self.bn1(x))  # expect: QL101
        shortcut = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv1(out)
        out = self.conv2(T.relu(self.bn2(out)))  # expect: QL101
        out = self.conv3(self.bn3(out).relu_())  # expect: QL101, QL202
        return out.add_(shortcut)  # expect: QL202; allow: QL302


class EDSRResBlock(nn.Module):
    """Super-resolution residual block (EDSR): scaled residual added in place."""

    def __init__(self, channels, res_scale=0.1):
        super().__init__()
        self.body = nn.Sequential(conv3x3(channels, channels), nn.ReLU(True), conv3x3(channels, channels))  # expect: QL201
        self.res_scale = res_scale

    def forward(self, x):
        res = self.body(x).mul(self.res_scale)  # expect: QL302
        res += x  # expect: QL203
        return res


class BlurPool(nn.Module):
    """Anti-aliased downsampling: a fixed binomial filter applied with F.conv2d."""

    def __init__(self, channels, stride=2):
        super().__init__()
        self.channels = channels
        self.stride = stride
        taps = T.tensor([1.0, 2.0, 1.0])
        kernel = taps[:, None] * taps[None, :]
        self.register_buffer("kernel", (kernel / kernel.sum()).expand(channels, 1, 3, 3).clone())

    def forward(self, x):
        x = Fn.pad(x, (1, 1, 1, 1), mode="reflect")
        return Fn.conv2d(x, self.kernel, stride=self.stride, groups=self.channels)  # expect: QL103


class ResNet(nn.Module):
    """A small torchvision-style ResNet built from BasicBlock."""

    def __init__(self, layers=(1, 1), num_classes=10):
        super().__init__()
        self.inplanes = 16
        self.conv1 = nn.Conv2d(3, 16, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu = nn.ReLU(inplace=True)  # expect: QL201
        self.layer1 = self._make_layer(16, layers[0])
        self.layer2 = self._make_layer(32, layers[1], stride=2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(p=0.2, inplace=True)  # expect: QL201
        self.fc = nn.Linear(32, num_classes)

    def _make_layer(self, planes, blocks, stride=1):
        layers = [BasicBlock(self.inplanes, planes, stride)]
        self.inplanes = planes * BasicBlock.expansion
        layers += [BasicBlock(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def _forward_impl(self, x):
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer2(self.layer1(x))
        x = T.flatten(self.avgpool(x), 1)
        return self.fc(self.dropout(x))

    def forward(self, x):
        return self._forward_impl(x)


class QuantizableBasicBlock(nn.Module):
    """BasicBlock ready for eager-mode quantization: a ReLU module per activation,
    the residual add and its ReLU in one FloatFunctional, every conv-bn(-relu) fused."""

    expansion = 1

    def __init__(self, inplanes, planes, stride=1):
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu1 = nn.ReLU()
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.has_downsample = stride != 1 or inplanes != planes
        if self.has_downsample:
            self.down_conv = conv1x1(inplanes, planes, stride)
            self.down_bn = nn.BatchNorm2d(planes)
        self.add_relu = FloatFunctional()

    def forward(self, x):
        identity = x
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        if self.has_downsample:
            identity = self.down_bn(self.down_conv(x))
        return self.add_relu.add_relu(out, identity)

    def fuse_model(self, is_qat=False):
        fuse = fuse_modules_qat if is_qat else fuse_modules
        fuse(self, [["conv1", "bn1", "relu1"], ["conv2", "bn2"]], inplace=True)
        if self.has_downsample:
            fuse(self, [["down_conv", "down_bn"]], inplace=True)


class QuantizableResNet(nn.Module):
    """The ResNet above with stubs at the borders; stages are called once each from a loop."""

    def __init__(self, widths=(16, 32), num_classes=10):
        super().__init__()
        self.quant = QuantStub()
        self.conv1 = nn.Conv2d(3, widths[0], 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(widths[0])
        self.relu = nn.ReLU()
        stages = []
        inplanes = widths[0]
        for index, planes in enumerate(widths):
            stages.append(QuantizableBasicBlock(inplanes, planes, stride=1 if index == 0 else 2))
            inplanes = planes
        self.stages = nn.ModuleList(stages)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.dropout = nn.Dropout(p=0.2)
        self.fc = nn.Linear(inplanes, num_classes)
        self.dequant = DeQuantStub()

    def forward(self, x):
        x = self.quant(x)
        x = self.relu(self.bn1(self.conv1(x)))
        for stage in self.stages:
            x = stage(x)
        x = T.flatten(self.avgpool(x), 1)
        x = self.fc(self.dropout(x))
        return self.dequant(x)

    def fuse_model(self, is_qat=False):
        fuse = fuse_modules_qat if is_qat else fuse_modules
        fuse(self, [["conv1", "bn1", "relu"]], inplace=True)
        for stage in self.stages:
            stage.fuse_model(is_qat)
