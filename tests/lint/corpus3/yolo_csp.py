"""YOLOv8-style pieces: Conv with a class-level default activation, bottleneck shortcuts, C2f,
SPPF (one MaxPool applied three times), an anchor-free Detect head with DFL decoding, a quantizable SPPF."""
from typing import List, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor
from torch.ao.nn.quantized import FloatFunctional
from torch.ao.quantization import fuse_modules


class Conv(nn.Module):
    default_act = nn.SiLU()

    def __init__(self, c1, c2, k=1, s=1, p=None, g=1, d=1, act=True):
        super().__init__()
        self.conv = nn.Conv2d(c1, c2, k, s, d * (k - 1) // 2 if p is None else p, groups=g, dilation=d, bias=False)
        self.bn = nn.BatchNorm2d(c2)
        # One class-level SiLU instance is bound into every Conv of the model: sharing across
        # instances through a class attribute, not two attributes of one module.
        self.act = self.default_act if act is True else act if isinstance(act, nn.Module) else nn.Identity()  # allow: QL402

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))

    def forward_fuse(self, x):
        return self.act(self.conv(x))


class Bottleneck(nn.Module):
    def __init__(self, c1, c2, shortcut=True, g=1, k=(3, 3), e=0.5):
        super().__init__()
        c_ = int(c2 * e)
        self.cv1 = Conv(c1, c_, k[0], 1)
        self.cv2 = Conv(c_, c2, k[1], 1, g=g)
        self.add = shortcut and c1 == c2

    def forward(self, x):
        return x + self.cv2(self.cv1(x)) if self.add else self.cv2(self.cv1(x))  # expect: QL301


class C2f(nn.Module):
    def __init__(self, c1, c2, n=1, shortcut=False, g=1, e=0.5):
        super().__init__()
        self.c = int(c2 * e)
        self.cv1 = Conv(c1, 2 * self.c, 1, 1)
        self.cv2 = Conv((2 + n) * self.c, c2, 1)
        self.m = nn.ModuleList(Bottleneck(self.c, self.c, shortcut, g, k=(3, 3), e=1.0) for _ in range(n))

    def forward(self, x):
        y = list(self.cv1(x).chunk(2, 1))
        y.extend(m(y[-1]) for m in self.m)
        return self.cv2(torch.cat(y, 1))  # expect: QL302


class SPPF(nn.Module):
    def __init__(self, c1, c2, k=5):
        super().__init__()
        c_ = c1 // 2
        self.cv1 = Conv(c1, c_, 1, 1)
        self.cv2 = Conv(c_ * 4, c2, 1, 1)
        self.m = nn.MaxPool2d(kernel_size=k, stride=1, padding=k // 2)

    def forward(self, x):
        y = [self.cv1(x)]
        y.extend(self.m(y[-1]) for _ in range(3))
        return self.cv2(torch.cat(y, 1))  # expect: QL302


class Concat(nn.Module):
    def __init__(self, dimension=1):
        super().__init__()
        self.d = dimension

    def forward(self, x: List[Tensor]):
        return torch.cat(x, self.d)  # expect: QL302


class Detect(nn.Module):
    def __init__(self, nc=4, ch=(16, 32), strides=(8.0, 16.0), reg_max=4):
        super().__init__()
        self.nc, self.nl, self.reg_max, self.no = nc, len(ch), reg_max, nc + reg_max * 4
        self.register_buffer("stride", torch.tensor(strides))
        c2, c3 = max(16, ch[0] // 4, reg_max * 4), max(ch[0], min(nc, 100))
        self.cv2 = nn.ModuleList(nn.Sequential(Conv(x, c2, 3), Conv(c2, c2, 3), nn.Conv2d(c2, 4 * reg_max, 1)) for x in ch)
        self.cv3 = nn.ModuleList(nn.Sequential(Conv(x, c3, 3), Conv(c3, c3, 3), nn.Conv2d(c3, nc, 1)) for x in ch)
        self.dfl = nn.Conv2d(reg_max, 1, 1, bias=False).requires_grad_(False)
        self.dfl.weight.data[:] = torch.arange(reg_max, dtype=torch.float32).view(1, reg_max, 1, 1)

    def _anchors(self, x: List[Tensor]) -> Tuple[Tensor, Tensor]:
        points, strides = [], []
        for xi, s in zip(x, self.stride.tolist()):
            h, w = xi.shape[-2:]
            sy, sx = torch.meshgrid(torch.arange(h) + 0.5, torch.arange(w) + 0.5, indexing="ij")
            points.append(torch.stack((sx, sy)).view(1, 2, -1))
            strides.append(torch.full((1, 1, h * w), s))
        return torch.cat(points, 2), torch.cat(strides, 2)

    def forward(self, x: List[Tensor]):
        for i in range(self.nl):
            x[i] = torch.cat((self.cv2[i](x[i]), self.cv3[i](x[i])), 1)  # expect: QL302
        anchors, strides = self._anchors(x)
        x_cat = torch.cat([xi.view(x[0].shape[0], self.no, -1) for xi in x], 2)  # expect: QL302
        box, cls = x_cat.split((self.reg_max * 4, self.nc), 1)
        dist = F.softmax(box.view(box.shape[0], 4, self.reg_max, -1), 2)  # expect: QL102
        lt, rb = self.dfl(dist.transpose(1, 2)).view(box.shape[0], 4, -1).chunk(2, 1)
        x1y1, x2y2 = anchors - lt, anchors + rb  # expect: QL301
        dbox = torch.cat(((x1y1 + x2y2) / 2, x2y2 - x1y1), 1) * strides  # expect: QL301, QL302, QL303
        return torch.cat((dbox, cls.sigmoid()), 1)  # expect: QL302


class TinyYolo(nn.Module):
    def __init__(self, nc=4, w=8):
        super().__init__()
        self.stem = Conv(3, w, 3, 2)
        self.stage1 = nn.Sequential(Conv(w, 2 * w, 3, 2), C2f(2 * w, 2 * w, 1, True))
        self.stage2 = nn.Sequential(Conv(2 * w, 4 * w, 3, 2), C2f(4 * w, 4 * w, 1, True), SPPF(4 * w, 4 * w))
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.concat = Concat(1)
        self.neck_p3 = C2f(6 * w, 2 * w, 1)
        self.down = Conv(2 * w, 2 * w, 3, 2)
        self.neck_p4 = C2f(6 * w, 4 * w, 1)
        self.detect = Detect(nc, ch=(2 * w, 4 * w), strides=(4.0, 8.0))

    def forward(self, x):
        p3 = self.stage1(self.stem(x))
        p4 = self.stage2(p3)
        n3 = self.neck_p3(self.concat([self.up(p4), p3]))
        n4 = self.neck_p4(self.concat([self.down(n3), p4]))  # expect: QL401
        return self.detect([n3, n4])


class QuantSPPF(nn.Module):
    def __init__(self, c1, c2, k=5):
        super().__init__()
        self.cv1 = Conv(c1, c1 // 2, 1, act=nn.ReLU())
        self.cv2 = Conv(c1 // 2 * 4, c2, 1, act=nn.ReLU())
        self.m = nn.MaxPool2d(k, 1, k // 2)
        self.cat = FloatFunctional()

    def forward(self, x):
        x = self.cv1(x)
        y1 = self.m(x)
        y2 = self.m(y1)
        return self.cv2(self.cat.cat([x, y1, y2, self.m(y2)], 1))

    def fuse_model(self):
        fuse_modules(self, [["cv1.conv", "cv1.bn", "cv1.act"], ["cv2.conv", "cv2.bn", "cv2.act"]], inplace=True)
