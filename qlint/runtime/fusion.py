"""``assert_fused``: fusible groups left unfused, and fused-away modules still meant to act.

The check runs a copy of the model once in eval mode and records, with forward hooks,
the order in which its modules run and which module produced each module's input
(by tensor identity and version, so in-place ops such as ``out += identity`` break
the link).  A "unit" is a module hooked as a whole: a leaf (ignoring observers and
fake-quant children), a fused module, a quantized module or a FloatFunctional.
"""

from __future__ import annotations

import functools
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from qlint.runtime._modules import (
    as_args,
    effective_qconfigs,
    eval_copy,
    is_quantized_module,
    module_type,
    parent_name,
    tensors_in,
)
from qlint.runtime._flow import (
    PT2E,
    flow_of,
    in_train_mode,
    is_batch_norm,
    is_conv_or_linear,
    node_text,
    op_name,
)
from qlint.runtime._machinery import is_fake_quant, is_quant_machinery
from qlint.runtime._torch import require_torch

if TYPE_CHECKING:
    import torch
    from torch import nn

# Fusion folds BatchNorm into the conv/linear weights, which reorders float32 rounding.
FUSED_OUTPUT_ATOL = 1e-5
FUSED_OUTPUT_RTOL = 1e-4


@dataclass(frozen=True)
class _Call:
    """One execution of a unit.

    ``source``: index of the call whose output is this call's first input (None: no
    unit produced it); ``previous``: index of the last non-Identity call before it.
    """

    index: int
    name: str
    module: nn.Module
    is_identity: bool
    source: int | None
    previous: int | None

    @property
    def follows_source(self) -> bool:
        """The input is the output of the unit that ran just before (Identities skipped)."""
        return self.source is not None and self.source == self.previous


@functools.cache
def _fusion_patterns() -> frozenset[tuple[type, ...]]:
    """Module-type sequences that ``fuse_modules`` fuses, read from the installed torch."""
    require_torch()
    from torch.ao.quantization import fuser_method_mappings

    return frozenset(
        pattern
        for pattern in fuser_method_mappings._DEFAULT_OP_LIST_TO_FUSER_METHOD
        if all(isinstance(part, type) for part in pattern)
    )


@functools.cache
def _quantized_to_float() -> dict[type, type]:
    """Quantized module type -> the plain torch.nn type it replaces (first mapping wins)."""
    require_torch()
    from torch.ao.quantization.quantization_mappings import (
        get_default_static_quant_module_mappings,
    )

    inverse: dict[type, type] = {}
    for float_type, quantized_type in get_default_static_quant_module_mappings().items():
        if float_type.__module__.startswith("torch.nn."):
            inverse.setdefault(quantized_type, float_type)
    return inverse


def _float_class(cls: type) -> type:
    """The float class a QAT or quantized class stands for (``cls`` itself when float)."""
    float_module = getattr(cls, "_FLOAT_MODULE", None)
    if isinstance(float_module, tuple):
        float_module = float_module[0]
    if isinstance(float_module, type):
        return float_module
    return _quantized_to_float().get(cls, cls)


@functools.cache
def _float_fused_types() -> tuple[type, ...]:
    """The float fused classes (ConvReLU2d, ConvBn2d, ...): Sequentials of their parts."""
    require_torch()
    from torch.ao.nn.intrinsic.modules import fused

    return tuple(
        cls
        for cls in vars(fused).values()
        if isinstance(cls, type)
        and issubclass(cls, fused._FusedModule)
        and cls is not fused._FusedModule
    )


def _fusion_parts(module: nn.Module) -> tuple[type, ...]:
    """The float module types a unit computes, in order (ConvBn2d -> Conv2d, BatchNorm2d).

    QAT conv modules name their parts in ``_FLOAT_*_MODULE`` attributes; float fused
    modules hold them as children; any other module counts as one part.
    """
    cls = module_type(module)
    conv = getattr(cls, "_FLOAT_CONV_MODULE", None)
    if conv is not None:
        extras = (getattr(cls, "_FLOAT_BN_MODULE", None), getattr(cls, "_FLOAT_RELU_MODULE", None))
        return (conv, *(part for part in extras if part is not None))
    if isinstance(module, _float_fused_types()):
        return tuple(
            _float_class(module_type(child))
            for child in module.children()
            if not is_quant_machinery(child)
        )
    return (_float_class(cls),)


