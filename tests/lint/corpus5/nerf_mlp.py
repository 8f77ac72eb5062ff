"""NeRF-style radiance-field MLPs: a frequency positional encoding, an 8-layer MLP with a skip
concatenation of the encoded input, view-dependent colour, and a quantizable twin whose wrapper
encodes in float, quantizes points and view directions separately and decodes in float."""
from typing import List, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor
from torch.ao.nn.quantized import FloatFunctional
from torch.ao.quantization import DeQuantStub, QuantStub, fuse_modules


def positional_encoding(x: Tensor, num_freqs: int, include_input: bool = True) -> Tensor:
    freqs = 2.0 ** torch.arange(num_freqs, dtype=x.dtype)
    xb = x[..., None, :] * freqs[:, None]
    enc = [torch.sin(xb).flatten(-2), torch.cos(xb).flatten(-2)]
    return torch.cat([x] + enc if include_input else enc, dim=-1)


def raw2alpha(raw: Tensor, dists: Tensor) -> Tensor:
    return 1.0 - torch.exp(-F.relu(raw) * dists)  # allow: QL101, QL104, QL301


class Embedder(nn.Module):
    def __init__(self, input_dims: int = 3, num_freqs: int = 4, log_sampling: bool = True):
        super().__init__()
        max_freq = num_freqs - 1
        bands = torch.linspace(0.0, max_freq, num_freqs)
        self.register_buffer("freq_bands", 2.0 ** bands if log_sampling else torch.linspace(1.0, 2.0 ** max_freq, num_freqs))
        self.out_dim = input_dims * (1 + 2 * num_freqs)

    def forward(self, x: Tensor) -> Tensor:
        xb = x[..., None, :] * self.freq_bands[:, None]  # expect: QL301
        s = torch.sin(xb).flatten(-2)  # expect: QL104
        c = xb.cos().flatten(-2)  # expect: QL104
        return torch.cat([x, s, c], dim=-1)  # expect: QL302


class NeRF(nn.Module):
    def __init__(self, D: int = 8, W: int = 32, input_ch: int = 27, input_ch_views: int = 15, skips: Tuple[int, ...] = (4,)):
        super().__init__()
        self.D, self.W = D, W
        self.input_ch = input_ch
        self.input_ch_views = input_ch_views
        self.skips = list(skips)
        self.pts_linears = nn.ModuleList(
            [nn.Linear(input_ch, W)] + [nn.Linear(W + input_ch, W) if i in self.skips else nn.Linear(W, W) for i in range(D - 1)]
        )
        self.views_linears = nn.ModuleList([nn.Linear(input_ch_views + W, W // 2)])
        self.feature_linear = nn.Linear(W, W)
        self.alpha_linear = nn.Linear(W, 1)
        self.rgb_linear = nn.Linear(W // 2, 3)

    def forward(self, x: Tensor) -> Tensor:
        input_pts, input_views = torch.split(x, [self.input_ch, self.input_ch_views], dim=-1)
        h = input_pts
        for i, layer in enumerate(self.pts_linears):
            h = F.relu(layer(h))  # expect: QL101
            if i in self.skips:
                h = torch.cat([input_pts, h], -1)  # expect: QL302
        alpha = self.alpha_linear(h)
        feature = self.feature_linear(h)
        h = torch.cat([feature, input_views], -1)  # expect: QL302
        for layer in self.views_linears:
            h = layer(h).relu()  # expect: QL101
        rgb = self.rgb_linear(h)
        return torch.cat([rgb, alpha], -1)  # expect: QL302

    def density_regularizer(self, raw_alpha: Tensor) -> Tensor:
        return torch.log1p(raw_alpha.pow(2) * 2.0).mean()


class TinyNeRF(nn.Module):
    """Encodes inside forward and reuses one activation module in the layer loop."""

    def __init__(self, num_freqs: int = 4, width: int = 32, depth: int = 4):
        super().__init__()
        self.embed = Embedder(3, num_freqs)
        self.layers = nn.ModuleList([nn.Linear(self.embed.out_dim if i == 0 else width, width) for i in range(depth)])
        self.act = nn.ReLU()
        self.sigma_head = nn.Linear(width, 1)
        self.rgb_head = nn.Linear(width, 3)

    def forward(self, pts: Tensor, dists: Tensor) -> Tuple[Tensor, Tensor]:
        h = self.embed(pts)
        for layer in self.layers:
            h = self.act(layer(h))  # expect: QL401
        sigma = self.sigma_head(h).squeeze(-1)
        alpha = raw2alpha(sigma, dists)
        return torch.sigmoid(self.rgb_head(h)), alpha


class QuantizableNeRFBody(nn.Module):
    """The MLP unrolled around its single skip, one ReLU per layer and one FloatFunctional for the skip."""

    def __init__(self, input_ch: int = 27, width: int = 32):
        super().__init__()
        self.fc0 = nn.Linear(input_ch, width)
        self.relu0 = nn.ReLU()
        self.fc1 = nn.Linear(width, width)
        self.relu1 = nn.ReLU()
        self.skip_cat = FloatFunctional()
        self.fc2 = nn.Linear(width + input_ch, width)
        self.relu2 = nn.ReLU()
        self.alpha_linear = nn.Linear(width, 1)
        self.feature_linear = nn.Linear(width, width)

    def forward(self, pts: Tensor) -> Tuple[Tensor, Tensor]:
        h = self.relu1(self.fc1(self.relu0(self.fc0(pts))))
        h = self.relu2(self.fc2(self.skip_cat.cat([pts, h], dim=-1)))
        return self.alpha_linear(h), self.feature_linear(h)

    def fuse_groups(self) -> List[List[str]]:
        return [["fc0", "relu0"], ["fc1", "relu1"], ["fc2", "relu2"]]


class QuantizableNeRF(nn.Module):
    def __init__(self, num_freqs: int = 4, num_freqs_views: int = 2, width: int = 32):
        super().__init__()
        self.num_freqs, self.num_freqs_views = num_freqs, num_freqs_views
        self.quant_pts = QuantStub()
        self.quant_views = QuantStub()
        self.body = QuantizableNeRFBody(3 * (1 + 2 * num_freqs), width)
        self.views_cat = FloatFunctional()
        self.views_linear = nn.Linear(width + 3 * (1 + 2 * num_freqs_views), width // 2)
        self.views_relu = nn.ReLU()
        self.rgb_linear = nn.Linear(width // 2, 3)
        self.dequant = DeQuantStub()

    def forward(self, pts: Tensor, views: Tensor) -> Tensor:
        q_pts = self.quant_pts(positional_encoding(pts, self.num_freqs))
        q_views = self.quant_views(positional_encoding(views, self.num_freqs_views))
        alpha, feature = self.body(q_pts)
        h = self.views_relu(self.views_linear(self.views_cat.cat([feature, q_views], dim=-1)))
        rgb = torch.sigmoid(self.dequant(self.rgb_linear(h)))
        sigma = F.relu(self.dequant(alpha))
        return torch.cat([rgb, sigma], dim=-1)

    def fuse_model(self) -> None:
        fuse_modules(self.body, self.body.fuse_groups(), inplace=True)
        fuse_modules(self, [["views_linear", "views_relu"]], inplace=True)
