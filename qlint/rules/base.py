"""What rules yield, and the queries most of them share."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Optional

import libcst as cst

from qlint.semantic.forward import OpUse, Trace
from qlint.semantic.model import ClassModel, FileModel


@dataclass
class Report:
    """A finding before it has a position: the node it is about, and what to say."""

    node: cst.CSTNode
    message: str
    severity: Optional[str] = None  # None: the rule's own severity
    lines: Optional[dict] = None  # {"first": node}: "{first}" in the message becomes its line
    fix: Optional[tuple] = None  # (node, replacement node): what `qlint --fix` rewrites


def forward_traces(model: FileModel) -> Iterator[tuple[ClassModel, Trace]]:
    """The forward-path trace of each nn.Module class of the file."""
    for cls in model.module_classes():
        trace = model.trace(cls)
        if trace.found:
            yield cls, trace


def forward_ops(model: FileModel, *kinds: str) -> Iterator[OpUse]:
    """Operations of the given kinds applied to activations in forward paths, once per node."""
    seen = set()
    for _, trace in forward_traces(model):
        for op in trace.ops:
            if op.kind in kinds and op.on_activation and id(op.node) not in seen:
                seen.add(id(op.node))
                yield op


def snippet(model: FileModel, node: cst.CSTNode, limit: int = 48) -> str:
    """The source of a node on one line, shortened for a message."""
    text = " ".join(model.module.code_for_node(node).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def short(qname: str) -> str:
    """`torch.nn.functional.relu` -> `F.relu`, `torch.nn.ReLU` -> `nn.ReLU`: how users write them."""
    for prefix, alias in (("torch.nn.functional.", "F."), ("torch.nn.", "nn."),
                          ("torch.ao.nn.quantized.", ""), ("torch.ao.quantization.", "")):
        if qname.startswith(prefix):
            return alias + qname[len(prefix):]
    return qname


def keyword(call: cst.Call, name: str) -> Optional[cst.Arg]:
    for arg in call.args:
        if arg.keyword is not None and arg.keyword.value == name:
            return arg
    return None


def is_true(expr: cst.BaseExpression, true_names=frozenset()) -> bool:
    """`True`, or a module-level constant bound to True (`RELU_INPLACE = True`)."""
    return isinstance(expr, cst.Name) and (expr.value == "True" or expr.value in true_names)


def inplace_argument(call: cst.Call, position: int, true_names=frozenset()) -> Optional[cst.Arg]:
    """The argument that sets `inplace=True`, by keyword or at its position."""
    arg = keyword(call, "inplace")
    if arg is not None:
        return arg if is_true(arg.value, true_names) else None
    positional = [a for a in call.args if a.keyword is None]
    if any(a.star for a in positional):
        return None
    if len(positional) > position and is_true(positional[position].value, true_names):
        return positional[position]
    return None
