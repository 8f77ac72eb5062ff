"""QL505: the legacy quantization namespaces."""
from __future__ import annotations

import libcst as cst

from qlint.registry import WARNING, Rule, register
from qlint.rules.base import Report
from qlint.semantic.names import DEPRECATED_NAMESPACES, dotted, import_bindings
from qlint.semantic.walk import iter_nodes

_WORDS = ("quantization", "quantized", "intrinsic", "qat", "quantizable")


def _deprecated(qname):
    """The legacy namespace a qualified name lies in, or None."""
    for old in DEPRECATED_NAMESPACES:
        if qname == old or qname.startswith(old + "."):
            return old
    return None


@register
class DeprecatedNamespace(Rule):
    code = "QL505"
    name = "deprecated-namespace"
    severity = WARNING
    summary = "torch.quantization, torch.nn.quantized, torch.nn.intrinsic or torch.nn.qat"
    explanation = (
        "These are legacy aliases of `torch.ao.quantization`, `torch.ao.nn.quantized`, "
        "`torch.ao.nn.intrinsic` and `torch.ao.nn.qat`, kept for old code. New code and "
        "documentation use the torch.ao names; the aliases may go first when the eager "
        "quantization API is retired.")
    fix = "Write the torch.ao name: torch.quantization -> torch.ao.quantization, and so on."
    fixable = True
    valid = (
        "import torch\nfrom torch.ao.quantization import QuantStub, prepare\n"
        "import torch.ao.nn.quantized as nnq\n\n\ndef go(m):\n    return torch.ao.quantization.convert(m)\n",
    )
    invalid = (
        "import torch\nimport torch.quantization as tq  # expect: QL505\n"
        "from torch.nn.quantized import FloatFunctional  # expect: QL505\n"
        "from torch.nn import intrinsic  # expect: QL505\n\n\n"
        "def go(m):\n    tq.prepare(m)\n    return torch.quantization.convert(m)  # expect: QL505\n",
    )

    def check(self, model):
        if not any(word in model.source for word in _WORDS):
            return
        in_imports = set()
        for anchor, root in _anchored(model.module):
            for node in iter_nodes(root):
                if isinstance(node, (cst.Import, cst.ImportFrom)):
                    for report in self._check_import(model, node, in_imports):
                        report.anchor = anchor
                        yield report
                elif isinstance(node, cst.Attribute) and id(node) not in in_imports:
                    qname = model.raw_qname(node)
                    if qname in DEPRECATED_NAMESPACES:
                        report = self._report(node, qname, self._attribute_fix(model, node))
                        report.anchor = anchor
                        yield report

    def _check_import(self, model, node, in_imports):
        for part in iter_nodes(node):
            in_imports.add(id(part))
        if isinstance(node, cst.ImportFrom) and node.module is not None and not node.relative:
            module = dotted(node.module) or ""
            old = _deprecated(module)
            if old:
                yield self._report(node.module, old, (node.module, _renamed(module, old)))
                return
        for _, qname, alias in import_bindings(node, model.package):
            full = dotted(alias.name) if isinstance(node, cst.Import) else qname
            old = _deprecated(full or "")
            if not old:
                continue
            if isinstance(node, cst.Import):
                fix = (alias.name, _renamed(full, old))
            elif len(node.names) == 1:  # from torch import quantization -> from torch.ao import ...
                fix = (node.module, _renamed(full, old).value)
            else:
                fix = None
            yield self._report(alias, old, fix)

    @staticmethod
    def _attribute_fix(model, node):
        """`torch.quantization` -> `torch.ao.quantization`, keeping how `torch` is spelled;
        None when no part of the expression is `torch` itself (`nn.quantized`)."""
        part = node
        while isinstance(part, cst.Attribute):
            if model.raw_qname(part.value) == "torch":
                return part.value, cst.Attribute(value=part.value, attr=cst.Name("ao"))
            part = part.value
        return None

    @staticmethod
    def _report(node, old, fix=None):
        return Report(node, f"{old} is a legacy alias; use {DEPRECATED_NAMESPACES[old]}.", fix=fix)


def _anchored(module: cst.Module):
    """(anchor, subtree) covering the module: top-level statements, a top-level class split
    into its header parts (anchored at the class) and its members (each its own anchor)."""
    for stmt in module.body:
        if isinstance(stmt, cst.ClassDef) and isinstance(stmt.body, cst.IndentedBlock):
            for part in (*stmt.decorators, *stmt.bases, *stmt.keywords):
                yield stmt, part
            for member in stmt.body.body:
                yield member, member
        else:
            yield stmt, stmt


def _renamed(name: str, old: str) -> cst.BaseExpression:
    """The dotted expression for `name` with its legacy namespace `old` moved under torch.ao."""
    return cst.parse_expression(DEPRECATED_NAMESPACES[old] + name[len(old):])
