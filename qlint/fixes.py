"""What `qlint --fix` can do to a file: the edit model a rule's fix is made of, and the planner
that applies every fix of a file in one pass.

A rule reports `Report(node, message, fix=Fix(...))`. A `Fix` is a set of edits applied
together or not at all:

    fix = Fix(model)                                        # model: the rule's FileModel
    relu = fix.add_member(cls, "relu", "{ReLU}()", ReLU=TorchName("torch.nn.ReLU"))
    fix.replace(call, "self.{relu}({x})", relu=relu, x=call.args[0].value)
    yield Report(call, message, fix=fix)

- `fix.replace(node, new, **holes)`: `new` is a libcst node (or `cst.RemoveFromParent()`),
  or a libcst template (`"self.{relu}({x})"`; a statement such as `"{x} = self.{relu}({x})"`
  where `node` is a small statement) whose holes are filled when the fix is applied.
- `fix.add_member(cls, stem, template, after=None, **holes) -> Member`: a new submodule
  `self.<name> = <template>` in the `__init__` of `cls` (a ClassModel of the file). The name
  is chosen when the fix is applied: `stem`, else `stem_1`, `stem_2`, ... - the first that
  no attribute, method or class attribute of the class's hierarchy (bases, subclasses,
  `nn.Module` itself) defines and no other fix of the pass took. The statement goes after
  the last top-level `__init__` statement binding `self.<after>` when given, else after the
  last one binding any `self.<x>`, else after `super().__init__(...)`; members of one
  place keep the order of their fixes. A class with no `__init__` of its own gets one
  (`def __init__(self): super().__init__()` under a direct nn.Module base; `*args, **kwargs`
  passed on otherwise). Where the hierarchy is not fully known (a base outside the run, a
  computed attribute name, a `__getattr__`) or `__init__` has no such place, the fix is
  impossible: `fix.unfixable` says why, and the finding is reported unfixed.
- `fix.add_method(cls, name, template, **holes)`: a method (a statement template:
  `"def fuse_model(self, is_qat=False):\\n    ..."`) appended to the class body; impossible
  when the hierarchy defines `name` already.

Holes may have any name but `after` (the other parameters are positional-only). Holes of
templates are filled with: a libcst node of the file (copied), a `Member` of the same
fix (its attribute name, a `cst.Name`: use it as `self.{relu}`), or a
`TorchName("torch.nn.ReLU")`, spelled as the file spells torch names: the shortest
expression through an existing import (`nn.ReLU` with `import torch.nn as nn`, `ReLU` with
`from torch.nn import ReLU`, `torch.nn.ReLU` with only `import torch`; legacy namespaces
never, nor more than two dots), else `from torch.ao.nn.quantized import FloatFunctional` is
added after the file's last top-level import (`... as FloatFunctional_1` if the name is taken).

`apply_fixes(model, fixes)` applies as many fixes as compose in one pass and returns the
new module and how many were applied. Fixes whose replaced subtrees overlap those of an
earlier fix wait for the next pass (the engine lints the fixed source again, until nothing
is left to apply): a fix never sees another's output, and a second `--fix` run finds
nothing to do. Comments and formatting outside the replaced nodes are kept (libcst).

Queries fixes share (where an op sits, whether an in-place write is seen elsewhere, a
module's constructor and whether it can be copied, the parameter-free modules a fix may
split) are in qlint/rules/rewrites.py; a fixable rule's `Invalid(code, fixed=...)` examples
are checked by tests/lint/test_rule_examples.py, and tests/runtime/fixproof.py proves a fix
kind by running it (tests/runtime/test_fix_proof.py).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Optional, Union

import libcst as cst
from libcst.helpers import parse_template_expression, parse_template_statement

from qlint.semantic import torch_api as api
from qlint.semantic.names import DEPRECATED_NAMESPACES, canonical, dotted
from qlint.semantic.walk import iter_nodes

if TYPE_CHECKING:
    from qlint.semantic.model import FileModel
    from qlint.semantic.scope import ClassModel

Template = Union[str, cst.CSTNode, cst.RemovalSentinel]


@dataclass(frozen=True)
class TorchName:
    """A torch object by its canonical qualified name, spelled the file's way when applied."""

    qname: str


@dataclass(eq=False)
class Member:
    """A new `self.<name> = <value>` in a class's `__init__`; `name` is set when applied."""

    cls: "ClassModel"
    stem: str
    value: str
    holes: dict
    after: Optional[str] = None
    name: Optional[str] = None


