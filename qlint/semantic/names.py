"""Qualified names: what a name or dotted expression means, through the file's imports.

`import torch.nn.functional as F` makes `F.relu` mean `torch.nn.functional.relu`;
`from torch.nn import functional as Fn` makes `Fn.relu` mean the same. The file's import
statements are resolved once, without libcst's costly metadata providers. Names are then
canonicalized, so that legacy and internal spellings of one torch object compare equal
(`torch.quantization.QuantStub` and `torch.ao.quantization.stubs.QuantStub` are both
`torch.ao.quantization.QuantStub`).
"""
from __future__ import annotations

from pathlib import Path
from typing import Optional

import libcst as cst

# Legacy namespaces and their torch.ao homes (QL505 reports where these are written).
DEPRECATED_NAMESPACES = {
    "torch.quantization": "torch.ao.quantization",
    "torch.nn.quantized": "torch.ao.nn.quantized",
    "torch.nn.intrinsic": "torch.ao.nn.intrinsic",
    "torch.nn.qat": "torch.ao.nn.qat",
    "torch.nn.quantizable": "torch.ao.nn.quantizable",
}

# Internal modules whose public names live one level up. True: a package of submodules
# (`torch.nn.modules.conv.Conv2d`), False: a single module (`torch.ao.quantization.stubs.QuantStub`).
_FLATTENED = {
    "torch.nn.modules": True,
    "torch.ao.nn.quantized.modules": True,
    "torch.ao.nn.intrinsic.modules": True,
    "torch.ao.nn.intrinsic.qat.modules": True,
    "torch.ao.nn.qat.modules": True,
    "torch.nn.parameter": False,
    "torch.ao.quantization.stubs": False,
    "torch.ao.quantization.fuse_modules": False,
    "torch.ao.quantization.quantize": False,
    "torch.ao.quantization.qconfig": False,
    "torch.ao.quantization.observer": False,
    "torch.ao.quantization.fake_quantize": False,
}


def canonical(qname: str) -> str:
    """The canonical spelling of a qualified name (see the module docstring)."""
    for old, new in DEPRECATED_NAMESPACES.items():
        if qname == old or qname.startswith(old + "."):
            qname = new + qname[len(old):]
            break
    for prefix, is_package in _FLATTENED.items():
        if qname.startswith(prefix + "."):
            rest = qname[len(prefix) + 1:].split(".")
            if is_package and len(rest) > 1:
                rest = rest[1:]
            return prefix.rsplit(".", 1)[0] + "." + ".".join(rest)
    return qname


def module_name_for(path: Path) -> str:
    """The dotted module name of a file, from the packages (folders with __init__.py) above it."""
    path = path.resolve()
    parts = [] if path.stem == "__init__" else [path.stem]
    folder = path.parent
    while (folder / "__init__.py").exists():
        parts.append(folder.name)
        if folder.parent == folder:
            break
        folder = folder.parent
    return ".".join(reversed(parts))


def dotted(expr: cst.BaseExpression) -> Optional[str]:
    """`a.b.c` as written, or None when the expression is not a plain dotted name."""
    names = []
    while isinstance(expr, cst.Attribute):
        names.append(expr.attr.value)
        expr = expr.value
    if not isinstance(expr, cst.Name):
        return None
    names.append(expr.value)
    return ".".join(reversed(names))


def import_bindings(node: cst.Import | cst.ImportFrom, package: str) -> list[tuple[str, str, cst.CSTNode]]:
    """(bound name, qualified name, alias node) for each name an import statement binds."""
    bound = []
    if isinstance(node, cst.Import):
        for alias in node.names:
            full = dotted(alias.name)
            if alias.asname is not None and isinstance(alias.asname.name, cst.Name):
                bound.append((alias.asname.name.value, full, alias))
            else:
                root = full.split(".")[0]
                bound.append((root, root, alias))
        return bound
    base = dotted(node.module) if node.module is not None else ""
    if node.relative:
        levels = len(node.relative)
        pkg = package.split(".") if package else []
        anchor = pkg[: len(pkg) - (levels - 1)] if levels - 1 <= len(pkg) else []
        base = ".".join([*anchor, base] if base else anchor)
    if isinstance(node.names, cst.ImportStar):
        return bound
    for alias in node.names:
        name = alias.name.value if isinstance(alias.name, cst.Name) else dotted(alias.name)
        local = alias.asname.name.value if alias.asname is not None else name
        bound.append((local, f"{base}.{name}" if base else name, alias))
    return bound
