"""A small quantizable U-Net for segmentation: skip connections concatenated with
FloatFunctionals, bilinear upsampling, and float post-processing (softmax, argmax,
class weighting) after the DeQuantStub."""
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.ao.nn.quantized import FloatFunctional
from torch.ao.quantization import DeQuantStub, QuantStub, fuse_modules


class DoubleConv(nn.Sequential):
    def __init__(self, in_ch, out_ch):
        super().__init__(
            nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=False), nn.BatchNorm2d(out_ch), nn.ReLU(),
            nn.Conv2d(out_ch, out_ch, 3, padding=1, bias=False), nn.BatchNorm2d(out_ch), nn.ReLU(),
        )

    def fuse_model(self):
        fuse_modules(self, [["0", "1", "2"], ["3", "4", "5"]], inplace=True)


class Up(nn.Module):
    def __init__(self, in_ch, out_ch):
        super().__init__()
        self.conv = DoubleConv(in_ch, out_ch)
        self.cat = FloatFunctional()

    def forward(self, x1, x2):
        x1 = F.interpolate(x1, size=x2.shape[-2:], mode="bilinear", align_corners=False)
        return self.conv(self.cat.cat([x2, x1], dim=1))


class UpWithTorchCat(Up):
    def forward(self, x1, x2):
        x1 = F.interpolate(x1, scale_factor=2, mode="nearest")
        diff_y = x2.size(2) - x1.size(2)
        diff_x = x2.size(3) - x1.size(3)
        x1 = F.pad(x1, [diff_x // 2, diff_x - diff_x // 2, diff_y // 2, diff_y - diff_y // 2])
        return self.conv(torch.cat([x2, x1], dim=1))  # expect: QL302


class QuantizableUNet(nn.Module):
    def __init__(self, in_ch=3, num_classes=4, base=8, class_weights=(1.0, 2.0, 2.0, 4.0)):
        super().__init__()
        self.quant = QuantStub()
        self.inc = DoubleConv(in_ch, base)
        self.downs = nn.ModuleList([DoubleConv(base * 2 ** i, base * 2 ** (i + 1)) for i in range(2)])
        self.pool = nn.MaxPool2d(2)
        self.up1 = Up(base * 6, base * 2)
        self.up2 = UpWithTorchCat(base * 3, base)
        self.outc = nn.Conv2d(base, num_classes, 1)
        self.dequant = DeQuantStub()
        self.register_buffer("class_weights", torch.tensor(class_weights))

    def forward(self, x):
        x1 = self.inc(self.quant(x))
        skips = [x1]
        for down in self.downs:
            skips.append(down(self.pool(skips[-1])))
        y = self.up1(skips[2], skips[1])
        y = self.up2(y, skips[0])
        logits = self.dequant(self.outc(y))
        probs = F.softmax(logits, dim=1)
        weighted = probs * self.class_weights[None, :, None, None]
        return logits, weighted.argmax(dim=1)

    def fuse_model(self):
        for m in self.modules():
            if isinstance(m, DoubleConv):
                m.fuse_model()


class SharedCatDecoder(nn.Module):
    """One FloatFunctional for every decoder stage."""

    def __init__(self, chs=(32, 16, 8)):
        super().__init__()
        self.convs = nn.ModuleList([nn.Conv2d(c * 2, c // 2 if c > 8 else c, 3, padding=1) for c in chs])
        self.cat = FloatFunctional()

    def forward(self, x, skips):
        for conv, skip in zip(self.convs, skips):
            x = F.interpolate(x, size=skip.shape[-2:], mode="nearest")
            x = conv(self.cat.cat([x, skip], dim=1))  # expect: QL403
        return x
