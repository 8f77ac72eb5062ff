"""False positives found by linting real code: torch 2.13's `ao`, `nn` and
`testing/_internal/common_quantization.py`, and timm's `models` and `layers`.

Each pattern is reduced to a few lines and checked both ways: the negative case must not
get the code, and its nearest true-positive twin must get it on the line marked `# <-`,
so that a fix cannot simply silence the rule.
"""
from __future__ import annotations

import textwrap

import pytest

from qlint.engine import lint_source

MARK = "# <-"

_DCT = '''
    import torch
    import torch.nn as nn
    import torch.nn.functional as F


    class Dct(nn.Module):
        def __init__(self, n):
            super().__init__()
            self.register_buffer("weights", torch.eye(n))
            self.register_parameter("bias", {bias})

        def forward(self, x):
            return F.linear(x, self.weights, self.bias){mark}
'''
_DCT_2D = _DCT.format(bias="{bias}", mark="") + '''

    class Dct2d(nn.Module):
        def __init__(self, n):
            super().__init__()
            self.transform = Dct(n)

        def forward(self, x):
            return self.transform(self.transform(x).transpose(-1, -2))  # <-
'''

NOT_REPORTED = [
    # timm/models/dpn.py:101-103 (found before befe20a): one projection bound to s1 or s2, not both.
    pytest.param('''
        import torch.nn as nn


        class Projection(nn.Module):
            def __init__(self, stride):
                super().__init__()
                proj = nn.Conv2d(8, 8, 1, stride=stride)
                if stride == 2:
                    self.proj_s2 = proj
                else:
                    self.proj_s1 = proj  # <-

            def forward(self, x):
                return x
    ''', "QL402", id="alias-in-exclusive-if-else-arms"),
    # timm/models/hgnet.py:434-438: the same conv and act go into one of two Sequentials.
    pytest.param('''
        import torch.nn as nn


        class Head(nn.Module):
            def __init__(self, use_scale):
                super().__init__()
                conv = nn.Conv2d(8, 8, 1)
                act = nn.ReLU()
                if use_scale:
                    self.last = nn.Sequential(conv, act, nn.BatchNorm2d(8))
                else:
                    self.last = nn.Sequential(conv, act)  # <-

            def forward(self, x):
                return self.last(x)
    ''', "QL402", id="sequential-members-in-exclusive-if-else-arms"),
    # timm/models/csatv2.py:175,178 and torch/ao/nn/quantized/dynamic/modules/rnn.py:975,1253:
    # register_parameter(name, None) registers no parameter.
    pytest.param(_DCT.format(bias="None", mark="  # <-"), "QL504",
                 id="register-parameter-none-is-no-parameter"),
    # timm/models/csatv2.py:197: a module holding only a buffer (its "bias" is None) reused.
    pytest.param(_DCT_2D.format(bias="None"), "QL401",
                 id="register-parameter-none-makes-no-state"),
    # torch/ao/nn/quantizable/modules/activation.py:558-561: "Leaving the quantized zone here".
    pytest.param('''
        import torch
        import torch.nn as nn
        from torch.ao.quantization import DeQuantStub


        class Scores(nn.Module):
            def __init__(self):
                super().__init__()
                self.q_proj = nn.Linear(8, 8)
                self.k_proj = nn.Linear(8, 8)
                self.dequant_q = DeQuantStub()
                self.dequant_k = DeQuantStub()

            def forward(self, x):
                q = self.dequant_q(self.q_proj(x))
                k = self.dequant_k(self.k_proj(x))
                return torch.bmm(q, k.transpose(1, 2))  # <-
    ''', "QL302", id="dequantstub-output-is-float"),
    # torch/ao/nn/quantizable/modules/activation.py:587, and QL102's own advice (a float op
    # after a DeQuantStub).
    pytest.param('''
        import torch.nn as nn
        import torch.nn.functional as F
        from torch.ao.quantization import DeQuantStub


        class Head(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(8, 8)
                self.dequant = DeQuantStub()

            def forward(self, x):
                return F.softmax(self.dequant(self.fc(x)), dim=-1)  # <-
    ''', "QL102", id="float-op-after-dequantstub"),
    # torch/ao/nn/quantizable/modules/activation.py:579-587: masked_fill of a float tensor
    # with a mask argument gives a float tensor; the mask supplies no values.
    pytest.param('''
        import torch
        import torch.nn as nn


        class MaskedBias(nn.Module):
            def __init__(self):
                super().__init__()
                self.register_buffer("bias", torch.zeros(4, 4))

            def forward(self, x, mask):
                scores = self.bias.masked_fill(mask, float("-inf"))
                return x, torch.softmax(scores, dim=-1)  # <-
    ''', "QL102", id="mask-argument-gives-no-activation"),
    # torch/ao/nn/intrinsic/qat/modules/conv_fused.py:149, linear_fused.py:123: only the
    # parameter's shape and dtype are read.
    pytest.param('''
        import torch
        import torch.nn as nn


        class BiasFree(nn.Module):
            def __init__(self):
                super().__init__()
                self.conv = nn.Conv2d(3, 3, 1, bias=False)
                self.bias = nn.Parameter(torch.zeros(3))

            def forward(self, x):
                zero_bias = torch.zeros_like(self.bias, dtype=x.dtype)  # <-
                return self.conv(x), zero_bias
    ''', "QL504", id="parameter-read-for-shape-by-zeros-like"),
    # timm/models/gemma4_vit.py:283: `.to(param)` reads only the parameter's dtype and device.
    pytest.param('''
        import torch
        import torch.nn as nn


        class PositionTable(nn.Module):
            def __init__(self):
                super().__init__()
                self.table = nn.Parameter(torch.zeros(16, 8))

            def forward(self, one_hot):
                return one_hot.to(self.table)  # <-
    ''', "QL504", id="parameter-read-for-dtype-by-to"),
    # timm/models/mvitv2.py:321-346: a helper of the file returns (tensor, List[int]);
    # the size list is shape arithmetic.
    pytest.param('''
        from typing import List, Tuple

        import torch
        import torch.nn as nn


        def flatten_with_size(x: torch.Tensor) -> Tuple[torch.Tensor, List[int]]:
            size = [x.shape[2], x.shape[3]]
            return x.flatten(2), size


        class Pool(nn.Module):
            def __init__(self):
                super().__init__()
                self.pool = nn.MaxPool2d(2)

            def forward(self, x):
                x, size = flatten_with_size(self.pool(x))
                tokens = size[0] * size[1] + 1  # <-
                return x, tokens
    ''', "QL301", id="size-list-unpacked-from-helper-result"),
    # timm/layers/median_pool.py:47, halo_attn.py:228: Tensor.unfold(dim, size, step) is a
    # sliding-window view that runs on quantized tensors; it is not F.unfold (im2col).
    pytest.param('''
        import torch.nn as nn


        class MedianPool(nn.Module):
            def forward(self, x):
                windows = x.unfold(2, 3, 1).unfold(3, 3, 1)  # <-
                return windows.flatten(-2)
    ''', "QL102", id="tensor-unfold-is-not-functional-unfold"),
    # timm/models/gemma4_vit.py:345,611; torch/nn/modules/adaptive.py:228-229 (found before
    # c4ada19 made comparisons masks): a comparison of activations is a bool mask.
    pytest.param('''
        import torch.nn as nn


        class Sentinel(nn.Module):
            def forward(self, coords):
                return (coords == -1).all(dim=-1)  # <-
    ''', "QL104", id="comparison-result-is-a-mask"),
    # ultralytics/models/sam/sam3/text_encoder_ve.py:76: an optional submodule, checked first.
    pytest.param('''
        import torch.nn as nn


        class Block(nn.Module):
            def __init__(self):
                super().__init__()
                self.ln_1 = nn.LayerNorm(8)

            def forward(self, q, k=None):
                k = self.ln_1_kv(k) if hasattr(self, "ln_1_kv") and k is not None else None  # <-
                return self.ln_1(q), k
    ''', "QL705", id="optional-submodule-checked-by-hasattr"),
    # transformers/models/t5/modeling_t5.py:299: a cache object, no tensor (no tensor has get_seq_length).
    pytest.param('''
        import torch
        import torch.nn as nn


        class Attention(nn.Module):
            def forward(self, hidden_states, cache=None):
                past = cache.get_seq_length() if cache is not None else 0
                return torch.arange(4)[:, None] + past  # <-
    ''', "QL301", id="method-no-tensor-has"),
    # transformers/models/swin/modeling_swin.py:813: a tuple bound on one arm, None on the other.
    pytest.param('''
        import torch.nn as nn


        class Encoder(nn.Module):
            def __init__(self):
                super().__init__()
                self.layers = nn.ModuleList([nn.Linear(4, 4) for _ in range(2)])

            def forward(self, x, output_hidden_states: bool = False):
                states = None
                if output_hidden_states:
                    states = (x,)
                for layer in self.layers:
                    x = layer(x)
                    if output_hidden_states:
                        states += (x,)  # <-
                return x, states
    ''', "QL203", id="tuple-or-none-grown-in-a-loop"),
    # tests/lint/corpus8/qconfig_attach.py:57: a QuantWrapper'd backbone in a float model; the head stays float.
    pytest.param('''
        import torch.nn as nn
        from torch.ao.quantization import QuantWrapper


        class Pipeline(nn.Module):
            def __init__(self):
                super().__init__()
                self.backbone = QuantWrapper(nn.Sequential(nn.Conv2d(3, 6, 3), nn.ReLU()))
                self.head = nn.Linear(6, 3)

            def forward(self, x):
                return self.head(self.backbone(x).mean((2, 3)))  # <-
    ''', "QL701", id="quantwrapper-in-a-float-model"),
    # tests/lint/corpus9/unet_segmentation.py:19: an nn.Sequential subclass whose members come from
    # super().__init__(...) has submodules '0', '1', ...
    pytest.param('''
        import torch.nn as nn
        from torch.ao.quantization import fuse_modules


        class DoubleConv(nn.Sequential):
            def __init__(self):
                convs = [nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU()]
                super().__init__(*convs)

            def fuse_model(self):
                fuse_modules(self, [["0", "1", "2"]], inplace=True)  # <-
    ''', "QL501", id="sequential-subclass-members-from-super-init"),
    # tests/lint/corpus9/timm_blocks.py:64: a constructor parameter (`act_layer=nn.ReLU`) is what
    # every construction of the class gives it: here another class, or classes the run cannot see.
    pytest.param('''
        import torch.nn as nn


        class Swish(nn.Module):
            def __init__(self, inplace=False):
                super().__init__()
                self.inplace = inplace

            def forward(self, x):
                return x * x.sigmoid()


        class Block(nn.Module):
            def __init__(self, act_layer=nn.ReLU):
                super().__init__()
                self.conv = nn.Conv2d(8, 8, 3)
                self.act = act_layer(inplace=True)  # <-

            def forward(self, x):
                return self.act(self.conv(x))


        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.block = Block(act_layer=Swish)

            def forward(self, x):
                return self.block(x)
    ''', "QL201", id="factory-parameter-given-another-class"),
    pytest.param('''
        import torch.nn as nn


        class Swish(nn.Module):
            def __init__(self, inplace=False):
                super().__init__()
                self.inplace = inplace

            def forward(self, x):
                return x * x.sigmoid()


        class Block(nn.Module):
            def __init__(self, act_layer=nn.ReLU):
                super().__init__()
                self.conv = nn.Conv2d(8, 8, 3)
                self.act = act_layer(inplace=True)  # <-

            def forward(self, x):
                return self.act(self.conv(x))


        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.block = nn.Sequential(*[b() for b in (Block,)])

            def forward(self, x):
                return self.block(x)
    ''', "QL201", id="factory-parameter-class-used-as-a-value"),
    # tests/lint/corpus9/module_reuse.py:71: reading a member of a container is no second binding...
    pytest.param('''
        import torch.nn as nn


        class Stack(nn.Module):
            def __init__(self):
                super().__init__()
                self.blocks = nn.ModuleList([nn.Conv2d(8, 8, 1) for _ in range(3)])
                self.out_channels = self.blocks[-1].out_channels  # <-

            def forward(self, x):
                for block in self.blocks:
                    x = block(x)
                return x
    ''', "QL402", id="container-member-attribute-read"),
    # transformers muse_spark/modeling_muse_spark.py:900 (found by benchmarks/reviews, seed 1): position
    # ids an imported helper computes from an integer grid (`grid_thw: torch.LongTensor`) are no activation.
    pytest.param('''
    import torch
    import torch.nn as nn
    from vision_utils import grid_positions


    class Rotary(nn.Module):
        def forward(self, x, position_ids):
            freqs = position_ids[..., None].float() * 0.5
            return torch.cat([freqs, freqs], dim=-1)  # <-


    class Vision(nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = nn.Linear(4, 4)
            self.rotary = Rotary()

        def forward(self, pixels, grid_thw: torch.LongTensor):
            hidden = self.proj(pixels)
            position_ids = grid_positions(grid_thw) + 1
            return hidden, self.rotary(hidden, position_ids)
''', "QL302", id="positions-from-a-helper-given-an-integer-grid"),
    # transformers bigbird_pegasus:446: an in-place view change runs on a quantized tensor, values unchanged.
    pytest.param('''
    import torch
    import torch.nn as nn


    class BlockSparse(nn.Module):
        def __init__(self):
            super().__init__()
            self.q, self.v = nn.Linear(4, 4), nn.Linear(4, 4)

        def forward(self, x):
            context = self.q(x) * self.v(x)
            context.unsqueeze_(2)  # <-
            return context
''', "QL202", id="inplace-view-change"),
    # timm gemma4_vit.py:856/915 (benchmarks/reviews, seed 1): `~patch_valid` runs on integer and bool
    # tensors only, so patch_valid and what ~ gives are masks from there on, whatever the annotation says.
    pytest.param('''
    import torch.nn as nn


    class MaskedPool(nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = nn.Linear(4, 4)

        def forward(self, x, patch_valid):
            x = self.proj(x)
            padding = ~patch_valid
            x = x.masked_fill(padding.unsqueeze(-1), 0.0)
            return x, patch_valid.sum(dim=1)  # <-
''', "QL104", id="operand-of-a-bitwise-operator-is-a-mask"),
    # torchvision video/mvit.py:391 (benchmarks/reviews, seed 1): one module called under
    # `self.proj_after_attn` and under its negation: the two calls never both run.
    pytest.param('''
    import torch.nn as nn


    class Block(nn.Module):
        def __init__(self, after, normalize):
            super().__init__()
            self.proj_after_attn, self.normalize = after, normalize
            self.norm1, self.norm2 = nn.LayerNorm(4), nn.LayerNorm(4)
            self.project, self.attn = nn.Linear(4, 4), nn.Linear(4, 4)

        def forward(self, x):
            x_norm1 = self.norm1(x)
            x = self.project(x_norm1) if self.proj_after_attn else x
            x_norm2 = self.norm2(self.attn(x))
            return x_norm2 if self.proj_after_attn else self.project(x_norm2)  # <-
''', "QL401", id="calls-under-opposite-values-of-one-flag"),
    # transformers pp_doclayout_v2:487 (benchmarks/reviews, seed 1): an nn.Embedding is quantized with its
    # weights only (no activation observer); two lookups share its table, which is the point.
    pytest.param('''
    import torch.nn as nn


    class Spatial(nn.Module):
        def __init__(self):
            super().__init__()
            self.x_embed = nn.Embedding(1024, 8)
            self.y_embed = nn.Embedding(1024, 8)

        def forward(self, bbox):
            left = self.x_embed(bbox[:, :, 0])
            upper = self.y_embed(bbox[:, :, 1])
            right = self.x_embed(bbox[:, :, 2])  # <-
            return left, upper, right
''', "QL401", id="embedding-looked-up-twice"),
    # timm naflexvit.py:843 (benchmarks/reviews): patch_coord indexes a table further down, so it holds
    # integer coordinates in the whole method (a float tensor cannot index), whatever its annotation.
    pytest.param('''
    import torch
    import torch.nn as nn


    class NaFlexEmbeds(nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = nn.Linear(4, 4)
            self.pos_embed = nn.Parameter(torch.zeros(8, 8, 4))

        def forward(self, x, patch_coord: torch.Tensor):
            x = self.proj(x)
            grid = patch_coord.amax(dim=1) + 1  # <-
            return x + self.pos_embed[patch_coord[..., 0], patch_coord[..., 1]], grid
''', "QL104", id="parameter-used-as-an-index"),
]

