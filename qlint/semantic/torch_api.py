"""What the linter knows about torch, by canonical qualified name (torch is never imported).

The crash table for QL102/QL104 is measured on a real torch and shipped as data
(`qlint/data/quantized_ops.json`, made by `tools/generate_op_table.py`); the rest is the
eager-mode quantization API, which changes rarely and is checked by tests against torch.
"""
from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources
from typing import Optional

F = "torch.nn.functional."
NN = "torch.nn."

MODULE_BASES = frozenset({"torch.nn.Module", "torch.jit.ScriptModule"})
CONTAINERS = {
    "torch.nn.Sequential": "sequential",
    "torch.nn.ModuleList": "list",
    "torch.nn.ModuleDict": "dict",
}
FLOAT_FUNCTIONAL = frozenset({
    "torch.ao.nn.quantized.FloatFunctional",
    "torch.ao.nn.quantized.QFunctional",
})
FLOAT_FUNCTIONAL_OPS = ("add", "add_scalar", "mul", "mul_scalar", "cat", "add_relu", "matmul")
QUANT_STUBS = frozenset({"torch.ao.quantization.QuantStub", "torch.ao.quantization.DeQuantStub",
                         "torch.ao.quantization.QuantWrapper"})

# Stateless, qparam-preserving modules: calling one twice is harmless (QL401 exempt).
_STATELESS = ("Identity", "Dropout", "Dropout1d", "Dropout2d", "Dropout3d", "AlphaDropout",
              "FeatureAlphaDropout", "Flatten", "Unflatten", "MaxPool1d", "MaxPool2d", "MaxPool3d",
              "AvgPool1d", "AvgPool2d", "AvgPool3d", "AdaptiveAvgPool1d", "AdaptiveAvgPool2d",
              "AdaptiveAvgPool3d", "AdaptiveMaxPool1d", "AdaptiveMaxPool2d", "AdaptiveMaxPool3d",
              "Upsample", "UpsamplingNearest2d", "UpsamplingBilinear2d", "PixelShuffle",
              "PixelUnshuffle", "ChannelShuffle")
STATELESS_MODULES = frozenset(NN + n for n in _STATELESS) | {"torch.ao.quantization.DeQuantStub"}
# Quantized with their weights only (eager convert needs float_qparams_weight_only_qconfig for
# them): indices in, float out, no activation observer. Calling one twice shares only its table.
WEIGHT_ONLY_MODULES = frozenset({NN + "Embedding", NN + "EmbeddingBag"})

# Modules with an `inplace` flag, and its positional index in the constructor.
INPLACE_MODULE_POSITION = {NN + name: index for name, index in {
    "ReLU": 0, "ReLU6": 0, "SELU": 0, "SiLU": 0, "Mish": 0, "Hardswish": 0, "Hardsigmoid": 0,
    "LeakyReLU": 1, "ELU": 1, "CELU": 1, "Hardtanh": 2, "RReLU": 2, "Threshold": 2,
    "Dropout": 1, "Dropout1d": 1, "Dropout2d": 1, "Dropout3d": 1, "AlphaDropout": 1,
    "FeatureAlphaDropout": 1,
}.items()}

# Functionals with an `inplace` argument, and its positional index.
INPLACE_FUNCTION_POSITION = {F + name: index for name, index in {
    "relu": 1, "relu6": 1, "selu": 1, "silu": 1, "mish": 1, "hardswish": 1, "hardsigmoid": 1,
    "elu": 2, "celu": 2, "leaky_relu": 2, "hardtanh": 3, "threshold": 3, "rrelu": 4,
    "dropout": 3, "dropout1d": 3, "dropout2d": 3, "dropout3d": 3, "alpha_dropout": 3,
    "feature_alpha_dropout": 3,
}.items()}

FUNCTIONAL_RELU = frozenset({F + "relu", F + "relu6", "torch.relu", "torch.relu_",
                             "torch.nn.functional.relu_"})
RELU_METHODS = frozenset({"relu", "relu_"})

