"""Attention CNN blocks: selective kernels (softmax over branches), Res2Net splits, CBAM channel and
spatial attention with max and mean pooling, and quantization-ready CBAM and Res2Net twins."""
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor
from torch.ao.nn.quantized import FloatFunctional
from torch.ao.quantization import fuse_modules


class SKConv(nn.Module):
    def __init__(self, features: int = 16, M: int = 2, G: int = 4, r: int = 4, L: int = 8):
        super().__init__()
        d = max(features // r, L)
        self.M, self.features = M, features
        self.convs = nn.ModuleList(
            nn.Sequential(nn.Conv2d(features, features, 3, 1, 1 + i, dilation=1 + i, groups=G, bias=False), nn.BatchNorm2d(features), nn.ReLU(inplace=True))  # expect: QL201
            for i in range(M)
        )
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Sequential(nn.Conv2d(features, d, 1, bias=False), nn.BatchNorm2d(d), nn.ReLU())
        self.fcs = nn.ModuleList(nn.Conv2d(d, features, 1) for _ in range(M))
        self.softmax = nn.Softmax(dim=1)

    def forward(self, x: Tensor) -> Tensor:
        b = x.shape[0]
        feats = torch.stack([conv(x) for conv in self.convs], dim=1)  # expect: QL302
        feats_z = self.fc(self.gap(feats.sum(dim=1)))  # expect: QL104
        attention = torch.cat([fc(feats_z) for fc in self.fcs], dim=1)  # expect: QL302
        attention = self.softmax(attention.view(b, self.M, self.features, 1, 1))
        return (feats * attention).sum(dim=1)  # expect: QL104, QL301


class Bottle2neck(nn.Module):
    expansion = 2

    def __init__(self, inplanes: int = 16, planes: int = 8, base_width: int = 8, scale: int = 4, stype: str = "normal"):
        super().__init__()
        width = planes * base_width // 16
        self.conv1 = nn.Conv2d(inplanes, width * scale, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width * scale)
        self.nums = 1 if scale == 1 else scale - 1
        self.pool = nn.AvgPool2d(3, 1, 1) if stype == "stage" else None
        self.convs = nn.ModuleList(nn.Conv2d(width, width, 3, 1, 1, bias=False) for _ in range(self.nums))
        self.bns = nn.ModuleList(nn.BatchNorm2d(width) for _ in range(self.nums))
        self.conv3, self.bn3 = nn.Conv2d(width * scale, planes * self.expansion, 1, bias=False), nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU()
        self.scale, self.width, self.stype = scale, width, stype

    def forward(self, x: Tensor) -> Tensor:
        residual = x
        out = self.relu(self.bn1(self.conv1(x)))
        spx = torch.split(out, self.width, 1)
        for i in range(self.nums):
            sp = spx[i] if i == 0 or self.stype == "stage" else sp + spx[i]  # expect: QL301
            sp = self.relu(self.bns[i](self.convs[i](sp)))  # expect: QL401
            out = sp if i == 0 else torch.cat((out, sp), 1)  # expect: QL302
        if self.scale != 1 and self.stype == "normal":
            out = torch.cat((out, spx[self.nums]), 1)  # expect: QL302
        elif self.scale != 1 and self.stype == "stage":
            out = torch.cat((out, self.pool(spx[self.nums])), 1)  # expect: QL302
        out = self.bn3(self.conv3(out))
        out += residual  # expect: QL203
        return self.relu(out)  # expect: QL401


class ChannelGate(nn.Module):
    def __init__(self, channels: int, reduction: int = 4, pool_types=("avg", "max")):
        super().__init__()
        self.mlp = nn.Sequential(nn.Flatten(), nn.Linear(channels, channels // reduction), nn.ReLU(), nn.Linear(channels // reduction, channels))
        self.pool_types = pool_types

    def forward(self, x: Tensor) -> Tensor:
        channel_att = None
        for pool_type in self.pool_types:
            if pool_type == "avg":
                pooled = F.avg_pool2d(x, (x.size(2), x.size(3)), stride=(x.size(2), x.size(3)))
            elif pool_type == "max":
                pooled = F.adaptive_max_pool2d(x, 1)  # expect: QL102
            else:
                pooled = torch.logsumexp(x.flatten(2), dim=2, keepdim=True)  # expect: QL104
            raw = self.mlp(pooled)  # expect: QL401
            channel_att = raw if channel_att is None else channel_att + raw  # expect: QL301
        return x * torch.sigmoid(channel_att)[:, :, None, None].expand_as(x)  # expect: QL301


class SpatialGate(nn.Module):
    def __init__(self, kernel_size: int = 7):
        super().__init__()
        self.spatial = nn.Sequential(nn.Conv2d(2, 1, kernel_size, padding=(kernel_size - 1) // 2, bias=False), nn.BatchNorm2d(1))

    def forward(self, x: Tensor) -> Tensor:
        x_compress = torch.cat((torch.max(x, 1)[0].unsqueeze(1), torch.mean(x, 1).unsqueeze(1)), dim=1)  # expect: QL302
        return x * torch.sigmoid(self.spatial(x_compress))  # expect: QL301


class QuantizableCBAM(nn.Module):
    """Both pooled descriptors pass the shared MLP as one batch; every op is a module or a FloatFunctional."""

    def __init__(self, channels: int = 16, reduction: int = 4, kernel_size: int = 7):
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.pool_cat, self.pool_add, self.channel_mul = FloatFunctional(), FloatFunctional(), FloatFunctional()
        self.fc1 = nn.Conv2d(channels, channels // reduction, 1)
        self.relu = nn.ReLU()
        self.fc2 = nn.Conv2d(channels // reduction, channels, 1)
        self.channel_gate = nn.Sigmoid()
        self.desc_cat, self.spatial_mul = FloatFunctional(), FloatFunctional()
        self.spatial = nn.Conv2d(2, 1, kernel_size, padding=kernel_size // 2, bias=False)
        self.spatial_bn = nn.BatchNorm2d(1)
        self.spatial_gate = nn.Sigmoid()

    def forward(self, x: Tensor) -> Tensor:
        b = x.size(0)
        pooled = self.pool_cat.cat([self.avg_pool(x), F.max_pool2d(x, x.shape[-2:])], dim=0)
        avg_att, max_att = self.fc2(self.relu(self.fc1(pooled))).split(b, dim=0)
        x = self.channel_mul.mul(x, self.channel_gate(self.pool_add.add(avg_att, max_att)))
        desc = self.desc_cat.cat([torch.max(x, 1, keepdim=True)[0], torch.mean(x, 1, keepdim=True)], dim=1)
        return self.spatial_mul.mul(x, self.spatial_gate(self.spatial_bn(self.spatial(desc))))

    def fuse_model(self):
        fuse_modules(self, [["fc1", "relu"], ["spatial", "spatial_bn"]], inplace=True)


class QuantizableBottle2neck(nn.Module):
    def __init__(self, planes: int = 16, width: int = 4, scale: int = 4):
        super().__init__()
        self.width = width
        self.conv1, self.bn1, self.relu1 = nn.Conv2d(planes, width * scale, 1, bias=False), nn.BatchNorm2d(width * scale), nn.ReLU()
        self.convs = nn.ModuleList(
            nn.Sequential(nn.Conv2d(width, width, 3, 1, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU()) for _ in range(scale - 1)
        )
        self.adds = nn.ModuleList(FloatFunctional() for _ in range(scale - 2))
        self.cat = FloatFunctional()
        self.conv3, self.bn3 = nn.Conv2d(width * scale, planes, 1, bias=False), nn.BatchNorm2d(planes)
        self.add_relu = FloatFunctional()

    def forward(self, x: Tensor) -> Tensor:
        spx = self.relu1(self.bn1(self.conv1(x))).split(self.width, 1)
        outs, sp = [], spx[0]
        for i, conv in enumerate(self.convs):
            sp = conv(sp if i == 0 else self.adds[i - 1].add(sp, spx[i]))
            outs.append(sp)
        out = self.bn3(self.conv3(self.cat.cat(outs + [spx[-1]], 1)))  # expect: QL503
        return self.add_relu.add_relu(out, x)

    def fuse_model(self):
        fuse_modules(self, ["conv1", "bn1", "relu1"], inplace=True)
        for branch in self.convs:
            fuse_modules(branch, ["0", "1", "2"], inplace=True)
