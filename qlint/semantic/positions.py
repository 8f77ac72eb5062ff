"""Line and column of the nodes that are reported, and only those.

libcst's PositionProvider records a range for every node of the file (twice the cost of
parsing it). Generating the code once with a state that marks only the wanted nodes costs
about a third of the parse; generating only the statements that hold them costs a fraction
of that. A reported node may come with its anchor: the top-level statement, or the member
of a top-level class, that contains it. Each anchor is generated alone and placed where its
code occurs in the source, when it occurs once; else at the line Python's own parser gives
its statement (`ast`, a sixth of libcst's parse), checked against the source. Without anchors
(or when a check fails) the whole module is generated.
"""
from __future__ import annotations

import ast
from contextlib import contextmanager
from typing import Iterable, Optional

import libcst as cst
from libcst._nodes.internal import CodegenState


class _Locator(CodegenState):
    def __init__(self, module: cst.Module, wanted: set[int]):
        super().__init__(default_indent=module.default_indent, default_newline=module.default_newline)
        self.wanted = wanted
        self.marks: dict[int, tuple[int, int]] = {}
        self.inclusive: dict[int, int] = {}

    def before_codegen(self, node) -> None:
        if id(node) in self.wanted:
            self.inclusive[id(node)] = len(self.tokens)

    def after_codegen(self, node) -> None:
        key = id(node)
        if key in self.wanted and key not in self.marks:
            self.marks[key] = (self.inclusive[key], len(self.tokens))

    @contextmanager
    def record_syntactic_position(self, node, *, start_node=None, end_node=None):
        key = id(node)
        if key not in self.wanted:
            yield
            return
        start = len(self.tokens)
        yield
        self.marks[key] = (start, len(self.tokens))


def locate(module: cst.Module, nodes: Iterable[cst.CSTNode], anchors: Optional[dict] = None,
           source: Optional[str] = None) -> dict[int, tuple[int, int, int, int]]:
    """{id(node): (line, column, end_line, end_column)}, 1-based lines and columns.
    `anchors`: {id(node): the statement that contains it} (see the module docstring)."""
    nodes = list(nodes)
    wanted = {id(node) for node in nodes}
    if not wanted:
        return {}
    if anchors and source is not None and all(id(node) in anchors for node in nodes):
        found = _locate_anchored(module, nodes, anchors, source)
        if found is not None:
            return found
    state = _Locator(module, wanted)
    module._codegen(state)
    return _positions(state)


def _positions(state: _Locator, first_line: int = 1) -> dict[int, tuple[int, int, int, int]]:
    indices = sorted({i for mark in state.marks.values() for i in mark})
    positions = {}
    line, column, token_index = first_line, 0, 0
    tokens = state.tokens
    for target in indices:
        while token_index < target:
            text = tokens[token_index]
            newlines = text.count("\n")
            if newlines:
                line += newlines
                column = len(text) - text.rfind("\n") - 1
            else:
                column += len(text)
            token_index += 1
        positions[target] = (line, column)
    result = {}
    for key, (start, end) in state.marks.items():
        (line, column), (end_line, end_column) = positions[start], positions[end]
        result[key] = (line, column + 1, end_line, end_column + 1)
    return result


def _locate_anchored(module: cst.Module, nodes: list, anchors: dict, source: str) -> Optional[dict]:
    groups: dict[int, tuple[cst.CSTNode, set]] = {}
    for node in nodes:
        anchor = anchors[id(node)]
        groups.setdefault(id(anchor), (anchor, set()))[1].add(id(node))
    indents = _member_indents(module, set(groups))
    placed, starts, lines = {}, None, None
    for key, (anchor, wanted) in groups.items():
        state = _Locator(module, wanted)
        if indents.get(key) is not None:
            state.increase_indent(indents[key])
        anchor._codegen(state)
        text = "".join(state.tokens)
        offset = source.find(text)
        if offset >= 0 and (offset == 0 or source[offset - 1] == "\n") and source.find(text, offset + 1) < 0:
            first_line = source.count("\n", 0, offset) + 1  # its code occurs once: there
        else:  # where Python's parser puts the statement (a tenth of libcst's parse)
            starts = starts if starts is not None else _anchor_starts(module, source, set(groups))
            if starts is None or key not in starts:
                return None
            lines = lines if lines is not None else source.splitlines(keepends=True)
            first_line = starts[key][0]
            if "".join(lines[first_line - 1: first_line - 1 + text.count("\n")]) != text:
                return None  # not where Python's parser put it: let the whole module say
        found = _positions(state, first_line)
        if len(found) < len(wanted):
            return None
        placed.update(found)
    return placed


def _member_indents(module: cst.Module, keys: set) -> dict:
    """{id(member): the indentation of its class body} for the top-level class members among `keys`."""
    indents = {}
    for stmt in module.body:
        if isinstance(stmt, cst.ClassDef) and isinstance(stmt.body, cst.IndentedBlock):
            indent = stmt.body.indent if stmt.body.indent is not None else module.default_indent
            for member in stmt.body.body:
                if id(member) in keys:
                    indents[id(member)] = indent
    return indents


def _anchor_starts(module: cst.Module, source: str, keys: set) -> Optional[dict]:
    """{id(anchor): (first line of its code, indentation of its block or None)} for the top-level
    statements and top-level class members among `keys`, from Python's own parse."""
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return None
    starts = {}
    for stmt, node in _aligned(module.body, tree.body):
        if id(stmt) in keys:
            starts[id(stmt)] = (_first_line(stmt, node), None)
        if isinstance(stmt, cst.ClassDef) and isinstance(stmt.body, cst.IndentedBlock) \
                and any(id(member) in keys for member in stmt.body.body):
            indent = stmt.body.indent if stmt.body.indent is not None else module.default_indent
            for member, inner in _aligned(stmt.body.body, node.body):
                if id(member) in keys:
                    starts[id(member)] = (_first_line(member, inner), indent)
    return starts


def _aligned(statements, nodes):
    """(libcst statement, its first ast statement): a line of `a; b` is two ast statements."""
    i = 0
    for stmt in statements:
        if i >= len(nodes):
            return
        yield stmt, nodes[i]
        i += len(stmt.body) if isinstance(stmt, cst.SimpleStatementLine) else 1


def _first_line(stmt, node) -> int:
    """The line its generated code starts on: its own leading blank and comment lines included."""
    decorators = getattr(node, "decorator_list", None)
    line = min(d.lineno for d in decorators) if decorators else node.lineno
    lead = len(stmt.leading_lines)
    if getattr(stmt, "decorators", None):
        lead += len(stmt.decorators[0].leading_lines)
    return line - lead
