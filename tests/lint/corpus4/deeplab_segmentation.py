"""torchvision-style semantic segmentation: a weight-standardized BiT backbone behind an
IntermediateLayerGetter that returns an OrderedDict, DeepLabV3 with ASPP and an auxiliary head,
LR-ASPP's gated high-resolution branch, and a quantization-ready ASPP head."""
from collections import OrderedDict
from typing import Dict, Optional, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor
from torch.ao.nn.quantized import FloatFunctional
from torch.ao.quantization import DeQuantStub, QuantStub, fuse_modules


class StdConv2d(nn.Conv2d):
    """Weight-standardized convolution: the kernel is normalized on every call."""

    def __init__(self, *args, eps: float = 1e-6, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        weight = F.batch_norm(self.weight.reshape(1, self.out_channels, -1), None, None, training=True, momentum=0.0, eps=self.eps).reshape_as(self.weight)  # expect: QL504
        return F.conv2d(x, weight, self.bias, self.stride, self.padding, self.dilation, self.groups)  # expect: QL103, QL504


def bit_backbone(width: int = 8) -> nn.Sequential:
    def unit(cin: int, cout: int, stride: int, dilation: int = 1) -> nn.Sequential:
        return nn.Sequential(StdConv2d(cin, cout, 3, stride, dilation, dilation, bias=False), nn.GroupNorm(4, cout), nn.ReLU(inplace=True))

    return nn.Sequential(OrderedDict(stem=unit(3, width, 2), layer1=unit(width, width, 2), layer2=unit(width, 2 * width, 2), layer3=unit(2 * width, 2 * width, 1, dilation=2)))


class IntermediateLayerGetter(nn.ModuleDict):
    def __init__(self, model: nn.Module, return_layers: Dict[str, str]) -> None:
        orig_return_layers = dict(return_layers)
        layers = OrderedDict()
        for name, module in model.named_children():
            layers[name] = module
            if name in return_layers:
                del return_layers[name]
            if not return_layers:
                break
        super().__init__(layers)
        self.return_layers = orig_return_layers

    def forward(self, x: Tensor) -> Dict[str, Tensor]:
        out = OrderedDict()
        for name, module in self.items():
            x = module(x)
            if name in self.return_layers:
                out[self.return_layers[name]] = x
        return out


class ASPPConv(nn.Sequential):
    def __init__(self, in_channels: int, out_channels: int, dilation: int) -> None:
        super().__init__(nn.Conv2d(in_channels, out_channels, 3, padding=dilation, dilation=dilation, bias=False), nn.BatchNorm2d(out_channels), nn.ReLU())


class ASPPPooling(nn.Sequential):
    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__(nn.AdaptiveAvgPool2d(1), nn.Conv2d(in_channels, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels), nn.ReLU())

    def forward(self, x: Tensor) -> Tensor:
        size = x.shape[-2:]
        for mod in self:
            x = mod(x)
        return F.interpolate(x, size=size, mode="bilinear", align_corners=False)


class ASPP(nn.Module):
    def __init__(self, in_channels: int, atrous_rates: Sequence[int], out_channels: int = 16) -> None:
        super().__init__()
        modules = [nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels), nn.ReLU())]
        modules += [ASPPConv(in_channels, out_channels, rate) for rate in atrous_rates]
        modules.append(ASPPPooling(in_channels, out_channels))
        self.convs = nn.ModuleList(modules)
        self.project = nn.Sequential(nn.Conv2d(len(self.convs) * out_channels, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels), nn.ReLU(), nn.Dropout(0.5))

    def forward(self, x: Tensor) -> Tensor:
        res = [conv(x) for conv in self.convs]
        return self.project(torch.cat(res, dim=1))  # expect: QL302


class DeepLabV3(nn.Module):
    def __init__(self, num_classes: int = 3, width: int = 8, atrous_rates: Sequence[int] = (2, 4), aux_loss: bool = False, output_stride: int = 8) -> None:
        super().__init__()
        self.output_stride = output_stride
        return_layers = {"layer3": "out", "layer2": "aux"} if aux_loss else {"layer3": "out"}
        self.backbone = IntermediateLayerGetter(bit_backbone(width), return_layers)
        self.classifier = nn.Sequential(ASPP(2 * width, atrous_rates), nn.Conv2d(16, 16, 3, padding=1, bias=False), nn.BatchNorm2d(16), nn.ReLU(), nn.Conv2d(16, num_classes, 1))
        self.aux_classifier: Optional[nn.Module] = None
        if aux_loss:
            self.aux_classifier = nn.Sequential(nn.Conv2d(2 * width, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(), nn.Dropout(0.1), nn.Conv2d(width, num_classes, 1))

    def forward(self, x: Tensor) -> Dict[str, Tensor]:
        h, w = x.shape[-2:]
        pad_h, pad_w = (-h) % self.output_stride, (-w) % self.output_stride
        x = F.pad(x, (0, pad_w, 0, pad_h))
        features = self.backbone(x)
        result = OrderedDict()
        out = self.classifier(features["out"])
        result["out"] = F.interpolate(out, size=x.shape[-2:], mode="bilinear", align_corners=False)[..., :h, :w]
        if self.aux_classifier is not None:
            aux = self.aux_classifier(features["aux"])
            result["aux"] = F.interpolate(aux, size=x.shape[-2:], mode="bilinear", align_corners=False)[..., :h, :w]
        return result


class LRASPPHead(nn.Module):
    def __init__(self, low_channels: int, high_channels: int, num_classes: int, inter_channels: int) -> None:
        super().__init__()
        self.cbr = nn.Sequential(nn.Conv2d(high_channels, inter_channels, 1, bias=False), nn.BatchNorm2d(inter_channels), nn.ReLU(inplace=True))  # expect: QL201
        self.scale = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Conv2d(high_channels, inter_channels, 1, bias=False), nn.Sigmoid())
        self.low_classifier = nn.Conv2d(low_channels, num_classes, 1)
        self.high_classifier = nn.Conv2d(inter_channels, num_classes, 1)

    def forward(self, input: Dict[str, Tensor]) -> Tensor:
        low = input["low"]
        high = input["high"]
        x = self.cbr(high)
        s = self.scale(high)
        x = x * s  # expect: QL301
        x = F.interpolate(x, size=low.shape[-2:], mode="bilinear", align_corners=False)
        return self.low_classifier(low) + self.high_classifier(x)  # expect: QL301


class QuantizableASPPHead(nn.Module):
    """ASPP with its own stubs, a FloatFunctional for the concat, and every Conv-BN-ReLU fused."""

    def __init__(self, in_channels: int = 16, num_classes: int = 3, atrous_rates: Sequence[int] = (2, 4)) -> None:
        super().__init__()
        self.quant = QuantStub()
        self.aspp = ASPP(in_channels, atrous_rates)
        self.cat = FloatFunctional()
        self.classifier = nn.Conv2d(16, num_classes, 1)
        self.dequant = DeQuantStub()

    def forward(self, x: Tensor) -> Tensor:
        x = self.quant(x)
        res = [conv(x) for conv in self.aspp.convs]
        x = self.aspp.project(self.cat.cat(res, dim=1))
        return self.dequant(self.classifier(x))

    def fuse_model(self) -> None:
        for branch in self.aspp.convs:
            start = 1 if isinstance(branch, ASPPPooling) else 0
            fuse_modules(branch, [str(start), str(start + 1), str(start + 2)], inplace=True)
        fuse_modules(self.aspp.project, ["0", "1", "2"], inplace=True)
