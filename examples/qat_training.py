"""Quantization-aware training scripts: the order of fusion, prepare_qat and the
optimizer matters, and older code still imports the deprecated namespaces.
Run it to fine-tune the clean model on random data: python examples/qat_training.py"""
import torch
import torch.nn as nn
import torch.nn.intrinsic as nni  # expect: QL505
from torch.ao.nn.intrinsic.qat import freeze_bn_stats
from torch.ao.nn.quantized import FloatFunctional
from torch.ao.quantization import (
    DeQuantStub,
    QuantStub,
    convert,
    disable_observer,
    fuse_modules,
    fuse_modules_qat,
    get_default_qat_qconfig,
    prepare_qat,
)
from torch.nn.quantized import Conv2d as QuantizedConv2d  # expect: QL505
from torch.quantization import get_default_qconfig  # expect: QL505


class QATNet(nn.Module):
    def __init__(self, num_classes=4):
        super().__init__()
        self.quant = QuantStub()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(8)
        self.skip_add_relu = FloatFunctional()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, num_classes)
        self.dequant = DeQuantStub()

    def forward(self, x):
        x = self.relu1(self.bn1(self.conv1(self.quant(x))))
        x = self.skip_add_relu.add_relu(self.bn2(self.conv2(x)), x)
        return self.dequant(self.fc(self.pool(x).flatten(1)))

    def fuse_model(self, is_qat=False):
        fuse = fuse_modules_qat if is_qat else fuse_modules
        fuse(self, [["conv1", "bn1", "relu1"], ["conv2", "bn2"]], inplace=True)


def train_one_epoch(model, optimizer, batches):
    model.train()
    for images, targets in batches:
        loss = nn.functional.cross_entropy(model(images), targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def qat_optimizer_too_early(model, batches):
    """Built before prepare_qat, the optimizer holds the float model's parameters; prepare_qat
    (inplace=False, the default) trains a copy, whose parameters it never updates."""
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)  # expect: QL601
    model.fuse_model(is_qat=True)
    model.qconfig = get_default_qat_qconfig("x86")
    model = prepare_qat(model)
    train_one_epoch(model, optimizer, batches)
    return model


def qat_after_eval_fusion(model, batches):
    """Eval-mode fusion folds BatchNorm away before QAT could train its statistics."""
    model.eval()
    fuse_modules(model, [["conv1", "bn1", "relu1"], ["conv2", "bn2"]], inplace=True)  # expect: QL602
    model.train()
    model.qconfig = get_default_qat_qconfig("x86")
    model = prepare_qat(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    train_one_epoch(model, optimizer, batches)
    return model


def summarize(model):
    """Module counts for a report, as an older script wrote them."""
    fused = sum(isinstance(m, (nni.ConvBnReLU2d, torch.nn.intrinsic.qat.ConvBnReLU2d)) for m in model.modules())  # expect: QL505
    fake_quantized_linears = sum(isinstance(m, torch.nn.qat.Linear) for m in model.modules())  # expect: QL505
    quantized = sum(isinstance(m, (QuantizedConv2d, torch.nn.quantized.Linear)) for m in model.modules())  # expect: QL505
    return {"fused": fused, "qat_linear": fake_quantized_linears, "quantized": quantized}


def legacy_post_training_quantization(model, calibration_batches):
    model.eval()
    model.fuse_model()
    model.qconfig = get_default_qconfig("x86")
    torch.quantization.prepare(model, inplace=True)  # expect: QL505
    with torch.no_grad():
        for images, _ in calibration_batches:
            model(images)
    return torch.ao.quantization.convert(model)


def finetune_then_qat(model, batches, float_epochs=1, qat_epochs=1):
    """Float fine-tuning first, then a fresh optimizer for the prepared model."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    for _ in range(float_epochs):
        train_one_epoch(model, optimizer, batches)
    model.fuse_model(is_qat=True)
    model.qconfig = get_default_qat_qconfig("x86")
    prepare_qat(model, inplace=True)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    for _ in range(qat_epochs):
        train_one_epoch(model, optimizer, batches)
    return model


def quantization_aware_training(model, batches, epochs=3, freeze_observers_after=1):
    """QAT fusion, prepare_qat, then the optimizer; observers and BN statistics frozen late."""
    model.train()
    fuse_modules_qat(model, [["conv1", "bn1", "relu1"], ["conv2", "bn2"]], inplace=True)
    model.qconfig = get_default_qat_qconfig("x86")
    model = prepare_qat(model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    for epoch in range(epochs):
        train_one_epoch(model, optimizer, batches)
        if epoch >= freeze_observers_after:
            model.apply(disable_observer)
            model.apply(freeze_bn_stats)
    return convert(model.eval())


def main():
    torch.manual_seed(0)
    batches = [(torch.randn(8, 3, 16, 16), torch.randint(0, 4, (8,))) for _ in range(4)]
    quantized = quantization_aware_training(QATNet(), batches)
    print(summarize(quantized), quantized(batches[0][0]).argmax(dim=1).tolist())


if __name__ == "__main__":
    main()
