"""A trainer class and a learnable-fake-quant experiment, the way QAT code is
organised in training repos: the optimizer is built in __init__, the model is prepared
in a hook, and a second script tries learnable scales (LSQ)."""
import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.ao.nn.intrinsic.qat import freeze_bn_stats
from torch.ao.quantization import (DeQuantStub, FakeQuantize, MovingAverageMinMaxObserver, QConfig, QuantStub,
                                   convert, default_weight_fake_quant, fuse_modules_qat, prepare_qat)
from torch.ao.quantization._learnable_fake_quantize import _LearnableFakeQuantize


class KeywordNet(nn.Module):
    def __init__(self, n_mels=16, num_classes=6):
        super().__init__()
        self.quant = QuantStub()
        self.conv = nn.Conv2d(1, 16, 3, padding=1)
        self.bn = nn.BatchNorm2d(16)
        self.relu = nn.ReLU()
        self.fc = nn.Linear(16, num_classes)
        self.dequant = DeQuantStub()

    def forward(self, spec):
        x = self.relu(self.bn(self.conv(self.quant(spec))))
        return self.dequant(self.fc(x.mean((2, 3))))


def lsq_qconfig():
    act = _LearnableFakeQuantize.with_args(observer=MovingAverageMinMaxObserver, quant_min=0, quant_max=255,
                                           use_grad_scaling=True)
    weight = _LearnableFakeQuantize.with_args(observer=MovingAverageMinMaxObserver, quant_min=-128, quant_max=127,
                                              dtype=torch.qint8, qscheme=torch.per_tensor_symmetric,
                                              use_grad_scaling=True)
    return QConfig(activation=act, weight=weight)


def fq_qconfig():
    act = FakeQuantize.with_args(observer=MovingAverageMinMaxObserver, quant_min=0, quant_max=255, reduce_range=False)
    return QConfig(activation=act, weight=default_weight_fake_quant)


class QATTrainer:
    def __init__(self, model, loader, lr=1e-3):
        self.model = model
        self.loader = loader
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=lr, momentum=0.9)  # expect: QL601
        self.scheduler = torch.optim.lr_scheduler.StepLR(self.optimizer, step_size=1)

    def prepare_for_qat(self):
        self.model.train()
        fuse_modules_qat(self.model, [["conv", "bn", "relu"]], inplace=True)
        self.model.qconfig = fq_qconfig()
        self.model = prepare_qat(self.model)

    def train_epoch(self):
        self.model.train()
        for spec, target in self.loader:
            loss = F.cross_entropy(self.model(spec), target)
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
        self.scheduler.step()

    def fit(self, epochs=2):
        self.prepare_for_qat()
        for epoch in range(epochs):
            self.train_epoch()
            if epoch == 0:
                self.model.apply(freeze_bn_stats)
        return convert(self.model.eval())


def lsq_finetune(model, loader):
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)  # expect: QL601
    model.train()
    fuse_modules_qat(model, [["conv", "bn", "relu"]], inplace=True)
    model.qconfig = lsq_qconfig()
    prepare_qat(model, inplace=True)
    for spec, target in loader:
        optimizer.zero_grad()
        F.cross_entropy(model(spec), target).backward()
        optimizer.step()
    return model


def lsq_finetune_fixed(model, loader):
    model.train()
    fuse_modules_qat(model, [["conv", "bn", "relu"]], inplace=True)
    model.qconfig = lsq_qconfig()
    prepare_qat(model, inplace=True)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    for spec, target in loader:
        optimizer.zero_grad()
        F.cross_entropy(model(spec), target).backward()
        optimizer.step()
    return model


def fq_finetune_in_place(model, loader):
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    model.train()
    fuse_modules_qat(model, [["conv", "bn", "relu"]], inplace=True)
    model.qconfig = fq_qconfig()
    prepare_qat(model, inplace=True)
    for spec, target in loader:
        optimizer.zero_grad()
        F.cross_entropy(model(spec), target).backward()
        optimizer.step()
    return model
