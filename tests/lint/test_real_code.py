"""qlint on code nobody here wrote: torch's own eager quantization test models.

Models torch's quantization tests convert successfully must stay silent; the file as a
whole must lint without an internal failure.
"""
from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import pytest

from qlint.config import load_config
from qlint.engine import lint_paths

spec = importlib.util.find_spec("torch")  # locates torch without importing it
if spec is None or spec.origin is None:
    pytest.skip("torch is not installed", allow_module_level=True)
TORCH = Path(spec.origin).parent
COMMON = TORCH / "testing" / "_internal" / "common_quantization.py"

# Eager models torch's tests fuse, prepare and convert as they are: nothing in them crashes
# after convert, so no error-severity finding (warnings such as inplace ReLUs may remain).
CONVERTED_MODELS = [
    "AnnotatedSingleLayerLinearModel", "AnnotatedTwoLayerLinearModel", "ActivationsTestModel",
    "AnnotatedConvModel", "AnnotatedConvBnReLUModel", "ManualConvLinearQATModel",
    "ManualLinearQATModel", "ResNetBase", "ModelMultipleOps", "ModelMultipleOpsNoAvgPool",
    "QuantStubModel", "ModelForFusion", "SubModelForFusion", "AnnotatedSkipQuantModel",
]


@pytest.fixture(scope="module")
def findings():
    return lint_paths([COMMON], load_config(start=COMMON.parent), jobs=1)


@pytest.fixture(scope="module")
def classes():
    tree = ast.parse(COMMON.read_text())
    return {node.name: node for node in tree.body if isinstance(node, ast.ClassDef)}


def test_common_quantization_lints_without_internal_failure(findings):
    assert findings, "expected real hazards in torch's test models (raw torch.add, inplace ReLUs)"
    assert not [f for f in findings if f.code == "QL000"]


@pytest.mark.parametrize("name", CONVERTED_MODELS)
def test_models_torch_converts_have_no_error(findings, classes, name):
    assert name in classes, f"{name} is no longer in {COMMON.name}"
    node = classes[name]
    errors = [f for f in findings if node.lineno <= f.line <= node.end_lineno and f.severity == "error"]
    assert not errors, "\n".join(f"{f.line}: {f.code} {f.message}" for f in errors)


def test_known_hazards_in_torch_models_are_found(findings, classes):
    """ModelMultipleOpsNoAvgPool applies self.conv2 twice; ModelForFusion builds inplace ReLUs
    with `.to(dtype=...)` chained on the constructor."""
    def codes(name):
        node = classes[name]
        return {f.code for f in findings if node.lineno <= f.line <= node.end_lineno}

    assert "QL401" in codes("ModelMultipleOpsNoAvgPool")
    assert "QL201" in codes("ModelForFusion")
