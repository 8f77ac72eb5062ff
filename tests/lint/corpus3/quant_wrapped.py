"""Quantization-ready models wrapped with QuantWrapper or given their stubs by a parent
module, fuse lists built in loops over stages, and quantizable subclasses that override
forward (or only a helper that forward calls) of a float base class in the same file."""
import torch
import torch.nn as nn
from torch.ao.nn.quantized import FloatFunctional
from torch.ao.quantization import DeQuantStub, QuantStub, fuse_modules, fuse_modules_qat
from torch.quantization import QuantWrapper  # expect: QL505


class ConvBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU()

    def forward(self, x):
        return self.relu(self.bn(self.conv(x)))


class ResidualStage(nn.Module):
    """Float stage: strided blocks plus a projected shortcut, merged by _merge."""

    def __init__(self, cin: int, cout: int, depth: int = 2):
        super().__init__()
        self.blocks = nn.Sequential(*[ConvBlock(cin if i == 0 else cout, cout, 2 if i == 0 else 1) for i in range(depth)])
        self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, 2, bias=False), nn.BatchNorm2d(cout))
        self.out_relu = nn.ReLU()

    def _merge(self, a, b):
        return a + b  # expect: QL301

    def forward(self, x):
        return self.out_relu(self._merge(self.blocks(x), self.shortcut(x)))


class QuantResidualStage(ResidualStage):
    """Overrides only the helper: the inherited forward now merges through a FloatFunctional."""

    def __init__(self, cin: int, cout: int, depth: int = 2):
        super().__init__(cin, cout, depth)
        self.merge = FloatFunctional()

    def _merge(self, a, b):
        return self.merge.add(a, b)


class StagedNet(nn.Module):
    def __init__(self, widths=(8, 16, 32), num_classes: int = 10, stage_cls=ResidualStage):
        super().__init__()
        self.stem = ConvBlock(3, widths[0])
        self.stages = nn.ModuleList(stage_cls(widths[i], widths[i + 1]) for i in range(len(widths) - 1))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(widths[-1], num_classes)

    def forward(self, x):
        x = self.stem(x)
        for stage in self.stages:
            x = stage(x)
        return self.fc(torch.flatten(self.pool(x), 1))

    def fuse_model(self, is_qat: bool = False):
        groups = [["stem.conv", "stem.bn", "stem.relu"]]
        for i, stage in enumerate(self.stages):
            for j in range(len(stage.blocks)):
                groups.append([f"stages.{i}.blocks.{j}.conv", f"stages.{i}.blocks.{j}.bn", f"stages.{i}.blocks.{j}.relu"])
            groups.append([f"stages.{i}.shortcut.0", f"stages.{i}.shortcut.1"])
        (fuse_modules_qat if is_qat else fuse_modules)(self, groups, inplace=True)


class Classifier(nn.Module):
    """The stubs live in the parent; logits are tempered and normalized after dequantization."""

    def __init__(self, num_classes: int = 10, temperature: float = 2.0):
        super().__init__()
        self.quant = QuantStub()
        self.body = StagedNet(num_classes=num_classes, stage_cls=QuantResidualStage)
        self.dequant = DeQuantStub()
        self.temperature = temperature
        self.last_act = self.body.stages[-1].out_relu  # expect: QL402

    def forward(self, x):
        logits = self.dequant(self.body(self.quant(x)))
        return logits / self.temperature, logits.softmax(-1)

    def fuse_model(self):
        self.body.fuse_model()


class GatedHead(nn.Module):
    def __init__(self, c: int = 32, num_classes: int = 10):
        super().__init__()
        self.conv = nn.Conv2d(c, c, 1, bias=False)
        self.bn = nn.BatchNorm2d(c)
        self.act = nn.ReLU()
        self.fc = nn.Linear(c, num_classes)

    def forward(self, x):
        y = self.act(self.bn(self.conv(x)))
        return self.fc((y * x.sigmoid()).mean((2, 3)))  # expect: QL301


class QuantGatedHead(GatedHead):
    def __init__(self, c: int = 32, num_classes: int = 10):
        super().__init__(c, num_classes)
        self.gate = nn.Sigmoid()
        self.gate_mul = FloatFunctional()

    def forward(self, x):
        y = self.act(self.bn(self.conv(x)))
        return self.fc(self.gate_mul.mul(y, self.gate(x)).mean((2, 3)))

    def fuse_model(self):
        fuse_modules(self, ["conv", "bn", "act"], inplace=True)


class BiasedGatedHead(QuantGatedHead):
    def __init__(self, c: int = 32, num_classes: int = 10):
        super().__init__(c, num_classes)
        self.logit_bias = nn.Parameter(torch.zeros(num_classes))

    def forward(self, x):
        return super().forward(x) + self.logit_bias  # expect: QL301, QL504


class TwoStageNet(nn.Module):
    def __init__(self, num_classes: int = 4):
        super().__init__()
        self.quant = QuantStub()
        self.stage1 = ConvBlock(3, 8)
        self.stage2 = ConvBlock(8, 16, 2)
        self.head = nn.Linear(16, num_classes)
        self.head_relu = nn.ReLU()
        self.dequant = DeQuantStub()

    def forward(self, x):
        x = self.stage2(self.stage1(self.quant(x)))
        return self.dequant(self.head_relu(self.head(x.mean((2, 3)))))  # expect: QL503

    def fuse_model(self):
        for name in ("stage1", "stage2", "stage3"):
            fuse_modules(self, [f"{name}.conv", f"{name}.bn", f"{name}.relu"], inplace=True)  # expect: QL501


def quantizable_staged_net(num_classes: int = 10) -> nn.Module:
    model = QuantWrapper(StagedNet(num_classes=num_classes, stage_cls=QuantResidualStage)).eval()
    model.module.fuse_model()
    return model
