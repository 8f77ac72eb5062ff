"""Review: the FloatFunctional fixes (QL203, QL301, QL302, QL303) on torchvision's float
models, proven by running them (not run by CI; torchvision's code is read, never committed).

    python benchmarks/review_fix_floatfunctional.py [/path/to/torchvision/package]

torchvision needs its C++ ops to import, so the model files are copied into two small
packages (`tv_original`, `tv_fixed`) with stubs for what they import besides torch
(weights registry helpers, presets, logging); `qlint --fix --unsafe-fixes` (these four
rules) rewrites the copies in `tv_fixed`. For each model, one JSON line: the fixes
applied, the findings left (and why), whether the fixed model loads the original's
state_dict with strict=True, whether their eval float outputs are bit-identical, whether
the original and the fixed model (in a QuantWrapper) run after eager convert(), and
whether the fixed one passes assert_converted and assert_parity.
"""
from __future__ import annotations

import argparse
import copy
import importlib
import json
import shutil
import sys
import tempfile
import traceback
import warnings
from pathlib import Path

import torch
import torch.ao.quantization as tq

from qlint.config import load_config
from qlint.engine import fix_paths, lint_paths
from qlint.runtime import assert_converted, assert_parity

CODES = ["QL203", "QL301", "QL302", "QL303"]
FILES = ["resnet.py", "mobilenetv2.py", "shufflenetv2.py", "googlenet.py"]
MODELS = {  # builder: (file, keyword arguments)
    "resnet18": ("resnet", {}),
    "resnet50": ("resnet", {}),
    "mobilenet_v2": ("mobilenetv2", {}),
    "shufflenet_v2_x1_0": ("shufflenetv2", {}),
    "googlenet": ("googlenet", {"aux_logits": False, "init_weights": True}),
}
STUBS = {
    "__init__.py": "",
    "_internally_replaced_utils.py": "load_state_dict_from_url = None\n",
    "utils.py": (
        "import collections.abc\nfrom itertools import repeat\n\n\n"
        "def _log_api_usage_once(obj):\n    pass\n\n\n"
        "def _make_ntuple(x, n):\n    if isinstance(x, collections.abc.Iterable):\n"
        "        return tuple(x)\n    return tuple(repeat(x, n))\n"),
    "transforms/__init__.py": "",
    "transforms/_presets.py": "class ImageClassification:\n    def __init__(self, *args, **kwargs):\n        pass\n",
    "ops/__init__.py": "",
    "models/__init__.py": "",
}
COPIED = ["_utils.py", "ops/misc.py", "models/_api.py", "models/_meta.py", "models/_utils.py"]


def build_package(source: Path, root: Path, name: str) -> Path:
    package = root / name
    for path, text in STUBS.items():
        (package / path).parent.mkdir(parents=True, exist_ok=True)
        (package / path).write_text(text)
    for path in COPIED + [f"models/{f}" for f in FILES]:
        shutil.copy(source / path, package / path)
    return package


def inputs(seed: int) -> torch.Tensor:
    return torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(seed))


def quantized(model):
    wrapped = tq.QuantWrapper(copy.deepcopy(model)).eval()
    wrapped.qconfig = tq.get_default_qconfig(torch.backends.quantized.engine)
    prepared = tq.prepare(wrapped)
    with torch.no_grad():
        for seed in range(3):
            prepared(inputs(seed))
    return prepared, tq.convert(copy.deepcopy(prepared))


def outcome(run) -> str:
    try:
        run()
        return "ok"
    except Exception as error:  # noqa: BLE001 - a review reports what happened
        return f"{type(error).__name__}: {str(error).splitlines()[0][:160]}"


def review(name: str, original_module, fixed_module) -> dict:
    file, kwargs = MODELS[name]
    torch.manual_seed(0)
    original = getattr(original_module, name)(**kwargs).eval()
    fixed = getattr(fixed_module, name)(**kwargs).eval()
    row = {"model": name, "file": file}
    row["strict_load"] = outcome(lambda: fixed.load_state_dict(original.state_dict(), strict=True))
    with torch.no_grad():
        row["float_equal"] = all(torch.equal(original(inputs(s)), fixed(inputs(s))) for s in (10, 11))
    row["original_converted_runs"] = outcome(lambda: quantized(original)[1](inputs(12)))
    prepared, converted = quantized(fixed)
    row["fixed_converted_runs"] = outcome(lambda: converted(inputs(12)))
    row["assert_converted"] = outcome(lambda: assert_converted(converted))
    row["assert_parity"] = outcome(lambda: assert_parity(prepared, inputs(13)))
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("torchvision", nargs="?", default="/work/realcode/torchvision/torchvision")
    args = parser.parse_args()
    warnings.simplefilter("ignore")
    torch.set_num_threads(1)
    source = Path(args.torchvision)
    root = Path(tempfile.mkdtemp(prefix="qlint-fix-review-"))
    build_package(source, root, "tv_original")
    fixed_package = build_package(source, root, "tv_fixed")
    files = [fixed_package / "models" / f for f in FILES]
    config = load_config(start=root, select=CODES)
    result = fix_paths(files, config, unsafe=True)
    left = lint_paths(files, config, jobs=1)
    for path in files:
        print(json.dumps({"file": path.name, "fixes": result.fixed.get(path, 0),
                          "left": [f"{f.line}: {f.code} {f.message.partition('Not fixed: ')[2]}"
                                   for f in left if Path(f.path) == path]}))
    sys.path.insert(0, str(root))
    for name, (file, _) in MODELS.items():
        original = importlib.import_module(f"tv_original.models.{file}")
        fixed = importlib.import_module(f"tv_fixed.models.{file}")
        try:
            print(json.dumps(review(name, original, fixed)), flush=True)
        except Exception:  # noqa: BLE001
            print(json.dumps({"model": name, "error": traceback.format_exc(limit=3)}), flush=True)
    shutil.rmtree(root)


if __name__ == "__main__":
    main()