@dataclass(eq=False)
class _Method:
    cls: "ClassModel"
    name: str
    template: str
    holes: dict


class Fix:
    """The edits that remove one finding (see the module docstring)."""

    def __init__(self, model: "FileModel"):
        self.model = model
        self.replacements: list[tuple[cst.CSTNode, Template, dict]] = []
        self.members: list[Member] = []
        self.methods: list[_Method] = []
        self.unfixable: Optional[str] = None  # why the fix cannot be applied (then it is none)

    @classmethod
    def replacing(cls, model: "FileModel", node: cst.CSTNode, new: Template, /, **holes) -> "Fix":
        fix = cls(model)
        fix.replace(node, new, **holes)
        return fix

    def replace(self, node: cst.CSTNode, new: Template, /, **holes) -> None:
        self.replacements.append((node, new, holes))

    def add_member(self, cls: "ClassModel", stem: str, value: str, /, after: Optional[str] = None,
                   **holes) -> Member:
        member = Member(cls, stem, value, holes, after)
        self._refuse(_members_impossible(self.model, cls))
        self.members.append(member)
        return member

    def add_method(self, cls: "ClassModel", name: str, template: str, /, **holes) -> None:
        reason = _hierarchy_unknown(self.model, cls)
        if reason is None and self.model.index.hierarchy(cls.qname).defines(name):
            reason = f"{cls.qname.rsplit('.', 1)[-1]} already has a `{name}`"
        self._refuse(reason)
        self.methods.append(_Method(cls, name, template, holes))

    def _refuse(self, reason: Optional[str]) -> None:
        if reason is not None and self.unfixable is None:
            self.unfixable = reason


def _hierarchy_unknown(model: "FileModel", cls: "ClassModel") -> Optional[str]:
    if not model.index.hierarchy(cls.qname).known:
        return (f"the attributes of {cls.qname.rsplit('.', 1)[-1]}'s hierarchy are not all known "
                "(a base outside the run, a computed attribute name or a __getattr__)")
    return None


def _members_impossible(model: "FileModel", cls: "ClassModel") -> Optional[str]:
    reason = _hierarchy_unknown(model, cls)
    init = cls.methods.get("__init__")
    if reason is None and init is not None and _insertion_point(init, None) is None:
        reason = "its __init__ neither calls super().__init__() nor binds a self attribute at its top level"
    return reason


# ----- the planner -----------------------------------------------------------------------
def composable(fixes: list[Fix]) -> list[Fix]:
    """The fixes one pass applies: each possible one whose replaced subtrees overlap no
    earlier one's (the others wait for the next pass), in order, each once."""
    claimed: set[int] = set()
    accepted: list[Fix] = []
    seen: set[int] = set()
    for fix in fixes:
        if fix.unfixable is not None or id(fix) in seen:
            continue
        seen.add(id(fix))
        nodes = {id(n) for node, _, _ in fix.replacements for n in _subtree(node)}
        if nodes & claimed:
            continue  # overlaps an earlier fix: the next pass applies it
        claimed |= nodes
        accepted.append(fix)
    return accepted


def apply_fixes(model: "FileModel", fixes: list[Fix]) -> tuple[cst.Module, int]:
    """The module with every fix that composes with the earlier ones applied, and their count."""
    accepted = composable(fixes)
    if not accepted:
        return model.module, 0
    plan = _Plan(model)
    for fix in accepted:
        for member in fix.members:
            plan.name(member)
    for fix in accepted:
        for member in fix.members:
            plan.insert_member(member)
        for method in fix.methods:
            plan.tail(method.cls).append(plan.statement(method.template, method.holes, leading_blank=True))
        for node, new, holes in fix.replacements:
            plan.replacements[id(node)] = plan.fill(node, new, holes) if isinstance(new, str) else new
    return model.module.visit(_Apply(plan)), len(accepted)


def _subtree(node: cst.CSTNode):
    yield node
    yield from iter_nodes(node)


# `torch.nn.ReLU` is spelled through `import torch`; `torch.ao.nn.quantized.FloatFunctional`
# gets an import as a person would add.
_MAX_DOTS = 2


