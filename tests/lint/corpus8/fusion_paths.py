"""Fusion on the way to QAT and PTQ: the model's own fuse_model(is_qat=False), the return value of
fuse_modules(..., inplace=False), a leimao-style wrapper class, QuantWrapper and deepcopy, and
the modes a model is in when it gets there (fresh, after training, frozen, train(False))."""
import copy

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.ao.quantization import (
    DeQuantStub,
    QuantStub,
    QuantWrapper,
    convert,
    fuse_modules,
    fuse_modules_qat,
    get_default_qat_qconfig,
    get_default_qconfig,
    prepare,
    prepare_qat,
)
from torch.utils.data import DataLoader, TensorDataset

GROUPS = [["conv1", "bn1", "relu1"], ["conv2", "bn2", "relu2"]]


class Backbone(nn.Module):
    def __init__(self, num_classes=5):
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(8)
        self.relu2 = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(8, num_classes)

    def forward(self, x):
        x = self.relu1(self.bn1(self.conv1(x)))
        x = self.relu2(self.bn2(self.conv2(x)))
        return self.fc(torch.flatten(self.pool(x), 1))


class StubbedNet(Backbone):
    def __init__(self, num_classes=5):
        super().__init__(num_classes)
        self.quant = QuantStub()
        self.dequant = DeQuantStub()

    def forward(self, x):
        return self.dequant(super().forward(self.quant(x)))

    def fuse_model(self, is_qat=False):
        fuse = fuse_modules_qat if is_qat else fuse_modules
        fuse(self, GROUPS, inplace=True)


class QuantizedModel(nn.Module):
    def __init__(self, model_fp32):
        super().__init__()
        self.quant = QuantStub()
        self.model_fp32 = model_fp32
        self.dequant = DeQuantStub()

    def forward(self, x):
        return self.dequant(self.model_fp32(self.quant(x)))


class MLP(nn.Module):
    def __init__(self):
        super().__init__()
        self.quant = QuantStub()
        self.fc1, self.relu1 = nn.Linear(192, 32), nn.ReLU()
        self.fc2, self.relu2 = nn.Linear(32, 32), nn.ReLU()
        self.head = nn.Linear(32, 5)
        self.dequant = DeQuantStub()

    def forward(self, x):
        x = self.relu2(self.fc2(self.relu1(self.fc1(self.quant(x.flatten(1))))))
        return self.dequant(self.head(x))


def make_loader(n=32, batch_size=8):
    return DataLoader(TensorDataset(torch.randn(n, 3, 8, 8), torch.randint(0, 5, (n,))), batch_size=batch_size)


def train_steps(model, loader, optimizer):
    model.train()
    for images, labels in loader:
        loss = F.cross_entropy(model(images), labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()


def run_qat(model, loader):
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    train_steps(model, loader, optimizer)
    model.eval()
    return convert(model)


def qat_after_deploy_fusion():
    model = StubbedNet()
    model.eval()
    model.fuse_model()  # expect: QL602
    model.train()
    model.qconfig = get_default_qat_qconfig("x86")
    prepare_qat(model, inplace=True)
    return run_qat(model, make_loader())


def leimao_style_qat():
    model = Backbone()
    model.eval()
    fused_model = fuse_modules(model, [["conv1", "bn1", "relu1"], ["conv2", "bn2"]], inplace=False)  # expect: QL602
    quantized_model = QuantizedModel(fused_model)
    quantized_model.qconfig = get_default_qat_qconfig("x86")
    quantized_model.train()
    prepare_qat(quantized_model, inplace=True)
    return run_qat(quantized_model, make_loader())


def quant_wrapper_qat():
    model = Backbone()
    fused = fuse_modules(copy.deepcopy(model).eval(), GROUPS)  # expect: QL602
    wrapped = QuantWrapper(fused)
    wrapped.qconfig = get_default_qat_qconfig("qnnpack")
    qat_model = prepare_qat(wrapped.train())
    return run_qat(qat_model, make_loader())


def ptq_and_qat_from_one_fused_model():
    model = StubbedNet()
    model.eval()
    model.fuse_model()  # expect: QL602
    ptq_model = copy.deepcopy(model)
    ptq_model.qconfig = get_default_qconfig("x86")
    prepare(ptq_model, inplace=True)
    for images, _ in make_loader():
        ptq_model(images)
    int8_ptq = convert(ptq_model)
    qat_model = copy.deepcopy(model).train()
    qat_model.qconfig = get_default_qat_qconfig("x86")
    prepare_qat(qat_model, inplace=True)
    return int8_ptq, run_qat(qat_model, make_loader())


def fuse_after_float_training():
    model = StubbedNet()
    loader = make_loader()
    train_steps(model, loader, torch.optim.SGD(model.parameters(), lr=0.01))
    model.fuse_model()  # expect: QL603
    model.qconfig = get_default_qconfig("x86")
    prepared = prepare(model.eval())
    for images, _ in loader:
        prepared(images)
    return convert(prepared)


def fuse_after_loading(state_dict_path):
    model = Backbone()
    model.load_state_dict(torch.load(state_dict_path))
    fused = fuse_modules(model, [["conv1", "bn1", "relu1"]])  # expect: QL603
    return fused.eval()


def fuse_frozen_backbone():
    model = StubbedNet()
    model.requires_grad_(False)
    with torch.no_grad():
        fuse_modules(model, GROUPS, inplace=True)  # expect: QL603
    return model


def fuse_inside_quant_wrapper():
    wrapped = QuantWrapper(Backbone())
    fuse_modules(wrapped, [["module.conv1", "module.bn1", "module.relu1"]], inplace=True)  # expect: QL603
    wrapped.eval()
    return wrapped


def qat_with_eval_fuser():
    model = StubbedNet()
    model.train()
    fuse_modules(model, GROUPS, inplace=True)  # expect: QL603; allow: QL602
    model.qconfig = get_default_qat_qconfig("x86")
    prepare_qat(model.train(), inplace=True)
    return run_qat(model, make_loader())


def qat_with_qat_fusion():
    model = StubbedNet()
    model.train()
    fuse_modules_qat(model, GROUPS, inplace=True)
    model.qconfig = get_default_qat_qconfig("x86")
    prepare_qat(model, inplace=True)
    return run_qat(model, make_loader())


def mlp_qat():
    model = MLP()
    fuse_modules(model, [["fc1", "relu1"], ["fc2", "relu2"]], inplace=True)
    model.qconfig = get_default_qat_qconfig("x86")
    qat_model = prepare_qat(model)
    return run_qat(qat_model, make_loader())


def deploy_ptq():
    model = StubbedNet()
    model.train(False)
    model.fuse_model()
    model.qconfig = get_default_qconfig("x86")
    prepare(model, inplace=True)
    for images, _ in make_loader():
        model(images)
    return convert(model)


def fuse_for(qat):
    model = StubbedNet()
    if qat:
        model.train()
    else:
        model.eval()
    model.fuse_model(is_qat=qat)
    return model
