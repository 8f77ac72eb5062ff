"""What the fix reviews (review_fix_torchvision.py, review_fix_timm.py) measure per file and model.

- `fix_file(path)`: `--fix --unsafe-fixes` on a copy already in place: fixes applied per rule,
  findings left per rule, and the reasons the fixes gave for declining ("Not fixed: ...").
- `review_model(original, fixed, inputs)`: does the fixed model load the original's
  state_dict with strict=True, are the eval float outputs bit-identical, and does the fixed
  model quantize (eager: its fuse_model if it has one, QuantWrapper unless it has a
  QuantStub, x86 qconfig, prepare, calibrate, assert_parity, convert, assert_converted, run)?
  Every stage reports the first error it meets, one line.
"""
from __future__ import annotations

import collections
import copy
import re
import warnings
from pathlib import Path
from typing import Any, Callable

import torch
import torch.ao.quantization as tq

from qlint.config import load_config
from qlint.engine import fix_paths, lint_paths
from qlint.runtime import assert_converted, assert_parity

warnings.filterwarnings("ignore")

_REASON = re.compile(r"Not fixed: ([^:.(]*)")


def fix_file(path: Path) -> dict:
    config = load_config(start=path.parent)
    result = fix_paths([path], config, unsafe=True)
    second = fix_paths([path], config, unsafe=True)
    left = lint_paths([path], config, jobs=1)
    reasons = collections.Counter(
        f"{f.code} {m.group(1).strip()}" for f in left for m in [_REASON.search(f.message)] if m)
    return {
        "fixed": dict(sorted(result.fixed.get(path, {}).items())),
        "failed": result.failed.get(path, ""),
        "second_run": second.count,
        "left": dict(sorted(collections.Counter(f.code for f in left).items())),
        "left_errors_ql1_4": sorted({f.code for f in left if f.severity == "error" and f.code[:3] in
                                     ("QL1", "QL2", "QL3", "QL4")}),
        "declined": dict(reasons.most_common(6)),
    }


def _tensors(value: Any) -> list:
    if isinstance(value, torch.Tensor):
        return [value]
    if isinstance(value, dict):
        value = list(value.values())
    if isinstance(value, (tuple, list)):
        return [t for item in value for t in _tensors(item)]
    return []


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0][:160] if text else ''}"


def randomize_batchnorm(model: torch.nn.Module, seed: int = 1) -> None:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.modules.batchnorm._BatchNorm) and m.running_mean is not None:
                m.running_mean.copy_(torch.randn(m.running_mean.shape, generator=generator) * 0.1)
                m.running_var.copy_(torch.rand(m.running_var.shape, generator=generator) + 0.5)


def review_model(build_original: Callable[[], torch.nn.Module], build_fixed: Callable[[], torch.nn.Module],
                 inputs: Callable[[int], tuple]) -> dict:
    row: dict[str, Any] = {}
    torch.manual_seed(0)
    original = build_original().eval()
    randomize_batchnorm(original)
    torch.manual_seed(0)
    fixed = build_fixed().eval()
    try:
        fixed.load_state_dict(original.state_dict(), strict=True)
        row["strict_load"] = "ok"
    except Exception as error:  # noqa: BLE001 - reported
        row["strict_load"] = _first_line(error)
        return row
    with torch.no_grad():
        a, b = _tensors(original(*inputs(0))), _tensors(fixed(*inputs(0)))
    row["float_equal"] = len(a) == len(b) and all(torch.equal(x, y) for x, y in zip(a, b))
    row.update(quantize(fixed, inputs))
    return row


def quantize(model: torch.nn.Module, inputs: Callable[[int], tuple]) -> dict:
    row: dict[str, Any] = {}
    previous = torch.backends.quantized.engine
    torch.backends.quantized.engine = "x86"
    stage = "fuse_model"
    try:
        with torch.no_grad():
            model = copy.deepcopy(model).eval()
            row["fuse_model"] = hasattr(model, "fuse_model")
            if row["fuse_model"]:
                model.fuse_model()
            stage = "prepare"
            if not any(isinstance(m, tq.QuantStub) for m in model.modules()):
                model = tq.QuantWrapper(model)
            model.qconfig = tq.get_default_qconfig("x86")
            prepared = tq.prepare(model)
            stage = "calibrate"
            for seed in range(3):
                prepared(*inputs(seed))
            stage = "assert_parity"
            try:
                assert_parity(prepared, inputs(0))
                row["parity"] = "ok"
            except AssertionError as error:
                row["parity"] = _first_line(error)
            stage = "convert"
            quantized = tq.convert(copy.deepcopy(prepared))
            stage = "run converted"
            quantized(*inputs(1))
            row["converts"] = "ok"
            stage = "assert_converted"
            try:
                assert_converted(quantized)
                row["assert_converted"] = "ok"
            except AssertionError as error:
                row["assert_converted"] = _first_line(error)
    except Exception as error:  # noqa: BLE001 - reported: where the flow stops and why
        row["converts"] = f"{stage}: {_first_line(error)}"
    finally:
        torch.backends.quantized.engine = previous
    return row


TABLE_HEAD = ("| file | model | fixes applied | left (QL1-4 errors) | strict load | float equal | fuse_model "
              "| converts and runs | assert_converted | assert_parity |\n|---|---|---|---|---|---|---|---|---|---|")


def table_row(row: dict) -> str:
    fixes = ", ".join(f"{code} {n}" for code, n in row.get("fixed", {}).items()) or "none"
    return (f"| {row['file']} | {row['model']} | {fixes} | {', '.join(row.get('left_errors_ql1_4', [])) or '-'} "
            f"| {row.get('strict_load', '')} | {row.get('float_equal', '')} | {row.get('fuse_model', '')} "
            f"| {row.get('converts', '')} | {row.get('assert_converted', '')} | {row.get('parity', '')} |")


def images(size: int) -> Callable:
    """Seeded inputs for `review_model`: one batch of two RGB images of `size` pixels."""
    return lambda seed: (torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(seed)),)


def summary(rows: list[dict]) -> int:
    """Print the review table; 0 when every fixed model loads strictly and computes the same."""
    print()
    print(TABLE_HEAD)
    for row in rows:
        print(table_row(row))
    return 0 if all(row.get("float_equal") and row.get("strict_load") == "ok" for row in rows) else 1
