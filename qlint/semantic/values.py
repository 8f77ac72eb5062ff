"""The abstract values the interpreters compute with.

A value is one of a few small types: a tensor (an activation or not, with a quantization
state), a Python value, a module, a sequence, a function, a bound method, or unknown.

The quantization state of a tensor is FLOAT, QUANTIZED or UNKNOWN (`Quant`). A QuantStub
makes float quantized, a DeQuantStub makes quantized float; a value that mixes a quantized
and a float tensor is unknown afterwards, so one mistake is reported once. Tensors that are
not activations (masks, indices, integer tensors, constructors, parameters) are never
quantized by eager-mode convert: their state is FLOAT.

In the summary pass (see `forward.py`), values also carry an `origin`: how the value is
computed from the method's parameters and the results of its calls (`summaries.Origin`),
so that the project index can recompute it for each caller.
"""
from __future__ import annotations

import enum
from typing import Optional


class Quant(enum.Enum):
    FLOAT = "float"
    QUANTIZED = "quantized"
    UNKNOWN = "unknown"

    def join(self, other: "Quant") -> "Quant":
        """The state of a value that may be either (or mixes both)."""
        return self if self is other else Quant.UNKNOWN


FLOAT, QUANTIZED, UNKNOWN_STATE = Quant.FLOAT, Quant.QUANTIZED, Quant.UNKNOWN


class Value:
    """An abstract value. `origin` is set only in the summary pass."""

    __slots__ = ("origin",)

    def __init__(self, origin=None):
        self.origin = origin

    def is_act(self) -> bool:
        return False

    def with_origin(self, origin) -> "Value":
        if origin is None and self.origin is None:
            return self
        copy = self._copy()
        copy.origin = origin
        return copy

    def _copy(self) -> "Value":
        copy = object.__new__(type(self))
        for cls in type(self).__mro__:
            for slot in getattr(cls, "__slots__", ()):
                setattr(copy, slot, getattr(self, slot))
        return copy

    def key(self):
        """A hashable description (contexts and summaries compare values by it)."""
        return (type(self).__name__,)

    def __repr__(self) -> str:
        return f"{type(self).__name__}{self.key()[1:]}"


class Tensor(Value):
    """A tensor. `activation`: data flowing through the model (forward inputs, submodule
    outputs and what is computed from them), which eager convert() quantizes between the
    stubs. Other tensors are never quantized; `kind` says what they are: "index" (masks,
    indices, integer and bool tensors), "float" (float tensors a constructor made:
    coordinates, noise, anchors) or "weight" (parameters and buffers)."""

    __slots__ = ("activation", "state", "producer", "kind")

    def __init__(self, activation: bool, state: Quant = UNKNOWN_STATE, producer=None, origin=None,
                 kind: str = "index"):
        super().__init__(origin)
        self.activation = activation
        self.state = state if activation else FLOAT
        self.producer = producer  # the ModuleCall whose output this is, unchanged
        self.kind = "activation" if activation else kind

    def is_act(self) -> bool:
        return self.activation

    def key(self):
        return ("Tensor", self.activation, self.state.value, self.kind)


class Py(Value):
    """A Python value: a number, a string, a shape, a flag, None."""

    __slots__ = ("none",)

    def __init__(self, none: bool = False, origin=None):
        super().__init__(origin)
        self.none = none

    def key(self):
        return ("Py", self.none)


class Module(Value):
    """A submodule (or a container of them): `key_path` is its attribute path from self
    ("relu", "layers.0"), None for members reached by iteration (`parent`: the container's)."""

    __slots__ = ("key_path", "cls", "members", "container", "element", "parent")

    def __init__(self, key_path: Optional[str], cls: Optional[str], members=None, container=None,
                 element=None, parent: Optional[str] = None, origin=None):
        super().__init__(origin)
        self.key_path = key_path
        self.cls = cls  # qualified class
        self.members = members  # literal members of a container: ((name, cls), ...)
        self.container = container  # "sequential", "list" or "dict"
        self.element = element  # the class of every member, when known
        self.parent = parent

    def key(self):
        return ("Module", self.key_path, self.cls)


class SelfRef(Value):
    """`self` in a method: its attributes are the class's."""

    __slots__ = ("cls",)

    def __init__(self, cls: Optional[str] = None, origin=None):
        super().__init__(origin)
        self.cls = cls

    def key(self):
        return ("SelfRef", self.cls)


class Seq(Value):
    """A tuple, list, dict or set built in the code: its items, in order (mutable)."""

    __slots__ = ("items",)

    def __init__(self, items: Optional[list] = None, origin=None):
        super().__init__(origin)
        self.items = list(items) if items is not None else []

    def is_act(self) -> bool:
        return any(item.is_act() for item in self.items)

    def key(self):
        return ("Seq", tuple(item.key() for item in self.items))


class Func(Value):
    """A function, class or other global, by qualified name."""

    __slots__ = ("qname",)

    def __init__(self, qname: str, origin=None):
        super().__init__(origin)
        self.qname = qname

    def key(self):
        return ("Func", self.qname)


class Closure(Value):
    """A function or lambda defined in the method being interpreted."""

    __slots__ = ("node",)

    def __init__(self, node, origin=None):
        super().__init__(origin)
        self.node = node

    def key(self):
        return ("Unknown",)


class Method(Value):
    """A bound method: `receiver.name`."""

    __slots__ = ("name", "receiver")

    def __init__(self, name: str, receiver: Value, origin=None):
        super().__init__(origin)
        self.name = name
        self.receiver = receiver

    def key(self):
        return ("Method", self.name, self.receiver.key())


class Unknown(Value):
    __slots__ = ()


