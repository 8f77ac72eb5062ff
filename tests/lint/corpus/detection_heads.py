"""Detection and keypoint heads: YOLO-style decoding on meshgrid cells, a
RetinaNet-style head shared across levels, CenterNet peaks, a quantizable
PAFPN neck and a quantized box head that decodes in float."""
from typing import List, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor
from torch.ao.nn.quantized import FloatFunctional
from torch.ao.quantization import DeQuantStub, QuantStub, fuse_modules


def peak_coords(inds: Tensor, width: int) -> Tuple[Tensor, Tensor]:
    return (inds % width).float(), torch.div(inds, width, rounding_mode="floor").float()


class YoloDetect(nn.Module):
    def __init__(self, num_classes=3, anchors=((10, 13, 16, 30), (30, 61, 62, 45)), ch=(8, 16), strides=(8, 16)):
        super().__init__()
        self.no = num_classes + 5
        self.nl = len(anchors)
        self.na = len(anchors[0]) // 2
        self.register_buffer("strides", torch.tensor(strides, dtype=torch.float32))
        self.register_buffer("anchor_wh", torch.tensor(anchors, dtype=torch.float32).view(self.nl, 1, self.na, 1, 1, 2))
        self.m = nn.ModuleList(nn.Conv2d(c, self.no * self.na, 1) for c in ch)

    def _grid(self, ny: int, nx: int) -> Tensor:
        yv, xv = torch.meshgrid(torch.arange(ny), torch.arange(nx), indexing="ij")
        return torch.stack((xv, yv), 2).view(1, 1, ny, nx, 2).float()

    def forward(self, feats: List[Tensor]):
        outputs = []
        for i in range(self.nl):
            p = self.m[i](feats[i])
            bs, _, ny, nx = p.shape
            p = p.view(bs, self.na, self.no, ny, nx).permute(0, 1, 3, 4, 2).contiguous()
            if self.training:
                outputs.append(p)
                continue
            grid = (self._grid(ny, nx) - 0.5) * self.strides[i]
            y = p.sigmoid()
            xy = y[..., 0:2] * 2 * self.strides[i] + grid  # expect: QL301
            wh = (y[..., 2:4] * 2) ** 2 * self.anchor_wh[i]  # expect: QL104, QL301
            outputs.append(torch.cat((xy, wh, y[..., 4:]), -1).view(bs, -1, self.no))  # expect: QL302
        return outputs if self.training else torch.cat(outputs, 1)  # expect: QL302


class SharedRetinaHead(nn.Module):
    """One tower and one classifier for every FPN level, as RetinaNet shares them."""

    def __init__(self, ch=8, num_anchors=3, num_classes=3, num_convs=2):
        super().__init__()
        self.num_classes = num_classes
        tower = []
        for _ in range(num_convs):
            tower += [nn.Conv2d(ch, ch, 3, padding=1), nn.GroupNorm(4, ch), nn.ReLU()]
        self.tower = nn.Sequential(*tower)
        self.cls_logits = nn.Conv2d(ch, num_anchors * num_classes, 3, padding=1)
        self.prior = -torch.log(torch.tensor((1 - 0.01) / 0.01)).item()
        nn.init.constant_(self.cls_logits.bias, self.prior)

    def forward(self, feats: List[Tensor]) -> Tensor:
        all_logits = []
        for feat in feats:
            logits = self.cls_logits(self.tower(feat))  # expect: QL401
            n, _, h, w = logits.shape
            logits = logits.view(n, -1, self.num_classes, h, w).permute(0, 3, 4, 1, 2)
            all_logits.append(logits.reshape(n, -1, self.num_classes))
        return torch.cat(all_logits, dim=1)  # expect: QL302


