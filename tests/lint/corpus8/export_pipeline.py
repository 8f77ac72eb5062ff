"""An export pipeline: float models come from a pickled checkpoint, a registry or a factory
passed in by the caller, or are built here; they are quantized behind QuantWrapper, moved with
.to(device), copied for QAT, and saved as TorchScript."""
import copy
import functools

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.ao.quantization import (
    QuantWrapper,
    convert,
    fuse_modules,
    get_default_qat_qconfig,
    get_default_qconfig,
    prepare,
    prepare_qat,
)


class TinyDetector(nn.Module):
    def __init__(self, width=8, num_anchors=3):
        super().__init__()
        self.conv = nn.Conv2d(3, width, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(width)
        self.relu = nn.ReLU()
        self.head = nn.Conv2d(width, num_anchors * 5, 1)

    def forward(self, x):
        return self.head(self.relu(self.bn(self.conv(x))))

    def fuse_model(self):
        fuse_modules(self, [["conv", "bn", "relu"]], inplace=True)


MODEL_REGISTRY = {"tiny": TinyDetector, "wide": functools.partial(TinyDetector, width=16)}


def calibration_batches(n=4):
    return [torch.randn(2, 3, 16, 16) for _ in range(n)]


def calibrate(model, batches):
    model.eval()
    with torch.no_grad():
        for images in batches:
            model(images)


def detection_loss(outputs):
    return F.smooth_l1_loss(outputs, torch.zeros_like(outputs))


def save_torchscript(model, path):
    torch.jit.save(torch.jit.script(model), path)


def quantize_checkpoint(checkpoint_path, output_path):
    model = torch.load(checkpoint_path, weights_only=False)
    model.fuse_model()
    wrapped = QuantWrapper(model)
    wrapped.qconfig = get_default_qconfig("x86")
    prepared = prepare(wrapped)
    calibrate(prepared, calibration_batches())
    save_torchscript(convert(prepared), output_path)


def quantize_from_factory(model_fn, output_path):
    model = model_fn()
    prepared = prepare(model)
    calibrate(prepared, calibration_batches())
    save_torchscript(convert(prepared), output_path)


def qat_from_registry(name="tiny", steps=3):
    model = QuantWrapper(MODEL_REGISTRY[name]())
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    model.qconfig = get_default_qat_qconfig("x86")
    prepare_qat(model.train(), inplace=True)
    for images in calibration_batches(steps):
        loss = detection_loss(model(images))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return convert(model.eval())


def export_mobile(device="cpu"):
    model = TinyDetector().to(device)
    model.fuse_model()  # expect: QL603
    wrapped = QuantWrapper(model)
    wrapped.qconfig = get_default_qconfig("qnnpack")
    prepare(wrapped.eval(), inplace=True)
    calibrate(wrapped, calibration_batches())
    return convert(wrapped)


def export_with_example_input(device="cpu"):
    wrapped = QuantWrapper(TinyDetector()).to(device).eval()
    wrapped.module.fuse_model()
    wrapped.qconfig = get_default_qconfig("x86")
    prepare(wrapped, inplace=True)
    example_input = torch.ones(1, 3, 16, 16, device=device)
    wrapped(example_input)  # expect: QL607
    return torch.jit.trace(convert(wrapped), example_input)


def qat_after_export_fusion(steps=3):
    model = TinyDetector().eval()
    fused = fuse_modules(model, [["conv", "bn", "relu"]])  # expect: QL602
    wrapped = QuantWrapper(fused)
    wrapped.qconfig = get_default_qat_qconfig("x86")
    qat_model = prepare_qat(copy.deepcopy(wrapped).train())
    optimizer = torch.optim.SGD(qat_model.parameters(), lr=0.01)
    for images in calibration_batches(steps):
        loss = detection_loss(qat_model(images))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return convert(qat_model.eval())


def qat_finetune(device="cpu", steps=3):
    model = QuantWrapper(TinyDetector()).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)  # expect: QL601
    model.qconfig = get_default_qat_qconfig("x86")
    qat_model = prepare_qat(model.train())
    for images in calibration_batches(steps):
        loss = detection_loss(qat_model(images.to(device)))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return convert(qat_model.eval())


def quantize_unwrapped():
    model = TinyDetector().eval()
    model.fuse_model()
    wrapped = QuantWrapper(model)
    wrapped.qconfig = get_default_qconfig("x86")
    prepared = prepare(model)  # expect: QL605
    calibrate(wrapped, calibration_batches())
    return convert(prepared)  # allow: QL606
