"""Optical flow and stereo matching: backward warping with grid_sample (PWC-Net), an all-pairs
correlation volume (RAFT), a local correlation over padded shifts, a group-wise stereo cost
volume with disparity regression, and a quantizable siamese feature net whose cost volume is
built in float after the DeQuantStub."""
from typing import Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor
from torch.ao.nn.quantized import FloatFunctional
from torch.ao.quantization import DeQuantStub, QuantStub, fuse_modules


class Warp(nn.Module):
    def forward(self, x: Tensor, flo: Tensor) -> Tensor:
        B, C, H, W = x.size()
        xx = torch.arange(0, W).view(1, -1).repeat(H, 1).view(1, 1, H, W).repeat(B, 1, 1, 1)
        yy = torch.arange(0, H).view(-1, 1).repeat(1, W).view(1, 1, H, W).repeat(B, 1, 1, 1)
        grid = torch.cat((xx, yy), 1).float()
        vgrid = grid + flo  # expect: QL301
        vgrid[:, 0, :, :] = 2.0 * vgrid[:, 0, :, :].clone() / max(W - 1, 1) - 1.0  # expect: QL301, QL303
        vgrid[:, 1, :, :] = 2.0 * vgrid[:, 1, :, :].clone() / max(H - 1, 1) - 1.0  # expect: QL301, QL303
        vgrid = vgrid.permute(0, 2, 3, 1)
        output = F.grid_sample(x, vgrid, align_corners=True)
        mask = F.grid_sample(torch.ones(B, 1, H, W), vgrid, align_corners=True)
        mask = (mask >= 0.9999).float()
        return output * mask  # expect: QL301


class AllPairsCorrelation(nn.Module):
    def forward(self, fmap1: Tensor, fmap2: Tensor) -> Tensor:
        batch, dim, ht, wd = fmap1.shape
        fmap1 = fmap1.view(batch, dim, ht * wd)
        fmap2 = fmap2.view(batch, dim, ht * wd)
        corr = torch.matmul(fmap1.transpose(1, 2), fmap2)  # expect: QL302
        corr = corr.view(batch, ht, wd, 1, ht, wd)
        return corr / torch.sqrt(torch.tensor(dim).float())  # expect: QL303


class LocalCorrelation(nn.Module):
    def __init__(self, max_displacement: int = 2):
        super().__init__()
        self.md = max_displacement
        self.leaky = nn.LeakyReLU(0.1, True)  # expect: QL201

    def forward(self, f1: Tensor, f2: Tensor) -> Tensor:
        H, W = f1.shape[-2:]
        f2 = F.pad(f2, [self.md] * 4)
        costs = []
        for dy in range(2 * self.md + 1):
            for dx in range(2 * self.md + 1):
                shifted = f2[:, :, dy:dy + H, dx:dx + W]
                costs.append((f1 * shifted).mean(1, keepdim=True))  # expect: QL301
        return self.leaky(torch.cat(costs, 1))  # expect: QL302


class PWCFlowEstimator(nn.Module):
    def __init__(self, ch: int = 8, md: int = 2):
        super().__init__()
        self.warp = Warp()
        self.corr = LocalCorrelation(md)
        self.conv1 = nn.Conv2d((2 * md + 1) ** 2 + ch + 2, 16, 3, padding=1)
        self.conv2 = nn.Conv2d(16, 2, 3, padding=1)

    def forward(self, c1: Tensor, c2: Tensor, up_flow: Tensor, flow_scale: float = 0.625) -> Tensor:
        warped = self.warp(c2, up_flow * flow_scale)  # expect: QL301
        x = torch.cat([self.corr(c1, warped), c1, up_flow], 1)  # expect: QL302
        x = F.leaky_relu(self.conv1(x), 0.1)
        return up_flow + self.conv2(x)  # expect: QL301


class GwcStereoHead(nn.Module):
    def __init__(self, maxdisp: int = 4, num_groups: int = 4):
        super().__init__()
        self.maxdisp = maxdisp
        self.num_groups = num_groups
        self.classif = nn.Conv3d(num_groups, 1, 3, padding=1)

    def groupwise_correlation(self, fea1: Tensor, fea2: Tensor) -> Tensor:
        B, C, H, W = fea1.shape
        channels_per_group = C // self.num_groups
        return (fea1 * fea2).view([B, self.num_groups, channels_per_group, H, W]).mean(dim=2)  # expect: QL301

    def forward(self, left: Tensor, right: Tensor) -> Tuple[Tensor, Tensor]:
        B, C, H, W = left.shape
        # A fresh zero buffer shaped like the features: it takes left's dtype, but holds no activation values.
        volume = left.new_zeros([B, self.num_groups, self.maxdisp, H, W])  # allow: QL104
        for i in range(self.maxdisp):
            if i > 0:
                volume[:, :, i, :, i:] = self.groupwise_correlation(left[:, :, :, i:], right[:, :, :, :-i])
            else:
                volume[:, :, i, :, :] = self.groupwise_correlation(left, right)
        cost = self.classif(volume.contiguous()).squeeze(1)
        prob = F.softmax(-cost, dim=1)  # expect: QL102, QL104
        disp_values = torch.arange(0, self.maxdisp, dtype=prob.dtype).view(1, self.maxdisp, 1, 1)
        return torch.sum(prob * disp_values, 1), cost  # expect: QL104, QL301


class ShiftStereo(nn.Module):
    """Winner-take-all disparity from absolute differences of shifted features."""

    def __init__(self, maxdisp: int = 4):
        super().__init__()
        self.maxdisp = maxdisp
        self.embed = nn.Conv2d(3, 8, 3, padding=1)

    def forward(self, left: Tensor, right: Tensor) -> Tensor:
        fl = self.embed(left)
        fr = self.embed(right)  # expect: QL401
        costs = []
        for d in range(self.maxdisp):
            shifted = torch.roll(fr, shifts=d, dims=3)  # expect: QL104
            costs.append(torch.abs(fl - shifted).mean(1))  # expect: QL104, QL301
        cost = torch.stack(costs, 1)  # expect: QL302
        disp = cost.argmin(dim=1)  # expect: QL104
        return disp.float() * 2 - 1


class QuantizableStereoFeatures(nn.Module):
    """Left and right get their own QuantStub, are batched with FloatFunctional.cat through one
    feature net, and the cost volume is computed on the dequantized features."""

    def __init__(self, maxdisp: int = 4):
        super().__init__()
        self.maxdisp = maxdisp
        self.quant_left = QuantStub()
        self.quant_right = QuantStub()
        self.batch_cat = FloatFunctional()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(8)
        self.dequant = DeQuantStub()

    def forward(self, left: Tensor, right: Tensor) -> Tensor:
        x = self.batch_cat.cat([self.quant_left(left), self.quant_right(right)], dim=0)
        x = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
        fl, fr = self.dequant(x).chunk(2, dim=0)
        costs = [(fl[..., d:] - fr[..., : fr.shape[-1] - d]).abs().mean(1) for d in range(self.maxdisp)]
        cost = torch.stack([F.pad(c, (d, 0)) for d, c in enumerate(costs)], 1)
        return F.softmax(-cost, dim=1).argmax(1)

    def fuse_model(self) -> None:
        fuse_modules(self, [["conv1", "bn1", "relu1"], ["conv2", "bn2"]], inplace=True)
