"""The op table: for each function, method, attribute and operator the interpreters know
by name, how its result is derived from its inputs.

Keys are canonical qualified names for functions (`torch.arange`, `builtins.len`), and
`Tensor.<name>`, `Module.<name>`, `list.<name>` for methods and attributes of tensors,
nn.Modules and Python sequences, `operator.<symbol>` for operators. A function not listed
falls back to the entry of its longest listed namespace (`math`, `torch`, ...). This is the
one place where the analysis matches names; handlers dispatch on the `Result` found here.
"""
from __future__ import annotations

import enum
import json
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Optional


class Result(enum.Enum):
    # tensors
    PYTHON = "a Python value (a shape, a size, a flag)"
    CONSTRUCTOR = "a new float tensor that is not an activation"
    INDEX_CONSTRUCTOR = "a new integer tensor (float when a float dtype is given)"
    INDEX = "an index or mask tensor (int64 or bool), not an activation"
    INTEGER = "the input as an integer or bool tensor, not an activation"
    VALUES_AND_INDICES = "(values like the input, indices)"
    VALUES_AND_INDICES_ALONG_DIM = "(values, indices) when reducing along a dim, else like its inputs"
    SPLIT = "a sequence of parts of the input"
    RECEIVER = "like the receiver; tensor arguments give only an index, a mask, a shape or a dtype"
    CAST = "like the receiver, or an integer tensor when an integer or bool dtype is given"
    DEQUANTIZE = "the receiver as a float tensor (Tensor.dequantize())"
    SAME = "the same tensor (an attribute such as .T or .data)"
    TENSOR = "a tensor like its tensor arguments (an activation when one of them is)"
    JOIN = "like its arguments (an activation when one of them is)"
    CALL = "a call of unknown code: an activation when an argument is one, else unknown"
    UNKNOWN = "unknown"
    # Python builtins
    ELEMENTS = "a sequence of the argument's elements"
    ENUMERATE = "pairs of (index, element)"
    ZIP = "tuples of the arguments' elements"
    ATTRIBUTE_OF = "an attribute looked up by name (getattr)"
    ABSOLUTE = "like the input (abs(x) is x.abs())"
    # nn.Module methods and attributes
    MEMBER_PAIRS = "pairs of (name, member) of a container"
    MEMBERS = "the members of a container"
    MODULE_ITSELF = "the module itself (.to(), .eval(), ...)"
    REGISTER = "binds a submodule under a name (in __init__)"
    REGISTER_BUFFER = "binds a buffer under a name"
    REGISTER_PARAMETER = "binds a parameter under a name"
    SET_ATTRIBUTE = "binds an attribute under a name (setattr)"
    SUBMODULES = "the submodules by name (self._modules)"
    # Python sequences
    APPEND = "adds its last argument to the sequence"
    EXTEND = "adds the elements of its argument to the sequence"
    ELEMENT = "one element of the sequence"
    SEQUENCE = "the sequence itself"
    # values __init__ builds
    PARAMETER = "an nn.Parameter"
    BUFFER = "an nn.Buffer"


@dataclass(frozen=True)
class Op:
    result: Result
    quiet: bool = False  # tensor arguments are read for their shape, dtype or indices only
    attribute: bool = False  # an attribute (x.shape), not a method


def _entries(prefix: str, names: str, result: Result, **flags) -> dict[str, Op]:
    op = Op(result, **flags)
    return {prefix + name: op for name in names.split()}


_COMPARISONS = ("eq ne lt le gt ge greater greater_equal less less_equal not_equal isnan isinf "
                "isfinite isneginf isposinf isclose isin logical_and logical_or logical_not "
                "logical_xor signbit")
_INDICES = "argmax argmin argsort nonzero argwhere searchsorted bucketize multinomial"
_VALUES_AND_INDICES = "topk sort kthvalue mode cummax cummin aminmax"
_ALONG_DIM = "max min median nanmedian"
_SPLITS = "split chunk unbind tensor_split"
_LIKE = "zeros_like ones_like full_like empty_like rand_like randn_like randint_like"
_CONSTRUCTORS = "zeros ones full empty rand randn linspace logspace eye tensor as_tensor from_numpy empty_strided"
_INDEX_CONSTRUCTORS = "arange randint randperm tril_indices triu_indices"
_INTEGER_CASTS = "long int bool byte short char"
_SHAPE_FUNCTIONS = ("numel is_tensor is_floating_point broadcast_shapes Size finfo iinfo "
                    "is_grad_enabled is_autocast_enabled jit.is_scripting jit.is_tracing "
                    "fx._symbolic_trace.is_fx_tracing")