class _Plan:
    """The edits of one pass, by the identity of the original nodes they attach to."""

    def __init__(self, model: "FileModel"):
        self.model = model
        self.config = model.module.config_for_parsing
        self.replacements: dict[int, object] = {}
        self.after: dict[int, list[cst.BaseStatement]] = {}  # id(statement) -> statements after it
        self.tails: dict[int, list[cst.BaseStatement]] = {}  # id(class) -> statements appended
        self.inits: dict[int, list[cst.BaseStatement]] = {}  # id(class) -> body of a new __init__
        self.taken: dict[str, set[str]] = {}  # class qname -> names allocated in this pass
        self.imports: list[cst.SimpleStatementLine] = []
        self.imported: dict[str, str] = {}  # qname -> name bound by an added import

    # names ---------------------------------------------------------------------------
    def name(self, member: Member) -> None:
        hierarchy = self.model.index.hierarchy(member.cls.qname)
        taken = self.taken.setdefault(member.cls.qname, set())
        candidate, n = member.stem, 0
        while candidate in taken or hierarchy.defines(candidate) or candidate in api.NN_MODULE_ATTRIBUTES:
            n += 1
            candidate = f"{member.stem}_{n}"
        taken.add(candidate)
        member.name = candidate

    def spell(self, qname: str) -> cst.BaseExpression:
        """The shortest spelling of a torch name through the file's module-level bindings."""
        best = None
        for local, target in self.model.globals.items():
            if target.startswith(tuple(ns + "." for ns in DEPRECATED_NAMESPACES)) or target in DEPRECATED_NAMESPACES:
                continue
            if canonical(target) == qname:
                spelled = local
            elif qname.startswith(target + "."):
                spelled = local + qname[len(target):]
            else:
                continue
            if canonical(_raw(self.model, spelled)) != qname or spelled.count(".") > _MAX_DOTS:
                continue
            if best is None or (spelled.count("."), len(spelled)) < (best.count("."), len(best)):
                best = spelled
        if best is None:
            best = self._import(qname)
        return cst.parse_expression(best, self.config)

    def _import(self, qname: str) -> str:
        if qname not in self.imported:
            module, _, name = qname.rpartition(".")
            local = name
            n = 0
            while local in self.model.globals or local in self.imported.values():
                n += 1
                local = f"{name}_{n}"
            alias = "" if local == name else f" as {local}"
            self.imports.append(cst.parse_statement(f"from {module} import {name}{alias}\n", self.config))
            self.imported[qname] = local
        return self.imported[qname]

    # code ----------------------------------------------------------------------------
    def _holes(self, holes: dict) -> dict:
        filled = {}
        for key, value in holes.items():
            if isinstance(value, Member):
                filled[key] = cst.Name(value.name)
            elif isinstance(value, TorchName):
                filled[key] = self.spell(value.qname)
            else:
                filled[key] = value.deep_clone()
        return filled

    def fill(self, node: cst.CSTNode, template: str, holes: dict) -> cst.CSTNode:
        """A template filled in, as the kind of node it replaces (an expression, or a small statement)."""
        if isinstance(node, cst.BaseSmallStatement):
            return self.statement(template, holes).body[0]
        return self.expression(template, holes)

    def expression(self, template: str, holes: dict) -> cst.BaseExpression:
        return parse_template_expression(template, self.config, **self._holes(holes))

    def statement(self, template: str, holes: dict, leading_blank: bool = False) -> cst.BaseStatement:
        statement = parse_template_statement(template, self.config, **self._holes(holes))
        if leading_blank:
            statement = statement.with_changes(leading_lines=[cst.EmptyLine(indent=False)])
        return statement

    def tail(self, cls: "ClassModel") -> list:
        return self.tails.setdefault(id(cls.node), [])

    def insert_member(self, member: Member) -> None:
        value = self.expression(member.value, member.holes)
        line = cst.SimpleStatementLine([cst.Assign(
            [cst.AssignTarget(cst.Attribute(cst.Name("self"), cst.Name(member.name)))], value)])
        init = member.cls.methods.get("__init__")
        if init is None:
            body = self.inits.get(id(member.cls.node))
            if body is None:
                body = self.inits[id(member.cls.node)] = [self._new_init(member.cls)]
            body.append(line)
            return
        anchor = _insertion_point(init, member.after)
        self.after.setdefault(id(anchor), []).append(line)

    def _new_init(self, cls: "ClassModel") -> cst.FunctionDef:
        direct = all(canonical(base) in api.MODULE_BASES for base in cls.bases)
        params, args = ("", "") if direct else (", *args, **kwargs", "*args, **kwargs")
        return cst.parse_statement(f"def __init__(self{params}):\n    super().__init__({args})\n", self.config)


