"""quant_test_suite: the documented example passes; each planted bug fails its item, and only it.

The conftest.py and test module are read from docs/test-suite.md, so the docs cannot drift."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

pytest.importorskip("torch")
# torch registers an operator library once per process. A module that registers one, imported
# first inside an in-process inner run, is dropped when that run ends and registers again when
# the next run imports it: "Only a single TORCH_LIBRARY can be used to register the namespace
# _inductor_test" (seen when another test's order left torch's compiler stack unimported).
# Import it here, outside the inner runs, so that every run finds it already registered.
pytest.importorskip("torch._inductor.test_operators")

from pytest_qlint import quant_test_suite  # noqa: E402

DOC = Path(__file__).resolve().parents[2] / "docs" / "test-suite.md"
ITEMS = [
    "test_fusion_applied",
    "test_observers_calibrated",
    "test_fake_quant_enabled",
    "test_qparams_in_optimizer",
    "test_toggles",
    "test_parity[x86]",
    "test_parity[qnnpack]",
    "test_converted",
]
HEADER = """
import torch
from torch import nn
from torch.ao.quantization import (FakeQuantize, MovingAverageMinMaxObserver, QConfig,
    default_per_channel_weight_fake_quant, disable_fake_quant, fuse_modules_qat,
    get_default_qat_qconfig, prepare_qat, DeQuantStub, QuantStub)
from conftest import TinyNet, example_inputs
from pytest_qlint import quant_test_suite
from pytest_qlint.suite import default_prepare
"""

PLANTED = {
    "test_fusion_applied": """
class Unfused(TinyNet):
    def fuse_model(self, is_qat=False):
        fuse_modules_qat(self, [["conv1", "bn1", "relu1"]], inplace=True)  # forgot conv2/bn2

TestPlanted = quant_test_suite(Unfused, example_inputs)
""",
    "test_observers_calibrated": """
TestPlanted = quant_test_suite(TinyNet, example_inputs, calibrate=lambda model, inputs: None)
""",
    "test_fake_quant_enabled": """
def prepare(model, engine):
    prepared, optimizer = default_prepare(model, engine, "qat")
    prepared.conv2.activation_post_process.apply(disable_fake_quant)
    return prepared, optimizer

TestPlanted = quant_test_suite(TinyNet, example_inputs, prepare=prepare)
""",
    "test_qparams_in_optimizer": """
def prepare(model, engine):
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)  # before prepare_qat
    model.train().fuse_model(is_qat=True)
    model.qconfig = get_default_qat_qconfig(engine)
    return prepare_qat(model), optimizer  # prepare_qat copies every module

TestPlanted = quant_test_suite(TinyNet, example_inputs, prepare=prepare)
""",
    "test_toggles": """
class IgnoresItsSwitch(FakeQuantize):
    def forward(self, x):
        enabled = self.fake_quant_enabled.clone()
        self.fake_quant_enabled.fill_(1)
        try:
            return super().forward(x)
        finally:
            self.fake_quant_enabled.copy_(enabled)

def prepare(model, engine):
    model.train().fuse_model(is_qat=True)
    model.qconfig = QConfig(
        activation=IgnoresItsSwitch.with_args(observer=MovingAverageMinMaxObserver, quant_min=0, quant_max=255),
        weight=default_per_channel_weight_fake_quant)
    prepared = prepare_qat(model)
    return prepared, torch.optim.SGD(prepared.parameters(), lr=0.01)

TestPlanted = quant_test_suite(TinyNet, example_inputs, prepare=prepare)
""",
    "test_parity": """
class CatOfDifferentRanges(nn.Module):
    def __init__(self):
        super().__init__()
        self.quant, self.dequant = QuantStub(), DeQuantStub()
        self.small = nn.Conv2d(3, 4, 3)
        self.large = nn.Conv2d(3, 4, 3)
        self.head = nn.Conv2d(8, 4, 1)
        with torch.no_grad():
            self.large.weight.mul_(10)

    def forward(self, x):
        x = self.quant(x)
        return self.dequant(self.head(torch.cat([self.small(x), self.large(x)], 1)))

TestPlanted = quant_test_suite(CatOfDifferentRanges, example_inputs)
""",
}


def doc_files() -> dict[str, str]:
    """The code blocks of docs/test-suite.md that start with `# FILENAME.py`."""
    blocks = re.findall(r"```python\n# (\w+\.py)\n(.*?)```", DOC.read_text(), re.S)
    return {name: body for name, body in blocks}


def outcomes(pytester) -> dict[str, str]:
    result = pytester.runpytest("-v", "-rs", "-p", "no:cacheprovider", "-p", "no:xdist", "-W",
                                "ignore::DeprecationWarning", "-W", "ignore::UserWarning")
    found = dict(re.findall(r"::Test\w+::(\S+) (PASSED|FAILED|SKIPPED|ERROR)", result.stdout.str()))
    return found, result


def test_documented_example_passes(pytester):
    files = doc_files()
    assert set(files) == {"conftest.py", "test_quant.py"}
    pytester.makepyfile(**{name.removesuffix(".py"): body for name, body in files.items()})
    found, result = outcomes(pytester)
    assert found == {item: "PASSED" for item in ITEMS}, result.stdout.str()


@pytest.mark.parametrize("item", list(PLANTED))
def test_planted_bug_fails_its_item_only(pytester, item):
    pytester.makepyfile(conftest=doc_files()["conftest.py"], test_planted=HEADER + PLANTED[item])
    found, result = outcomes(pytester)
    failed = sorted(name for name, outcome in found.items() if outcome == "FAILED")
    expected = [name for name in ITEMS if name.split("[")[0] == item]
    assert failed == sorted(expected), result.stdout.str()
    assert set(found) == set(ITEMS), result.stdout.str()
    if item in ("test_observers_calibrated", "test_fake_quant_enabled"):
        assert found["test_parity[x86]"] == "SKIPPED"
        result.stdout.fnmatch_lines([f"*not judged*{item} fails*"])
    else:
        assert all(outcome == "PASSED" for name, outcome in found.items() if name not in failed)


def test_ptq_flow_has_no_fake_quant_items_and_skip_is_honored(pytester):
    pytester.makepyfile(conftest=doc_files()["conftest.py"], test_ptq=HEADER + """
TestPTQ = quant_test_suite(TinyNet, example_inputs, flow="ptq", engines=["x86"],
                           skip={"test_converted": "checked elsewhere"})
""")
    found, result = outcomes(pytester)
    assert found == {"test_fusion_applied": "PASSED", "test_observers_calibrated": "PASSED",
                     "test_parity[x86]": "PASSED", "test_converted": "SKIPPED"}, result.stdout.str()


def test_configuration_mistakes_are_reported():
    with pytest.raises(ValueError, match="flow must be one of qat, ptq"):
        quant_test_suite(object, None, flow="pt2e")
    with pytest.raises(ValueError, match="unknown items in skip=: test_parity_x86"):
        quant_test_suite(object, None, skip={"test_parity_x86": "typo"})
