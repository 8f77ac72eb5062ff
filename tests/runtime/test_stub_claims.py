"""What QL701-QL705 claim, measured on the installed torch with the rules' own examples: each
bad example goes through eager post-training quantization (x86 default qconfig, prepare, two
calibration batches, convert) and fails the way the rule says; each good example converts
and runs. Also the module list QL701 relies on, against torch's own mapping."""
from __future__ import annotations

import warnings

import pytest

torch = pytest.importorskip("torch")

import torch.ao.quantization as tq  # noqa: E402
from models import QUANT_WARNINGS  # noqa: E402

from qlint.registry import all_rules  # noqa: E402
from qlint.semantic import torch_api as api  # noqa: E402
from qlint.semantic.names import canonical  # noqa: E402

pytestmark = [*QUANT_WARNINGS]
RULES = all_rules()
# The inputs each example's top-level class takes.
INPUTS = {
    "TwoInputs": lambda: (torch.randn(2, 3, 12, 12), torch.randn(2, 1, 12, 12)),
    "Refine": lambda: (torch.randn(2, 3, 12, 12),),
    "Residual": lambda: (torch.randn(2, 3, 12, 12),),
    "WithFloatHead": lambda: (torch.randn(2, 3, 12, 12),),
    "Net": lambda: (torch.randn(2, 3, 12, 12),),
}


def _model(code: str, kind: str, index: int, name: str):
    rule = RULES[code]
    namespace: dict = {"__name__": "example"}
    exec(compile((rule.invalid if kind == "bad" else rule.valid)[index], "<example>", "exec"), namespace)  # noqa: S102
    return namespace[name]()


def _converted(model, inputs):
    """Eager post-training quantization of the whole model, as a user would run it."""
    model.eval()
    model.qconfig = tq.get_default_qconfig("x86")
    tq.prepare(model, inplace=True)
    with torch.no_grad():
        for _ in range(2):
            model(*inputs)
    return tq.convert(model)


@pytest.mark.parametrize("code, index, name, error", [
    ("QL701", 0, "TwoInputs", "Could not run 'quantized::conv2d.new' with arguments from the 'CPU' backend"),
    ("QL701", 1, "Refine", "Could not run 'quantized::conv2d.new' with arguments from the 'CPU' backend"),
    ("QL702", 0, "Residual", "Could not run 'aten::qscheme' with arguments from the 'CPU' backend"),
    ("QL702", 1, "WithFloatHead", "mat1 and mat2 must have the same dtype, but got QUInt8 and Float"),
    ("QL703", 0, "Net", "Could not run 'aten::quantize_per_tensor' with arguments from the 'QuantizedCPU' backend"),
])
def test_bad_example_runs_before_convert_and_raises_after(code, index, name, error):
    inputs = INPUTS[name]()
    model = _model(code, "bad", index, name)
    with torch.no_grad():
        model(*inputs)  # the float model runs
        converted = _converted(model, inputs)
        with pytest.raises((NotImplementedError, RuntimeError), match=error.replace("(", r"\(").replace(")", r"\)")):
            converted(*inputs)


@pytest.mark.parametrize("code, index, name", [
    ("QL701", 0, "TwoInputs"), ("QL701", 1, "Refine"), ("QL702", 0, "Residual"), ("QL703", 0, "Net"),
    ("QL704", 0, "Net"),
])
def test_good_example_converts_and_runs(code, index, name):
    inputs = (torch.randn(2, 3, 12, 12), torch.randn(2, 1, 12, 12)) if name == "TwoInputs" else (torch.randn(2, 3, 12, 12),)
    model = _model(code, "good", index, name)
    with torch.no_grad():
        _converted(model, inputs)(*inputs)


def test_ql704_an_unused_stub_warns_and_does_nothing():
    """The stub built but never called: convert warns that its observer never ran, and the model
    converts and runs as if it were not there (the mask it was meant for stays float)."""
    image, mask = torch.randn(2, 3, 12, 12), torch.randn(2, 1, 12, 12)
    model = _model("QL704", "bad", 0, "Net")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        converted = _converted(model, (image, mask))
    assert any("must run observer before calling calculate_qparams" in str(w.message) for w in caught)
    with torch.no_grad():
        out, passed = converted(image, mask)
    assert not out.is_quantized and not passed.is_quantized and torch.equal(passed, mask)
    assert type(converted.quant_mask).__name__ == "Quantize"  # swapped, never called


def test_ql704_a_quantstub_without_dequantstub_returns_a_quantized_tensor():
    model = _model("QL704", "bad", 1, "Encoder")
    x = torch.randn(2, 3, 12, 12)
    with torch.no_grad():
        assert _converted(model, (x,))(x).is_quantized


def test_ql705_forward_raises_attribute_error_before_any_quantization():
    model = _model("QL705", "bad", 0, "Net")
    with pytest.raises(AttributeError, match="'Net' object has no attribute 'relu'"):
        model(torch.randn(2, 3, 12, 12))
    _model("QL705", "good", 0, "Net")(torch.randn(2, 3, 12, 12))