class CenterNetHead(nn.Module):
    def __init__(self, ch=8, num_keypoints=4, k=5, sigma=1.0):
        super().__init__()
        self.k = k
        self.heatmap = nn.Sequential(nn.Conv2d(ch, ch, 3, padding=1), nn.ReLU(), nn.Conv2d(ch, num_keypoints, 1))
        self.offset = nn.Sequential(nn.Conv2d(ch, ch, 3, padding=1), nn.ReLU(), nn.Conv2d(ch, 2, 1))
        self.nms_pool = nn.MaxPool2d(3, stride=1, padding=1)
        taps = torch.exp(-(torch.arange(3) - 1.0) ** 2 / (2 * sigma ** 2))
        kernel = taps[:, None] * taps[None, :]
        self.register_buffer("blur", (kernel / kernel.sum()).expand(num_keypoints, 1, 3, 3).clone())

    def _nms(self, heat: Tensor) -> Tensor:
        keep = (self.nms_pool(heat) == heat).float()
        return heat * keep  # expect: QL301

    def forward(self, x):
        heat = torch.sigmoid(self.heatmap(x))
        heat = F.conv2d(heat, self.blur, padding=1, groups=heat.shape[1])  # expect: QL103
        heat = self._nms(heat)
        b, c, h, w = heat.shape
        scores, inds = heat.view(b, c * h * w).topk(self.k)
        xs, ys = peak_coords(inds % (h * w), w)
        off_x = self.offset(x).flatten(2)[:, 0].gather(1, inds % (h * w))  # expect: QL104
        return torch.stack([xs + off_x, ys], -1), scores  # expect: QL301, QL302


class QuantizablePAFPN(nn.Module):
    """Top-down merges get one FloatFunctional each; the bottom-up path reuses one."""

    def __init__(self, in_channels=(8, 16, 32), out_ch=8):
        super().__init__()
        self.lateral = nn.ModuleList(nn.Conv2d(c, out_ch, 1) for c in in_channels)
        self.top_down_add = nn.ModuleList(FloatFunctional() for _ in in_channels[1:])
        self.down = nn.ModuleList(nn.Conv2d(out_ch, out_ch, 3, stride=2, padding=1) for _ in in_channels[1:])
        self.bottom_up_add = FloatFunctional()

    def forward(self, feats: List[Tensor]) -> List[Tensor]:
        laterals = [conv(f) for conv, f in zip(self.lateral, feats)]
        for i in range(len(laterals) - 1, 0, -1):
            up = F.interpolate(laterals[i], size=laterals[i - 1].shape[-2:], mode="nearest")
            laterals[i - 1] = self.top_down_add[i - 1].add(laterals[i - 1], up)
        outs = [laterals[0]]
        for i, down in enumerate(self.down):
            outs.append(self.bottom_up_add.add(laterals[i + 1], down(outs[-1])))  # expect: QL403
        return outs


class QuantizableBoxHead(nn.Module):
    """Convolutions run quantized and pool before the activation; boxes are decoded
    on the dequantized output."""

    def __init__(self, ch=8, num_anchors=3, stride=16):
        super().__init__()
        self.stride = stride
        self.num_anchors = num_anchors
        self.quant = QuantStub()
        self.conv = nn.Conv2d(ch, ch, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(ch)
        self.pool = nn.MaxPool2d(2)
        self.relu = nn.ReLU()
        self.box = nn.Conv2d(ch, num_anchors * 4, 1)
        self.dequant = DeQuantStub()

    def forward(self, x):
        x = self.relu(self.pool(self.bn(self.conv(self.quant(x)))))
        deltas = self.dequant(self.box(x))
        n, _, h, w = deltas.shape
        deltas = deltas.view(n, self.num_anchors, 4, h, w).permute(0, 3, 4, 1, 2)
        ys, xs = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
        centers = (torch.stack((xs, ys), -1).float() + 0.5) * self.stride
        ctr = centers[:, :, None] + deltas[..., :2] * self.stride
        size = torch.exp(deltas[..., 2:].clamp(max=4.0)) * self.stride
        return torch.cat([ctr - size / 2, ctr + size / 2], dim=-1)

    def fuse_model(self):
        fuse_modules(self, [["conv", "bn", "relu"]], inplace=True)  # expect: QL502
