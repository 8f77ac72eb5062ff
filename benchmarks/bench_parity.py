"""assert_parity: its cost next to the bare work, and the measurements behind its defaults.

    python benchmarks/bench_parity.py cost [--repeat 5] [--size 224]
    python benchmarks/bench_parity.py pt2e-cost [--repeat 3] [--size 224]
    python benchmarks/bench_parity.py calibrate [--seeds 5] [--steps 20]

``cost``: a ResNet-18-like eager quantizable model (torchvision is not installable here),
prepared for PTQ and for QAT; per repetition, in one process, the bare work assert_parity
has to do (two deep copies, ``convert``, a forward of each) and ``assert_parity`` itself
on the clean model. Prints the medians and their ratio.

``pt2e-cost``: the same model exported and prepared by torchao's PT2E flow
(X86InductorQuantizer), PTQ and QAT; the bare work is a deep copy, ``convert_pt2e`` of a
copy and a forward of each. Needs torchao.

``calibrate``: clean models (our own and torch's test models) and planted bugs, on the x86
and qnnpack engines, QAT (``--steps`` SGD steps) and PTQ (``--steps`` calibration batches),
``--seeds`` seeds each, checked on a fresh batch. Prints a markdown table of the worst
value over the seeds: share of elements beyond one and beyond eight output steps, max
steps, min SQNR, and how many seeds pass the default tolerances (docs/parity.md).
"""

from __future__ import annotations

import argparse
import copy
import inspect
import statistics
import time
import warnings

import torch
import torch.ao.quantization as tq
from torch import nn
from torch.ao.nn.quantized import FloatFunctional

from qlint.runtime import assert_parity
from qlint.runtime import parity as parity_module


class BasicBlock(nn.Module):
    def __init__(self, channels_in: int, channels: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels_in, channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(channels, channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)
        self.downsample = None
        if stride != 1 or channels_in != channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(channels_in, channels, 1, stride, bias=False), nn.BatchNorm2d(channels)
            )
        self.add = FloatFunctional()
        self.relu2 = nn.ReLU()

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.bn2(self.conv2(self.relu1(self.bn1(self.conv1(x)))))
        return self.relu2(self.add.add(out, identity))

    def fusion_groups(self, prefix: str) -> list[list[str]]:
        groups = [[f"{prefix}conv1", f"{prefix}bn1", f"{prefix}relu1"]]
        groups.append([f"{prefix}conv2", f"{prefix}bn2"])
        if self.downsample is not None:
            groups.append([f"{prefix}downsample.0", f"{prefix}downsample.1"])
        return groups


class ResNet18(nn.Module):
    """torchvision's ResNet-18 layout, quantizable in eager mode (stubs, FloatFunctional)."""

    def __init__(self, width: int = 64, classes: int = 1000) -> None:
        super().__init__()
        self.quant = tq.QuantStub()
        self.conv1 = nn.Conv2d(3, width, 7, 2, 3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(3, 2, 1)
        stages, channels_in = [], width
        for index, channels in enumerate([width, 2 * width, 4 * width, 8 * width]):
            stride = 1 if index == 0 else 2
            stages.append(
                nn.Sequential(
                    BasicBlock(channels_in, channels, stride), BasicBlock(channels, channels, 1)
                )
            )
            channels_in = channels
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels_in, classes)
        self.dequant = tq.DeQuantStub()

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(self.quant(x)))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.dequant(self.fc(torch.flatten(self.avgpool(x), 1)))

    def fusion_groups(self) -> list[list[str]]:
        groups = [["conv1", "bn1", "relu"]]
        for stage in ("layer1", "layer2", "layer3", "layer4"):
            for index, block in enumerate(getattr(self, stage)):
                groups += block.fusion_groups(f"{stage}.{index}.")
        return groups


def prepared(build, engine: str, qat: bool, seed: int, shape, steps: int, gain=1.0) -> nn.Module:
    """Fuse, prepare and calibrate (PTQ) or train ``steps`` SGD steps (QAT) on inputs
    ``gain`` times a standard normal."""
    torch.manual_seed(seed)
    torch.backends.quantized.engine = engine
    model = build()
    groups = model.fusion_groups() if hasattr(model, "fusion_groups") else []
    if qat:
        model.train()
        if groups:
            tq.fuse_modules_qat(model, groups, inplace=True)
        model.qconfig = tq.get_default_qat_qconfig(engine)
        tq.prepare_qat(model, inplace=True)
        if getattr(model, "switched_off", None):
            fake_quant = model.get_submodule(model.switched_off)
            fake_quant.apply(tq.disable_observer)
            fake_quant.apply(tq.disable_fake_quant)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
        target = None
        for _ in range(steps):
            out = model(gain * torch.randn(shape))
            target = torch.randn(out.shape) if target is None else target
            optimizer.zero_grad()
            (out - target).pow(2).mean().backward()
            optimizer.step()
    else:
        model.eval()
        if groups:
            tq.fuse_modules(model, groups, inplace=True)
        model.qconfig = tq.get_default_qconfig(engine)
        tq.prepare(model, inplace=True)
        with torch.no_grad():
            for _ in range(steps):
                model(gain * torch.randn(shape))
    return model


