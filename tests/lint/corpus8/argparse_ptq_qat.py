"""A command-line quantization tool: --mode ptq|qat picks the flow, helpers build the optimizer,
train, calibrate and evaluate, and separate entry points fine-tune, export and calibrate."""
import argparse

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.ao.quantization import (
    DeQuantStub,
    QuantStub,
    convert,
    disable_observer,
    fuse_modules,
    fuse_modules_qat,
    get_default_qat_qconfig,
    get_default_qconfig,
    prepare,
    prepare_qat,
)
from torch.ao.nn.quantized import FloatFunctional
from torch.utils.data import DataLoader, TensorDataset


class InvertedResidual(nn.Module):
    def __init__(self, channels, expand=2):
        super().__init__()
        hidden = channels * expand
        self.conv = nn.Sequential(
            nn.Conv2d(channels, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU(),
            nn.Conv2d(hidden, hidden, 3, padding=1, groups=hidden, bias=False), nn.BatchNorm2d(hidden), nn.ReLU(),
            nn.Conv2d(hidden, channels, 1, bias=False), nn.BatchNorm2d(channels),
        )
        self.skip_add = FloatFunctional()

    def forward(self, x):
        return self.skip_add.add(x, self.conv(x))


class MobileNetTiny(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.quant = QuantStub()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU())
        self.blocks = nn.Sequential(InvertedResidual(8), InvertedResidual(8))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(8, num_classes)
        self.dequant = DeQuantStub()

    def forward(self, x):
        x = self.blocks(self.stem(self.quant(x)))
        return self.dequant(self.classifier(torch.flatten(self.pool(x), 1)))

    def fuse_model(self, is_qat=False):
        fuse = fuse_modules_qat if is_qat else fuse_modules
        fuse(self.stem, ["0", "1", "2"], inplace=True)
        for block in self.blocks:
            fuse(block.conv, [["0", "1", "2"], ["3", "4", "5"], ["6", "7"]], inplace=True)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description="Quantize MobileNetTiny")
    parser.add_argument("--mode", choices=["ptq", "qat"], default="ptq")
    parser.add_argument("--backend", default="x86", choices=["x86", "qnnpack", "fbgemm"])
    parser.add_argument("--lr", type=float, default=0.01)
    parser.add_argument("--float-epochs", type=int, default=1)
    parser.add_argument("--qat-epochs", type=int, default=2)
    parser.add_argument("--calib-batches", type=int, default=2)
    parser.add_argument("--image-size", type=int, default=16)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--dummy-calibration", action="store_true")
    return parser.parse_args(argv)


def make_loaders(batch_size, image_size=16, n=32):
    images, labels = torch.randn(n, 3, image_size, image_size), torch.randint(0, 10, (n,))
    train = DataLoader(TensorDataset(images, labels), batch_size=batch_size, shuffle=True)
    return train, DataLoader(TensorDataset(images[:16], labels[:16]), batch_size=batch_size)


def build_optimizer(model, lr, weight_decay=1e-4):
    decay = [p for p in model.parameters() if p.ndim > 1]
    no_decay = [p for p in model.parameters() if p.ndim <= 1]
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.SGD(groups, lr=lr, momentum=0.9)  # allow: QL601


def train_one_epoch(model, loader, optimizer):
    model.train()
    for images, labels in loader:
        loss = F.cross_entropy(model(images), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def calibrate(model, loader, num_batches):
    model.eval()
    with torch.no_grad():
        for i, (images, _) in enumerate(loader):
            if i >= num_batches:
                break
            model(images)


def evaluate(model, loader):
    model.eval()
    with torch.no_grad():
        hits = sum((model(x).argmax(1) == y).sum().item() for x, y in loader)
    return hits / len(loader.dataset)


def main(argv=None):
    args = parse_args(argv)
    torch.backends.quantized.engine = args.backend
    train_loader, val_loader = make_loaders(args.batch_size, args.image_size)
    model = MobileNetTiny()
    optimizer = build_optimizer(model, args.lr)
    for _ in range(args.float_epochs):
        train_one_epoch(model, train_loader, optimizer)
    if args.mode == "qat":
        model.train()
        model.fuse_model(is_qat=True)
        model.qconfig = get_default_qat_qconfig(args.backend)
        prepare_qat(model, inplace=True)
        for epoch in range(args.qat_epochs):
            train_one_epoch(model, train_loader, optimizer)
            if epoch >= 1:
                model.apply(disable_observer)
    else:
        model.eval()
        model.fuse_model()
        model.qconfig = get_default_qconfig(args.backend)
        prepare(model, inplace=True)
        calibrate(model, train_loader, args.calib_batches)
    quantized = convert(model.eval())
    print(f"{args.mode} int8 accuracy {evaluate(quantized, val_loader):.3f}")
    return quantized


def finetune_main(argv=None):
    args = parse_args(argv)
    train_loader, _ = make_loaders(args.batch_size, args.image_size)
    model = MobileNetTiny()
    model.eval()
    model.fuse_model()  # allow: QL602
    if args.mode == "qat":
        model.train()
        model.qconfig = get_default_qconfig(args.backend)
        qat_model = prepare_qat(model)  # expect: QL604
        optimizer = build_optimizer(qat_model, args.lr)
        train_one_epoch(qat_model, train_loader, optimizer)
        return convert(qat_model.eval())
    model.qconfig = get_default_qconfig(args.backend)
    prepare(model, inplace=True)
    calibrate(model, train_loader, args.calib_batches)
    return convert(model)


def qat_main(argv=None):
    args = parse_args(argv)
    train_loader, val_loader = make_loaders(args.batch_size, args.image_size)
    model = MobileNetTiny()
    optimizer = build_optimizer(model, args.lr)  # expect: QL601
    model.fuse_model(is_qat=True)
    model.qconfig = get_default_qat_qconfig(args.backend)
    qat_model = prepare_qat(model)
    for _ in range(args.qat_epochs):
        train_one_epoch(qat_model, train_loader, optimizer)
    return convert(qat_model.eval())


def export_main(argv=None):
    args = parse_args(argv)
    train_loader, val_loader = make_loaders(args.batch_size, args.image_size)
    model = MobileNetTiny()
    model.fuse_model()  # expect: QL603
    model.qconfig = get_default_qconfig(args.backend)
    prepared = prepare(model.eval())
    calibrate(prepared, train_loader, args.calib_batches)
    return convert(prepared)


def calibration_main(argv=None):
    args = parse_args(argv)
    train_loader, _ = make_loaders(args.batch_size, args.image_size)
    model = MobileNetTiny().eval()
    model.fuse_model()
    model.qconfig = get_default_qconfig(args.backend)
    prepared = prepare(model)
    if args.dummy_calibration:
        data = torch.ones(args.batch_size, 3, args.image_size, args.image_size)
    else:
        data = next(iter(train_loader))[0]
    prepared(data)
    int8_model = convert(prepared)
    example = torch.ones(args.batch_size, 3, args.image_size, args.image_size)
    second = prepare(model)
    second(example)  # expect: QL607
    return int8_model, convert(second)
