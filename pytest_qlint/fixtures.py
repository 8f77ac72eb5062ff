"""Fixtures over qlint's runtime checks: ``quant_engine`` and ``qparity``.

Parity tolerances come from the ``qlint_parity`` ini option, then ``qlint_parity`` markers
(module, class, function: the closest wins), then the keywords of the ``qparity(...)``
call. torch is imported only when a fixture runs, or at collection when a test uses
``quant_engine`` and the engine list is ``all``.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Iterator

import pytest

from qlint.runtime import assert_parity
from qlint.runtime._torch import require_torch

PARITY = "qlint_parity"  # the ini option and the marker
ENGINES_INI = "quant_engines"
ALL_ENGINES = "all"
PARITY_DEFAULTS = pytest.StashKey[dict[str, float]]()


def parity_tolerance_names() -> tuple[str, ...]:
    """The keyword-only tolerances of ``assert_parity`` (``max_steps``, ...)."""
    parameters = inspect.signature(assert_parity).parameters.values()
    return tuple(p.name for p in parameters if p.kind is inspect.Parameter.KEYWORD_ONLY)


def _unknown_tolerances(names: Iterable[str], where: str) -> str | None:
    """An error message naming the unknown tolerances among `names`, or None."""
    known = parity_tolerance_names()
    unknown = sorted(set(names) - set(known))
    if not unknown:
        return None
    return f"{where}: unknown parity tolerance {', '.join(unknown)}; expected one of {', '.join(known)}"


def configure_parity(config: pytest.Config) -> None:
    """Parse the ``qlint_parity`` ini lines (``NAME=NUMBER``) into config.stash."""
    tolerances: dict[str, float] = {}
    for line in config.getini(PARITY):
        name, _, value = (part.strip() for part in line.partition("="))
        try:
            tolerances[name] = float(value)  # no "=": float("") fails too
        except ValueError:
            raise pytest.UsageError(
                f"{PARITY} ini option: expected NAME=NUMBER (e.g. max_steps=4), found {line!r}"
            ) from None
    error = _unknown_tolerances(tolerances, f"{PARITY} ini option")
    if error:
        raise pytest.UsageError(error)
    config.stash[PARITY_DEFAULTS] = tolerances


def _marker_tolerances(node: pytest.Item) -> dict[str, float]:
    tolerances: dict[str, float] = {}
    for marker in reversed(list(node.iter_markers(PARITY))):  # farthest first, closest wins
        if marker.args:
            pytest.fail(
                f"@pytest.mark.{PARITY} takes keywords only (e.g. max_steps=4), "
                f"found positional {marker.args!r}",
                pytrace=False,
            )
        error = _unknown_tolerances(marker.kwargs, f"@pytest.mark.{PARITY}")
        if error:
            pytest.fail(error, pytrace=False)
        tolerances.update(marker.kwargs)
    return tolerances


@pytest.fixture
def qparity(request: pytest.FixtureRequest) -> Callable[..., None]:
    """``qparity(model, example_inputs, **tolerances)``: ``assert_parity`` with this test's
    tolerances (ini ``qlint_parity``, then ``@pytest.mark.qlint_parity``, then the call)."""
    tolerances = {**request.config.stash[PARITY_DEFAULTS], **_marker_tolerances(request.node)}

    def check(model, example_inputs, **overrides: float) -> None:
        __tracebackhide__ = True
        error = _unknown_tolerances(overrides, "qparity()")
        if error:
            raise TypeError(error)
        assert_parity(model, example_inputs, **{**tolerances, **overrides})

    return check


def usable_engines(torch) -> list[str]:
    """The quantized engines of this torch build that can run a model ("none" cannot)."""
    return [engine for engine in torch.backends.quantized.supported_engines if engine != "none"]


def selected_engines(config: pytest.Config) -> list[str]:
    """Engines from ``--quant-engines``, else the ``quant_engines`` ini option; ``all``
    (the default) means every usable engine of the installed torch."""
    option = config.getoption("quant_engines")
    names = option.split(",") if option is not None else config.getini(ENGINES_INI)
    names = [name.strip() for name in names if name.strip()] or [ALL_ENGINES]
    if ALL_ENGINES in names:
        return usable_engines(require_torch())
    return list(dict.fromkeys(names))


def _parametrized_by_test(metafunc: pytest.Metafunc) -> bool:
    for marker in metafunc.definition.iter_markers("parametrize"):
        argnames = marker.args[0] if marker.args else marker.kwargs.get("argnames", ())
        if isinstance(argnames, str):
            argnames = argnames.split(",")
        if "quant_engine" in (name.strip() for name in argnames):
            return True
    return False


def parametrize_engines(metafunc: pytest.Metafunc) -> None:
    """Run each test using ``quant_engine`` once per selected engine, unless the test
    parametrizes ``quant_engine`` itself (``indirect=True``)."""
    if "quant_engine" in metafunc.fixturenames and not _parametrized_by_test(metafunc):
        metafunc.parametrize("quant_engine", selected_engines(metafunc.config), indirect=True)


@pytest.fixture
def quant_engine(request: pytest.FixtureRequest) -> Iterator[str]:
    """Set ``torch.backends.quantized.engine`` for the test and restore it afterwards.

    Parametrized over ``--quant-engines`` / ini ``quant_engines`` (default: all engines
    of the installed torch); an engine this torch build lacks skips the test."""
    torch = require_torch()
    backends = torch.backends.quantized
    engine = getattr(request, "param", backends.engine)
    usable = usable_engines(torch)
    if engine not in usable:
        pytest.skip(
            f"quantized engine {engine!r} is not supported by torch {torch.__version__} "
            f"here (supported: {', '.join(usable)})"
        )
    previous = backends.engine
    backends.engine = engine
    try:
        yield engine
    finally:
        backends.engine = previous
