"""QL6xx: the order of QAT steps in training code (any function, not only modules)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Optional

import libcst as cst

from qlint.registry import ERROR, WARNING, Rule, register
from qlint.rules.base import Report
from qlint.semantic import torch_api as api
from qlint.semantic.model import FileModel
from qlint.semantic.ops import RETURNS_SELF
from qlint.semantic.walk import iter_nodes

_HEADER = ("import copy\nimport torch\nfrom torch.ao.quantization import (\n"
           "    fuse_modules, fuse_modules_qat, get_default_qat_qconfig, prepare_qat)\n\n\n")


@dataclass
class _Step:
    kind: str  # "optimizer", "prepare_qat" or "fuse_eval"
    model: str  # the variable holding the model
    node: cst.CSTNode


def _model_variable(expr) -> Optional[str]:
    """The variable holding the model in `model`, `model.backbone`, `model.train()`,
    `model.to(device).eval()`: attributes and methods that return the module itself."""
    while True:
        if isinstance(expr, cst.Call) and isinstance(expr.func, cst.Attribute) \
                and expr.func.attr.value in RETURNS_SELF:
            expr = expr.func.value
        elif isinstance(expr, cst.Attribute):
            expr = expr.value
        else:
            return expr.value if isinstance(expr, cst.Name) else None


def _is_optimizer(qname: Optional[str]) -> bool:
    if not qname or not qname.startswith("torch.optim."):
        return False
    last = qname.rsplit(".", 1)[-1]
    return last[:1].isupper() and ".lr_scheduler." not in qname and ".swa_utils." not in qname


@dataclass
class _Helpers:
    """What a file's own functions (and module-level lambdas and partials) do for QAT."""

    optimizers: set  # qualified names that build an optimizer: torch.optim.X, partial(X, ...)
    parameter_sources: dict  # function -> index of the model argument whose parameters it returns
    builders: dict  # function -> index of the model argument it builds an optimizer for
    preparers: dict  # function -> index of the model argument it gives to prepare_qat


def _callables(model: FileModel):
    """(qualified name, parameter names, body) of module-level functions and lambdas."""
    for name, func in model.functions.items():
        yield f"{model.module_name}.{name}", [p.name.value for p in func.params.params], func.body
    for stmt in model.module.body:
        if isinstance(stmt, cst.SimpleStatementLine):
            for small in stmt.body:
                if isinstance(small, cst.Assign) and len(small.targets) == 1 \
                        and isinstance(small.targets[0].target, cst.Name) and isinstance(small.value, cst.Lambda):
                    params = [p.name.value for p in small.value.params.params]
                    yield f"{model.module_name}.{small.targets[0].target.value}", params, small.value.body


def _helpers(model: FileModel) -> _Helpers:
    helpers = _Helpers(set(), {}, {}, {})
    for stmt in model.module.body:  # AdamW = functools.partial(torch.optim.AdamW, lr=1e-3)
        if isinstance(stmt, cst.SimpleStatementLine):
            for small in stmt.body:
                if isinstance(small, cst.Assign) and len(small.targets) == 1 \
                        and isinstance(small.targets[0].target, cst.Name) and isinstance(small.value, cst.Call) \
                        and model.qname(small.value.func) == "functools.partial" and small.value.args \
                        and _is_optimizer(model.qname(small.value.args[0].value)):
                    helpers.optimizers.add(f"{model.module_name}.{small.targets[0].target.value}")
    callables = list(_callables(model))
    for qname, params, body in callables:  # parameter sources first: builders may use them
        for node in iter_nodes(body, into_functions=False):
            owner = _direct_parameters_owner(node)
            if owner in params:
                helpers.parameter_sources[qname] = params.index(owner)
                break
    for qname, params, body in callables:
        for node in iter_nodes(body, into_functions=False):
            if not isinstance(node, cst.Call) or not node.args:
                continue
            called = model.qname(node.func)
            owner = _model_variable(node.args[0].value)
            if _is_optimizer(called) or called in helpers.optimizers:
                owner = _parameters_owner(node.args[0].value, model, helpers)
                if owner in params:
                    helpers.builders[qname] = params.index(owner)
            elif called in api.PREPARE_QAT and owner in params:
                helpers.preparers[qname] = params.index(owner)
    return helpers


