"""Generate docs/runtime-reference.md: every runtime helper and fixture, from the code.

Signatures (with defaults) come from `inspect.signature`, descriptions from the docstrings,
so the reference cannot drift from the code; a test fails when the committed file is stale.
Importing the helpers does not import torch, so neither does this tool.

    python tools/generate_runtime_reference.py          # rewrite docs/runtime-reference.md
    python tools/generate_runtime_reference.py --check  # exit 1 when it is stale
"""
from __future__ import annotations

import argparse
import dataclasses
import inspect
import sys
from pathlib import Path

REFERENCE_PATH = Path(__file__).resolve().parents[1] / "docs" / "runtime-reference.md"
REGENERATE_COMMAND = "python tools/generate_runtime_reference.py"


class _Annotation(str):
    """A string annotation (`from __future__ import annotations`) shown as written."""

    def __repr__(self) -> str:
        return str(self)


def _as_written(annotation):
    return _Annotation(annotation) if isinstance(annotation, str) else annotation


def _signature(name: str, target) -> str:
    try:
        signature = inspect.signature(target)
    except (TypeError, ValueError):
        return f"{name}(...)"
    signature = signature.replace(
        parameters=[p.replace(annotation=_as_written(p.annotation)) for p in signature.parameters.values()],
        return_annotation=_as_written(signature.return_annotation))
    text = f"{name}{signature}"
    if len(text) <= 88:
        return text
    parameters = list(signature.parameters.values())
    lines, star_done = [], False
    for parameter in parameters:
        if parameter.kind is inspect.Parameter.KEYWORD_ONLY and not star_done:
            if not any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in parameters):
                lines.append("    *,")
            star_done = True
        lines.append(f"    {parameter},")
    returns = "" if signature.return_annotation is inspect.Signature.empty else \
        f" -> {inspect.formatannotation(signature.return_annotation)}"
    return f"{name}(\n" + "\n".join(lines) + f"\n){returns}"


def _doc(target) -> str:
    return inspect.getdoc(target) or "(no docstring)"


def _helper(name: str, target) -> str:
    kind = "class" if inspect.isclass(target) else "function"
    parts = [f"### `{name}`", "", f"{kind}, from `{target.__module__}`", "",
             "```python", _signature(name, target), "```", "", _doc(target), ""]
    if inspect.isclass(target):
        if dataclasses.is_dataclass(target):
            parts += ["Fields:", ""]
            parts += [f"- `{field.name}: {field.type}`" for field in dataclasses.fields(target)]
            parts.append("")
        for method_name, method in sorted(vars(target).items()):
            if method_name.startswith("_") or not (inspect.isfunction(method) or isinstance(method, property)):
                continue
            if isinstance(method, property):
                parts += [f"#### `{name}.{method_name}` (property)", "", _doc(method.fget), ""]
            else:
                parts += [f"#### `{name}.{method_name}`", "", "```python",
                          _signature(method_name, method), "```", "", _doc(method), ""]
    return "\n".join(parts)


def _fixtures() -> list[tuple[str, object]]:
    import pytest_qlint.plugin as plugin

    found = []
    for name, value in sorted(vars(plugin).items()):
        function = getattr(value, "_get_wrapped_function", None)
        if function is not None:
            found.append((name, function()))
    return found


def render() -> str:
    import qlint.runtime as runtime

    out = [
        "# Runtime helpers and fixtures: reference",
        "",
        "Generated from the code by `tools/generate_runtime_reference.py` (signatures from",
        "`inspect.signature`, text from the docstrings); `tests/test_docs.py` fails when this",
        "file is stale. The helpers are importable from `pytest_qlint` in tests and from",
        "`qlint.runtime` in scripts and notebooks; importing them does not import torch.",
        "[pytest-plugin.md](pytest-plugin.md) shows them at work, and",
        "[examples/test_qat_example.py](examples/test_qat_example.py) is a complete QAT test file.",
        "",
        "## Helpers",
        "",
    ]
    for name in sorted(runtime.__all__):
        out.append(_helper(name, getattr(runtime, name)))
    out += ["## Fixtures", "",
            "Provided by the pytest plugin `pytest_qlint` (registered when torch-qlint is installed).", ""]
    for name, function in _fixtures():
        parameters = [p for p in inspect.signature(function).parameters if p != "request"]
        needs = f"; uses the fixtures {', '.join(f'`{p}`' for p in parameters)}" if parameters else ""
        out += [f"### `{name}`", "", f"fixture, from `{function.__module__}`{needs}", "", _doc(function), ""]
    return "\n".join(out).rstrip() + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when the committed file is stale")
    options = parser.parse_args(argv)
    text = render()
    if options.check:
        if not REFERENCE_PATH.exists() or REFERENCE_PATH.read_text() != text:
            print(f"{REFERENCE_PATH} is stale: regenerate with `{REGENERATE_COMMAND}`", file=sys.stderr)
            return 1
        return 0
    REFERENCE_PATH.write_text(text)
    print(f"wrote {REFERENCE_PATH}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
