"""Generate qlint/data/quantized_ops.json: which torch ops crash on a quantized tensor.

Every curated candidate (torch function, Tensor method, Python operator) is first run on
float tensors, to prove the call itself is valid, then on quint8 per-tensor-affine
tensors; the quantized run decides the verdict. A candidate with several call forms
crashes when any form crashes. Crashing functionals with an nn module counterpart go to
`functional_needs_module`; `module_converts` records whether that module survives eager
`convert()` (a QuantStub -> module -> DeQuantStub model converts and runs with the engine's
default qconfig), so that the advice can say when the module must stay in float.

    python tools/generate_op_table.py          # rewrite qlint/data/quantized_ops.json
    python tools/generate_op_table.py --check  # exit 1 with a summary when it is stale
"""

from __future__ import annotations

import argparse
import json
import operator
import sys
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

TABLE_PATH = Path(__file__).resolve().parents[1] / "qlint" / "data" / "quantized_ops.json"
GENERATED_BY = "tools/generate_op_table.py"
REGENERATE_COMMAND = "python tools/generate_op_table.py"
INPUT_DESCRIPTION = "torch.quantize_per_tensor(torch.randn(2, 4, 6, 6), 0.1, 128, torch.quint8)"
KINDS = ("functions", "methods", "operators")
RUNS = "runs"

REASON_CLASSES = {
    "no_kernel": "the aten op has no QuantizedCPU kernel (NotImplementedError)",
    "dtype_promotion": "mixing the quantized dtype with a float operand is refused",
    "output_allocation": "the op tries to allocate a quantized result with empty_strided",
    "unsupported_dtype": "the op rejects quantized dtypes (wants float, integer or bool)",
    "other": "any other exception",
}

OTHER_RULES = {
    "QL101": "F.relu / F.relu6 run but reuse the input's qparams",
    "QL103": "functional conv / linear / embedding with float weights",
    "QL202": "in-place variants (trailing underscore) and augmented assignment operators",
    "QL301-303": "+ - * / @ and torch.add/sub/mul/div/matmul/bmm/true_divide (FloatFunctional)",
}
_ARITHMETIC_NAMES = ("add", "sub", "mul", "div", "matmul", "bmm", "true_divide")
_ARITHMETIC_OPERATORS = ("+", "-", "*", "/", "@")


@dataclass(frozen=True)
class Candidate:
    """One public spelling and the call forms that exercise it on (self, other)."""

    kind: str
    name: str
    forms: tuple[Callable[[torch.Tensor, torch.Tensor], Any], ...]
    integer_control: bool = False  # bitwise ops: the control run uses integer tensors


class _Other:
    """Placeholder in an argument list for the second operand (quantized or float)."""


OTHER = _Other()


def _call(*args: Any, **kwargs: Any) -> tuple[tuple, dict]:
    return args, kwargs


def _bind(args: tuple, other: torch.Tensor) -> tuple:
    return tuple(other if arg is OTHER else arg for arg in args)


def _qualified(name: str) -> Callable:
    target: Any = torch
    for part in name.split(".")[1:]:
        target = getattr(target, part)
    return target


def function(name: str, *calls: tuple[tuple, dict], integer_control: bool = False) -> list[Candidate]:
    """A function spelled in full (`torch.special.expit`), called as name(self, *args);
    in-place functions run on a clone."""
    target = _qualified(name)
    copy = name.endswith("_")
    forms = tuple(
        (lambda x, y, a=args, k=kwargs: target(x.clone() if copy else x, *_bind(a, y), **k))
        for args, kwargs in (calls or (_call(),))
    )
    return [Candidate("functions", name, forms, integer_control)]


def method(name: str, *calls: tuple[tuple, dict], integer_control: bool = False) -> list[Candidate]:
    """A Tensor method, called as self.name(*args); in-place methods run on a clone."""
    getattr(torch.Tensor, name)  # fail fast on a misspelled candidate
    copy = name.endswith("_")
    forms = tuple(
        (lambda x, y, a=args, k=kwargs: getattr(x.clone() if copy else x, name)(*_bind(a, y), **k))
        for args, kwargs in (calls or (_call(),))
    )
    return [Candidate("methods", name, forms, integer_control)]


def torch_op(name: str, *calls: tuple[tuple, dict], inplace: bool = True,
             integer_control: bool = False) -> list[Candidate]:
    """torch.<name>(self, *args) and self.<name>(*args), whichever exist, plus the
    in-place `<name>_` variants when `inplace` (they run on a clone)."""
    found: list[Candidate] = []
    names = [name, name + "_"] if inplace else [name]
    for spelling in names:
        if callable(getattr(torch, spelling, None)):
            found += function("torch." + spelling, *calls, integer_control=integer_control)
        if hasattr(torch.Tensor, spelling):
            found += method(spelling, *calls, integer_control=integer_control)
    if not any(c.name in (name, "torch." + name) for c in found):
        raise AttributeError(f"torch {torch.__version__} has neither torch.{name} nor Tensor.{name}")
    return found


def custom(kind: str, name: str, *forms: Callable, integer_control: bool = False) -> list[Candidate]:
    """A candidate whose call forms need slicing or a non-leading self."""
    return [Candidate(kind, name, forms, integer_control)]