WEIGHTED_FUNCTIONALS = {F + name: module for name, module in {
    "conv1d": "nn.Conv1d", "conv2d": "nn.Conv2d", "conv3d": "nn.Conv3d",
    "conv_transpose1d": "nn.ConvTranspose1d", "conv_transpose2d": "nn.ConvTranspose2d",
    "conv_transpose3d": "nn.ConvTranspose3d", "linear": "nn.Linear", "bilinear": "nn.Bilinear",
    "embedding": "nn.Embedding", "embedding_bag": "nn.EmbeddingBag",
}.items()} | {"torch.conv1d": "nn.Conv1d", "torch.conv2d": "nn.Conv2d", "torch.conv3d": "nn.Conv3d"}

# QL302: arithmetic with a FloatFunctional counterpart.
ARITHMETIC_FUNCTIONS = {
    "torch.add": "add", "torch.sub": "add (of a negated operand) or a module",
    "torch.subtract": "add (of a negated operand) or a module", "torch.mul": "mul",
    "torch.multiply": "mul", "torch.matmul": "matmul", "torch.bmm": "matmul", "torch.mm": "matmul",
}
ARITHMETIC_METHODS = {
    "add": "add", "sub": "add (of a negated operand) or a module",
    "subtract": "add (of a negated operand) or a module", "mul": "mul", "multiply": "mul",
    "matmul": "matmul", "bmm": "matmul", "mm": "matmul",
}
CONCAT_FUNCTIONS = frozenset({"torch.cat", "torch.concat", "torch.concatenate", "torch.stack"})
DIVISION_FUNCTIONS = frozenset({"torch.div", "torch.divide", "torch.true_divide"})
DIVISION_METHODS = frozenset({"div", "divide", "true_divide"})

QUANT_STUB = "torch.ao.quantization.QuantStub"
DEQUANT_STUB = "torch.ao.quantization.DeQuantStub"
QUANT_WRAPPER = "torch.ao.quantization.QuantWrapper"  # quant -> module -> dequant: returns float
QCONFIG_ATTRIBUTE = "qconfig"  # set to None on a module, convert() leaves it (and what it holds) float

# Modules eager convert() replaces by quantized modules that take and return quantized
# tensors and raise on a float one: torch.ao.quantization's default static mapping (the
# 2.13 keys, by canonical name; tests/runtime/test_stub_rules.py checks it against torch),
# without the stubs, Dropout (quantized Dropout passes any tensor through) and Embedding
# (quantized only with a weight-only qconfig; it takes indices).
_INTRINSIC = "torch.ao.nn.intrinsic."
SWAPPED_MODULES = frozenset(
    {NN + name for name in (
        "Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d",
        "Linear", "BatchNorm2d", "BatchNorm3d", "LayerNorm", "GroupNorm", "InstanceNorm1d",
        "InstanceNorm2d", "InstanceNorm3d", "ELU", "Hardswish", "LeakyReLU", "PReLU", "ReLU6",
        "NonDynamicallyQuantizableLinear")}
    | {_INTRINSIC + name for name in (
        "BNReLU2d", "BNReLU3d", "ConvAdd2d", "ConvAddReLU2d", "ConvReLU1d", "ConvReLU2d", "ConvReLU3d",
        "LinearLeakyReLU", "LinearReLU", "LinearTanh")}
    | {_INTRINSIC + "qat." + name for name in (
        "ConvBn1d", "ConvBn2d", "ConvBn3d", "ConvBnReLU1d", "ConvBnReLU2d", "ConvBnReLU3d",
        "ConvReLU2d", "ConvReLU3d", "LinearBn1d", "LinearReLU")}
    | {"torch.ao.nn.qat." + name for name in ("Conv2d", "Conv3d", "Linear")})

