"""EfficientNet-style MBConv blocks with squeeze-excitation and a GeM pooling head,
quantized end to end for an image-retrieval service. The cosine classifier after the
DeQuantStub is float metric-learning code."""
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.ao.quantization import DeQuantStub, QuantStub, fuse_modules
from torch.nn.quantized import FloatFunctional  # expect: QL505


class SqueezeExcite(nn.Module):
    def __init__(self, ch, rd_ratio=0.25):
        super().__init__()
        rd = max(1, int(ch * rd_ratio))
        self.conv_reduce = nn.Conv2d(ch, rd, 1)
        self.conv_expand = nn.Conv2d(rd, ch, 1)
        self.gate = nn.Sigmoid()

    def forward(self, x):
        x_se = x.sum((2, 3), keepdim=True) / (x.shape[-2] * x.shape[-1])  # expect: QL104, QL303
        x_se = F.relu(self.conv_reduce(x_se))  # expect: QL101
        return x * self.gate(self.conv_expand(x_se))  # expect: QL301


class MBConv(nn.Module):
    def __init__(self, in_ch, out_ch, expand=4):
        super().__init__()
        mid = in_ch * expand
        self.conv_pw = nn.Conv2d(in_ch, mid, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(mid)
        self.conv_dw = nn.Conv2d(mid, mid, 3, padding=1, groups=mid, bias=False)
        self.bn2 = nn.BatchNorm2d(mid)
        self.se = SqueezeExcite(mid)
        self.conv_pwl = nn.Conv2d(mid, out_ch, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(out_ch)
        self.has_skip = in_ch == out_ch
        self.skip = FloatFunctional()

    def forward(self, x):
        shortcut = x
        x = F.silu(self.bn1(self.conv_pw(x)))  # expect: QL102
        x = self.bn2(self.conv_dw(x)).relu()  # expect: QL101
        x = self.bn3(self.conv_pwl(self.se(x)))
        if self.has_skip:
            x = self.skip.add(x, shortcut)
        return x


class GeM(nn.Module):
    def __init__(self, p=3.0, eps=1e-6):
        super().__init__()
        self.p = nn.Parameter(torch.ones(1) * p)
        self.eps = eps

    def forward(self, x):
        return F.avg_pool2d(x.clamp(min=self.eps).pow(self.p), (x.size(-2), x.size(-1))).pow(1.0 / self.p)  # expect: QL104, QL504; allow: QL702


class RetrievalNet(nn.Module):
    def __init__(self, num_classes=10, dim=32, scale=30.0):
        super().__init__()
        self.quant = QuantStub()
        self.stem = nn.Conv2d(3, 16, 3, 2, 1, bias=False)
        self.bn = nn.BatchNorm2d(16)
        self.relu = nn.ReLU()
        self.blocks = nn.Sequential(MBConv(16, 16), MBConv(16, 24))
        self.pool = GeM()
        self.embed = nn.Linear(24, dim)
        self.dequant = DeQuantStub()
        self.class_centers = nn.Parameter(torch.randn(num_classes, dim))
        self.scale = scale

    def forward(self, x):
        x = self.relu(self.bn(self.stem(self.quant(x))))  # allow: QL503
        x = self.pool(self.blocks(x)).flatten(1)
        emb = self.dequant(self.embed(x))
        emb = F.relu(emb)
        emb = emb / emb.norm(dim=1, keepdim=True).clamp(min=1e-6)
        centers = F.normalize(self.class_centers, dim=1)  # allow: QL504
        return self.scale * F.linear(emb, centers)

    def fuse_model(self):
        fuse_modules(self, [["stem", "bn1", "relu"]], inplace=True)  # expect: QL501
        for block in self.blocks:
            fuse_modules(block, [["conv_pw", "bn1"], ["conv_dw", "bn2"], ["conv_pwl", "bn3"]], inplace=True)