OPS: dict[str, Op] = {
    # --- torch functions -----------------------------------------------------------------
    "torch": Op(Result.TENSOR),
    "torch.nn.Module": Op(Result.CALL),
    **_entries("torch.", _SHAPE_FUNCTIONS, Result.PYTHON, quiet=True),
    **_entries("torch.", _LIKE, Result.CONSTRUCTOR, quiet=True),
    **_entries("torch.", _CONSTRUCTORS, Result.CONSTRUCTOR),
    **_entries("torch.", _INDEX_CONSTRUCTORS, Result.INDEX_CONSTRUCTOR),
    "torch.nn.Parameter": Op(Result.PARAMETER),
    "torch.nn.Buffer": Op(Result.BUFFER),
    **_entries("torch.", _COMPARISONS, Result.INDEX),
    **_entries("torch.", _INDICES, Result.INDEX),
    "torch.nn.functional.one_hot": Op(Result.INDEX),
    **_entries("torch.", _VALUES_AND_INDICES, Result.VALUES_AND_INDICES),
    **_entries("torch.", _ALONG_DIM, Result.VALUES_AND_INDICES_ALONG_DIM),
    **_entries("torch.", _SPLITS, Result.SPLIT),
    # --- other libraries -----------------------------------------------------------------
    "math": Op(Result.PYTHON),
    "numpy": Op(Result.PYTHON),
    "operator": Op(Result.PYTHON),
    "typing": Op(Result.UNKNOWN),
    "warnings": Op(Result.UNKNOWN),
    "logging": Op(Result.UNKNOWN),
    # --- builtins ------------------------------------------------------------------------
    **_entries("builtins.", "range len int float bool str isinstance hasattr callable issubclass "
               "id repr type print round divmod", Result.PYTHON),
    "builtins.abs": Op(Result.ABSOLUTE),
    "builtins.super": Op(Result.UNKNOWN),
    "builtins.enumerate": Op(Result.ENUMERATE),
    "builtins.zip": Op(Result.ZIP),
    **_entries("builtins.", "reversed sorted list tuple iter set frozenset", Result.ELEMENTS),
    "builtins.getattr": Op(Result.ATTRIBUTE_OF),
    "builtins.setattr": Op(Result.SET_ATTRIBUTE),
    **_entries("builtins.", "min max sum next map filter any all pow", Result.JOIN),
    **_entries("builtins.", "dict object slice", Result.UNKNOWN),
    # --- Tensor attributes and methods ---------------------------------------------------
    **_entries("Tensor.", "shape ndim dtype device is_quantized is_cuda requires_grad layout "
               "is_sparse names grad_fn is_leaf itemsize nbytes", Result.PYTHON, attribute=True),
    **_entries("Tensor.", "T mT H mH data real imag", Result.SAME, attribute=True),
    **_entries("Tensor.", "size dim ndimension numel nelement item tolist stride element_size "
               "data_ptr get_device is_contiguous is_floating_point is_complex storage_offset "
               "q_scale q_zero_point qscheme __len__", Result.PYTHON, quiet=True),
    **_entries("Tensor.", "new_zeros new_ones new_full new_empty new_tensor", Result.CONSTRUCTOR, quiet=True),
    **_entries("Tensor.", "masked_fill index_select index_fill expand_as view_as reshape_as",
               Result.RECEIVER, quiet=True),
    **_entries("Tensor.", "to type type_as", Result.CAST, quiet=True),
    "Tensor.dequantize": Op(Result.DEQUANTIZE),
    **_entries("Tensor.", _INTEGER_CASTS, Result.INTEGER),
    **_entries("Tensor.", _COMPARISONS, Result.INDEX),
    **_entries("Tensor.", _INDICES, Result.INDEX),
    **_entries("Tensor.", _VALUES_AND_INDICES, Result.VALUES_AND_INDICES),
    **_entries("Tensor.", _ALONG_DIM, Result.VALUES_AND_INDICES_ALONG_DIM),
    **_entries("Tensor.", _SPLITS + " unsafe_chunk", Result.SPLIT),
    # --- nn.Module attributes and methods ------------------------------------------------
    "Module.training": Op(Result.PYTHON, attribute=True),
    "Module.items": Op(Result.MEMBER_PAIRS),
    **_entries("Module.", "values children modules", Result.MEMBERS),
    **_entries("Module.", "parameters named_parameters buffers keys", Result.UNKNOWN),
    **_entries("Module.", "to cpu cuda float double half bfloat16 train eval requires_grad_ apply "
               "type to_empty share_memory", Result.MODULE_ITSELF),
    **_entries("Module.", "add_module register_module", Result.REGISTER),
    "Module.register_buffer": Op(Result.REGISTER_BUFFER),
    "Module.register_parameter": Op(Result.REGISTER_PARAMETER),
    "Module._modules": Op(Result.SUBMODULES, attribute=True),
    **_entries("Module.", "append insert", Result.APPEND),
    "Module.extend": Op(Result.EXTEND),
    # --- Python sequences ----------------------------------------------------------------
    **_entries("list.", "append insert", Result.APPEND),
    "list.extend": Op(Result.EXTEND),
    **_entries("list.", "pop get", Result.ELEMENT),
    "list.copy": Op(Result.SEQUENCE),
    **_entries("list.", "items values", Result.ELEMENTS),
    # --- operators -----------------------------------------------------------------------
    **_entries("operator.", "< > <= >= == !=", Result.INDEX),
    # bitwise operators run on integer and bool tensors only: their tensor operands are masks or indices
    **_entries("operator.", "& | ^ << >>", Result.INTEGER),
    "operator.unary ~": Op(Result.INTEGER),
}

