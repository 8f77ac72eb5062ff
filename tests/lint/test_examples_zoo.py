"""Labeled model files (the bundled examples/ zoo, and tests/lint/corpus*/ written from the
rule table alone by people who had not read the linter; in corpus2, 14 QL104 labels were added
afterwards for ops the rule's short list omits but that raise on quint8 tensors, as measured
in qlint/data/quantized_ops.json): qlint reports exactly the labeled lines, nothing else
(allow: labels may go either way)."""
from __future__ import annotations

from pathlib import Path

import pytest

from qlint.config import load_config
from qlint.engine import lint_paths
from tests.lint.labels import labels

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
CORPORA = [Path(__file__).resolve().parent / name for name in ("corpus", "corpus2", "corpus4", "corpus5", "corpus6")]
FILES = sorted(EXAMPLES.glob("*.py")) + [f for corpus in CORPORA for f in sorted(corpus.glob("*.py"))]


@pytest.fixture(scope="module")
def findings_by_file():
    found = lint_paths(FILES, load_config(start=EXAMPLES), jobs=1)
    by_file = {}
    for finding in found:
        by_file.setdefault(Path(finding.path), set()).add((finding.line, finding.code))
    return by_file


def test_labeled_files_exist():
    assert all(len(list(folder.glob("*.py"))) >= 5 for folder in (EXAMPLES, *CORPORA))


@pytest.mark.parametrize("path", FILES, ids=[f"{p.parent.name}/{p.name}" for p in FILES])
def test_findings_match_labels(path, findings_by_file):
    expected, allowed = labels(path.read_text())
    found = findings_by_file.get(path, set())
    assert expected, f"{path.name} has no labeled hazard"
    assert found >= expected and not (found - expected - allowed), (
        f"{path.name}: missed {sorted(expected - found)}, unexpected {sorted(found - expected - allowed)}")


CORPUS3 = Path(__file__).resolve().parent / "corpus3"
CORPUS8 = Path(__file__).resolve().parent / "corpus8"


def _score(folder: Path, codes: tuple = ("QL",)):
    """(precision, recall, missed, unexpected) of qlint on a labeled folder's files."""
    files = sorted(folder.glob("*.py"))
    found = {(Path(f.path), f.line, f.code) for f in lint_paths(files, load_config(start=folder), jobs=1)
             if f.code.startswith(codes)}
    expected, allowed = set(), set()
    for path in files:
        labeled, either = labels(path.read_text())
        expected |= {(path, line, code) for line, code in labeled}
        allowed |= {(path, line, code) for line, code in either}
    true = found & expected
    precision = len(true) / len(found - allowed | true) if found - allowed | true else 1.0
    return precision, len(true) / len(expected), sorted(expected - found), sorted(found - expected - allowed)


def test_third_independent_corpus_keeps_its_score():
    """corpus3 was labeled from the rule table alone; two of its labels are judgement calls
    qlint does not follow (reuse of a parameterless user module; a nested submodule bound
    under a second name), so it is held to a score, not to every label."""
    precision, recall, missed, unexpected = _score(CORPUS3)
    assert precision >= 0.99 and recall >= 0.97, (
        f"precision {precision:.3f}, recall {recall:.3f}; missed {missed}; unexpected {unexpected}")


def test_script_corpus_keeps_its_score():
    """corpus8: quantization scripts labeled blind for QL601-QL607 (issue 8) and checked on
    torch 2.13 by its verify script; only those codes are labeled there."""
    precision, recall, missed, unexpected = _score(CORPUS8, codes=("QL6",))
    assert precision >= 0.97 and recall >= 0.95, (
        f"precision {precision:.3f}, recall {recall:.3f}; missed {missed}; unexpected {unexpected}")


CORPUS7 = Path(__file__).resolve().parent / "corpus7"


def test_region_corpus_keeps_its_score():
    """corpus7: quantization regions (QL701-QL705, then QL1xx-QL5xx in a second pass) labeled
    blind to the implementation and checked against torch 2.13 by its verify script; held to
    precision >= 0.97 (issue 7) on every code."""
    precision, recall, missed, unexpected = _score(CORPUS7)
    assert precision >= 0.97 and recall >= 0.95, (
        f"precision {precision:.3f}, recall {recall:.3f}; missed {missed}; unexpected {unexpected}")


CORPUS9 = Path(__file__).resolve().parent / "corpus9"


def test_held_out_model_corpus_keeps_its_score():
    """corpus9: transformers/torchvision/timm/ultralytics-style models and quantization scripts,
    labeled blind and checked on torch 2.13 by its verify script (README: "Scored against
    qlint"). Four misses remain: QL503 with fuse groups computed in a loop over self.modules()
    (mobilenet_v3_quant.py:95/:116) and QL604/QL602 on a model that is a function parameter
    (qat_finetune.py:85/:93)."""
    precision, recall, missed, unexpected = _score(CORPUS9)
    assert precision >= 0.995 and recall >= 0.96, (
        f"precision {precision:.3f}, recall {recall:.3f}; missed {missed}; unexpected {unexpected}")
