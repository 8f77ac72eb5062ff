"""A read-only walk over a libcst tree.

libcst's own visitors (and `node.children`) rebuild every node's children as they go;
reading each node's child fields directly costs a fraction of that. Whitespace,
punctuation and other leaf fields are skipped.
"""
from __future__ import annotations

import dataclasses
from typing import Iterator

import libcst as cst

_SKIPPED_TYPES = (cst.BaseParenthesizableWhitespace, cst.Comma, cst.Dot, cst.Semicolon,
                  cst.Colon, cst.AssignEqual, cst.LeftParen, cst.RightParen,
                  cst.LeftSquareBracket, cst.RightSquareBracket, cst.LeftCurlyBrace,
                  cst.RightCurlyBrace, cst.TrailingWhitespace, cst.EmptyLine, cst.Newline,
                  cst.Comment, cst.BaseBinaryOp, cst.BaseBooleanOp, cst.BaseCompOp,
                  cst.BaseUnaryOp, cst.BaseAugOp, cst.ImportStar, cst.AssignEqual)
_SKIPPED_FIELDS = frozenset({"lpar", "rpar", "whitespace_before", "whitespace_after",
                             "leading_lines", "lines_after_decorators", "header", "footer",
                             "trailing_whitespace", "semicolon", "comma", "lbracket",
                             "rbracket", "lbrace", "rbrace", "dot", "colon", "equal",
                             "star", "indent", "whitespace", "newline"})
_FIELDS: dict[type, tuple[str, ...]] = {}
_KEEP: dict[type, bool] = {}
_SCOPES = (cst.FunctionDef, cst.ClassDef, cst.Lambda)


def child_fields(node_type: type) -> tuple[str, ...]:
    fields = _FIELDS.get(node_type)
    if fields is None:
        fields = tuple(f.name for f in dataclasses.fields(node_type)
                       if f.name not in _SKIPPED_FIELDS and not f.name.startswith("whitespace"))
        _FIELDS[node_type] = fields
    return fields


def _keep(value_type: type) -> bool:
    keep = _KEEP.get(value_type)
    if keep is None:
        keep = issubclass(value_type, cst.CSTNode) and not issubclass(value_type, _SKIPPED_TYPES)
        _KEEP[value_type] = keep
    return keep


def iter_nodes(node: cst.CSTNode, *, into_functions: bool = True) -> Iterator[cst.CSTNode]:
    """Every node under `node` (itself included), in source order.

    With `into_functions=False` the bodies of nested functions, lambdas and classes are
    not entered (their headers are).
    """
    stack = [node]
    keep = _KEEP
    while stack:
        current = stack.pop()
        yield current
        current_type = type(current)
        if not into_functions and current is not node and current_type in _SCOPES:
            continue
        children = []
        for name in _FIELDS.get(current_type) or child_fields(current_type):
            value = getattr(current, name)
            value_type = type(value)
            if value_type is list or value_type is tuple:
                for item in value:
                    item_type = type(item)
                    if keep.get(item_type) or (item_type not in keep and _keep(item_type)):
                        children.append(item)
            elif value is not None and (keep.get(value_type) or (value_type not in keep and _keep(value_type))):
                children.append(value)
        children.reverse()
        stack.extend(children)
