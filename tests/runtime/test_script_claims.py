"""What QL601-QL607 claim, measured on the installed torch with the rules' own examples: each
bad example runs and shows the hazard, each good example runs clean. Also the facts the
script interpreter relies on (qconfig kinds, `inplace` positions, which fusions need eval
mode, which prepare_qat creates parameters)."""
from __future__ import annotations

import inspect
import warnings

import pytest

torch = pytest.importorskip("torch")

import torch.ao.quantization as tq  # noqa: E402
from models import QUANT_WARNINGS  # noqa: E402
from torch import nn  # noqa: E402
from torch.ao.quantization._learnable_fake_quantize import _LearnableFakeQuantize  # noqa: E402
from torch.ao.quantization.fake_quantize import FakeQuantizeBase  # noqa: E402
from torch.ao.quantization.observer import NoopObserver, ObserverBase, PlaceholderObserver  # noqa: E402

from qlint.registry import all_rules  # noqa: E402
from qlint.runtime import assert_qparams_in_optimizer  # noqa: E402
from qlint.semantic import torch_api as api  # noqa: E402

pytestmark = [*QUANT_WARNINGS,
              pytest.mark.filterwarnings("ignore:must run observer before calling calculate_qparams:UserWarning"),
              pytest.mark.filterwarnings("ignore:None of the submodule got qconfig applied:UserWarning")]
RULES = all_rules()


def _run(source: str) -> dict:
    namespace: dict = {"__name__": "example"}
    exec(compile(source, "<example>", "exec"), namespace)  # noqa: S102 - the rule's own example
    return namespace


def _example(code: str, kind: str, index: int = 0) -> dict:
    rule = RULES[code]
    return _run((rule.invalid if kind == "bad" else rule.valid)[index])


def _batches(count: int = 4, seed: int = 0) -> list:
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(8, 3, 16, 16, generator=generator) for _ in range(count)]


def _capture_training(namespace: dict) -> list:
    """Record the (model, optimizer) pairs the example's `train` helper gets."""
    seen, original = [], namespace["train"]

    def train(model, optimizer, batches):
        seen.append((model, optimizer))
        original(model, optimizer, batches)

    namespace["train"] = train
    return seen


def _sqnr(reference, actual) -> float:
    noise = (reference - actual).pow(2).mean()
    return float(10 * torch.log10(reference.pow(2).mean() / noise.clamp_min(1e-20)))


# ----- QL601 ------------------------------------------------------------------------------------
@pytest.mark.parametrize(("index", "function"), [(0, "finetune"), (1, "finetune_copy"),
                                                  (2, "finetune_learnable")])
def test_ql601_optimizer_misses_what_the_prepared_model_trains(index, function):
    namespace = _example("QL601", "bad", index)
    trained = _capture_training(namespace)
    namespace[function](namespace["Net"](), _batches())
    model, optimizer = trained[0]
    with pytest.raises(AssertionError, match="missing from the optimizer"):
        assert_qparams_in_optimizer(model, optimizer)


@pytest.mark.parametrize(("index", "function"), [(0, "finetune"), (1, "finetune_in_place")])
def test_ql601_optimizer_after_prepare_or_before_an_in_place_one_holds_everything(index, function):
    namespace = _example("QL601", "good", index)
    trained = _capture_training(namespace)
    namespace[function](namespace["Net"](), _batches())
    model, optimizer = trained[0]
    assert_qparams_in_optimizer(model, optimizer)


def test_ql601_two_models_side_by_side_each_train_with_their_own_optimizer():
    namespace = _example("QL601", "good", 2)
    trained = _capture_training(namespace)
    namespace["side_by_side"](namespace["Net"](), _batches())
    for model, optimizer in trained:
        assert_qparams_in_optimizer(model, optimizer)


def test_ql601_in_place_prepare_qat_creates_no_parameter_even_after_qat_fusion_and_for_param_groups():
    """The relabeled corpus cases: fuse_modules_qat + in-place prepare_qat, and param groups
    over submodules, keep every parameter the optimizer was built with."""
    for qconfig in (tq.get_default_qat_qconfig("x86"), tq.get_default_qat_qconfig("qnnpack"), tq.default_qat_qconfig):
        model = _example("QL601", "good", 1)["Net"]().train()
        tq.fuse_modules_qat(model, [["conv", "bn", "relu"]], inplace=True)
        optimizer = torch.optim.SGD([{"params": model.conv.parameters(), "lr": 1e-3},
                                     {"params": [p for n, p in model.named_parameters() if not n.startswith("conv")]}])
        model.qconfig = qconfig
        tq.prepare_qat(model, inplace=True)
        assert_qparams_in_optimizer(model, optimizer)


# ----- QL602 ------------------------------------------------------------------------------------
def _has_batch_norm(model) -> bool:
    return any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