# What an nn.Module instance has without defining it (a `self.x(...)` of these is no typo).
NN_MODULE_ATTRIBUTES = frozenset({
    "T_destination", "add_module", "apply", "bfloat16", "buffers", "call_super_init", "children",
    "compile", "cpu", "cuda", "double", "dump_patches", "eval", "extra_repr", "float", "forward",
    "get_buffer", "get_extra_state", "get_parameter", "get_submodule", "half", "ipu",
    "load_state_dict", "modules", "mtia", "named_buffers", "named_children", "named_modules",
    "named_parameters", "parameters", "register_backward_hook", "register_buffer",
    "register_forward_hook", "register_forward_pre_hook", "register_full_backward_hook",
    "register_full_backward_pre_hook", "register_load_state_dict_post_hook",
    "register_load_state_dict_pre_hook", "register_module", "register_parameter",
    "register_state_dict_post_hook", "register_state_dict_pre_hook", "requires_grad_",
    "set_extra_state", "set_submodule", "share_memory", "state_dict", "to", "to_empty", "train",
    "type", "xpu", "zero_grad", "training", "_parameters", "_buffers", "_modules", "_apply",
    "_call_impl", "_compiled_call_impl", "_get_name", "_load_from_state_dict", "_named_members",
    "_save_to_state_dict", "_slow_forward", "_version", "_wrapped_call_impl", "__call__",
    "_replicate_for_data_parallel", "_register_load_state_dict_pre_hook", "_register_state_dict_hook",
    "_get_backward_hooks", "_get_backward_pre_hooks", "_maybe_warn_non_full_backward_hook",
    "_forward_hooks", "_forward_pre_hooks", "_backward_hooks", "_is_full_backward_hook",
})

# In-place methods that change only a tensor's view (shape, strides), never its values: they run
# on quantized tensors as on float ones (tests/test_op_table.py runs them).
VIEW_INPLACE_METHODS = frozenset({"unsqueeze_", "squeeze_", "transpose_", "swapaxes_", "swapdims_", "t_",
                                  "as_strided_", "detach_"})
INPLACE_METHOD_EXCEPTIONS = frozenset({"requires_grad_", "share_memory_", "retain_grad_"}) | VIEW_INPLACE_METHODS

# fuse_modules and fuse_modules_qat.
FUSE_EVAL = "torch.ao.quantization.fuse_modules"
FUSE_QAT = "torch.ao.quantization.fuse_modules_qat"
FUSE_FUNCTIONS = frozenset({FUSE_EVAL, FUSE_QAT})

# Parameters torch layers register: a subclass's forward reading self.weight reads one.
_WEIGHT_AND_BIAS = ("weight", "bias")
REGISTERED_PARAMETERS = {
    **{NN + f"Conv{d}d": _WEIGHT_AND_BIAS for d in (1, 2, 3)},
    **{NN + f"ConvTranspose{d}d": _WEIGHT_AND_BIAS for d in (1, 2, 3)},
    **{NN + f"BatchNorm{d}d": _WEIGHT_AND_BIAS for d in (1, 2, 3)},
    **{NN + name: _WEIGHT_AND_BIAS for name in ("Linear", "Bilinear", "LayerNorm", "GroupNorm")},
    **{NN + name: ("weight",) for name in ("Embedding", "EmbeddingBag", "PReLU")},
}

CONV = frozenset(NN + f"Conv{d}d" for d in (1, 2, 3))
CONV_TRANSPOSE = frozenset(NN + f"ConvTranspose{d}d" for d in (1, 2, 3))
BATCH_NORM = frozenset(NN + f"BatchNorm{d}d" for d in (1, 2, 3))
LINEAR = frozenset({NN + "Linear"})
RELU = frozenset({NN + "ReLU"})


def fusion_role(cls: str | None) -> str | None:
    """The role of a module class in torch's eager fusion patterns."""
    if cls in CONV:
        return "conv"
    if cls in CONV_TRANSPOSE:
        return "convtranspose"
    if cls in LINEAR:
        return "linear"
    if cls in BATCH_NORM:
        return "bn"
    if cls in RELU:
        return "relu"
    return None


# torch.ao.quantization.fuser_method_mappings._DEFAULT_OP_LIST_TO_FUSER_METHOD, by role.
FUSIBLE_PATTERNS = (
    ("conv", "bn", "relu"), ("conv", "bn"), ("conv", "relu"), ("linear", "bn"),
    ("linear", "relu"), ("bn", "relu"), ("convtranspose", "bn"),
)


