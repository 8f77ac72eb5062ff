"""QAT, PTQ and mutual-learning scripts around a small model: the flow of
torch.quantization.quantize_qat, with deepcopy, schedulers and param groups."""
import copy

import torch
import torch.ao.quantization as tq
import torch.nn as nn
import torch.nn.functional as F
from torch.ao.quantization import (
    DeQuantStub, QuantStub, convert, fuse_modules, fuse_modules_qat,
    get_default_qat_qconfig, get_default_qconfig, prepare, prepare_qat,
)
from torch.nn.intrinsic import ConvBnReLU2d  # expect: QL505


class SmallNet(nn.Module):
    def __init__(self, num_classes: int = 4):
        super().__init__()
        self.quant = QuantStub()
        self.conv = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(8)
        self.relu = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, num_classes)
        self.dequant = DeQuantStub()

    def forward(self, x):
        x = self.pool(self.relu(self.bn(self.conv(self.quant(x)))))
        return self.dequant(self.fc(torch.flatten(x, 1)))

    def fuse_model(self, is_qat: bool = False):
        fuse = fuse_modules_qat if is_qat else fuse_modules
        fuse(self, [["conv", "bn", "relu"]], inplace=True)


def train_one_epoch(model, loader, optimizer, scheduler=None):
    model.train()
    total, count = 0.0, 0
    for images, targets in loader:
        loss = F.cross_entropy(model(images), targets)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        total += loss.item() * images.size(0)
        count += images.size(0)
    if scheduler is not None:
        scheduler.step()
    return total / max(count, 1)


@torch.no_grad()
def evaluate(model, loader):
    model.eval()
    correct = total = 0
    for images, targets in loader:
        correct += (model(images).argmax(1) == targets).sum().item()
        total += targets.numel()
    return correct / max(total, 1)


def qat_from_pretrained(float_model, loader, epochs=2):
    qat_model = copy.deepcopy(float_model)
    # in place, default QAT qconfig: prepare_qat creates no parameter, the optimizer holds them all
    optimizer = torch.optim.SGD(qat_model.parameters(), lr=1e-3, momentum=0.9)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.1)
    qat_model.train()
    qat_model.fuse_model(is_qat=True)
    qat_model.qconfig = get_default_qat_qconfig("x86")
    prepare_qat(qat_model, inplace=True)
    for _ in range(epochs):
        train_one_epoch(qat_model, loader, optimizer, scheduler)
    qat_model.eval()
    return convert(qat_model)


def warmup_then_qat(model, loader, qat_epochs=3):
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    train_one_epoch(model, loader, optimizer)
    model.train()
    fuse_modules_qat(model, [["conv", "bn", "relu"]], inplace=True)
    assert any(isinstance(m, ConvBnReLU2d) for m in model.modules())
    model.qconfig = tq.get_default_qat_qconfig("qnnpack")
    model = prepare_qat(model)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-4)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=qat_epochs)
    for epoch in range(qat_epochs):
        train_one_epoch(model, loader, optimizer, scheduler)
        if epoch >= 1:
            model.apply(tq.disable_observer)
        if epoch >= 2:
            model.apply(torch.nn.intrinsic.qat.freeze_bn_stats)  # expect: QL505
    return convert(copy.deepcopy(model).eval())


def qat_with_param_groups(model, loader):
    optimizer = torch.optim.SGD(  # in-place prepare_qat below keeps these parameters
        [{"params": model.conv.parameters(), "lr": 1e-4}, {"params": model.fc.parameters()}],
        lr=1e-3,
        momentum=0.9,
    )
    model.qconfig = get_default_qat_qconfig("x86")
    prepare_qat(model.train(), inplace=True)
    train_one_epoch(model, loader, optimizer)
    return convert(model.eval(), inplace=True)


def qat_after_eval_fusion(model, loader):
    model.eval()
    fuse_modules(model, ["conv", "bn", "relu"], inplace=True)  # expect: QL602
    model.qconfig = get_default_qat_qconfig("x86")
    qat_model = prepare_qat(model.train())
    optimizer = torch.optim.SGD(qat_model.parameters(), lr=1e-3)
    train_one_epoch(qat_model, loader, optimizer)
    return convert(qat_model.eval())


def post_training_quantize(float_model, calibration_batches, backend="x86"):
    model = copy.deepcopy(float_model).eval()
    fuse_modules(model, [["conv", "bn", "relu"]], inplace=True)
    model.qconfig = get_default_qconfig(backend)
    torch.backends.quantized.engine = backend
    prepare(model, inplace=True)
    with torch.no_grad():
        for batch in calibration_batches:
            model(batch)
    return convert(model, inplace=False)


def mutual_learning_qat(student, teacher, loader, temperature=4.0):
    teacher_optimizer = torch.optim.SGD(teacher.parameters(), lr=1e-4)
    student.fuse_model(is_qat=True)
    student.qconfig = get_default_qat_qconfig("x86")
    prepare_qat(student.train(), inplace=True)
    optimizer = torch.optim.SGD(student.parameters(), lr=1e-3)
    teacher.train()
    for images, targets in loader:
        t_logits, s_logits = teacher(images), student(images)
        soft = F.softmax(t_logits.detach() / temperature, dim=-1)
        kd = F.kl_div(F.log_softmax(s_logits / temperature, dim=-1), soft, reduction="batchmean") * temperature ** 2
        loss = kd + F.cross_entropy(s_logits, targets) + F.cross_entropy(t_logits, targets)
        for opt in (optimizer, teacher_optimizer):
            opt.zero_grad()
        loss.backward()
        for opt in (optimizer, teacher_optimizer):
            opt.step()
    return torch.quantization.convert(student.eval())  # expect: QL505


def dynamic_quantize(model):
    return torch.quantization.quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8)  # expect: QL505
