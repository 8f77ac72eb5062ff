"""A one-stage detector: Darknet-style backbone, FPN with interpolate-and-add,
a RetinaNet-style head shared across pyramid levels and a YOLO-style box decoder;
next to a quantization-ready detector with a head per level and FloatFunctional merges.
Anchor grids, strides and shapes are arithmetic on constructor tensors and config,
which is fine to quantize around."""
import torch
import torch.nn as nn
from torch.ao.nn.quantized import FloatFunctional
from torch.ao.quantization import DeQuantStub, QuantStub, fuse_modules
from torch.nn import functional as Fn


def darknet_conv(in_channels: int, out_channels: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.LeakyReLU(0.1),
    )


class DarknetBackbone(nn.Module):
    def __init__(self, widths=(8, 16, 32)):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, widths[0], 3, 2, 1, bias=False),
            nn.BatchNorm2d(widths[0]),
            nn.LeakyReLU(0.1, True),  # expect: QL201
        )
        self.stage3 = darknet_conv(widths[0], widths[0], 2)
        self.stage4 = darknet_conv(widths[0], widths[1], 2)
        self.stage5 = darknet_conv(widths[1], widths[2], 2)

    def forward(self, x):
        c3 = self.stage3(self.stem(x))
        c4 = self.stage4(c3)
        return c3, c4, self.stage5(c4)


class FPN(nn.Module):
    def __init__(self, in_channels=(8, 16, 32), out_channels=16):
        super().__init__()
        self.lateral_convs = nn.ModuleList(nn.Conv2d(c, out_channels, 1) for c in in_channels)
        self.output_convs = nn.ModuleList(nn.Conv2d(out_channels, out_channels, 3, padding=1) for _ in in_channels)

    def _upsample_add(self, top, lateral):
        return Fn.interpolate(top, size=lateral.shape[-2:], mode="nearest") + lateral  # expect: QL301

    def forward(self, features):
        c3, c4, c5 = features
        p5 = self.lateral_convs[2](c5)
        p4 = self._upsample_add(p5, self.lateral_convs[1](c4))
        p3 = self._upsample_add(p4, self.lateral_convs[0](c3))
        return [conv(p) for conv, p in zip(self.output_convs, (p3, p4, p5))]


class SharedHead(nn.Module):
    """RetinaNet-style head: one set of convs, and so one set of observers, for every level."""

    def __init__(self, channels=16, num_anchors=3, num_classes=4):
        super().__init__()
        self.tower = nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU(inplace=True))  # expect: QL201
        self.cls_logits = nn.Conv2d(channels, num_anchors * num_classes, 3, padding=1)
        self.bbox_pred = nn.Conv2d(channels, num_anchors * 4, 3, padding=1)

    def forward(self, features):
        logits, deltas = [], []
        for feature in features:
            tower = self.tower(feature)  # expect: QL401
            logits.append(self.cls_logits(tower))  # expect: QL401
            deltas.append(self.bbox_pred(tower))  # expect: QL401
        return logits, deltas


class BoxDecoder(nn.Module):
    """YOLO-style decoding inside the model: sigmoid offsets on an anchor grid."""

    def __init__(self, channels=16, num_classes=4, stride=8, anchor=(10.0, 13.0)):
        super().__init__()
        self.num_classes = num_classes
        self.stride = stride
        self.register_buffer("anchor", torch.tensor(anchor).view(1, 2, 1, 1))
        self.pred = nn.Conv2d(channels, 4 + num_classes, 1)

    def forward(self, feature, score_threshold: float = 0.05):
        h, w = feature.shape[-2:]
        ys = torch.arange(h) * self.stride + self.stride // 2
        xs = (torch.arange(w) * 2 + 1) * self.stride // 2
        grid = torch.stack(torch.meshgrid(ys, xs, indexing="ij"), dim=0).unsqueeze(0)
        offsets, sizes, class_logits = self.pred(feature).split([2, 2, self.num_classes], dim=1)
        xy = (offsets.sigmoid() * 2 - 0.5) * self.stride + grid  # expect: QL301
        wh = (sizes.sigmoid() * 2) ** 2 * self.anchor  # expect: QL104, QL301
        scores = class_logits.sigmoid()
        best, labels = scores.amax(dim=1), scores.argmax(dim=1)  # expect: QL104
        best = torch.where(best > score_threshold, best, torch.zeros_like(best))  # expect: QL104
        boxes = torch.cat([xy - wh / 2, xy + wh / 2], dim=1)  # expect: QL301, QL302, QL303
        return boxes.flatten(2), best.flatten(1), labels.flatten(1)


