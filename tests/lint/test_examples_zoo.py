"""The bundled examples/ zoo and the labeled corpus format: qlint reports exactly the
labeled lines, nothing else (allow: labels may go either way)."""
from __future__ import annotations

from pathlib import Path

import pytest

from qlint.config import load_config
from qlint.engine import lint_paths
from tests.lint.labels import labels

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
FILES = sorted(EXAMPLES.glob("*.py"))


@pytest.fixture(scope="module")
def findings_by_file():
    found = lint_paths(FILES, load_config(start=EXAMPLES), jobs=1)
    by_file = {}
    for finding in found:
        by_file.setdefault(Path(finding.path).name, set()).add((finding.line, finding.code))
    return by_file


def test_examples_exist():
    assert len(FILES) >= 5


@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_example_findings_match_labels(path, findings_by_file):
    expected, allowed = labels(path.read_text())
    found = findings_by_file.get(path.name, set())
    assert expected, f"{path.name} has no labeled hazard"
    assert found >= expected and not (found - expected - allowed), (
        f"{path.name}: missed {sorted(expected - found)}, unexpected {sorted(found - expected - allowed)}")