# Fixed, non-quantized helper operands (indices, masks, weights), seeded so runs repeat.
_rng = torch.Generator().manual_seed(0)
INDEX = torch.randint(0, 4, (2, 4, 6, 6), generator=_rng)
PAIR = torch.tensor([0, 2])
PERMUTATION = torch.tensor([3, 1, 2, 0])
FLAT_INDEX = torch.tensor([0, 5, 7])
MASK = torch.randn(2, 4, 6, 6, generator=_rng) > 0
RUNNING_MEAN, RUNNING_VAR = torch.zeros(4), torch.ones(4)
PRELU_WEIGHT = torch.tensor([0.25])
GRID = torch.rand(2, 3, 3, 2, generator=_rng) * 2 - 1
TARGET = torch.randint(0, 4, (2, 6, 6), generator=_rng)
WEIGHT_CONV1D, WEIGHT_CONV2D = torch.randn(3, 6, 3, generator=_rng), torch.randn(3, 4, 3, 3, generator=_rng)
WEIGHT_CONV3D = torch.randn(3, 2, 3, 3, 3, generator=_rng)
WEIGHT_CONVT1D, WEIGHT_CONVT2D = torch.randn(6, 3, 3, generator=_rng), torch.randn(4, 3, 3, 3, generator=_rng)
WEIGHT_CONVT3D = torch.randn(2, 3, 3, 3, 3, generator=_rng)
WEIGHT_LINEAR, WEIGHT_BILINEAR = torch.randn(3, 6, generator=_rng), torch.randn(3, 6, 6, generator=_rng)
EMBEDDING_INDEX = torch.tensor([[0, 2], [1, 5]])
F = "torch.nn.functional."

POINTWISE_UNARY = (
    "abs absolute acos arccos acosh arccosh angle asin arcsin asinh arcsinh atan arctan "
    "atanh arctanh ceil conj_physical cos cosh deg2rad digamma erf erfc erfinv exp exp2 "
    "expm1 fix floor frac i0 isfinite isinf isnan isneginf isposinf isreal lgamma log log10 "
    "log1p log2 logit nan_to_num neg negative positive rad2deg reciprocal relu round rsqrt "
    "sgn sigmoid sign signbit sin sinc sinh sqrt square tan tanh trunc hardshrink"
).split()
POINTWISE_BINARY = (
    "atan2 arctan2 hypot maximum minimum fmax fmin copysign xlogy logaddexp logaddexp2 "
    "nextafter heaviside igamma igammac logical_and logical_or logical_xor isclose equal "
    "allclose dist"
).split()
COMPARISONS = "eq ne lt gt le ge greater less greater_equal less_equal not_equal".split()
ARITHMETIC = "add sub subtract mul multiply div divide true_divide".split()
BITWISE_BINARY = "bitwise_and bitwise_or bitwise_xor bitwise_left_shift bitwise_right_shift gcd lcm".split()
REDUCTIONS_ALL_AND_DIM = (
    "sum nansum mean nanmean prod var std amax amin max min argmax argmin norm all any "
    "count_nonzero median nanmedian"
).split()
ALONG_DIM_1 = "cumsum cumprod cummax cummin logcumsumexp logsumexp mode var_mean std_mean".split()
SPECIAL_UNARY = (
    "expit erf erfc erfcx erfinv exp2 expm1 log1p logit round sinc i0 i0e i1 i1e ndtr "
    "ndtri log_ndtr entr psi digamma gammaln bessel_j0"
).split()
F_UNARY = (
    "gelu silu mish elu elu_ selu selu_ celu celu_ hardswish hardsigmoid hardtanh hardtanh_ "
    "leaky_relu leaky_relu_ softplus softsign softshrink hardshrink tanhshrink logsigmoid "
    "sigmoid tanh relu relu_ relu6 normalize"
).split()


