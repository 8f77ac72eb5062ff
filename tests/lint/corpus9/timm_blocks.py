"""timm-style blocks (norm layers passed as classes, act_layer factories, drop path,
layer scale) assembled into a small network between a QuantStub and a DeQuantStub.
The model declares no fuse groups, so its unfused Conv-BN stem is not QL503's business."""
import torch
import torch.nn as nn
from torch.ao.nn.quantized import FloatFunctional
from torch.ao.quantization import DeQuantStub, QuantStub


def drop_path(x, drop_prob: float = 0.0, training: bool = False, scale_by_keep: bool = True):
    if drop_prob == 0.0 or not training:
        return x
    keep_prob = 1 - drop_prob
    shape = (x.shape[0],) + (1,) * (x.ndim - 1)
    random_tensor = x.new_empty(shape).bernoulli_(keep_prob)
    if keep_prob > 0.0 and scale_by_keep:
        random_tensor.div_(keep_prob)
    return x * random_tensor  # allow: QL301, QL702


class DropPath(nn.Module):
    def __init__(self, drop_prob: float = 0.0, scale_by_keep: bool = True):
        super().__init__()
        self.drop_prob = drop_prob
        self.scale_by_keep = scale_by_keep

    def forward(self, x):
        return drop_path(x, self.drop_prob, self.training, self.scale_by_keep)


class LayerScale(nn.Module):
    def __init__(self, dim, init_values=1e-5, inplace=False):
        super().__init__()
        self.inplace = inplace
        self.gamma = nn.Parameter(init_values * torch.ones(dim))

    def forward(self, x):
        return x.mul_(self.gamma) if self.inplace else x * self.gamma  # expect: QL202, QL301, QL504; allow: QL702


class Mlp(nn.Module):
    def __init__(self, in_features, hidden_features=None, out_features=None, act_layer=nn.GELU, norm_layer=None,
                 bias=True, drop=0.0):
        super().__init__()
        out_features = out_features or in_features
        hidden_features = hidden_features or in_features
        self.fc1 = nn.Linear(in_features, hidden_features, bias=bias)
        self.act = act_layer()
        self.drop1 = nn.Dropout(drop)
        self.norm = norm_layer(hidden_features) if norm_layer is not None else nn.Identity()
        self.fc2 = nn.Linear(hidden_features, out_features, bias=bias)
        self.drop2 = nn.Dropout(drop)

    def forward(self, x):
        x = self.drop1(self.act(self.fc1(x)))
        return self.drop2(self.fc2(self.norm(x)))


class BasicBlock(nn.Module):
    def __init__(self, inplanes, planes, act_layer=nn.ReLU, norm_layer=nn.BatchNorm2d, drop_path_rate=0.0):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, padding=1, bias=False)
        self.bn1 = norm_layer(planes)
        self.act1 = act_layer(inplace=True)  # expect: QL201
        self.conv2 = nn.Conv2d(planes, planes, 3, padding=1, bias=False)
        self.bn2 = norm_layer(planes)
        self.drop_path = DropPath(drop_path_rate) if drop_path_rate > 0 else nn.Identity()
        self.skip = FloatFunctional()
        self.act2 = act_layer(inplace=True)  # expect: QL201

    def forward(self, x):
        shortcut = x
        x = self.act1(self.bn1(self.conv1(x)))
        x = self.bn2(self.conv2(x))
        x = self.skip.add(self.drop_path(x), shortcut)
        return self.act2(x)


class ConvNeXtBlock(nn.Module):
    def __init__(self, dim, mlp_ratio=4, ls_init_value=1e-6, drop_path=0.0, norm_layer=nn.LayerNorm, act_layer=nn.GELU):
        super().__init__()
        self.conv_dw = nn.Conv2d(dim, dim, kernel_size=7, padding=3, groups=dim)
        self.norm = norm_layer(dim)
        self.mlp = Mlp(dim, int(mlp_ratio * dim), act_layer=act_layer)
        self.gamma = nn.Parameter(ls_init_value * torch.ones(dim)) if ls_init_value > 0 else None
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()

    def forward(self, x):
        shortcut = x
        x = self.conv_dw(x)
        x = self.mlp(self.norm(x.permute(0, 2, 3, 1)))
        if self.gamma is not None:
            x = x.mul(self.gamma.reshape(1, 1, 1, -1))  # expect: QL302, QL504; allow: QL702
        x = x.permute(0, 3, 1, 2)
        return self.drop_path(x) + shortcut  # expect: QL301


class TinyHybridNet(nn.Module):
    def __init__(self, num_classes=10, dim=32, depth=2, drop_path_rate=0.1):
        super().__init__()
        dpr = [r.item() for r in torch.linspace(0, drop_path_rate, depth)]
        self.quant = QuantStub()
        self.stem = nn.Sequential(nn.Conv2d(3, dim, kernel_size=4, stride=4), nn.BatchNorm2d(dim))
        self.res = BasicBlock(dim, dim, drop_path_rate=dpr[0])
        self.stages = nn.Sequential(*[ConvNeXtBlock(dim, drop_path=dpr[i]) for i in range(depth)])
        self.ls = LayerScale(dim, inplace=True)
        self.head = Mlp(dim, dim * 2, num_classes, act_layer=nn.ReLU)
        self.dequant = DeQuantStub()

    def forward_features(self, x):
        x = self.stem(self.quant(x))
        return self.stages(self.res(x))

    def forward(self, x):
        x = self.forward_features(x).mean((2, 3))
        return self.dequant(self.head(self.ls(x)))
