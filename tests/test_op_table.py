"""The shipped quantized-op table (qlint/data/quantized_ops.json) matches the installed torch,
and the op facts the linter's rules rely on still hold."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parents[1]


def _load_generator():
    spec = importlib.util.spec_from_file_location(
        "generate_op_table", ROOT / "tools" / "generate_op_table.py"
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


generator = _load_generator()
SHIPPED_TEXT = generator.TABLE_PATH.read_text()
SHIPPED = json.loads(SHIPPED_TEXT)
REGENERATE = f"regenerate with `{generator.REGENERATE_COMMAND}`"


@pytest.fixture(scope="module")
def fresh() -> dict:
    """The table regenerated in memory with the installed torch (about half a second)."""
    return generator.build_table()


def verdict(table: dict, kind: str, name: str) -> str:
    """'runs', 'crash', or the nn module to use instead, wherever the table files the op."""
    if kind == "functions" and name in table["functional_needs_module"]:
        return table["functional_needs_module"][name]
    if name in table["runs"][kind]:
        return "runs"
    if name in table["no_quantized_kernel"][kind]:
        return "crash"
    for rule in table["handled_by_other_rules"].values():
        if name in rule["verdicts"][kind]:
            return "runs" if rule["verdicts"][kind][name] == "runs" else "crash"
    raise AssertionError(f"{kind} {name} is not in the table; add it to the candidates in "
                         f"tools/generate_op_table.py and {REGENERATE}")


def test_table_was_generated_with_the_installed_torch():
    assert SHIPPED["torch_version"] == torch.__version__, (
        f"qlint/data/quantized_ops.json was generated with torch {SHIPPED['torch_version']}, "
        f"the installed torch is {torch.__version__}: {REGENERATE}"
    )


def test_shipped_table_matches_a_fresh_run(fresh):
    differences = generator.describe_differences(SHIPPED, fresh)
    assert not differences, (
        f"qlint/data/quantized_ops.json is stale for torch {torch.__version__}: "
        f"{len(differences)} entries differ ({generator.DIFF_LEGEND}):\n"
        + "\n".join(differences) + f"\n{REGENERATE}"
    )


def test_shipped_file_is_written_canonically():
    assert SHIPPED_TEXT == generator.render(SHIPPED), (
        "qlint/data/quantized_ops.json is not in canonical form (sorted keys, indent 1, "
        f"trailing newline), so diffs of it are unreadable: {REGENERATE}"
    )


def test_every_op_is_filed_once():
    for kind in generator.KINDS:
        places: dict[str, list[str]] = {}
        sections = {"runs": SHIPPED["runs"][kind], "no_quantized_kernel": SHIPPED["no_quantized_kernel"][kind]}
        if kind == "functions":
            sections["functional_needs_module"] = list(SHIPPED["functional_needs_module"])
        for rule, entry in SHIPPED["handled_by_other_rules"].items():
            sections[rule] = list(entry["verdicts"][kind])
        for section, names in sections.items():
            assert names == sorted(set(names)), f"{kind} in {section} are not sorted and unique"
            for name in names:
                places.setdefault(name, []).append(section)
        repeated = {name: where for name, where in places.items() if len(where) > 1}
        assert not repeated, f"{kind} filed in several sections: {repeated}; {REGENERATE}"


def test_every_crash_has_a_known_reason():
    for kind in generator.KINDS:
        crashed = set(SHIPPED["no_quantized_kernel"][kind])
        if kind == "functions":
            crashed |= set(SHIPPED["functional_needs_module"])
        reasons = SHIPPED["crash_reasons"][kind]
        assert set(reasons) == crashed, (
            f"crash_reasons/{kind} and the crash lists disagree on "
            f"{sorted(set(reasons) ^ crashed)}; {REGENERATE}"
        )
        unknown = {name: r for name, r in reasons.items() if r not in SHIPPED["reason_classes"]}
        assert not unknown, f"reasons not described in reason_classes: {unknown}"


F = "torch.nn.functional."

# Measured on torch 2.13.0+cpu (project notes, torch-quantization-facts.md, plus this
# generator's runs). A torch upgrade that flips one changes what QL102/QL104 should say.
FACTS = [
    # no QuantizedCPU kernel
    *[("functions", "torch." + name, "crash") for name in (
        "exp", "log", "pow", "sqrt", "rsqrt", "abs", "sum", "var", "amax", "argmax",
        "cumsum", "gather", "where", "roll", "isnan", "maximum", "einsum")],
    *[("methods", name, "crash") for name in ("exp", "pow", "sum", "var", "float", "numpy")],
    *[("operators", symbol, "crash") for symbol in ("**", "unary -", "%", "//", "abs()", "~")],
    # no kernel; the nn module exists but eager convert() leaves it float (module_converts)
    *[("functions", F + name, "torch.nn." + module) for name, module in (
        ("silu", "SiLU"), ("mish", "Mish"), ("softmax", "Softmax"), ("log_softmax", "LogSoftmax"),
        ("glu", "GLU"))],
    # the nn module counterpart converts and runs
    ("functions", F + "hardswish", "torch.nn.Hardswish"),
    ("functions", F + "elu", "torch.nn.ELU"),
    ("functions", F + "layer_norm", "torch.nn.LayerNorm"),
    ("functions", F + "group_norm", "torch.nn.GroupNorm"),
    ("functions", F + "instance_norm", "torch.nn.InstanceNorm2d"),
    ("functions", F + "batch_norm", "torch.nn.BatchNorm2d"),
    # run (some reuse the input's qparams, which QL101 and the runtime checks cover)
    *[("functions", "torch." + name, "runs") for name in (
        "std", "clone", "max", "min", "mean", "topk", "sort", "cat", "stack", "flip",
        "narrow", "index_select", "masked_fill", "unbind", "sigmoid", "tanh", "clamp")],
    *[("methods", name, "runs") for name in (
        "std", "clone", "contiguous", "expand", "repeat", "max", "topk", "dequantize")],
    *[("functions", F + name, "runs") for name in (
        "relu", "relu6", "leaky_relu", "gelu", "hardtanh", "hardsigmoid", "interpolate",
        "dropout", "pad", "pixel_shuffle", "max_pool2d", "avg_pool2d", "adaptive_avg_pool2d")],
    *[("operators", symbol, "runs") for symbol in ("<", "==", "[]", "[]=")],
    # handled by other rules, recorded anyway
    *[("operators", symbol, "crash") for symbol in ("+", "-", "*", "/", "@", "+=")],
    ("functions", "torch.add", "crash"),
    ("functions", F + "linear", "crash"),
    ("methods", "relu_", "runs"),
    ("methods", "exp_", "crash"),
]


@pytest.mark.parametrize(("kind", "name", "expected"), FACTS, ids=[f"{k}:{n}" for k, n, _ in FACTS])
def test_measured_fact_still_holds(fresh, kind, name, expected):
    found = verdict(fresh, kind, name)
    assert found == expected, (
        f"torch {torch.__version__}, {kind[:-1]} {name} on a quint8 tensor: expected {expected!r}, "
        f"found {found!r}. torch changed this fact: update the project notes and the rules "
        f"that rely on it (QL102/QL104), then {REGENERATE}"
    )



@pytest.mark.parametrize(("module", "converts"), [
    ("torch.nn.Hardswish", True), ("torch.nn.ELU", True), ("torch.nn.LayerNorm", True),
    ("torch.nn.SiLU", False), ("torch.nn.Softmax", False), ("torch.nn.Mish", False),
])
def test_module_counterpart_conversion_still_holds(fresh, module, converts):
    found = fresh["module_converts"][module]
    assert found is converts, (
        f"torch {torch.__version__}: {module} {'now' if found else 'no longer'} survives eager "
        f"convert() with the default qconfig; update QL102's advice, then {REGENERATE}"
    )


def test_tensor_attributes_match_the_installed_torch():
    """qlint/data/tensor_attributes.json: regenerate with tools/generate_tensor_attributes.py."""
    spec = importlib.util.spec_from_file_location("generate_tensor_attributes",
                                                  ROOT / "tools" / "generate_tensor_attributes.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.PATH.read_text() == module.table(), "stale: run python tools/generate_tensor_attributes.py"


_VIEW_ARGS = {"unsqueeze_": (1,), "squeeze_": (), "transpose_": (0, 1), "swapaxes_": (0, 1),
              "swapdims_": (0, 1), "t_": (), "as_strided_": ((3, 2), (1, 3)), "detach_": ()}


@pytest.mark.parametrize("method", sorted(_VIEW_ARGS))
def test_view_inplace_method_runs_on_a_quantized_tensor_and_keeps_its_values(method):
    """QL202 leaves these alone (torch_api.VIEW_INPLACE_METHODS): they only change the view."""
    from qlint.semantic import torch_api as api

    assert set(_VIEW_ARGS) == api.VIEW_INPLACE_METHODS
    q = torch.quantize_per_tensor(torch.arange(6.0).reshape(2, 3), 0.5, 0, torch.quint8)
    expected = getattr(q.dequantize(), method.rstrip("_"))(*_VIEW_ARGS[method]) if method != "detach_" \
        else q.dequantize()
    changed = getattr(q.clone(), method)(*_VIEW_ARGS[method])
    assert changed.is_quantized and torch.equal(changed.dequantize(), expected), (
        f"torch {torch.__version__}: quantized Tensor.{method} no longer changes only the view; "
        "drop it from torch_api.VIEW_INPLACE_METHODS so that QL202 reports it")
