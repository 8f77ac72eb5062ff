"""The command's result cache (.qlint_cache/): warm runs import no libcst and give the same
output; content, settings, qlint and the files a result depends on invalidate it."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.test_cli import CLEAN, HAZARD

# Runs qlint's main in a fresh interpreter; prints its output, then what it imported.
PROBE = textwrap.dedent(
    """\
    import io, json, sys, contextlib
    from qlint.cli import main
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = main(sys.argv[1:])
    print(json.dumps({"status": status, "out": out.getvalue(),
                      "libcst": "libcst" in sys.modules, "engine": "qlint.engine" in sys.modules}))
    """
)
BASE = "import torch.nn as nn\n\n\nclass Base(nn.Module):\n    pass\n"
NOT_A_MODULE = "class Base:\n    pass\n"
CHILD = ("from pkg.base import Base\n\n\nclass Child(Base):\n    def forward(self, x):\n"
         "        return x + x\n")


def probe(cwd: Path, *argv: str) -> dict:
    result = subprocess.run([sys.executable, "-c", PROBE, *argv], capture_output=True, text=True, cwd=cwd,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    return {**json.loads(result.stdout), "err": result.stderr}


@pytest.fixture
def project(tmp_path):
    (tmp_path / "pyproject.toml").write_text("[tool.qlint]\n")
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "block.py").write_text(HAZARD)
    (tmp_path / "models" / "clean.py").write_text(CLEAN)
    pkg = tmp_path / "pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "base.py").write_text(BASE)
    (pkg / "child.py").write_text(CHILD)
    return tmp_path


def test_a_warm_run_gives_the_same_output_and_imports_no_libcst(project):
    cold = probe(project, ".")
    assert cold["libcst"] and cold["status"] == 1
    assert "models/block.py:11:16: QL301" in cold["out"] and "pkg/child.py:6:16: QL301" in cold["out"]
    warm = probe(project, ".")
    assert (warm["status"], warm["out"]) == (cold["status"], cold["out"])
    assert not warm["libcst"] and not warm["engine"], "a fully warm run must parse nothing"
    # The same results from another directory, naming the paths as given there.
    inside = probe(project / "models", ".")
    assert "block.py:11:16: QL301" in inside["out"]


def test_the_cache_lives_at_the_project_root_and_git_ignores_it(project):
    probe(project / "models", "block.py")
    cache = project / ".qlint_cache"
    assert cache.is_dir() and (cache / ".gitignore").read_text().splitlines()[-1] == "*"
    assert (cache / "CACHEDIR.TAG").read_text().startswith("Signature: 8a477f597d28d172789f06886806bc55")
    subprocess.run(["git", "init", "-q"], cwd=project, check=True)
    status = subprocess.run(["git", "status", "--porcelain", "--untracked-files=all"], cwd=project,
                            capture_output=True, text=True, check=True).stdout
    assert "qlint_cache" not in status and "models/block.py" in status


def test_no_cache_neither_reads_nor_writes(project):
    assert probe(project, ".", "--no-cache")["libcst"]
    assert not (project / ".qlint_cache").exists()


def test_an_unwritable_cache_is_a_warning_and_the_run_goes_on(project):
    (project / ".qlint_cache").write_text("a file where the folder would go")
    result = probe(project, ".")
    assert result["status"] == 1 and "pkg/child.py:6:16: QL301" in result["out"]
    assert "qlint: warning: cannot write the cache in" in result["err"]
    assert "qlint: warning" not in probe(project, ".", "--no-cache")["err"]


def test_changing_a_base_class_file_invalidates_its_dependents(project):
    assert "pkg/child.py:6:16: QL301" in probe(project, ".")["out"]
    (project / "pkg" / "base.py").write_text(NOT_A_MODULE)
    after = probe(project, ".")
    assert "pkg/child.py" not in after["out"]
    assert after["out"] == probe(project, ".", "--no-cache")["out"]
    (project / "pkg" / "base.py").write_text(BASE)
    assert "pkg/child.py:6:16: QL301" in probe(project, ".")["out"]


def test_an_edited_file_is_linted_again_with_the_others_summaries_from_the_cache(project):
    probe(project, ".")
    (project / "pkg" / "child.py").write_text(CHILD + "\n\nclass Other(Base):\n    def forward(self, x):\n"
                                              "        return x * x\n")
    warm = probe(project, ".")
    assert warm["out"] == probe(project, ".", "--no-cache")["out"]
    assert "pkg/child.py:11:16: QL301" in warm["out"]


def test_settings_and_file_sets_key_the_results(project):
    probe(project, ".")
    (project / "pyproject.toml").write_text('[tool.qlint]\nignore = ["QL301"]\n')
    changed = probe(project, ".")
    assert changed["libcst"] and changed["status"] == 0
    # A run of one file knows less of the project than a run of all: its own result.
    (project / "pyproject.toml").write_text("[tool.qlint]\n")
    whole = probe(project, ".")
    alone = probe(project, "pkg/child.py")
    assert alone["out"] == probe(project, "pkg/child.py", "--no-cache")["out"]
    assert probe(project, ".")["out"] == whole["out"]


def test_a_damaged_cache_is_ignored_and_rewritten(project):
    cold = probe(project, ".")
    for stored in (project / ".qlint_cache").rglob("*"):
        if stored.is_file() and stored.suffix in (".json", ".pickle"):
            stored.write_bytes(b'{"files": {"x": 1}}' if stored.suffix == ".json" else b"garbage")
    assert probe(project, ".")["out"] == cold["out"]
    again = probe(project, ".")
    assert again["out"] == cold["out"] and not again["libcst"]