ACT = Tensor(True)
INDEX = Tensor(False)  # a mask, indices, an integer tensor
FACTORY = Tensor(False, kind="float")  # a float tensor a constructor made
WEIGHT = Tensor(False, kind="weight")  # a parameter or buffer
_NON_ACTIVATIONS = {"float": FACTORY, "weight": WEIGHT, "index": INDEX}
PY = Py()
NONE = Py(none=True)
UNKNOWN = Unknown()


def act(state: Quant, producer=None) -> Tensor:
    return ACT if state is UNKNOWN_STATE and producer is None else Tensor(True, state, producer)


def activation_state(values) -> Optional[Quant]:
    """The joined state of the activations among `values` (None when there are none)."""
    state = None
    for value in values:
        if isinstance(value, Tensor):
            if value.activation:
                state = value.state if state is None else state.join(value.state)
        elif isinstance(value, Seq):
            inner = activation_state(value.items)
            if inner is not None:
                state = inner if state is None else state.join(inner)
    return state


def join(*values: Value) -> Value:
    """The value of an expression that may be any of `values`, or that mixes them
    (activations dominate; a quantized and a float activation give an unknown state)."""
    result = _join(values)
    if any(has_origin(v) for v in values):
        origins = tuple(dict.fromkeys(origin_of(v) for v in values))
        return result.with_origin(origins[0] if len(origins) == 1 else ("join", origins))
    return result


def _join(values) -> Value:
    state = activation_state(values)
    if state is not None:
        return act(state)
    kinds = {v.kind for v in values if isinstance(v, Tensor)}
    if kinds:
        return next(_NON_ACTIVATIONS[k] for k in ("float", "weight", "index") if k in kinds)
    if all(isinstance(v, Py) for v in values):
        return PY
    return values[0] if len(values) == 1 else UNKNOWN


# ----- origins (the summary pass) -------------------------------------------------------------
def has_origin(value: Value) -> bool:
    return value.origin is not None or (isinstance(value, Seq) and any(has_origin(i) for i in value.items))


def origin_of(value: Value) -> tuple:
    """How the project index recomputes `value` for a caller (see summaries.py)."""
    if value.origin is not None:
        return value.origin
    if isinstance(value, Seq) and any(has_origin(i) for i in value.items):
        return ("seq", tuple(origin_of(i) for i in value.items))
    return ("const", value.key())


def item_origin(value: Value, index: Optional[int]) -> Optional[tuple]:
    """The origin of item `index` of a value that has an origin (None otherwise)."""
    return ("item", value.origin, index) if value.origin is not None else None


def from_key(key: tuple) -> Value:
    """The value a `Value.key()` describes (in the index, for constants of a summary)."""
    kind = key[0]
    if kind == "Tensor":
        return Tensor(key[1], Quant(key[2])) if key[1] else _NON_ACTIVATIONS[key[3]]
    if kind == "Py":
        return NONE if key[1] else PY
    if kind == "Seq":
        return Seq([from_key(k) for k in key[1]])
    if kind == "Module":
        return Module(key[1], key[2])
    if kind == "Func":
        return Func(key[1])
    if kind == "SelfRef":
        return SelfRef(key[1])
    return UNKNOWN


def mixes_quantized_and_float(values) -> bool:
    """Whether quantized and float data meet: a quantized activation with a float one, or with
    a float tensor a constructor made (masks, indices and parameters are not counted)."""
    states = activation_states(values)
    return QUANTIZED in states and (FLOAT in states or any(
        isinstance(v, Tensor) and v.kind == "float" for v in _flat(values)))


def _flat(values):
    for value in values:
        if isinstance(value, Seq):
            yield from _flat(value.items)
        else:
            yield value


def activation_states(values) -> set:
    """The states of the activations among `values` (inside sequences too)."""
    states = set()
    for value in values:
        if isinstance(value, Tensor):
            if value.activation:
                states.add(value.state)
        elif isinstance(value, Seq):
            states |= activation_states(value.items)
    return states


def evidence(values) -> Optional[Quant]:
    """What a set of operands says about an op's input: QUANTIZED when some activation
    may be quantized for sure, FLOAT when all are float, UNKNOWN otherwise (None: no
    activation among them)."""
    states = activation_states(values)
    if not states:
        return None
    if QUANTIZED in states:
        return QUANTIZED
    return FLOAT if states == {FLOAT} else UNKNOWN_STATE


def element_of_sequence(value: Seq) -> Value:
    """The value of one element of a sequence whose items are known."""
    if not value.items:
        return UNKNOWN
    if all(isinstance(item, Module) for item in value.items):
        return Module(None, None)
    if len(value.items) == 1 or len({id(i) for i in value.items}) == 1:
        return value.items[0]
    if all(isinstance(item, Seq) for item in value.items):
        return value.items[0]
    return join(*value.items)


def unknown_call(values: list) -> Value:
    """What a call of unknown code gives: like the activations it is given; else the function
    it is given, if any (`partial(fn, ...)`, a dispatch table's `get(name, default_fn)`); else,
    when it is given tensors none of which is an activation (a grid's sizes, a mask, indices),
    a tensor like them: code that sees no activation computes none (position ids from
    `grid_thw`, sequence lengths from `cu_seqlens`)."""
    if any(v.is_act() for v in values):
        return join(*(v for v in values if v.is_act()))
    function = next((v for v in values if isinstance(v, Func)), None)
    if function is not None:
        return function
    if any(isinstance(v, Tensor) for v in values):
        return join(*(v for v in values if isinstance(v, Tensor)))
    origins = [v for v in values if v.origin is not None]
    return UNKNOWN.with_origin(("join", tuple(origin_of(v) for v in origins))) if origins else UNKNOWN
