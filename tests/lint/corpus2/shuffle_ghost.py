"""ShuffleNetV2 and GhostNet: channel split and shuffle, cheap depthwise "ghost"
features, squeeze-excite gates, and quantization-ready twins."""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor
from torch.ao.nn.quantized import FloatFunctional
from torch.ao.quantization import fuse_modules


def hard_sigmoid(x: Tensor, inplace: bool = False) -> Tensor:
    # A free function: its arithmetic is not judged on its own.
    return F.relu6(x + 3.0, inplace=inplace) / 6.0


class ShuffleBlock(nn.Module):
    def __init__(self, inp: int, oup: int, stride: int):
        super().__init__()
        self.stride = stride
        branch_features = oup // 2
        if stride > 1:
            self.branch1 = nn.Sequential(
                nn.Conv2d(inp, inp, 3, stride, 1, groups=inp, bias=False), nn.BatchNorm2d(inp),
                nn.Conv2d(inp, branch_features, 1, bias=False), nn.BatchNorm2d(branch_features),
                nn.ReLU(inplace=True),  # expect: QL201
            )
        else:
            self.branch1 = nn.Identity()
        self.branch2 = nn.Sequential(
            nn.Conv2d(inp if stride > 1 else branch_features, branch_features, 1, bias=False), nn.BatchNorm2d(branch_features), nn.ReLU(),
            nn.Conv2d(branch_features, branch_features, 3, stride, 1, groups=branch_features, bias=False), nn.BatchNorm2d(branch_features),
            nn.Conv2d(branch_features, branch_features, 1, bias=False), nn.BatchNorm2d(branch_features), nn.ReLU(),
        )

    def _shuffle(self, x: Tensor, groups: int = 2) -> Tensor:
        b, c, h, w = x.size()
        return x.view(b, groups, c // groups, h, w).transpose(1, 2).reshape(b, c, h, w)

    def forward(self, x: Tensor) -> Tensor:
        if self.stride == 1:
            x1, x2 = x.chunk(2, dim=1)
            out = torch.cat((x1, self.branch2(x2)), dim=1)  # expect: QL302
        else:
            out = torch.cat((self.branch1(x), self.branch2(x)), dim=1)  # expect: QL302
        return self._shuffle(out)


class QuantizableShuffleBlock(ShuffleBlock):
    def __init__(self, inp: int, oup: int, stride: int):
        super().__init__(inp, oup, stride)
        self.cat = FloatFunctional()
        self.shuffle = nn.ChannelShuffle(2)

    def forward(self, x: Tensor) -> Tensor:
        if self.stride == 1:
            x1, x2 = x.chunk(2, dim=1)
            return self.shuffle(self.cat.cat([x1, self.branch2(x2)], dim=1))
        return self.shuffle(self.cat.cat([self.branch1(x), self.branch2(x)], dim=1))


class SqueezeExcite(nn.Module):
    def __init__(self, in_chs: int, se_ratio: float = 0.25, divisor: int = 4):
        super().__init__()
        reduced = max(divisor, int(in_chs * se_ratio + divisor / 2) // divisor * divisor)
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.conv_reduce = nn.Conv2d(in_chs, reduced, 1, bias=True)
        self.act1 = nn.ReLU(inplace=True)  # expect: QL201
        self.conv_expand = nn.Conv2d(reduced, in_chs, 1, bias=True)
        self.gate_fn = hard_sigmoid

    def forward(self, x: Tensor) -> Tensor:
        x_se = self.conv_expand(self.act1(self.conv_reduce(self.avg_pool(x))))
        return x * self.gate_fn(x_se)  # expect: QL301


class GhostModule(nn.Module):
    def __init__(self, inp: int, oup: int, kernel_size: int = 1, ratio: int = 2, dw_size: int = 3, relu: bool = True):
        super().__init__()
        self.oup = oup
        init_channels = math.ceil(oup / ratio)
        new_channels = init_channels * (ratio - 1)
        self.primary_conv = nn.Sequential(
            nn.Conv2d(inp, init_channels, kernel_size, 1, kernel_size // 2, bias=False),
            nn.BatchNorm2d(init_channels),
            nn.ReLU(inplace=True) if relu else nn.Sequential(),  # expect: QL201
        )
        self.cheap_operation = nn.Sequential(
            nn.Conv2d(init_channels, new_channels, dw_size, 1, dw_size // 2, groups=init_channels, bias=False),
            nn.BatchNorm2d(new_channels),
            nn.ReLU() if relu else nn.Sequential(),
        )

    def forward(self, x: Tensor) -> Tensor:
        x1 = self.primary_conv(x)
        x2 = self.cheap_operation(x1)
        out = torch.cat([x1, x2], dim=1)  # expect: QL302
        return out[:, : self.oup, :, :]


class GhostBottleneck(nn.Module):
    def __init__(self, in_chs: int, mid_chs: int, out_chs: int, dw_kernel_size: int = 3, stride: int = 1, se_ratio: float = 0.0):
        super().__init__()
        self.stride = stride
        self.ghost1 = GhostModule(in_chs, mid_chs, relu=True)
        if stride > 1:
            self.conv_dw = nn.Conv2d(mid_chs, mid_chs, dw_kernel_size, stride, (dw_kernel_size - 1) // 2, groups=mid_chs, bias=False)
            self.bn_dw = nn.BatchNorm2d(mid_chs)
        self.se = SqueezeExcite(mid_chs, se_ratio) if se_ratio > 0.0 else None
        self.ghost2 = GhostModule(mid_chs, out_chs, relu=False)
        if in_chs == out_chs and stride == 1:
            self.shortcut = nn.Sequential()
        else:
            self.shortcut = nn.Sequential(nn.Conv2d(in_chs, out_chs, 1, stride, bias=False), nn.BatchNorm2d(out_chs))

    def forward(self, x: Tensor) -> Tensor:
        residual = x
        x = self.ghost1(x)
        if self.stride > 1:
            x = self.bn_dw(self.conv_dw(x))
        if self.se is not None:
            x = self.se(x)
        x = self.ghost2(x)
        x += self.shortcut(residual)  # expect: QL203
        return x


class QuantizableGhostModule(nn.Module):
    def __init__(self, inp: int, oup: int, ratio: int = 2, dw_size: int = 3):
        super().__init__()
        self.oup = oup
        init_channels = math.ceil(oup / ratio)
        self.primary = nn.Conv2d(inp, init_channels, 1, bias=False)
        self.primary_bn = nn.BatchNorm2d(init_channels)
        self.primary_relu = nn.ReLU()
        self.cheap = nn.Conv2d(init_channels, init_channels * (ratio - 1), dw_size, 1, dw_size // 2, groups=init_channels, bias=False)
        self.cheap_bn = nn.BatchNorm2d(init_channels * (ratio - 1))
        self.cheap_relu = nn.ReLU()
        self.cat = FloatFunctional()

    def forward(self, x: Tensor) -> Tensor:
        x1 = self.primary_relu(self.primary_bn(self.primary(x)))
        x2 = self.cheap_relu(self.cheap_bn(self.cheap(x1)))  # expect: QL503
        return self.cat.cat([x1, x2], dim=1)[:, : self.oup]

    def fuse_model(self):
        fuse_modules(self, [["primary", "primary_bn", "primary_relu"]], inplace=True)