def test_swapped_modules_are_torch_default_static_mapping():
    """QL701's list: the keys of torch's default static mapping, without the stubs, Dropout
    (quantized Dropout passes any tensor) and Embedding/EmbeddingBag (indices in, float out)."""
    from torch.ao.quantization import quantization_mappings as mappings

    keys = {canonical(f"{k.__module__}.{k.__qualname__}") for k in mappings.get_default_static_quant_module_mappings()}
    left_out = {api.QUANT_STUB, api.DEQUANT_STUB, "torch.nn.Dropout", "torch.nn.Embedding", "torch.nn.EmbeddingBag",
                "torch.ao.nn.quantized.FloatFunctional"}
    assert keys - left_out == set(api.SWAPPED_MODULES)


# QAT modules are made by prepare_qat, ConvAdd* take two inputs: the others are built by hand.
_BUILT = [c for c in sorted(api.SWAPPED_MODULES) if ".qat." not in c and "ConvAdd" not in c]


@pytest.mark.parametrize("cls", _BUILT)
def test_each_swapped_module_raises_on_a_float_tensor_after_convert(cls):
    """Built as the smallest instance of each class, converted alone, given a float tensor."""
    module = _smallest(cls)
    wrapped = torch.nn.Sequential(tq.QuantStub(), module)
    x = _input_for(module)
    wrapped.eval()  # per-tensor weights: per-channel is not supported for ConvTranspose nor PReLU
    wrapped.qconfig = tq.default_qconfig
    tq.prepare(wrapped, inplace=True)
    with torch.no_grad():
        wrapped(x)
    converted = tq.convert(wrapped)
    with pytest.raises((NotImplementedError, RuntimeError, ValueError)):
        with torch.no_grad():
            converted[1](x)


def _smallest(qname: str):
    import importlib

    module_name, _, class_name = qname.rpartition(".")
    if class_name == "NonDynamicallyQuantizableLinear":
        module_name = "torch.nn.modules.linear"
    cls = getattr(importlib.import_module(module_name), class_name)
    conv = lambda d: getattr(torch.nn, f"Conv{d}d")(4, 4, 1)  # noqa: E731
    bn = lambda d: getattr(torch.nn, f"BatchNorm{d}d")(4)  # noqa: E731
    simple = {
        "Linear": lambda: cls(4, 4), "NonDynamicallyQuantizableLinear": lambda: cls(4, 4),
        "LayerNorm": lambda: cls(4), "GroupNorm": lambda: cls(2, 4), "PReLU": lambda: cls(),
        "ELU": lambda: cls(), "Hardswish": lambda: cls(), "LeakyReLU": lambda: cls(), "ReLU6": lambda: cls(),
        "LinearReLU": lambda: cls(torch.nn.Linear(4, 4), torch.nn.ReLU()),
        "LinearLeakyReLU": lambda: cls(torch.nn.Linear(4, 4), torch.nn.LeakyReLU()),
        "LinearTanh": lambda: cls(torch.nn.Linear(4, 4), torch.nn.Tanh()),
    }
    name = class_name
    if name in simple:
        return simple[name]()
    for d in (1, 2, 3):
        if name in (f"Conv{d}d", f"ConvTranspose{d}d", f"InstanceNorm{d}d"):
            return cls(4, 4, 1) if name.startswith("Conv") else cls(4)
        if name == f"BatchNorm{d}d":
            return cls(4)
        if name == f"ConvReLU{d}d":
            return cls(conv(d), torch.nn.ReLU())
        if name == f"BNReLU{d}d":
            return cls(bn(d), torch.nn.ReLU())
    raise AssertionError(f"no constructor for {qname}")


def _input_for(module):
    text = type(module).__name__ + " " + " ".join(type(m).__name__ for m in module.modules())
    if "Linear" in text or "LayerNorm" in text:
        return torch.randn(2, 4)
    for d, shape in ((1, (2, 4, 6)), (3, (2, 4, 3, 3, 3))):
        if f"{d}d" in text:
            return torch.randn(*shape)
    return torch.randn(2, 4, 6, 6)


def test_weight_only_modules_reused_share_only_their_table():
    """QL401/QL402 leave api.WEIGHT_ONLY_MODULES alone: eager convert quantizes an Embedding only
    with a weight-only qconfig (the x86 default raises), and the converted module looks every
    call up in one quantized table, giving float rows: no activation observer is shared."""
    class Twice(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.emb = torch.nn.Embedding(10, 4)

        def forward(self, a, b):
            return self.emb(a), self.emb(b)

    assert api.WEIGHT_ONLY_MODULES == {"torch.nn.Embedding", "torch.nn.EmbeddingBag"}
    a, b = torch.tensor([1, 2]), torch.tensor([3, 9])
    with pytest.raises(AssertionError, match="float_qparams_weight_only_qconfig"):
        _converted(Twice(), (a, b))
    model = Twice().eval()
    model.emb.qconfig = tq.float_qparams_weight_only_qconfig
    tq.prepare(model, inplace=True)
    model(a, b)
    converted = tq.convert(model)
    rows_a, rows_b = converted(a, b)
    table = converted.emb.weight().dequantize()
    assert not rows_a.is_quantized and torch.allclose(rows_a, table[a]) and torch.allclose(rows_b, table[b])
