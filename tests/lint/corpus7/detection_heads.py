"""Detection heads: a RetinaNet-style detector whose anchors and box decoding stay float after
per-output DeQuantStubs, a YOLO-style export head that concatenates boxes and class
probabilities, a query-based head with iterative box refinement, a CenterNet-style heatmap
head, and a decoupled head whose branches kept their own stubs."""
import torch
import torch.nn as nn
from torch.ao.nn.quantized import FloatFunctional
from torch.ao.quantization import DeQuantStub, QuantStub


def make_anchors(feat_h: int, feat_w: int, stride: int, size: float) -> torch.Tensor:
    ys = (torch.arange(feat_h, dtype=torch.float32) + 0.5) * stride
    xs = (torch.arange(feat_w, dtype=torch.float32) + 0.5) * stride
    cy, cx = torch.meshgrid(ys, xs, indexing="ij")
    half = size / 2
    return torch.stack([cx - half, cy - half, cx + half, cy + half], dim=-1).reshape(-1, 4)


def decode_boxes(deltas: torch.Tensor, anchors: torch.Tensor) -> torch.Tensor:
    wh = anchors[..., 2:] - anchors[..., :2]
    ctr = anchors[..., :2] + 0.5 * wh
    pred_ctr = ctr + deltas[..., :2] * wh  # expect: QL702, QL301
    pred_wh = torch.exp(deltas[..., 2:].clamp(max=4.0)) * wh  # expect: QL104; allow: QL702, QL301
    return torch.cat([pred_ctr - 0.5 * pred_wh, pred_ctr + 0.5 * pred_wh], dim=-1)


class ConvReLU(nn.Sequential):
    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__(nn.Conv2d(cin, cout, 3, stride, 1), nn.ReLU())


class TwoLevelBackbone(nn.Module):
    def __init__(self, width: int = 16):
        super().__init__()
        self.stage1 = nn.Sequential(ConvReLU(3, width, 2), ConvReLU(width, width, 2))
        self.stage2 = ConvReLU(width, width, 2)

    def forward(self, x):
        c3 = self.stage1(x)
        return [c3, self.stage2(c3)]


class PerLevelHead(nn.Module):
    def __init__(self, width: int, num_classes: int, levels: int = 2):
        super().__init__()
        self.cls_convs = nn.ModuleList(nn.Sequential(ConvReLU(width, width), nn.Conv2d(width, num_classes, 1)) for _ in range(levels))
        self.box_convs = nn.ModuleList(nn.Sequential(ConvReLU(width, width), nn.Conv2d(width, 4, 1)) for _ in range(levels))

    def forward(self, feats):
        cls_out, box_out = [], []
        for i, f in enumerate(feats):
            cls_out.append(self.cls_convs[i](f))
            box_out.append(self.box_convs[i](f))
        return cls_out, box_out


class QuantizableRetinaLite(nn.Module):
    def __init__(self, num_classes: int = 3, strides=(4, 8), sizes=(16.0, 32.0)):
        super().__init__()
        self.num_classes, self.strides, self.sizes = num_classes, strides, sizes
        self.quant = QuantStub()
        self.backbone = TwoLevelBackbone()
        self.head = PerLevelHead(16, num_classes, len(strides))
        self.cat_cls = FloatFunctional()
        self.cat_box = FloatFunctional()
        self.dequant_cls = DeQuantStub()
        self.dequant_box = DeQuantStub()  # allow: QL704

    @staticmethod
    def _flatten(maps, width: int):
        return [m.permute(0, 2, 3, 1).reshape(m.shape[0], -1, width) for m in maps]

    def _raw_outputs(self, images):
        feats = self.backbone(self.quant(images))
        cls_maps, box_maps = self.head(feats)
        cls = self.cat_cls.cat(self._flatten(cls_maps, self.num_classes), 1)
        box = self.cat_box.cat(self._flatten(box_maps, 4), 1)
        anchors = torch.cat([make_anchors(f.shape[-2], f.shape[-1], s, z) for f, s, z in zip(feats, self.strides, self.sizes)])
        return cls, box, anchors

    def forward(self, images):
        cls, box, anchors = self._raw_outputs(images)
        scores = self.dequant_cls(cls).sigmoid()
        return scores, decode_boxes(self.dequant_box(box), anchors)


