"""The test file on each flow page of docs/flows/ runs and passes, as a user would run it."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest.importorskip("torch")

DOCS = Path(__file__).resolve().parents[2] / "docs" / "flows"
PLUGIN = ("-p", "pytest_qlint.plugin", "-p", "no:cacheprovider")
PAGES = sorted(DOCS.glob("*.md"))


def _test_file(page: Path) -> tuple[str, str]:
    """(file name, source) of the page's one ```python block that starts ``# test_...``."""
    blocks = re.findall(r"```python\n(# (test_\w+\.py)\n.*?)```", page.read_text(), re.S)
    assert len(blocks) == 1, f"{page.name}: expected one test file block, found {len(blocks)}"
    source, name = blocks[0]
    return name, source


def test_every_flow_has_a_page():
    assert {page.stem for page in PAGES} == {"eager", "fx", "pt2e", "dynamic"}


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.stem)
def test_the_page_test_file_passes(page, pytester):
    if page.stem == "pt2e":
        pytest.importorskip("torchao", reason="the PT2E page needs torchao: pip install 'torch-qlint[torchao]'")
    name, source = _test_file(page)
    pytester.makepyfile(**{name.removesuffix(".py"): source})
    result = pytester.runpytest_subprocess(
        *PLUGIN, "--quant-engines=x86,qnnpack", "-q", "-W", "ignore::DeprecationWarning"
    )
    result.assert_outcomes(passed=_expected_passes(source, page.stem))


def _expected_passes(source: str, stem: str) -> int:
    tests = len(re.findall(r"^def test_", source, re.M))
    engines = 1 if stem == "pt2e" else 2  # PT2E tests use no quant_engine
    return tests * engines
