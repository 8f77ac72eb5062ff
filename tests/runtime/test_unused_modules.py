"""torchvision's quantizable MobileNetV2/V3 build a ``skip_add`` FloatFunctional in every
inverted residual block and use it only when the block has a residual: its observer never
runs, on any input.  ``assert_calibrated(model, example_inputs)`` runs a copy to tell such
modules from ones never calibrated; ``exclude=`` skips modules by name pattern."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

import torch.ao.quantization as tq  # noqa: E402
from flows import FLOW_WARNINGS, calibrate, require_torchao  # noqa: E402
from torch import nn  # noqa: E402
from torch.ao.nn.quantized import FloatFunctional  # noqa: E402

from qlint.runtime import assert_calibrated, assert_parity  # noqa: E402

pytestmark = FLOW_WARNINGS


class InvertedResidual(nn.Module):
    """torchvision's QuantizableInvertedResidual: skip_add built always, used with a residual."""

    def __init__(self, inp: int, oup: int, stride: int) -> None:
        super().__init__()
        hidden = inp * 2
        self.use_res_connect = stride == 1 and inp == oup
        self.conv = nn.Sequential(
            nn.Conv2d(inp, hidden, 1, bias=False), nn.BatchNorm2d(hidden), nn.ReLU(),
            nn.Conv2d(hidden, hidden, 3, stride, 1, groups=hidden, bias=False),
            nn.BatchNorm2d(hidden), nn.ReLU(),
            nn.Conv2d(hidden, oup, 1, bias=False), nn.BatchNorm2d(oup),
        )
        self.skip_add = FloatFunctional()

    def forward(self, x):
        if self.use_res_connect:
            return self.skip_add.add(x, self.conv(x))
        return self.conv(x)

    def fuse_model(self, is_qat: bool) -> None:
        fuse = tq.fuse_modules_qat if is_qat else tq.fuse_modules
        fuse(self.conv, [["0", "1", "2"], ["3", "4", "5"], ["6", "7"]], inplace=True)


class TinyMobileNet(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.quant = tq.QuantStub()
        self.features = nn.Sequential(
            InvertedResidual(3, 8, 2), InvertedResidual(8, 8, 1), InvertedResidual(8, 16, 2),
            InvertedResidual(16, 16, 1),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(16, 10)
        self.dequant = tq.DeQuantStub()

    def forward(self, x):
        x = self.pool(self.features(self.quant(x)))
        return self.dequant(self.classifier(torch.flatten(x, 1)))

    def fuse_model(self, is_qat: bool) -> None:
        for block in self.features:
            block.fuse_model(is_qat)


UNUSED = ["features.0.skip_add", "features.2.skip_add"]


def _example(seed=0):
    return torch.randn(2, 3, 16, 16, generator=torch.Generator().manual_seed(seed))


def _prepared(qat: bool):
    torch.manual_seed(0)
    model = TinyMobileNet().train(qat)
    model.fuse_model(is_qat=qat)
    engine = torch.backends.quantized.engine
    model.qconfig = (tq.get_default_qat_qconfig if qat else tq.get_default_qconfig)(engine)
    return (tq.prepare_qat if qat else tq.prepare)(model)


@pytest.fixture(params=["ptq", "qat"])
def clean(request):
    qat = request.param == "qat"
    model = _prepared(qat)
    if qat:
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
        for seed in range(3):
            optimizer.zero_grad()
            model(_example(seed)).pow(2).mean().backward()
            optimizer.step()
        return model
    return calibrate(model, _example(0), _example(1))


def test_unused_skip_add_is_no_false_alarm_with_example_inputs(clean):
    assert_calibrated(clean, _example(5))
    assert_parity(clean, _example(5))


def test_without_example_inputs_the_unused_observers_are_named_with_the_way_out(clean):
    with pytest.raises(AssertionError) as failure:
        assert_calibrated(clean)
    message = str(failure.value)
    for name in UNUSED:
        assert f"`{name}.activation_post_process" in message
    assert "features.1.skip_add" not in message
    assert "Pass example_inputs" in message and "exclude=" in message


def test_exclude_takes_module_name_patterns(clean):
    assert_calibrated(clean, exclude=["features.*.skip_add"])
    assert_calibrated(clean, exclude="*skip_add")
    with pytest.raises(AssertionError, match="features.2.skip_add"):
        assert_calibrated(clean, exclude=["features.0"])


def test_a_used_module_never_calibrated_is_still_reported():
    model = calibrate(_prepared(qat=False), _example(0))
    # A block swapped in after calibration: its observers never ran, but they run now.
    fresh = _prepared(qat=False)
    model.features[3] = fresh.features[3]
    with pytest.raises(AssertionError) as failure:
        assert_calibrated(model, _example(5))
    message = str(failure.value)
    assert "`features.3.conv.0.activation_post_process`" in message
    assert "the example inputs reach these observers" in message
    assert "not reported: 2 observers that never ran and that the example inputs do not reach" in message
    assert "e.g. `features.0.skip_add.activation_post_process`" in message  # not a failure
    with pytest.raises(AssertionError, match="calibration is missing: .* never ran"):
        assert_parity(model, _example(5))


def test_pt2e_graph_of_the_same_model_has_no_unused_observer():
    """Export traces the branch taken: the unused skip_add is not in the graph at all."""
    require_torchao()
    from torchao.quantization.pt2e.quantize_pt2e import prepare_pt2e
    from torchao.quantization.pt2e.quantizer.x86_inductor_quantizer import (
        X86InductorQuantizer,
        get_default_x86_inductor_quantization_config,
    )

    class Plain(TinyMobileNet):
        def forward(self, x):
            return self.classifier(torch.flatten(self.pool(self.features(x)), 1))

    model = Plain().eval()
    graph = torch.export.export(model, (_example(),)).module()
    quantizer = X86InductorQuantizer().set_global(get_default_x86_inductor_quantization_config())
    prepared = calibrate(prepare_pt2e(graph, quantizer), _example(0), _example(1))
    assert_calibrated(prepared)
    assert_parity(prepared, _example(5))