# ---------------------------------------------------------------- cost


def bare_work(model: nn.Module, x: torch.Tensor) -> None:
    """What any parity check must do: copy, convert, run both (observers off where possible)."""
    with torch.no_grad():
        reference = copy.deepcopy(model).eval()
        reference.apply(tq.disable_observer)
        converted = tq.convert(copy.deepcopy(model).eval(), inplace=True)
        reference(x)
        converted(x)


def cost(repeat: int, size: int) -> None:
    x = torch.randn(1, 3, size, size)
    print(f"ResNet-18-like, input 1x3x{size}x{size}, torch threads {torch.get_num_threads()}")
    print("| flow | engine | bare work (median s) | assert_parity (median s) | ratio |")
    print("|---|---|---|---|---|")
    for qat in (False, True):
        for engine in ("x86", "qnnpack"):
            model = prepared(ResNet18, engine, qat, 0, (2, 3, size, size), 2)
            bare, checked = [], []
            for _ in range(repeat):
                start = time.perf_counter()
                bare_work(model, x)
                bare.append(time.perf_counter() - start)
                start = time.perf_counter()
                assert_parity(model, x)
                checked.append(time.perf_counter() - start)
            bare_s, checked_s = statistics.median(bare), statistics.median(checked)
            flow = "QAT" if qat else "PTQ"
            ratio = checked_s / bare_s
            print(f"| {flow} | {engine} | {bare_s:.3f} | {checked_s:.3f} | {ratio:.2f}x |", flush=True)


def pt2e_prepared(qat: bool, size: int, steps: int) -> nn.Module:
    """The same ResNet-18-like model exported and prepared by torchao (X86InductorQuantizer),
    calibrated (PTQ) or trained ``steps`` SGD steps (QAT, then moved to eval)."""
    import torchao.quantization.pt2e as pt2e
    from torchao.quantization.pt2e.quantize_pt2e import prepare_pt2e, prepare_qat_pt2e
    from torchao.quantization.pt2e.quantizer.x86_inductor_quantizer import (
        X86InductorQuantizer,
        get_default_x86_inductor_quantization_config,
    )

    torch.manual_seed(0)
    shape = (1, 3, size, size)  # exported shapes are static: the benchmark's input
    model = ResNet18().train(qat)
    graph = torch.export.export(model, (torch.randn(shape),)).module()
    quantizer = X86InductorQuantizer().set_global(get_default_x86_inductor_quantization_config(is_qat=qat))
    model = (prepare_qat_pt2e if qat else prepare_pt2e)(graph, quantizer)
    if qat:
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
        for _ in range(steps):
            optimizer.zero_grad()
            model(torch.randn(shape)).pow(2).mean().backward()
            optimizer.step()
        pt2e.move_exported_model_to_eval(model)
    else:
        with torch.no_grad():
            for _ in range(steps):
                model(torch.randn(shape))
    return model


def pt2e_bare_work(model: nn.Module, x: torch.Tensor) -> None:
    """What any PT2E parity check must do: deep copy, convert_pt2e, run both."""
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e

    with torch.no_grad():
        reference = copy.deepcopy(model)
        converted = convert_pt2e(copy.deepcopy(model))
        reference(x)
        converted(x)


def pt2e_cost(repeat: int, size: int) -> None:
    x = torch.randn(1, 3, size, size)
    print(f"PT2E (torchao X86InductorQuantizer), ResNet-18-like, input 1x3x{size}x{size}, "
          f"torch threads {torch.get_num_threads()}")
    print("| flow | bare work (median s) | assert_parity (median s) | ratio |")
    print("|---|---|---|---|")
    for qat in (False, True):
        model = pt2e_prepared(qat, size, 2)
        bare, checked = [], []
        for _ in range(repeat):
            start = time.perf_counter()
            pt2e_bare_work(model, x)
            bare.append(time.perf_counter() - start)
            start = time.perf_counter()
            assert_parity(model, x)
            checked.append(time.perf_counter() - start)
        bare_s, checked_s = statistics.median(bare), statistics.median(checked)
        flow = "QAT" if qat else "PTQ"
        print(f"| {flow} | {bare_s:.3f} | {checked_s:.3f} | {checked_s / bare_s:.2f}x |", flush=True)


# ----------------------------------------------------------- calibrate


