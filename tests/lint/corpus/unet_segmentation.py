"""U-Net style segmentation: an encoder, a decoder that upsamples, pads to the
skip's size and concatenates, an attention gate, and a quantization-ready tail."""
from typing import List

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.ao.nn.quantized import FloatFunctional
from torch.ao.quantization import DeQuantStub, QuantStub, fuse_modules


def double_conv(in_ch: int, out_ch: int) -> nn.Sequential:
    # A free function, not a module class: its inplace ReLUs are not judged here.
    return nn.Sequential(
        nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_ch),
        nn.ReLU(inplace=True),
        nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_ch),
        nn.ReLU(inplace=True),
    )


class Down(nn.Module):
    def __init__(self, in_ch, out_ch):
        super().__init__()
        self.pool = nn.MaxPool2d(2)
        self.conv = double_conv(in_ch, out_ch)

    def forward(self, x):
        return self.conv(self.pool(x))


class Up(nn.Module):
    def __init__(self, in_ch, skip_ch, out_ch, bilinear=True):
        super().__init__()
        if bilinear:
            self.up = nn.Upsample(scale_factor=2, mode="bilinear", align_corners=True)
        else:
            self.up = nn.ConvTranspose2d(in_ch, in_ch, kernel_size=2, stride=2)
        self.conv = double_conv(in_ch + skip_ch, out_ch)

    def forward(self, x, skip):
        x = self.up(x)
        diff_y = skip.size(2) - x.size(2)
        diff_x = skip.size(3) - x.size(3)
        x = F.pad(x, [diff_x // 2, diff_x - diff_x // 2, diff_y // 2, diff_y - diff_y // 2])
        x = torch.cat([skip, x], dim=1)  # expect: QL302
        return self.conv(x)


class AttentionGate(nn.Module):
    def __init__(self, g_ch, x_ch, inter_ch):
        super().__init__()
        self.w_g = nn.Sequential(nn.Conv2d(g_ch, inter_ch, 1), nn.BatchNorm2d(inter_ch))
        self.w_x = nn.Sequential(nn.Conv2d(x_ch, inter_ch, 1), nn.BatchNorm2d(inter_ch))
        self.psi = nn.Sequential(nn.Conv2d(inter_ch, 1, 1), nn.BatchNorm2d(1), nn.Sigmoid())
        self.relu = nn.ReLU(inplace=True)  # expect: QL201

    def forward(self, g, x):
        g1 = self.w_g(g)
        x1 = self.w_x(x)
        if g1.shape[-2:] != x1.shape[-2:]:
            g1 = F.interpolate(g1, size=x1.shape[-2:], mode="bilinear", align_corners=False)
        psi = self.psi(self.relu(g1 + x1))  # expect: QL301
        return x * psi  # expect: QL301


class UNet(nn.Module):
    def __init__(self, in_ch=3, num_classes=2, base=8, depth=3):
        super().__init__()
        widths = [base * 2 ** i for i in range(depth + 1)]
        self.inc = double_conv(in_ch, widths[0])
        self.downs = nn.ModuleList([Down(widths[i], widths[i + 1]) for i in range(depth)])
        self.ups = nn.ModuleList([Up(widths[i + 1], widths[i], widths[i]) for i in reversed(range(depth))])
        self.gate = AttentionGate(widths[0], widths[0], widths[0] // 2)
        self.outc = nn.Conv2d(widths[0], num_classes, 1)

    def forward(self, x):
        h, w = x.shape[-2:]
        multiple = 2 ** len(self.downs)
        pad_h = (multiple - h % multiple) % multiple
        pad_w = (multiple - w % multiple) % multiple
        x = F.pad(x, (0, pad_w, 0, pad_h), mode="reflect")
        skips = [self.inc(x)]
        for down in self.downs:
            skips.append(down(skips[-1]))
        x = skips.pop()
        for up, skip in zip(self.ups, reversed(skips)):
            x = up(x, skip)
        x = self.gate(x, skips[0])
        logits = self.outc(x)[..., :h, :w]
        if self.training:
            return logits
        return F.softmax(logits, dim=1).argmax(dim=1)  # expect: QL102, QL104


class QuantizableUp(nn.Module):
    def __init__(self, in_ch, skip_ch, out_ch):
        super().__init__()
        self.up = nn.Upsample(scale_factor=2, mode="nearest")
        self.cat = FloatFunctional()
        self.conv1 = nn.Conv2d(in_ch + skip_ch, out_ch, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_ch)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_ch)
        self.relu2 = nn.ReLU()

    def forward(self, x, skip):
        x = self.up(x)
        if x.shape[-2:] != skip.shape[-2:]:
            x = F.interpolate(x, size=skip.shape[-2:], mode="nearest")
        x = self.cat.cat([skip, x], dim=1)
        x = self.relu1(self.bn1(self.conv1(x)))
        return self.relu2(self.bn2(self.conv2(x)))

    def fuse_model(self):
        fuse_modules(self, [["conv1", "bn1", "relu1"], ["conv2", "bn2", "relu2"]], inplace=True)


class QuantizableUNetTail(nn.Module):
    """The last two decoder stages run quantized; labels are taken in float."""

    def __init__(self, widths=(8, 16, 32), num_classes=2, temperature=2.0):
        super().__init__()
        self.temperature = temperature
        self.quant_low = QuantStub()
        self.quant_mid = QuantStub()
        self.quant_high = QuantStub()
        self.up_mid = QuantizableUp(widths[2], widths[1], widths[1])
        self.up_high = QuantizableUp(widths[1], widths[0], widths[0])
        self.head = nn.Conv2d(widths[0], num_classes, 1)
        self.dequant = DeQuantStub()

    def forward(self, feats: List[torch.Tensor]):
        high, mid, low = feats
        x = self.up_mid(self.quant_low(low), self.quant_mid(mid))
        x = self.up_high(x, self.quant_high(high))
        logits = self.dequant(self.head(x))
        return logits.argmax(dim=1), logits / self.temperature

    def fuse_model(self):
        for m in self.modules():
            if isinstance(m, QuantizableUp):
                m.fuse_model()