def _direct_parameters_owner(node) -> Optional[str]:
    """`model` for a `model.parameters()` / `model.backbone.named_parameters()` call."""
    if isinstance(node, cst.Call) and isinstance(node.func, cst.Attribute) \
            and node.func.attr.value in ("parameters", "named_parameters"):
        return _model_variable(node.func.value)
    return None


def _parameters_owner(expr, model: FileModel, helpers: _Helpers) -> Optional[str]:
    """The model whose parameters an optimizer argument holds: `model.parameters()`, param
    groups over `model.backbone.parameters()`, or a helper of this file (`param_groups(model)`)."""
    for node in iter_nodes(expr):
        owner = _direct_parameters_owner(node)
        if owner:
            return owner
        if isinstance(node, cst.Call):
            index = helpers.parameter_sources.get(model.qname(node.func))
            if index is not None and len(node.args) > index:
                return _model_variable(node.args[index].value)
    return None


def _steps(model: FileModel, body, helpers: _Helpers) -> Iterator[_Step]:
    """The QAT-relevant steps of a function body in source order, with copies as aliases."""
    lineage: dict[str, str] = {}

    def root(name):
        while name in lineage and lineage[name] != name:
            name = lineage[name]
        return name

    for node in iter_nodes(body, into_functions=False):
        if isinstance(node, cst.Assign) and len(node.targets) == 1 and isinstance(node.targets[0].target, cst.Name):
            target, value = node.targets[0].target.value, node.value
            source = None
            if isinstance(value, cst.Name):
                source = value.value
            elif isinstance(value, cst.Call) and value.args:
                called = model.qname(value.func)
                if called in ("copy.deepcopy", "copy.copy") or called in api.PREPARE_QAT:
                    source = _model_variable(value.args[0].value)
                elif called in helpers.preparers and len(value.args) > helpers.preparers[called]:
                    source = _model_variable(value.args[helpers.preparers[called]].value)
            if source is not None and root(source) != target:
                lineage[target] = root(source)
        if not isinstance(node, cst.Call) or not node.args:
            continue
        qname = model.qname(node.func)
        first = node.args[0].value
        if _is_optimizer(qname) or qname in helpers.optimizers:
            owner = _parameters_owner(first, model, helpers)
            kind = "optimizer"
        elif qname in helpers.builders or qname in helpers.preparers:
            index = helpers.builders.get(qname, helpers.preparers.get(qname))
            owner = _model_variable(node.args[index].value) if len(node.args) > index else None
            kind = "optimizer" if qname in helpers.builders else "prepare_qat"
        elif qname in api.PREPARE_QAT or qname == api.FUSE_EVAL:
            owner = _model_variable(first)
            kind = "prepare_qat" if qname in api.PREPARE_QAT else "fuse_eval"
        else:
            continue
        if owner:
            yield _Step(kind, root(owner), node)


def _function_bodies(model: FileModel):
    yield model.module
    for node in iter_nodes(model.module):
        if isinstance(node, cst.FunctionDef):
            yield node.body


def _sequences(model: FileModel):
    if "prepare_qat" not in model.source:
        return
    helpers = _helpers(model)
    for body in _function_bodies(model):
        steps = list(_steps(model, body, helpers))
        if any(step.kind == "prepare_qat" for step in steps):
            yield steps


