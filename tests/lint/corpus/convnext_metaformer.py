"""ConvNeXt and PoolFormer (MetaFormer) blocks: channels-first LayerNorm,
LayerScale, DropPath and a drop-path schedule over stages."""
import torch
import torch.nn as nn
import torch.nn.functional as F


def drop_path(x, drop_prob: float = 0.0, training: bool = False):
    if drop_prob == 0.0 or not training:
        return x
    keep_prob = 1 - drop_prob
    shape = (x.shape[0],) + (1,) * (x.ndim - 1)
    random_tensor = x.new_empty(shape).bernoulli_(keep_prob)
    return x * random_tensor / keep_prob  # allow: QL301, QL303


class DropPath(nn.Module):
    def __init__(self, drop_prob: float = 0.0):
        super().__init__()
        self.drop_prob = drop_prob

    def forward(self, x):
        return drop_path(x, self.drop_prob, self.training)


class LayerNorm2d(nn.Module):
    """LayerNorm over channels, for NCHW ("channels_first") or NHWC input."""

    def __init__(self, num_channels, eps=1e-6, data_format="channels_first"):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(num_channels))
        self.bias = nn.Parameter(torch.zeros(num_channels))
        self.eps = eps
        self.data_format = data_format
        self.normalized_shape = (num_channels,)

    def forward(self, x):
        if self.data_format == "channels_last":
            return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)  # expect: QL102, QL504
        u = x.mean(1, keepdim=True)
        s = (x - u).pow(2).mean(1, keepdim=True)  # expect: QL104, QL301
        x = (x - u) / torch.sqrt(s + self.eps)  # expect: QL104, QL301, QL303
        return self.weight[:, None, None] * x + self.bias[:, None, None]  # expect: QL301, QL504


class LayerScale2d(nn.Module):
    def __init__(self, dim, init_values=1e-5, inplace=False):
        super().__init__()
        self.inplace = inplace
        self.gamma = nn.Parameter(init_values * torch.ones(dim))

    def forward(self, x):
        gamma = self.gamma.view(1, -1, 1, 1)  # expect: QL504
        return x.mul_(gamma) if self.inplace else x * gamma  # expect: QL202, QL301


class ConvNeXtBlock(nn.Module):
    def __init__(self, dim, drop_path=0.0, layer_scale_init_value=1e-6):
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, kernel_size=7, padding=3, groups=dim)
        self.norm = LayerNorm2d(dim, eps=1e-6, data_format="channels_last")
        self.pwconv1 = nn.Linear(dim, 4 * dim)
        self.act = nn.GELU()
        self.pwconv2 = nn.Linear(4 * dim, dim)
        self.gamma = nn.Parameter(layer_scale_init_value * torch.ones(dim)) if layer_scale_init_value > 0 else None
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()

    def forward(self, x):
        shortcut = x
        x = self.dwconv(x).permute(0, 2, 3, 1)
        x = self.pwconv2(self.act(self.pwconv1(self.norm(x))))
        # Only tests whether the optional parameter exists; it is not used as a tensor here.
        if self.gamma is not None:  # allow: QL504
            x = self.gamma * x  # expect: QL301, QL504
        x = x.permute(0, 3, 1, 2)
        return shortcut + self.drop_path(x)  # expect: QL301


class Pooling(nn.Module):
    """PoolFormer token mixer: the pooled map minus its input."""

    def __init__(self, pool_size=3):
        super().__init__()
        self.pool = nn.AvgPool2d(pool_size, stride=1, padding=pool_size // 2, count_include_pad=False)

    def forward(self, x):
        return self.pool(x) - x  # expect: QL301


class ConvMlp(nn.Module):
    def __init__(self, dim, hidden, act_layer=nn.GELU, drop=0.0):
        super().__init__()
        self.fc1 = nn.Conv2d(dim, hidden, 1)
        self.act = act_layer()
        self.fc2 = nn.Conv2d(hidden, dim, 1)
        self.drop = nn.Dropout(drop)

    def forward(self, x):
        x = self.drop(self.act(self.fc1(x)))
        return self.drop(self.fc2(x))


class PoolFormerBlock(nn.Module):
    def __init__(self, dim, mlp_ratio=4.0, drop_path=0.0, layer_scale_init_value=1e-5):
        super().__init__()
        self.norm1 = nn.GroupNorm(1, dim)
        self.token_mixer = Pooling()
        self.norm2 = nn.GroupNorm(1, dim)
        self.mlp = ConvMlp(dim, int(dim * mlp_ratio))
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()
        self.layer_scale_1 = LayerScale2d(dim, layer_scale_init_value)
        self.layer_scale_2 = LayerScale2d(dim, layer_scale_init_value)

    def forward(self, x):
        x = x + self.drop_path(self.layer_scale_1(self.token_mixer(self.norm1(x))))  # expect: QL301
        # DropPath is stateless like Dropout, but it is not on the rule's exempt list.
        x = x + self.drop_path(self.layer_scale_2(self.mlp(self.norm2(x))))  # expect: QL301; allow: QL401
        return x


class TinyConvNeXt(nn.Module):
    def __init__(self, in_chans=3, num_classes=10, depths=(1, 2), dims=(16, 32), drop_path_rate=0.1):
        super().__init__()
        rates = [t.tolist() for t in torch.linspace(0, drop_path_rate, sum(depths)).split(list(depths))]
        self.stem = nn.Sequential(nn.Conv2d(in_chans, dims[0], 4, stride=4), LayerNorm2d(dims[0]))
        self.stages = nn.ModuleList()
        prev = dims[0]
        for i, (depth, dim) in enumerate(zip(depths, dims)):
            down = nn.Sequential(LayerNorm2d(prev), nn.Conv2d(prev, dim, 2, stride=2)) if prev != dim else nn.Identity()
            blocks = [ConvNeXtBlock(dim, drop_path=rates[i][j]) for j in range(depth)]
            self.stages.append(nn.Sequential(down, *blocks))
            prev = dim
        self.mixer = PoolFormerBlock(prev, drop_path=drop_path_rate)
        self.norm = nn.LayerNorm(prev)
        self.head = nn.Linear(prev, num_classes)
        self.head.weight.data.mul_(0.1)
        self.calls = 0

    def forward_features(self, x):
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
        return self.mixer(x)

    def forward(self, x, pre_logits: bool = False):
        self.calls += 1
        x = self.norm(self.forward_features(x).mean([-2, -1]))
        return x if pre_logits else self.head(x)
