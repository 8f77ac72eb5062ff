"""RepVGG: multi-branch training-time blocks that are re-parameterized into one 3x3 convolution for
deployment, the BatchNorm folding and custom L2 math on weights, and a deploy-mode network that
quantizes after re-parameterization."""
import copy
from typing import Dict, Optional, Sequence, Tuple, Union

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor
from torch.ao.quantization import DeQuantStub, QuantStub, fuse_modules


def conv_bn(in_channels: int, out_channels: int, kernel_size: int, stride: int, padding: int, groups: int = 1) -> nn.Sequential:
    result = nn.Sequential()
    result.add_module("conv", nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding, groups=groups, bias=False))
    result.add_module("bn", nn.BatchNorm2d(out_channels))
    return result


class RepVGGBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, stride: int = 1, groups: int = 1, deploy: bool = False) -> None:
        super().__init__()
        self.deploy = deploy
        self.groups = groups
        self.in_channels = in_channels
        self.nonlinearity = nn.ReLU()
        if deploy:
            self.rbr_reparam = nn.Conv2d(in_channels, out_channels, 3, stride, 1, groups=groups, bias=True)
        else:
            self.rbr_identity = nn.BatchNorm2d(in_channels) if out_channels == in_channels and stride == 1 else None
            self.rbr_dense = conv_bn(in_channels, out_channels, 3, stride, 1, groups=groups)
            self.rbr_1x1 = conv_bn(in_channels, out_channels, 1, stride, 0, groups=groups)

    def forward(self, inputs: Tensor) -> Tensor:
        if hasattr(self, "rbr_reparam"):
            return self.nonlinearity(self.rbr_reparam(inputs))
        id_out = 0 if self.rbr_identity is None else self.rbr_identity(inputs)
        return self.nonlinearity(self.rbr_dense(inputs) + self.rbr_1x1(inputs) + id_out)  # expect: QL301

    def get_custom_L2(self) -> Tensor:
        K3, K1 = self.rbr_dense.conv.weight, self.rbr_1x1.conv.weight
        t3 = (self.rbr_dense.bn.weight / (self.rbr_dense.bn.running_var + self.rbr_dense.bn.eps).sqrt()).reshape(-1, 1, 1, 1).detach()
        t1 = (self.rbr_1x1.bn.weight / (self.rbr_1x1.bn.running_var + self.rbr_1x1.bn.eps).sqrt()).reshape(-1, 1, 1, 1).detach()
        l2_loss_circle = (K3 ** 2).sum() - (K3[:, :, 1:2, 1:2] ** 2).sum()
        eq_kernel = K3[:, :, 1:2, 1:2] * t3 + K1 * t1
        return (eq_kernel ** 2 / (t3 ** 2 + t1 ** 2)).sum() + l2_loss_circle

    def _fuse_bn_tensor(self, branch: Optional[nn.Module]) -> Tuple[Union[Tensor, int], Union[Tensor, int]]:
        if branch is None:
            return 0, 0
        if isinstance(branch, nn.Sequential):
            kernel, bn = branch.conv.weight, branch.bn
        else:
            if not hasattr(self, "id_tensor"):
                input_dim = self.in_channels // self.groups
                kernel_value = torch.zeros((self.in_channels, input_dim, 3, 3), dtype=branch.weight.dtype)
                for i in range(self.in_channels):
                    kernel_value[i, i % input_dim, 1, 1] = 1
                self.id_tensor = kernel_value
            kernel, bn = self.id_tensor, branch
        std = (bn.running_var + bn.eps).sqrt()
        t = (bn.weight / std).reshape(-1, 1, 1, 1)
        return kernel * t, bn.bias - bn.running_mean * bn.weight / std

    def get_equivalent_kernel_bias(self) -> Tuple[Tensor, Tensor]:
        kernel3x3, bias3x3 = self._fuse_bn_tensor(self.rbr_dense)
        kernel1x1, bias1x1 = self._fuse_bn_tensor(self.rbr_1x1)
        kernelid, biasid = self._fuse_bn_tensor(self.rbr_identity)
        return kernel3x3 + F.pad(kernel1x1, [1, 1, 1, 1]) + kernelid, bias3x3 + bias1x1 + biasid

    def switch_to_deploy(self) -> None:
        if hasattr(self, "rbr_reparam"):
            return
        kernel, bias = self.get_equivalent_kernel_bias()
        conv = self.rbr_dense.conv
        self.rbr_reparam = nn.Conv2d(conv.in_channels, conv.out_channels, 3, conv.stride, 1, groups=conv.groups, bias=True)
        self.rbr_reparam.weight.data = kernel
        self.rbr_reparam.bias.data = bias
        for para in self.parameters():
            para.detach_()
        for name in ("rbr_dense", "rbr_1x1", "rbr_identity", "id_tensor"):
            if hasattr(self, name):
                self.__delattr__(name)
        self.deploy = True


class RepVGG(nn.Module):
    def __init__(self, num_blocks: Sequence[int] = (1, 2), widths: Sequence[int] = (8, 16), num_classes: int = 10, deploy: bool = False) -> None:
        super().__init__()
        self.arch: Dict[str, object] = {"num_blocks": tuple(num_blocks), "widths": tuple(widths), "num_classes": num_classes}
        self.in_planes = widths[0]
        self.stage0 = RepVGGBlock(3, self.in_planes, stride=2, deploy=deploy)
        self.stages = nn.ModuleList(self._make_stage(w, n, deploy) for w, n in zip(widths, num_blocks))
        self.gap = nn.AdaptiveAvgPool2d(1)
        self.linear = nn.Linear(widths[-1], num_classes)

    def _make_stage(self, planes: int, num_blocks: int, deploy: bool) -> nn.Sequential:
        blocks = []
        for stride in [2] + [1] * (num_blocks - 1):
            blocks.append(RepVGGBlock(self.in_planes, planes, stride=stride, deploy=deploy))
            self.in_planes = planes
        return nn.Sequential(*blocks)

    def forward(self, x: Tensor) -> Tensor:
        out = self.stage0(x)
        for stage in self.stages:
            out = stage(out)
        return self.linear(torch.flatten(self.gap(out), 1))


def repvgg_model_convert(model: nn.Module, do_copy: bool = True) -> nn.Module:
    if do_copy:
        model = copy.deepcopy(model)
    for module in model.modules():
        if hasattr(module, "switch_to_deploy"):
            module.switch_to_deploy()
    return model


class QuantizableRepVGG(RepVGG):
    """Built in deploy form: every block is one convolution and one ReLU, so it fuses and quantizes."""

    def __init__(self, num_blocks: Sequence[int] = (1, 2), widths: Sequence[int] = (8, 16), num_classes: int = 10) -> None:
        super().__init__(num_blocks, widths, num_classes, deploy=True)
        self.quant = QuantStub()
        self.dequant = DeQuantStub()

    @classmethod
    def from_trained(cls, trained: RepVGG) -> "QuantizableRepVGG":
        model = cls(**trained.arch)
        model.load_state_dict(repvgg_model_convert(trained).state_dict())
        return model

    def forward(self, x: Tensor) -> Tensor:
        return self.dequant(super().forward(self.quant(x)))

    def fuse_model(self) -> None:
        for module in self.modules():
            if isinstance(module, RepVGGBlock):
                # nonlinearity also follows the branch sum in forward, but only in the training form this class never has.
                fuse_modules(module, [["rbr_reparam", "nonlinearity"]], inplace=True)  # allow: QL502