@register
class OptimizerBeforePrepareQat(Rule):
    code = "QL601"
    name = "optimizer-before-prepare-qat"
    severity = ERROR
    summary = "An optimizer built from model.parameters() before prepare_qat, and not rebuilt"
    explanation = (
        "`prepare_qat` swaps modules for their QAT versions and adds fake-quant modules whose "
        "learnable scale and zero_point are new nn.Parameters; with `inplace=False` every "
        "weight is a new tensor. An optimizer built before holds the old parameters: the new "
        "ones never train and the stale ones update nothing the model uses.")
    fix = "Build the optimizer (and its scheduler) after prepare_qat, from the prepared model."
    valid = (
        _HEADER + "def train(model):\n    model.qconfig = get_default_qat_qconfig('x86')\n"
        "    model = prepare_qat(model)\n    return torch.optim.SGD(model.parameters(), lr=0.01)\n",
    )
    invalid = (
        _HEADER + "def train(model):\n"
        "    optimizer = torch.optim.SGD(model.parameters(), lr=0.01)  # expect: QL601\n"
        "    qat_model = copy.deepcopy(model)\n    prepare_qat(qat_model, inplace=True)\n"
        "    return qat_model, optimizer\n",
        _HEADER + "def train(net):\n"
        "    groups = [{'params': net.backbone.parameters(), 'lr': 1e-4}]\n"
        "    opt = torch.optim.AdamW(groups)\n"
        "    opt = torch.optim.AdamW([{'params': net.head.parameters()}])  # expect: QL601\n"
        "    net.train()\n    torch.ao.quantization.prepare_qat(net, inplace=True)\n    return opt\n",
        _HEADER + "import functools\n\nAdamW = functools.partial(torch.optim.AdamW, lr=1e-3)\n"
        "make_sgd = lambda m: torch.optim.SGD(m.parameters(), lr=0.1)\n\n\n"
        "def groups(m):\n    return [{'params': p} for _, p in m.named_parameters()]\n\n\n"
        "def prepare_for_qat(m):\n    m.train()\n    return prepare_qat(m)\n\n\n"
        "def train(model):\n    first = AdamW(groups(model))  # expect: QL601\n"
        "    second = make_sgd(model)  # expect: QL601\n    model = prepare_for_qat(model)\n"
        "    return first, second\n",
    )

    def check(self, model):
        for steps in _sequences(model):
            for i, step in enumerate(steps):
                if step.kind != "optimizer":
                    continue
                later = steps[i + 1:]
                prepared = next((s for s in later if s.kind == "prepare_qat" and s.model == step.model), None)
                if prepared is None:
                    continue
                after = later[later.index(prepared) + 1:]
                if not any(s.kind == "optimizer" and s.model == step.model for s in after):
                    yield Report(step.node, "this optimizer is built before prepare_qat (line {prepare}) "
                                 "and never rebuilt: the fake-quant parameters and swapped modules "
                                 "prepare_qat creates are not in it. Build it after prepare_qat.",
                                 lines={"prepare": prepared.node})


@register
class EvalFusionBeforeQat(Rule):
    code = "QL602"
    name = "eval-fusion-before-qat"
    severity = WARNING
    summary = "fuse_modules (eval fusion) on a model later given to prepare_qat"
    explanation = (
        "`fuse_modules` folds BatchNorm into the conv weights for inference: QAT then trains "
        "without batch statistics. `fuse_modules_qat` keeps BN as a trainable part of "
        "ConvBn2d, which QAT expects (and `freeze_bn_stats` can act on).")
    fix = "Use fuse_modules_qat before prepare_qat (the model in train mode)."
    valid = (
        _HEADER + "def train(model):\n    model.train()\n"
        "    fuse_modules_qat(model, [['conv', 'bn', 'relu']], inplace=True)\n"
        "    return prepare_qat(model)\n",
    )
    invalid = (
        _HEADER + "def train(model):\n    model.eval()\n"
        "    fuse_modules(model, [['conv', 'bn', 'relu']], inplace=True)  # expect: QL602\n"
        "    model.train()\n    return prepare_qat(model)\n",
    )

    def check(self, model):
        for steps in _sequences(model):
            for i, step in enumerate(steps):
                if step.kind == "fuse_eval" and any(
                        s.kind == "prepare_qat" and s.model == step.model for s in steps[i + 1:]):
                    yield Report(step.node, "fuse_modules folds BatchNorm for inference, but this model "
                                 "is trained with prepare_qat later; use fuse_modules_qat.")
