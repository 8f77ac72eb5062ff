"""Review: `qlint --fix --unsafe-fixes` on torchvision 0.29's float model files (not run by CI;
their code is read from a torchvision checkout, never committed).

    python benchmarks/review_fix_torchvision.py /work/realcode/torchvision/torchvision

Each model file is copied with the files it imports into a throwaway package (the registry,
weights and preset modules replaced by small stand-ins, so torchvision's C++ ops are not
needed), fixed there, and both versions imported. For each model: the fixes applied (by
rule) and the findings left (by rule), whether the fixed model loads the original's
state_dict with strict=True, and whether its float outputs are bit-identical in eval mode.
"""
from __future__ import annotations

import argparse
import collections
import importlib
import shutil
import sys
import tempfile
from pathlib import Path

import torch

from qlint.config import load_config
from qlint.engine import fix_paths, lint_paths

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
    torch.manual_seed(0)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        package = _package(args.torchvision, root)
        sys.path.insert(0, str(root))
        for name, builds in MODELS.items():
            original = package / "models" / name
            fixed = package / "models" / ("fixed_" + name)
            shutil.copy(args.torchvision / "models" / name, original)
            shutil.copy(original, fixed)
            config = load_config(start=root)
            before = collections.Counter(f.code for f in lint_paths([fixed], config))
            result = fix_paths([fixed], config, unsafe=True)
            after = collections.Counter(f.code for f in lint_paths([fixed], config))
            fixes = {c: before[c] - after.get(c, 0) for c in before if before[c] > after.get(c, 0)}
            print(f"{name}: {sum(result.fixed.values())} fixes applied; findings removed {fixes}; "
                  f"left {dict(sorted(after.items()))}")
            a = importlib.import_module(f"tvshim.models.{original.stem}")
            b = importlib.import_module(f"tvshim.models.{fixed.stem}")
            for builder, kwargs, size in builds:
                torch.manual_seed(0)
                model_a = getattr(a, builder)(**kwargs).eval()
                model_b = getattr(b, builder)(**kwargs).eval()
                with torch.no_grad():  # non-trivial BatchNorm statistics
                    for m in model_a.modules():
                        if isinstance(m, torch.nn.BatchNorm2d):
                            m.running_mean.normal_(0, 0.1)
                            m.running_var.uniform_(0.5, 1.5)
                missing = model_b.load_state_dict(model_a.state_dict(), strict=True)
                x = torch.randn(2, 3, size, size)
                with torch.no_grad():
                    equal = torch.equal(model_a(x.clone()), model_b(x.clone()))
                added = sorted({n.rsplit(".", 1)[-1] for n, _ in model_b.named_modules()}
                               - {n.rsplit(".", 1)[-1] for n, _ in model_a.named_modules()})
                print(f"  {builder}: strict load {'ok' if not missing.missing_keys else missing}, "
                      f"float outputs {'bit-identical' if equal else 'DIFFER'}, new submodule names {added}")
                if not equal:
                    return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
