"""Segmentation models: a U-Net with no stubs that is quantized through QuantWrapper, a
DeepLab-style model whose auxiliary head stays float through a class attribute
`qconfig = None` and whose upsampling to the input size runs after the DeQuantStub, a
two-scale network with one stub per scale, and a mask refiner guided by a coarse mask."""
import torch.nn as nn
import torch.nn.functional as F
from torch.ao.nn.quantized import FloatFunctional
from torch.ao.quantization import DeQuantStub, QuantStub, QuantWrapper, convert, get_default_qconfig, prepare


class ConvBNReLU(nn.Sequential):
    def __init__(self, cin: int, cout: int, stride: int = 1, dilation: int = 1):
        super().__init__(
            nn.Conv2d(cin, cout, 3, stride, dilation, dilation=dilation, bias=False), nn.BatchNorm2d(cout), nn.ReLU()
        )


class UNetLite(nn.Module):
    def __init__(self, cin: int = 3, num_classes: int = 2, widths=(8, 16, 32)):
        super().__init__()
        self.downs = nn.ModuleList(ConvBNReLU(a, b) for a, b in zip((cin,) + widths[:-1], widths))
        self.pool = nn.MaxPool2d(2)
        self.ups = nn.ModuleList(nn.Upsample(scale_factor=2, mode="nearest") for _ in widths[1:])
        self.decs = nn.ModuleList(ConvBNReLU(b + a, a) for a, b in zip(widths[-2::-1], widths[:0:-1]))
        self.cats = nn.ModuleList(FloatFunctional() for _ in widths[1:])
        self.head = nn.Conv2d(widths[0], num_classes, 1)

    def forward(self, x):
        skips = []
        for i, down in enumerate(self.downs):
            x = down(x)
            if i < len(self.downs) - 1:
                skips.append(x)
                x = self.pool(x)  # allow: QL401
        for up, dec, cat, skip in zip(self.ups, self.decs, self.cats, reversed(skips)):
            x = dec(cat.cat([up(x), skip], 1))
        return self.head(x)


def build_quantized_unet(calibration_batches):
    model = QuantWrapper(UNetLite()).eval()
    model.qconfig = get_default_qconfig("x86")
    prepare(model, inplace=True)
    for batch in calibration_batches:
        model(batch)
    return convert(model)


class ASPPPooling(nn.Sequential):
    def __init__(self, cin: int, cout: int):
        super().__init__(nn.AdaptiveAvgPool2d(1), nn.Conv2d(cin, cout, 1, bias=False), nn.ReLU())

    def forward(self, x):
        size = x.shape[-2:]
        for mod in self:
            x = mod(x)
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


class ASPP(nn.Module):
    def __init__(self, cin: int, cout: int, rates=(2, 4)):
        super().__init__()
        self.branches = nn.ModuleList([nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())])
        self.branches.extend(ConvBNReLU(cin, cout, dilation=r) for r in rates)
        self.branches.append(ASPPPooling(cin, cout))
        self.cat = FloatFunctional()
        self.project = nn.Sequential(nn.Conv2d(cout * (len(rates) + 2), cout, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())

    def forward(self, x):
        return self.project(self.cat.cat([branch(x) for branch in self.branches], dim=1))


class FCNAuxHead(nn.Module):
    """Training-time auxiliary head, kept in float."""

    qconfig = None

    def __init__(self, cin: int, num_classes: int):
        super().__init__()
        self.conv = nn.Conv2d(cin, cin, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(cin)
        self.relu = nn.ReLU()
        self.classifier = nn.Conv2d(cin, num_classes, 1)

    def forward(self, x):
        return self.classifier(self.relu(self.bn(self.conv(x))))  # allow: QL702


class DeepLabLite(nn.Module):
    def __init__(self, num_classes: int = 4, aux_loss: bool = True):
        super().__init__()
        self.quant = QuantStub()
        self.stage1 = nn.Sequential(ConvBNReLU(3, 16, 2), ConvBNReLU(16, 16))
        self.stage2 = nn.Sequential(ConvBNReLU(16, 32, 2), ConvBNReLU(32, 32, dilation=2))
        self.aspp = ASPP(32, 32)
        self.classifier = nn.Conv2d(32, num_classes, 1)
        self.dequant = DeQuantStub()
        self.aux = FCNAuxHead(16, num_classes) if aux_loss else None
        self.dequant_aux = DeQuantStub()

    def forward(self, x):
        input_shape = x.shape[-2:]
        low = self.stage1(self.quant(x))
        out = self.dequant(self.classifier(self.aspp(self.stage2(low))))
        result = {"out": F.interpolate(out, size=input_shape, mode="bilinear", align_corners=False)}
        if self.aux is not None:
            aux = self.aux(self.dequant_aux(low))
            result["aux"] = F.interpolate(aux, size=input_shape, mode="bilinear", align_corners=False)
        return result


class DeepLabLiteLateAuxDequant(DeepLabLite):
    """The auxiliary DeQuantStub was moved behind the head when the head became float."""

    def forward(self, x):
        input_shape = x.shape[-2:]
        low = self.stage1(self.quant(x))
        out = self.dequant(self.classifier(self.aspp(self.stage2(low))))
        aux = self.dequant_aux(self.aux(low))  # expect: QL702
        return {
            "out": F.interpolate(out, size=input_shape, mode="bilinear", align_corners=False),
            "aux": F.interpolate(aux, size=input_shape, mode="bilinear", align_corners=False),
        }


class TwoScaleSegNet(nn.Module):
    """The half-resolution view is computed in float, then each scale gets its own stub."""

    def __init__(self, num_classes: int = 4):
        super().__init__()
        self.quant_full = QuantStub()
        self.quant_half = QuantStub()
        self.branch_full = nn.Sequential(ConvBNReLU(3, 16, 2), ConvBNReLU(16, 16, 2))
        self.branch_half = ConvBNReLU(3, 16, 2)
        self.merge = FloatFunctional()
        self.classifier = nn.Conv2d(16, num_classes, 1)
        self.dequant = DeQuantStub()

    def forward(self, x):
        half = F.interpolate(x, scale_factor=0.5, mode="bilinear", align_corners=False)
        full = self.branch_full(self.quant_full(x))
        return self.dequant(self.classifier(self.merge.add(full, self.branch_half(self.quant_half(half)))))


class TwoScaleSegNetSharedResize(TwoScaleSegNet):
    """Resizes after quantizing the full-resolution input."""

    def forward(self, x):
        x = self.quant_full(x)
        half = self.quant_half(F.interpolate(x, scale_factor=0.5, mode="bilinear", align_corners=False))  # expect: QL703
        out = self.merge.add(self.branch_full(x), self.branch_half(half))
        return self.dequant(self.classifier(out))


class MaskRefiner(nn.Module):
    """Refines a coarse mask predicted by another model, guided by the image."""

    def __init__(self, quantize_mask: bool = True):
        super().__init__()
        self.quantize_mask = quantize_mask
        self.quant = QuantStub()
        self.quant_mask = QuantStub()
        self.img_stem = ConvBNReLU(3, 15)
        self.cat = FloatFunctional()
        self.refine = nn.Sequential(ConvBNReLU(16, 16), nn.Conv2d(16, 1, 1))
        self.dequant = DeQuantStub()

    def forward(self, image, coarse):
        feat = self.img_stem(self.quant(image))
        if self.quantize_mask:
            x = self.cat.cat([feat, self.quant_mask(coarse)], dim=1)
        else:
            x = self.cat.cat([feat, coarse], dim=1)  # expect: QL701; allow: QL702
        return self.dequant(self.refine(x)).sigmoid()
