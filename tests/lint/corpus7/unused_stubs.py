"""Which stubs run: stubs built by a common base and called by subclasses, one stub per view
in a ModuleList, stubs looked up by modality name, stubs called from a helper or only while
training, a DeQuantStub shared by several outputs; stubs left behind by refactors, and int8
outputs from classes that never dequantize."""
from typing import Dict, List

import torch
import torch.nn as nn
from torch.ao.nn.quantized import FloatFunctional
from torch.ao.quantization import DeQuantStub, QuantStub


class ConvBNReLU(nn.Sequential):
    def __init__(self, cin: int, cout: int, stride: int = 1):
        super().__init__(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU())


def small_encoder(cin: int = 3, width: int = 16) -> nn.Module:
    return nn.Sequential(ConvBNReLU(cin, width, 2), ConvBNReLU(width, width, 2))


class QuantReadyBase(nn.Module):
    """Base of the deployable models: builds the stubs; subclasses call them."""

    def __init__(self):
        super().__init__()
        self.quant = QuantStub()
        self.dequant = DeQuantStub()


class DeployableCNN(QuantReadyBase):
    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.features = small_encoder()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, num_classes)

    def forward(self, x):
        x = self.pool(self.features(self.quant(x)))
        return self.dequant(self.fc(torch.flatten(x, 1)))


class TopKExporter(nn.Module):
    """Returns class ids only."""

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.quant = QuantStub()
        self.features = small_encoder()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, num_classes)

    def forward(self, x, k: int = 5):
        logits = self.fc(torch.flatten(self.pool(self.features(self.quant(x))), 1))
        return torch.topk(logits, k, dim=1).indices


class ExportableClassifier(nn.Module):
    """int8 logits for the NPU runtime, float logits elsewhere."""

    def __init__(self, num_classes: int = 10, int8_output: bool = False):
        super().__init__()
        self.int8_output = int8_output
        self.quant = QuantStub()
        self.features = small_encoder()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, num_classes)

    def forward(self, x):
        logits = self.fc(torch.flatten(self.pool(self.features(self.quant(x))), 1))
        if self.int8_output:
            return logits  # expect: QL704
        return logits.dequantize()


class StereoFeatureNet(nn.Module):
    def __init__(self, width: int = 16):
        super().__init__()
        self.quant_left = QuantStub()
        self.quant_right = QuantStub()  # expect: QL704
        self.left_enc = small_encoder(3, width)
        self.right_enc = small_encoder(3, width)
        self.cat = FloatFunctional()
        self.head = nn.Conv2d(2 * width, 1, 1)
        self.dequant = DeQuantStub()

    def forward(self, left, right):
        fl = self.left_enc(self.quant_left(left))
        fr = self.right_enc(self.quant_left(right))  # expect: QL401
        return self.dequant(self.head(self.cat.cat([fl, fr], dim=1)))


class MultiViewNet(nn.Module):
    def __init__(self, views: int = 3, width: int = 16, num_classes: int = 10):
        super().__init__()
        self.quants = nn.ModuleList(QuantStub() for _ in range(views))
        self.encoders = nn.ModuleList(small_encoder(3, width) for _ in range(views))
        self.cat = FloatFunctional()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(views * width, num_classes)
        self.dequant = DeQuantStub()

    def forward(self, views: List[torch.Tensor]):
        feats = [enc(q(v)) for q, enc, v in zip(self.quants, self.encoders, views)]
        x = torch.flatten(self.pool(self.cat.cat(feats, dim=1)), 1)
        return self.dequant(self.head(x))


class ModalityNet(nn.Module):
    def __init__(self, modalities=("rgb", "flow"), width: int = 16, num_classes: int = 10):
        super().__init__()
        self.modalities = modalities
        self.quant_rgb = QuantStub()
        self.quant_flow = QuantStub()
        self.encoders = nn.ModuleDict({"rgb": small_encoder(3, width), "flow": small_encoder(2, width)})
        self.cat = FloatFunctional()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(len(modalities) * width, num_classes)
        self.dequant = DeQuantStub()

    def forward(self, inputs: Dict[str, torch.Tensor]):
        feats = []
        for name in self.modalities:
            x = getattr(self, f"quant_{name}")(inputs[name])
            feats.append(self.encoders[name](x))
        return self.dequant(self.head(torch.flatten(self.pool(self.cat.cat(feats, dim=1)), 1)))


class AuxLogitsNet(nn.Module):
    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.quant = QuantStub()
        self.stem = small_encoder()
        self.aux_head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(16, num_classes))
        self.body = ConvBNReLU(16, 32, 2)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(32, num_classes)
        self.dequant = DeQuantStub()
        self.dequant_aux = DeQuantStub()

    def _outputs(self, logits, aux):
        if aux is None:
            return self.dequant(logits)
        return self.dequant(logits), self.dequant_aux(aux)

    def forward(self, x):
        x = self.stem(self.quant(x))
        aux = self.aux_head(x) if self.training else None
        logits = self.fc(torch.flatten(self.pool(self.body(x)), 1))
        return self._outputs(logits, aux)


class PrunedAuxNet(nn.Module):
    """The auxiliary classifier was dropped for deployment."""

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.quant = QuantStub()
        self.stem = small_encoder()
        self.body = ConvBNReLU(16, 32, 2)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(32, num_classes)
        self.dequant = DeQuantStub()
        self.dequant_aux = DeQuantStub()  # expect: QL704

    def forward(self, x):
        x = self.body(self.stem(self.quant(x)))
        return self.dequant(self.fc(torch.flatten(self.pool(x), 1)))


class PyramidOutputs(nn.Module):
    def __init__(self, width: int = 16):
        super().__init__()
        self.quant = QuantStub()
        self.c3 = small_encoder(3, width)
        self.c4 = ConvBNReLU(width, width, 2)
        self.c5 = ConvBNReLU(width, width, 2)
        self.dequant = DeQuantStub()

    def forward(self, x):
        c3 = self.c3(self.quant(x))
        c4 = self.c4(c3)
        outs = [c3, c4, self.c5(c4)]
        return tuple(self.dequant(o) for o in outs)


class PostprocessedNet(nn.Module):
    """Dequantization was moved into the deployment script's postprocessing."""

    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.quant = QuantStub()
        self.features = small_encoder()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, num_classes)
        self.dequant = DeQuantStub()  # expect: QL704

    def forward(self, x):
        return self.fc(torch.flatten(self.pool(self.features(self.quant(x))), 1))
