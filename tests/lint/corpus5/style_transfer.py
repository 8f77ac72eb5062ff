"""Neural style transfer: the Gatys loss network pieces (input normalization, Gram matrices),
Johnson's feed-forward TransformerNet with instance norm, an AdaIN decoder step, and a
quantizable TransformerNet behind a wrapper that owns the stubs and computes Gram matrices in float."""
from typing import List, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor
from torch.ao.nn.quantized import FloatFunctional
from torch.ao.quantization import DeQuantStub, QuantStub


def calc_mean_std(feat: Tensor, eps: float = 1e-5):
    n, c = feat.shape[:2]
    feat_var = feat.view(n, c, -1).var(dim=2) + eps  # allow: QL104, QL301
    return feat.view(n, c, -1).mean(dim=2).view(n, c, 1, 1), feat_var.sqrt().view(n, c, 1, 1)  # allow: QL104


class Normalization(nn.Module):
    def __init__(self, mean: Sequence[float] = (0.485, 0.456, 0.406), std: Sequence[float] = (0.229, 0.224, 0.225)):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(-1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(-1, 1, 1))

    def forward(self, img: Tensor) -> Tensor:
        return (img - self.mean) / self.std  # expect: QL301, QL303


class GramMatrix(nn.Module):
    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.size()
        features = x.view(b, c, h * w)
        gram = torch.bmm(features, features.transpose(1, 2))  # expect: QL302
        return gram / (c * h * w)  # expect: QL303


class ConvLayer(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int):
        super().__init__()
        self.reflection_pad = nn.ReflectionPad2d(kernel_size // 2)
        self.conv2d = nn.Conv2d(in_channels, out_channels, kernel_size, stride)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv2d(self.reflection_pad(x))


class ResidualBlock(nn.Module):
    def __init__(self, channels: int):
        super().__init__()
        self.conv1 = ConvLayer(channels, channels, 3, 1)
        self.in1 = nn.InstanceNorm2d(channels, affine=True)
        self.conv2 = ConvLayer(channels, channels, 3, 1)
        self.in2 = nn.InstanceNorm2d(channels, affine=True)
        self.relu = nn.ReLU()

    def forward(self, x: Tensor) -> Tensor:
        residual = x
        out = self.relu(self.in1(self.conv1(x)))
        out = self.in2(self.conv2(out))
        return out + residual  # expect: QL301


class UpsampleConvLayer(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, stride: int, upsample: int = 0):
        super().__init__()
        self.upsample = upsample
        self.conv = ConvLayer(in_channels, out_channels, kernel_size, stride)

    def forward(self, x: Tensor) -> Tensor:
        if self.upsample:
            x = F.interpolate(x, mode="nearest", scale_factor=self.upsample)
        return self.conv(x)


class TransformerNet(nn.Module):
    def __init__(self, width: int = 8, num_res: int = 2):
        super().__init__()
        self.conv1 = ConvLayer(3, width, 9, 1)
        self.in1 = nn.InstanceNorm2d(width, affine=True)
        self.conv2 = ConvLayer(width, 2 * width, 3, 2)
        self.in2 = nn.InstanceNorm2d(2 * width, affine=True)
        self.res = nn.Sequential(*[ResidualBlock(2 * width) for _ in range(num_res)])
        self.deconv1 = UpsampleConvLayer(2 * width, width, 3, 1, upsample=2)
        self.in4 = nn.InstanceNorm2d(width, affine=True)
        self.deconv3 = ConvLayer(width, 3, 9, 1)
        self.relu = nn.ReLU()

    def forward(self, X: Tensor) -> Tensor:
        y = self.relu(self.in1(self.conv1(X)))
        y = self.relu(self.in2(self.conv2(y)))  # expect: QL401
        y = self.res(y)
        y = self.relu(self.in4(self.deconv1(y)))  # expect: QL401
        return self.deconv3(y)


class AdaINDecoderStep(nn.Module):
    def __init__(self, channels: int, alpha: float = 1.0):
        super().__init__()
        self.alpha = alpha
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, content: Tensor, style: Tensor) -> Tensor:
        style_mean, style_std = calc_mean_std(style)
        t = F.instance_norm(content) * style_std + style_mean  # expect: QL102, QL301
        t = self.alpha * t + (1 - self.alpha) * content  # expect: QL301
        return F.relu(self.conv(t), inplace=True)  # expect: QL101, QL202


class QuantizableResidualBlock(ResidualBlock):
    def __init__(self, channels: int):
        super().__init__(channels)
        self.skip_add = FloatFunctional()

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.in1(self.conv1(x)))
        out = self.in2(self.conv2(out))
        return self.skip_add.add(out, x)


class QuantizableTransformerNet(TransformerNet):
    def __init__(self, width: int = 8, num_res: int = 2):
        super().__init__(width, num_res)
        self.res = nn.Sequential(*[QuantizableResidualBlock(2 * width) for _ in range(num_res)])
        self.relu2 = nn.ReLU()
        self.relu4 = nn.ReLU()

    def forward(self, X: Tensor) -> Tensor:
        y = self.relu(self.in1(self.conv1(X)))
        y = self.relu2(self.in2(self.conv2(y)))
        y = self.relu4(self.in4(self.deconv1(self.res(y))))
        return self.deconv3(y)


class QuantizedStylizer(nn.Module):
    """Owns the stubs around the transformer and returns float Gram matrices for the style loss."""

    def __init__(self, net: nn.Module):
        super().__init__()
        self.quant = QuantStub()
        self.net = net
        self.dequant = DeQuantStub()

    def forward(self, x: Tensor) -> List[Tensor]:
        y = self.dequant(self.net(self.quant(x)))
        b, c, h, w = y.shape
        feats = y.flatten(2)
        gram = torch.bmm(feats, feats.transpose(1, 2)) / (c * h * w)
        return [y.clamp(0, 255), gram]
