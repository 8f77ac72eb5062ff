"""HRNet-style multi-resolution network: parallel branches, exchange units that resize every branch
to every other resolution and sum them, a segmentation head, and quantizable blocks and exchanges."""
from typing import List

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor
from torch.ao.nn.quantized import FloatFunctional
from torch.ao.quantization import fuse_modules

BN_MOMENTUM = 0.1
RELU_INPLACE = True
ALIGN_CORNERS = False


class BasicBlock(nn.Module):
    def __init__(self, inplanes: int, planes: int):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes, momentum=BN_MOMENTUM)
        self.relu = nn.ReLU(inplace=RELU_INPLACE)  # expect: QL201
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes, momentum=BN_MOMENTUM)
        self.relu_out = nn.ReLU()

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu_out(out.add_(x))  # expect: QL202


class QuantizableBasicBlock(BasicBlock):
    def __init__(self, inplanes: int, planes: int):
        super().__init__(inplanes, planes)
        self.relu, self.skip_add = nn.ReLU(), FloatFunctional()

    def forward(self, x):
        out = self.relu(self.bn1(self.conv1(x)))
        # conv2 and bn2 sit in a group that cannot fuse (relu_out follows the add): left out or not is open.
        return self.relu_out(self.skip_add.add(self.bn2(self.conv2(out)), x))  # allow: QL503

    def fuse_model(self):
        fuse_modules(self, [["conv1", "bn1", "relu"], ["conv2", "bn2", "relu_out"]], inplace=True)  # expect: QL502


class HighResolutionModule(nn.Module):
    def __init__(self, channels: List[int], num_blocks: int = 1):
        super().__init__()
        self.num_branches = len(channels)
        self.branches = nn.ModuleList(nn.Sequential(*[BasicBlock(c, c) for _ in range(num_blocks)]) for c in channels)
        self.fuse_layers = self._make_fuse_layers(channels)
        self.relu = nn.ReLU(False)

    def _make_fuse_layers(self, channels: List[int]) -> nn.ModuleList:
        fuse_layers = []
        for i in range(self.num_branches):
            fuse_layer = []
            for j in range(self.num_branches):
                if j > i:
                    fuse_layer.append(nn.Sequential(nn.Conv2d(channels[j], channels[i], 1, bias=False), nn.BatchNorm2d(channels[i])))
                elif j == i:
                    fuse_layer.append(None)
                else:
                    convs = []
                    for k in range(i - j):
                        out_ch = channels[i] if k == i - j - 1 else channels[j]
                        convs += [nn.Conv2d(channels[j], out_ch, 3, 2, 1, bias=False), nn.BatchNorm2d(out_ch)]
                        if k != i - j - 1:
                            convs.append(nn.ReLU(True))  # expect: QL201
                    fuse_layer.append(nn.Sequential(*convs))
            fuse_layers.append(nn.ModuleList(fuse_layer))
        return nn.ModuleList(fuse_layers)

    def forward(self, x: List[Tensor]) -> List[Tensor]:
        for i in range(self.num_branches):
            x[i] = self.branches[i](x[i])
        x_fuse = []
        for i in range(len(self.fuse_layers)):
            y = x[0] if i == 0 else self.fuse_layers[i][0](x[0])
            for j in range(1, self.num_branches):
                if i == j:
                    y = y + x[j]  # expect: QL301
                elif j > i:
                    h, w = x[i].shape[-2:]
                    y = y + F.interpolate(self.fuse_layers[i][j](x[j]), size=[h, w], mode="bilinear", align_corners=ALIGN_CORNERS)  # expect: QL301
                else:
                    y = y + self.fuse_layers[i][j](x[j])  # expect: QL301
            x_fuse.append(self.relu(y))  # expect: QL401
        return x_fuse


class TinyHRNet(nn.Module):
    def __init__(self, channels=(8, 16, 32), num_classes: int = 3):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, channels[0], 3, 2, 1, bias=False), nn.BatchNorm2d(channels[0]), nn.ReLU())
        self.transitions = nn.ModuleList(
            nn.Sequential(nn.Conv2d(channels[i - 1], channels[i], 3, 2, 1, bias=False), nn.BatchNorm2d(channels[i]), nn.ReLU())
            for i in range(1, len(channels))
        )
        self.stage = HighResolutionModule(list(channels))
        last = sum(channels)
        self.head = nn.Sequential(nn.Conv2d(last, last, 1), nn.BatchNorm2d(last), nn.ReLU(inplace=False), nn.Conv2d(last, num_classes, 1))

    def forward(self, x):
        x_list = [self.stem(x)]
        for transition in self.transitions:
            x_list.append(transition(x_list[-1]))
        feats = self.stage(x_list)
        h, w = feats[0].size(2), feats[0].size(3)
        ups = [feats[0]] + [F.interpolate(f, size=(h, w), mode="bilinear", align_corners=ALIGN_CORNERS) for f in feats[1:]]
        return self.head(torch.cat(ups, 1))  # expect: QL302


class SumFusion(nn.Module):
    """HRNetV1-style head: every branch aligned to the first one's width and resolution, then summed."""

    def __init__(self, channels=(8, 16, 32)):
        super().__init__()
        self.align = nn.ModuleList(nn.Conv2d(c, channels[0], 1) for c in channels)

    def forward(self, feats: List[Tensor]) -> Tensor:
        size = feats[0].shape[-2:]
        resized = [F.interpolate(conv(f), size=size, mode="nearest") for conv, f in zip(self.align, feats)]
        # Builtin sum adds the maps with `+` (starting from 0), but no `+` is written here.
        return sum(resized)  # allow: QL301


class QuantizableExchange(nn.Module):
    def __init__(self, c_high: int = 8, c_low: int = 16):
        super().__init__()
        self.low_to_high = nn.Sequential(nn.Conv2d(c_low, c_high, 1, bias=False), nn.BatchNorm2d(c_high), nn.Upsample(scale_factor=2, mode="nearest"))
        self.high_to_low = nn.Sequential(nn.Conv2d(c_high, c_low, 3, 2, 1, bias=False), nn.BatchNorm2d(c_low))
        self.adds = nn.ModuleList(FloatFunctional() for _ in range(2))
        self.relus = nn.ModuleList(nn.ReLU() for _ in range(2))

    def forward(self, x: List[Tensor]) -> List[Tensor]:
        high = self.adds[0].add(x[0], self.low_to_high(x[1]))
        low = self.adds[1].add(x[1], self.high_to_low(x[0]))
        return [relu(y) for relu, y in zip(self.relus, (high, low))]


class SharedAddExchange(QuantizableExchange):
    def forward(self, x: List[Tensor]) -> List[Tensor]:
        others = (self.low_to_high(x[1]), self.high_to_low(x[0]))
        outs = []
        for i in range(2):
            outs.append(self.relus[i](self.adds[0].add(x[i], others[i])))  # expect: QL403
        return outs