class RetinaLiteFusedDecode(QuantizableRetinaLite):
    """Decodes straight from the head output to save a dequantize."""

    def forward(self, images):
        cls, box, anchors = self._raw_outputs(images)
        return self.dequant_cls(cls).sigmoid(), decode_boxes(box, anchors)


class YoloLiteExport(nn.Module):
    """Export head: per level, box regression and class probabilities in one tensor."""

    def __init__(self, num_classes: int = 3, levels: int = 2):
        super().__init__()
        self.quant = QuantStub()
        self.backbone = TwoLevelBackbone()
        self.head = PerLevelHead(16, num_classes, levels)
        self.dequants = nn.ModuleList(DeQuantStub() for _ in range(levels))

    def forward(self, images):
        cls_maps, box_maps = self.head(self.backbone(self.quant(images)))
        outs = []
        for i, (c, b) in enumerate(zip(cls_maps, box_maps)):
            prob = self.dequants[i](c).sigmoid()
            outs.append(torch.cat([b, prob], dim=1))  # expect: QL702, QL302
        return outs


class QueryBoxRefiner(nn.Module):
    """Each stage predicts boxes in float and feeds an embedding of them back into the queries."""

    def __init__(self, dim: int = 32, stages: int = 2, requantize: bool = True):
        super().__init__()
        self.stages, self.requantize = stages, requantize
        self.quant = QuantStub()
        self.query_proj = nn.Linear(dim, dim)
        self.box_mlps = nn.ModuleList(nn.Sequential(nn.Linear(dim, dim), nn.ReLU(), nn.Linear(dim, 4)) for _ in range(stages))
        self.box_dequants = nn.ModuleList(DeQuantStub() for _ in range(stages))
        self.box_quants = nn.ModuleList(QuantStub() for _ in range(stages))
        self.box_embeds = nn.ModuleList(nn.Linear(4, dim) for _ in range(stages))
        self.adds = nn.ModuleList(FloatFunctional() for _ in range(stages))

    def forward(self, queries):
        h = self.query_proj(self.quant(queries))
        boxes = []
        for i in range(self.stages):
            b = self.box_dequants[i](self.box_mlps[i](h)).sigmoid()
            boxes.append(b)
            if self.requantize:
                e = self.box_embeds[i](self.box_quants[i](b))
            else:
                e = self.box_embeds[i](b)  # expect: QL701
            h = self.adds[i].add(h, e)
        return torch.stack(boxes)


class DecoupledHeadDetector(nn.Module):
    """The task branches kept the stubs they had when the head was benchmarked alone."""

    def __init__(self, num_classes: int = 3):
        super().__init__()
        self.quant = QuantStub()
        self.backbone = TwoLevelBackbone()
        self.quant_cls = QuantStub()
        self.cls_branch = nn.Sequential(ConvReLU(16, 16), nn.Conv2d(16, num_classes, 1))
        self.quant_reg = QuantStub()
        self.reg_branch = nn.Sequential(ConvReLU(16, 16), nn.Conv2d(16, 4, 1))
        self.dequant_cls = DeQuantStub()
        self.dequant_reg = DeQuantStub()

    def forward(self, images):
        _, c4 = self.backbone(self.quant(images))
        cls = self.cls_branch(self.quant_cls(c4))  # expect: QL703
        reg = self.reg_branch(self.quant_reg(c4))  # expect: QL703
        return self.dequant_cls(cls).sigmoid(), self.dequant_reg(reg)


class CenterNetLite(nn.Module):
    """Heatmap head exported as int8; nothing dequantizes it."""

    def __init__(self, num_classes: int = 3):
        super().__init__()
        self.quant = QuantStub()
        self.backbone = TwoLevelBackbone()
        self.hm_head = nn.Sequential(ConvReLU(16, 16), nn.Conv2d(16, num_classes, 1))

    def forward(self, images):
        c3, _ = self.backbone(self.quant(images))
        return self.hm_head(c3)  # expect: QL704
