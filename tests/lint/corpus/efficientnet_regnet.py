"""EfficientNet MBConv and RegNetY blocks with SE and stochastic depth; a quantizable MBConv."""
import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.ao.nn.quantized import FloatFunctional
from torch.ao.quantization import fuse_modules


def make_divisible(v: float, divisor: int = 8) -> int:
    return max(divisor, int(v + divisor / 2) // divisor * divisor)


class SqueezeExcitation(nn.Module):
    def __init__(self, in_ch, squeeze_ch, activation=nn.SiLU):
        super().__init__()
        self.fc1 = nn.Conv2d(in_ch, squeeze_ch, 1)
        self.fc2 = nn.Conv2d(squeeze_ch, in_ch, 1)
        self.activation = activation()
        self.scale_activation = nn.Sigmoid()

    def _scale(self, x):
        scale = F.adaptive_avg_pool2d(x, 1)
        return self.scale_activation(self.fc2(self.activation(self.fc1(scale))))

    def forward(self, x):
        return self._scale(x) * x  # expect: QL301


class StochasticDepth(nn.Module):
    def __init__(self, p: float):
        super().__init__()
        self.p = p

    def forward(self, x):
        if not self.training or self.p == 0.0:
            return x
        survival = 1.0 - self.p
        size = [x.shape[0]] + [1] * (x.ndim - 1)
        noise = torch.empty(size, dtype=x.dtype).bernoulli_(survival)
        if survival > 0.0:
            noise.div_(survival)
        return x * noise  # expect: QL301


class MBConv(nn.Module):
    def __init__(self, in_ch, out_ch, expand_ratio, kernel, stride, sd_prob):
        super().__init__()
        self.use_res = stride == 1 and in_ch == out_ch
        hidden = make_divisible(in_ch * expand_ratio)
        layers = [nn.Conv2d(in_ch, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.SiLU(inplace=True)] if hidden != in_ch else []  # expect: QL201
        layers += [
            nn.Conv2d(hidden, hidden, kernel, stride, kernel // 2, groups=hidden, bias=False),
            nn.BatchNorm2d(hidden),
            nn.SiLU(),
            SqueezeExcitation(hidden, max(1, in_ch // 4)),
            nn.Conv2d(hidden, out_ch, 1, bias=False),
            nn.BatchNorm2d(out_ch),
        ]
        self.block = nn.Sequential(*layers)
        self.stochastic_depth = StochasticDepth(sd_prob)

    def forward(self, x):
        out = self.block(x)
        if self.use_res:
            out = self.stochastic_depth(out)
            out += x  # expect: QL203
        return out


class TinyEfficientNet(nn.Module):
    def __init__(self, width_mult=1.0, depth_mult=1.0, num_classes=10, stochastic_depth_prob=0.2):
        super().__init__()
        setting = [(1, 3, 1, 16, 1), (6, 3, 2, 24, 2)]
        stem_ch = make_divisible(16 * width_mult)
        self.stem = nn.Sequential(nn.Conv2d(3, stem_ch, 3, 2, 1, bias=False), nn.BatchNorm2d(stem_ch), nn.SiLU())
        total = sum(math.ceil(n * depth_mult) for *_, n in setting)
        blocks, block_id, in_ch = [], 0, stem_ch
        for expand, k, stride, out, n in setting:
            out_ch = make_divisible(out * width_mult)
            for i in range(math.ceil(n * depth_mult)):
                sd = stochastic_depth_prob * block_id / total
                blocks.append(MBConv(in_ch, out_ch, expand, k, stride if i == 0 else 1, sd))
                in_ch = out_ch
                block_id += 1
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Sequential(nn.Dropout(0.2, inplace=True), nn.Linear(in_ch, num_classes))  # expect: QL201

    def forward(self, x):
        x = self.blocks(self.stem(x))
        return self.head(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


class RegNetYBlock(nn.Module):
    def __init__(self, w_in, w_out, stride, group_width, bottleneck_multiplier=1.0, se_ratio=0.25):
        super().__init__()
        w_b = int(round(w_out * bottleneck_multiplier))
        needs_proj = w_in != w_out or stride != 1
        self.proj = nn.Sequential(nn.Conv2d(w_in, w_out, 1, stride, bias=False), nn.BatchNorm2d(w_out)) if needs_proj else None
        self.a = nn.Conv2d(w_in, w_b, 1, bias=False)
        self.a_bn = nn.BatchNorm2d(w_b)
        self.a_relu = nn.ReLU(inplace=True)  # expect: QL201
        self.b = nn.Conv2d(w_b, w_b, 3, stride, 1, groups=w_b // group_width, bias=False)
        self.b_bn = nn.BatchNorm2d(w_b)
        self.b_relu = self.a_relu  # expect: QL402
        self.se = SqueezeExcitation(w_b, int(round(se_ratio * w_in)), activation=nn.ReLU)
        self.c = nn.Conv2d(w_b, w_out, 1, bias=False)
        self.c_bn = nn.BatchNorm2d(w_out)
        self.c_bn.final_bn = True
        self.relu = nn.ReLU()

    def forward(self, x):
        x_shortcut = x if self.proj is None else self.proj(x)
        x = self.a_relu(self.a_bn(self.a(x)))
        x = self.b_relu(self.b_bn(self.b(x)))
        x = self.c_bn(self.c(self.se(x)))
        return self.relu(x_shortcut + x)  # expect: QL301


class QuantizableMBConv(nn.Module):
    def __init__(self, ch, expand_ratio=4, kernel=3):
        super().__init__()
        hidden = make_divisible(ch * expand_ratio)
        self.expand = nn.Conv2d(ch, hidden, 1, bias=False)
        self.expand_bn = nn.BatchNorm2d(hidden)
        self.expand_act = nn.ReLU()
        self.dw = nn.Conv2d(hidden, hidden, kernel, 1, kernel // 2, groups=hidden, bias=False)
        self.dw_bn = nn.BatchNorm2d(hidden)
        self.dw_act = nn.ReLU()
        self.se_fc1 = nn.Conv2d(hidden, max(8, ch // 4), 1)
        self.se_relu = nn.ReLU()
        self.se_fc2 = nn.Conv2d(max(8, ch // 4), hidden, 1)
        self.se_gate = nn.Hardsigmoid()
        self.se_mul = FloatFunctional()
        self.project = nn.Conv2d(hidden, ch, 1, bias=False)
        self.project_bn = nn.BatchNorm2d(ch)
        self.skip_add = FloatFunctional()

    def forward(self, x):
        y = self.expand_act(self.expand_bn(self.expand(x)))
        y = self.dw_act(self.dw_bn(self.dw(y)))
        s = self.se_fc1(F.adaptive_avg_pool2d(y, 1))  # expect: QL503
        s = self.se_gate(self.se_fc2(self.se_relu(s)))
        y = self.project_bn(self.project(self.se_mul.mul(y, s)))
        return self.skip_add.add(y, x)

    def fuse_model(self):
        fuse_modules(self, [["expand", "expand_bn", "expand_act"], ["dw", "dw_bn", "dw_act"], ["project", "project_bn"]], inplace=True)
