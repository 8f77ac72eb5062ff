"""The script interpreter (qlint/semantic/pipeline.py) through the QL6xx rules: each snippet is
reported exactly on its labeled lines. Bad cases sit next to their good twins; the false
positive patterns found on real scripts are kept here as negatives."""
from __future__ import annotations

import pytest

from qlint.config import load_config
from qlint.engine import lint_paths, lint_source
from tests.lint.labels import labels, mismatches

HEADER = '''\
import argparse
import copy
import functools

import torch
import torch.nn as nn
import torch.ao.quantization as tq
from torch.ao.quantization import (
    DeQuantStub, QConfig, QuantStub, QuantWrapper, convert, fuse_modules, fuse_modules_qat,
    get_default_qat_qconfig, get_default_qconfig, prepare, prepare_qat)
from helpers import evaluate, load_checkpoint


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.quant = QuantStub()
        self.conv = nn.Conv2d(3, 8, 3)
        self.bn = nn.BatchNorm2d(8)
        self.relu = nn.ReLU()
        self.fc = nn.Linear(8, 4)
        self.fc_relu = nn.ReLU()
        self.dequant = DeQuantStub()

    def forward(self, x):
        x = self.relu(self.bn(self.conv(self.quant(x))))
        return self.dequant(self.fc_relu(self.fc(x.mean((2, 3)))))

    def fuse_model(self, is_qat=False):
        fuse = fuse_modules_qat if is_qat else fuse_modules
        fuse(self, [["conv", "bn", "relu"], ["fc", "fc_relu"]], inplace=True)


class ModeFusedNet(Net):
    def fuse_model(self):
        if self.training:
            fuse_modules_qat(self, [["conv", "bn", "relu"]], inplace=True)
        else:
            fuse_modules(self, [["conv", "bn", "relu"]], inplace=True)


def train(model, optimizer, batches):
    model.train()
    for images in batches:
        optimizer.zero_grad()
        model(images).sum().backward()
        optimizer.step()


def calibrate(model, batches, limit=4):
    model.eval()
    with torch.no_grad():
        for i, images in enumerate(batches):
            if i >= limit:
                break
            model(images)


'''

