"""A QAT fine-tuning script in the style of GitHub training repos: argparse, a model
class with fuse_model(is_qat), train/evaluate helpers, and a few variants of the
quantization steps collected from older experiments."""
import argparse
import copy

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.ao.quantization import (DeQuantStub, QuantStub, convert, fuse_modules, fuse_modules_qat,
                                   get_default_qat_qconfig, get_default_qconfig, prepare, prepare_qat)


class SmallNet(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.quant = QuantStub()
        self.conv1 = nn.Conv2d(3, 16, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(16, 32, 3, stride=2, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(32)
        self.relu2 = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(32, num_classes)
        self.dequant = DeQuantStub()

    def forward(self, x):
        x = self.relu1(self.bn1(self.conv1(self.quant(x))))
        x = self.relu2(self.bn2(self.conv2(x)))
        return self.dequant(self.fc(torch.flatten(self.pool(x), 1)))

    def fuse_model(self, is_qat=False):
        fuse = fuse_modules_qat if is_qat else fuse_modules
        fuse(self, [["conv1", "bn1", "relu1"], ["conv2", "bn2", "relu2"]], inplace=True)


def train_one_epoch(model, optimizer, loader):
    model.train()
    for images, targets in loader:
        loss = F.cross_entropy(model(images), targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def evaluate(model, loader):
    model.eval()
    correct = total = 0
    with torch.no_grad():
        for images, targets in loader:
            correct += (model(images).argmax(1) == targets).sum().item()
            total += targets.numel()
    return correct / max(total, 1)


def qat_copy_with_stale_optimizer(float_model, loader, epochs=1):
    optimizer = torch.optim.SGD(float_model.parameters(), lr=1e-3, momentum=0.9)  # expect: QL601
    qat_model = copy.deepcopy(float_model)
    qat_model.train()
    qat_model.fuse_model(is_qat=True)
    qat_model.qconfig = get_default_qat_qconfig("x86")
    prepare_qat(qat_model, inplace=True)
    for _ in range(epochs):
        train_one_epoch(qat_model, optimizer, loader)
    return convert(qat_model.eval())


def qat_in_place_optimizer_first(model, loader, epochs=1):
    # in place, default (not learnable) fake-quant: prepare_qat creates no parameter
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    model.train()
    model.fuse_model(is_qat=True)
    model.qconfig = get_default_qat_qconfig("x86")
    prepare_qat(model, inplace=True)
    for _ in range(epochs):
        train_one_epoch(model, optimizer, loader)
    return convert(model.eval())


def qat_with_ptq_qconfig(model, loader):
    model.train()
    model.fuse_model(is_qat=True)
    model.qconfig = get_default_qconfig("x86")
    prepare_qat(model, inplace=True)  # expect: QL604
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    train_one_epoch(model, optimizer, loader)
    return convert(model.eval())


def qat_after_eval_fusion(model, loader):
    model.eval()
    model.fuse_model()  # expect: QL602
    model.train()
    model.qconfig = get_default_qat_qconfig("x86")
    qat_model = prepare_qat(model)
    optimizer = torch.optim.Adam(qat_model.parameters(), lr=1e-4)
    train_one_epoch(qat_model, optimizer, loader)
    return convert(qat_model.eval())


def fused_for_deployment():
    model = SmallNet()
    model.fuse_model()  # expect: QL603
    return model


def qat_from_eval_model(loader):
    model = SmallNet().eval()
    model.fuse_model(is_qat=True)
    model.qconfig = get_default_qat_qconfig("x86")
    model = prepare_qat(model)  # allow: QL608
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    train_one_epoch(model, optimizer, loader)
    return convert(model.eval())


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", choices=["qat", "ptq"], default="qat")
    parser.add_argument("--epochs", type=int, default=1)
    args = parser.parse_args(argv)
    loader = [(torch.randn(4, 3, 32, 32), torch.randint(0, 10, (4,))) for _ in range(3)]
    model = SmallNet()
    if args.mode == "qat":
        model.train()
        model.fuse_model(is_qat=True)
        model.qconfig = get_default_qat_qconfig("x86")
        model = prepare_qat(model)
        optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
        for epoch in range(args.epochs):
            train_one_epoch(model, optimizer, loader)
            if epoch >= 1:
                model.apply(torch.ao.quantization.disable_observer)
    else:
        model.eval()
        model.fuse_model()
        model.qconfig = get_default_qconfig("x86")
        model = prepare(model)
        with torch.no_grad():
            for images, _ in loader:
                model(images)
    quantized = convert(model.eval())
    return evaluate(quantized, loader)


if __name__ == "__main__":
    print(main())
