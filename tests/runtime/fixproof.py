"""Proof by running that a `qlint --fix` keeps a model and makes it quantizable: the helpers of
tests/runtime/test_fix_proof.py, shared with the proofs of every fix kind (import them with
`from fixproof import ...` after `pytest.importorskip("torch")`).

- `fix_source(source, codes)`: what `qlint --fix --unsafe-fixes --select CODES` writes.
- `import_source(source, directory, name)`: the source imported from a file, as a module.
- `Proof.of(source, codes, directory, build)`: the original and fixed modules and a model
  of each (`build(module)` makes one, seeded), after checking the fixed source is a
  fixed point of `--fix` and keeps no QL1xx-QL4xx error.
- `assert_same_float(original, fixed, inputs)`: the fixed model loads the original's
  state_dict with `strict=True` and gives bit-identical (`torch.equal`) eval outputs.
- `quantize(model, calibration, fuse=())`: the eager flow as a user runs it: eval, fuse the
  given groups, x86 qconfig, QuantWrapper around it, prepare, calibrate, `assert_parity`,
  convert, run, `assert_converted`; the converted model.
"""
from __future__ import annotations

import copy
import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Callable, Sequence

import torch
import torch.ao.quantization as tq

from qlint.engine import lint_source, lint_text
from qlint.registry import all_rules
from qlint.runtime import assert_converted, assert_parity


def fix_source(source: str, codes: Sequence[str]) -> str:
    """The source after `--fix --unsafe-fixes` with only `codes` selected."""
    fixed = lint_text(source.encode(), Path("proof.py"), frozenset(codes), fix=True, unsafe=True).source
    return fixed.decode()


def import_source(source: str, directory: Path, name: str) -> ModuleType:
    """Write the source to `directory/name.py` and import it as module `name`."""
    path = directory / f"{name}.py"
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look modules up by name
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[name]
    return module


def remaining_errors(source: str) -> list:
    """The QL1xx-QL4xx errors qlint still reports on a source (default rules)."""
    return [f for f in lint_source(source) if f.code[2] in "1234" and f.severity == "error"]


@dataclass
class Proof:
    source: str
    fixed_source: str
    original: torch.nn.Module
    fixed: torch.nn.Module

    @classmethod
    def of(cls, source: str, codes: Sequence[str], directory: Path,
           build: Callable[[ModuleType], torch.nn.Module]) -> "Proof":
        fixed_source = fix_source(source, codes)
        assert fixed_source != source, f"--fix changed nothing in:\n{source}"
        assert fix_source(fixed_source, codes) == fixed_source, "a second --fix changes the source"
        assert not remaining_errors(fixed_source), remaining_errors(fixed_source)
        stem = f"proof_{'_'.join(codes)}_{abs(hash(source)) % 10**8}"
        original = import_source(source, directory, stem + "_original")
        fixed = import_source(fixed_source, directory, stem + "_fixed")
        torch.manual_seed(0)
        original_model = build(original)
        torch.manual_seed(1)  # the state comes from the original's state_dict, not the seed
        return cls(source, fixed_source, original_model, build(fixed))


def _flat(output) -> list[torch.Tensor]:
    if isinstance(output, torch.Tensor):
        return [output]
    return [t for item in output for t in _flat(item)]


def assert_same_float(original: torch.nn.Module, fixed: torch.nn.Module, inputs: Sequence[torch.Tensor]) -> None:
    """The fixed model holds the original's state (strict load) and computes the same bits."""
    assert list(original.state_dict()) == list(fixed.state_dict()), "the fix changed the state_dict keys"
    fixed.load_state_dict(original.state_dict(), strict=True)
    original.eval()
    fixed.eval()
    with torch.no_grad():
        expected = _flat(original(*[t.clone() for t in inputs]))
        found = _flat(fixed(*[t.clone() for t in inputs]))
    assert len(expected) == len(found)
    for a, b in zip(expected, found):
        assert torch.equal(a, b), f"float outputs differ by up to {(a - b).abs().max().item()}"


def quantize(model: torch.nn.Module, calibration: Sequence[Sequence[torch.Tensor]],
             fuse: Sequence[Sequence[str]] = ()) -> torch.nn.Module:
    """Eager post-training quantization of a float model with one tensor output (see above)."""
    model = copy.deepcopy(model).eval()
    if fuse:
        model = tq.fuse_modules(model, [list(group) for group in fuse])
    wrapped = tq.QuantWrapper(model)
    wrapped.qconfig = tq.get_default_qconfig("x86")
    prepared = tq.prepare(wrapped)
    with torch.no_grad():
        for inputs in calibration:
            prepared(*inputs)
    assert_parity(prepared, tuple(calibration[0]))
    converted = tq.convert(copy.deepcopy(prepared))
    with torch.no_grad():
        converted(*calibration[0])
    assert_converted(converted)
    return converted


def rule_example(code: str, index: int) -> str:
    """An invalid example of a rule (labels and all: they are comments)."""
    return str(all_rules()[code].invalid[index])
