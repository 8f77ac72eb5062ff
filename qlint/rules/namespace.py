"""QL505: the legacy quantization namespaces."""
from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path
from typing import Optional

import libcst as cst

from qlint.fixes import Fix
from qlint.registry import SAFE, WARNING, Invalid, Rule, register
from qlint.rules.base import Report
from qlint.semantic.names import DEPRECATED_NAMESPACES, dotted, import_bindings
from qlint.semantic.walk import iter_nodes

_WORDS = ("quantization", "quantized", "intrinsic", "qat", "quantizable")
# Generated from torch by tools/generate_namespace_map.py: each legacy module's torch.ao twin.
_MAP_PATH = Path(__file__).resolve().parents[1] / "data" / "legacy_namespaces.json"
_DEPRECATION = ("torch 2.13 deprecates torch.ao.quantization too: new eager code belongs in torchao "
                "(`quantize_`), FX graph mode in torchao's PT2E; `qlint rule QL505` says more")


@lru_cache(maxsize=None)
def legacy_modules() -> dict[str, dict]:
    """{legacy module: {"twin": torch.ao module or None, "not_in_twin": [...], "why": ...}}."""
    return json.loads(_MAP_PATH.read_text())["modules"]


def _deprecated(qname):
    """The legacy namespace a qualified name lies in, or None."""
    for old in DEPRECATED_NAMESPACES:
        if qname == old or qname.startswith(old + "."):
            return old
    return None


def _longest_module(qname: str) -> tuple[str, Optional[str]]:
    """The longest prefix of `qname` that is a known legacy module, and the name after it."""
    parts = qname.split(".")
    modules = legacy_modules()
    for k in range(len(parts), 0, -1):
        prefix = ".".join(parts[:k])
        if prefix in modules:
            return prefix, (parts[k] if k < len(parts) else None)
    return qname, None


def _expression(name: str) -> cst.BaseExpression:
    """`a.b.c` as an expression (what cst.parse_expression returns, without the parser)."""
    first, *rest = name.split(".")
    expression: cst.BaseExpression = cst.Name(first)
    for part in rest:
        expression = cst.Attribute(value=expression, attr=cst.Name(part))
    return expression


def _shadowed(module: str, twin: str) -> Optional[str]:
    """The twin's prefix that attribute access reaches as something else than the module
    (`torch.ao.quantization.fx.convert` is a function there), or None."""
    modules = legacy_modules()
    parts = module.split(".")
    for k in range(1, len(parts)):
        ancestor, step = ".".join(parts[:k]), parts[k]
        entry = modules.get(ancestor)
        if entry and entry["twin"] and twin.startswith(f"{entry['twin']}.{step}") \
                and step in entry.get("not_in_twin", ()):
            return f"{entry['twin']}.{step}"
    return None


class _Target:
    """Where a legacy module (and optionally one name in it) lives in torch.ao, or why nowhere."""

    def __init__(self, module: str, name: Optional[str] = None, names: tuple = ()):
        entry = legacy_modules().get(module)
        self.module = module
        self.twin: Optional[str] = None
        self.why = ""
        if entry is None:  # not in this torch: the plain rename, as torch itself documents it
            old = _deprecated(module)
            self.twin = DEPRECATED_NAMESPACES[old] + module[len(old):]
            return
        modules = legacy_modules()
        lacking = [n for n in (name, *names) if n and (
            n in entry.get("not_in_twin", ())
            # a submodule must have moved along: from torch.quantization import _numeric_suite
            or (f"{module}.{n}" in modules and modules[f"{module}.{n}"]["twin"] != f"{entry['twin']}.{n}"))]
        if entry["twin"] is None:
            self.why = f"torch.ao has no module with its contents ({entry['why']})"
        elif lacking:
            self.why = f"{entry['twin']} has no `{lacking[0]}`"
        else:
            self.twin = entry["twin"]


