"""Review: `qlint --fix --unsafe-fixes` on timm model files (not run by CI; timm's code is read
from a checkout and never committed).

    pip install --no-deps timm==1.0.31      # the review's own venv only; not a dependency
    python benchmarks/review_fix_timm.py /work/realcode/timm/timm/models

Each model file is copied twice to a temporary directory, one copy fixed; both are imported
as modules of the installed `timm.models` package (their relative imports resolve to timm's
own helpers and `timm.layers`, which are not fixed: only the file's own classes are). timm
imports torchvision for FrozenBatchNorm2d and its data transforms: a stand-in module answers
those imports, so torchvision (and its C++ ops) is not needed. Per model: fixes applied by
rule, the QL1xx-QL4xx errors left and the fixes' reasons for declining, a strict state_dict
load, bit-identical eval float outputs, and the eager flow of benchmarks/fix_review.py.
Results: benchmarks/fix_review.md.
"""
from __future__ import annotations

import argparse
import importlib.abc
import importlib.machinery
import importlib.util
import shutil
import sys
import tempfile
import types
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fix_review import fix_file, images, review_model, summary  # noqa: E402

MODELS = {  # file -> [(builder, input size)]
    "resnet.py": [("resnet18", 64)],
    "mobilenetv3.py": [("mobilenetv3_small_050", 64)],
    "efficientnet.py": [("efficientnet_lite0", 64)],
    "regnet.py": [("regnetx_002", 64)],
    "rexnet.py": [("rexnet_100", 64)],
    "ghostnet.py": [("ghostnet_050", 64)],
    "dla.py": [("dla46_c", 64)],
    "res2net.py": [("res2net50_14w_8s", 64)],
    "selecsls.py": [("selecsls42b", 64)],
    "senet.py": [("legacy_seresnet18", 64)],
    "inception_v3.py": [("inception_v3", 96)],
    "convnext.py": [("convnext_atto", 64)],
}


class _Anything:
    """Stands in for any torchvision name timm touches at import time."""

    def __init__(self, name: str):
        self._name = name

    def __getattr__(self, name: str):
        if name.startswith("__"):
            raise AttributeError(name)
        return _Anything(f"{self._name}.{name}")

    def __call__(self, *args, **kwargs):
        return _Anything(f"{self._name}()")

    def __mro_entries__(self, bases):
        return (object,)


class _FrozenBatchNorm2d(nn.Module):
    def __init__(self, num_features: int, eps: float = 1e-5):
        super().__init__()
        for name in ("weight", "bias", "running_mean", "running_var"):
            self.register_buffer(name, torch.ones(num_features) if name in ("weight", "running_var")
                                 else torch.zeros(num_features))
        self.eps = eps


class _TorchvisionStandIn(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    def find_spec(self, name, path, target=None):
        if name == "torchvision" or name.startswith("torchvision."):
            return importlib.machinery.ModuleSpec(name, self, is_package=True)
        return None

    def create_module(self, spec):
        module = types.ModuleType(spec.name)
        module.__path__ = []
        module.__getattr__ = lambda attr: _Anything(f"{spec.name}.{attr}").__getattr__(attr) \
            if attr.startswith("__") else _Anything(f"{spec.name}.{attr}")
        return module

    def exec_module(self, module):
        if module.__name__ == "torchvision.ops.misc":
            module.FrozenBatchNorm2d = _FrozenBatchNorm2d


def _import_into_timm(path: Path, name: str) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(f"timm.models.{name}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def main(argv=None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("models", type=Path, help="timm/models of a timm checkout")
    parser.add_argument("--only", nargs="*", help="these files only")
    args = parser.parse_args(argv)
    sys.meta_path.insert(0, _TorchvisionStandIn())
    import timm  # noqa: F401  (registers timm's own models first)

    torch.set_num_threads(1)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, builds in MODELS.items():
            if args.only and name not in args.only:
                continue
            stem = Path(name).stem
            original, fixed = Path(tmp) / f"original_{name}", Path(tmp) / f"fixed_{name}"
            shutil.copy(args.models / name, original)
            shutil.copy(original, fixed)
            report = fix_file(fixed)
            print(f"{name}: fixed {report['fixed']}; left {report['left']}; second run {report['second_run']} "
                  f"fixes; declined {report['declined']}", flush=True)
            a = _import_into_timm(original, f"qlint_original_{stem}")
            b = _import_into_timm(fixed, f"qlint_fixed_{stem}")
            for builder, size in builds:
                row = review_model(
                    lambda: getattr(a, builder)(pretrained=False), lambda: getattr(b, builder)(pretrained=False),
                    images(size))
                rows.append({"file": name, "model": builder, **report, **row})
                print(f"  {builder}: {row}", flush=True)
    return summary(rows)


if __name__ == "__main__":
    sys.exit(main())
