"""QAT driver: optimizers built by helpers, a lambda and functools.partial, model copies,
observer / fake-quant toggles and BN freezing on a schedule, and the legacy
torch.quantization names used next to the torch.ao ones."""
import copy
import functools

import torch
import torch.ao.quantization as aoq
import torch.nn as nn
import torch.nn.functional as F
import torch.quantization as tq  # expect: QL505
from torch.ao.nn.intrinsic import qat as nniqat
from torch.nn.intrinsic.qat import update_bn_stats  # expect: QL505

make_sgd = lambda model, lr=0.01: torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)  # noqa: E731
AdamW = functools.partial(torch.optim.AdamW, lr=1e-3, weight_decay=0.05)


class Net(nn.Module):
    def __init__(self, num_classes: int = 4):
        super().__init__()
        self.quant = aoq.QuantStub()
        self.conv = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(8)
        self.relu = nn.ReLU()
        self.fc = nn.Linear(8, num_classes)
        self.dequant = tq.DeQuantStub()

    def forward(self, x):
        x = self.relu(self.bn(self.conv(self.quant(x))))
        return self.dequant(self.fc(x.mean((2, 3))))


def param_groups(model: nn.Module, weight_decay: float = 1e-4):
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if p.ndim <= 1 or name.endswith(".bias") else decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def train_steps(model, batches, optimizer):
    model.train()
    for images, targets in batches:
        optimizer.zero_grad()
        F.cross_entropy(model(images), targets).backward()
        optimizer.step()


def prepare_for_qat(model, backend: str = "x86"):
    model.train()
    model.qconfig = aoq.get_default_qat_qconfig(backend)
    return aoq.prepare_qat(model)


def qat_with_lambda_optimizer(model, batches):
    optimizer = make_sgd(model)  # in place, default QAT qconfig: no new parameter
    model.qconfig = aoq.get_default_qat_qconfig("x86")
    aoq.prepare_qat(model.train(), inplace=True)
    train_steps(model, batches, optimizer)
    return aoq.convert(model.eval())


def qat_with_param_groups(model, batches):
    optimizer = AdamW(param_groups(model))  # in place, default QAT qconfig: no new parameter
    model.qconfig = tq.get_default_qat_qconfig("x86")
    tq.prepare_qat(model.train(), inplace=True)
    train_steps(model, batches, optimizer)
    return model


def qat_on_returned_copy(model, batches):
    optimizer = torch.optim.SGD(filter(lambda p: p.requires_grad, model.parameters()), lr=1e-3)  # expect: QL601
    model.qconfig = aoq.get_default_qat_qconfig("x86")
    qat_model = aoq.prepare_qat(model.train())
    train_steps(qat_model, batches, optimizer)
    return qat_model


def finetune_through_helper(model, batches):
    optimizer = make_sgd(model, lr=1e-4)  # expect: QL601
    model = prepare_for_qat(model)
    train_steps(model, batches, optimizer)
    return model


def quantize_with_run_fn(model, batches):
    # quantize_qat prepares a deep copy and trains it with this optimizer: prepare_qat runs inside torch.
    optimizer = make_sgd(model)  # allow: QL601
    model.qconfig = aoq.get_default_qat_qconfig("x86")
    return aoq.quantize_qat(model, train_steps, [batches, optimizer])


def warmup_copy_then_qat(float_model, batches):
    warmup = AdamW(float_model.parameters())
    train_steps(float_model, batches, warmup)
    qat_model = prepare_for_qat(copy.deepcopy(float_model))
    train_steps(qat_model, batches, make_sgd(qat_model, lr=1e-4))
    return qat_model


def qat_schedule(model, batches, epochs: int = 4, observer_off_epoch: int = 2, bn_freeze_epoch: int = 3):
    model.train()
    aoq.fuse_modules_qat(model, [["conv", "bn", "relu"]], inplace=True)
    model.qconfig = aoq.get_default_qat_qconfig("x86")
    aoq.prepare_qat(model, inplace=True)
    optimizer = AdamW(param_groups(model))
    model.apply(aoq.disable_fake_quant)
    for epoch in range(epochs):
        if epoch == 1:
            model.apply(aoq.enable_fake_quant)
        if epoch >= observer_off_epoch:
            model.apply(tq.disable_observer)
        model.apply(nniqat.freeze_bn_stats if epoch >= bn_freeze_epoch else update_bn_stats)
        train_steps(model, batches, optimizer)
    return aoq.convert(copy.deepcopy(model).eval())


def qat_after_legacy_eval_fusion(model, batches):
    model.eval()
    torch.quantization.fuse_modules(model, [["conv", "bn", "relu"]], inplace=True)  # expect: QL505, QL602
    model.qconfig = aoq.get_default_qat_qconfig("x86")
    model = aoq.prepare_qat(model.train())
    train_steps(model, batches, make_sgd(model))
    return model


def qat_after_alias_eval_fusion(model, batches):
    tq.fuse_modules(model.eval(), [["conv", "bn", "relu"]], inplace=True)  # expect: QL602
    model.qconfig = tq.get_default_qat_qconfig("qnnpack")
    tq.prepare_qat(model.train(), inplace=True)
    train_steps(model, batches, AdamW(model.parameters()))
    return model


def post_training(float_model, batches):
    model = copy.deepcopy(float_model).eval()
    aoq.fuse_modules(model, [["conv", "bn", "relu"]], inplace=True)
    model.qconfig = aoq.get_default_qconfig("x86")
    aoq.prepare(model, inplace=True)
    with torch.no_grad():
        for images, _ in batches:
            model(images)
    return torch.ao.quantization.convert(model)


def observers_frozen(model) -> bool:
    fake_quants = [m for m in model.modules() if isinstance(m, (torch.quantization.FakeQuantize, aoq.FusedMovingAvgObsFakeQuantize))]  # expect: QL505
    return all(not bool(m.observer_enabled) for m in fake_quants)