@pytest.mark.parametrize("index", [0, 1])
def test_ql602_eval_fusion_leaves_qat_without_batch_norm(index):
    namespace = _example("QL602", "bad", index)
    prepared = namespace["prepare_model"](*([namespace["Net"]()] if index == 0 else []))
    assert prepared.training and not _has_batch_norm(prepared)


def test_ql602_qat_fusion_keeps_batch_norm_trainable():
    namespace = _example("QL602", "good")
    prepared = namespace["prepare_model"](namespace["Net"]())
    assert type(prepared.conv).__name__ == "ConvBnReLU2d" and _has_batch_norm(prepared)


# ----- QL603 ------------------------------------------------------------------------------------
def test_ql603_eval_fusion_of_a_model_in_train_mode_raises():
    with pytest.raises(AssertionError, match="Fusion only for eval!"):
        _example("QL603", "bad")["fused_for_ptq"]()


@pytest.mark.parametrize(("index", "function"), [(0, "fused_for_ptq"), (1, "fused_for_qat")])
def test_ql603_eval_fusion_in_eval_mode_and_qat_fusion_run(index, function):
    fused = _example("QL603", "good", index)[function]()
    assert type(fused.conv).__name__ == "ConvBnReLU2d" or type(fused.conv).__name__ == "ConvReLU2d"


