"""An ultralytics-style backbone/neck (Conv with a class-level default activation,
C2f, SPPF, Concat) between stubs. Pools and upsamplers reused at several places keep
their input's qparams and are fine; the concatenations and the residual are not."""
import torch
import torch.nn as nn
from torch.ao.nn.quantized import FloatFunctional
from torch.ao.quantization import DeQuantStub, QuantStub


def autopad(k, p=None, d=1):
    if d > 1:
        k = d * (k - 1) + 1 if isinstance(k, int) else [d * (x - 1) + 1 for x in k]
    if p is None:
        p = k // 2 if isinstance(k, int) else [x // 2 for x in k]
    return p


class Conv(nn.Module):
    default_act = nn.ReLU()

    def __init__(self, c1, c2, k=1, s=1, p=None, g=1, d=1, act=True):
        super().__init__()
        self.conv = nn.Conv2d(c1, c2, k, s, autopad(k, p, d), groups=g, dilation=d, bias=False)
        self.bn = nn.BatchNorm2d(c2)
        self.act = self.default_act if act is True else act if isinstance(act, nn.Module) else nn.Identity()  # allow: QL402

    def forward(self, x):
        return self.act(self.bn(self.conv(x)))


class Bottleneck(nn.Module):
    def __init__(self, c1, c2, shortcut=True, e=0.5):
        super().__init__()
        c_ = int(c2 * e)
        self.cv1 = Conv(c1, c_, 3, 1)
        self.cv2 = Conv(c_, c2, 3, 1)
        self.add = shortcut and c1 == c2

    def forward(self, x):
        return x + self.cv2(self.cv1(x)) if self.add else self.cv2(self.cv1(x))  # expect: QL301; allow: QL401


class C2f(nn.Module):
    def __init__(self, c1, c2, n=1, shortcut=False, e=0.5):
        super().__init__()
        self.c = int(c2 * e)
        self.cv1 = Conv(c1, 2 * self.c, 1, 1)
        self.cv2 = Conv((2 + n) * self.c, c2, 1)
        self.m = nn.ModuleList(Bottleneck(self.c, self.c, shortcut, e=1.0) for _ in range(n))

    def forward(self, x):
        y = list(self.cv1(x).chunk(2, 1))
        y.extend(m(y[-1]) for m in self.m)
        return self.cv2(torch.cat(y, 1))  # expect: QL302


class QuantizableC2f(C2f):
    def __init__(self, c1, c2, n=1, shortcut=False, e=0.5):
        super().__init__(c1, c2, n, shortcut, e)
        self.cat = FloatFunctional()

    def forward(self, x):
        y = list(self.cv1(x).chunk(2, 1))
        y.extend(m(y[-1]) for m in self.m)
        return self.cv2(self.cat.cat(y, 1))


class SPPF(nn.Module):
    def __init__(self, c1, c2, k=5):
        super().__init__()
        c_ = c1 // 2
        self.cv1 = Conv(c1, c_, 1, 1)
        self.cv2 = Conv(c_ * 4, c2, 1, 1)
        self.m = nn.MaxPool2d(kernel_size=k, stride=1, padding=k // 2)
        self.cat = FloatFunctional()

    def forward(self, x):
        y = [self.cv1(x)]
        y.extend(self.m(y[-1]) for _ in range(3))
        return self.cv2(self.cat.cat(y, 1))


class Concat(nn.Module):
    def __init__(self, dimension=1):
        super().__init__()
        self.d = dimension

    def forward(self, x):
        return torch.cat(x, self.d)  # expect: QL302


class TinyYolo(nn.Module):
    def __init__(self, w=16):
        super().__init__()
        self.quant = QuantStub()
        self.stem = Conv(3, w, 3, 2)
        self.down1 = Conv(w, 2 * w, 3, 2)
        self.c2f1 = C2f(2 * w, 2 * w, n=1, shortcut=True)
        self.down2 = Conv(2 * w, 4 * w, 3, 2)
        self.c2f2 = QuantizableC2f(4 * w, 4 * w, n=1, shortcut=True)
        self.sppf = SPPF(4 * w, 4 * w)
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.concat = Concat(1)
        self.neck = QuantizableC2f(6 * w, 2 * w)
        self.dequant = DeQuantStub()

    def forward(self, x):
        x = self.quant(x)
        p3 = self.c2f1(self.down1(self.stem(x)))
        p4 = self.sppf(self.c2f2(self.down2(p3)))
        n3 = self.neck(self.concat([self.up(p4), p3]))
        return self.dequant(n3), self.dequant(self.up(n3)), self.dequant(p4)