class Detector(nn.Module):
    def __init__(self, num_classes=4):
        super().__init__()
        self.register_buffer("pixel_mean", torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1))
        self.register_buffer("pixel_std", torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1))
        self.backbone = DarknetBackbone()
        self.fpn = FPN()
        self.head = SharedHead(num_classes=num_classes)
        self.decoder = BoxDecoder(num_classes=num_classes)

    def _preprocess(self, images):
        images = torch.div(images, 255.0)  # expect: QL303
        return (images - self.pixel_mean) / self.pixel_std  # expect: QL301, QL303

    def forward(self, images):
        features = self.fpn(self.backbone(self._preprocess(images)))
        logits, deltas = self.head(features)
        return self.decoder(features[0]), logits, deltas


class ConvBNReLU(nn.Module):
    def __init__(self, in_channels, out_channels, stride=1):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn = nn.BatchNorm2d(out_channels)
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(self.bn(self.conv(x)))

    def fuse_model(self):
        fuse_modules(self, [["conv", "bn", "relu"]], inplace=True)


class QuantizableFPN(nn.Module):
    """Top-down merges through one FloatFunctional each; nn.Upsample is stateless, so one is enough."""

    def __init__(self, in_channels=(8, 16, 32), out_channels=16):
        super().__init__()
        self.lateral_convs = nn.ModuleList(nn.Conv2d(c, out_channels, 1) for c in in_channels)
        self.output_convs = nn.ModuleList(nn.Conv2d(out_channels, out_channels, 3, padding=1) for _ in in_channels)
        self.upsample = nn.Upsample(scale_factor=2, mode="nearest")
        self.merge_p4 = FloatFunctional()
        self.merge_p3 = FloatFunctional()

    def forward(self, features):
        c3, c4, c5 = features
        p5 = self.lateral_convs[2](c5)
        p4 = self.merge_p4.add(self.upsample(p5), self.lateral_convs[1](c4))
        p3 = self.merge_p3.add(self.upsample(p4), self.lateral_convs[0](c3))
        return [conv(p) for conv, p in zip(self.output_convs, (p3, p4, p5))]


class QuantizableHead(nn.Module):
    """A tower and predictors per pyramid level, each called once."""

    def __init__(self, channels=16, num_levels=3, num_anchors=3, num_classes=4):
        super().__init__()
        self.towers = nn.ModuleList(ConvBNReLU(channels, channels) for _ in range(num_levels))
        self.cls_logits = nn.ModuleList(
            nn.Conv2d(channels, num_anchors * num_classes, 3, padding=1) for _ in range(num_levels)
        )
        self.bbox_preds = nn.ModuleList(nn.Conv2d(channels, num_anchors * 4, 3, padding=1) for _ in range(num_levels))

    def forward(self, features):
        logits, deltas = [], []
        for feature, tower, cls_logits, bbox_pred in zip(features, self.towers, self.cls_logits, self.bbox_preds):
            hidden = tower(feature)
            logits += [cls_logits(hidden)]
            deltas += [bbox_pred(hidden)]
        return logits, deltas


class QuantizableDetector(nn.Module):
    """Normalization folded into the data pipeline; box decoding left to float post-processing."""

    def __init__(self, widths=(8, 16, 32), num_classes=4):
        super().__init__()
        self.quant = QuantStub()
        self.stem = ConvBNReLU(3, widths[0], 2)
        self.stage3 = ConvBNReLU(widths[0], widths[0], 2)
        self.stage4 = ConvBNReLU(widths[0], widths[1], 2)
        self.stage5 = ConvBNReLU(widths[1], widths[2], 2)
        self.fpn = QuantizableFPN(widths)
        self.head = QuantizableHead(num_classes=num_classes)
        self.dequant = DeQuantStub()
        self.batches_seen = 0

    def forward(self, images):
        self.batches_seen += 1
        c3 = self.stage3(self.stem(self.quant(images)))
        c4 = self.stage4(c3)
        logits, deltas = self.head(self.fpn((c3, c4, self.stage5(c4))))
        return [self.dequant(t) for t in logits], [self.dequant(t) for t in deltas]

    def fuse_model(self):
        for module in self.modules():
            if type(module) is ConvBNReLU:
                module.fuse_model()