def test_ql603_only_groups_with_batch_norm_need_eval_mode():
    class Groups(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv, self.relu, self.fc, self.fc_relu = nn.Conv2d(3, 3, 1), nn.ReLU(), nn.Linear(3, 3), nn.ReLU()
            self.bn, self.bn_relu = nn.BatchNorm2d(3), nn.ReLU()
            self.linear, self.bn1d = nn.Linear(3, 3), nn.BatchNorm1d(3)
            self.deconv, self.bn2 = nn.ConvTranspose2d(3, 3, 1), nn.BatchNorm2d(3)

    tq.fuse_modules(Groups().train(), [["conv", "relu"], ["fc", "fc_relu"], ["bn", "bn_relu"]], inplace=True)
    for group in (["linear", "bn1d"], ["deconv", "bn2"]):
        with pytest.raises(AssertionError, match="Fusion only for eval!"):
            tq.fuse_modules(Groups().train(), [group], inplace=True)


# ----- QL604 ------------------------------------------------------------------------------------
def test_ql604_ptq_qconfig_gives_prepare_qat_observers_and_no_fake_quant():
    namespace = _example("QL604", "bad")
    prepared = namespace["prepare_model"](namespace["Net"]())
    assert isinstance(prepared.conv.weight_fake_quant, ObserverBase)
    assert not any(isinstance(m, FakeQuantizeBase) for m in prepared.modules())


def test_ql604_qat_qconfig_gives_fake_quant():
    namespace = _example("QL604", "good")
    prepared = namespace["prepare_model"](namespace["Net"]())
    assert isinstance(prepared.conv.weight_fake_quant, FakeQuantizeBase)


# ----- QL605 ------------------------------------------------------------------------------------
def test_ql605_prepare_without_qconfig_only_warns_and_convert_changes_nothing():
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        converted = _example("QL605", "bad")["quantize"](_batches())
    assert any("None of the submodule got qconfig applied" in str(w.message) for w in caught)
    assert type(converted.conv) is nn.Conv2d


def test_ql605_prepare_with_a_qconfig_quantizes():
    converted = _example("QL605", "good")["quantize"](_batches())
    assert type(converted.conv).__module__.startswith("torch.ao.nn.quantized")


# ----- QL606 and QL607 ------------------------------------------------------------------------------
def _quantized_quality(converted, float_model) -> float:
    reference = torch.cat([float_model(x) for x in _batches(seed=1)])
    return _sqnr(reference, torch.cat([converted(x) for x in _batches(seed=1)]))


def test_ql606_convert_without_calibration_keeps_default_qparams():
    namespace = _example("QL606", "bad")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        converted = namespace["quantize"](_batches())
    assert any("must run observer before calling calculate_qparams" in str(w.message) for w in caught)
    assert float(converted.quant.scale) == 1.0 and int(converted.quant.zero_point) == 0


def test_ql606_observers_from_prepare_qat_with_a_ptq_qconfig_keep_defaults_too():
    model = _example("QL606", "bad")["Net"]().train()
    model.qconfig = tq.get_default_qconfig("x86")
    prepared = tq.prepare_qat(model)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        converted = tq.convert(prepared.eval())
    assert any("must run observer before calling calculate_qparams" in str(w.message) for w in caught)
    assert float(converted.quant.scale) == 1.0 and int(converted.quant.zero_point) == 0


def test_ql606_calibrated_model_gets_its_qparams_and_tracks_the_float_model():
    torch.manual_seed(0)
    namespace = _example("QL606", "good")
    converted = namespace["quantize"](_batches())
    assert float(converted.quant.scale) != 1.0
    torch.manual_seed(0)
    bad = _example("QL606", "bad")["quantize"](_batches())
    torch.manual_seed(0)
    reference = namespace["Net"]().eval()
    assert _quantized_quality(converted, reference) > _quantized_quality(bad, reference) + 10


def test_ql607_constant_calibration_records_one_value_and_loses_accuracy():
    torch.manual_seed(0)
    namespace = _example("QL607", "bad")
    net = namespace["Net"]().eval()
    net.qconfig = tq.get_default_qconfig("x86")
    prepared = tq.prepare(net)
    prepared(torch.ones(8, 3, 16, 16))
    observer = prepared.quant.activation_post_process
    assert float(observer.min_val) == float(observer.max_val) == 1.0

    torch.manual_seed(0)
    constant = namespace["quantize"]()
    torch.manual_seed(0)
    calibrated = _example("QL607", "good")["quantize"](_batches())
    torch.manual_seed(0)
    reference = namespace["Net"]().eval()
    assert _quantized_quality(calibrated, reference) > _quantized_quality(constant, reference) + 10


# ----- QL608 and QL609 (opt-in) ------------------------------------------------------------------
def test_ql608_prepare_qat_of_a_model_in_eval_mode_raises():
    with pytest.raises(AssertionError, match="prepare_qat only works on models in training mode"):
        _example("QL608", "bad")["prepare_model"]()
    assert isinstance(_example("QL608", "good")["prepare_model"]().conv.weight_fake_quant, FakeQuantizeBase)


def test_ql609_a_step_whose_result_is_dropped_leaves_the_model_as_it_was():
    model = _example("QL609", "bad")["quantize"](_batches())
    assert type(model.conv) is nn.Conv2d and not hasattr(model.conv, "activation_post_process")
    net = _example("QL609", "bad")["Net"]().eval()
    tq.fuse_modules(net, [["conv", "bn", "relu"]])
    assert type(net.conv) is nn.Conv2d and type(net.bn) is nn.BatchNorm2d
    converted = _example("QL609", "good")["quantize"](_batches())
    assert type(converted.conv).__module__.startswith("torch.ao.nn.quantized")


# ----- the interpreter's table of the eager API ------------------------------------------------------
def _kind(part) -> str:
    instance = part()
    if isinstance(instance, _LearnableFakeQuantize):
        return api.QCONFIG_LEARNABLE
    if isinstance(instance, FakeQuantizeBase):
        return api.QCONFIG_QAT
    if isinstance(instance, (PlaceholderObserver, NoopObserver)):
        return api.QCONFIG_PLACEHOLDER
    assert isinstance(instance, ObserverBase), type(instance)
    return api.QCONFIG_PTQ


def _qconfig_kind(qconfig) -> str:
    """What the interpreter calls a qconfig: the kind of its weight part, or weight-only when
    its activation part observes nothing (nothing to calibrate)."""
    if _kind(qconfig.activation) == api.QCONFIG_PLACEHOLDER \
            and _kind(qconfig.weight) in (api.QCONFIG_PTQ, api.QCONFIG_PLACEHOLDER):
        return api.QCONFIG_WEIGHT_ONLY
    return _kind(qconfig.weight)


def _torch_object(qname: str):
    value = torch
    for part in qname.split(".")[1:]:
        value = getattr(value, part)
    return value


@pytest.mark.parametrize("qname", sorted(api.QCONFIGS))
def test_qconfig_kinds_are_what_prepare_qat_puts_on_a_weight(qname):
    assert _qconfig_kind(_torch_object(qname)) == api.QCONFIGS[qname]


@pytest.mark.parametrize("backend", ["x86", "fbgemm", "qnnpack", "onednn"])
def test_qconfig_factories_by_backend(backend):
    for qname, kind in api.QCONFIG_FACTORIES.items():
        assert _qconfig_kind(_torch_object(qname)(backend)) == kind


@pytest.mark.parametrize("qname", sorted(api.QCONFIG_PARTS))
def test_qconfig_parts_are_observers_or_fake_quants(qname):
    part = _torch_object(qname)
    kwargs = {"observer": tq.MovingAverageMinMaxObserver} if qname == api.LEARNABLE_FAKE_QUANT else {}
    assert _kind(part.with_args(**kwargs) if kwargs else part) == api.QCONFIG_PARTS[qname]


@pytest.mark.parametrize("qname", sorted(api.SCRIPT_STEPS))
def test_steps_take_inplace_where_the_table_says(qname):
    parameters = list(inspect.signature(_torch_object(qname)).parameters)
    assert parameters.index("inplace") == api.SCRIPT_STEPS[qname][2]


def test_named_functions_and_toggles_exist():
    for qname in (*api.MODULE_TOGGLES, *api.CONSTANT_TENSORS, *api.RANDOM_TENSORS, *api.FORWARDING_FUNCTIONS,
                  api.QCONFIG_CLASS):
        assert callable(_torch_object(qname)), qname
    for name in api.INERT_MODULE_METHODS | api.CONSTANT_PRESERVING_METHODS:
        assert hasattr(nn.Module, name) or hasattr(torch.Tensor, name), name
