"""The quant_engine and qparity fixtures, the qlint_parity marker and ini options."""

from __future__ import annotations

import pytest
import torch

from pytest_qlint.fixtures import usable_engines

PLUGIN = ("-p", "pytest_qlint.plugin", "-p", "no:cacheprovider")

ENGINE_TEST = """
import torch

def test_engine(quant_engine):
    assert torch.backends.quantized.engine == quant_engine
    torch.backends.quantized.engine = "fbgemm" if quant_engine != "fbgemm" else "x86"
"""

# conv -> FloatFunctional.add_scalar -> conv: the converted add_scalar derives its own
# qparams, so on x86 the converted output sits at about 42 dB SQNR from the fake-quant one.
PARITY_TEST = """
import pytest
import torch
from torch import nn
from torch.ao.nn.quantized import FloatFunctional
from torch.ao.quantization import DeQuantStub, QuantStub, get_default_qat_qconfig, prepare_qat


class ConvAddScalarConv(nn.Module):
    def __init__(self):
        super().__init__()
        self.quant, self.dequant = QuantStub(), DeQuantStub()
        self.conv1 = nn.Conv2d(2, 4, 3)
        self.shift = FloatFunctional()
        self.conv2 = nn.Conv2d(4, 2, 3)

    def forward(self, x):
        return self.dequant(self.conv2(self.shift.add_scalar(self.conv1(self.quant(x)), 3.0)))


def calibrated(engine):
    torch.manual_seed(0)
    model = ConvAddScalarConv().train()
    model.qconfig = get_default_qat_qconfig(engine)
    prepare_qat(model, inplace=True)
    example = torch.randn(2, 2, 8, 8)
    for _ in range(3):
        model(example)
    return model.eval(), example


def test_default_tolerances(quant_engine, qparity):
    qparity(*calibrated(quant_engine))


@pytest.mark.qlint_parity(min_sqnr_db=80)
def test_strict_marker(quant_engine, qparity):
    qparity(*calibrated(quant_engine))
"""


def collected_ids(result: pytest.RunResult) -> list[str]:
    return [line for line in result.stdout.lines if "::" in line]


def test_quant_engine_sets_the_engine_and_restores_it(pytester, monkeypatch):
    monkeypatch.setattr(torch.backends.quantized, "engine", "qnnpack")
    pytester.makepyfile(test_engines=ENGINE_TEST)

    result = pytester.runpytest(*PLUGIN, "--quant-engines=qnnpack,x86", "-v")

    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*test_engine[[]qnnpack[]] PASSED*", "*test_engine[[]x86[]] PASSED*"])
    assert torch.backends.quantized.engine == "qnnpack"


def test_quant_engine_runs_on_every_engine_by_default(pytester):
    pytester.makepyfile(test_engines=ENGINE_TEST)
    result = pytester.runpytest(*PLUGIN, "--collect-only", "-q")
    expected = [f"test_engines.py::test_engine[{engine}]" for engine in usable_engines(torch)]
    assert collected_ids(result) == expected


def test_quant_engines_option_overrides_the_ini_option(pytester):
    pytester.makepyprojecttoml('[tool.pytest.ini_options]\nquant_engines = ["fbgemm"]\n')
    pytester.makepyfile(test_engines=ENGINE_TEST)

    from_ini = pytester.runpytest(*PLUGIN, "--collect-only", "-q")
    from_option = pytester.runpytest(*PLUGIN, "--collect-only", "-q", "--quant-engines=x86")

    assert collected_ids(from_ini) == ["test_engines.py::test_engine[fbgemm]"]
    assert collected_ids(from_option) == ["test_engines.py::test_engine[x86]"]


def test_engine_missing_from_this_torch_skips_with_the_supported_list(pytester):
    pytester.makepyfile(test_engines=ENGINE_TEST)
    result = pytester.runpytest(*PLUGIN, "--quant-engines=tpu", "-rs")
    result.assert_outcomes(skipped=1)
    result.stdout.fnmatch_lines(["SKIPPED * quantized engine 'tpu' is not supported by torch * here (supported: *x86*)"])


def test_test_parametrizing_quant_engine_itself_wins(pytester):
    pytester.makepyfile(
        test_engines="""
        import pytest

        @pytest.mark.parametrize("quant_engine", ["qnnpack"], indirect=True)
        def test_engine(quant_engine):
            assert quant_engine == "qnnpack"
        """
    )
    result = pytester.runpytest(*PLUGIN, "--quant-engines=x86,fbgemm", "-v")
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(["*test_engine[[]qnnpack[]] PASSED*"])


def test_parity_tolerances_from_ini_then_markers_then_call(pytester):
    # assert_parity rejects max_steps below 1 before it runs anything, and the
    # message quotes the value it received.
    pytester.makepyprojecttoml('[tool.pytest.ini_options]\nqlint_parity = ["max_steps = 0.5"]\n')
    pytester.makepyfile(
        test_ini="""
        def test_ini(qparity):
            qparity(None, None)
        """,
        test_markers="""
        import pytest

        pytestmark = pytest.mark.qlint_parity(max_steps=0.25)

        def test_module_marker(qparity):
            qparity(None, None)

        @pytest.mark.qlint_parity(max_steps=0.125)
        def test_function_marker(qparity):
            qparity(None, None)

        def test_call_keyword(qparity):
            qparity(None, None, max_steps=0.0625)
        """,
    )

    result = pytester.runpytest(*PLUGIN)

    result.assert_outcomes(failed=4)
    result.stdout.fnmatch_lines(
        [
            "*_ test_ini _*",
            "E * ValueError: max_steps must be at least 1 (one rounding step), got 0.5",
            "*_ test_module_marker _*",
            "E * got 0.25",
            "*_ test_function_marker _*",
            "E * got 0.125",
            "*_ test_call_keyword _*",
            "E * got 0.0625",
        ]
    )


def test_marker_tolerance_decides_a_real_parity_check(pytester):
    pytester.makepyfile(test_marker_parity=PARITY_TEST)

    result = pytester.runpytest(*PLUGIN, "--quant-engines=x86", "-rf")

    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "E * the converted model (torch.ao.quantization.convert) diverges from the prepared (fake-quant) model (quantized engine x86):",
            "E *  output: SQNR * dB (required 80 dB or more)*",
        ]
    )
    result.stdout.fnmatch_lines(["FAILED test_marker_parity.py::test_strict_marker[[]x86[]] - AssertionError: *"])


def test_unknown_tolerances_are_reported_where_they_are_written(pytester):
    pytester.makepyfile(
        test_typos="""
        import pytest

        @pytest.mark.qlint_parity(max_step=4)
        def test_marker(qparity):
            pass

        def test_call(qparity):
            qparity(None, None, sqnr=30)
        """
    )
    result = pytester.runpytest(*PLUGIN)
    result.assert_outcomes(errors=1, failed=1)
    result.stdout.fnmatch_lines(
        [
            "@pytest.mark.qlint_parity: unknown parity tolerance max_step; "
            "expected one of max_steps, max_outlier_share, min_sqnr_db",
        ]
    )
    result.stdout.fnmatch_lines(["E * TypeError: qparity(): unknown parity tolerance sqnr; expected one of *"])

    pytester.makepyprojecttoml('[tool.pytest.ini_options]\nqlint_parity = ["max_steps"]\n')
    result = pytester.runpytest(*PLUGIN)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: qlint_parity ini option: expected NAME=NUMBER (e.g. max_steps=4), found 'max_steps'"])