def _candidates() -> list[Candidate]:
    found: list[Candidate] = []
    add = found.extend

    # pointwise math
    for name in POINTWISE_UNARY:
        add(torch_op(name))
    for name in POINTWISE_BINARY:
        add(torch_op(name, _call(OTHER)))
    for name in COMPARISONS:
        add(torch_op(name, _call(OTHER), _call(0.0)))
    for name in ARITHMETIC:
        add(torch_op(name, _call(OTHER), _call(0.5)))
    for name in BITWISE_BINARY:
        add(torch_op(name, _call(OTHER), integer_control=True))
    add(torch_op("bitwise_not", integer_control=True))
    add(torch_op("logical_not"))
    add(torch_op("rsub", _call(OTHER)))
    add(torch_op("clamp", _call(-0.5, 0.5)))
    add(torch_op("clip", _call(-0.5, 0.5)))
    add(torch_op("clamp_min", _call(0.0)))
    add(torch_op("clamp_max", _call(0.0)))
    add(torch_op("pow", _call(2), _call(OTHER)))
    add(torch_op("float_power", _call(2), inplace=False))  # float_power_ needs a double self
    add(torch_op("fmod", _call(2)))
    add(torch_op("remainder", _call(2)))
    add(torch_op("floor_divide", _call(2)))
    add(torch_op("lerp", _call(OTHER, 0.5)))
    add(torch_op("addcmul", _call(OTHER, OTHER)))
    add(torch_op("addcdiv", _call(OTHER, OTHER)))
    add(torch_op("isin", _call(OTHER)))
    add(custom("functions", "torch.polygamma", lambda x, y: torch.polygamma(1, x)))
    add(method("polygamma", _call(1)))
    add(method("polygamma_", _call(1)))
    for name in SPECIAL_UNARY:
        add(function("torch.special." + name))
    add(function("torch.special.xlogy", _call(OTHER)))
    add(function("torch.special.xlog1py", _call(OTHER)))
    add(function("torch.special.zeta", _call(OTHER)))
    add(custom("functions", "torch.special.polygamma", lambda x, y: torch.special.polygamma(1, x)))

    # reductions, scans, sorting
    for name in REDUCTIONS_ALL_AND_DIM:
        add(torch_op(name, _call(), _call(1)))
    for name in ALONG_DIM_1:
        add(torch_op(name, _call(1)))
    add(torch_op("aminmax", _call(), _call(dim=1)))
    add(torch_op("quantile", _call(0.5)))
    add(torch_op("nanquantile", _call(0.5)))
    add(torch_op("kthvalue", _call(2, 1)))
    add(torch_op("unique"))
    add(torch_op("unique_consecutive"))
    add(torch_op("msort"))
    add(torch_op("argsort", _call(1)))
    add(torch_op("sort", _call(1)))
    add(torch_op("topk", _call(2)))
    add(torch_op("renorm", _call(2, 0, 1.0)))
    add(torch_op("diff", _call(dim=1)))
    add(torch_op("histc", _call(bins=4)))
    add(custom("functions", "torch.trace", lambda x, y: torch.trace(x[0, 0])))
    add(custom("methods", "trace", lambda x, y: x[0, 0].trace()))
    add(function("torch.special.logsumexp", _call(1)))
    add(function("torch.linalg.norm"))
    add(function("torch.linalg.vector_norm"))
    add(function("torch.linalg.matrix_norm"))

    # indexing, layout, joining
    add(torch_op("gather", _call(1, INDEX)))
    add(torch_op("scatter", _call(1, INDEX, OTHER), _call(1, INDEX, 0.5)))
    add(torch_op("scatter_add", _call(1, INDEX, OTHER)))
    add(torch_op("scatter_reduce", _call(1, INDEX, OTHER, "amax")))
    add(torch_op("index_select", _call(1, PAIR)))
    add(torch_op("index_add", _call(1, PERMUTATION, OTHER)))
    add(torch_op("index_copy", _call(1, PERMUTATION, OTHER)))
    add(torch_op("index_fill", _call(1, PAIR, 0.5)))
    add(torch_op("index_put", _call((torch.tensor([1, 0]),), OTHER)))
    add(torch_op("masked_fill", _call(MASK, 0.5)))
    add(torch_op("masked_select", _call(MASK)))
    add(torch_op("masked_scatter", _call(MASK, OTHER)))
    add(custom("functions", "torch.where",
               lambda x, y: torch.where(MASK, x, y), lambda x, y: torch.where(MASK, x, 0.0)))
    add(method("where", _call(MASK, OTHER)))
    add(torch_op("take", _call(FLAT_INDEX)))
    add(torch_op("take_along_dim", _call(INDEX, 1)))
    add(torch_op("narrow", _call(1, 0, 2)))
    add(method("repeat", _call(1, 2, 1, 1)))
    add(method("expand", _call(3, 2, 4, 6, 6)))
    add(method("expand_as", _call(OTHER)))
    add(torch_op("tile", _call((1, 2, 1, 1))))
    add(torch_op("roll", _call(1, 2)))
    add(torch_op("flip", _call((2,))))
    add(torch_op("fliplr"))
    add(torch_op("flipud"))
    add(torch_op("rot90", _call(1, (2, 3))))
    add(torch_op("unbind", _call(1)))
    add(torch_op("chunk", _call(2, 1)))
    add(torch_op("split", _call(2, 1)))
    add(torch_op("tensor_split", _call(2, 1)))
    add(torch_op("hsplit", _call(2)))
    add(torch_op("vsplit", _call(2)))
    add(torch_op("reshape", _call((2, 4, 36))))
    add(method("view", _call(2, 4, 36)))
    add(torch_op("permute", _call((0, 2, 3, 1))))
    add(torch_op("transpose", _call(1, 2)))
    add(torch_op("swapaxes", _call(1, 2)))
    add(torch_op("flatten", _call(1)))
    add(torch_op("unflatten", _call(1, (2, 2))))
    add(torch_op("squeeze", _call(0)))
    add(torch_op("unsqueeze", _call(0)))
    add(torch_op("movedim", _call(1, 3)))
    add(torch_op("diagonal", _call(0, 2, 3)))
    add(torch_op("tril"))
    add(torch_op("triu"))
    add(torch_op("clone"))
    add(method("contiguous"))
    add(torch_op("detach"))
    add(method("unfold", _call(3, 2, 2)))
    add(torch_op("nonzero"))
    add(torch_op("select", _call(1, 0)))
    add(torch_op("repeat_interleave", _call(2, dim=1)))
    add(torch_op("broadcast_to", _call((3, 2, 4, 6, 6))))
    add(torch_op("as_strided", _call((2, 2), (1, 1))))
    # einsum: a layout-only equation and a contraction (the usual use)
    add(custom("functions", "torch.einsum",
               lambda x, y: torch.einsum("nchw->nhwc", x),
               lambda x, y: torch.einsum("nchw,nchw->nc", x, y)))
    for name in ("cat", "concat", "concatenate", "stack", "hstack", "vstack", "dstack"):
        add(custom("functions", "torch." + name, lambda x, y, n=name: getattr(torch, n)([x, y])))
    add(custom("functions", "torch.diag", lambda x, y: torch.diag(x[0, 0])))
    add(custom("methods", "diag", lambda x, y: x[0, 0].diag()))

    # matrix products
    add(custom("functions", "torch.matmul", lambda x, y: torch.matmul(x, y)))
    add(method("matmul", _call(OTHER)))
    for name, first, second in (("mm", (0, 0), (0, 0)), ("mv", (0, 0), (0, 0, 0)),
                                ("dot", (0, 0, 0), (0, 0, 0)), ("outer", (0, 0, 0), (0, 0, 0)),
                                ("kron", (0, 0), (0, 0)), ("bmm", (0,), (0,))):
        add(custom("functions", "torch." + name,
                   lambda x, y, n=name, i=first, j=second: getattr(torch, n)(x[i], y[j])))
        add(custom("methods", name,
                   lambda x, y, n=name, i=first, j=second: getattr(x[i], n)(y[j])))
    for name, index in (("addmm", (0, 0)), ("baddbmm", (0,)), ("addbmm", (0,))):
        add(custom("functions", "torch." + name,
                   lambda x, y, n=name, i=index: getattr(torch, n)(x[0, 0], x[i], y[i])))
        add(custom("methods", name,
                   lambda x, y, n=name, i=index: getattr(x[0, 0], n)(x[i], y[i])))
    add(custom("functions", "torch.cross", lambda x, y: torch.cross(x[:, :3], y[:, :3], dim=1)))
    add(custom("methods", "cross", lambda x, y: x[:, :3].cross(y[:, :3], dim=1)))
    add(custom("functions", "torch.cdist", lambda x, y: torch.cdist(x[0], y[0])))
    add(custom("functions", "torch.tensordot",
               lambda x, y: torch.tensordot(x, y, dims=([1, 2, 3], [1, 2, 3]))))

    # conversion and creation
    add(torch_op("dequantize"))
    for name in ("float", "double", "half", "numpy", "tolist"):
        add(method(name))
    add(custom("methods", "item", lambda x, y: x[0, 0, 0, 0].item()))
    add(torch_op("fill_", _call(0.5)))
    add(torch_op("zero_"))
    add(method("copy_", _call(OTHER)))
    add(method("new_zeros", _call((2,))))
    add(method("new_full", _call((2,), 0.5)))
    for name in ("zeros_like", "ones_like", "empty_like", "rand_like", "randn_like"):
        add(function("torch." + name))
    add(function("torch.full_like", _call(0.5)))

    # torch.* twins of torch.nn.functional ops
    add(torch_op("softmax", _call(1)))
    add(torch_op("log_softmax", _call(1)))
    add(function("torch.special.softmax", _call(1)))
    add(function("torch.special.log_softmax", _call(1)))
    for name in ("selu", "celu"):
        add(torch_op(name))
    add(torch_op("rrelu", _call(training=False)))
    add(torch_op("prelu", _call(PRELU_WEIGHT)))
    add(torch_op("threshold", _call(0.1, 0.0)))
    add(torch_op("layer_norm", _call([6])))
    add(torch_op("rms_norm", _call([6])))
    add(torch_op("group_norm", _call(2)))
    add(torch_op("instance_norm", _call(None, None, None, None, True, 0.1, 1e-5, False)))
    add(torch_op("batch_norm", _call(None, None, RUNNING_MEAN, RUNNING_VAR, False, 0.1, 1e-5, False)))
    for name in ("dropout", "feature_dropout", "alpha_dropout", "feature_alpha_dropout"):
        add(torch_op(name, _call(0.5, False)))
    for name in ("pixel_shuffle", "pixel_unshuffle", "channel_shuffle", "native_channel_shuffle"):
        add(torch_op(name, _call(2)))
    add(torch_op("max_pool2d", _call(2)))
    add(custom("functions", "torch.max_pool3d", lambda x, y: torch.max_pool3d(x[None], 2)))
    for name in ("max_pool1d", "avg_pool1d"):
        add(custom("functions", "torch." + name, lambda x, y, n=name: getattr(torch, n)(x[0], 2)))
    for name in ("adaptive_avg_pool1d", "adaptive_max_pool1d"):
        add(custom("functions", "torch." + name, lambda x, y, n=name: getattr(torch, n)(x[0], 3)))
    add(torch_op("cosine_similarity", _call(OTHER)))
    add(torch_op("pairwise_distance", _call(OTHER)))
    add(custom("functions", "torch.pdist", lambda x, y: torch.pdist(x[0, 0])))
    add(custom("functions", "torch.conv1d", lambda x, y: torch.conv1d(x[0], WEIGHT_CONV1D)))
    add(function("torch.conv2d", _call(WEIGHT_CONV2D)))
    add(custom("functions", "torch.conv3d", lambda x, y: torch.conv3d(x[None], WEIGHT_CONV3D)))
    add(custom("functions", "torch.conv_transpose1d",
               lambda x, y: torch.conv_transpose1d(x[0], WEIGHT_CONVT1D)))
    add(function("torch.conv_transpose2d", _call(WEIGHT_CONVT2D)))
    add(custom("functions", "torch.conv_transpose3d",
               lambda x, y: torch.conv_transpose3d(x[None], WEIGHT_CONVT3D)))

    # torch.nn.functional
    for name in F_UNARY:
        add(function(F + name))
    add(function(F + "rrelu", _call(training=False)))
    add(function(F + "rrelu_", _call(training=False)))
    add(function(F + "prelu", _call(PRELU_WEIGHT)))
    add(function(F + "threshold", _call(0.1, 0.0)))
    add(function(F + "threshold_", _call(0.1, 0.0)))
    for name in ("softmax", "log_softmax", "softmin", "glu"):
        add(function(F + name, _call(dim=1)))
    add(function(F + "layer_norm", _call([6])))
    add(function(F + "rms_norm", _call([6])))
    add(function(F + "group_norm", _call(2)))
    add(function(F + "instance_norm"))
    add(function(F + "batch_norm", _call(RUNNING_MEAN, RUNNING_VAR)))
    add(function(F + "local_response_norm", _call(2)))
    for name in ("dropout", "dropout2d", "dropout3d", "alpha_dropout", "feature_alpha_dropout"):
        add(function(F + name, _call(training=False)))
    add(custom("functions", F + "dropout1d", lambda x, y: torch.nn.functional.dropout1d(x[0], training=False)))
    # interpolate: nearest (the default) and bilinear; area and nearest-exact also run, bicubic crashes
    add(function(F + "interpolate", _call(scale_factor=2), _call(scale_factor=2, mode="bilinear")))
    for name in ("upsample", "upsample_nearest", "upsample_bilinear"):
        add(function(F + name, _call(scale_factor=2)))
    for name in ("avg_pool2d", "max_pool2d"):
        add(function(F + name, _call(2)))
    for name in ("avg_pool3d", "max_pool3d"):  # quantized 3d pooling wants a batched (5d) input
        add(custom("functions", F + name, lambda x, y, n=name: getattr(torch.nn.functional, n)(x[None], 2)))
    for name in ("adaptive_avg_pool2d", "adaptive_avg_pool3d", "adaptive_max_pool2d", "adaptive_max_pool3d"):
        add(function(F + name, _call(3)))
    for name in ("avg_pool1d", "max_pool1d"):
        add(custom("functions", F + name, lambda x, y, n=name: getattr(torch.nn.functional, n)(x[0], 2)))
    for name in ("adaptive_avg_pool1d", "adaptive_max_pool1d"):
        add(custom("functions", F + name, lambda x, y, n=name: getattr(torch.nn.functional, n)(x[0], 3)))
    add(custom("functions", F + "lp_pool1d", lambda x, y: torch.nn.functional.lp_pool1d(x[0], 2, 2)))
    add(function(F + "lp_pool2d", _call(2, 2)))
    add(function(F + "fractional_max_pool2d", _call(2, output_size=3)))
    # pad: the default constant mode (reflect also runs; replicate and circular crash)
    add(function(F + "pad", _call((1, 1, 1, 1))))
    for name in ("pixel_shuffle", "pixel_unshuffle", "channel_shuffle", "native_channel_shuffle"):
        add(function(F + name, _call(2)))
    add(function(F + "unfold", _call(2)))
    add(custom("functions", F + "fold",
               lambda x, y: torch.nn.functional.fold(x.reshape(2, 4, 36), (7, 7), 2)))
    add(function(F + "cosine_similarity", _call(OTHER)))
    add(function(F + "pairwise_distance", _call(OTHER)))
    add(custom("functions", F + "pdist", lambda x, y: torch.nn.functional.pdist(x[0, 0])))
    add(function(F + "grid_sample", _call(GRID, align_corners=False)))
    add(function(F + "scaled_dot_product_attention", _call(OTHER, OTHER)))
    add(function(F + "bilinear", _call(OTHER, WEIGHT_BILINEAR)))
    add(function(F + "linear", _call(WEIGHT_LINEAR)))
    add(custom("functions", F + "embedding",
               lambda x, y: torch.nn.functional.embedding(EMBEDDING_INDEX, x[0, 0])))
    add(custom("functions", F + "embedding_bag",
               lambda x, y: torch.nn.functional.embedding_bag(EMBEDDING_INDEX, x[0, 0])))
    add(custom("functions", F + "conv1d", lambda x, y: torch.nn.functional.conv1d(x[0], WEIGHT_CONV1D)))
    add(function(F + "conv2d", _call(WEIGHT_CONV2D)))
    add(custom("functions", F + "conv3d", lambda x, y: torch.nn.functional.conv3d(x[None], WEIGHT_CONV3D)))
    add(custom("functions", F + "conv_transpose1d",
               lambda x, y: torch.nn.functional.conv_transpose1d(x[0], WEIGHT_CONVT1D)))
    add(function(F + "conv_transpose2d", _call(WEIGHT_CONVT2D)))
    add(custom("functions", F + "conv_transpose3d",
               lambda x, y: torch.nn.functional.conv_transpose3d(x[None], WEIGHT_CONVT3D)))
    for name in ("mse_loss", "l1_loss", "smooth_l1_loss", "kl_div"):
        add(function(F + name, _call(OTHER)))
    add(function(F + "cross_entropy", _call(TARGET)))

    add(_operators())
    return found


