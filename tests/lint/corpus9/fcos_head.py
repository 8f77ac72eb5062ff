"""An FCOS/RetinaNet-style detection head. The head is shared across FPN levels (as
the float model does it), box decoding runs after the DeQuantStub, and anchor
points come from integer grids."""
import math

import torch
import torch.nn as nn
from torch.ao.quantization import DeQuantStub, QuantStub


class Scale(nn.Module):
    def __init__(self, init_value=1.0):
        super().__init__()
        self.scale = nn.Parameter(torch.tensor([init_value], dtype=torch.float32))

    def forward(self, x):
        return x * self.scale  # expect: QL301, QL504; allow: QL702


class FCOSHead(nn.Module):
    def __init__(self, in_channels, num_classes, num_convs=2, prior_prob=0.01):
        super().__init__()
        tower = []
        for _ in range(num_convs):
            tower += [nn.Conv2d(in_channels, in_channels, 3, padding=1), nn.GroupNorm(8, in_channels), nn.ReLU()]
        self.cls_tower = nn.Sequential(*tower)
        self.cls_logits = nn.Conv2d(in_channels, num_classes, 3, padding=1)
        self.bbox_pred = nn.Conv2d(in_channels, 4, 3, padding=1)
        self.centerness = nn.Conv2d(in_channels, 1, 3, padding=1)
        self.scales = nn.ModuleList([Scale(1.0) for _ in range(3)])
        bias_value = -math.log((1 - prior_prob) / prior_prob)
        nn.init.constant_(self.cls_logits.bias, bias_value)

    def forward(self, features):
        logits, bbox_reg, centerness = [], [], []
        for level, feature in enumerate(features):
            t = self.cls_tower(feature)  # expect: QL401
            logits.append(self.cls_logits(t))  # expect: QL401
            centerness.append(self.centerness(t))  # expect: QL401
            reg = self.scales[level](self.bbox_pred(t))  # expect: QL401
            bbox_reg.append(torch.exp(reg))  # expect: QL104
        return logits, bbox_reg, centerness


class QuantizableFCOS(nn.Module):
    def __init__(self, num_classes=5, channels=16, strides=(8, 16, 32)):
        super().__init__()
        self.strides = strides
        self.quant_p3 = QuantStub()
        self.quant_p4 = QuantStub()
        self.quant_p5 = QuantStub()
        self.head = FCOSHead(channels, num_classes)
        self.dequant = DeQuantStub()

    def compute_locations(self, h, w, stride):
        idx = torch.arange(h * w)
        ys = torch.div(idx, w, rounding_mode="floor")
        xs = idx % w
        return torch.stack((xs, ys), dim=1) * stride + stride // 2

    def forward(self, p3, p4, p5):
        feats = [self.quant_p3(p3), self.quant_p4(p4), self.quant_p5(p5)]
        logits, bbox_reg, centerness = self.head(feats)
        detections = []
        for feat, cls, reg, ctr, stride in zip(feats, logits, bbox_reg, centerness, self.strides):
            h, w = feat.shape[-2:]
            locations = self.compute_locations(h, w, stride)
            cls = self.dequant(cls).flatten(2).transpose(1, 2).sigmoid()
            ctr = self.dequant(ctr).flatten(2).transpose(1, 2).sigmoid()
            reg = self.dequant(reg).flatten(2).transpose(1, 2) * stride
            scores = torch.sqrt(cls * ctr)
            boxes = torch.cat([locations[None] - reg[..., :2], locations[None] + reg[..., 2:]], dim=-1)
            detections.append((boxes, scores))
        return detections


class LevelwiseHead(nn.Module):
    """One tower and one output conv per level: no module runs twice."""

    def __init__(self, channels, num_classes, num_levels=3):
        super().__init__()
        self.towers = nn.ModuleList(nn.Sequential(nn.Conv2d(channels, channels, 3, padding=1), nn.ReLU())
                                    for _ in range(num_levels))
        self.outs = nn.ModuleList(nn.Conv2d(channels, num_classes, 1) for _ in range(num_levels))
        self.quants = nn.ModuleList(QuantStub() for _ in range(num_levels))
        self.dequant = DeQuantStub()

    def forward(self, features):
        outs = []
        for i, feature in enumerate(features):
            outs.append(self.dequant(self.outs[i](self.towers[i](self.quants[i](feature)))))
        return [o.softmax(dim=1) for o in outs]
