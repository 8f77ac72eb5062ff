"""Concatenation-heavy classics (VGG, Inception, DenseNet, SqueezeNet) next to a
quantization-ready Fire module and dense blocks that concatenate through FloatFunctional."""
from typing import List

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor
from torch.ao.nn.quantized import FloatFunctional
from torch.ao.quantization import fuse_modules


class VGG(nn.Module):
    cfg = [16, "M", 32, 32, "M"]

    def __init__(self, num_classes: int = 10, batch_norm: bool = True):
        super().__init__()
        self.features = self.make_layers(self.cfg, batch_norm)
        self.classifier = nn.Sequential(nn.Linear(32 * 2 * 2, 64), nn.ReLU(True), nn.Dropout(p=0.5), nn.Linear(64, num_classes))  # expect: QL201

    @staticmethod
    def make_layers(cfg, batch_norm: bool, in_channels: int = 3) -> nn.Sequential:
        layers: List[nn.Module] = []
        for v in cfg:
            if v == "M":
                layers += [nn.MaxPool2d(kernel_size=2, stride=2)]
                continue
            conv = nn.Conv2d(in_channels, v, kernel_size=3, padding=1)
            layers += [conv, nn.BatchNorm2d(v), nn.ReLU(inplace=True)] if batch_norm else [conv, nn.ReLU(inplace=True)]  # expect: QL201
            in_channels = v
        return nn.Sequential(*layers)

    def forward(self, x: Tensor) -> Tensor:
        x = F.adaptive_avg_pool2d(self.features(x), (2, 2))
        return self.classifier(torch.flatten(x, 1))


class BasicConv2d(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, **kwargs):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, bias=False, **kwargs)
        self.bn = nn.BatchNorm2d(out_channels, eps=0.001)

    def forward(self, x: Tensor) -> Tensor:
        return F.relu(self.bn(self.conv(x)), inplace=True)  # expect: QL101, QL202


class Inception(nn.Module):
    def __init__(self, in_ch: int, ch1x1: int, ch3x3red: int, ch3x3: int, pool_proj: int):
        super().__init__()
        self.branch1 = BasicConv2d(in_ch, ch1x1, kernel_size=1)
        self.branch2 = nn.Sequential(BasicConv2d(in_ch, ch3x3red, kernel_size=1), BasicConv2d(ch3x3red, ch3x3, kernel_size=3, padding=1))
        self.branch3 = nn.Sequential(nn.MaxPool2d(kernel_size=3, stride=1, padding=1, ceil_mode=True), BasicConv2d(in_ch, pool_proj, kernel_size=1))

    def _transform_input(self, x: Tensor) -> Tensor:
        x_ch0 = torch.unsqueeze(x[:, 0], 1) * (0.229 / 0.5) + (0.485 - 0.5) / 0.5  # expect: QL301
        x_ch1 = torch.unsqueeze(x[:, 1], 1) * (0.224 / 0.5) + (0.456 - 0.5) / 0.5  # expect: QL301
        x_ch2 = torch.unsqueeze(x[:, 2], 1) * (0.225 / 0.5) + (0.406 - 0.5) / 0.5  # expect: QL301
        return torch.cat((x_ch0, x_ch1, x_ch2), 1)  # expect: QL302

    def _forward(self, x: Tensor) -> List[Tensor]:
        return [self.branch1(x), self.branch2(x), self.branch3(x)]

    def forward(self, x: Tensor) -> Tensor:
        return torch.cat(self._forward(self._transform_input(x)), 1)  # expect: QL302


