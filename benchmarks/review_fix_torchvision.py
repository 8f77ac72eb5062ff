"""Review: `qlint --fix --unsafe-fixes` on torchvision 0.29's float model files (not run by CI;
their code is read from a torchvision checkout, never committed).

    python benchmarks/review_fix_torchvision.py /work/realcode/torchvision/torchvision

Each model file is copied with the files it imports into a throwaway package (the registry,
weights and preset modules replaced by small stand-ins, so torchvision's C++ ops are not
needed), fixed there, and both versions imported. For each model: the fixes applied (by
rule) and the findings left (by rule), whether the fixed model loads the original's
state_dict with strict=True, whether its float outputs are bit-identical in eval mode, and
whether it quantizes (benchmarks/fix_review.py: fuse_model, x86 qconfig, prepare, calibrate,
assert_parity, convert, run, assert_converted). Results: benchmarks/fix_review.md.
"""
from __future__ import annotations

import argparse
import importlib
import shutil
import sys
import tempfile
from pathlib import Path


sys.path.insert(0, str(Path(__file__).resolve().parent))
from fix_review import fix_file, images, review_model, summary  # noqa: E402

MODELS = {  # file -> (builder, keyword arguments, input size)
    "resnet.py": [("resnet18", {}, 64), ("resnet50", {}, 64)],
    "mobilenetv2.py": [("mobilenet_v2", {}, 64)],
    "shufflenetv2.py": [("shufflenet_v2_x0_5", {}, 64)],
    "googlenet.py": [("googlenet", {"aux_logits": False, "init_weights": True}, 64)],
}
STANDINS = {
    "__init__.py": "",
    "utils.py": "def _log_api_usage_once(obj):\n    pass\n\n\n"
                "def _make_ntuple(x, n):\n    import collections.abc, itertools\n"
                "    return tuple(x) if isinstance(x, collections.abc.Iterable) else tuple(itertools.repeat(x, n))\n",
    "transforms/__init__.py": "",
    "transforms/_presets.py": "class ImageClassification:\n    pass\n",
    "ops/__init__.py": "",
    "models/__init__.py": "",
    "models/_api.py": "import enum\n\n\ndef register_model(*args, **kwargs):\n    return lambda f: f\n\n\n"
                      "def Weights(**kwargs):\n    return tuple(sorted(map(str, kwargs)))\n\n\n"
                      "class WeightsEnum(enum.Enum):\n    @classmethod\n    def verify(cls, weights):\n"
                      "        return weights\n",
    "models/_meta.py": "_IMAGENET_CATEGORIES = []\n",
}


def _package(torchvision: Path, root: Path) -> Path:
    package = root / "tvshim"
    for name, text in STANDINS.items():
        (package / name).parent.mkdir(parents=True, exist_ok=True)
        (package / name).write_text(text)
    shutil.copy(torchvision / "ops" / "misc.py", package / "ops" / "misc.py")
    utils = (torchvision / "models" / "_utils.py").read_text()
    (package / "models" / "_utils.py").write_text(utils.split("\nfrom ", 1)[0] + "\n" + _utils_standin(utils))
    return package


def _utils_standin(source: str) -> str:
    """_make_divisible and _ovewrite_named_param as torchvision wrote them; a no-op
    handle_legacy_interface."""
    import ast

    tree = ast.parse(source)
    keep = [n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name in ("_make_divisible", "_ovewrite_named_param")]
    return ("from typing import Any, Optional, TypeVar\nV = TypeVar('V')\n\n\n"
            + "\n\n\n".join(ast.get_source_segment(source, n) for n in keep)
            + "\n\n\ndef handle_legacy_interface(**weights):\n    return lambda f: f\n")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("torchvision", type=Path)
    args = parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        package = _package(args.torchvision, root)
        sys.path.insert(0, str(root))
        for name, builds in MODELS.items():
            original = package / "models" / name
            fixed = package / "models" / ("fixed_" + name)
            shutil.copy(args.torchvision / "models" / name, original)
            shutil.copy(original, fixed)
            report = fix_file(fixed)
            print(f"{name}: fixed {report['fixed']}; left {report['left']}; second run {report['second_run']} fixes;"
                  f" declined {report['declined']}")
            a = importlib.import_module(f"tvshim.models.{original.stem}")
            b = importlib.import_module(f"tvshim.models.{fixed.stem}")
            for builder, kwargs, size in builds:
                row = review_model(lambda: getattr(a, builder)(**kwargs), lambda: getattr(b, builder)(**kwargs),
                                   images(size))
                rows.append({"file": name, "model": builder, **report, **row})
                print(f"  {builder}: {row}")
    return summary(rows)


if __name__ == "__main__":
    sys.exit(main())