def is_torch_module_class(qname: str) -> bool:
    """A torch.nn / torch.ao.nn class that is an nn.Module (not Parameter or Buffer)."""
    if qname in QUANT_STUBS or qname in FLOAT_FUNCTIONAL or qname in MODULE_BASES:
        return True
    if not (qname.startswith(NN) or qname.startswith("torch.ao.nn.")):
        return False
    last = qname.rsplit(".", 1)[-1]
    if qname.startswith(F) or not last[:1].isupper():
        return False
    return last not in {"Parameter", "Buffer", "UninitializedParameter", "UninitializedBuffer"}


@lru_cache(maxsize=None)
def op_table() -> dict:
    """The measured table of ops that crash on quantized tensors."""
    text = resources.files("qlint").joinpath("data/quantized_ops.json").read_text(encoding="utf-8")
    return json.loads(text)


@lru_cache(maxsize=None)
def functional_needs_module() -> dict[str, str]:
    return dict(op_table()["functional_needs_module"])


def functional_for_method(method: str) -> Optional[str]:
    """The function a Tensor method spells (x.softmax -> torch.softmax) if QL102 lists it.
    Only torch.* twins are the same op: Tensor.unfold is a sliding view, F.unfold im2col."""
    name = "torch." + method
    return name if name in functional_needs_module() else None


@lru_cache(maxsize=None)
def module_converts() -> dict[str, bool]:
    """Whether each QL102 module counterpart is swapped for a working quantized module by convert()."""
    return dict(op_table()["module_converts"])


@lru_cache(maxsize=None)
def no_kernel_functions() -> frozenset[str]:
    return frozenset(op_table()["no_quantized_kernel"]["functions"])


@lru_cache(maxsize=None)
def no_kernel_methods() -> frozenset[str]:
    return frozenset(op_table()["no_quantized_kernel"]["methods"])


@lru_cache(maxsize=None)
def no_kernel_operators() -> frozenset[str]:
    return frozenset(op_table()["no_quantized_kernel"]["operators"])


# ----- the eager quantization script (qlint/semantic/pipeline.py) -----------------------
_Q = "torch.ao.quantization."

# Steps of the flow: (step, kind, position of `inplace`). fuse: eval/qat fusion; prepare:
# ptq/qat; quantize: prepare + run_fn(model, *run_args) + convert in one call.
SCRIPT_STEPS = {
    FUSE_EVAL: ("fuse", "eval", 2),
    FUSE_QAT: ("fuse", "qat", 2),
    _Q + "prepare": ("prepare", "ptq", 1),
    _Q + "prepare_qat": ("prepare", "qat", 2),
    _Q + "convert": ("convert", None, 2),
    _Q + "quantize": ("quantize", "ptq", 4),
    _Q + "quantize_qat": ("quantize", "qat", 3),
}