def _operators() -> list[Candidate]:
    found: list[Candidate] = []
    binary = {
        "+": operator.add, "-": operator.sub, "*": operator.mul, "/": operator.truediv,
        "//": operator.floordiv, "%": operator.mod, "**": operator.pow,
        "<": operator.lt, "<=": operator.le, ">": operator.gt, ">=": operator.ge,
        "==": operator.eq, "!=": operator.ne,
    }
    bitwise = {"&": operator.and_, "|": operator.or_, "^": operator.xor,
               "<<": operator.lshift, ">>": operator.rshift}
    augmented = {
        "+=": operator.iadd, "-=": operator.isub, "*=": operator.imul, "/=": operator.itruediv,
        "//=": operator.ifloordiv, "%=": operator.imod, "**=": operator.ipow,
    }
    bitwise_augmented = {"&=": operator.iand, "|=": operator.ior, "^=": operator.ixor,
                         "<<=": operator.ilshift, ">>=": operator.irshift}
    # tensor op tensor, tensor op int, tensor op float, int op tensor
    for symbol, apply in binary.items():
        found += custom("operators", symbol,
                        lambda x, y, f=apply: f(x, y), lambda x, y, f=apply: f(x, 2),
                        lambda x, y, f=apply: f(x, 0.5), lambda x, y, f=apply: f(2, x))
    for symbol, apply in bitwise.items():
        found += custom("operators", symbol, lambda x, y, f=apply: f(x, y),
                        lambda x, y, f=apply: f(x, 2), lambda x, y, f=apply: f(2, x),
                        integer_control=True)
    for symbol, apply in augmented.items():
        found += custom("operators", symbol, lambda x, y, f=apply: f(x.clone(), y),
                        lambda x, y, f=apply: f(x.clone(), 2), lambda x, y, f=apply: f(x.clone(), 0.5))
    for symbol, apply in bitwise_augmented.items():
        found += custom("operators", symbol, lambda x, y, f=apply: f(x.clone(), y),
                        lambda x, y, f=apply: f(x.clone(), 2), integer_control=True)
    found += custom("operators", "@", lambda x, y: x @ y)
    found += custom("operators", "@=", lambda x, y: operator.imatmul(x.clone(), y))
    found += custom("operators", "unary -", lambda x, y: -x)
    found += custom("operators", "unary +", lambda x, y: +x)
    found += custom("operators", "abs()", lambda x, y: abs(x))
    found += custom("operators", "~", lambda x, y: ~x, integer_control=True)
    found += custom("operators", "[]", lambda x, y: x[0, 1:3], lambda x, y: x[MASK])
    found += custom("operators", "[]=", _assign_slice, _assign_scalar, _assign_masked)
    return found


