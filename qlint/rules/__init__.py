"""The rules, one module per family; importing this package registers them all."""
from qlint.rules import (  # noqa: F401
    arithmetic,
    functional,
    fusion,
    inplace,
    namespace,
    parameters,
    parse,
    reuse,
    suppression,
    training,
)
