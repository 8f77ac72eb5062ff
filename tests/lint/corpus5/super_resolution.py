"""Super-resolution networks: ESPCN (tanh features, sub-pixel convolution), EDSR/RCAN residual
blocks with residual scaling and channel attention, a MeanShift that is a Conv2d with frozen
weights, and quantizable twins of ESPCN and of the RCAN block."""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor
from torch.ao.nn.quantized import FloatFunctional
from torch.ao.quantization import DeQuantStub, QuantStub, fuse_modules


def default_conv(in_channels: int, out_channels: int, kernel_size: int, bias: bool = True) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=bias)


class MeanShift(nn.Conv2d):
    def __init__(self, rgb_range: float, rgb_mean: tuple = (0.4488, 0.4371, 0.4040), sign: int = -1):
        super().__init__(3, 3, kernel_size=1)
        self.weight.data = torch.eye(3).view(3, 3, 1, 1)
        self.bias.data = sign * rgb_range * torch.tensor(rgb_mean)
        self.requires_grad_(False)


class ESPCN(nn.Module):
    def __init__(self, scale_factor: int = 2, num_channels: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(num_channels, 16, 5, padding=2)
        self.conv2 = nn.Conv2d(16, 8, 3, padding=1)
        self.conv3 = nn.Conv2d(8, num_channels * scale_factor ** 2, 3, padding=1)
        self.pixel_shuffle = nn.PixelShuffle(scale_factor)

    def forward(self, x: Tensor) -> Tensor:
        x = torch.tanh(self.conv1(x))
        x = torch.tanh(self.conv2(x))
        x = self.pixel_shuffle(self.conv3(x))
        return torch.sigmoid(x)


class CALayer(nn.Module):
    def __init__(self, channel: int, reduction: int = 4):
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.conv_du = nn.Sequential(
            nn.Conv2d(channel, channel // reduction, 1), nn.ReLU(inplace=True),  # expect: QL201
            nn.Conv2d(channel // reduction, channel, 1), nn.Sigmoid())

    def forward(self, x: Tensor) -> Tensor:
        y = self.conv_du(self.avg_pool(x))
        return x * y  # expect: QL301


class RCAB(nn.Module):
    def __init__(self, n_feat: int, kernel_size: int = 3, reduction: int = 4, res_scale: float = 1.0):
        super().__init__()
        modules_body = []
        for i in range(2):
            modules_body.append(default_conv(n_feat, n_feat, kernel_size))
            if i == 0:
                modules_body.append(nn.ReLU(True))  # expect: QL201
        modules_body.append(CALayer(n_feat, reduction))
        self.body = nn.Sequential(*modules_body)
        self.res_scale = res_scale

    def forward(self, x: Tensor) -> Tensor:
        res = self.body(x).mul(self.res_scale)  # expect: QL302
        res += x  # expect: QL203
        return res


class Upsampler(nn.Sequential):
    def __init__(self, scale: int, n_feats: int):
        m = []
        for _ in range(int(math.log(scale, 2))):
            m.append(default_conv(n_feats, 4 * n_feats, 3))
            m.append(nn.PixelShuffle(2))
        super().__init__(*m)


class RCAN(nn.Module):
    def __init__(self, n_resblocks: int = 3, n_feats: int = 16, scale: int = 2, rgb_range: float = 1.0, res_scale: float = 0.1):
        super().__init__()
        self.sub_mean = MeanShift(rgb_range)
        self.head = default_conv(3, n_feats, 3)
        self.body = nn.ModuleList([RCAB(n_feats, res_scale=res_scale) for _ in range(n_resblocks)])
        self.body_tail = default_conv(n_feats, n_feats, 3)
        self.tail = nn.Sequential(Upsampler(scale, n_feats), default_conv(n_feats, 3, 3))
        self.add_mean = MeanShift(rgb_range, sign=1)

    def forward(self, x: Tensor) -> Tensor:
        x = self.head(self.sub_mean(x))
        res = x
        for block in self.body:
            res = block(res)
        res = self.body_tail(res)
        res += x  # expect: QL203
        x = self.tail(res)
        return self.add_mean(x).clamp(0, 1)


class QuantizableESPCN(nn.Module):
    """ReLU instead of tanh so each conv fuses with its activation; the bicubic skip is added in float."""

    def __init__(self, scale_factor: int = 2, num_channels: int = 1):
        super().__init__()
        self.quant = QuantStub()
        self.conv1 = nn.Conv2d(num_channels, 16, 5, padding=2)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(16, 8, 3, padding=1)
        self.relu2 = nn.ReLU()
        self.conv3 = nn.Conv2d(8, num_channels * scale_factor ** 2, 3, padding=1)
        self.pixel_shuffle = nn.PixelShuffle(scale_factor)
        self.dequant = DeQuantStub()

    def forward(self, x: Tensor) -> Tensor:
        base = F.interpolate(x, scale_factor=self.pixel_shuffle.upscale_factor, mode="bicubic", align_corners=False)
        y = self.relu2(self.conv2(self.relu1(self.conv1(self.quant(x)))))
        y = self.dequant(self.pixel_shuffle(self.conv3(y)))
        # base is computed from the raw input (a forward parameter) but never quantized; y is dequantized.
        return (base + y).clamp(0, 1)  # allow: QL301

    def fuse_model(self) -> None:
        fuse_modules(self, [["conv1", "relu1"], ["conv2", "relu2"]], inplace=True)


class QuantizableRCAB(nn.Module):
    def __init__(self, n_feat: int, reduction: int = 4, res_scale: float = 0.1):
        super().__init__()
        self.res_scale = res_scale
        self.conv1 = default_conv(n_feat, n_feat, 3)
        self.relu = nn.ReLU()
        self.conv2 = default_conv(n_feat, n_feat, 3)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc_down = nn.Conv2d(n_feat, n_feat // reduction, 1)
        self.fc_relu = nn.ReLU()
        self.fc_up = nn.Conv2d(n_feat // reduction, n_feat, 1)
        self.gate = nn.Sigmoid()
        self.attend = FloatFunctional()
        self.scale = FloatFunctional()
        self.skip = FloatFunctional()

    def forward(self, x: Tensor) -> Tensor:
        res = self.conv2(self.relu(self.conv1(x)))
        w = self.gate(self.fc_up(self.fc_relu(self.fc_down(self.pool(res)))))
        res = self.scale.mul_scalar(self.attend.mul(res, w), self.res_scale)
        return self.skip.add(res, x)

    def fuse_model(self) -> None:
        fuse_modules(self, [["conv1", "relu"], ["fc_down", "fc_relu"]], inplace=True)
