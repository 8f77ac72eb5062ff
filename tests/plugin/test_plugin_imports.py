"""The plugin loads without torch and without the linter; `--qlint` runs without torch."""

from __future__ import annotations

import subprocess
import sys

PLUGIN = ("-p", "pytest_qlint.plugin")

# Makes `import torch` fail as if torch were not installed, then runs pytest.
WITHOUT_TORCH = """
import sys

class HideTorch:
    def find_spec(self, name, path=None, target=None):
        if name == "torch" or name.startswith("torch."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None

sys.meta_path.insert(0, HideTorch())
import pytest
sys.exit(pytest.main(sys.argv[1:]))
"""


def test_importing_the_plugin_imports_neither_torch_nor_the_linter():
    code = (
        "import sys, pytest_qlint, pytest_qlint.plugin\n"
        "print(sorted(m for m in ('torch', 'torchao', 'libcst', 'qlint.engine') if m in sys.modules))"
    )
    imported = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert imported.stdout.strip() == "[]", imported.stderr


def test_qlint_runs_without_torch_and_fixtures_say_how_to_install_it(pytester, bad_example):
    code, source = bad_example
    pytester.makepyfile(
        bad=source,
        test_fixture="""
        def test_needs_torch(quant_engine):
            pass
        """,
    )

    result = pytester.run(
        sys.executable, "-c", WITHOUT_TORCH, *PLUGIN, "-p", "no:cacheprovider", "--qlint", "--quant-engines=x86", "-rfE"
    )

    result.assert_outcomes(passed=1, failed=1, errors=1)
    result.stdout.fnmatch_lines([f"bad.py:*:*: {code} *"])
    result.stdout.fnmatch_lines(["*ModuleNotFoundError: torch-qlint's runtime checks need torch: pip install 'torch-qlint[[]torch[]]'"])
