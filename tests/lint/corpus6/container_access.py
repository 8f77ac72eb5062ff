"""Submodules reached through containers and indirection: ModuleDict items and string keys,
named_children loops, self._modules lookups, getattr on generated names, and forwards that
take *args / **kwargs."""
from typing import Dict

import torch
import torch.nn as nn
from torch.ao.nn.quantized import FloatFunctional
from torch.ao.quantization import DeQuantStub, QuantStub


class MultiTaskHeads(nn.Module):
    """Per-task heads in a ModuleDict, each logit map sharpened by a fixed task temperature."""

    def __init__(self, dim: int, tasks: Dict[str, int], temperatures: Dict[str, float]):
        super().__init__()
        self.trunk = nn.Sequential(nn.Linear(dim, dim), nn.ReLU())
        self.heads = nn.ModuleDict({name: nn.Linear(dim, n) for name, n in tasks.items()})
        self.inv_temperature = {name: 1.0 / t for name, t in temperatures.items()}

    def forward(self, x):
        feat = self.trunk(x)
        out = {}
        for name, head in self.heads.items():
            out[name] = head(feat) * self.inv_temperature.get(name, 1.0)  # expect: QL301
        return out


class RoutedStages(nn.Module):
    """Stages kept under string keys; the activation entry is looked up twice."""

    def __init__(self, ch: int):
        super().__init__()
        self.stages = nn.ModuleDict({
            "stem": nn.Conv2d(3, ch, 3, padding=1),
            "act": nn.ReLU(),
            "body": nn.Conv2d(ch, ch, 3, padding=1),
            "pool": nn.AdaptiveAvgPool2d(1),
        })

    def forward(self, x):
        x = self.stages["act"](self.stages["stem"](x))
        x = self.stages["body"](x)
        x = self.stages["act"](x)  # expect: QL401
        return self.stages["pool"](x).flatten(1)


class NamedPipeline(nn.Module):
    """Runs every child in registration order, skipping the stubs by name."""

    def __init__(self, ch: int):
        super().__init__()
        self.quant = QuantStub()
        self.conv1 = nn.Conv2d(3, ch, 3, padding=1)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(ch, ch, 3, padding=1)
        self.relu2 = nn.ReLU()
        self.dequant = DeQuantStub()

    def forward(self, x):
        x = self.quant(x)
        for name, child in self.named_children():
            if name not in ("quant", "dequant"):
                x = child(x)
        return self.dequant(x)


class GeneratedLayers(nn.Module):
    """Layers registered as layer0..layerN and fetched back with getattr."""

    def __init__(self, ch: int, depth: int = 3):
        super().__init__()
        self.depth = depth
        self.quant = QuantStub()
        for i in range(depth):
            self.add_module(f"layer{i}", nn.Sequential(nn.Conv2d(ch, ch, 3, padding=1), nn.ReLU()))
        self.act = nn.ReLU()
        self.merge = FloatFunctional()
        self.dequant = DeQuantStub()

    def forward(self, x):
        x = self.quant(x)
        skips = []
        for i in range(self.depth):
            x = getattr(self, f"layer{i}")(x)
            skips.append(x)
        out = self.merge.cat(skips, dim=1)
        return self.dequant(self._modules["act"](out))


class TwoStreamLookup(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.conv_a = nn.Conv2d(3, ch, 3, padding=1)
        self.conv_b = nn.Conv2d(3, ch, 3, padding=1)
        self.act = nn.ReLU()

    def forward(self, a, b):
        ya = self.act(self.conv_a(a))
        yb = self._modules["act"](self.conv_b(b))  # expect: QL401
        return torch.cat([ya, yb], dim=1)  # expect: QL302


class VarArgsFuse(nn.Module):
    """Folds any number of same-shaped skip maps into the first input."""

    def __init__(self, ch: int):
        super().__init__()
        self.proj = nn.Conv2d(2 * ch, ch, 1)

    def forward(self, x, *skips, **kwargs):
        for skip in skips:
            x = self.proj(torch.cat([x, skip], dim=1))  # expect: QL302, QL401
        gate = kwargs.get("gate")
        if gate is not None:
            x = x * gate  # expect: QL301
        return x


class SumOfInputs(nn.Module):
    def __init__(self):
        super().__init__()
        self.add = FloatFunctional()

    def forward(self, *inputs):
        total = inputs[0]
        for t in inputs[1:]:
            total = self.add.add(total, t)  # expect: QL403
        return total


class KwargsAdapter(nn.Module):
    """Hugging Face style layer: every input arrives by keyword."""

    def __init__(self, dim: int):
        super().__init__()
        self.dense = nn.Linear(dim, dim)
        self.act = nn.GELU()

    def forward(self, **kwargs):
        hidden = self.act(self.dense(kwargs["hidden_states"]))
        if kwargs.get("residual") is not None:
            hidden = hidden + kwargs["residual"]  # expect: QL301
        return hidden
