"""The helpers x flows matrix: each cell passes its clean model and fails its planted bug
with a message naming the module (eager, FX) or the graph node and its source module
(PT2E).  Cells where a helper has nothing to check for a flow say why instead.

docs/flows.md holds the same table (``test_docs_table_lists_every_cell``).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

import torch.ao.quantization as tq  # noqa: E402
from flows import (  # noqa: E402
    FLOW_WARNINGS,
    FLOWS,
    CatNet,
    ConvLinearNet,
    EagerNet,
    EvalOnlyRefine,
    InputNormNet,
    LayerScaleNet,
    LinearReluNet,
    PlainNet,
    RawAddNet,
    SharedReluNet,
    StdConv2d,
    batch,
    calibrate,
    convert,
    converted,
    dynamic_model,
    exported,
    input_forgetting_quantizer,
    learnable_pt2e_quantizer,
    learnable_qconfig,
    prepare_eager,
    prepare_fx_flow,
    prepare_pt2e_flow,
    prepared,
    require_torchao,
    tokens,
    train,
    unprepared,
    x86_quantizer,
)
from models import quantized_engine, randomized_bn  # noqa: E402
from torch import nn  # noqa: E402

from qlint.runtime import (  # noqa: E402
    assert_calibrated,
    assert_converted,
    assert_fused,
    assert_parity,
    assert_qparams_in_optimizer,
    assert_quant_state,
    quant_state,
    set_quant_state,
)

pytestmark = [*FLOW_WARNINGS, pytest.mark.filterwarnings("ignore:All inputs of this cat operator")]
DOCS = Path(__file__).resolve().parents[2] / "docs" / "flows.md"


@dataclass(frozen=True)
class Cell:
    """``clean()``/``bug()`` run the helper on a clean model / a model with the bug."""

    helper: str
    flow: str
    bug_text: str  # the planted bug, as the docs table says it
    clean: Callable[[], None]
    bug: Callable[[], None]
    names: tuple[str, ...]  # what the failure must name


@dataclass(frozen=True)
class NotApplicable:
    helper: str
    flow: str
    reason: str  # as the docs table says it
    run: Callable[[], None]  # the helper on the flow's model: passes or says why
    says: str | None  # what its failure says, or None when it passes


def _point_named(model, text: str):
    """The quantization point whose description mentions ``text``."""
    return next(point for point in _points(model) if text in point.where)


def _points(model):
    from qlint.runtime._flow import quant_points

    return quant_points(model)


# -- assert_quant_state ------------------------------------------------------------------


def _ptq_with_qat_config(flow: str):
    if flow == "eager-ptq":
        model = prepare_eager(randomized_bn(EagerNet()), qat=False,
                              qconfig=tq.get_default_qat_qconfig(torch.backends.quantized.engine))
    elif flow == "fx-ptq":
        model = prepare_fx_flow(PlainNet(), qat=False,
                                qconfig_mapping=tq.get_default_qat_qconfig_mapping("x86"))
    else:
        model = prepare_pt2e_flow(PlainNet(), qat=False, quantizer=x86_quantizer(is_qat=True))
    return calibrate(model)


def _state_ptq(flow: str) -> Cell:
    return Cell(
        "assert_quant_state", flow,
        "a QAT qconfig/quantization config used for PTQ: fake quantization on while calibrating",
        clean=lambda: assert_quant_state(prepared(flow), observers=True, fake_quant=False),
        bug=lambda: assert_quant_state(_ptq_with_qat_config(flow), observers=True, fake_quant=False),
        names={"eager-ptq": ("`conv1.activation_post_process`",),
               "fx-ptq": ("`activation_post_process_1`", "(from `conv1`)"),
               "pt2e-ptq": ("`activation_post_process_0`", "(from `conv1`)")}[flow],
    )


_SWITCHED_OFF = {
    "eager-qat": "output of `conv2`",
    "fx-qat": "output of node `conv1`",
    "pt2e-qat": "output of node `relu` (from `relu1`)",
}


def _one_fake_quant_off(flow: str):
    model = prepared(flow)
    _point_named(model, _SWITCHED_OFF[flow]).module.disable_fake_quant()
    return model


def _state_qat(flow: str) -> Cell:
    names = {"eager-qat": ("`conv2.activation_post_process`",),
             "fx-qat": ("`activation_post_process_1`", "output of node `conv1` (from `conv1`)"),
             "pt2e-qat": ("`activation_post_process_2`", "(from `relu1`)")}[flow]
    return Cell(
        "assert_quant_state", flow, "one layer's fake quantization switched off",
        clean=lambda: assert_quant_state(prepared(flow), observers=True, fake_quant=True),
        bug=lambda: assert_quant_state(_one_fake_quant_off(flow), fake_quant=True),
        names=names,
    )


# -- assert_calibrated -------------------------------------------------------------------


def _calibrated_on_ones(flow: str):
    return calibrate(unprepared(flow), torch.ones(4, 3, 8, 8))


def _calibrated_ptq(flow: str) -> Cell:
    names = {"eager-ptq": ("`quant.activation_post_process`", "min_val = max_val = 1"),
             "fx-ptq": ("`activation_post_process_0`", "model input `x`"),
             "pt2e-ptq": ("`activation_post_process_0`", "model input `x`")}[flow]
    return Cell(
        "assert_calibrated", flow, "calibrated on torch.ones (a zero-width input range)",
        clean=lambda: assert_calibrated(prepared(flow), batch(5)),
        bug=lambda: assert_calibrated(_calibrated_on_ones(flow), batch(5)),
        names=names,
    )


def _eval_only_branch_trained():
    torch.manual_seed(0)
    return train(prepare_eager(randomized_bn(EvalOnlyRefine()), qat=True))


def _calibrated_qat(flow: str) -> Cell:
    if flow == "eager-qat":
        return Cell(
            "assert_calibrated", flow,
            "a branch that runs only in eval mode never calibrated by training",
            clean=lambda: assert_calibrated(prepared(flow), batch(5)),
            bug=lambda: assert_calibrated(_eval_only_branch_trained(), batch(5)),
            names=("`refine.activation_post_process.activation_post_process`",),
        )
    names = {"fx-qat": ("`activation_post_process_0.activation_post_process`", "(from `conv1`)"),
             "pt2e-qat": ("`activation_post_process_0.activation_post_process`", "(from `conv1`)")}[flow]
    return Cell(
        "assert_calibrated", flow, "never trained before the check (observers never ran)",
        clean=lambda: assert_calibrated(prepared(flow), batch(5)),
        bug=lambda: assert_calibrated(unprepared(flow), batch(5)),
        names=names,
    )


# -- assert_converted --------------------------------------------------------------------


def _eager_subclass_conv():
    model = EagerNet()
    model.conv2 = StdConv2d(8, 8, 3, padding=1)
    return convert(calibrate(prepare_eager(randomized_bn(model), qat=False, fuse=False)), "eager-ptq")


def _eager_layer_scale():
    torch.manual_seed(0)
    return convert(train(prepare_eager(randomized_bn(LayerScaleNet()), qat=True)), "eager-qat")


def _pt2e_input_forgotten():
    model = prepare_pt2e_flow(PlainNet(), qat=False, quantizer=input_forgetting_quantizer(False))
    return convert(calibrate(model), "pt2e-ptq")


def _converted(flow: str) -> Cell:
    clean = lambda: assert_converted(converted(flow))  # noqa: E731
    if flow == "eager-ptq":
        return Cell("assert_converted", flow,
                    "a Conv2d subclass (StdConv2d) convert never swaps",
                    clean, lambda: assert_converted(_eager_subclass_conv()),
                    ("`conv2` (StdConv2d)",))
    if flow == "eager-qat":
        return Cell("assert_converted", flow,
                    "a float nn.Parameter (layer scale) inside the quantized region",
                    clean, lambda: assert_converted(_eager_layer_scale()),
                    ("`layer_scale.gamma`",))
    if flow in ("fx-ptq", "fx-qat"):
        def bug():
            model = prepared(flow)
            convert(model, flow)  # the result is dropped: convert_fx returns a new model
            assert_converted(model)

        return Cell("assert_converted", flow,
                    "convert_fx's result not kept (the prepared model shipped)",
                    clean, bug, ("`activation_post_process_0`", "model = convert_fx(model)"))
    if flow == "pt2e-ptq":
        return Cell("assert_converted", flow,
                    "a hand-written quantizer annotates weight and output, forgets the input",
                    clean, lambda: assert_converted(_pt2e_input_forgotten()),
                    ("node `conv2d` (aten.conv2d, from `conv1`)", "its input is float"))
    return Cell("assert_converted", flow,
                "convert_pt2e before any training step (weights never observed)",
                clean, lambda: assert_converted(convert(unprepared(flow, ConvLinearNet), flow)),
                ("(aten.conv2d, from `conv1`)", "never ran"))


def _converted_dynamic() -> Cell:
    return Cell(
        "assert_converted", "dynamic", "the LSTM left out of quantize_dynamic's spec",
        clean=lambda: assert_converted(dynamic_model(), dynamic={nn.LSTM, nn.Linear}),
        bug=lambda: assert_converted(dynamic_model({nn.Linear}), dynamic={nn.LSTM, nn.Linear}),
        names=("`lstm` (LSTM)",),
    )


# -- assert_fused ------------------------------------------------------------------------


def _eager_shared_relu_qat():
    model = tq.fuse_modules_qat(randomized_bn(SharedReluNet()).train(), SharedReluNet.GROUPS)
    model.qconfig = tq.get_default_qat_qconfig(torch.backends.quantized.engine)
    return tq.prepare_qat(model)


def _fx_after_eager_fusion(qat: bool):
    """Eager fuse_modules kept from an eager recipe, then FX: the shared relu is gone."""
    model = randomized_bn(SharedReluNet(stubs=False))
    if qat:
        model = tq.fuse_modules_qat(model.train(), SharedReluNet.GROUPS)
    else:
        model = tq.fuse_modules(model.eval(), SharedReluNet.GROUPS)
    return prepare_fx_flow(model, qat=qat, qconfig_mapping=None)


def _fx_fused_clean(qat: bool):
    model = randomized_bn(SharedReluNet(stubs=False))
    return prepare_fx_flow(model, qat=qat)


def _pt2e_exported_in_train_mode():
    model = randomized_bn(InputNormNet()).train()
    from torchao.quantization.pt2e.quantize_pt2e import prepare_pt2e

    return calibrate(prepare_pt2e(exported(model), x86_quantizer()))


def _pt2e_ptq_input_norm_clean():
    from torchao.quantization.pt2e.quantize_pt2e import prepare_pt2e

    model = randomized_bn(InputNormNet()).eval()
    return calibrate(prepare_pt2e(exported(model), x86_quantizer()))


def _pt2e_qat_converted(move_to_eval: bool):
    """The clean PT2E QAT model (an input BatchNorm) converted without moving it to eval
    first; ``move_to_eval`` moves the converted model, as torchao says to before inference."""
    model = converted("pt2e-qat")
    if move_to_eval:
        require_torchao().move_exported_model_to_eval(model)
    return model


def _fused(flow: str) -> Cell:
    x = batch(5)
    if flow == "eager-ptq":
        return Cell("assert_fused", flow, "conv-bn-relu groups never fused",
                    lambda: assert_fused(prepared(flow), x),
                    lambda: assert_fused(calibrate(prepare_eager(EagerNet(), qat=False, fuse=False)), x),
                    ("`conv1` (Conv2d) -> `bn1` (BatchNorm2d) -> `relu1` (ReLU)",))
    if flow == "eager-qat":
        return Cell("assert_fused", flow, "one ReLU used twice, fused with conv1 and bn1",
                    lambda: assert_fused(prepared(flow), x),
                    lambda: assert_fused(_eager_shared_relu_qat(), x),
                    ("`relu` is the nn.Identity fusion left after `conv1`",))
    if flow in ("fx-ptq", "fx-qat"):
        qat = flow == "fx-qat"
        return Cell("assert_fused", flow,
                    "an eager fuse_modules recipe with a shared ReLU kept before prepare_fx",
                    lambda: assert_fused(_fx_fused_clean(qat), x),
                    lambda: assert_fused(_fx_after_eager_fusion(qat), x),
                    ("`relu` is the nn.Identity fusion left after `conv1`",))
    if flow == "pt2e-ptq":
        return Cell("assert_fused", flow,
                    "exported in train mode: an unfoldable BatchNorm calibrates and runs in train mode",
                    lambda: assert_fused(_pt2e_ptq_input_norm_clean(), x),
                    lambda: assert_fused(_pt2e_exported_in_train_mode(), x),
                    ("(from `bn0`)", "train mode"))
    return Cell("assert_fused", flow,
                "convert_pt2e without move_exported_model_to_eval: a BatchNorm left in train mode",
                lambda: assert_fused(_pt2e_qat_converted(move_to_eval=True), x),
                lambda: assert_fused(_pt2e_qat_converted(move_to_eval=False), x),
                ("(from `bn0`)", "train mode", "move_exported_model_to_eval"))


def _fused_dynamic() -> Cell:
    return Cell(
        "assert_fused", "dynamic", "Linear -> ReLU left unfused (the dynamic LinearReLU kernel unused)",
        clean=lambda: assert_fused(dynamic_model(), (tokens(),)),
        bug=lambda: assert_fused(dynamic_model(model=LinearReluNet()), (tokens(),)),
        names=("`fc` (Linear) -> `relu` (ReLU)", "quantize_dynamic"),
    )


# -- assert_parity -----------------------------------------------------------------------


def _eager_ptq_cat():
    torch.manual_seed(0)
    model = CatNet().eval()
    model.qconfig = tq.get_default_qconfig(torch.backends.quantized.engine)
    return calibrate(tq.prepare(model))


def _eager_qat_raw_add():
    torch.manual_seed(0)
    model = RawAddNet().train()
    model.qconfig = tq.get_default_qat_qconfig(torch.backends.quantized.engine)
    return train(tq.prepare_qat(model))


def _kept_float_by_toggles(flow: str):
    """Observer and fake-quant of one point switched off before training, meant to keep a
    layer float: convert quantizes it with default qparams anyway."""
    torch.manual_seed(0)
    model = unprepared(flow)
    point = _point_named(model, _SWITCHED_OFF[flow])
    point.module.disable_observer()
    point.module.disable_fake_quant()
    train(model)
    if flow == "pt2e-qat":
        require_torchao().move_exported_model_to_eval(model)
    return model


def _parity(flow: str) -> Cell:
    x = batch(7)
    clean = lambda: assert_parity(prepared(flow), x)  # noqa: E731
    if flow == "eager-ptq":
        return Cell("assert_parity", flow, "torch.cat of two ranges (converted cat clips one)",
                    clean, lambda: assert_parity(_eager_ptq_cat(), x),
                    ("the input of `head`", "torch.cat"))
    if flow == "eager-qat":
        return Cell("assert_parity", flow, "a raw + on quantized activations (converted crash)",
                    clean, lambda: assert_parity(_eager_qat_raw_add(), x),
                    ("RawAddNet.forward", "self.left(x) + self.right(x)"))
    if flow in ("fx-ptq", "pt2e-ptq"):
        return Cell("assert_parity", flow, "calibration skipped before convert",
                    clean, lambda: assert_parity(unprepared(flow), x),
                    ("calibration is missing", "`activation_post_process_0`", "(from `conv1`)"))
    return Cell("assert_parity", flow,
                "one point's observer and fake-quant switched off to keep it float",
                clean, lambda: assert_parity(_kept_float_by_toggles(flow), x),
                ("calibration is missing", "its fake-quant is switched off too",
                 "(from `conv1`)" if flow == "fx-qat" else "(from `relu1`)"))


def _loud_sample() -> torch.Tensor:
    extra = torch.zeros(4, 6, 16)
    extra[0] = 100 * torch.randn(6, 16, generator=torch.Generator().manual_seed(3))
    return extra


def _parity_dynamic() -> Cell:
    return Cell(
        "assert_parity", "dynamic",
        "one sample far louder than its batch-mates (per-tensor dynamic range)",
        clean=lambda: assert_parity(dynamic_model(), (tokens(),)),
        bug=lambda: assert_parity(dynamic_model(), (tokens(), _loud_sample())),
        names=("the output of `fc` (Linear -> DynamicQuantizedLinear)", "sample 0 reaches"),
    )


# -- assert_qparams_in_optimizer ---------------------------------------------------------


def _optimizer_eager(before: bool):
    model = randomized_bn(EagerNet())
    model = tq.fuse_modules_qat(model.train(), [["conv1", "bn1", "relu1"], ["conv2", "bn2"]])
    model.qconfig = learnable_qconfig()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01) if before else None
    tq.prepare_qat(model, inplace=True)
    optimizer = optimizer or torch.optim.SGD(model.parameters(), lr=0.01)
    assert_qparams_in_optimizer(model, optimizer)


def _optimizer_fx(before: bool):
    model = randomized_bn(PlainNet()).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01) if before else None
    mapping = tq.QConfigMapping().set_global(learnable_qconfig())
    prepared_model = prepare_fx_flow(model, qat=True, qconfig_mapping=mapping)
    if before:  # prepare_qat_fx deep-copies nothing but fused modules: same weights
        optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    optimizer = optimizer or torch.optim.SGD(prepared_model.parameters(), lr=0.01)
    assert_qparams_in_optimizer(prepared_model, optimizer)


def _optimizer_pt2e(before_first_forward: bool):
    model = prepare_pt2e_flow(randomized_bn(PlainNet()), qat=True, quantizer=learnable_pt2e_quantizer())
    if not before_first_forward:
        with torch.no_grad():
            model(batch())
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)
    assert_qparams_in_optimizer(model, optimizer)


def _optimizer(flow: str) -> Cell:
    if flow == "eager-qat":
        return Cell("assert_qparams_in_optimizer", flow,
                    "optimizer built before prepare_qat (learnable fake-quants)",
                    lambda: _optimizer_eager(False), lambda: _optimizer_eager(True),
                    ("`conv1.weight_fake_quant.scale`",))
    if flow == "fx-qat":
        return Cell("assert_qparams_in_optimizer", flow,
                    "optimizer built on the float model before prepare_qat_fx (learnable fake-quants)",
                    lambda: _optimizer_fx(False), lambda: _optimizer_fx(True),
                    ("`activation_post_process_0.scale`",))
    return Cell("assert_qparams_in_optimizer", flow,
                "optimizer built before the first forward (torchao's LearnableFakeQuantize)",
                lambda: _optimizer_pt2e(False), lambda: _optimizer_pt2e(True),
                ("`activation_post_process_0` (LearnableFakeQuantize)",))


CELLS = (
    [_state_ptq(flow) for flow in ("eager-ptq", "fx-ptq", "pt2e-ptq")]
    + [_state_qat(flow) for flow in ("eager-qat", "fx-qat", "pt2e-qat")]
    + [_calibrated_ptq(flow) for flow in ("eager-ptq", "fx-ptq", "pt2e-ptq")]
    + [_calibrated_qat(flow) for flow in ("eager-qat", "fx-qat", "pt2e-qat")]
    + [_converted(flow) for flow in FLOWS if flow != "dynamic"] + [_converted_dynamic()]
    + [_fused(flow) for flow in FLOWS if flow != "dynamic"] + [_fused_dynamic()]
    + [_parity(flow) for flow in FLOWS if flow != "dynamic"] + [_parity_dynamic()]
    + [_optimizer(flow) for flow in ("eager-qat", "fx-qat", "pt2e-qat")]
)


def _ptq_optimizer(flow: str) -> NotApplicable:
    def run():
        model = prepared(flow)
        assert_qparams_in_optimizer(model, torch.optim.SGD(model.parameters(), lr=0.01))

    return NotApplicable("assert_qparams_in_optimizer", flow,
                         "PTQ trains nothing: there is no optimizer to check", run, None)


NOT_APPLICABLE = [
    NotApplicable("assert_quant_state", "dynamic",
                  "dynamic quantization has no observers or fake-quants to switch",
                  lambda: assert_quant_state(dynamic_model(), observers=True),
                  "found no observer or fake-quant module"),
    NotApplicable("assert_calibrated", "dynamic",
                  "activation ranges are measured at run time, weights at convert: nothing to calibrate",
                  lambda: assert_calibrated(dynamic_model()),
                  "dynamically quantized"),
    *[_ptq_optimizer(flow) for flow in ("eager-ptq", "fx-ptq", "pt2e-ptq")],
    NotApplicable("assert_qparams_in_optimizer", "dynamic",
                  "dynamic quantization is applied after training: no optimizer to check",
                  lambda: assert_qparams_in_optimizer(dynamic_model(), torch.optim.SGD(
                      [p for p in dynamic_model().parameters()] or [nn.Parameter(torch.zeros(1))], lr=0.1)),
                  "held by the optimizer but not in the model"),
]


def _id(cell) -> str:
    return f"{cell.helper}-{cell.flow}"


def _needs_torchao(flow: str) -> None:
    if flow.startswith("pt2e"):
        require_torchao()


@pytest.fixture(autouse=True)
def _x86_engine():
    with quantized_engine("x86"):
        yield


@pytest.mark.parametrize("cell", CELLS, ids=_id)
def test_clean_model_passes(cell):
    _needs_torchao(cell.flow)
    cell.clean()


@pytest.mark.parametrize("cell", CELLS, ids=_id)
def test_planted_bug_fails_naming_the_module_or_node(cell):
    _needs_torchao(cell.flow)
    with pytest.raises(AssertionError) as failure:
        cell.bug()
    message = str(failure.value)
    for name in cell.names:
        assert name in message, f"{name!r} not in:\n{message}"
    assert "tensor([" not in message, "a failure message dumps a raw tensor"


@pytest.mark.parametrize("cell", NOT_APPLICABLE, ids=_id)
def test_not_applicable_cells_say_why(cell):
    _needs_torchao(cell.flow)
    if cell.says is None:
        cell.run()
        return
    with pytest.raises(AssertionError, match=cell.says):
        cell.run()


def test_every_cell_is_covered():
    covered = {(cell.helper, cell.flow) for cell in [*CELLS, *NOT_APPLICABLE]}
    helpers = {cell.helper for cell in CELLS}
    assert covered == {(helper, flow) for helper in helpers for flow in FLOWS}
    assert len(covered) == len(CELLS) + len(NOT_APPLICABLE) == 42


def test_docs_table_lists_every_cell():
    text = DOCS.read_text()
    for cell in CELLS:
        assert cell.bug_text in text, f"docs/flows.md does not describe {_id(cell)}: {cell.bug_text}"
    for cell in NOT_APPLICABLE:
        assert cell.reason in text, f"docs/flows.md does not explain {_id(cell)}: {cell.reason}"


def test_set_quant_state_switches_both_families():
    """torch.ao's toggles do nothing to torchao's modules; set_quant_state does."""
    pt2e = require_torchao()
    for flow in ("eager-qat", "pt2e-qat"):
        model = prepared(flow)
        set_quant_state(model, observers=False, fake_quant=False)
        assert all(row.observer is False and row.fake_quant is False for row in quant_state(model))
        assert_quant_state(model, observers=False, fake_quant=False)
    model = prepared("pt2e-qat")
    model.apply(tq.disable_fake_quant)  # the torch.ao toggle: a silent no-op on torchao's
    assert all(row.fake_quant for row in quant_state(model))
    model.apply(pt2e.disable_fake_quant)
    assert not any(row.fake_quant for row in quant_state(model))
    with pytest.raises(ValueError, match="no module of GraphModule has a fake_quant switch"):
        set_quant_state(prepared("pt2e-ptq"), fake_quant=True)


def test_the_shared_model_is_left_unchanged_by_the_checks():
    from models import assert_unchanged, snapshot

    for flow in ("fx-qat", "pt2e-ptq"):
        _needs_torchao(flow)
        model = prepared(flow)
        before = snapshot(model)
        assert_quant_state(model, observers=True)
        assert_calibrated(model, batch(5))
        assert_parity(model, batch(7))
        assert_unchanged(model, before)
        copy.deepcopy(model)
