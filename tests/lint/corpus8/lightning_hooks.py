"""Lightning-style quantization modules: the model is built in configure_model, the optimizer in
configure_optimizers, QAT switched on in a later epoch hook, and PTQ calibrated in test_step and
converted in on_test_end. A small loop at the bottom calls the hooks in Lightning's order
(configure_model, setup, configure_optimizers, on_fit_start, epochs, on_fit_end)."""
import copy

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


class ConvNet(nn.Module):
    def __init__(self, num_classes=4, width=8):
        super().__init__()
        self.quant = QuantStub()
        self.conv = nn.Conv2d(3, width, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(width)
        self.relu = nn.ReLU()
        self.fc = nn.Linear(width, num_classes)
        self.dequant = DeQuantStub()

    def forward(self, x):
        x = self.relu(self.bn(self.conv(self.quant(x))))
        return self.dequant(self.fc(x.mean((2, 3))))

    def fuse_model(self, is_qat=False):
        fuse = fuse_modules_qat if is_qat else fuse_modules
        fuse(self, [["conv", "bn", "relu"]], inplace=True)


class QuantLightningModule(nn.Module):
    """Stands in for pl.LightningModule: the loop below calls its hooks."""

    def __init__(self, num_classes=4, lr=1e-3, backend="x86", qat_start_epoch=1):
        super().__init__()
        self.num_classes, self.lr, self.backend = num_classes, lr, backend
        self.qat_start_epoch = qat_start_epoch
        self.current_epoch = 0
        self.net = None

    def forward(self, x):
        return self.net(x)

    def training_step(self, batch, batch_idx):
        images, labels = batch
        return F.cross_entropy(self(images), labels)

    def configure_optimizers(self):
        optimizer = torch.optim.AdamW(self.parameters(), lr=self.lr, weight_decay=0.01)
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=3)
        return [optimizer], [scheduler]


class LitQAT(QuantLightningModule):
    def configure_model(self):
        net = ConvNet(self.num_classes)
        net.train()
        net.fuse_model(is_qat=True)
        net.qconfig = get_default_qconfig(self.backend)
        self.net = prepare_qat(net)  # expect: QL604

    def on_fit_end(self):
        self.int8 = convert(copy.deepcopy(self.net).eval())


class LitFloatThenQAT(QuantLightningModule):
    def configure_model(self):
        self.net = ConvNet(self.num_classes)

    def on_train_epoch_start(self):
        if self.current_epoch == self.qat_start_epoch:
            self.net.train()
            self.net.fuse_model(is_qat=True)
            self.net.qconfig = get_default_qat_qconfig(self.backend)
            prepare_qat(self.net, inplace=True)
        elif self.current_epoch > self.qat_start_epoch:
            self.net.apply(disable_observer)

    def on_fit_end(self):
        self.int8 = convert(copy.deepcopy(self.net).eval())


class LitPTQ(QuantLightningModule):
    def configure_model(self):
        net = ConvNet(self.num_classes)
        net.eval()
        net.fuse_model()
        net.qconfig = get_default_qconfig(self.backend)
        self.net = prepare(net)

    def test_step(self, batch, batch_idx):
        self.net(batch[0])

    def on_test_end(self):
        self.int8 = convert(self.net)


class LitDeploy(QuantLightningModule):
    def configure_model(self):
        net = ConvNet(self.num_classes)
        net.fuse_model()  # expect: QL603
        net.qconfig = get_default_qconfig(self.backend)
        self.net = prepare(net.eval())

    def test_step(self, batch, batch_idx):
        self.net(batch[0])

    def on_test_end(self):
        self.int8 = convert(self.net)


def call_hook(module, name, *args):
    hook = getattr(module, name, None)
    return hook(*args) if hook is not None else None


def fit(module, batches, max_epochs=3):
    call_hook(module, "configure_model")
    call_hook(module, "setup", "fit")
    optimizers, schedulers = module.configure_optimizers()
    call_hook(module, "on_fit_start")
    for epoch in range(max_epochs):
        module.current_epoch = epoch
        module.train()
        call_hook(module, "on_train_epoch_start")
        for batch_idx, batch in enumerate(batches):
            loss = module.training_step(batch, batch_idx)
            optimizers[0].zero_grad()
            loss.backward()
            optimizers[0].step()
        schedulers[0].step()
    call_hook(module, "on_fit_end")
    return module


def test(module, batches):
    call_hook(module, "configure_model")
    module.eval()
    with torch.no_grad():
        for batch_idx, batch in enumerate(batches):
            module.test_step(batch, batch_idx)
    call_hook(module, "on_test_end")
    return module


def cli_main(stage="fit"):
    batches = [(torch.randn(4, 3, 8, 8), torch.randint(0, 4, (4,))) for _ in range(3)]
    if stage == "fit":
        return fit(LitFloatThenQAT(), batches), fit(LitQAT(), batches)
    return test(LitPTQ(), batches), test(LitDeploy(), batches)
