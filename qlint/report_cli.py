"""`qlint report MODULE:FACTORY --input SHAPE`: quantize a model, check it, write the report.

The only subcommand that imports torch. MODULE is imported as `python -m` would (the
current directory first on sys.path); FACTORY (a dotted attribute path) builds the float
model. ptq and qat run eager-mode quantization on the model as a user would: a model
without a QuantStub is wrapped in a QuantWrapper, ``fuse_model()`` is called when the
model defines it, the engine's default qconfig is set where the model sets none, then
prepare (ptq) or prepare_qat (qat), calibration on random batches of SHAPE or on the
batches a MODULE:CALLABLE yields, and (qat) observers frozen in eval mode. pt2e exports
the model and runs torchao's prepare_pt2e with the engine's quantizer (x86:
X86InductorQuantizer, qnnpack: XNNPACKQuantizer), then calibrates; it needs the runtime's
PT2E support (issue 9) and torchao.

Exit status: 0 every runtime check passed, 1 a check failed, 2 usage error (or the
model could not be built, prepared or run).
"""

from __future__ import annotations

import argparse
import importlib
import inspect
import os
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

EXIT_CLEAN, EXIT_FAILED, EXIT_ERROR = 0, 1, 2


class UsageError(Exception):
    """A problem with the command line or with the model it names."""


def _shape(text: str) -> tuple[int, ...]:
    try:
        sizes = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated sizes such as 1,3,224,224, found {text!r}") from None
    if not sizes or any(size < 1 for size in sizes):
        raise argparse.ArgumentTypeError(f"expected positive sizes, found {text!r}")
    return sizes


def _non_negative(text: str) -> float:
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected a number >= 0, found {text}")
    return value


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="qlint report",
        description="Quantize a model (eager mode), run every runtime check and write a per-layer report.",
        epilog="Exit status: 0 every check passed, 1 a check failed, 2 usage error.",
    )
    parser.add_argument("target", metavar="MODULE:FACTORY",
                        help="the module (imported as `python -m` would) and the callable that builds the float model")
    parser.add_argument("--input", type=_shape, required=True, metavar="SHAPE",
                        help="input shape as comma-separated sizes, e.g. 1,3,224,224")
    parser.add_argument("--flow", choices=("ptq", "qat", "pt2e"), default="ptq", help="default: ptq")
    parser.add_argument("--engine", choices=("x86", "qnnpack"), default="x86", help="default: x86")
    parser.add_argument("--calibration", metavar="MODULE:CALLABLE",
                        help="a callable returning an iterable of batches (tensors or tuples of inputs); "
                        "default: --batches random batches of SHAPE")
    parser.add_argument("--batches", type=int, default=4, metavar="N",
                        help="random calibration batches when --calibration is not given (default: 4)")
    parser.add_argument("--max-layers", type=int, metavar="N",
                        help="sweep the sensitivity of at most N layers (the worst activation SQNR first)")
    parser.add_argument("--time-budget", type=_non_negative, metavar="SECONDS",
                        help="stop the sensitivity sweep after this many seconds")
    parser.add_argument("--no-sensitivity", action="store_true", help="skip the sensitivity sweep")
    parser.add_argument("-o", "--output", type=Path, default=Path("report.html"), metavar="FILE",
                        help="the HTML report (default: report.html)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the report as JSON")
    parser.add_argument("--seed", type=int, default=0, help="seed for random inputs (default: 0)")
    return parser


def _resolve(spec: str, what: str) -> Any:
    module_name, _, attribute = spec.partition(":")
    if not module_name or not attribute:
        raise UsageError(f"{what}: expected MODULE:NAME (e.g. models.resnet:build), found {spec!r}")
    cwd = os.getcwd()
    if cwd not in sys.path[:1]:
        sys.path.insert(0, cwd)
    try:
        value = importlib.import_module(module_name)
    except ImportError as error:
        raise UsageError(f"{what}: cannot import {module_name!r} from {cwd}: {error}") from error
    for part in attribute.split("."):
        if not hasattr(value, part):
            raise UsageError(f"{what}: {module_name} has no attribute {attribute!r}")
        value = getattr(value, part)
    if not callable(value):
        raise UsageError(f"{what}: {spec} is a {type(value).__name__}, not a callable")
    return value


def _as_args(batch, torch) -> tuple:
    return (batch,) if isinstance(batch, torch.Tensor) else tuple(batch)


def _progress_bar(stream) -> Callable[[int, int, str], None] | None:
    """A one-line bar on ``stream`` when it is a terminal, else nothing."""
    if not stream.isatty():
        return None

    def show(done: int, total: int, layer: str) -> None:
        width = 30
        filled = width * done // max(total, 1)
        stream.write(f"\rsensitivity [{'#' * filled}{'.' * (width - filled)}] {done}/{total} {layer[:40]:<40}")
        if done == total:
            stream.write("\n")
        stream.flush()

    return show


