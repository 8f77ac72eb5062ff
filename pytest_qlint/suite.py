"""``quant_test_suite``: the standard quantization tests of a model, as one line in a test file.

    TestMyNet = quant_test_suite(MyNet, lambda: torch.randn(2, 3, 32, 32), flow="qat")

returns a test class whose methods are separate, named items, each failing with the
message of the runtime helper it runs:

- ``test_fusion_applied``: ``assert_fused`` on the prepared model;
- ``test_observers_calibrated``: ``assert_calibrated``;
- ``test_fake_quant_enabled`` (qat): ``assert_quant_state(fake_quant=True)``;
- ``test_qparams_in_optimizer`` (qat): ``assert_qparams_in_optimizer`` with the flow's optimizer;
- ``test_toggles`` (qat): on a copy, torch.ao's observer/fake-quant toggles reach every
  quantization module (``assert_quant_state`` after each), with fake-quant and observers off
  the model computes exactly what it computes with every quantization module removed, and
  frozen observers keep their qparams on new data;
- ``test_parity[ENGINE]``: ``assert_parity`` with the flow run on that engine;
- ``test_converted``: ``assert_converted`` on ``convert`` of a copy (skipped while the
  observers are not calibrated: convert cannot run then).

The flow per engine, run once per class and engine: ``factory()``; then ``prepare(model,
engine)`` (default: ``model.fuse_model(is_qat=...)`` when defined, the engine's default
qconfig where the model sets none, ``prepare_qat``/``prepare``, and for qat an SGD optimizer
built afterwards); it may return the model or ``(model, optimizer)``. Then
``calibrate(model, example_inputs)`` (default: four forward passes without gradients, in
train mode for qat); then for qat, eval mode with observers off (the state ``convert``
expects). A check whose precondition another item reports (parity of an uncalibrated model,
or of one whose fake-quant is off somewhere) is skipped with a pointer to that item, so one
bug fails one item.

``skip={"test_toggles": "reason"}`` skips items; ``parity={...}`` passes tolerances to
``assert_parity``; ``engines`` names the parity engines (default: x86 and qnnpack; the
other items use the first). pytest's own ``-k``/``--deselect`` work as usual.
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pytest

from qlint.runtime import (
    assert_calibrated,
    assert_converted,
    assert_fused,
    assert_parity,
    assert_qparams_in_optimizer,
    assert_quant_state,
)
from qlint.runtime._modules import as_args, tensors_in
from qlint.runtime._torch import require_torch
from qlint.runtime.sensitivity import quant_modules

FLOWS = ("qat", "ptq")
QAT_ONLY = ("test_fake_quant_enabled", "test_qparams_in_optimizer", "test_toggles")
ITEMS = (
    "test_fusion_applied",
    "test_observers_calibrated",
    "test_fake_quant_enabled",
    "test_qparams_in_optimizer",
    "test_toggles",
    "test_parity",
    "test_converted",
)
_CALIBRATION_PASSES = 4
_TOGGLE_ATOL = 1e-6


@dataclass(frozen=True)
class Flow:
    """The result of the quantization flow on one engine."""

    model: Any
    optimizer: Any
    example_inputs: Any
    engine: str


def default_prepare(model, engine: str, flow: str):
    """Fuse (``fuse_model`` if defined), set the default qconfig, prepare; qat: optimizer after."""
    torch = require_torch()
    tq = torch.ao.quantization
    model.train(flow == "qat")
    fuse_model = getattr(model, "fuse_model", None)
    if callable(fuse_model):
        if "is_qat" in inspect.signature(fuse_model).parameters:
            fuse_model(is_qat=flow == "qat")
        else:
            fuse_model()
    if not any(getattr(module, "qconfig", None) is not None for module in model.modules()):
        model.qconfig = (tq.get_default_qat_qconfig if flow == "qat" else tq.get_default_qconfig)(engine)
    if flow == "ptq":
        return tq.prepare(model)
    prepared = tq.prepare_qat(model)
    return prepared, torch.optim.SGD(prepared.parameters(), lr=0.01, momentum=0.9)


def default_calibrate(model, example_inputs) -> None:
    """A few forward passes without gradients (observers record their ranges)."""
    torch = require_torch()
    with torch.no_grad():
        for _ in range(_CALIBRATION_PASSES):
            model(*as_args(example_inputs))


def quant_test_suite(
    factory: Callable[[], Any],
    example_inputs: Any,
    *,
    flow: str = "qat",
    engines: Sequence[str] = ("x86", "qnnpack"),
    prepare: Callable[[Any, str], Any] | None = None,
    calibrate: Callable[[Any, Any], None] | None = None,
    skip: Mapping[str, str] | None = None,
    parity: Mapping[str, float] | None = None,
) -> type:
    """A test class with the standard quantization tests of ``factory()``'s model.

    ``example_inputs``: a tensor, a tuple of inputs, or a callable returning either (called
    once per flow, after seeding torch with 0). Assign the result to a ``Test*`` name in a
    test module.
    """
    if flow not in FLOWS:
        raise ValueError(f"quant_test_suite: flow must be one of {', '.join(FLOWS)}, got {flow!r}")
    skip = dict(skip or {})
    unknown = sorted(set(skip) - set(ITEMS))
    if unknown:
        raise ValueError(f"quant_test_suite: unknown items in skip=: {', '.join(unknown)}; "
                         f"expected some of {', '.join(ITEMS)}")
    if not engines:
        raise ValueError("quant_test_suite: engines= must name at least one quantized engine")
    parity = dict(parity or {})
    flows: dict[str, Flow] = {}

    def run_flow(engine: str) -> Flow:
        if engine not in flows:
            flows[engine] = _run_flow(factory, example_inputs, flow, engine, prepare, calibrate)
        return flows[engine]

    first_engine = engines[0]

    def test_fusion_applied(self):
        __tracebackhide__ = True
        state = run_flow(first_engine)
        assert_fused(state.model, state.example_inputs)

    def test_observers_calibrated(self):
        __tracebackhide__ = True
        assert_calibrated(run_flow(first_engine).model)

    def test_fake_quant_enabled(self):
        __tracebackhide__ = True
        assert_quant_state(run_flow(first_engine).model, fake_quant=True)

    def test_qparams_in_optimizer(self):
        __tracebackhide__ = True
        state = run_flow(first_engine)
        if state.optimizer is None:
            pytest.skip("the flow's prepare() returned no optimizer: return (model, optimizer) to check it")
        assert_qparams_in_optimizer(state.model, state.optimizer)

    def test_toggles(self):
        __tracebackhide__ = True
        state = run_flow(first_engine)
        check_toggles(state.model, state.example_inputs)

    def test_parity(self, engine):
        __tracebackhide__ = True
        state = run_flow(engine)
        _skip_unless_judgeable(state.model, flow)
        with _engine(engine):
            assert_parity(state.model, state.example_inputs, **parity)

    def test_converted(self):
        __tracebackhide__ = True
        torch = require_torch()
        state = run_flow(first_engine)
        _skip_unless_judgeable(state.model, None)  # convert() needs ranges
        with _engine(first_engine):
            converted = torch.ao.quantization.convert(copy.deepcopy(state.model).eval())
        assert_converted(converted)

    methods = {
        "test_fusion_applied": test_fusion_applied,
        "test_observers_calibrated": test_observers_calibrated,
        "test_fake_quant_enabled": test_fake_quant_enabled,
        "test_qparams_in_optimizer": test_qparams_in_optimizer,
        "test_toggles": test_toggles,
        "test_parity": pytest.mark.parametrize("engine", list(engines))(test_parity),
        "test_converted": test_converted,
    }
    namespace: dict[str, Any] = {"__doc__": f"quant_test_suite of {getattr(factory, '__qualname__', factory)} ({flow})"}
    for name, method in methods.items():
        if flow == "ptq" and name in QAT_ONLY:
            continue
        if name in skip:
            method = pytest.mark.skip(reason=skip[name])(method)
        namespace[name] = method
    return type("QuantTestSuite", (), namespace)


def _run_flow(factory, example_inputs, flow, engine, prepare, calibrate) -> Flow:
    torch = require_torch()
    with _engine(engine):
        torch.manual_seed(0)
        inputs = example_inputs() if callable(example_inputs) else example_inputs
        model = factory()
        prepared = prepare(model, engine) if prepare is not None else default_prepare(model, engine, flow)
        optimizer = None
        if isinstance(prepared, tuple):
            prepared, optimizer = prepared
        (calibrate or default_calibrate)(prepared, inputs)
        if flow == "qat":
            prepared.eval().apply(torch.ao.quantization.disable_observer)
        else:
            prepared.eval()
    return Flow(prepared, optimizer, inputs, engine)


@contextmanager
def _engine(name: str) -> Iterator[None]:
    """``torch.backends.quantized.engine`` set for the block, then restored."""
    torch = require_torch()
    if name not in torch.backends.quantized.supported_engines:
        pytest.skip(f"quantized engine {name!r} is not supported by this torch build")
    previous = torch.backends.quantized.engine
    torch.backends.quantized.engine = name
    try:
        yield
    finally:
        torch.backends.quantized.engine = previous


def _skip_unless_judgeable(model, flow: str | None) -> None:
    """A model another item already fails is not judged again (``flow`` None: calibration only)."""
    try:
        assert_calibrated(model)
    except AssertionError:
        pytest.skip("not judged: the observers are not calibrated (test_observers_calibrated fails)")
    if flow == "qat":
        try:
            assert_quant_state(model, fake_quant=True)
        except AssertionError:
            pytest.skip("not judged: fake-quant is off somewhere (test_fake_quant_enabled fails)")


def check_toggles(model, example_inputs) -> None:
    """torch.ao's toggles reach every module and do what they say (on copies of ``model``)."""
    __tracebackhide__ = True
    torch = require_torch()
    tq = torch.ao.quantization
    inputs = as_args(example_inputs)
    toggled = copy.deepcopy(model).eval()
    for toggle, setting in (
        (tq.enable_observer, {"observers": True}),
        (tq.disable_observer, {"observers": False}),
        (tq.disable_fake_quant, {"fake_quant": False}),
        (tq.enable_fake_quant, {"fake_quant": True}),
    ):
        toggled.apply(toggle)
        try:
            assert_quant_state(toggled, **setting)
        except AssertionError as error:
            raise AssertionError(
                f"test_toggles: after model.apply(torch.ao.quantization.{toggle.__name__}):\n{error}"
            ) from None

    switched_off = copy.deepcopy(model).eval()
    switched_off.apply(tq.disable_fake_quant)
    switched_off.apply(tq.disable_observer)
    removed = copy.deepcopy(switched_off)
    for _, module in quant_modules(removed):
        module.forward = _identity
    with torch.no_grad():
        found, expected = tensors_in(switched_off(*inputs)), tensors_in(removed(*inputs))
    differing = [
        index for index, (left, right) in enumerate(zip(found, expected))
        if not torch.allclose(left.float(), right.float(), atol=_TOGGLE_ATOL, rtol=0)
    ]
    if differing:
        kinds = sorted({type(module).__name__ for _, module in quant_modules(model)})
        worst = max(float((found[i].float() - expected[i].float()).abs().max()) for i in differing)
        raise AssertionError(
            "test_toggles: with disable_fake_quant and disable_observer applied, expected the "
            "model to compute what it computes with every quantization module removed; found "
            f"output(s) {differing} differ by up to {worst:.4g} (quantization modules: "
            f"{', '.join(kinds)}).\n  fix: a fake-quant class that ignores its "
            "fake_quant_enabled switch keeps quantizing when it is told not to: read the "
            "switch in its forward(), or derive from torch.ao.quantization.FakeQuantize without "
            "overriding forward."
        )

    frozen = copy.deepcopy(model).eval()
    frozen.apply(tq.disable_observer)
    # Only observers that saw data: a never-run one is test_observers_calibrated's to report
    # (torch's fused fake-quant rewrites its default qparams on every call).
    before = {
        name: _state(module) for name, module in quant_modules(frozen) if _has_observed(module, torch)
    }
    with torch.no_grad():
        frozen(*(tensor * 3 if isinstance(tensor, torch.Tensor) and tensor.is_floating_point() else tensor
                 for tensor in inputs))
    moved = [
        name for name, module in quant_modules(frozen)
        if name in before and not _same_state(_state(module), before[name], torch)
    ]
    if moved:
        raise AssertionError(
            "test_toggles: with disable_observer applied, expected every qparam to stay as it "
            f"was on new data; found {len(moved)} that moved: "
            + ", ".join(f"`{name}`" for name in moved[:10])
            + "\n  fix: a custom observer or fake-quant must stop observing when its "
            "observer_enabled switch is 0."
        )


def _identity(tensor, *args, **kwargs):
    return tensor


def _has_observed(module, torch) -> bool:
    observer = getattr(module, "activation_post_process", module)
    low = getattr(observer, "min_val", None)
    return isinstance(low, torch.Tensor) and low.numel() > 0 and bool(torch.isfinite(low).all())


def _state(module) -> dict:
    """Buffers and parameters (ranges, histograms, scale, zero_point) of a quant module."""
    return {key: value.detach().clone() for key, value in module.state_dict().items()}


def _same_state(left: dict, right: dict, torch) -> bool:
    def same(a, b) -> bool:
        if a.shape != b.shape:
            return False
        if a.is_floating_point():  # never-calibrated scales are NaN
            return torch.allclose(a, b, rtol=0, atol=0, equal_nan=True)
        return torch.equal(a, b)

    return left.keys() == right.keys() and all(same(left[key], right[key]) for key in left)
