"""Where the optimizer is built relative to prepare_qat: on a copy (prepare_qat's default,
inplace=False, deepcopy), with learnable fake-quant (LSQ) qconfigs whose scale and zero_point
are new parameters, in param groups, on a wrapper, for a distillation teacher, and rebuilt."""
import copy

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.ao.quantization import (
    DeQuantStub,
    MovingAverageMinMaxObserver,
    QConfig,
    QuantStub,
    QuantWrapper,
    convert,
    default_weight_fake_quant,
    fuse_modules_qat,
    get_default_qat_qconfig,
    prepare_qat,
)
from torch.ao.quantization._learnable_fake_quantize import _LearnableFakeQuantize as LearnableFakeQuantize

LSQ_QCONFIG = QConfig(
    activation=LearnableFakeQuantize.with_args(
        observer=MovingAverageMinMaxObserver, quant_min=0, quant_max=255, dtype=torch.quint8,
        qscheme=torch.per_tensor_affine, scale=0.1, zero_point=0.0, use_grad_scaling=True),
    weight=LearnableFakeQuantize.with_args(
        observer=MovingAverageMinMaxObserver, quant_min=-128, quant_max=127, dtype=torch.qint8,
        qscheme=torch.per_tensor_symmetric, scale=0.1, zero_point=0.0, use_grad_scaling=True),
)


class SmallNet(nn.Module):
    def __init__(self, num_classes=4):
        super().__init__()
        self.quant = QuantStub()
        self.features = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1, bias=False), nn.BatchNorm2d(8), nn.ReLU())
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, num_classes)
        self.dequant = DeQuantStub()

    def forward(self, x):
        x = self.pool(self.features(self.quant(x)))
        return self.dequant(self.fc(torch.flatten(x, 1)))

    def fuse_model(self, is_qat=False):
        fuse_modules_qat(self.features, ["0", "1", "2"], inplace=True)


def batches(steps=3):
    return [(torch.randn(4, 3, 8, 8), torch.randint(0, 4, (4,))) for _ in range(steps)]


def train_one_epoch(model, data, optimizer):
    model.train()
    for images, labels in data:
        loss = F.cross_entropy(model(images), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def qat_on_returned_copy():
    model = SmallNet()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)  # expect: QL601
    model.fuse_model(is_qat=True)
    model.qconfig = get_default_qat_qconfig("x86")
    qat_model = prepare_qat(model)
    train_one_epoch(qat_model, batches(), optimizer)
    return convert(qat_model.eval())


def qat_on_deepcopy():
    model = SmallNet()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)  # expect: QL601
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1)
    qat_model = copy.deepcopy(model)
    qat_model.fuse_model(is_qat=True)
    qat_model.qconfig = get_default_qat_qconfig("qnnpack")
    prepare_qat(qat_model, inplace=True)
    for _ in range(2):
        train_one_epoch(qat_model, batches(), optimizer)
        scheduler.step()
    return convert(qat_model.eval())


def lsq_qat():
    model = SmallNet()
    model.fuse_model(is_qat=True)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)  # expect: QL601
    model.qconfig = LSQ_QCONFIG
    prepare_qat(model, inplace=True)
    train_one_epoch(model, batches(), optimizer)
    return model


def param_groups_then_copy():
    model = SmallNet()
    optimizer = torch.optim.SGD(  # expect: QL601
        [{"params": model.features.parameters(), "lr": 1e-3}, {"params": model.fc.parameters()}],
        lr=1e-2,
        momentum=0.9,
    )
    model.qconfig = get_default_qat_qconfig("x86")
    model = prepare_qat(model, inplace=False)
    train_one_epoch(model, batches(), optimizer)
    return model


def lsq_activations_only(device="cpu"):
    model = SmallNet().to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.01)  # expect: QL601
    model.fuse_model(is_qat=True)
    model.qconfig = QConfig(activation=LSQ_QCONFIG.activation, weight=default_weight_fake_quant)
    prepare_qat(model, inplace=True)
    train_one_epoch(model, batches(), optimizer)
    return model


def qat_rebuilt_optimizer():
    model = SmallNet()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    train_one_epoch(model, batches(), optimizer)
    model.fuse_model(is_qat=True)
    model.qconfig = get_default_qat_qconfig("x86")
    qat_model = prepare_qat(model)
    optimizer = torch.optim.SGD(qat_model.parameters(), lr=0.005)
    train_one_epoch(qat_model, batches(), optimizer)
    return convert(qat_model.eval())


def qat_in_place_default_qconfig():
    model = SmallNet()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    model.train()
    model.fuse_model(is_qat=True)
    model.qconfig = get_default_qat_qconfig("x86")
    prepare_qat(model, inplace=True)
    train_one_epoch(model, batches(), optimizer)
    return convert(model.eval())


def lsq_optimizer_after_prepare():
    model = SmallNet()
    model.fuse_model(is_qat=True)
    model.qconfig = LSQ_QCONFIG
    prepare_qat(model, inplace=True)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    train_one_epoch(model, batches(), optimizer)
    return model


def wrapper_prepared_in_place():
    model = SmallNet()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    wrapped = QuantWrapper(model)
    wrapped.qconfig = get_default_qat_qconfig("x86")
    prepare_qat(wrapped, inplace=True)
    train_one_epoch(wrapped, batches(), optimizer)
    return wrapped


def distill_into_quantized_student(temperature=2.0):
    teacher, student = SmallNet(), SmallNet()
    teacher_optimizer = torch.optim.SGD(teacher.parameters(), lr=1e-3)
    student.fuse_model(is_qat=True)
    student.qconfig = get_default_qat_qconfig("x86")
    qat_student = prepare_qat(student)
    student_optimizer = torch.optim.SGD(qat_student.parameters(), lr=1e-2)
    for images, labels in batches():
        t_logits, s_logits = teacher(images), qat_student(images)
        soft = F.softmax(t_logits.detach() / temperature, dim=-1)
        kd = F.kl_div(F.log_softmax(s_logits / temperature, dim=-1), soft, reduction="batchmean")
        loss = kd + F.cross_entropy(s_logits, labels) + F.cross_entropy(t_logits, labels)
        teacher_optimizer.zero_grad()
        student_optimizer.zero_grad()
        loss.backward()
        teacher_optimizer.step()
        student_optimizer.step()
    return qat_student