def prepare_eager(model, flow: str, engine: str, batches: Iterable, torch) -> tuple[Any, list[str]]:
    """Run the eager flow on ``model``; (prepared model, notes on what was done)."""
    tq = torch.ao.quantization
    notes = []
    if not any(isinstance(module, tq.QuantStub) for module in model.modules()):
        model = tq.QuantWrapper(model)
        notes.append("no QuantStub in the model: wrapped in torch.ao.quantization.QuantWrapper")
    model.train(flow == "qat")
    fuse_model = getattr(model, "fuse_model", None)
    if callable(fuse_model):
        if "is_qat" in inspect.signature(fuse_model).parameters:
            fuse_model(is_qat=flow == "qat")
        else:
            fuse_model()
        notes.append("fused with the model's fuse_model()")
    if not any(getattr(module, "qconfig", None) is not None for module in model.modules()):
        model.qconfig = (tq.get_default_qat_qconfig if flow == "qat" else tq.get_default_qconfig)(engine)
        notes.append(f"default {flow} qconfig of the {engine} engine")
    prepared = tq.prepare_qat(model) if flow == "qat" else tq.prepare(model)
    seen = 0
    with torch.no_grad():
        for batch in batches:
            prepared(*_as_args(batch, torch))
            seen += 1
    notes.append(f"calibrated on {seen} batches")
    if flow == "qat":
        prepared.eval().apply(tq.disable_observer)
        notes.append("qat: observers frozen, eval mode (no training steps)")
    return prepared, notes


def prepare_pt2e_flow(model, example, engine: str, batches: Iterable, torch) -> tuple[Any, list[str]]:
    """torch.export, then torchao's prepare_pt2e with the engine's quantizer, calibrated."""
    from torchao.quantization.pt2e.quantize_pt2e import prepare_pt2e

    if engine == "x86":
        from torchao.quantization.pt2e.quantizer.x86_inductor_quantizer import (
            X86InductorQuantizer,
            get_default_x86_inductor_quantization_config,
        )

        quantizer = X86InductorQuantizer().set_global(get_default_x86_inductor_quantization_config())
        name = "X86InductorQuantizer"
    else:
        from torchao.testing.pt2e._xnnpack_quantizer import (
            XNNPACKQuantizer,
            get_symmetric_quantization_config,
        )

        quantizer = XNNPACKQuantizer().set_global(get_symmetric_quantization_config())
        name = "XNNPACKQuantizer"
    exported = torch.export.export(model.eval(), _as_args(example, torch)).module()
    prepared = prepare_pt2e(exported, quantizer)
    seen = 0
    with torch.no_grad():
        for batch in batches:
            prepared(*_as_args(batch, torch))
            seen += 1
    return prepared, [f"torch.export, prepare_pt2e with {name}'s default config", f"calibrated on {seen} batches"]


def _pt2e_available() -> str | None:
    """Why --flow pt2e cannot run here, or None."""
    try:
        import torchao.quantization.pt2e  # noqa: F401
    except ImportError:
        return "torchao is not installed: pip install 'torch-qlint[torchao]'"
    return None


def _run(args) -> int:
    if args.flow == "pt2e" and (reason := _pt2e_available()):
        raise UsageError(f"--flow pt2e: {reason}")
    factory = _resolve(args.target, "MODULE:FACTORY")
    calibration = _resolve(args.calibration, "--calibration") if args.calibration else None
    from qlint.runtime._torch import require_torch

    torch = require_torch()
    import warnings

    from qlint.runtime.report import quant_report

    warnings.filterwarnings("ignore", message="torch.ao.quantization is deprecated")
    warnings.filterwarnings("ignore", category=UserWarning, module="torch.ao")
    torch.manual_seed(args.seed)
    torch.backends.quantized.engine = args.engine
    model = factory()
    if not isinstance(model, torch.nn.Module):
        raise UsageError(f"{args.target} returned a {type(model).__name__}, not an nn.Module")
    if calibration is not None:
        batches = list(calibration())
        if not batches:
            raise UsageError(f"--calibration {args.calibration} yielded no batch")
    else:
        batches = [torch.randn(args.input) for _ in range(args.batches)]
    example = _as_args(torch.randn(args.input) if calibration is None else batches[0], torch)
    example = example[0] if len(example) == 1 else example
    if args.flow == "pt2e":
        prepared, notes = prepare_pt2e_flow(model, example, args.engine, batches, torch)
    else:
        prepared, notes = prepare_eager(model, args.flow, args.engine, batches, torch)
    report = quant_report(
        prepared,
        example,
        sensitivity=not args.no_sensitivity,
        max_layers=args.max_layers,
        time_budget=args.time_budget,
        checks=True,
        progress=_progress_bar(sys.stderr),
    )
    report.model = f"{args.target} ({type(model).__name__})"
    report.notes[:0] = [f"flow: {note}" for note in notes]
    report.to_html(args.output)
    if args.json:
        args.json.write_text(report.to_json(indent=2), encoding="utf-8")
    print(report)
    print(f"qlint report: wrote {args.output}")
    return EXIT_FAILED if report.failed_checks else EXIT_CLEAN


def report_command(argv: list[str]) -> int:
    """`qlint report ...`; returns the exit status."""
    args = _parser().parse_args(argv)
    try:
        return _run(args)
    except UsageError as error:
        print(f"qlint report: error: {error}", file=sys.stderr)
        return EXIT_ERROR
