"""Calibration between prepare and convert: DataLoaders and helper functions, forgotten or
misdirected calibration (the float model calibrated instead of the prepared copy), and the
constant tensors that scripts feed when no data is at hand (zeros, ones, full)."""
import copy

import torch
import torch.nn as nn
from torch.ao.quantization import (
    DeQuantStub,
    QuantStub,
    QuantWrapper,
    convert,
    default_qconfig,
    fuse_modules,
    get_default_qconfig,
    prepare,
)
from torch.utils.data import DataLoader, TensorDataset


class SegHead(nn.Module):
    def __init__(self, classes=4):
        super().__init__()
        self.quant = QuantStub()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(8, classes, 1)
        self.dequant = DeQuantStub()

    def forward(self, x):
        return self.dequant(self.conv2(self.relu1(self.conv1(self.quant(x)))))


def build_model(backend="x86"):
    model = SegHead().eval()
    fuse_modules(model, [["conv1", "relu1"]], inplace=True)
    model.qconfig = get_default_qconfig(backend)
    return model


def make_loader(n=24):
    images = torch.randn(n, 3, 16, 16)
    return DataLoader(TensorDataset(images, torch.zeros(n, dtype=torch.long)), batch_size=8)


def calibrate(model, loader):
    model.eval()
    with torch.no_grad():
        for images, _ in loader:
            model(images)


def calibrate_on(model, data, steps=4):
    with torch.no_grad():
        for _ in range(steps):
            model(data)


def evaluate(model, loader):
    with torch.no_grad():
        return sum(model(images).abs().mean().item() for images, _ in loader)


def quantize_static(loader):
    model = build_model()
    prepared = prepare(model)
    calibrate(prepared, loader)
    quantized = convert(prepared)
    with torch.no_grad():
        quantized(torch.ones(1, 3, 16, 16))
    return quantized


def prepare_then_convert():
    model = SegHead()
    model.eval()
    model.qconfig = get_default_qconfig("x86")
    prepared = prepare(model)
    quantized = convert(prepared)  # expect: QL606
    return quantized


def calibrated_before_prepare(loader):
    model = build_model()
    calibrate(model, loader)
    prepare(model, inplace=True)
    return convert(model)  # expect: QL606


def one_line_quantize():
    model = build_model("qnnpack")
    return convert(prepare(copy.deepcopy(model)))  # expect: QL606


def wrapper_calibrated_on_float(loader):
    float_model = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 4, 1)).eval()
    wrapped = QuantWrapper(float_model)
    wrapped.qconfig = default_qconfig
    prepared = prepare(wrapped)
    print("float score", evaluate(wrapped, loader))
    return convert(prepared)  # expect: QL606


def convert_a_copy_early(loader):
    model = build_model()
    prepare(model, inplace=True)
    int8_model = convert(model, inplace=False)  # expect: QL606
    calibrate(model, loader)
    return int8_model, convert(model)


def maybe_calibrate(loader, run_calibration):
    prepared = prepare(build_model())
    if run_calibration:
        calibrate(prepared, loader)
    return convert(prepared)


def calibrate_with_zeros():
    prepared = prepare(build_model())
    calibrate_on(prepared, torch.zeros(8, 3, 16, 16))  # expect: QL607
    return convert(prepared)


def calibrate_with_full_tensor():
    model = SegHead().eval()
    model.qconfig = default_qconfig
    prepare(model, inplace=True)
    dummy = torch.full((2, 3, 16, 16), 0.5)
    with torch.no_grad():
        for _ in range(10):
            model(dummy)  # expect: QL607
    return convert(model)


def calibrate_with_example_input(device="cpu"):
    model = build_model().to(device)
    example = torch.ones(1, 3, 16, 16).to(device)
    prepared = prepare(model)
    prepared(example)  # expect: QL607
    return convert(prepared)


def shape_check_then_calibrate(loader):
    model = build_model()
    model(torch.zeros(1, 3, 16, 16))
    prepared = prepare(model)
    prepared(torch.ones(1, 3, 16, 16))
    calibrate(prepared, loader)
    return convert(prepared)


def calibrate_on_random_batches(steps=8):
    prepared = prepare(build_model())
    calibrate_on(prepared, torch.randn(8, 3, 16, 16), steps=steps)
    return convert(prepared)