class DenseLayer(nn.Module):
    def __init__(self, num_input_features: int, growth_rate: int, bn_size: int):
        super().__init__()
        self.norm1 = nn.BatchNorm2d(num_input_features)
        self.relu1 = nn.ReLU(inplace=True)  # expect: QL201
        self.conv1 = nn.Conv2d(num_input_features, bn_size * growth_rate, 1, bias=False)
        self.norm2 = nn.BatchNorm2d(bn_size * growth_rate)
        self.relu2 = nn.ReLU()
        self.conv2 = nn.Conv2d(bn_size * growth_rate, growth_rate, 3, padding=1, bias=False)

    def bn_function(self, inputs: List[Tensor]) -> Tensor:
        concated_features = torch.cat(inputs, 1)  # expect: QL302
        return self.conv1(self.relu1(self.norm1(concated_features)))

    def forward(self, input: List[Tensor]) -> Tensor:
        new_features = self.conv2(self.relu2(self.norm2(self.bn_function([input] if isinstance(input, Tensor) else input))))
        return F.dropout(new_features, p=0.1, training=self.training)


class DenseBlock(nn.ModuleDict):
    def __init__(self, num_layers: int, num_input_features: int, bn_size: int = 2, growth_rate: int = 4):
        super().__init__()
        for i in range(num_layers):
            self.add_module("denselayer%d" % (i + 1), DenseLayer(num_input_features + i * growth_rate, growth_rate, bn_size))

    def forward(self, init_features: Tensor) -> Tensor:
        features = [init_features]
        for name, layer in self.items():
            features.append(layer(features))
        return torch.cat(features, 1)  # expect: QL302


class Fire(nn.Module):
    def __init__(self, inplanes: int, squeeze_planes: int, expand1x1_planes: int, expand3x3_planes: int):
        super().__init__()
        self.squeeze = nn.Conv2d(inplanes, squeeze_planes, kernel_size=1)
        self.squeeze_activation = nn.ReLU(inplace=True)  # expect: QL201
        self.expand1x1 = nn.Conv2d(squeeze_planes, expand1x1_planes, kernel_size=1)
        self.expand1x1_activation = nn.ReLU()
        self.expand3x3 = nn.Conv2d(squeeze_planes, expand3x3_planes, kernel_size=3, padding=1)
        self.expand3x3_activation = self.expand1x1_activation  # expect: QL402

    def forward(self, x: Tensor) -> Tensor:
        x = self.squeeze_activation(self.squeeze(x))
        return torch.cat([self.expand1x1_activation(self.expand1x1(x)), self.expand3x3_activation(self.expand3x3(x))], 1)  # expect: QL302


class QuantizableFire(Fire):
    def __init__(self, inplanes: int, squeeze_planes: int, expand1x1_planes: int, expand3x3_planes: int):
        super().__init__(inplanes, squeeze_planes, expand1x1_planes, expand3x3_planes)
        self.squeeze_activation = nn.ReLU()
        self.expand3x3_activation = nn.ReLU()
        self.cat = FloatFunctional()

    def forward(self, x: Tensor) -> Tensor:
        x = self.squeeze_activation(self.squeeze(x))
        branches = [self.expand1x1_activation(self.expand1x1(x)), self.expand3x3_activation(self.expand3x3(x))]
        return self.cat.cat(branches, 1)

    def fuse_model(self):
        fuse_modules(self, [[n, f"{n}_activation"] for n in ("squeeze", "expand1x1", "expand3x3")], inplace=True)


class QuantizableDenseBlock(nn.Module):
    def __init__(self, num_layers: int = 3, in_ch: int = 8, growth: int = 4):
        super().__init__()
        self.layers = nn.ModuleList(nn.Sequential(nn.Conv2d(in_ch + i * growth, growth, 3, padding=1), nn.ReLU()) for i in range(num_layers))
        self.cats = nn.ModuleList(FloatFunctional() for _ in range(num_layers))
        self.out_cat = FloatFunctional()

    def forward(self, x: Tensor) -> Tensor:
        features = [x]
        for layer, cat in zip(self.layers, self.cats):
            features.append(layer(cat.cat(features, dim=1)))
        return self.out_cat.cat(features, dim=1)


class SharedCatDenseBlock(QuantizableDenseBlock):
    def forward(self, x: Tensor) -> Tensor:
        features = [x]
        for layer in self.layers:
            features.append(layer(self.out_cat.cat(features, dim=1)))  # expect: QL403
        return self.out_cat.cat(features, dim=1)  # expect: QL403
