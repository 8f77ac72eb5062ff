"""QL505's fix writes only imports that work: the legacy-module map shipped in
qlint/data/legacy_namespaces.json matches the installed torch, and every legacy import form
that works before the fix works after it (or is reported unfixed, saying why)."""
from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from qlint.config import load_config  # noqa: E402
from qlint.engine import fix_paths, lint_paths  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


def _load_generator():
    spec = importlib.util.spec_from_file_location("generate_namespace_map", ROOT / "tools" / "generate_namespace_map.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


generator = _load_generator()
SHIPPED = json.loads(generator.MAP_PATH.read_text())


def test_map_is_up_to_date_for_the_installed_torch():
    assert generator.MAP_PATH.read_text() == generator.render(generator.build_map()), (
        f"qlint/data/legacy_namespaces.json is stale for torch {torch.__version__}: "
        f"regenerate with `{generator.REGENERATE_COMMAND}`")


def test_the_map_knows_where_the_moved_modules_went():
    modules = SHIPPED["modules"]
    assert modules["torch.quantization._numeric_suite"]["twin"] == "torch.ao.ns._numeric_suite"
    assert modules["torch.quantization"]["twin"] == "torch.ao.quantization"
    assert "ABC" in modules["torch.quantization"]["not_in_twin"]
    assert modules["torch.quantization.fx.quantization_patterns"]["twin"] is None


# Runs in a fresh interpreter: each original line that works must work after the fix.
CHECK = r'''
import importlib, json, sys, warnings
warnings.simplefilter("ignore")
pairs = json.load(open(sys.argv[1]))
for name in json.load(open(sys.argv[2])):
    try:
        importlib.import_module(name)
    except Exception:
        pass
broken = []
for original, fixed in pairs:
    try:
        exec("import torch\n" + original, {})
    except Exception:
        continue  # broken before the fix: not the fix's business
    try:
        exec("import torch\n" + fixed, {})
    except Exception as error:
        broken.append(f"{original!r} -> {fixed!r}: {type(error).__name__}: {error}")
print(json.dumps(broken))
'''


def _forms() -> list[str]:
    """Every way of naming a legacy module and each of its names: imports and attributes."""
    import warnings

    forms = []
    for name in SHIPPED["modules"]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            module = importlib.import_module(name)
        parent, _, last = name.rpartition(".")
        forms += [f"import {name}", f"import {name} as alias", f"from {parent} import {last}",
                  f"from {parent} import {last} as alias"]
        for attribute in sorted(vars(module)):
            if not attribute.startswith("__"):
                forms += [f"from {name} import {attribute}", f"value = {name}.{attribute}"]
    return forms


def test_every_fixed_legacy_import_still_works(tmp_path):
    forms = _forms()
    path = tmp_path / "legacy.py"
    path.write_text("import torch\n" + "\n".join(forms) + "\n")
    config = load_config(start=tmp_path, select=["QL505"])
    result = fix_paths([path], config)
    assert not result.failed
    fixed = path.read_text().splitlines()[1:]
    assert len(fixed) == len(forms)
    changed = [(before, after) for before, after in zip(forms, fixed) if before != after]
    assert len(changed) > 0.8 * len(forms), "most legacy forms have a torch.ao twin"
    pairs, names = tmp_path / "pairs.json", tmp_path / "names.json"
    pairs.write_text(json.dumps(changed))
    names.write_text(json.dumps(list(SHIPPED["modules"])))
    run = subprocess.run([sys.executable, "-c", CHECK, str(pairs), str(names)], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    broken = json.loads(run.stdout)
    assert broken == [], "\n".join(broken[:20])
    # What stays unfixed is still reported, and says why.
    left = {f.line - 2: f.message for f in lint_paths([path], config, jobs=1)}
    for i, (before, after) in enumerate(zip(forms, fixed)):
        if before == after:
            assert "not fixed" in left[i], (before, left.get(i))


@pytest.mark.parametrize("source, expected", [
    ("from torch.quantization import _numeric_suite as ns\n", "from torch.ao.ns import _numeric_suite as ns\n"),
    ("import torch.quantization._numeric_suite as ns\n", "import torch.ao.ns._numeric_suite as ns\n"),
    ("import torch\nx = torch.quantization._numeric_suite.compare_weights\n",
     "import torch\nx = torch.ao.ns._numeric_suite.compare_weights\n"),
    ("import torch\nx = torch.quantization.convert\n", "import torch\nx = torch.ao.quantization.convert\n"),
    ("from torch.quantization import ABC\n", "from torch.quantization import ABC\n"),
    ("from torch.quantization.fx.quantization_patterns import QuantizeHandler\n",
     "from torch.quantization.fx.quantization_patterns import QuantizeHandler\n"),
    ("from torch.nn.quantized import _reference\n", "from torch.nn.quantized import _reference\n"),
])
def test_fix_targets(tmp_path, source, expected):
    path = tmp_path / "m.py"
    path.write_text(source)
    config = load_config(start=tmp_path, select=["QL505"])
    findings = lint_paths([path], config, jobs=1)
    assert [f.code for f in findings] == ["QL505"]
    fix_paths([path], config)
    assert path.read_text() == expected
    if source == expected:
        assert "not fixed" in findings[0].message


def test_the_advice_knows_torch_ao_quantization_is_deprecated_too():
    from qlint.engine import lint_source

    message = lint_source("import torch.quantization as tq\n", "m.py")[0].message
    assert "use torch.ao.quantization" in message and "torchao" in message
    assert lint_source("import torch.ao.quantization as tq\n", "m.py") == []