CASES = {
    # ----- QL601 ----------------------------------------------------------------------------
    "optimizer-of-a-deepcopy": '''
def qat(model, batches):
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)  # expect: QL601
    qat_model = copy.deepcopy(model)
    qat_model.qconfig = get_default_qat_qconfig("x86")
    prepare_qat(qat_model.train(), inplace=True)
    train(qat_model, optimizer, batches)
''',
    "optimizer-rebuilt-after-prepare": '''
def qat(model, batches):
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    train(model, optimizer, batches)
    model.qconfig = get_default_qat_qconfig("x86")
    model = prepare_qat(model.train())
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    train(model, optimizer, batches)
''',
    "optimizer-kept-by-in-place-prepare": '''
def qat(model, batches):
    optimizer = torch.optim.SGD([{"params": model.conv.parameters()}, {"params": model.fc.parameters()}])
    model.qconfig = get_default_qat_qconfig("x86")
    tq.prepare_qat(model.train(), inplace=True)
    train(model, optimizer, batches)
''',
    "optimizer-before-learnable-qconfig": '''
LEARNABLE = QConfig(
    activation=tq._learnable_fake_quantize._LearnableFakeQuantize.with_args(observer=tq.MovingAverageMinMaxObserver),
    weight=tq._learnable_fake_quantize._LearnableFakeQuantize.with_args(observer=tq.MovingAverageMinMaxObserver))


def qat(model, batches):
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)  # expect: QL601
    model.qconfig = LEARNABLE
    tq.prepare_qat(model.train(), inplace=True)
    train(model, optimizer, batches)
''',
    "optimizer-unknown-qconfig-in-place": '''
def qat(model, batches, qconfig):
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    model.qconfig = qconfig
    tq.prepare_qat(model.train(), inplace=True)
    train(model, optimizer, batches)
''',
    "two-models-side-by-side": '''
def mutual(float_model, batches):
    float_optimizer = torch.optim.SGD(float_model.parameters(), lr=0.1)
    qat_model = copy.deepcopy(float_model)
    qat_model.qconfig = get_default_qat_qconfig("x86")
    qat_model = prepare_qat(qat_model.train())
    qat_optimizer = torch.optim.SGD(qat_model.parameters(), lr=0.1)
    for images in batches:
        for model, optimizer in ((float_model, float_optimizer), (qat_model, qat_optimizer)):
            optimizer.zero_grad()
            model(images).sum().backward()
            optimizer.step()
''',
    "optimizer-returned-with-the-copy": '''
def setup(model):
    optimizer = torch.optim.Adam(model.parameters())  # expect: QL601
    model.qconfig = get_default_qat_qconfig("x86")
    model = prepare_qat(model.train())
    return model, optimizer
''',
    "optimizer-not-used-after-prepare": '''
def warmup_then_prepare(model, batches):
    optimizer = torch.optim.Adam(model.parameters())
    train(model, optimizer, batches)
    model.qconfig = get_default_qat_qconfig("x86")
    return prepare_qat(model.train())


def warmup_then_prepare_and_save(model, batches):
    optimizer = torch.optim.Adam(model.parameters())
    train(model, optimizer, batches)
    model.qconfig = get_default_qat_qconfig("x86")
    qat_model = prepare_qat(model.train())
    torch.save({"model": qat_model.state_dict(), "optimizer": optimizer.state_dict()}, "warmup.pt")
    print(optimizer)
    return qat_model
''',
    "optimizer-and-prepare-in-an-argparse-branch": '''
def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--qat", action="store_true")
    args = parser.parse_args()
    model = Net()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)  # a hazard on one arm only: unknown
    if args.qat:
        model.qconfig = get_default_qat_qconfig("x86")
        model = prepare_qat(model)
    train(model, optimizer, [torch.randn(2, 3, 8, 8)])


def main_qat_arm():
    parser = argparse.ArgumentParser()
    parser.add_argument("--qat", action="store_true")
    args = parser.parse_args()
    model = Net()
    if args.qat:
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)  # expect: QL601
        model.qconfig = get_default_qat_qconfig("x86")
        model = prepare_qat(model)
        train(model, optimizer, [torch.randn(2, 3, 8, 8)])
''',
    "optimizer-in-a-trainer-class": '''
class Trainer:
    def __init__(self, model, lr=0.1):
        self.model = model
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=lr)  # expect: QL601

    def fit(self, batches):
        self.model.qconfig = get_default_qat_qconfig("x86")
        self.model = prepare_qat(self.model.train())
        train(self.model, self.optimizer, batches)
''',
    "optimizer-in-a-trainer-with-stages": '''
class StagedTrainer:
    def __init__(self, model, lr):
        self.model = model
        self.optimizer = torch.optim.SGD(model.parameters(), lr=lr)  # expect: QL601

    def to_qat(self):
        self.qat_model = copy.deepcopy(self.model)
        self.qat_model.qconfig = get_default_qat_qconfig("x86")
        prepare_qat(self.qat_model.train(), inplace=True)

    def fit(self, batches):
        self.to_qat()
        train(self.qat_model, self.optimizer, batches)
''',
    "optimizer-in-a-trainer-class-after-prepare": '''
class Trainer:
    def __init__(self, model, lr=0.1):
        model.qconfig = get_default_qat_qconfig("x86")
        self.model = prepare_qat(model.train())
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=lr)

    def fit(self, batches):
        train(self.model, self.optimizer, batches)
''',
    "optimizer-through-partial-lambda-and-groups": '''
SGD = functools.partial(torch.optim.SGD, lr=0.1)
make_adam = lambda m: torch.optim.Adam(m.parameters())


def groups(model):
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        (no_decay if p.ndim <= 1 else decay).append(p)
    return [{"params": decay}, {"params": no_decay, "weight_decay": 0.0}]


def qat(model, batches):
    first = SGD(groups(model))  # expect: QL601
    second = make_adam(model)  # expect: QL601
    model.qconfig = get_default_qat_qconfig("x86")
    model = prepare_qat(model.train())
    train(model, first, batches)
    train(model, second, batches)
''',
    # ----- QL602 ----------------------------------------------------------------------------
    "eval-fusion-returned-then-qat": '''
def qat():
    model = Net().eval()
    fused = fuse_modules(model, [["conv", "bn", "relu"]])  # expect: QL602
    fused.qconfig = get_default_qat_qconfig("x86")
    return prepare_qat(fused.train())
''',
    "qat-fusion-then-qat": '''
def qat():
    model = Net()
    fused = fuse_modules_qat(model, [["conv", "bn", "relu"]])
    fused.qconfig = get_default_qat_qconfig("x86")
    return prepare_qat(fused)
''',
    "eval-fusion-result-discarded": '''
def qat():
    model = Net().eval()
    fuse_modules(model, [["conv", "bn", "relu"]])
    model.qconfig = get_default_qat_qconfig("x86")
    return prepare_qat(model.train())
''',
    "fuse-method-default-is-eval": '''
def qat():
    model = Net()
    model.eval()
    model.fuse_model()  # expect: QL602
    model.qconfig = get_default_qat_qconfig("x86")
    return prepare_qat(model.train())
''',
    "fuse-method-called-for-qat": '''
def qat():
    model = Net()
    model.fuse_model(is_qat=True)
    model.qconfig = get_default_qat_qconfig("x86")
    return prepare_qat(model)
''',
    "fuse-method-follows-the-mode": '''
def qat():
    model = ModeFusedNet()
    model.train()
    model.fuse_model()
    model.qconfig = get_default_qat_qconfig("x86")
    return prepare_qat(model)


def qat_after_eval():
    model = ModeFusedNet()
    model.eval()
    model.fuse_model()  # expect: QL602
    model.qconfig = get_default_qat_qconfig("x86")
    return prepare_qat(model.train())
''',
    "eval-fusion-reaches-qat-through-a-wrapper": '''
class Wrapped(nn.Module):
    def __init__(self, model_fp32):
        super().__init__()
        self.quant = QuantStub()
        self.model_fp32 = model_fp32
        self.dequant = DeQuantStub()

    def forward(self, x):
        return self.dequant(self.model_fp32(self.quant(x)))


def qat():
    model = Net().eval()
    fuse_modules(model, [["conv", "bn", "relu"]], inplace=True)  # expect: QL602
    wrapped = Wrapped(model_fp32=model)
    wrapped.qconfig = get_default_qat_qconfig("x86")
    return prepare_qat(wrapped.train())


def qat_quant_wrapper():
    model = Net().eval()
    fuse_modules(model, [["conv", "bn", "relu"]], inplace=True)  # expect: QL602
    wrapped = QuantWrapper(copy.deepcopy(model)).train()
    wrapped.qconfig = get_default_qat_qconfig("x86")
    return prepare_qat(wrapped)
''',
    "eval-fusion-without-batchnorm-then-qat": '''
def qat():
    model = Net().eval()
    fuse_modules(model, [["fc", "fc_relu"]], inplace=True)
    model.qconfig = get_default_qat_qconfig("x86")
    return prepare_qat(model.train())
''',
    "eval-fusion-then-ptq": '''
def ptq(batches):
    model = Net().eval()
    fuse_modules(model, [["conv", "bn", "relu"]], inplace=True)
    model.qconfig = get_default_qconfig("x86")
    prepare(model, inplace=True)
    calibrate(model, batches)
    return convert(model)
''',
    # ----- QL603 ----------------------------------------------------------------------------
    "fuse-a-new-model": '''
def fused():
    model = Net()
    return fuse_modules(model, [["conv", "bn", "relu"]])  # expect: QL603


def fused_in_eval():
    model = Net()
    model.eval()
    return fuse_modules(model, [["conv", "bn", "relu"]])


def fused_for_qat():
    return fuse_modules_qat(Net(), [["conv", "bn", "relu"]])


def fused_without_batchnorm():
    return fuse_modules(Net(), [["fc", "fc_relu"]])
''',
    "fuse-method-in-train-mode": '''
def prepare_model():
    model = Net()
    model.train()
    model.fuse_model()  # expect: QL603
    return model


def prepare_model_in_eval():
    model = Net()
    model.eval()
    model.fuse_model()
    return model
''',
    "fuse-a-copy-of-a-model-in-train-mode": '''
def fused(model):
    model.train()
    fused = copy.deepcopy(model)
    fuse_modules(fused, [["conv", "bn", "relu"]], inplace=True)  # expect: QL603, QL602
    fused.qconfig = get_default_qat_qconfig("x86")
    return prepare_qat(fused)
''',
    "fuse-a-model-of-unknown-mode": '''
def fused(model):
    return fuse_modules(model, [["conv", "bn", "relu"]])


def fused_after_evaluate(batches):
    model = Net()
    evaluate(model, batches)
    return fuse_modules(model, [["conv", "bn", "relu"]])


def fused_loaded():
    model = load_checkpoint("model.pt")
    return fuse_modules(model, [["conv", "bn", "relu"]])
''',
    "mode-and-fusion-follow-one-flag": '''
def prepare_model(args):
    model = Net()
    if args.qat:
        model.train()
    else:
        model.eval()
    model.fuse_model(is_qat=args.qat)
    return model


def prepare_model_inverted(qat: bool):
    model = Net()
    if not qat:
        model.eval()
    model.fuse_model(qat)
    return model
''',
    "module-level-script-fuses-in-train-mode": '''
model = Net()
model.load_state_dict(torch.load("float.pt"))
fused_model = copy.deepcopy(model)
fused_model.train()
fused_model = fuse_modules(fused_model, [["conv", "bn", "relu"]], inplace=True)  # expect: QL603, QL602
for name, module in fused_model.named_children():
    if "layer" in name:
        fuse_modules(module, [["conv", "bn", "relu"]], inplace=True)  # expect: QL603, QL602
fused_model.qconfig = get_default_qat_qconfig("x86")
prepare_qat(fused_model, inplace=True)
''',
    # ----- QL604 ----------------------------------------------------------------------------
    "ptq-qconfig-for-qat": '''
def qat(model):
    model.qconfig = get_default_qconfig("x86")
    return prepare_qat(model.train())  # expect: QL604


def qat_right(model):
    model.qconfig = get_default_qat_qconfig("x86")
    return prepare_qat(model.train())
''',
    "qconfig-of-observers-for-qat": '''
def qat(model):
    model.qconfig = QConfig(activation=tq.MinMaxObserver.with_args(dtype=torch.quint8),
                            weight=tq.default_per_channel_weight_observer)
    return prepare_qat(model.train())  # expect: QL604


def qat_fake_quant(model):
    model.qconfig = QConfig(activation=tq.FakeQuantize.with_args(observer=tq.MovingAverageMinMaxObserver),
                            weight=tq.default_weight_fake_quant)
    return prepare_qat(model.train())
''',
    "ptq-qconfig-on-every-submodule": '''
def qat(model):
    qconfig = tq.get_default_qconfig("fbgemm")
    for name, module in model.named_modules():
        module.qconfig = qconfig
    return prepare_qat(model.train())  # expect: QL604
''',
    "qconfig-chosen-by-the-same-flag": '''
def quantize(model, args):
    qconfig = get_default_qat_qconfig("x86") if args.qat else get_default_qconfig("x86")
    model.qconfig = qconfig
    if args.qat:
        return prepare_qat(model.train())
    return prepare(model.eval())
''',
    "qconfig-from-elsewhere": '''
def qat(model, config):
    model.qconfig = config.qconfig
    return prepare_qat(model.train())
''',
    # ----- QL605 ----------------------------------------------------------------------------
    "prepare-without-qconfig": '''
def ptq(batches):
    model = Net().eval()
    prepared = prepare(model)  # expect: QL605
    calibrate(prepared, batches)
    return convert(prepared)


def ptq_other_instance_configured(batches):
    reference = Net().eval()
    reference.qconfig = get_default_qconfig("x86")
    model = Net().eval()
    prepared = prepare(model)  # expect: QL605
    calibrate(prepared, batches)
    return convert(prepared)


def ptq_configured(batches):
    model = Net().eval()
    model.qconfig = get_default_qconfig("x86")
    prepared = prepare(model)
    calibrate(prepared, batches)
    return convert(prepared)
''',
    "prepare-qat-without-qconfig": '''
def qat():
    return prepare_qat(Net())  # expect: QL605
''',
    "qconfig-set-by-the-class-or-a-submodule": '''
class SelfConfigured(Net):
    def __init__(self):
        super().__init__()
        self.qconfig = get_default_qconfig("x86")


class Block(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 4)
        self.fc.qconfig = get_default_qconfig("x86")

    def forward(self, x):
        return self.fc(x)


class Outer(nn.Module):
    def __init__(self):
        super().__init__()
        self.block = Block()

    def forward(self, x):
        return self.block(x)


def ptq_self_configured():
    return prepare(SelfConfigured().eval())


def ptq_block_configured():
    return prepare(Outer().eval())


def ptq_submodule_configured():
    model = Net().eval()
    model.fc.qconfig = get_default_qconfig("x86")
    return prepare(model)
''',
    "prepare-a-model-of-unknown-origin": '''
def ptq(model):
    return prepare(model.eval())


def ptq_after_a_helper():
    model = Net().eval()
    load_checkpoint(model)
    return prepare(model)
''',
    # ----- QL606 ----------------------------------------------------------------------------
    "convert-without-calibration": '''
def ptq():
    model = Net().eval()
    model.qconfig = get_default_qconfig("x86")
    prepare(model, inplace=True)
    return convert(model)  # expect: QL606


def ptq_calibrated(batches):
    model = Net().eval()
    model.qconfig = get_default_qconfig("x86")
    prepare(model, inplace=True)
    calibrate(model, batches)
    return convert(model)
''',
    "calibrating-the-float-model-instead": '''
def ptq(batches):
    model = Net().eval()
    model.qconfig = get_default_qconfig("x86")
    prepared = prepare(model)
    for images in batches:
        model(images)
    return convert(prepared)  # expect: QL606
''',
    "calibration-by-code-qlint-cannot-read": '''
def ptq(batches):
    model = Net().eval()
    model.qconfig = get_default_qconfig("x86")
    prepare(model, inplace=True)
    evaluate(model, batches)
    return convert(model)


def ptq_run_fn(batches):
    model = Net().eval()
    model.qconfig = get_default_qconfig("x86")
    return tq.quantize(model, calibrate, [batches])
''',
    "weight-only-qconfig-needs-no-calibration": '''
class Embedder(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb = nn.Embedding(10, 4)

    def forward(self, x):
        return self.emb(x)


def weight_only():
    model = Embedder().eval()
    model.emb.qconfig = tq.float_qparams_weight_only_qconfig
    prepare(model, inplace=True)
    return convert(model)


def dynamic_like(model):
    for name, module in model.named_modules():
        module.qconfig = tq.default_dynamic_qconfig
    prepare(model, inplace=True)
    return convert(model)


def static_uncalibrated():
    model = Embedder().eval()
    model.qconfig = tq.default_qconfig
    prepare(model, inplace=True)
    return convert(model)  # expect: QL606


def qconfig_on_modules_of_a_list(model, embeddings):
    for _, module in embeddings:
        module.qconfig = tq.default_qconfig
    prepare(model, inplace=True)
    return convert(model)
''',
    "observers-from-prepare-qat-never-run": '''
def observed():
    model = Net()
    model.qconfig = get_default_qconfig("x86")
    prepared = prepare_qat(model)  # expect: QL604
    model(torch.randn(1, 3, 8, 8))
    return convert(prepared.eval())  # expect: QL606


def fake_quant_untrained():
    model = Net()
    model.qconfig = get_default_qat_qconfig("x86")
    prepared = prepare_qat(model)
    return convert(prepared.eval())
''',
    "qat-converted-after-training": '''
def qat(batches):
    model = Net()
    model.qconfig = get_default_qat_qconfig("x86")
    prepare_qat(model, inplace=True)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    train(model, optimizer, batches)
    return convert(model.eval())
''',
    # ----- QL607 ----------------------------------------------------------------------------
    "constant-calibration": '''
def ptq():
    model = Net().eval()
    model.qconfig = get_default_qconfig("x86")
    prepare(model, inplace=True)
    model(torch.ones(4, 3, 8, 8))  # expect: QL607
    return convert(model)


def ptq_random():
    model = Net().eval()
    model.qconfig = get_default_qconfig("x86")
    prepare(model, inplace=True)
    model(torch.randn(4, 3, 8, 8))
    return convert(model)


def ptq_constant_then_data(batches):
    model = Net().eval()
    model.qconfig = get_default_qconfig("x86")
    prepare(model, inplace=True)
    model(torch.zeros(1, 3, 8, 8))
    calibrate(model, batches)
    return convert(model)
''',
    "constant-calibration-through-a-helper": '''
def ptq():
    model = Net().eval()
    model.qconfig = get_default_qconfig("x86")
    prepare(model, inplace=True)
    calibrate(model, [torch.full((1, 3, 8, 8), 0.5) for _ in range(4)])  # expect: QL607
    return convert(model)


def ptq_helper_makes_constants(model):
    example = torch.zeros(1, 3, 8, 8).to("cpu")
    model(example)  # expect: QL607


def ptq_calls_it():
    model = Net().eval()
    model.qconfig = get_default_qconfig("x86")
    prepare(model, inplace=True)
    ptq_helper_makes_constants(model)
    return convert(model)
''',
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_snippet_is_reported_on_its_labeled_lines(name):
    source = HEADER + CASES[name].lstrip("\n")
    findings = [f for f in lint_source(source, f"{name}.py") if f.code.startswith("QL6")]
    missed, unexpected = mismatches(source, findings)
    assert not missed and not unexpected, (
        f"{name}: missed {sorted(missed)}, unexpected {sorted(unexpected)}\n"
        + "\n".join(f"  {f.line}: {f.code} {f.message}" for f in findings))


def test_the_header_alone_is_silent():
    assert not [f for f in lint_source(HEADER, "header.py") if f.code.startswith("QL6")]


def test_every_case_has_a_label_or_is_a_negative_twin():
    labeled = [name for name, case in CASES.items() if labels(case)[0]]
    assert len(labeled) >= 20 and len(CASES) - len(labeled) >= 15


MODELS = """\
import torch.nn as nn
from torch.ao.quantization import DeQuantStub, QuantStub, fuse_modules, fuse_modules_qat


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.quant, self.dequant = QuantStub(), DeQuantStub()
        self.conv, self.bn, self.relu = nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.ReLU()

    def forward(self, x):
        return self.dequant(self.relu(self.bn(self.conv(self.quant(x)))))

    def fuse_model(self, is_qat=False):
        fuse = fuse_modules_qat if is_qat else fuse_modules
        fuse(self, [["conv", "bn", "relu"]], inplace=True)


class Configured(Net):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(8, 8)
        self.fc.qconfig = None
"""

SCRIPT = """\
import torch
from torch.ao.quantization import get_default_qat_qconfig, get_default_qconfig, prepare, prepare_qat

from models import Configured, Net


def fuse_for_ptq():
    model = Net()
    model.fuse_model()  # expect: QL603


def fuse_for_qat():
    model = Net()
    model.fuse_model(is_qat=True)
    model.qconfig = get_default_qat_qconfig("x86")
    return prepare_qat(model)


def fuse_in_eval_then_qat():
    model = Net().eval()
    model.fuse_model(False)  # expect: QL602
    model.qconfig = get_default_qat_qconfig("x86")
    return prepare_qat(model.train())


def fuse_by_flag(flag):
    model = Net()
    model.fuse_model(is_qat=flag)


def prepare_unconfigured():
    return prepare(Net().eval())  # expect: QL605


def prepare_configured_by_its_class():
    return prepare(Configured().eval())
"""


def test_model_classes_of_other_files_are_known_by_their_summaries(tmp_path):
    """A script's model class from another file of the run: its fuse method (by mode and by
    argument) and whether it sets a qconfig come from that file's summary."""
    (tmp_path / "models.py").write_text(MODELS)
    (tmp_path / "train.py").write_text(SCRIPT)
    findings = lint_paths([tmp_path / "models.py", tmp_path / "train.py"], load_config(start=tmp_path), jobs=1)
    found = [f for f in findings if f.path.endswith("train.py") and f.code.startswith("QL6")]
    missed, unexpected = mismatches(SCRIPT, found)
    assert not missed and not unexpected, (missed, unexpected, [(f.line, f.code) for f in found])
