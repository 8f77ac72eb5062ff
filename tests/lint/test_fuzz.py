"""Fuzzing: generated programs (hypothesmith) and mutations of the examples/ model zoo never
crash qlint, lint the same way twice, and `--fix` writes code that parses and that a second
fix leaves alone. Bounded in count (and derandomized, so CI runs repeat) to stay a few
seconds; raise FUZZ_EXAMPLES locally to search longer."""
from __future__ import annotations

import ast
import os
import warnings
from pathlib import Path

import pytest

hypothesis = pytest.importorskip("hypothesis")
hypothesmith = pytest.importorskip("hypothesmith")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from qlint.config import load_config  # noqa: E402
from qlint.engine import FixResult, fix_paths, lint_paths  # noqa: E402

EXAMPLES = sorted((Path(__file__).resolve().parents[2] / "examples").glob("*.py"))
COUNT = int(os.environ.get("FUZZ_EXAMPLES", "15"))
FUZZ = settings(max_examples=COUNT, deadline=None, derandomize=True, database=None,
                suppress_health_check=list(HealthCheck))
# Fragments that matter to the rules, spliced into the zoo.
FRAGMENTS = ["x = x + y", "self.relu(x)", "nn.ReLU(inplace=True)", "import torch.quantization as tq",
             "torch.quantization.convert(m)", "out += identity", "(", ")", ":", "    ", "\\", "'", '"""',
             "lambda: (yield)", "async def f(): await x", "match x:\n    case 1: pass", "# noqa: QL301",
             "x" + "[0]" * 300, "\t", "\x00", "\ufeff", "é", "def forward(self, x):", "class M(nn.Module):"]


@st.composite
def mutated_zoo_file(draw) -> bytes:
    source = draw(st.sampled_from(EXAMPLES)).read_text()
    lines = source.splitlines(keepends=True)
    for _ in range(draw(st.integers(1, 4))):
        kind = draw(st.sampled_from(["delete", "duplicate", "swap", "insert", "truncate", "dedent"]))
        i = draw(st.integers(0, max(0, len(lines) - 1)))
        j = draw(st.integers(0, max(0, len(lines) - 1)))
        if not lines:
            lines = ["\n"]
        if kind == "delete":
            del lines[min(i, j):max(i, j) + 1]
        elif kind == "duplicate":
            lines[i:i] = lines[min(i, j):max(i, j) + 1]
        elif kind == "swap":
            lines[i], lines[j] = lines[j], lines[i]
        elif kind == "insert":
            indent = lines[i][: len(lines[i]) - len(lines[i].lstrip())]
            lines.insert(i, indent + draw(st.sampled_from(FRAGMENTS)) + "\n")
        elif kind == "truncate":
            lines = lines[:i] + [lines[i][: draw(st.integers(0, len(lines[i])))]]
        elif kind == "dedent":
            lines[i] = lines[i].lstrip()
    return "".join(lines).encode("utf-8", "surrogatepass")


def _parses(data: bytes) -> bool:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", SyntaxWarning)
            compile(data, "<fuzz>", "exec", flags=ast.PyCF_ONLY_AST, dont_inherit=True)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return True


def _check(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "fuzzed.py"
    path.write_bytes(data)
    config = load_config(start=tmp_path)
    first = lint_paths([path], config, jobs=1)  # must not raise
    assert lint_paths([path], config, jobs=1) == first, "linting twice gives the same findings"
    assert all(f.code != "QL000" or "internal error" not in f.message for f in first), first
    result = fix_paths([path], config)
    assert not result.failed
    fixed = path.read_bytes()
    if result.fixed:
        assert _parses(fixed) or not _parses(data), "--fix output parses whenever its input did"
    assert fix_paths([path], config) == FixResult(), "a second --fix changes nothing"
    assert path.read_bytes() == fixed


@FUZZ
@given(data=mutated_zoo_file())
def test_mutated_zoo_files(tmp_path_factory, data):
    _check(tmp_path_factory.mktemp("zoo"), data)


@FUZZ
@given(source=hypothesmith.from_grammar())
def test_generated_programs(tmp_path_factory, source):
    _check(tmp_path_factory.mktemp("grammar"), source.encode("utf-8", "surrogatepass"))


@settings(FUZZ, max_examples=max(1, COUNT // 3))  # libcst's own code generation makes these slow
@given(source=hypothesmith.from_node())
def test_generated_syntax_trees(tmp_path_factory, source):
    _check(tmp_path_factory.mktemp("node"), source.encode("utf-8", "surrogatepass"))