def _raw(model: "FileModel", spelled: str) -> str:
    """The qualified name a dotted spelling has in the file (for comparison)."""
    head, _, rest = spelled.partition(".")
    target = model.globals.get(head, head)
    return f"{target}.{rest}" if rest else target


def _self_target(small) -> Optional[str]:
    if isinstance(small, cst.Assign):
        targets = [t.target for t in small.targets]
    elif isinstance(small, cst.AnnAssign):
        targets = [small.target]
    else:
        return None
    for target in targets:
        if isinstance(target, cst.Attribute) and isinstance(target.value, cst.Name) \
                and target.value.value == "self":
            return target.attr.value
    return None


def _calls_base_init(small) -> bool:
    """`super().__init__(...)`, `nn.Module.__init__(self)`: a call of some `__init__`."""
    return isinstance(small, cst.Expr) and isinstance(small.value, cst.Call) \
        and isinstance(small.value.func, cst.Attribute) and small.value.func.attr.value == "__init__"


def _insertion_point(init: cst.FunctionDef, after: Optional[str]) -> Optional[cst.BaseStatement]:
    """The top-level statement of `__init__` new members go after (see the module docstring);
    never before the call of the base `__init__` (nn.Module refuses submodules before it)."""
    body = init.body.body if isinstance(init.body, cst.IndentedBlock) else ()
    lines = [s for s in body if isinstance(s, cst.SimpleStatementLine)]
    base_init = next((i for i, s in enumerate(lines) if any(_calls_base_init(small) for small in s.body)), None)
    if base_init is not None:
        lines = lines[base_init:]
    if after is not None:
        found = [s for s in lines if any(_self_target(small) == after for small in s.body)]
        if found:
            return found[-1]
    binding = [s for s in lines if any(_self_target(small) is not None for small in s.body)]
    if binding:
        return binding[-1]
    return lines[0] if base_init is not None else None


class _Apply(cst.CSTTransformer):
    """Applies a plan: replacements, statements after statements, class tails, imports."""

    def __init__(self, plan: _Plan):
        super().__init__()
        self.plan = plan
        body = plan.model.module.body
        imports = [s for s in body if isinstance(s, cst.SimpleStatementLine)
                   and all(isinstance(small, (cst.Import, cst.ImportFrom)) for small in s.body)]
        self.import_anchor = id(imports[-1]) if imports else None

    def on_leave(self, original_node, updated_node):
        plan = self.plan
        new = plan.replacements.get(id(original_node), updated_node)
        key = id(original_node)
        if isinstance(original_node, cst.ClassDef) and (key in plan.tails or key in plan.inits):
            new = _with_class_additions(new, plan.inits.get(key), plan.tails.get(key, []))
        after = list(plan.after.get(key, ()))
        if key == self.import_anchor:
            after = plan.imports + after
        if isinstance(original_node, cst.Module) and plan.imports and self.import_anchor is None:
            new = new.with_changes(body=_after_docstring(new.body, plan.imports))
        if after and not isinstance(new, cst.RemovalSentinel):
            return cst.FlattenSentinel([new, *after])
        return new


def _with_class_additions(cls: cst.ClassDef, init_body: Optional[list], tail: list) -> cst.ClassDef:
    body = list(cls.body.body)
    if init_body:
        init = init_body[0]
        init = init.with_changes(body=init.body.with_changes(body=[*init.body.body, *init_body[1:]]))
        position = next((i for i, s in enumerate(body) if isinstance(s, cst.FunctionDef)), len(body))
        if position < len(body):  # a blank line between it and the method it now precedes
            body[position] = body[position].with_changes(leading_lines=[cst.EmptyLine(indent=False), *body[position].leading_lines]) \
                if not body[position].leading_lines else body[position]
        if position and not isinstance(body[position - 1], cst.FunctionDef) and not init.leading_lines:
            init = init.with_changes(leading_lines=[cst.EmptyLine(indent=False)])
        body.insert(position, init)
    body.extend(tail)
    return cls.with_changes(body=cls.body.with_changes(body=body))


def _after_docstring(body, statements) -> list:
    body = list(body)
    position = 0
    for i, stmt in enumerate(body):
        if isinstance(stmt, cst.SimpleStatementLine) and all(
                isinstance(s, cst.Expr) and isinstance(s.value, cst.SimpleString) or
                isinstance(s, cst.ImportFrom) and dotted(s.module) == "__future__" for s in stmt.body):
            position = i + 1
        else:
            break
    return body[:position] + list(statements) + body[position:]
