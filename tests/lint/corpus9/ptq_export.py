"""Post-training static quantization and export helpers, tutorial style: a calibration
helper over a DataLoader, a benchmark, and several older code paths that were kept
around (some still import from the legacy namespace)."""
import os

import torch
import torch.nn as nn
import torch.quantization  # expect: QL505
from torch.ao.quantization import DeQuantStub, QuantStub, convert, fuse_modules, get_default_qconfig, prepare
from torch.utils.data import DataLoader, TensorDataset


class M(nn.Module):
    def __init__(self):
        super().__init__()
        self.quant = QuantStub()
        self.conv = nn.Conv2d(1, 8, 3)
        self.bn = nn.BatchNorm2d(8)
        self.relu = nn.ReLU()
        self.fc = nn.Linear(8, 4)
        self.dequant = DeQuantStub()

    def forward(self, x):
        x = self.relu(self.bn(self.conv(self.quant(x))))
        x = x.mean((2, 3))
        return self.dequant(self.fc(x))


def make_loader(n=32):
    data = TensorDataset(torch.randn(n, 1, 16, 16), torch.randint(0, 4, (n,)))
    return DataLoader(data, batch_size=8)


def calibrate(model, loader, num_batches=4):
    model.eval()
    with torch.no_grad():
        for i, (images, _) in enumerate(loader):
            if i >= num_batches:
                break
            model(images)


def static_quantize(model, loader):
    model.eval()
    fuse_modules(model, [["conv", "bn", "relu"]], inplace=True)
    model.qconfig = get_default_qconfig("x86")
    prepared = prepare(model)
    calibrate(prepared, loader)
    return convert(prepared)


def static_quantize_forgot_qconfig(loader):
    model = M().eval()
    fuse_modules(model, [["conv", "bn", "relu"]], inplace=True)
    prepare(model, inplace=True)  # expect: QL605
    calibrate(model, loader)
    return convert(model)


def static_quantize_calibrated_float(model, loader):
    model.eval()
    model.qconfig = get_default_qconfig("x86")
    prepared = prepare(model)
    calibrate(model, loader)
    return convert(prepared)  # expect: QL606


def static_quantize_smoke(model):
    model.eval()
    model.qconfig = get_default_qconfig("x86")
    prepare(model, inplace=True)
    with torch.no_grad():
        model(torch.zeros(1, 1, 16, 16))  # expect: QL607
        model(torch.full((1, 1, 16, 16), 0.5))  # expect: QL607
    return convert(model)


def static_quantize_discarded(model, loader):
    model.eval()
    model.qconfig = get_default_qconfig("x86")
    prepare(model)  # allow: QL609
    calibrate(model, loader)
    return convert(model)


def legacy_quantize(model, loader):
    model.eval()
    model.qconfig = torch.quantization.get_default_qconfig("x86")  # expect: QL505
    torch.quantization.prepare(model, inplace=True)  # expect: QL505
    calibrate(model, loader)
    return torch.quantization.convert(model)  # expect: QL505


def print_size_of_model(model, label=""):
    torch.save(model.state_dict(), "temp.p")
    size = os.path.getsize("temp.p") / 1e6
    os.remove("temp.p")
    print(f"{label}: {size:.2f} MB")
    return size


def export(path="m_int8.pt"):
    loader = make_loader()
    float_model = M()
    quantized = static_quantize(float_model, loader)
    example = torch.randn(1, 1, 16, 16)
    traced = torch.jit.trace(quantized, example)
    torch.jit.save(traced, path)
    return print_size_of_model(quantized, "int8")
