"""What rules yield, and the queries most of them share."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterator, Optional

import libcst as cst

from qlint.fixes import Fix
from qlint.semantic.forward import OpUse, Trace
from qlint.semantic.model import ClassModel, FileModel
from qlint.semantic.values import FLOAT, QUANTIZED, UNKNOWN_STATE, evidence


@dataclass
class Report:
    """A finding before it has a position: the node it is about, and what to say."""

    node: cst.CSTNode
    message: str
    severity: Optional[str] = None  # None: the rule's own severity
    lines: Optional[dict] = None  # {"first": node}: "{first}" in the message becomes its line
    fix: Optional[Fix] = None  # what `qlint --fix` rewrites (qlint/fixes.py)
    anchor: Optional[cst.CSTNode] = None  # the top-level statement or class member holding `node`
    line_anchors: Optional[dict] = None  # {"first": anchor} for the nodes of `lines`


def anchors(reports) -> dict[int, cst.CSTNode]:
    """{id(node): anchor} for the reported nodes whose anchor is known (see positions.py)."""
    found = {}
    for report in reports:
        if report.anchor is not None:
            found[id(report.node)] = report.anchor
        for name, node in (report.lines or {}).items():
            anchor = (report.line_anchors or {}).get(name)
            if anchor is not None:
                found[id(node)] = anchor
    return found


def forward_traces(model: FileModel) -> Iterator[tuple[ClassModel, Trace]]:
    """The forward-path trace of each nn.Module class of the file."""
    for cls in model.module_classes():
        trace = model.trace(cls)
        if trace.found:
            yield cls, trace


def forward_ops(model: FileModel, *kinds: str, where: Optional[Callable[[OpUse], bool]] = None) -> Iterator[OpUse]:
    """Operations of the given kinds (and matching `where`) on activations that may be
    quantized, once per node. In one run, a node reached several times (a helper called
    twice) says what its most telling use says; a node reached in several contexts is
    judged by its evidence: reported when some context may give it a quantized value, or
    when every context is unknown; a context that proves it float (or gives it no
    activation) outranks unknown ones."""
    judged: dict[int, list] = {}  # id(node) -> [op to report, quantized seen, float seen, unknown seen]
    for trace in model.runs():
        in_run: dict[int, tuple] = {}  # id(node) -> (rank, op)
        for op in trace.ops:
            if op.kind not in kinds:
                continue
            rank = _RANK[evidence(op.operands) if where is None or where(op) else None]
            if rank > in_run.get(id(op.node), (-1, None))[0]:
                in_run[id(op.node)] = (rank, op)
        for key, (rank, op) in in_run.items():
            entry = judged.setdefault(key, [None, False, False, False])
            if rank == _RANK[QUANTIZED]:
                entry[0], entry[1] = op, True
            elif rank == _RANK[UNKNOWN_STATE]:
                entry[0], entry[3] = entry[0] or op, True
            else:
                entry[2] = True
    for op, quantized, float_, unknown in judged.values():
        if quantized or (unknown and not float_):
            yield op


_RANK = {None: 0, FLOAT: 1, UNKNOWN_STATE: 2, QUANTIZED: 3}



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