@register
class DeprecatedNamespace(Rule):
    code = "QL505"
    name = "deprecated-namespace"
    severity = WARNING
    summary = "torch.quantization, torch.nn.quantized, torch.nn.intrinsic or torch.nn.qat"
    explanation = (
        "These are legacy aliases of `torch.ao.quantization`, `torch.ao.nn.quantized`, "
        "`torch.ao.nn.intrinsic` and `torch.ao.nn.qat`, kept for old code; a few legacy modules "
        "live elsewhere in torch.ao (`torch.quantization._numeric_suite` is "
        "`torch.ao.ns._numeric_suite`) and some have no torch.ao twin at all. torch 2.13 also "
        "deprecates `torch.ao.quantization` itself: `prepare`, `convert` and friends warn on every "
        "call, eager-mode users are pointed to torchao's `quantize_` and FX graph mode users to "
        "PT2E (`torchao.quantization.pt2e`). Moving to the torch.ao names is still the mechanical "
        "first step (the eager flow works the same, and the legacy aliases will go first); plan "
        "new quantization code on torchao (docs/torch-ao-deprecation.md). qlint does not report "
        "`torch.ao.quantization` itself.")
    fix = ("Write the torch.ao name: torch.quantization -> torch.ao.quantization, "
           "torch.quantization._numeric_suite -> torch.ao.ns._numeric_suite, and so on. The fix "
           "writes only names that exist in the installed torch's map (qlint/data/"
           "legacy_namespaces.json); a legacy module or name without a torch.ao twin is reported "
           "and left as it is. For new code, see torchao (`quantize_`, PT2E).")
    fix_safety = SAFE
    fix_safety_note = ("The legacy names are aliases of the torch.ao objects: the fix rewrites the "
                       "spelling only, to a twin the installed torch's map lists for that exact use.")
    valid = (
        "import torch\nfrom torch.ao.quantization import QuantStub, prepare\n"
        "import torch.ao.nn.quantized as nnq\n\n\ndef go(m):\n    return torch.ao.quantization.convert(m)\n",
    )
    invalid = (
        Invalid(
            "import torch\nimport torch.quantization as tq  # expect: QL505\n"
            "from torch.nn.quantized import FloatFunctional  # expect: QL505\n"
            "from torch.nn import intrinsic  # expect: QL505\n\n\n"
            "def go(m):\n    tq.prepare(m)\n    return torch.quantization.convert(m)  # expect: QL505\n",
            fixed="import torch\nimport torch.ao.quantization as tq\n"
            "from torch.ao.nn.quantized import FloatFunctional\n"
            "from torch.ao.nn import intrinsic\n\n\n"
            "def go(m):\n    tq.prepare(m)\n    return torch.ao.quantization.convert(m)\n"),
        Invalid(
            "from torch.quantization import _numeric_suite as ns  # expect: QL505\n"
            "import torch.quantization._numeric_suite_fx  # expect: QL505\n",
            fixed="from torch.ao.ns import _numeric_suite as ns\nimport torch.ao.ns._numeric_suite_fx\n"),
    )

    def check(self, model):
        if not any(word in model.source for word in _WORDS):
            return
        in_imports = set()
        chains: dict[int, tuple] = {}  # id(namespace node) -> (node to replace, replacement, target)
        for anchor, root in _anchored(model.module):
            for report in self._check_part(model, root, in_imports, chains):
                report.anchor = anchor
                yield report

    def _check_part(self, model, root, in_imports, chains):
        for node in iter_nodes(root):
            if isinstance(node, (cst.Import, cst.ImportFrom)):
                yield from self._check_import(model, node, in_imports)
            elif isinstance(node, cst.Attribute) and id(node) not in in_imports:
                qname = model.raw_qname(node)
                if qname in DEPRECATED_NAMESPACES:
                    fix, target = chains.get(id(node)) or self._attribute_fix(model, node, qname, qname)
                    yield self._report(model, node, target, fix)
                elif qname and _deprecated(qname) and id(node) not in chains:
                    self._plan_chain(model, node, qname, chains)

    def _plan_chain(self, model, node, qname, chains):
        """For the outermost attribute of a chain (`torch.quantization._numeric_suite.f`),
        decide the fix of the namespace node inside it from the whole chain."""
        inner = node
        while isinstance(inner, cst.Attribute) and model.raw_qname(inner) not in DEPRECATED_NAMESPACES:
            chains[id(inner)] = None
            inner = inner.value
        if isinstance(inner, cst.Attribute):
            chains[id(inner)] = self._attribute_fix(model, node, qname, model.raw_qname(inner))

    def _attribute_fix(self, model, outer, qname, namespace):
        """(fix, target) for the legacy module spelled in `outer`: the longest module of the
        chain moves to its twin, keeping how `torch` is spelled."""
        module, name = _longest_module(qname)
        target = _Target(module, name)
        if target.twin is None:
            return None, target
        shadowed = _shadowed(module, target.twin)
        if shadowed:
            target.twin, target.why = None, f"`{shadowed}` is not that module as an attribute (import it instead)"
            return None, target
        node = outer
        while model.raw_qname(node) != module:
            if not isinstance(node, cst.Attribute):
                return None, target
            node = node.value
        root = node
        while isinstance(root, cst.Attribute):
            root = root.value
        if model.raw_qname(root) != "torch" or not isinstance(root, cst.Name):
            return None, target  # `nn.quantized` through an alias: say it, do not rewrite
        replacement: cst.BaseExpression = root
        for part in target.twin.split(".")[1:]:
            replacement = cst.Attribute(value=replacement, attr=cst.Name(part))
        return (node, replacement), target

    def _check_import(self, model, node, in_imports):
        for part in iter_nodes(node):
            in_imports.add(id(part))
        if isinstance(node, cst.ImportFrom) and node.module is not None and not node.relative:
            module = dotted(node.module) or ""
            if _deprecated(module):
                names = () if isinstance(node.names, cst.ImportStar) else tuple(
                    dotted(alias.name) or "" for alias in node.names)
                target = _Target(module, None, names)
                fix = (node.module, _expression(target.twin)) if target.twin else None
                submodule = legacy_modules().get(f"{module}.{names[0]}") if len(names) == 1 else None
                if fix is None and submodule and (submodule["twin"] or "").rsplit(".", 1)[-1] == names[0]:
                    # from torch.quantization import _numeric_suite -> from torch.ao.ns import ...
                    target = _Target(f"{module}.{names[0]}")
                    fix = (node.module, _expression(target.twin.rsplit(".", 1)[0]))
                yield self._report(model, node.module, target, fix)
                return
        for _, qname, alias in import_bindings(node, model.package):
            full = dotted(alias.name) if isinstance(node, cst.Import) else qname
            if not _deprecated(full or ""):
                continue
            target = _Target(*_longest_module(full))
            fix = None
            if target.twin is None:
                pass
            elif isinstance(node, cst.Import):
                fix = (alias.name, _expression(target.twin))
            elif len(node.names) == 1 and target.twin.rsplit(".", 1)[1] == full.rsplit(".", 1)[1]:
                # from torch import quantization -> from torch.ao import quantization
                fix = (node.module, _expression(target.twin.rsplit(".", 1)[0]))
            yield self._report(model, alias, target, fix)

    @staticmethod
    def _report(model, node, target: _Target, fix=None):
        if target.twin is None:
            message = (f"{target.module} is a legacy module, and the installed torch's map has no "
                       f"torch.ao twin for this use: {target.why}; not fixed. {_DEPRECATION}.")
        else:
            message = f"{target.module} is a legacy alias; use {target.twin}. ({_DEPRECATION}.)"
        return Report(node, message, fix=Fix.replacing(model, *fix) if fix else None)


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