def _is_fusion_head(module: nn.Module) -> bool:
    """A fused module, or one whose type starts a fusion pattern (conv, linear, BN)."""
    require_torch()
    from torch.ao.nn.intrinsic import _FusedModule

    parts = _fusion_parts(module)
    heads = {pattern[0] for pattern in _fusion_patterns()}
    return len(parts) > 1 or issubclass(parts[0], _FusedModule) or parts[0] in heads


def _units(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Modules hooked as a whole, with their first qualified name, in registration order."""
    require_torch()
    from torch.ao.nn.intrinsic import _FusedModule
    from torch.ao.nn.quantized import FloatFunctional

    units: list[tuple[str, nn.Module]] = []
    seen: set[int] = set()

    def visit(name: str, module: nn.Module) -> None:
        if id(module) in seen or is_quant_machinery(module):
            return
        seen.add(id(module))
        children = [
            (child_name, child)
            for child_name, child in module.named_children()
            if not is_quant_machinery(child)
        ]
        if (
            not children
            or isinstance(module, (_FusedModule, FloatFunctional))
            or is_quantized_module(module)
        ):
            units.append((name, module))
            return
        for child_name, child in children:
            visit(f"{name}.{child_name}" if name else child_name, child)

    visit("", model)
    return units


def _trace(model: nn.Module, args: tuple[Any, ...]) -> tuple[list[_Call], Any]:
    """Run an eval copy of ``model`` once; return the unit calls and the output."""
    torch = require_torch()

    traced = eval_copy(model)
    calls: list[_Call] = []
    # id(tensor) -> (producing call index, tensor version then, the tensor kept alive)
    producers: dict[int, tuple[int | None, int, torch.Tensor]] = {}
    pending_sources: list[int | None] = []
    last_non_identity: list[int | None] = [None]

    def producer_of(value: Any) -> int | None:
        tensors = tensors_in(value)
        if not tensors:
            return None
        entry = producers.get(id(tensors[0]))
        if entry is None or entry[2] is not tensors[0] or entry[1] != tensors[0]._version:
            return None
        return entry[0]

    def before(module: nn.Module, inputs: tuple[Any, ...]) -> None:
        pending_sources.append(producer_of(inputs))

    def after_hook(name: str):
        def after(module: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
            call = _Call(
                index=len(calls),
                name=name,
                module=module,
                is_identity=type(module) is torch.nn.Identity,
                source=pending_sources.pop(),
                previous=last_non_identity[0],
            )
            calls.append(call)
            produced = call.source if call.is_identity else call.index
            if not call.is_identity:
                last_non_identity[0] = call.index
            outputs = tensors_in(output)
            if outputs:
                producers[id(outputs[0])] = (produced, outputs[0]._version, outputs[0])

        return after

    pending_passes: list[int | None] = []

    def before_quantization(module: nn.Module, inputs: tuple[Any, ...]) -> None:
        pending_passes.append(producer_of(inputs))

    def after_quantization(module: nn.Module, inputs: tuple[Any, ...], output: Any) -> None:
        # A graph's observer/fake-quant call between two modules passes the producer on.
        produced = pending_passes.pop()
        outputs = tensors_in(output)
        if outputs and produced is not None and id(outputs[0]) not in producers:
            producers[id(outputs[0])] = (produced, outputs[0]._version, outputs[0])

    for name, module in _units(traced):
        module.register_forward_pre_hook(before)
        module.register_forward_hook(after_hook(name))
    for module in traced.modules():
        if is_quant_machinery(module):
            module.register_forward_pre_hook(before_quantization)
            module.register_forward_hook(after_quantization)
    with torch.no_grad():
        output = traced(*args)
    return calls, output


def _describe(call: _Call) -> str:
    name = call.name or "(the model itself)"
    return f"`{name}` ({type(call.module).__name__})"


def _original_names(calls: list[_Call], chain: tuple[_Call, ...]) -> list[str]:
    """The chain's names with the fusion Identities between its units (for fuse_modules).

    A chain that starts with an already fused unit (conv1 = ConvBn2d, bn1 = Identity)
    must be fused again from the float model as conv1, bn1, relu1.
    """
    names = [chain[0].name]
    for earlier, later in zip(chain, chain[1:]):
        names += [
            call.name
            for call in calls[earlier.index + 1 : later.index]
            if call.is_identity and call.source == earlier.index
        ]
        names.append(later.name)
    return names


def _unfused_groups(calls: list[_Call], qconfigs: dict[str, Any] | None) -> list[str]:
    """Consecutive units feeding each other whose float types form a fusion pattern.

    Groups whose modules all have qconfig None (deliberately float) are not reported.
    """
    patterns = _fusion_patterns()
    longest = max(len(pattern) for pattern in patterns)
    units = [call for call in calls if not call.is_identity]
    consumers = Counter(call.source for call in units if call.source is not None)
    groups: Counter[tuple[str, ...]] = Counter()
    first_seen: dict[tuple[str, ...], tuple[_Call, ...]] = {}
    start = 0
    while start < len(units):
        for length in range(min(longest, len(units) - start), 1, -1):
            chain = units[start : start + length]
            linked = all(
                later.source == earlier.index and consumers[earlier.index] == 1
                for earlier, later in zip(chain, chain[1:])
            )
            parts = tuple(part for call in chain for part in _fusion_parts(call.module))
            if linked and parts in patterns:
                key = tuple(call.name for call in chain)
                if qconfigs is not None and all(qconfigs.get(name) is None for name in key):
                    start += length
                    break
                groups[key] += 1
                first_seen.setdefault(key, tuple(chain))
                start += length
                break
        else:
            start += 1
    problems = []
    for key, count in groups.items():
        chain = first_seen[key]
        pattern = ", ".join(part.__name__ for call in chain for part in _fusion_parts(call.module))
        times = "" if count == 1 else f" (seen {count} times)"
        names = ", ".join(f'"{name}"' for name in _original_names(calls, chain))
        problems.append(
            f"{' -> '.join(_describe(call) for call in chain)} run as {len(chain)} separate "
            f"modules, each feeding the next{times}; torch fuses ({pattern}) into one.\n"
            f"    fix: torch.ao.quantization.fuse_modules(model, [[{names}]], inplace=True) "
            "on the float model before prepare or quantize_dynamic (fuse_modules_qat for QAT)."
        )
    return problems


def _fusion_identity_names(
    calls: list[_Call], reference: nn.Module | None
) -> set[str]:
    """Names of the nn.Identity units that fusion left behind.

    With ``reference`` (the unfused float model): those that are not Identity there.
    Without it: those that at least once directly follow a sibling conv/linear/BN or
    fused module, which is where ``fuse_modules`` puts them.
    """
    require_torch()
    from torch import nn

    if reference is not None:
        original = {name: module_type(module) for name, module in reference.named_modules()}
        return {
            call.name
            for call in calls
            if call.is_identity and original.get(call.name, nn.Identity) is not nn.Identity
        }
    return {
        call.name
        for call in calls
        if call.is_identity
        and call.follows_source
        and _is_fusion_head(calls[call.source].module)
        and parent_name(calls[call.source].name) == parent_name(call.name)
    }


def _misused_identities(calls: list[_Call], reference: nn.Module | None) -> list[str]:
    """Fusion-made Identities called where no fused partner directly precedes them."""
    by_name: dict[str, list[_Call]] = defaultdict(list)
    for call in calls:
        if call.is_identity:
            by_name[call.name].append(call)
    original = dict(reference.named_modules()) if reference is not None else {}
    problems = []
    for name in sorted(_fusion_identity_names(calls, reference), key=lambda n: by_name[n][0].index):
        identity_calls = by_name[name]
        partners = [
            calls[call.source]
            for call in identity_calls
            if call.follows_source and _is_fusion_head(calls[call.source].module)
        ]
        partner = partners[0] if partners else None
        misuses = [
            (number, call)
            for number, call in enumerate(identity_calls, start=1)
            if partner is None or not (call.follows_source and call.source == partner.index)
        ]
        if not misuses:
            continue
        replaced = (
            f"a {type(original[name]).__name__} in `reference`"
            if name in original
            else "the module fusion replaced"
        )
        sites = "; ".join(
            f"call {number} of {len(identity_calls)} gets its input from "
            + (
                _describe(calls[call.source])
                if call.source is not None
                else "no module (a functional op such as `+`, or a model input)"
            )
            for number, call in misuses
        )
        if partner is None:
            head = (
                f"`{name}` is an nn.Identity left by fusion ({replaced}), but none of its "
                f"{len(identity_calls)} calls directly follows a fused module"
            )
        else:
            head = (
                f"`{name}` is the nn.Identity fusion left after {_describe(partner)} "
                f"({replaced}), but {len(misuses)} of its {len(identity_calls)} calls "
                f"{'does' if len(misuses) == 1 else 'do'} not follow {_describe(partner)}"
            )
        problems.append(
            f"{head}: {sites}. There it does nothing, so the operation it stood for is "
            "silently skipped.\n"
            "    fix: give every use its own module (e.g. relu1 = nn.ReLU() and "
            "relu2 = nn.ReLU() instead of one shared relu) and fuse only the one that "
            "directly follows its conv/linear/BN."
        )
    return problems


def _output_difference(output: Any, reference_output: Any) -> str | None:
    """Why the fused outputs are not float-close to the reference, or None if they are."""
    outputs, expected = tensors_in(output), tensors_in(reference_output)
    if len(outputs) != len(expected):
        return (
            f"the model returns {len(outputs)} tensors, `reference` returns {len(expected)}"
        )
    for position, (found, wanted) in enumerate(zip(outputs, expected)):
        if found.is_quantized:
            found = found.dequantize()
        if found.shape != wanted.shape:
            return (
                f"output {position}: shape {tuple(found.shape)} differs from "
                f"`reference`'s {tuple(wanted.shape)}"
            )
        difference = (found.float() - wanted.float()).abs()
        tolerance = FUSED_OUTPUT_ATOL + FUSED_OUTPUT_RTOL * wanted.abs().max().item()
        worst = difference.max().item() if difference.numel() else 0.0
        if not worst <= tolerance:
            beyond = int((difference > tolerance).sum().item())
            return (
                f"output {position} of {len(outputs)} differs from `reference` (eval mode): "
                f"max abs difference {worst:.4g} > tolerance {tolerance:.3g} "
                f"(atol {FUSED_OUTPUT_ATOL:g} + rtol {FUSED_OUTPUT_RTOL:g} * max|reference| "
                f"{wanted.abs().max().item():.4g}); {beyond} of {difference.numel()} "
                "elements beyond it.\n"
                "    fix: fuse only modules that run back to back in forward(), in eval mode "
                "for fuse_modules; look for a module fused away but still used elsewhere."
            )
    return None


def assert_fused(
    model: nn.Module,
    example_inputs: torch.Tensor | tuple[Any, ...],
    *,
    reference: nn.Module | None = None,
) -> None:
    """Fail if fusion was missed, or if a module fused into nn.Identity is still meant to act.

    Runs an eval copy of ``model`` once on ``example_inputs`` (a tensor or a tuple of
    positional inputs) and fails when
    - modules that torch fuses (conv/linear + BN and/or ReLU, BN + ReLU; the patterns
      come from the installed torch) still run one after the other, each feeding the next
      (groups whose modules all have qconfig None are deliberately float and skipped);
    - an nn.Identity that fusion left behind runs where its fused partner does not
      directly precede it (one ``self.relu`` used twice, fused away after its first use);
    - with ``reference``, the unfused float model: the outputs in eval mode differ
      beyond float tolerance (``FUSED_OUTPUT_ATOL + FUSED_OUTPUT_RTOL * max|reference|``).
      ``reference`` also tells exactly which Identities fusion made.
    Works on float fused, prepared (PTQ/QAT) and converted models, eager and FX; the
    output comparison is meant for the fused float model.

    PT2E (an exported graph; torchao folds BatchNorm itself): fails when a BatchNorm node
    that follows a conv/linear is not folded into it (in a converted or PTQ-prepared graph;
    a QAT-prepared graph keeps it until convert_pt2e), and when a BatchNorm node runs in
    train mode in a converted or PTQ-prepared graph: it then normalizes with each batch's
    statistics at inference (``move_exported_model_to_eval`` was not called before
    convert_pt2e, or the model was exported in train mode).
    """
    __tracebackhide__ = True
    require_torch()
    args = as_args(example_inputs)
    if flow_of(model) == PT2E:
        problems = _pt2e_batch_norms(model)
        if problems:
            listed = "\n".join(f"  - {problem}" for problem in problems)
            raise AssertionError(
                "assert_fused: expected every BatchNorm folded into its conv/linear and none "
                f"left in train mode; found {len(problems)} problem(s) in the exported "
                f"{type(model).__name__}:\n{listed}"
            )
        return
    calls, output = _trace(model, args)
    problems = _unfused_groups(calls, effective_qconfigs(model))
    problems += _misused_identities(calls, reference)
    if reference is not None:
        torch = require_torch()
        with torch.no_grad():
            reference_output = eval_copy(reference)(*args)
        difference = _output_difference(output, reference_output)
        if difference is not None:
            problems.append(difference)
    if problems:
        listed = "\n".join(f"  - {problem}" for problem in problems)
        raise AssertionError(
            f"assert_fused: expected every fusible group fused and every fused-away module "
            f"unused elsewhere; found {len(problems)} problem(s) in "
            f"{type(model).__name__} ({len(calls)} module calls traced):\n{listed}"
        )


# Operators between a conv/linear and the BatchNorm it feeds: quantize/dequantize pairs,
# and the scale/bias arithmetic of torchao's QAT conv-bn pattern.
_PASS_THROUGH = {"add", "sub", "mul", "div", "reshape", "view", "quantize_per_tensor",
                 "dequantize_per_tensor", "quantize_per_channel", "dequantize_per_channel"}


def _follows_conv(node) -> bool:
    frontier, seen = [node.args[0]], set()
    while frontier:
        current = frontier.pop()
        if not hasattr(current, "op") or current in seen or len(seen) > 8:
            continue
        seen.add(current)
        if is_conv_or_linear(current):
            return True
        if current.op == "call_function" and op_name(current) in _PASS_THROUGH:
            frontier.append(current.args[0])
    return False


def _pt2e_batch_norms(model) -> list[str]:
    """BatchNorm nodes not folded, or in train mode, in an exported (PT2E) graph."""
    from qlint.runtime._flow import quant_points

    points = quant_points(model)
    qat_prepared = any(is_fake_quant(point.module) for point in points)
    problems = []
    for node in model.graph.nodes:
        if node.op != "call_function" or not is_batch_norm(node):
            continue
        reasons = []
        if _follows_conv(node) and not qat_prepared:
            reasons.append(
                "it follows a conv/linear but is not folded into it: it runs as a separate "
                "float operator (torchao folds conv+BatchNorm in prepare_pt2e and "
                "convert_pt2e when the conv's output feeds only the BatchNorm)"
            )
        if in_train_mode(node) and not qat_prepared:
            reasons.append(
                "it runs in train mode: at inference it normalizes with each batch's "
                "statistics, not the running ones. Call "
                "torchao.quantization.pt2e.move_exported_model_to_eval(model) before "
                "convert_pt2e (QAT), or export the model after model.eval() (PTQ)"
            )
        if reasons:
            problems.append(f"{node_text(node)} ({op_name(node)}): " + "; ".join(reasons))
    return problems