REPORTED = [
    pytest.param('''
        import torch.nn as nn


        class Projection(nn.Module):
            def __init__(self, stride):
                super().__init__()
                proj = nn.Conv2d(8, 8, 1, stride=stride)
                self.proj_s2 = proj
                self.proj_s1 = proj  # <-

            def forward(self, x):
                return x
    ''', "QL402", id="alias-bound-unconditionally"),
    pytest.param('''
        import torch.nn as nn


        class Head(nn.Module):
            def __init__(self):
                super().__init__()
                conv = nn.Conv2d(8, 8, 1)
                act = nn.ReLU()
                self.first = nn.Sequential(conv, act, nn.BatchNorm2d(8))
                self.last = nn.Sequential(conv, act)  # <-

            def forward(self, x):
                return self.last(self.first(x))
    ''', "QL402", id="sequential-members-bound-twice"),
    pytest.param(_DCT.format(bias="nn.Parameter(torch.zeros(n))", mark="  # <-"), "QL504",
                 id="register-parameter-with-a-parameter"),
    pytest.param(_DCT_2D.format(bias="nn.Parameter(torch.zeros(n))"), "QL401",
                 id="module-with-a-registered-parameter-reused"),
    pytest.param('''
        import torch
        import torch.nn as nn


        class Scores(nn.Module):
            def __init__(self):
                super().__init__()
                self.q_proj = nn.Linear(8, 8)
                self.k_proj = nn.Linear(8, 8)

            def forward(self, x):
                q = self.q_proj(x)
                k = self.k_proj(x)
                return torch.bmm(q, k.transpose(1, 2))  # <-
    ''', "QL302", id="bmm-inside-the-quantized-zone"),
    pytest.param('''
        import torch.nn as nn
        import torch.nn.functional as F


        class Head(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(8, 8)

            def forward(self, x):
                return F.softmax(self.fc(x), dim=-1)  # <-
    ''', "QL102", id="float-op-inside-the-quantized-zone"),
    pytest.param('''
        import torch
        import torch.nn as nn


        class MaskedScores(nn.Module):
            def forward(self, x, mask):
                scores = x.masked_fill(mask, float("-inf"))
                return torch.softmax(scores, dim=-1)  # <-
    ''', "QL102", id="masked-fill-of-an-activation"),
    # torch/ao/nn/intrinsic/qat/modules/conv_fused.py:157.
    pytest.param('''
        import torch
        import torch.nn as nn


        class BiasFree(nn.Module):
            def __init__(self):
                super().__init__()
                self.conv = nn.Conv2d(3, 3, 1, bias=False)
                self.bias = nn.Parameter(torch.zeros(3))

            def forward(self, x):
                return self.conv(x) + self.bias.reshape(1, -1, 1, 1)  # <-
    ''', "QL504", id="parameter-values-added-to-an-activation"),
    # timm/models/gemma4_vit.py:285.
    pytest.param('''
        import torch
        import torch.nn as nn


        class PositionTable(nn.Module):
            def __init__(self):
                super().__init__()
                self.table = nn.Parameter(torch.zeros(16, 8))

            def forward(self, one_hot):
                return one_hot @ self.table  # <-
    ''', "QL504", id="parameter-values-multiplied-with-an-activation"),
    pytest.param('''
        from typing import Tuple

        import torch
        import torch.nn as nn


        def split_halves(x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
            return x[:, :4], x[:, 4:]


        class Gate(nn.Module):
            def __init__(self):
                super().__init__()
                self.pool = nn.MaxPool2d(2)

            def forward(self, x):
                a, b = split_halves(self.pool(x))
                return a * b  # <-
    ''', "QL301", id="tensors-unpacked-from-helper-result"),
    pytest.param('''
        import torch.nn as nn
        import torch.nn.functional as F


        class Patches(nn.Module):
            def forward(self, x):
                return F.unfold(x, kernel_size=3)  # <-
    ''', "QL102", id="functional-unfold"),
    pytest.param('''
        import torch.nn as nn


        class AllPositive(nn.Module):
            def forward(self, x):
                return x.all(dim=-1)  # <-
    ''', "QL104", id="reduction-of-an-activation"),
    pytest.param('''
        import torch.nn as nn


        class Block(nn.Module):
            def __init__(self):
                super().__init__()
                self.ln_1 = nn.LayerNorm(8)

            def forward(self, q, k=None):
                k = self.ln_1_kv(k) if k is not None else None  # <-
                return self.ln_1(q), k
    ''', "QL705", id="submodule-called-without-a-check"),
    pytest.param('''
        import torch
        import torch.nn as nn


        class Attention(nn.Module):
            def forward(self, hidden_states, cache=None):
                past = hidden_states.sum() if cache is not None else 0
                return torch.arange(4)[:, None] + past  # <-
    ''', "QL301", id="method-of-a-tensor"),
    pytest.param('''
        import torch.nn as nn


        class Encoder(nn.Module):
            def __init__(self):
                super().__init__()
                self.layers = nn.ModuleList([nn.Linear(4, 4) for _ in range(2)])

            def forward(self, x, output_hidden_states: bool = False):
                states = None
                if output_hidden_states:
                    states = x
                for layer in self.layers:
                    x = layer(x)
                    if output_hidden_states:
                        states += x  # <-
                return x, states
    ''', "QL203", id="tensor-or-none-grown-in-a-loop"),
    pytest.param('''
        import torch.nn as nn
        from torch.ao.quantization import DeQuantStub, QuantStub


        class Pipeline(nn.Module):
            def __init__(self):
                super().__init__()
                self.quant, self.dequant = QuantStub(), DeQuantStub()
                self.backbone = nn.Sequential(nn.Conv2d(3, 6, 3), nn.ReLU())
                self.head = nn.Linear(6, 3)

            def forward(self, x):
                return self.head(self.dequant(self.backbone(self.quant(x))).mean((2, 3)))  # <-
    ''', "QL701", id="dequantized-into-a-model-that-quantizes"),
    pytest.param('''
        import torch.nn as nn
        from torch.ao.quantization import fuse_modules


        class DoubleConv(nn.Sequential):
            def __init__(self):
                convs = [nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU()]
                super().__init__(*convs)

            def fuse_model(self):
                fuse_modules(self, [["0", "1", "3"]], inplace=True)  # <-
    ''', "QL501", id="sequential-subclass-position-out-of-range"),
    pytest.param('''
        import torch.nn as nn


        class Swish(nn.Module):
            def __init__(self, inplace=False):
                super().__init__()
                self.inplace = inplace

            def forward(self, x):
                return x * x.sigmoid()


        class Block(nn.Module):
            def __init__(self, act_layer=nn.ReLU):
                super().__init__()
                self.conv = nn.Conv2d(8, 8, 3)
                self.act = act_layer(inplace=True)  # <-

            def forward(self, x):
                return self.act(self.conv(x))


        class Net(nn.Module):
            def __init__(self):
                super().__init__()
                self.block = Block()

            def forward(self, x):
                return self.block(x)
    ''', "QL201", id="factory-parameter-default-inplace-module"),
    # ...binding the member itself is.
    pytest.param('''
        import torch.nn as nn


        class Stack(nn.Module):
            def __init__(self):
                super().__init__()
                self.blocks = nn.ModuleList([nn.Conv2d(8, 8, 1) for _ in range(3)])
                self.last_block = self.blocks[-1]  # <-

            def forward(self, x):
                for block in self.blocks:
                    x = block(x)
                return x
    ''', "QL402", id="container-member-bound-again"),
    pytest.param('''
    import torch
    import torch.nn as nn
    from vision_utils import grid_positions


    class Rotary(nn.Module):
        def forward(self, x, position_ids):
            freqs = position_ids[..., None].float() * 0.5
            return torch.cat([freqs, freqs], dim=-1)  # <-


    class Vision(nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = nn.Linear(4, 4)
            self.rotary = Rotary()

        def forward(self, pixels, grid_thw: torch.LongTensor):
            hidden = self.proj(pixels)
            position_ids = grid_positions(hidden) + 1
            return hidden, self.rotary(hidden, position_ids)
''', "QL302", id="positions-from-a-helper-given-an-activation"),
    pytest.param('''
    import torch
    import torch.nn as nn


    class BlockSparse(nn.Module):
        def __init__(self):
            super().__init__()
            self.q, self.v = nn.Linear(4, 4), nn.Linear(4, 4)

        def forward(self, x):
            context = self.q(x) * self.v(x)
            context.mul_(2)  # <-
            return context
''', "QL202", id="inplace-value-change"),
    pytest.param('''
    import torch.nn as nn


    class MaskedPool(nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = nn.Linear(4, 4)

        def forward(self, x, patch_valid):
            x = self.proj(x)
            padding = patch_valid < 0.5
            x = x.masked_fill(padding.unsqueeze(-1), 0.0)
            return x, patch_valid.sum(dim=1)  # <-
''', "QL104", id="operand-of-a-comparison-may-be-an-activation"),
    pytest.param('''
    import torch.nn as nn


    class Block(nn.Module):
        def __init__(self, after, normalize):
            super().__init__()
            self.proj_after_attn, self.normalize = after, normalize
            self.norm1, self.norm2 = nn.LayerNorm(4), nn.LayerNorm(4)
            self.project, self.attn = nn.Linear(4, 4), nn.Linear(4, 4)

        def forward(self, x):
            x_norm1 = self.norm1(x)
            x = self.project(x_norm1) if self.proj_after_attn else x
            x_norm2 = self.norm2(self.attn(x))
            return x_norm2 if self.normalize else self.project(x_norm2)  # <-
''', "QL401", id="calls-under-two-different-flags"),
    pytest.param('''
    import torch.nn as nn


    class Spatial(nn.Module):
        def __init__(self):
            super().__init__()
            self.x_embed = nn.Linear(4, 8)
            self.y_embed = nn.Linear(4, 8)

        def forward(self, bbox):
            left = self.x_embed(bbox[:, :, 0])
            upper = self.y_embed(bbox[:, :, 1])
            right = self.x_embed(bbox[:, :, 2])  # <-
            return left, upper, right
''', "QL401", id="linear-called-twice"),
    pytest.param('''
    import torch
    import torch.nn as nn


    class NaFlexEmbeds(nn.Module):
        def __init__(self):
            super().__init__()
            self.proj = nn.Linear(4, 4)
            self.pos_embed = nn.Parameter(torch.zeros(8, 8, 4))

        def forward(self, x, patch_coord: torch.Tensor):
            x = self.proj(x)
            grid = patch_coord.amax(dim=1) + 1  # <-
            return x + self.pos_embed[grid[:, 0], grid[:, 1]], grid
''', "QL104", id="parameter-not-used-as-an-index"),
]


def _lint(source: str):
    source = textwrap.dedent(source)
    lines = source.splitlines()
    marked = [number for number, line in enumerate(lines, 1) if line.rstrip().endswith(MARK)]
    assert len(marked) == 1, f"a case marks exactly one line with {MARK!r}; found lines {marked}"
    return lint_source(source, "case.py"), marked[0]


def _describe(findings) -> str:
    described = [f"line {f.line}:{f.column} {f.code} {f.message}" for f in findings]
    return "; ".join(described) or "nothing"


@pytest.mark.parametrize("source, code", NOT_REPORTED)
def test_false_positive_pattern_is_not_reported(source, code):
    findings, line = _lint(source)
    wrong = [f for f in findings if f.code == code]
    assert not wrong, (f"expected no {code} (the pattern at line {line} is not a hazard under the "
                       f"rule's semantics); found {_describe(wrong)}")


@pytest.mark.parametrize("source, code", REPORTED)
def test_true_positive_twin_is_reported(source, code):
    findings, line = _lint(source)
    assert any(f.code == code and f.line == line for f in findings), (
        f"expected {code} at line {line} (the true-positive twin of a false-positive pattern); "
        f"found {_describe(findings)}")
