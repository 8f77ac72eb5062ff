"""Lightning-style QAT: a module with step hooks and configure_optimizers, a callback that prepares the
network when fitting starts and freezes observers and BatchNorm later, an EMA copy, and launchers."""
import copy
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Tuple

import torch
import torch.ao.quantization as tq
import torch.nn as nn
import torch.nn.functional as F
from torch import Tensor

@dataclass
class QATConfig:
    backend: str = "x86"
    lr: float = 1e-3
    weight_decay: float = 0.05
    max_epochs: int = 3
    freeze_observer_epoch: int = 1
    freeze_bn_epoch: int = 2
    ema_decay: float = 0.99


class ConvNet(nn.Module):
    def __init__(self, num_classes: int = 4, width: int = 8) -> None:
        super().__init__()
        self.quant = tq.QuantStub()
        self.conv = nn.Conv2d(3, width, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(width)
        self.relu = nn.ReLU()
        self.fc = nn.Linear(width, num_classes)
        self.dequant = tq.DeQuantStub()

    def forward(self, x: Tensor) -> Tensor:
        x = self.relu(self.bn(self.conv(self.quant(x))))
        return self.dequant(self.fc(x.mean((2, 3))))

    def fuse_model(self, is_qat: bool = True) -> None:
        (tq.fuse_modules_qat if is_qat else tq.fuse_modules)(self, [["conv", "bn", "relu"]], inplace=True)


class ModelEma(nn.Module):
    """timm ModelEmaV2: a frozen copy updated from the live weights after every optimizer step."""

    def __init__(self, model: nn.Module, decay: float = 0.999) -> None:
        super().__init__()
        self.module = copy.deepcopy(model).eval()
        self.decay = decay

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        for ema_p, model_p in zip(self.module.parameters(), model.parameters()):
            ema_p.mul_(self.decay).add_(model_p, alpha=1.0 - self.decay)
        for ema_b, model_b in zip(self.module.buffers(), model.buffers()):
            ema_b.data = model_b.detach().clone()

    def forward(self, *args: Any, **kwargs: Any) -> Tensor:
        return self.module(*args, **kwargs)


class LitQATClassifier(nn.Module):
    """Mirrors a LightningModule: the trainer calls the step hooks; forward is inference only."""

    def __init__(self, cfg: QATConfig, model: Optional[ConvNet] = None) -> None:
        super().__init__()
        self.cfg = cfg
        self.model = model if model is not None else ConvNet()
        self.current_epoch = 0

    def forward(self, x: Tensor) -> Tensor:
        return self.model(x)

    def training_step(self, batch: Tuple[Tensor, Tensor], batch_idx: int) -> Dict[str, Tensor]:
        images, targets = batch
        logits = self(images)
        return {"loss": F.cross_entropy(logits, targets, label_smoothing=0.1), "acc": (logits.argmax(-1) == targets).float().mean()}

    def configure_optimizers(self) -> Tuple[List[torch.optim.Optimizer], List[Any]]:
        decay = [p for p in self.model.parameters() if p.ndim > 1]
        no_decay = [p for p in self.model.parameters() if p.ndim <= 1]
        optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": self.cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}], lr=self.cfg.lr)
        return [optimizer], [torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=self.cfg.max_epochs)]


class QATCallback:
    def __init__(self, cfg: QATConfig) -> None:
        self.cfg = cfg

    def on_fit_start(self, pl_module: LitQATClassifier) -> None:
        net = pl_module.model.train()
        net.fuse_model(is_qat=True)
        net.qconfig = tq.get_default_qat_qconfig(self.cfg.backend)
        tq.prepare_qat(net, inplace=True)

    def on_train_epoch_start(self, pl_module: LitQATClassifier) -> None:
        if pl_module.current_epoch >= self.cfg.freeze_observer_epoch:
            pl_module.model.apply(tq.disable_observer)
        if pl_module.current_epoch >= self.cfg.freeze_bn_epoch:
            pl_module.model.apply(torch.ao.nn.intrinsic.qat.freeze_bn_stats)


def fit(lit: LitQATClassifier, batches: List[Tuple[Tensor, Tensor]], callback: QATCallback) -> Tuple[LitQATClassifier, ModelEma]:
    callback.on_fit_start(lit)
    (optimizer,), (scheduler,) = lit.configure_optimizers()
    ema = ModelEma(lit.model, lit.cfg.ema_decay)
    for epoch in range(lit.cfg.max_epochs):
        lit.current_epoch = epoch
        callback.on_train_epoch_start(lit)
        lit.train()
        for batch_idx, batch in enumerate(batches):
            loss = lit.training_step(batch, batch_idx)["loss"]
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            ema.update(lit.model)
        scheduler.step()
    return lit, ema


def finetune_from_float(cfg: QATConfig, float_net: ConvNet, batches: List[Tuple[Tensor, Tensor]]) -> Tuple[nn.Module, nn.Module]:
    float_optimizer = torch.optim.SGD(float_net.parameters(), lr=cfg.lr, momentum=0.9)
    qat_net = copy.deepcopy(float_net).train()
    optimizer = torch.optim.SGD(qat_net.parameters(), lr=cfg.lr / 10, momentum=0.9)  # in-place prepare_qat keeps them
    tq.fuse_modules_qat(qat_net, [["conv", "bn", "relu"]], inplace=True)
    qat_net.qconfig = tq.get_default_qat_qconfig(cfg.backend)
    tq.prepare_qat(qat_net, inplace=True)
    for images, targets in batches:
        for net, opt in ((float_net, float_optimizer), (qat_net, optimizer)):
            opt.zero_grad()
            F.cross_entropy(net(images), targets).backward()
            opt.step()
    return float_net, tq.convert(qat_net.eval())


def qat_from_deployed(cfg: QATConfig, net: ConvNet, batches: List[Tuple[Tensor, Tensor]]) -> nn.Module:
    tq.fuse_modules(net.eval(), [["conv", "bn", "relu"]], inplace=True)  # expect: QL602
    net.qconfig = tq.get_default_qat_qconfig(cfg.backend)
    tq.prepare_qat(net.train(), inplace=True)
    lit = LitQATClassifier(cfg, net)
    (optimizer,), _ = lit.configure_optimizers()
    for batch_idx, batch in enumerate(batches):
        loss = lit.training_step(batch, batch_idx)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return tq.convert(net.eval())


def count_qat_convs(model: nn.Module) -> int:
    return sum(isinstance(m, torch.nn.intrinsic.qat.ConvBnReLU2d) for m in model.modules())  # expect: QL505
