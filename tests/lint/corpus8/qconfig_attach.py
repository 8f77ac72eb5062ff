"""Which qconfig reaches prepare / prepare_qat: PTQ qconfigs handed to prepare_qat (the default
observers, per-backend, hand-built QConfigs of plain observers), and qconfigs that never reach the
prepared model (set afterwards, kept in a variable, set on another instance or on the original
after a copy was taken)."""
import copy

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.ao.quantization import (
    DeQuantStub,
    FakeQuantize,
    MinMaxObserver,
    MovingAverageMinMaxObserver,
    PerChannelMinMaxObserver,
    QConfig,
    QuantStub,
    QuantWrapper,
    convert,
    default_per_channel_weight_fake_quant,
    fuse_modules,
    get_default_qat_qconfig,
    get_default_qconfig,
    prepare,
    prepare_qat,
)


class Classifier(nn.Module):
    def __init__(self, num_classes=3):
        super().__init__()
        self.quant = QuantStub()
        self.conv = nn.Conv2d(3, 6, 3, padding=1)
        self.relu = nn.ReLU()
        self.fc = nn.Linear(6, num_classes)
        self.dequant = DeQuantStub()

    def forward(self, x):
        x = self.relu(self.conv(self.quant(x))).mean((2, 3))
        return self.dequant(self.fc(x))


class Encoder(Classifier):
    def __init__(self, num_classes=3):
        super().__init__(num_classes)
        self.qconfig = get_default_qconfig("x86")


class Pipeline(nn.Module):
    def __init__(self):
        super().__init__()
        self.stem = nn.Conv2d(3, 3, 1)
        self.backbone = QuantWrapper(nn.Sequential(nn.Conv2d(3, 6, 3, padding=1), nn.ReLU()))
        self.head = nn.Linear(6, 3)

    def forward(self, x):
        return self.head(self.backbone(self.stem(x)).mean((2, 3)))


def calibrate(model, steps=3):
    with torch.no_grad():
        for _ in range(steps):
            model(torch.randn(4, 3, 8, 8))


def finetune(model, steps=2):
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    for _ in range(steps):
        loss = F.cross_entropy(model(torch.randn(4, 3, 8, 8)), torch.randint(0, 3, (4,)))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model


def ptq_forgot_qconfig():
    model = Classifier().eval()
    torch.backends.quantized.engine = "x86"
    prepared = prepare(model)  # expect: QL605
    calibrate(prepared)
    return convert(prepared)


def qconfig_after_prepare():
    model = Classifier().eval()
    prepare(model, inplace=True)  # expect: QL605
    model.qconfig = get_default_qconfig("x86")
    calibrate(model)
    return convert(model)


def qconfig_kept_in_a_variable(backend="x86"):
    model = Classifier().eval()
    qconfig = get_default_qconfig(backend)
    print("quantizing with", qconfig)
    prepared = prepare(model)  # expect: QL605
    calibrate(prepared)
    return convert(prepared)


def copy_taken_before_qconfig():
    model = Classifier().eval()
    int8_candidate = copy.deepcopy(model)
    model.qconfig = get_default_qconfig("x86")
    prepare(int8_candidate, inplace=True)  # expect: QL605
    calibrate(int8_candidate)
    return convert(int8_candidate)


def fused_copy_before_qconfig():
    model = Classifier().eval()
    fused = fuse_modules(model, [["conv", "relu"]])
    model.qconfig = get_default_qconfig("x86")
    prepared = prepare(fused)  # expect: QL605
    calibrate(prepared)
    return convert(prepared)


def student_without_qconfig():
    teacher, student = Classifier(), Classifier()
    teacher.qconfig = get_default_qat_qconfig("x86")
    qat_student = prepare_qat(student)  # expect: QL605
    return convert(finetune(qat_student).eval())


def qat_with_ptq_qconfig():
    model = Classifier()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    model.qconfig = get_default_qconfig("x86")
    prepare_qat(model, inplace=True)  # expect: QL604
    loss = F.cross_entropy(model(torch.randn(4, 3, 8, 8)), torch.randint(0, 3, (4,)))
    loss.backward()
    optimizer.step()
    return convert(model.eval())


def qat_with_default_qconfig():
    model = Classifier()
    model.qconfig = torch.ao.quantization.default_qconfig
    qat_model = prepare_qat(model)  # expect: QL604
    return convert(finetune(qat_model).eval())


def qat_with_observer_qconfig():
    model = Classifier().train()
    model.qconfig = QConfig(
        activation=MinMaxObserver.with_args(dtype=torch.quint8),
        weight=PerChannelMinMaxObserver.with_args(dtype=torch.qint8, qscheme=torch.per_channel_symmetric),
    )
    qat_model = prepare_qat(model)  # expect: QL604
    return convert(finetune(qat_model).eval())


def qat_backend_switch(backend="x86"):
    if backend == "qnnpack":
        qconfig = get_default_qconfig("qnnpack")
    else:
        qconfig = get_default_qconfig("x86")
    head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(6, 3))
    wrapped = QuantWrapper(nn.Sequential(nn.Conv2d(3, 6, 3), nn.ReLU(), head))
    wrapped.qconfig = qconfig
    prepare_qat(wrapped.train(), inplace=True)  # expect: QL604
    return finetune(wrapped)


def qat_with_fake_quant_qconfig():
    model = Classifier()
    model.qconfig = QConfig(
        activation=FakeQuantize.with_args(observer=MovingAverageMinMaxObserver, quant_min=0, quant_max=255),
        weight=default_per_channel_weight_fake_quant,
    )
    qat_model = prepare_qat(model)
    return convert(finetune(qat_model).eval())


def qat_or_observe(fake_quant, backend="x86"):
    model = Classifier()
    qconfig = get_default_qat_qconfig(backend) if fake_quant else get_default_qconfig(backend)
    model.qconfig = qconfig
    prepare_qat(model, inplace=True)
    return finetune(model)


def class_sets_qconfig():
    prepared = prepare(Encoder().eval())
    calibrate(prepared)
    return convert(prepared)


def quantize_backbone_only():
    model = Pipeline().eval()
    model.backbone.qconfig = get_default_qconfig("x86")
    prepare(model, inplace=True)
    calibrate(model)
    return convert(model)


def qconfig_on_every_module():
    model = Classifier().eval()
    qconfig = get_default_qconfig("x86")
    for module in model.modules():
        module.qconfig = qconfig
    prepared = prepare(model)
    calibrate(prepared)
    return convert(prepared)


def copy_taken_after_qconfig():
    model = Classifier().eval()
    model.qconfig = get_default_qconfig("x86")
    candidate = copy.deepcopy(model)
    prepare(candidate, inplace=True)
    calibrate(candidate)
    return convert(candidate)
