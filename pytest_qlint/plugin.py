"""pytest plugin of torch-qlint: ``pytest --qlint`` and the quantization fixtures.

Importing it imports neither torch nor the linter: ``--qlint`` loads the linter,
a fixture loads torch when it runs.
"""

from __future__ import annotations

import pytest

from pytest_qlint.fixtures import (
    ENGINES_INI,
    PARITY,
    configure_parity,
    parametrize_engines,
    qparity,  # noqa: F401  (fixture)
    quant_engine,  # noqa: F401  (fixture)
)

PATHS_INI = "qlint_paths"


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("qlint", "torch-qlint (quantization correctness)")
    group.addoption(
        "--qlint",
        action="store_true",
        help="lint each collected .py file with qlint (one FILE::qlint item per file)",
    )
    group.addoption(
        "--quant-engines",
        dest="quant_engines",
        metavar="ENGINES",
        help="comma-separated quantized engines for the quant_engine fixture, "
        "or 'all' (default): every engine of the installed torch",
    )
    parser.addini(
        PATHS_INI,
        type="paths",
        default=[],
        help="files and directories --qlint also lints when pytest runs without path arguments",
    )
    parser.addini(
        ENGINES_INI,
        type="args",
        default=[],
        help="quantized engines for the quant_engine fixture (default: all)",
    )
    parser.addini(
        PARITY,
        type="linelist",
        default=[],
        help="parity tolerances for the qparity fixture, NAME=NUMBER per line (e.g. max_steps=4)",
    )


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "qlint: a --qlint item (lints one file)")
    config.addinivalue_line(
        "markers",
        f"{PARITY}(**tolerances): tolerances of the qparity fixture, "
        "e.g. max_steps=4, min_sqnr_db=25, max_outlier_share=0.02",
    )
    configure_parity(config)
    if config.getoption("qlint"):
        from pytest_qlint.lint_items import start_lint_session

        start_lint_session(config)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    parametrize_engines(metafunc)
