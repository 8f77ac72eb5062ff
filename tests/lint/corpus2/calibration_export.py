"""Scripts around a small model: PTQ calibration, QAT with freeze_bn_stats/disable_observer, optimizers
and schedulers built in helpers, copies of the model, export, and legacy namespaces."""
import copy
import logging
from types import SimpleNamespace

import torch
import torch.ao.quantization as tq
import torch.nn as nn
import torch.nn.functional as F
import torch.nn.intrinsic.qat as nniqat  # expect: QL505
from torch.ao.quantization import fuse_modules, fuse_modules_qat
from torch.quantization import DeQuantStub, QuantStub  # expect: QL505

DEFAULT_CFG = SimpleNamespace(lr=1e-3, weight_decay=1e-4, epochs=3, freeze_bn_epoch=1, observer_epoch=2, backend="x86")


class CalibNet(nn.Module):
    def __init__(self, num_classes: int = 4):
        super().__init__()
        self.quant = QuantStub()
        self.conv = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(8)
        self.relu = nn.ReLU()
        self.fc = nn.Linear(8, num_classes)
        self.dequant = DeQuantStub()

    def forward(self, x):
        x = self.relu(self.bn(self.conv(self.quant(x))))
        return self.dequant(self.fc(x.mean((2, 3))))

    def fuse_model(self, is_qat: bool = False):
        (fuse_modules_qat if is_qat else fuse_modules)(self, [["conv", "bn", "relu"]], inplace=True)


def build_optimizer(model: nn.Module, cfg=DEFAULT_CFG) -> torch.optim.Optimizer:
    return torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=0.9, weight_decay=cfg.weight_decay)


def build_scheduler(optimizer: torch.optim.Optimizer, cfg=DEFAULT_CFG):
    return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=cfg.epochs)


def train_epoch(model, batches, optimizer):
    model.train()
    for images, targets in batches:
        loss = F.cross_entropy(model(images), targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def calibrate(model, batches, num_batches: int = 2):
    with torch.no_grad():
        for i, (images, _) in enumerate(batches):
            if i >= num_batches:
                break
            model(images)


def post_training_quantize(float_model, batches, cfg=DEFAULT_CFG):
    model = copy.deepcopy(float_model).to("cpu").eval()
    model.fuse_model()
    model.qconfig = tq.get_default_qconfig(cfg.backend)
    torch.backends.quantized.engine = cfg.backend
    tq.prepare(model, inplace=True)
    calibrate(model, batches)
    return tq.convert(model)


def qat_finetune(float_model, batches, cfg=DEFAULT_CFG):
    model = copy.deepcopy(float_model)
    optimizer = build_optimizer(model, cfg)  # in-place prepare_qat, default qconfig: no new parameter
    scheduler = build_scheduler(optimizer, cfg)
    model.train()
    model.fuse_model(is_qat=True)
    model.qconfig = tq.get_default_qat_qconfig(cfg.backend)
    tq.prepare_qat(model, inplace=True)
    for epoch in range(cfg.epochs):
        train_epoch(model, batches, optimizer)
        scheduler.step()
        if epoch >= cfg.freeze_bn_epoch:
            model.apply(nniqat.freeze_bn_stats)
        if epoch >= cfg.observer_epoch:
            model.apply(tq.disable_observer)
    return tq.convert(model.eval())


def warmup_then_qat(float_model, batches, cfg=DEFAULT_CFG):
    warmup_optimizer = build_optimizer(float_model, cfg)
    train_epoch(float_model, batches, warmup_optimizer)
    model = copy.deepcopy(float_model).train()
    model.fuse_model(is_qat=True)
    model.qconfig = tq.get_default_qat_qconfig(cfg.backend)
    model = tq.prepare_qat(model)
    optimizer = build_optimizer(model, cfg)
    for epoch in range(cfg.epochs):
        train_epoch(model, batches, optimizer)
        if epoch >= cfg.observer_epoch:
            model.apply(torch.quantization.disable_observer)  # expect: QL505
    return tq.convert(copy.deepcopy(model).eval())


def qat_on_device(model, batches, device="cpu", cfg=DEFAULT_CFG):
    model = model.to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr)  # in-place prepare_qat keeps them
    model.qconfig = tq.get_default_qat_qconfig(cfg.backend)
    tq.prepare_qat(model.train(), inplace=True)
    train_epoch(model, batches, optimizer)
    return model


def two_stage_finetune(model, batches, cfg=DEFAULT_CFG):
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr)
    train_epoch(model, batches, optimizer)
    model.fuse_model(is_qat=True)
    model.qconfig = tq.get_default_qat_qconfig(cfg.backend)
    tq.prepare_qat(model.to("cpu").train(), inplace=True)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr / 10)
    train_epoch(model, batches, optimizer)
    return model


def qat_from_eval_copy(float_model, batches, cfg=DEFAULT_CFG):
    qat_model = copy.deepcopy(float_model).eval()
    fuse_modules(qat_model, [["conv", "bn", "relu"]], inplace=True)  # expect: QL602
    qat_model.qconfig = tq.get_default_qat_qconfig(cfg.backend)
    qat_model = tq.prepare_qat(qat_model.train())
    train_epoch(qat_model, batches, build_optimizer(qat_model, cfg))
    return qat_model


def compare_ptq_and_qat(float_model, batches, cfg=DEFAULT_CFG):
    ptq_model = copy.deepcopy(float_model).eval()
    fuse_modules(ptq_model, [["conv", "bn", "relu"]], inplace=True)
    ptq_model.qconfig = tq.get_default_qconfig(cfg.backend)
    calibrate(tq.prepare(ptq_model, inplace=True), batches)
    qat_model = copy.deepcopy(float_model).train()
    fuse_modules_qat(qat_model, [["conv", "bn", "relu"]], inplace=True)
    assert isinstance(qat_model.conv, torch.nn.intrinsic.ConvBnReLU2d)  # expect: QL505
    qat_model.qconfig = tq.get_default_qat_qconfig(cfg.backend)
    tq.prepare_qat(qat_model, inplace=True)
    train_epoch(qat_model, batches, build_optimizer(qat_model, cfg))
    return tq.convert(ptq_model), tq.convert(qat_model.eval())


def export(qmodel, example, path):
    scripted = torch.jit.trace(qmodel.eval(), example)
    torch.jit.save(scripted, path)
    logging.getLogger(__name__).info("saved %s without torch.quantization or torch.nn.quantized", path)
