"""Generate qlint/data/legacy_namespaces.json: where each legacy quantization module lives in torch.ao.

QL505's fix may only write an import that works. For every module under the legacy
namespaces (`torch.quantization`, `torch.nn.quantized`, ...) this imports the legacy module
and looks for its twin: the torch.ao module that holds the same objects. The plain rename
(`torch.quantization.X` -> `torch.ao.quantization.X`) is tried first, then the modules its
objects come from (`torch.quantization._numeric_suite` -> `torch.ao.ns._numeric_suite`). A
twin holds every public object of the legacy module (the same object, or for a submodule a
module of the same name); names the legacy module has and its twin lacks are listed, so that
`from torch.quantization import ABC` stays unfixed. Another module is a twin only when it
holds every public name. A module without a twin is reported unfixed, with the reason.

    python tools/generate_namespace_map.py          # rewrite qlint/data/legacy_namespaces.json
    python tools/generate_namespace_map.py --check  # exit 1 when it is stale for the installed torch
"""
from __future__ import annotations

import argparse
import importlib
import json
import pkgutil
import sys
import types
import warnings
from pathlib import Path

import torch

MAP_PATH = Path(__file__).resolve().parents[1] / "qlint" / "data" / "legacy_namespaces.json"
GENERATED_BY = "tools/generate_namespace_map.py"
REGENERATE_COMMAND = "python tools/generate_namespace_map.py"
LEGACY = {
    "torch.quantization": "torch.ao.quantization",
    "torch.nn.quantized": "torch.ao.nn.quantized",
    "torch.nn.intrinsic": "torch.ao.nn.intrinsic",
    "torch.nn.qat": "torch.ao.nn.qat",
    "torch.nn.quantizable": "torch.ao.nn.quantizable",
}


def _import(name: str):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return importlib.import_module(name)
    except Exception:  # a module that does not import is no twin
        return None


def legacy_modules() -> list[str]:
    names = []
    for root in LEGACY:
        module = _import(root)
        names.append(root)
        for info in pkgutil.walk_packages(module.__path__, root + "."):
            names.append(info.name)
    return sorted(names)


def _public(module) -> dict:
    return {name: value for name, value in vars(module).items() if not name.startswith("__")}


def _not_in(legacy, twin) -> list[str]:
    """Names of `legacy` that `twin` does not hold (same object, or a module of that name)."""
    missing = []
    for name, value in _public(legacy).items():
        other = getattr(twin, name, None)
        if other is value or (isinstance(value, types.ModuleType) and isinstance(other, types.ModuleType)):
            continue
        missing.append(name)
    return sorted(missing)


def _candidates(name: str, legacy) -> list[str]:
    root = next(r for r in LEGACY if name == r or name.startswith(r + "."))
    found = [LEGACY[root] + name[len(root):]]
    origins = sorted({getattr(v, "__module__", None) or "" for v in _public(legacy).values()
                      if isinstance(v, type) or callable(v)})
    for origin in origins:
        parts = origin.split(".")
        for k in range(len(parts), 1, -1):  # the defining module and the packages above it
            candidate = ".".join(parts[:k])
            if candidate.startswith("torch.ao.") and candidate not in found:
                found.append(candidate)
    return found


def twin_of(name: str) -> dict:
    legacy = _import(name)
    if legacy is None:
        return {"twin": None, "why": "the legacy module does not import with this torch"}
    renamed, *others = _candidates(name, legacy)
    module = _import(renamed)
    if module is not None:  # the plain rename: names it lacks are listed (and left unfixed)
        return {"twin": renamed, "not_in_twin": _not_in(legacy, module)}
    best = None
    for candidate in others:
        module = _import(candidate)
        if module is None or module is legacy:
            continue
        missing = _not_in(legacy, module)
        public_missing = [m for m in missing if not m.startswith("_")]
        if not public_missing and (best is None or len(missing) < len(best[1])):
            best = (candidate, missing)
            if not missing:
                break
    if best is None:
        return {"twin": None, "why": "no torch.ao module holds its names"}
    return {"twin": best[0], "not_in_twin": best[1]}


def build_map() -> dict:
    names = legacy_modules()
    for name in names:  # every submodule imported first: parents then show them all alike
        _import(name)
    return {
        "generated_by": GENERATED_BY,
        "torch_version": torch.__version__,
        "legacy": LEGACY,
        "modules": {name: twin_of(name) for name in names},
    }


def render(table: dict) -> str:
    return json.dumps(table, indent=1, sort_keys=True) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="compare with the shipped map; exit 1 if stale")
    options = parser.parse_args(argv)
    text = render(build_map())
    if options.check:
        if not MAP_PATH.exists() or MAP_PATH.read_text() != text:
            print(f"{MAP_PATH} is stale for torch {torch.__version__}: regenerate with `{REGENERATE_COMMAND}`",
                  file=sys.stderr)
            return 1
        print(f"{MAP_PATH} is up to date")
        return 0
    MAP_PATH.write_text(text)
    modules = json.loads(text)["modules"]
    print(f"wrote {MAP_PATH}: {len(modules)} legacy modules, "
          f"{sum(m['twin'] is None for m in modules.values())} without a torch.ao twin")
    return 0


if __name__ == "__main__":
    sys.exit(main())