class ConvReluConv(nn.Module):
    def __init__(self, weight_scale: float = 1.0) -> None:
        super().__init__()
        self.quant = tq.QuantStub()
        self.conv1 = nn.Conv2d(3, 8, 3)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(8, 8, 3)
        self.dequant = tq.DeQuantStub()
        with torch.no_grad():
            self.conv1.weight.mul_(weight_scale)
            self.conv2.weight.mul_(weight_scale)

    def forward(self, x):
        return self.dequant(self.conv2(self.relu(self.conv1(self.quant(x)))))

    def fusion_groups(self):
        return [["conv1", "relu"]]


class PoolHead(nn.Module):
    """conv-bn-relu, a pooling or upsampling step, then a linear or conv head."""

    def __init__(self, step: str) -> None:
        super().__init__()
        self.step = step
        self.quant = tq.QuantStub()
        self.conv = nn.Conv2d(3, 16, 3)
        self.bn = nn.BatchNorm2d(16)
        self.relu = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(16, 10)
        self.head = nn.Conv2d(16, 4, 3)
        self.dequant = tq.DeQuantStub()

    def forward(self, x):
        x = self.relu(self.bn(self.conv(self.quant(x))))
        if self.step == "module pool":
            x = self.fc(torch.flatten(self.pool(x), 1))
        elif self.step == "functional pool":
            x = self.fc(nn.functional.adaptive_avg_pool2d(x, 1).flatten(1))
        else:
            x = self.head(nn.functional.interpolate(x, scale_factor=2, mode="bilinear"))
        return self.dequant(x)

    def fusion_groups(self):
        return [["conv", "bn", "relu"]]


class ScalarAdd(nn.Module):
    """conv -> FloatFunctional.add_scalar(c) [-> conv]."""

    def __init__(self, constant: float, conv_after: bool) -> None:
        super().__init__()
        self.constant, self.conv_after = constant, conv_after
        self.quant = tq.QuantStub()
        self.conv1 = nn.Conv2d(3, 8, 3)
        self.shift = FloatFunctional()
        self.conv2 = nn.Conv2d(8, 8, 3)
        self.dequant = tq.DeQuantStub()

    def forward(self, x):
        x = self.shift.add_scalar(self.conv1(self.quant(x)), self.constant)
        return self.dequant(self.conv2(x) if self.conv_after else x)


class PoolBetweenConvs(nn.Module):
    """conv -> F.avg_pool2d -> conv: the functional pool is rounded by its kernel only."""

    def __init__(self) -> None:
        super().__init__()
        self.quant = tq.QuantStub()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 8, 1)
        self.dequant = tq.DeQuantStub()

    def forward(self, x):
        x = nn.functional.avg_pool2d(self.conv1(self.quant(x)), 2)
        return self.dequant(self.conv2(x))


class CatOfDifferentRanges(nn.Module):
    """Bug: torch.cat requantizes the large-range branch to the small one's scale."""

    def __init__(self) -> None:
        super().__init__()
        self.quant = tq.QuantStub()
        self.small = nn.Conv2d(3, 4, 3)
        self.large = nn.Conv2d(3, 4, 3)
        self.head = nn.Conv2d(8, 4, 1)
        self.dequant = tq.DeQuantStub()
        with torch.no_grad():
            self.large.weight.mul_(10)

    def forward(self, x):
        x = self.quant(x)
        return self.dequant(self.head(torch.cat([self.small(x), self.large(x)], 1)))


class FakeQuantSwitchedOff(ConvReluConv):
    """Bug (QAT): conv2's output fake-quant and observer switched off for the whole training."""

    switched_off = "conv2.activation_post_process"


def _torch_model(name: str, wrap: bool, groups: list[list[str]]):
    from torch.testing._internal import common_quantization

    def build():
        model = getattr(common_quantization, name)()
        model = tq.QuantWrapper(model) if wrap else model
        model.fusion_groups = lambda: groups
        return model

    return build


