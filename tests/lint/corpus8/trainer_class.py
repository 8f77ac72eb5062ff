"""A trainer class that owns the float model and its optimizer and runs the quantization stages as
methods: float training, in-place QAT on the trained model, PTQ and QAT of fresh copies built
from the float weights, and an int8 export."""
import copy
from dataclasses import dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.ao.quantization import (
    DeQuantStub,
    QuantStub,
    convert,
    fuse_modules,
    fuse_modules_qat,
    get_default_qat_qconfig,
    get_default_qconfig,
    prepare,
    prepare_qat,
)
from torch.ao.nn.intrinsic.qat import freeze_bn_stats


@dataclass
class TrainConfig:
    num_classes: int = 6
    lr: float = 0.02
    float_epochs: int = 1
    qat_epochs: int = 2
    backend: str = "x86"
    device: str = "cpu"


class Net(nn.Module):
    def __init__(self, num_classes):
        super().__init__()
        self.quant = QuantStub()
        self.conv1, self.bn1, self.relu1 = nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU()
        self.conv2, self.bn2, self.relu2 = nn.Conv2d(8, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU()
        self.fc = nn.Linear(8, num_classes)
        self.dequant = DeQuantStub()

    def forward(self, x):
        x = self.relu1(self.bn1(self.conv1(self.quant(x))))
        x = self.relu2(self.bn2(self.conv2(x)))
        return self.dequant(self.fc(x.mean((2, 3))))

    def fuse_model(self, is_qat=False):
        groups = [["conv1", "bn1", "relu1"], ["conv2", "bn2", "relu2"]]
        if is_qat:
            fuse_modules_qat(self, groups, inplace=True)
        else:
            fuse_modules(self, groups, inplace=True)


def make_data(n=24, num_classes=6):
    x, y = torch.randn(n, 3, 8, 8), torch.randint(0, num_classes, (n,))
    return list(zip(x.split(8), y.split(8))), list(zip(x[:8].split(4), y[:8].split(4)))


class QuantizationTrainer:
    def __init__(self, cfg, train_data, val_data):
        self.cfg = cfg
        self.train_data, self.val_data = train_data, val_data
        self.model = Net(cfg.num_classes).to(cfg.device)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=cfg.lr, momentum=0.9)

    def train_epoch(self, model, optimizer):
        model.train()
        for images, labels in self.train_data:
            loss = F.cross_entropy(model(images), labels)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()

    @torch.no_grad()
    def evaluate(self, model):
        model.eval()
        return sum((model(x).argmax(1) == y).float().mean().item() for x, y in self.val_data)

    def fit_float(self):
        for _ in range(self.cfg.float_epochs):
            self.train_epoch(self.model, self.optimizer)
        self.float_state = copy.deepcopy(self.model.state_dict())

    def fit_qat_in_place(self):
        self.model.train()
        self.model.fuse_model(is_qat=True)
        self.model.qconfig = get_default_qat_qconfig(self.cfg.backend)
        prepare_qat(self.model, inplace=True)
        for epoch in range(self.cfg.qat_epochs):
            self.train_epoch(self.model, self.optimizer)
            if epoch >= 1:
                self.model.apply(freeze_bn_stats)
        return convert(copy.deepcopy(self.model).eval())

    def quantize_ptq(self):
        model = Net(self.cfg.num_classes)
        model.load_state_dict(self.float_state)
        model.eval()
        model.fuse_model()
        model.qconfig = get_default_qconfig(self.cfg.backend)
        prepared = prepare(model)
        print("float accuracy before int8:", self.evaluate(model))
        return convert(prepared)  # expect: QL606

    def quantize_qat(self):
        model = Net(self.cfg.num_classes)
        model.load_state_dict(self.float_state)
        optimizer = torch.optim.SGD(model.parameters(), lr=self.cfg.lr * 0.1)  # expect: QL601
        model.train()
        model.fuse_model(is_qat=True)
        model.qconfig = get_default_qat_qconfig(self.cfg.backend)
        qat_model = prepare_qat(model)
        for _ in range(self.cfg.qat_epochs):
            for images, labels in self.train_data:
                loss = F.cross_entropy(qat_model(images), labels)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
        return convert(qat_model.eval())

    def qat_from_folded(self):
        model = Net(self.cfg.num_classes)
        model.load_state_dict(self.float_state)
        model.eval()
        model.fuse_model()  # expect: QL602
        model.train()
        model.qconfig = get_default_qat_qconfig(self.cfg.backend)
        prepare_qat(model, inplace=True)
        optimizer = torch.optim.SGD(model.parameters(), lr=self.cfg.lr * 0.1)
        self.train_epoch(model, optimizer)
        return convert(model.eval())

    def export_int8(self):
        deploy = Net(self.cfg.num_classes)
        deploy.load_state_dict(self.float_state)
        deploy.fuse_model()  # expect: QL603
        deploy.qconfig = get_default_qconfig(self.cfg.backend)
        prepare(deploy.eval(), inplace=True)
        for images, _ in self.train_data:
            deploy(images)
        return convert(deploy)

    def quick_ptq(self):
        model = Net(self.cfg.num_classes).eval()
        model.load_state_dict(self.float_state)
        model.fuse_model()
        model.qconfig = get_default_qconfig(self.cfg.backend)
        prepared = prepare(model)
        prepared(torch.zeros(4, 3, 8, 8))  # expect: QL607
        return convert(prepared)


def main(stage="qat"):
    trainer = QuantizationTrainer(TrainConfig(), *make_data())
    trainer.fit_float()
    if stage == "qat":
        return trainer.fit_qat_in_place()
    elif stage == "ptq":
        return trainer.quantize_ptq()
    elif stage == "qat-copy":
        return trainer.quantize_qat()
    elif stage == "qat-folded":
        return trainer.qat_from_folded()
    elif stage == "export":
        return trainer.export_int8()
    return trainer.quick_ptq()