# qconfig kinds: what prepare_qat puts on a weight. PTQ: an observer (no fake-quant, QAT
# trains in float); QAT: a fake-quant; LEARNABLE: _LearnableFakeQuantize, whose scale and
# zero_point are new nn.Parameters. Checked against the installed torch by the tests.
# WEIGHT_ONLY: observers on weights only (the activation part is a placeholder): dynamic,
# float16 and embedding qconfigs, which convert needs no calibration for.
QCONFIG_PTQ, QCONFIG_QAT, QCONFIG_LEARNABLE, QCONFIG_WEIGHT_ONLY = "ptq", "qat", "learnable", "weight-only"
QCONFIG_PLACEHOLDER = "placeholder"  # an activation part that observes nothing
QCONFIGS = {_Q + name: QCONFIG_PTQ for name in (
    "default_qconfig", "default_per_channel_qconfig", "default_debug_qconfig",
    "default_symmetric_qnnpack_qconfig", "default_per_channel_symmetric_qnnpack_qconfig",
    "default_quint8_weight_qconfig",
)} | {_Q + name: QCONFIG_WEIGHT_ONLY for name in (
    "default_dynamic_qconfig", "per_channel_dynamic_qconfig", "float16_static_qconfig",
    "float16_dynamic_qconfig", "float_qparams_weight_only_qconfig",
)} | {_Q + name: QCONFIG_QAT for name in (
    "default_qat_qconfig", "default_qat_qconfig_v2", "default_symmetric_qnnpack_qat_qconfig",
    "default_per_channel_symmetric_qnnpack_qat_qconfig", "default_dynamic_qat_qconfig",
)}
QCONFIG_FACTORIES = {_Q + "get_default_qconfig": QCONFIG_PTQ, _Q + "get_default_qat_qconfig": QCONFIG_QAT}
QCONFIG_CLASS = _Q + "QConfig"
# The parts of a QConfig(activation=..., weight=...): observer and fake-quant classes and
# their default instances' constructors (`default_observer`, `FakeQuantize.with_args(...)`).
LEARNABLE_FAKE_QUANT = _Q + "_learnable_fake_quantize._LearnableFakeQuantize"
QCONFIG_PARTS = {_Q + name: QCONFIG_PTQ for name in (
    "MinMaxObserver", "MovingAverageMinMaxObserver", "PerChannelMinMaxObserver",
    "MovingAveragePerChannelMinMaxObserver", "HistogramObserver", "RecordingObserver",
    "default_observer", "default_weight_observer", "default_histogram_observer",
    "default_per_channel_weight_observer", "default_debug_observer", "default_float_qparams_observer",
)} | {_Q + name: QCONFIG_PLACEHOLDER for name in (
    "PlaceholderObserver", "NoopObserver", "default_dynamic_quant_observer", "default_placeholder_observer",
)} | {_Q + name: QCONFIG_QAT for name in (
    "FakeQuantize", "FusedMovingAvgObsFakeQuantize", "default_fake_quant", "default_weight_fake_quant",
    "default_per_channel_weight_fake_quant", "default_histogram_fake_quant", "default_fused_act_fake_quant",
    "default_fused_wt_fake_quant", "default_fused_per_channel_wt_fake_quant",
)} | {LEARNABLE_FAKE_QUANT: QCONFIG_LEARNABLE}

# Functions applied with model.apply(...) that change no qconfig, mode or calibration state.
MODULE_TOGGLES = frozenset({_Q + "disable_observer", _Q + "enable_observer", _Q + "disable_fake_quant",
                            _Q + "enable_fake_quant", "torch.ao.nn.intrinsic.qat.freeze_bn_stats",
                            "torch.ao.nn.intrinsic.qat.update_bn_stats"})

# Tensors whose every element is one value (a degenerate calibration range), and tensors of
# random values; `*_like` of either keeps the kind of its first argument only for the latter.
CONSTANT_TENSORS = frozenset({"torch.ones", "torch.zeros", "torch.full", "torch.ones_like",
                              "torch.zeros_like", "torch.full_like"})
RANDOM_TENSORS = frozenset({"torch.randn", "torch.rand", "torch.randint", "torch.randn_like",
                            "torch.rand_like", "torch.randint_like", "torch.normal"})
# Tensor methods that keep a constant tensor constant.
CONSTANT_PRESERVING_METHODS = frozenset({"to", "cuda", "cpu", "float", "half", "double", "bfloat16",
                                         "unsqueeze", "view", "reshape", "expand", "repeat",
                                         "contiguous", "clone", "detach", "requires_grad_",
                                         "permute", "transpose", "squeeze", "flatten", "type"})
# Functions that run a model's forward on the inputs they are given: {name: (model, inputs)}.
FORWARDING_FUNCTIONS = {"torch.jit.trace": (0, 1), "torch.onnx.export": (0, 1)}
# nn.Module methods that neither run the model nor change its mode or qconfig.
INERT_MODULE_METHODS = frozenset({"state_dict", "load_state_dict", "zero_grad", "named_buffers",
                                  "buffers", "register_buffer", "register_parameter",
                                  "register_forward_hook", "register_forward_pre_hook",
                                  "register_full_backward_hook", "extra_repr", "get_parameter",
                                  "get_buffer", "__repr__", "_get_name"})
