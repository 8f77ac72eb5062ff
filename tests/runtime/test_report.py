"""quant_report: one row per quantized layer, planted bad layers ranked first, its outputs.

Ground truth for "a quantized layer": a module of ``convert``'s output that carries its own
output qparams (``scale``) or quantized weights (a weight-only Embedding), i.e. everything
convert quantizes except DeQuantize and qparam-free modules such as quantized Dropout. Models: torch's own test models
(``common_quantization``), the examples zoo, and FX-prepared models.
"""

from __future__ import annotations

import copy
import html
import importlib.util
import json
import math
import shutil
import subprocess
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torch.testing._internal.common_quantization")

import torch.ao.quantization as tq  # noqa: E402
from models import (  # noqa: E402
    CONV_BN_RELU_GROUPS,
    QUANT_WARNINGS,
    ConvBnReluNet,
    assert_unchanged,
    calibrated,
    example_input,
    fused,
    fused_qat,
    prepared_ptq,
    prepared_qat,
    quantized_engine,
    randomized_bn,
    snapshot,
)
from test_torch_models import PTQ_CASES, QAT_CASES, _batch  # noqa: E402
from torch import nn  # noqa: E402

from pytest_qlint import quant_report  # noqa: E402
from qlint.runtime._modules import is_quantized_module  # noqa: E402

pytestmark = QUANT_WARNINGS
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
ZOO = [
    ("resnet", "QuantizableResNet", (2, 3, 16, 16)),
    ("fusion", "QuantizableStem", (2, 3, 16, 16)),
    ("mobilenet", "QuantizableMobileNetV3", (2, 3, 32, 32)),
    ("detection", "QuantizableDetector", (2, 3, 64, 64)),
    ("qat_training", "QATNet", (2, 3, 16, 16)),
    ("vit", "QuantizableVisionTransformer", (2, 3, 16, 16)),
]


def quantized_layers(prepared) -> set[str]:
    """Names of the modules convert() gives their own output qparams or quantized weights."""
    converted = tq.convert(copy.deepcopy(prepared).eval())
    return {
        name
        for name, module in converted.named_modules()
        if is_quantized_module(module)
        and (hasattr(module, "scale") or callable(getattr(module, "weight", None)))
    }


