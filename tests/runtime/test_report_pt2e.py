"""quant_report and `qlint report --flow pt2e` on torchao PT2E models (torch.export, then
prepare_pt2e / prepare_qat_pt2e with X86InductorQuantizer).

Rows: a conv/linear node with its weight point and the output point after its fused
bn/relu, or another observed node (``add``, ``mean``, the input), named by node and placed
by source module path. Ground truth: the conv/linear layers the runtime finds in
``convert_pt2e``'s output (``qlint.runtime._flow.quantized_layers``), by source module path.
"""

from __future__ import annotations

import copy
import importlib.util
import json
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torchao.quantization.pt2e", reason="torchao is not installed")

from models import QUANT_WARNINGS  # noqa: E402
from torchao.quantization.pt2e.quantize_pt2e import prepare_pt2e, prepare_qat_pt2e  # noqa: E402
from torchao.quantization.pt2e.quantizer.x86_inductor_quantizer import (  # noqa: E402
    X86InductorQuantizer,
    get_default_x86_inductor_quantization_config,
)

from pytest_qlint import quant_report  # noqa: E402
from qlint.cli import main  # noqa: E402
from qlint.runtime._flow import quantized_layers  # noqa: E402
from qlint.runtime._twins import converted_copy, kind_of  # noqa: E402

pytestmark = [*QUANT_WARNINGS, pytest.mark.filterwarnings("ignore::DeprecationWarning"),
              pytest.mark.filterwarnings("ignore::UserWarning")]
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
CONV_LINEAR = {"conv1d", "conv2d", "conv3d", "linear"}


def zoo_resnet():
    spec = importlib.util.spec_from_file_location("zoo_resnet_pt2e", EXAMPLES / "resnet.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.QuantizableResNet()


def pt2e_prepared(model, example, *, qat: bool):
    torch.manual_seed(0)
    exported = torch.export.export(model.train(qat), (example,)).module()
    quantizer = X86InductorQuantizer().set_global(get_default_x86_inductor_quantization_config(is_qat=qat))
    prepared = (prepare_qat_pt2e if qat else prepare_pt2e)(exported, quantizer)
    with torch.no_grad():
        for seed in range(2):
            prepared(torch.randn(example.shape, generator=torch.Generator().manual_seed(seed)))
    return prepared


EXAMPLE_SHAPE = (4, 3, 16, 16)


@pytest.fixture(scope="module")
def prepared_models():
    """(example, {"ptq": model, "qat": model}): the zoo ResNet through prepare_(qat_)pt2e, once."""
    example = torch.randn(EXAMPLE_SHAPE, generator=torch.Generator().manual_seed(9))
    return example, {flow: pt2e_prepared(zoo_resnet(), example, qat=flow == "qat") for flow in ("ptq", "qat")}


@pytest.fixture(scope="module")
def converted_layers(prepared_models):
    """Source module paths of the conv/linear layers of convert_pt2e(the PTQ model)."""
    prepared = prepared_models[1]["ptq"]
    return sorted(layer.module_path for layer in quantized_layers(converted_copy(prepared, kind_of(prepared))))


@pytest.mark.parametrize("flow", ["ptq", "qat"])
def test_rows_are_the_conv_and_linear_layers_of_convert_pt2e(prepared_models, converted_layers, flow, monkeypatch):
    example, models = prepared_models
    prepared, qat = models[flow], flow == "qat"
    if qat:
        # convert_pt2e of a QAT model re-exports it for each conv-bn pattern (about 100
        # torch.export calls, over a minute here): the rows do not need it, and the QAT
        # model quantizes the same modules as the PTQ one.
        monkeypatch.setattr("qlint.runtime.report._converted_copy", lambda model: (None, "skipped"))
    report = quant_report(prepared, example, sensitivity=False)
    weighted = [row["module"] for row in report.rows if row["kind"] in CONV_LINEAR]
    expected = converted_layers
    assert sorted(weighted) == sorted(expected) and len(set(weighted)) == len(weighted)
    assert all(row["weight"] == "per-channel int8" for row in report.rows if row["kind"] in CONV_LINEAR)
    assert report.flow == ("pt2e qat" if qat else "pt2e ptq")
    assert report.rows[0]["name"] == "input:x" and report.rows[0]["module"] is None
    fused = {row["module"] for row in report.rows if row["fused"]}
    assert "conv1" in fused  # conv1 -> bn1 -> relu: one layer, the output point after the relu


def test_planted_weights_rank_first(prepared_models):
    example, models = prepared_models
    prepared = copy.deepcopy(models["ptq"])
    assert quant_report(prepared, example).ranked()[0]["module"] != "stages.0.conv1"
    with torch.no_grad():
        prepared.get_parameter("stages.0.conv1.weight").mul_(100)
    report = quant_report(prepared, example)
    assert report.ranked()[0]["module"] == "stages.0.conv1", str(report)
    top_line = str(report).splitlines()[2]
    assert f"{report.ranked()[0]['name']} [stages.0.conv1]" in top_line


def test_qlint_report_flow_pt2e(tmp_path, monkeypatch, capsys):
    (tmp_path / "pt2emodels.py").write_text(
        "from torch import nn\n\n"
        "def build():\n"
        "    return nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(), nn.Linear(64, 2))\n"
    )
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("sys.path", list(__import__("sys").path))
    code = main(["report", "pt2emodels:build", "--input", "2,3,6,6", "--flow", "pt2e",
                 "-o", "out.html", "--json", "out.json"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "(pt2e ptq, engine x86)" in out and "PASS assert_parity" in out
    data = json.loads((tmp_path / "out.json").read_text())
    assert {row["kind"] for row in data["rows"]} >= {"conv2d", "linear"}