def _cases():
    small = (4, 3, 12, 12)
    resnet_group = [["module.conv1", "module.bn1", "module.relu1"]]
    sequential = [["conv1", "relu1"]]
    sequential += [[f"features.{i}.{j}" for j in range(3)] for i in range(3)]
    sequential += [["classifier.0", "classifier.1"]]
    return [
        ("conv-relu-conv", ConvReluConv, small),
        ("conv-relu-conv, 8x weights", lambda: ConvReluConv(8.0), small),
        ("conv-bn-relu, AdaptiveAvgPool2d module, linear", lambda: PoolHead("module pool"), small),
        ("conv-bn-relu, F.adaptive_avg_pool2d, linear", lambda: PoolHead("functional pool"), small),
        ("conv-bn-relu, bilinear F.interpolate, conv", lambda: PoolHead("interpolate"), small),
        ("add_scalar(0.5) then conv", lambda: ScalarAdd(0.5, True), small),
        ("add_scalar(10) then conv", lambda: ScalarAdd(10.0, True), small),
        ("add_scalar(10) at the output", lambda: ScalarAdd(10.0, False), small),
        ("torch ResNetBase", _torch_model("ResNetBase", True, resnet_group), (4, 3, 8, 8)),
        ("torch ModelMultipleOps", _torch_model("ModelMultipleOps", True, resnet_group),
         (4, 3, 8, 8)),
        ("torch ModelMultipleOpsNoAvgPool",
         _torch_model("ModelMultipleOpsNoAvgPool", True, resnet_group), (4, 3, 16, 16)),
        ("torch AnnotatedConvBnReLUModel",
         _torch_model("AnnotatedConvBnReLUModel", False, [["conv", "bn", "relu"]]), (4, 3, 8, 8)),
        ("torch ManualConvLinearQATModel",
         _torch_model("ManualConvLinearQATModel", False, []), (4, 3, 10, 10)),
        ("torch ModelWithSequentialFusion",
         _torch_model("ModelWithSequentialFusion", False, sequential), (4, 3, 10, 10)),
        ("ResNet-18-like, width 16, 32x32", lambda: ResNet18(16, 10), (2, 3, 32, 32)),
        ("conv, F.avg_pool2d, conv", PoolBetweenConvs, small),
        ("conv, F.avg_pool2d, conv; calibrated on 10x larger inputs", PoolBetweenConvs,
         small, 10.0),
        ("conv, F.avg_pool2d, conv; calibrated on 30x larger inputs", PoolBetweenConvs,
         small, 30.0),
        ("BUG torch.cat of different ranges", CatOfDifferentRanges, small),
        ("BUG fake-quant switched off in conv2", FakeQuantSwitchedOff, small),
    ]


def calibrate(seeds: int, steps: int) -> None:
    signature = inspect.signature(assert_parity).parameters.values()
    defaults = parity_module._validated_tolerances(
        **{p.name: p.default for p in signature if p.kind is p.KEYWORD_ONLY}
    )
    print(f"QAT: {steps} SGD steps; PTQ: {steps} calibration batches; {seeds} seeds; worst value")
    print("| model | engine | flow | elements | > 1 step | > 8 steps | max steps | min SQNR dB "
          "| its quantization's SQNR dB | seeds passing defaults |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for name, build, shape, *gain in _cases():
        for engine in ("x86", "qnnpack"):
            for qat in (True, False):
                if "switched off" in name and not qat:
                    continue  # prepare() observers cannot be switched off
                rows = []
                for seed in range(seeds):
                    model = prepared(build, engine, qat, seed, shape, steps, *gain)
                    torch.manual_seed(100 + seed)
                    x = torch.randn(shape)
                    _, _, comparisons = parity_module.output_comparisons(
                        model, parity_module.PREPARED, (x,), defaults, torch
                    )
                    rows.append(comparisons[0][1])
                passing = sum(not row.violations(defaults) for row in rows)
                worst = min(rows, key=lambda row: row.sqnr_db)
                floor = worst.quantization_sqnr_db
                print(
                    f"| {name} | {engine} | {'QAT' if qat else 'PTQ'} | {rows[0].elements} "
                    f"| {max(r.share_beyond_one_step for r in rows):.1%} "
                    f"| {max(r.outlier_share for r in rows):.1%} "
                    f"| {max(r.largest_steps for r in rows):.0f} | {worst.sqnr_db:.1f} "
                    f"| {'-' if floor is None else f'{floor:.1f}'} | {passing}/{seeds} |",
                    flush=True,
                )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    cost_parser = commands.add_parser("cost")
    cost_parser.add_argument("--repeat", type=int, default=5)
    cost_parser.add_argument("--size", type=int, default=224)
    pt2e_parser = commands.add_parser("pt2e-cost", help="PT2E parity cost next to its bare work")
    pt2e_parser.add_argument("--repeat", type=int, default=3)
    pt2e_parser.add_argument("--size", type=int, default=224)
    calibrate_parser = commands.add_parser("calibrate")
    calibrate_parser.add_argument("--seeds", type=int, default=5)
    calibrate_parser.add_argument("--steps", type=int, default=20)
    arguments = parser.parse_args()
    warnings.filterwarnings("ignore", "torch.ao.quantization is deprecated", DeprecationWarning)
    warnings.filterwarnings("ignore", module="torch")
    warnings.filterwarnings("ignore", "All inputs of this cat operator", UserWarning)
    if arguments.command == "cost":
        cost(arguments.repeat, arguments.size)
    elif arguments.command == "pt2e-cost":
        pt2e_cost(arguments.repeat, arguments.size)
    else:
        calibrate(arguments.seeds, arguments.steps)


if __name__ == "__main__":
    main()