def zoo_model(file: str, class_name: str) -> nn.Module:
    spec = importlib.util.spec_from_file_location(f"zoo_{file}", EXAMPLES / f"{file}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, class_name)()


def names(report) -> list[str]:
    return [row["name"] for row in report.rows]


def ptq_case_model(case):
    model = case.build("x86").eval()
    if case.groups:
        tq.fuse_modules(model, case.groups, inplace=True)
    prepared = tq.prepare(model)
    return calibrated(prepared, _batch(case, 0), _batch(case, 1))


def qat_case_model(case):
    model = case.build("x86").train()
    model.qconfig = tq.get_default_qat_qconfig("x86")
    if case.groups:
        tq.fuse_modules_qat(model, case.groups, inplace=True)
    tq.prepare_qat(model, inplace=True)
    calibrated(model, _batch(case, 0), _batch(case, 1))
    model.eval().apply(tq.disable_observer)
    return model


@pytest.mark.parametrize("case", PTQ_CASES, ids=[case.name for case in PTQ_CASES])
def test_rows_are_the_quantized_layers_of_torch_ptq_models(case):
    torch.manual_seed(0)
    with quantized_engine("x86"):
        prepared = ptq_case_model(case)
        report = quant_report(prepared, _batch(case, 2), sensitivity=False)
        assert sorted(names(report)) == sorted(quantized_layers(prepared))
        assert len(set(names(report))) == len(report.rows)


@pytest.mark.parametrize("case", QAT_CASES, ids=[case.name for case in QAT_CASES])
def test_rows_are_the_quantized_layers_of_torch_qat_models(case):
    torch.manual_seed(0)
    with quantized_engine("x86"):
        prepared = qat_case_model(case)
        report = quant_report(prepared, _batch(case, 2), sensitivity=False)
        assert sorted(names(report)) == sorted(quantized_layers(prepared))
        assert all(row["fake_quant"] == "on" for row in report.rows)


@pytest.mark.parametrize(("file", "class_name", "shape"), ZOO, ids=[entry[1] for entry in ZOO])
def test_rows_are_the_quantized_layers_of_the_zoo(file, class_name, shape):
    torch.manual_seed(0)
    with quantized_engine("x86"):
        model = zoo_model(file, class_name).eval()
        if hasattr(model, "fuse_model"):
            model.fuse_model()
        if getattr(model, "qconfig", None) is None:
            model.qconfig = tq.get_default_qconfig("x86")
        example = torch.randn(shape)
        prepared = calibrated(tq.prepare(model), example)
        report = quant_report(prepared, example, sensitivity=False)
        assert sorted(names(report)) == sorted(quantized_layers(prepared))
        assert not report.notes


def _planted_weights(model, layer: str, factor: float = 100.0):
    """Scale one layer's weights after calibration: its calibrated output range is now wrong."""
    module = model.get_submodule(layer)
    if type(module).__module__.startswith("torch.ao.nn.intrinsic.modules"):
        module = module[0]
    with torch.no_grad():
        module.weight.mul_(factor)
    return model


def test_planted_weights_rank_first_on_torch_models():
    torch.manual_seed(0)
    cases = {case.name: case for case in PTQ_CASES}
    with quantized_engine("x86"):
        for name, layer in (("ModelWithSequentialFusion", "features.1.0"),
                            ("AnnotatedSkipQuantModel", "sub.module.fc2")):
            case = cases[name]
            prepared = ptq_case_model(case)
            clean = quant_report(prepared, _batch(case, 2))
            assert clean.ranked()[0]["name"] != layer
            report = quant_report(_planted_weights(prepared, layer), _batch(case, 2))
            assert report.ranked()[0]["name"] == layer, str(report)


@pytest.mark.parametrize("flow", ["ptq", "qat"])
def test_planted_weights_rank_first_on_the_zoo(flow):
    torch.manual_seed(0)
    example = torch.randn(4, 3, 16, 16)
    with quantized_engine("x86"):
        model = zoo_model("resnet", "QuantizableResNet")
        if flow == "ptq":
            model.eval().fuse_model()
            model.qconfig = tq.get_default_qconfig("x86")
            prepared = calibrated(tq.prepare(model), example)
        else:
            model.train().fuse_model(is_qat=True)
            model.qconfig = tq.get_default_qat_qconfig("x86")
            prepared = calibrated(tq.prepare_qat(model), example, torch.randn(4, 3, 16, 16))
            prepared.eval().apply(tq.disable_observer)
        layer = "stages.1.conv2"
        assert quant_report(prepared, example).ranked()[0]["name"] != layer
        report = quant_report(_planted_weights(prepared, layer), example)
        top = report.ranked()[0]
        assert top["name"] == layer, str(report)
        assert top["clipped_share"] > 0.1


def test_fake_quant_switched_off_to_keep_a_layer_float_ranks_first():
    """Switching a layer's fake-quant and observer off does not keep it float: convert
    quantizes it with the never-calibrated qparams (scale 1), the worst layer of the model."""
    torch.manual_seed(0)
    with quantized_engine("x86"):
        model = prepared_qat(fused_qat(randomized_bn(zoo_model("qat_training", "QATNet")),
                                       [["conv1", "bn1", "relu1"], ["conv2", "bn2"]]))
        model.conv2.activation_post_process.apply(tq.disable_fake_quant)
        model.conv2.activation_post_process.apply(tq.disable_observer)
        example = torch.randn(4, 3, 16, 16)
        calibrated(model, example)
        model.eval().apply(tq.disable_observer)
        report = quant_report(model, example)
        top = report.ranked()[0]
        assert (top["name"], top["fake_quant"], top["scale"]) == ("conv2", "off", 1.0), str(report)
        assert top["converted_sqnr_db"] == math.inf  # convert quantizes it just the same


def test_torch_model_with_fake_quant_off_ranks_first():
    torch.manual_seed(0)
    case = {case.name: case for case in QAT_CASES}["ModelWithSequentialFusion"]
    with quantized_engine("x86"):
        model = case.build("x86").train()
        model.qconfig = tq.get_default_qat_qconfig("x86")
        tq.fuse_modules_qat(model, case.groups, inplace=True)
        tq.prepare_qat(model, inplace=True)
        model.features[1][0].activation_post_process.apply(tq.disable_fake_quant)
        model.features[1][0].activation_post_process.apply(tq.disable_observer)
        calibrated(model, _batch(case, 0), _batch(case, 1))
        model.eval()
        report = quant_report(model, _batch(case, 2))
        assert report.ranked()[0]["name"] == "features.1.0", str(report)


def _fx_net():
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(3, 4, 3, padding=1)
            self.bn1 = nn.BatchNorm2d(4)
            self.conv2 = nn.Conv2d(4, 4, 3, padding=1)
            self.fc = nn.Linear(4, 5)

        def forward(self, x):
            y = torch.relu(self.bn1(self.conv1(x)))
            y = y + self.conv2(y)
            return self.fc(y.mean((2, 3)))

    return randomized_bn(Net())


@pytest.mark.parametrize("flow", ["ptq", "qat"])
def test_fx_rows_name_modules_and_function_nodes(flow):
    from torch.ao.quantization import get_default_qat_qconfig_mapping, get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import prepare_fx, prepare_qat_fx

    torch.manual_seed(0)
    example = example_input(4)
    with quantized_engine("x86"):
        if flow == "ptq":
            prepared = prepare_fx(_fx_net().eval(), get_default_qconfig_mapping("x86"), (example,))
        else:
            prepared = prepare_qat_fx(_fx_net().train(), get_default_qat_qconfig_mapping("x86"), (example,))
        calibrated(prepared, example)
        prepared.eval()
        report = quant_report(prepared, example)
    by_name = {row["name"]: row for row in report.rows}
    assert list(by_name) == ["input:x", "conv1", "relu", "conv2", "add", "fc"]
    assert by_name["add"]["module"] is None and by_name["add"]["kind"] == "add"
    assert by_name["conv1"]["fused"] is (flow == "qat")  # ConvBn2d in QAT, BN folded in PTQ
    assert all(by_name[name]["converted_sqnr_db"] > 30 for name in ("conv1", "conv2", "fc"))
    assert report.flow == f"fx {flow}"


def test_figures_text_json_and_model_left_unchanged():
    torch.manual_seed(0)
    example = example_input(4)
    model = calibrated(prepared_ptq(fused(randomized_bn(ConvBnReluNet()), CONV_BN_RELU_GROUPS)), example)
    before = snapshot(model)
    report = quant_report(model, example, checks=True)
    assert_unchanged(model, before)
    assert [row["name"] for row in report.rows] == ["quant", "conv1", "conv2"]
    for row in report.rows:
        assert row["sqnr_db"] > 25 and row["sensitivity_db"] > 30
        assert row["clipped_share"] == 0.0 and row["converted_sqnr_db"] == math.inf
        assert row["range_min"] <= row["range_max"]
    assert report.rows[1]["weight"] == "per-channel qint8"
    assert [check.name for check in report.checks if check.passed] == [
        "assert_fused", "assert_calibrated", "assert_parity", "assert_converted"]
    lines = str(report).splitlines()
    assert lines[0].startswith("quant_report: ConvBnReluNet (eager ptq, engine x86): 3 quantized layers")
    header = lines[1]
    assert header.split() == ["rank", "layer", "kind", "sensitivity", "sqnr", "act_sqnr", "clipped",
                              "converted", "scale", "zp", "range", "fq"]
    ranked = [line.split()[1] for line in lines[2:5]]
    assert ranked == [row["name"] for row in report.ranked()]
    sensitivity_column = header.index("sensitivity") + len("sensitivity")
    assert {line[sensitivity_column - 1] for line in lines[2:5]} != {" "}  # right-aligned
    data = json.loads(report.to_json())
    assert data["ranking"] == ranked and data["rows"][0]["converted_sqnr_db"] == "inf"
    assert set(data["rows"][0]) >= {"name", "kind", "sqnr_db", "sensitivity_db", "clipped_share",
                                    "scale", "zero_point", "fused", "observer"}


def test_sweep_caps():
    torch.manual_seed(0)
    example = example_input(4)
    model = calibrated(prepared_ptq(fused(randomized_bn(ConvBnReluNet()), CONV_BN_RELU_GROUPS)), example)
    _planted_weights(model, "conv2")
    capped = quant_report(model, example, max_layers=1)
    swept = [row["name"] for row in capped.rows if row["sensitivity_db"] is not None]
    assert swept == ["conv2"]  # the worst activation SQNR is swept first
    assert capped.summary["sweep_capped_by"] == "max_layers=1"
    assert "sensitivity swept 1 of 3 layers (max_layers=1)" in str(capped)
    timed = quant_report(model, example, time_budget=0.0)
    assert timed.summary["swept_layers"] == 1
    assert timed.summary["sweep_capped_by"] == "time budget of 0 s reached"
    calls = []
    quant_report(model, example, progress=lambda done, total, layer: calls.append((done, total)))
    assert calls == [(1, 3), (2, 3), (3, 3)]
    off = quant_report(model, example, sensitivity=False)
    assert all(row["sensitivity_db"] is None for row in off.rows)


def test_unprepared_model_is_refused():
    with pytest.raises(ValueError, match="expected a prepared model"):
        quant_report(ConvBnReluNet(), example_input())


def _report():
    torch.manual_seed(0)
    example = example_input(4)
    model = calibrated(prepared_qat(fused_qat(randomized_bn(ConvBnReluNet()), CONV_BN_RELU_GROUPS)), example)
    model.eval().apply(tq.disable_observer)
    return quant_report(model, example, checks=True)


def test_html_is_self_contained_with_plots(tmp_path):
    pytest.importorskip("matplotlib")
    path = tmp_path / "report.html"
    _report().to_html(path)
    text = path.read_text()
    assert text.count('src="data:image/png;base64,') == 3
    assert "http://" not in text and "https://" not in text and "<script" not in text
    assert "Layers ranked by sensitivity" in text and "conv1" in text


def test_html_without_matplotlib_has_tables_and_says_why(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    monkeypatch.setitem(sys.modules, "matplotlib.backends.backend_agg", None)
    path = tmp_path / "report.html"
    _report().to_html(path)
    text = html.unescape(path.read_text())
    assert "<img" not in text and "<table>" in text
    assert "No plots: matplotlib is not installed" in text
    assert "pip install 'torch-qlint[report]'" in text


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
PLOT_COLORS = {(76, 114, 176), (196, 78, 82), (85, 168, 104)}  # SQNR, sensitivity, histogram


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (Debian: apt-get install chromium)")
def test_html_renders_its_plots_in_headless_chromium(tmp_path):
    image = pytest.importorskip("matplotlib.image")
    path = tmp_path / "report.html"
    _report().to_html(path)
    screenshot = tmp_path / "shot.png"
    profile = tmp_path / "profile"
    subprocess.run(
        [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--user-data-dir={profile}", f"--screenshot={screenshot}", "--window-size=1200,2600",
         path.as_uri()],
        check=True, capture_output=True, timeout=120,
    )
    pixels = (image.imread(screenshot)[..., :3] * 255).round().astype(int)
    colors = {tuple(color) for color in pixels.reshape(-1, 3)[::7].tolist()}
    assert len(colors) > 50, "the screenshot is blank"
    found = {color for color in PLOT_COLORS if color in colors}
    assert found == PLOT_COLORS, f"plot colors missing from the screenshot: {PLOT_COLORS - found}"