def _assign_slice(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    result = x.clone()
    result[0] = y[0]
    return result


def _assign_scalar(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    result = x.clone()
    result[0, 1] = 0.5
    return result


def _assign_masked(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    result = x.clone()
    result[MASK] = 0.5
    return result


# Crashing functionals and their nn module counterparts: (module name, factory, the float
# input for the check, made from the (2, 4, 6, 6) sample). The module survives convert when
# a QuantStub -> module -> DeQuantStub model converts and runs with the engine's default qconfig.
_SAME_INPUT: Callable[[torch.Tensor], torch.Tensor] = lambda x: x
_BATCH_OF_SEQUENCES: Callable[[torch.Tensor], torch.Tensor] = lambda x: x[0]
_VOLUME: Callable[[torch.Tensor], torch.Tensor] = lambda x: x[None]
MODULE_COUNTERPARTS: dict[str, tuple[str, Callable[[], nn.Module], Callable]] = {}


def _counterpart(names: str, module: str, factory: Callable[[], nn.Module],
                 sample: Callable = _SAME_INPUT) -> None:
    for name in names.split():
        MODULE_COUNTERPARTS[name] = ("torch.nn." + module, factory, sample)


_counterpart(F + "hardswish", "Hardswish", nn.Hardswish)
_counterpart(F + "elu", "ELU", nn.ELU)
_counterpart(F + "selu torch.selu", "SELU", nn.SELU)
_counterpart(F + "celu torch.celu", "CELU", nn.CELU)
_counterpart(F + "silu", "SiLU", nn.SiLU)
_counterpart(F + "mish", "Mish", nn.Mish)
_counterpart(F + "rrelu torch.rrelu", "RReLU", nn.RReLU)
_counterpart(F + "prelu torch.prelu", "PReLU", nn.PReLU)
_counterpart(F + "softplus", "Softplus", nn.Softplus)
_counterpart(F + "softsign", "Softsign", nn.Softsign)
_counterpart(F + "softshrink", "Softshrink", nn.Softshrink)
_counterpart(F + "hardshrink torch.hardshrink", "Hardshrink", nn.Hardshrink)
_counterpart(F + "tanhshrink", "Tanhshrink", nn.Tanhshrink)
_counterpart(F + "logsigmoid", "LogSigmoid", nn.LogSigmoid)
_counterpart(F + "softmax torch.softmax torch.special.softmax", "Softmax", lambda: nn.Softmax(dim=1))
_counterpart(F + "log_softmax torch.log_softmax torch.special.log_softmax", "LogSoftmax",
             lambda: nn.LogSoftmax(dim=1))
_counterpart(F + "softmin", "Softmin", lambda: nn.Softmin(dim=1))
_counterpart(F + "glu", "GLU", lambda: nn.GLU(dim=1))
_counterpart(F + "layer_norm torch.layer_norm", "LayerNorm", lambda: nn.LayerNorm(6))
_counterpart(F + "rms_norm torch.rms_norm", "RMSNorm", lambda: nn.RMSNorm(6))
_counterpart(F + "group_norm torch.group_norm", "GroupNorm", lambda: nn.GroupNorm(2, 4))
_counterpart(F + "instance_norm torch.instance_norm", "InstanceNorm2d", lambda: nn.InstanceNorm2d(4))
_counterpart(F + "batch_norm torch.batch_norm", "BatchNorm2d", lambda: nn.BatchNorm2d(4))
_counterpart(F + "local_response_norm", "LocalResponseNorm", lambda: nn.LocalResponseNorm(2))
_counterpart(F + "adaptive_max_pool1d torch.adaptive_max_pool1d", "AdaptiveMaxPool1d",
             lambda: nn.AdaptiveMaxPool1d(3), _BATCH_OF_SEQUENCES)
_counterpart(F + "adaptive_max_pool2d", "AdaptiveMaxPool2d", lambda: nn.AdaptiveMaxPool2d(3))
_counterpart(F + "adaptive_max_pool3d", "AdaptiveMaxPool3d", lambda: nn.AdaptiveMaxPool3d(3), _VOLUME)
_counterpart(F + "lp_pool1d", "LPPool1d", lambda: nn.LPPool1d(2, 2), _BATCH_OF_SEQUENCES)
_counterpart(F + "lp_pool2d", "LPPool2d", lambda: nn.LPPool2d(2, 2))
_counterpart(F + "fractional_max_pool2d", "FractionalMaxPool2d",
             lambda: nn.FractionalMaxPool2d(2, output_size=3))
_counterpart(F + "unfold", "Unfold", lambda: nn.Unfold(2))
_counterpart(F + "fold", "Fold", lambda: nn.Fold((7, 7), 2), lambda x: x.reshape(2, 4, 36))
_counterpart("torch.conv1d", "Conv1d", lambda: nn.Conv1d(6, 3, 3), _BATCH_OF_SEQUENCES)
_counterpart("torch.conv2d", "Conv2d", lambda: nn.Conv2d(4, 3, 3))
_counterpart("torch.conv3d", "Conv3d", lambda: nn.Conv3d(2, 3, 3), _VOLUME)
_counterpart("torch.conv_transpose1d", "ConvTranspose1d", lambda: nn.ConvTranspose1d(6, 3, 3),
             _BATCH_OF_SEQUENCES)
_counterpart("torch.conv_transpose2d", "ConvTranspose2d", lambda: nn.ConvTranspose2d(4, 3, 3))
_counterpart("torch.conv_transpose3d", "ConvTranspose3d", lambda: nn.ConvTranspose3d(2, 3, 3), _VOLUME)


def _inputs() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    return tuple(  # type: ignore[return-value]
        torch.quantize_per_tensor(torch.randn(2, 4, 6, 6, generator=generator), 0.1, 128, torch.quint8)
        for _ in range(2)
    )


def classify(error: Exception) -> str:
    """Reduce an exception raised on a quantized tensor to a reason class."""
    message = str(error)
    if isinstance(error, NotImplementedError) and "QuantizedCPU" in message:
        return "no_kernel"
    if "promot" in message.lower() or "must have the same dtype" in message:
        return "dtype_promotion"
    if "empty_strided not supported on quantized" in message:
        return "output_allocation"
    if any(marker in message for marker in (
        "QUInt8", "floating point", "floating-point", "only implemented on", "must have dtype",
        "requires quantized dtype", "not supported for quantized", "should not be quantized",
    )):
        return "unsupported_dtype"
    return "other"


def _first_crash(candidate: Candidate, x: torch.Tensor, y: torch.Tensor) -> str:
    """'runs', or the reason class of the first form that raises on the quantized inputs."""
    for form in candidate.forms:
        try:
            form(x, y)
        except Exception as error:  # the verdict is whatever the quantized call raises
            return classify(error)
    return RUNS


def _control_failure(candidate: Candidate, x: torch.Tensor, y: torch.Tensor) -> str | None:
    """Why the candidate fails on the float (or integer) version of its inputs, if it does."""
    if candidate.integer_control:
        x, y = x.int_repr(), y.int_repr()
    else:
        x, y = x.dequantize(), y.dequantize()
    for index, form in enumerate(candidate.forms):
        try:
            form(x, y)
        except Exception as error:
            first_line = str(error).splitlines()[0] if str(error) else ""
            return f"{candidate.kind} {candidate.name} form {index}: {type(error).__name__}: {first_line}"
    return None


def _module_survives_convert(factory: Callable[[], nn.Module], sample: Callable) -> bool:
    from torch.ao.quantization import DeQuantStub, QuantStub, convert, get_default_qconfig, prepare

    x = sample(_inputs()[0].dequantize())
    model = nn.Sequential(QuantStub(), factory(), DeQuantStub()).eval()
    model(x)  # outside the try: a broken factory or sample must not pass for "no support"
    model.qconfig = get_default_qconfig(torch.backends.quantized.engine)
    try:
        prepared = prepare(model)
        prepared(x)
        convert(prepared)(x)
    except Exception:
        return False
    return True


def rule_handling(kind: str, name: str) -> str | None:
    """The other qlint rule that owns this op, or None for QL102/QL104's table."""
    base = name.rsplit(".", 1)[-1]
    if (kind == "operators" and name.endswith("=") and name not in ("==", "!=", "<=", ">=", "[]=")) \
            or (kind != "operators" and base.endswith("_")):
        return "QL202"
    if kind == "functions" and name in (F + "relu", F + "relu6"):
        return "QL101"
    if kind == "functions" and (name.startswith(F + "conv") or name.startswith("torch.conv")
                                or name in (F + "linear", F + "embedding")):
        return "QL103"
    if (kind == "operators" and name in _ARITHMETIC_OPERATORS) or (
            kind == "methods" and name in _ARITHMETIC_NAMES) or (
            kind == "functions" and name in {"torch." + n for n in _ARITHMETIC_NAMES}):
        return "QL301-303"
    return None


def _fill(table: dict, candidates: list[Candidate]) -> list[str]:
    """Sort every candidate into the table; return the candidates whose control run failed."""
    broken: list[str] = []
    survivors: dict[str, bool] = {}
    for candidate in candidates:
        x, y = _inputs()
        failure = _control_failure(candidate, x, y)
        if failure:
            broken.append(failure)
            continue
        verdict = _first_crash(candidate, x, y)
        kind, name = candidate.kind, candidate.name
        rule = rule_handling(kind, name)
        if rule:
            table["handled_by_other_rules"][rule]["verdicts"][kind][name] = verdict
        elif verdict == RUNS:
            table["runs"][kind].append(name)
        else:
            table["crash_reasons"][kind][name] = verdict
            counterpart = MODULE_COUNTERPARTS.get(name) if kind == "functions" else None
            if counterpart:
                if counterpart[0] not in survivors:
                    survivors[counterpart[0]] = _module_survives_convert(*counterpart[1:])
                table["functional_needs_module"][name] = counterpart[0]
                table["module_converts"][counterpart[0]] = survivors[counterpart[0]]
            else:
                table["no_quantized_kernel"][kind].append(name)
    return broken


def build_table() -> dict:
    """Run every candidate and assemble the table (the JSON document, as a dict)."""
    candidates = _candidates()
    seen: set[tuple[str, str]] = set()
    for candidate in candidates:
        key = (candidate.kind, candidate.name)
        if key in seen:
            raise ValueError(f"candidate listed twice: {candidate.kind} {candidate.name}")
        seen.add(key)

    table: dict = {
        "generated_by": GENERATED_BY,
        "torch_version": torch.__version__,
        "quantized_engine": torch.backends.quantized.engine,
        "input": INPUT_DESCRIPTION,
        "reason_classes": REASON_CLASSES,
        "functional_needs_module": {},
        "module_converts": {},
        "no_quantized_kernel": {kind: [] for kind in KINDS},
        "runs": {kind: [] for kind in KINDS},
        "crash_reasons": {kind: {} for kind in KINDS},
        "handled_by_other_rules": {
            rule: {"covers": covers, "verdicts": {kind: {} for kind in KINDS}}
            for rule, covers in OTHER_RULES.items()
        },
    }
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny tensors: a thread pool only adds contention on a busy machine
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            broken = _fill(table, candidates)
    finally:
        torch.set_num_threads(threads)
    if broken:
        raise RuntimeError("candidate calls that fail on float tensors too (fix the curated list):\n"
                           + "\n".join(broken))
    for section in ("no_quantized_kernel", "runs"):
        for kind in KINDS:
            table[section][kind].sort()
    return table


def render(table: dict) -> str:
    return json.dumps(table, indent=1, sort_keys=True) + "\n"


def _flatten(value: Any, path: tuple[str, ...] = ()) -> dict[tuple[str, ...], Any]:
    if isinstance(value, dict):
        flat: dict[tuple[str, ...], Any] = {}
        for key, item in value.items():
            flat.update(_flatten(item, path + (key,)))
        return flat
    if isinstance(value, list):
        return {path + (item,): True for item in value}
    return {path: value}


DIFF_LEGEND = "- only in the shipped file, + only in a fresh run, ~ changed (shipped -> fresh)"


def describe_differences(shipped: dict, generated: dict) -> list[str]:
    """One line per entry that differs, marked as DIFF_LEGEND explains."""
    old, new = _flatten(shipped), _flatten(generated)

    def where(path: tuple[str, ...]) -> str:
        return " / ".join(path[:-1]) + ": " + path[-1] if len(path) > 1 else path[0]

    lines = [f"- {where(path)}" + ("" if old[path] is True else f" = {old[path]!r}")
             for path in sorted(old.keys() - new.keys())]
    lines += [f"+ {where(path)}" + ("" if new[path] is True else f" = {new[path]!r}")
              for path in sorted(new.keys() - old.keys())]
    lines += [f"~ {where(path)}: {old[path]!r} -> {new[path]!r}"
              for path in sorted(old.keys() & new.keys()) if old[path] != new[path]]
    return lines


def _counts(table: dict) -> str:
    parts = [f"functional_needs_module {len(table['functional_needs_module'])}"]
    for section in ("no_quantized_kernel", "runs"):
        parts.append(section + " " + "/".join(str(len(table[section][kind])) for kind in KINDS))
    handled = sum(len(v) for rule in table["handled_by_other_rules"].values() for v in rule["verdicts"].values())
    parts.append(f"handled_by_other_rules {handled}")
    return ", ".join(parts) + " (functions/methods/operators)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="compare with the shipped table instead of rewriting it; exit 1 if stale")
    options = parser.parse_args(argv)
    table = build_table()
    if options.check:
        shipped_text = TABLE_PATH.read_text() if TABLE_PATH.exists() else "{}"
        differences = describe_differences(json.loads(shipped_text), table)
        if differences or shipped_text != render(table):
            print(f"{TABLE_PATH} is stale for torch {torch.__version__} "
                  f"({len(differences)} entries differ; {DIFF_LEGEND}):", file=sys.stderr)
            print("\n".join(differences) or "(formatting only)", file=sys.stderr)
            print(f"regenerate with `{REGENERATE_COMMAND}`", file=sys.stderr)
            return 1
        print(f"{TABLE_PATH} is up to date: {_counts(table)}")
        return 0
    TABLE_PATH.parent.mkdir(parents=True, exist_ok=True)
    TABLE_PATH.write_text(render(table))
    print(f"wrote {TABLE_PATH}: {_counts(table)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
