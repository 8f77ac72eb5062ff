"""PointNet classification and segmentation: T-Net spatial transforms applied with bmm, shared
per-point MLPs as 1x1 Conv1d, and symmetric max pooling over the points; a quantizable vanilla
PointNet (no T-Net) that dequantizes before a float log-softmax head."""
from typing import Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor
from torch.ao.quantization import DeQuantStub, QuantStub, fuse_modules


def feature_transform_regularizer(trans: Tensor) -> Tensor:
    d = trans.size(1)
    identity = torch.eye(d, device=trans.device)[None, :, :]
    return torch.mean(torch.norm(torch.bmm(trans, trans.transpose(2, 1)) - identity, dim=(1, 2)))


class TNet(nn.Module):
    def __init__(self, k: int = 3):
        super().__init__()
        self.k = k
        self.conv1 = nn.Conv1d(k, 16, 1)
        self.conv2 = nn.Conv1d(16, 32, 1)
        self.conv3 = nn.Conv1d(32, 64, 1)
        self.fc1 = nn.Linear(64, 32)
        self.fc2 = nn.Linear(32, k * k)
        self.bn1 = nn.BatchNorm1d(16)
        self.bn2 = nn.BatchNorm1d(32)
        self.bn3 = nn.BatchNorm1d(64)
        self.bn4 = nn.BatchNorm1d(32)

    def forward(self, x: Tensor) -> Tensor:
        batchsize = x.size()[0]
        x = F.relu(self.bn1(self.conv1(x)))  # expect: QL101
        x = F.relu(self.bn2(self.conv2(x)))  # expect: QL101
        x = F.relu(self.bn3(self.conv3(x)))  # expect: QL101
        x = torch.max(x, 2, keepdim=True)[0]
        x = x.view(-1, 64)
        x = F.relu(self.bn4(self.fc1(x)))  # expect: QL101
        x = self.fc2(x)
        iden = torch.eye(self.k, dtype=torch.float32).flatten().view(1, self.k * self.k).repeat(batchsize, 1)
        x = x + iden  # expect: QL301
        return x.view(-1, self.k, self.k)


class PointNetEncoder(nn.Module):
    def __init__(self, global_feat: bool = True, feature_transform: bool = False, channel: int = 3):
        super().__init__()
        self.stn = TNet(channel)
        self.conv1 = nn.Conv1d(channel, 16, 1)
        self.conv2 = nn.Conv1d(16, 32, 1)
        self.conv3 = nn.Conv1d(32, 64, 1)
        self.bn1 = nn.BatchNorm1d(16)
        self.bn2 = nn.BatchNorm1d(32)
        self.bn3 = nn.BatchNorm1d(64)
        self.relu = nn.ReLU()
        self.global_feat = global_feat
        self.feature_transform = feature_transform
        if self.feature_transform:
            self.fstn = TNet(k=16)

    def forward(self, x: Tensor) -> Tuple[Tensor, Tensor, Optional[Tensor]]:
        B, D, N = x.size()
        trans = self.stn(x)
        x = x.transpose(2, 1)
        x = torch.bmm(x, trans)  # expect: QL302
        x = x.transpose(2, 1)
        x = self.relu(self.bn1(self.conv1(x)))
        if self.feature_transform:
            trans_feat = self.fstn(x)
            x = torch.bmm(x.transpose(2, 1), trans_feat).transpose(2, 1)  # expect: QL302
        else:
            trans_feat = None
        pointfeat = x
        x = self.relu(self.bn2(self.conv2(x)))  # expect: QL401
        x = self.bn3(self.conv3(x))
        x = torch.max(x, 2, keepdim=True)[0].view(-1, 64)
        if self.global_feat:
            return x, trans, trans_feat
        x = x.view(-1, 64, 1).repeat(1, 1, N)
        return torch.cat([x, pointfeat], 1), trans, trans_feat  # expect: QL302


class PointNetCls(nn.Module):
    def __init__(self, k: int = 10, feature_transform: bool = False):
        super().__init__()
        self.feat = PointNetEncoder(global_feat=True, feature_transform=feature_transform)
        self.fc1 = nn.Linear(64, 32)
        self.fc2 = nn.Linear(32, k)
        self.dropout = nn.Dropout(p=0.3)
        self.bn1 = nn.BatchNorm1d(32)
        self.relu = nn.ReLU(inplace=True)  # expect: QL201

    def forward(self, x: Tensor) -> Tuple[Tensor, Tensor]:
        x, trans, trans_feat = self.feat(x)
        x = self.relu(self.bn1(self.dropout(self.fc1(x))))
        x = self.fc2(x)
        return F.log_softmax(x, dim=1), trans_feat  # expect: QL102


class PointNetSegHead(nn.Module):
    def __init__(self, num_parts: int = 4):
        super().__init__()
        self.num_parts = num_parts
        self.feat = PointNetEncoder(global_feat=False, feature_transform=True)
        self.conv1 = nn.Conv1d(80, 32, 1)
        self.bn1 = nn.BatchNorm1d(32)
        self.conv2 = nn.Conv1d(32, num_parts, 1)

    def forward(self, x: Tensor) -> Tensor:
        batchsize, n_pts = x.size(0), x.size(2)
        x, trans, trans_feat = self.feat(x)
        x = F.relu(self.bn1(self.conv1(x)))  # expect: QL101
        x = self.conv2(x).transpose(2, 1).contiguous()
        x = F.log_softmax(x.view(-1, self.num_parts), dim=-1)  # expect: QL102
        return x.view(batchsize, n_pts, self.num_parts)


class QuantizablePointNetCls(nn.Module):
    """Vanilla PointNet without the T-Nets: shared MLP, max over points, MLP head; the log-softmax
    runs on the dequantized logits."""

    def __init__(self, k: int = 10, channel: int = 3):
        super().__init__()
        self.quant = QuantStub()
        self.conv1 = nn.Conv1d(channel, 16, 1)
        self.bn1 = nn.BatchNorm1d(16)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv1d(16, 64, 1)
        self.bn2 = nn.BatchNorm1d(64)
        self.relu2 = nn.ReLU()
        self.fc1 = nn.Linear(64, 32)
        self.relu3 = nn.ReLU()
        self.dropout = nn.Dropout(p=0.3)
        self.fc2 = nn.Linear(32, k)
        self.dequant = DeQuantStub()

    def forward(self, x: Tensor) -> Tensor:
        x = self.quant(x)
        x = self.relu1(self.bn1(self.conv1(x)))
        x = self.relu2(self.bn2(self.conv2(x)))
        x = torch.max(x, 2, keepdim=True)[0]
        x = x.view(x.size(0), -1)
        x = self.fc2(self.dropout(self.relu3(self.fc1(x))))
        logits = self.dequant(x)
        return F.log_softmax(logits, dim=1)

    def fuse_model(self) -> None:
        fuse_modules(self, [["conv1", "bn1", "relu1"], ["conv2", "bn2", "relu2"], ["fc1", "relu3"]], inplace=True)