# Python names that mean builtins when nothing else binds them.
BUILTINS = frozenset(
    {name.split(".", 1)[1] for name in OPS if name.startswith("builtins.")}
    | {"NotImplementedError", "ValueError", "RuntimeError", "TypeError", "AssertionError"})
# Results that bind a name on the module (what `__init__` and QL705 read).
BINDING = frozenset({Result.REGISTER, Result.REGISTER_BUFFER, Result.REGISTER_PARAMETER})
# Keyword arguments torch ops share: a result's dtype, a reduction's dimension.
DTYPE_KEYWORD, DIM_KEYWORD = "dtype", "dim"

# Integer and bool dtypes: a tensor cast to one of them is not an activation.
INTEGER_DTYPES = frozenset("torch." + name for name in (
    "long int64 int int32 short int16 int8 uint8 bool bool_ uint16 uint32 uint64").split())
FLOAT_DTYPES = frozenset("torch." + name for name in "float float32 float16 half bfloat16 double float64".split())


def lookup(name: str) -> Optional[Op]:
    """The entry of a qualified function name, or of its longest listed namespace."""
    op = OPS.get(name)
    while op is None and "." in name:
        name = name.rpartition(".")[0]
        op = OPS.get(name)
    return op


def tensor_op(name: str) -> Optional[Op]:
    return OPS.get("Tensor." + name)


@lru_cache(maxsize=None)
def tensor_attributes() -> frozenset[str]:
    """Every attribute a torch.Tensor has (qlint/data/tensor_attributes.json, generated from
    torch by tools/generate_tensor_attributes.py)."""
    text = resources.files("qlint").joinpath("data/tensor_attributes.json").read_text(encoding="utf-8")
    return frozenset(json.loads(text)["attributes"])


def module_op(name: str) -> Optional[Op]:
    return OPS.get("Module." + name)


def sequence_op(name: str) -> Optional[Op]:
    return OPS.get("list." + name)


def operator_op(symbol: str) -> Optional[Op]:
    return OPS.get("operator." + symbol)


# --- annotations --------------------------------------------------------------------------
class Annotation(enum.Enum):
    TENSOR = "a float tensor: may be an activation"
    INDEX = "an integer or bool tensor: never an activation"
    ANY = "anything, a tensor included"
    WRAPPER = "a container or union: holds a tensor when one of its arguments does"
    # any other class named by an annotation holds no tensor (an int, a config, a cache)


ANNOTATIONS: dict[str, Annotation] = {
    **{"torch." + name: Annotation.TENSOR for name in (
        "Tensor", "FloatTensor", "HalfTensor", "DoubleTensor", "BFloat16Tensor", "nn.Parameter")},
    **{"torch." + name: Annotation.INDEX for name in (
        "LongTensor", "IntTensor", "ShortTensor", "CharTensor", "ByteTensor", "BoolTensor")},
    **{name: Annotation.ANY for name in ("typing.Any", "builtins.object", "typing_extensions.Any")},
    **{name: Annotation.WRAPPER for name in (
        "typing.Optional", "typing.Union", "typing.List", "typing.Tuple", "typing.Sequence",
        "typing.Dict", "typing.Iterable", "typing.Mapping", "builtins.list", "builtins.tuple",
        "builtins.dict", "typing.Final", "typing.Set", "builtins.set")},
}
# Python's own types, by name (an annotation naming one holds no tensor).
PYTHON_TYPES = frozenset({"int", "float", "bool", "str", "bytes", "complex", "list", "tuple", "dict", "set",
                          "frozenset", "type", "range", "slice"})
# The last part of a wrapper's name, when it is imported from elsewhere (typing_extensions).
WRAPPER_NAMES = frozenset({"Optional", "Union", "List", "Tuple", "Sequence", "Dict", "list", "tuple", "dict"})
TUPLE_NAMES = frozenset({"Tuple", "tuple"})


# nn.Module methods that return the module itself (model.train(), model.to(device)).
RETURNS_SELF = frozenset(name.split(".", 1)[1] for name, op in OPS.items()
                         if name.startswith("Module.") and op.result is Result.MODULE_ITSELF)
