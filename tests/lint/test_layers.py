"""qlint/semantic reads bottom-up (names -> summaries -> index -> interpreters -> FileModel):
each module imports only modules listed before it in `qlint.semantic.LAYERS`, at the top of
the file or inside a function alike."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

import qlint.semantic
from qlint.semantic import LAYERS

PACKAGE = Path(qlint.semantic.__file__).resolve().parent


def _imported(path: Path) -> set[str]:
    """The qlint.semantic modules a file imports, anywhere in it."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module == "qlint.semantic":
                found |= {alias.name for alias in node.names}
            elif node.module.startswith("qlint.semantic."):
                found.add(node.module.split(".")[2])
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[2] for a in node.names if a.name.startswith("qlint.semantic.")}
    return found


def test_every_module_is_in_the_documented_order():
    modules = {p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    assert modules == set(LAYERS), f"not in LAYERS: {sorted(modules - set(LAYERS))}; gone: {sorted(set(LAYERS) - modules)}"


@pytest.mark.parametrize("name", LAYERS)
def test_a_module_imports_only_modules_below_it(name):
    above = set(LAYERS[LAYERS.index(name):])
    wrong = sorted(_imported(PACKAGE / f"{name}.py") & above)
    assert not wrong, f"qlint/semantic/{name}.py imports {wrong}, at or above it in LAYERS"


def test_the_check_sees_a_call_back_up(tmp_path):
    path = tmp_path / "index.py"
    path.write_text("def f():\n    from qlint.semantic.forward import trace_forward\n")
    assert _imported(path) == {"forward"}
