"""`qlint --fix`: fixable rules rewrite their findings away, nothing else changes."""
from __future__ import annotations

import ast
import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from qlint.cli import main
from qlint.config import load_config
from qlint.engine import FixResult, compute_fixes, fix_paths, lint_text
from qlint.registry import _LABEL, UNSAFE, all_rules

FIXABLE = [code for code, rule in all_rules().items() if rule.fix_safety]


def test_fixable_rules_are_declared():
    assert FIXABLE == ["QL001", "QL101", "QL201", "QL202", "QL203", "QL301", "QL302", "QL303", "QL401", "QL402",
                       "QL403", "QL503", "QL505", "QL506", "QL701", "QL704"]


@pytest.mark.parametrize("code", FIXABLE)
def test_fix_paths_writes_the_fixed_examples_in_their_tier(tmp_path: Path, code):
    """Each `Invalid(code, fixed=...)` example becomes its fixed source on disk; an unsafe
    rule's fixes wait for `unsafe=True`; a second run changes nothing."""
    rule = all_rules()[code]
    for i, source in enumerate(rule.invalid):
        if getattr(source, "fixed", None) is None:
            continue
        path = tmp_path / f"example_{i}.py"
        path.write_text(_LABEL.sub("", source))
        config = load_config(start=tmp_path, select=[code])
        if rule.fix_safety == UNSAFE:
            assert fix_paths([path], config) == FixResult()
        assert fix_paths([path], config, unsafe=True).fixed
        fixed = path.read_text()
        ast.parse(fixed)
        assert fixed == source.fixed
        assert fix_paths([path], config, unsafe=True) == FixResult()  # idempotent: nothing left to fix


SOURCE = textwrap.dedent("""
    import torch
    import torch.quantization as tq
    from torch.nn.quantized import FloatFunctional
    from torch import quantization
    from torch.nn import quantized, Conv2d
    import torch.nn as nn


    class M(nn.Module):
        def __init__(self):
            super().__init__()
            self.a = nn.ReLU(inplace=True)
            self.b = nn.LeakyReLU(0.1, True)
            self.c = nn.Hardtanh(-1.0, 1.0, True, )
            self.d = nn.ReLU6(True, )
            self.e = nn.ReLU(inplace=True)  # noqa: QL201
            self.f = torch.nn.quantized.FloatFunctional()
            self.g = nn.quantized.FloatFunctional()

        def forward(self, x):
            return torch.quantization.QuantStub()(x)
""")

SAFE_FIXED = SOURCE.replace("import torch.quantization as tq", "import torch.ao.quantization as tq") \
    .replace("from torch.nn.quantized import", "from torch.ao.nn.quantized import") \
    .replace("from torch import quantization", "from torch.ao import quantization") \
    .replace("torch.nn.quantized.FloatFunctional()", "torch.ao.nn.quantized.FloatFunctional()") \
    .replace("torch.quantization.QuantStub()", "torch.ao.quantization.QuantStub()")
EXPECTED = SAFE_FIXED.replace("nn.ReLU(inplace=True)\n", "nn.ReLU()\n") \
    .replace("nn.LeakyReLU(0.1, True)", "nn.LeakyReLU(0.1)") \
    .replace("nn.Hardtanh(-1.0, 1.0, True, )", "nn.Hardtanh(-1.0, 1.0)") \
    .replace("nn.ReLU6(True, )", "nn.ReLU6()")


def test_fix_rewrites_what_it_can_and_reports_the_rest(tmp_path: Path, capsys):
    path = tmp_path / "m.py"
    path.write_text(SOURCE)
    assert main([str(path), "--fix"]) == 1
    assert path.read_text() == SAFE_FIXED
    out, err = capsys.readouterr()
    assert "Found 11 problems (5 fixed, 6 remaining).\n" in out and not err
    # Left: the unsafe QL201 fixes, a mixed `from` import and `nn.quantized` spelled through the `nn` alias.
    assert sorted(line.split(": ")[1].split()[0] for line in out.splitlines() if line.startswith(str(path))) == [
        "QL201", "QL201", "QL201", "QL201", "QL505", "QL505"]
    assert fix_paths([path], load_config(start=tmp_path), unsafe=True) == FixResult(fixed={path: {"QL201": 4}})
    assert path.read_text() == EXPECTED


def test_a_positional_inplace_before_other_arguments_becomes_false(tmp_path: Path):
    path = tmp_path / "m.py"
    path.write_text("import torch.nn as nn\n\n\nclass M(nn.Module):\n    def __init__(self):\n"
                    "        super().__init__()\n        self.act = nn.Hardtanh(-1.0, 1.0, True, max_value=None)\n")
    fix_paths([path], load_config(start=tmp_path), unsafe=True)
    assert "nn.Hardtanh(-1.0, 1.0, False, max_value=None)" in path.read_text()


def test_new_names_never_collide_across_the_files_of_a_run(tmp_path: Path):
    """A base and its subclass in two files each get a ReLU: the one fixed second sees the
    name the first took."""
    (tmp_path / "pkg").mkdir()
    (tmp_path / "pkg" / "__init__.py").write_text("")
    (tmp_path / "pkg" / "a.py").write_text(
        "import torch\nimport torch.nn as nn\n\n\nclass A(nn.Module):\n    def __init__(self):\n"
        "        super().__init__()\n        self.conv = nn.Conv2d(3, 3, 1)\n\n"
        "    def forward(self, x):\n        return torch.relu(self.conv(x))\n")
    (tmp_path / "pkg" / "b.py").write_text(
        "import torch\nfrom pkg.a import A\n\n\nclass B(A):\n    def forward(self, x):\n"
        "        return torch.relu(super().forward(x) + 1.0)\n")
    files = [tmp_path / "pkg" / "a.py", tmp_path / "pkg" / "b.py"]
    result = fix_paths(files, load_config(start=tmp_path), unsafe=True)
    # b.py: the ReLU and the `+ 1.0` (QL301)
    assert result == FixResult(fixed={files[0]: {"QL101": 1}, files[1]: {"QL101": 1, "QL301": 1}})
    assert "self.relu = nn.ReLU()" in files[0].read_text()
    assert "self.relu_1 = torch.nn.ReLU()" in files[1].read_text()
    assert "return self.relu_1(self.add_scalar.add_scalar(super().forward(x), 1.0))" in files[1].read_text()


def test_in_place_writes_another_reference_may_see_are_left_as_they_are():
    """Hard negatives of the QL101/QL202 fixes: each write below is seen by something else
    (or its out-of-place namesake differs), so rewriting it would change the float model."""
    source = textwrap.dedent("""
        import torch.nn as nn


        class M(nn.Module):
            def __init__(self):
                super().__init__()
                self.fc = nn.Linear(4, 4)
                self.fc2 = nn.Linear(4, 4)
                self.drop = nn.Identity()

            def forward(self, x):
                x.add_(1.0)  # an input of forward: the caller holds it
                out = self.fc(x)
                identity = out
                out.relu_()  # `identity` holds the same tensor
                h = self.drop(out)
                h.mul_(2.0)  # Identity returns its input: `out` is `h`
                g = self.fc2(h)
                g.bernoulli_(0.5)  # x.bernoulli() draws with g as probabilities
                y = out.clamp_(0, 1)  # `out` keeps the clamped tensor under another name
                return identity, h, g, y
        """)
    result = lint_text(source.encode(), Path("m.py"), frozenset({"QL101", "QL202"}), fix=True, unsafe=True)
    findings, fixed = result.findings, result.source
    assert fixed.decode() == source
    assert sorted((f.line, f.code) for f in findings if f.fix) == []
    assert {(f.line, f.code) for f in findings} >= {(13, "QL202"), (16, "QL101"), (16, "QL202"), (18, "QL202"),
                                                     (20, "QL202"), (21, "QL202")}


def test_new_statements_follow_the_file_s_line_endings_indentation_and_encoding(tmp_path: Path):
    path = tmp_path / "m.py"
    path.write_bytes(b"# -*- coding: latin-1 -*-\r\nimport torch\r\nimport torch.nn as nn\r\n\r\n\r\n"
                     b"class M(nn.Module):\r\n\tdef __init__(self):\r\n\t\tsuper().__init__()\r\n"
                     b"\t\tself.conv = nn.Conv2d(3, 3, 1)  # caf\xe9\r\n\r\n"
                     b"\tdef forward(self, x):\r\n\t\treturn torch.relu(self.conv(x))\r\n")
    assert fix_paths([path], load_config(start=tmp_path), unsafe=True) == FixResult(fixed={path: {"QL101": 1}})
    assert path.read_bytes() == (b"# -*- coding: latin-1 -*-\r\nimport torch\r\nimport torch.nn as nn\r\n\r\n\r\n"
                                 b"class M(nn.Module):\r\n\tdef __init__(self):\r\n\t\tsuper().__init__()\r\n"
                                 b"\t\tself.conv = nn.Conv2d(3, 3, 1)  # caf\xe9\r\n\t\tself.relu = nn.ReLU()\r\n\r\n"
                                 b"\tdef forward(self, x):\r\n\t\treturn self.relu(self.conv(x))\r\n")


# ----- fix tiers through the command (ruff's --fix / --unsafe-fixes / --diff / --show-fixes) -----
TIERS = textwrap.dedent("""\
    import torch.quantization as tq
    import torch.nn as nn


    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 1)
            self.relu = nn.ReLU(inplace=True)

        def forward(self, x):
            return self.relu(self.conv(x) / 3.0)
""")  # QL505 (safe fix) on line 1, QL201 (unsafe fix) on line 9, QL303 (no fix: 1/3 is inexact) on line 12
TIERS_SAFE = TIERS.replace("torch.quantization", "torch.ao.quantization")
TIERS_ALL = TIERS_SAFE.replace("nn.ReLU(inplace=True)", "nn.ReLU()")


@pytest.fixture
def tiers(tmp_path, monkeypatch):
    (tmp_path / "m.py").write_text(TIERS)
    monkeypatch.chdir(tmp_path)
    return tmp_path / "m.py"


def run(capsys, *argv: str) -> tuple[int, str, str]:
    status = main([*argv, "--no-cache"])
    out, err = capsys.readouterr()
    return status, out, err


def _codes_marked(out: str) -> dict[str, bool]:
    """{code: marked [*]} per finding line."""
    return {line.split()[1]: line.split()[2] == "[*]" for line in out.splitlines() if line.startswith("m.py:")}


def test_findings_a_fix_would_remove_are_marked_and_counted(tiers, capsys):
    status, out, err = run(capsys, "m.py")
    assert (status, err) == (1, "")
    assert _codes_marked(out) == {"QL505": True, "QL201": False, "QL303": False}
    assert out.endswith("Found 3 problems (1 error, 2 warnings).\n"
                        "[*] 1 fixable with --fix (1 more with --unsafe-fixes).\n")
    status, out, _ = run(capsys, "m.py", "--unsafe-fixes")
    assert _codes_marked(out) == {"QL505": True, "QL201": True, "QL303": False}
    assert out.endswith("[*] 2 fixable with --fix.\n")
    status, out, _ = run(capsys, "m.py", "--ignore", "QL505")
    assert out.endswith("No fixes available with --fix (1 more with --unsafe-fixes).\n")
    status, out, _ = run(capsys, "m.py", "--select", "QL303")
    assert out.endswith("Found 1 problem (1 error, 0 warnings).\n")  # no fix: no footer
    assert tiers.read_text() == TIERS
    status, out, _ = run(capsys, "m.py", "-q")
    assert "fixable" not in out and "Found" not in out


def test_fix_applies_the_safe_fixes_and_unsafe_fixes_adds_the_others(tiers, capsys):
    status, out, err = run(capsys, "m.py", "--fix")
    assert tiers.read_text() == TIERS_SAFE
    assert (status, err) == (1, "")
    assert out.endswith("Found 3 problems (1 fixed, 2 remaining).\n"
                        "No fixes available with --fix (1 more with --unsafe-fixes).\n")
    status, out, _ = run(capsys, "m.py", "--fix", "--unsafe-fixes")
    assert tiers.read_text() == TIERS_ALL
    assert out.endswith("Found 2 problems (1 fixed, 1 remaining).\n")
    assert run(capsys, "m.py", "--fix", "--unsafe-fixes")[1].endswith("Found 1 problem (1 error, 0 warnings).\n")
    assert tiers.read_text() == TIERS_ALL  # nothing left to fix


def test_unsafe_fixes_setting_and_the_flag_that_overrides_it(tiers, capsys):
    (tiers.parent / "pyproject.toml").write_text("[tool.qlint]\nunsafe-fixes = true\n")
    assert run(capsys, "m.py")[1].endswith("[*] 2 fixable with --fix.\n")
    run(capsys, "m.py", "--fix", "--no-unsafe-fixes")
    assert tiers.read_text() == TIERS_SAFE
    run(capsys, "m.py", "--fix")
    assert tiers.read_text() == TIERS_ALL
    (tiers.parent / "pyproject.toml").write_text('[tool.qlint]\nunsafe-fixes = "yes"\n')
    status, out, err = run(capsys, "m.py")
    assert (status, out) == (2, "")
    assert "pyproject.toml: [tool.qlint] unsafe-fixes: expected true or false, found 'yes'" in err


def _patched(diff: bytes, folder: Path, name: str) -> bytes:
    """The file `name` of `folder` after `patch -p0` applies `diff` to a copy."""
    copy = folder / "patched"
    copy.mkdir(exist_ok=True)
    shutil.copy2(folder / name, copy / name)
    subprocess.run(["patch", "-p0", "--quiet"], input=diff, cwd=copy, check=True)
    return (copy / name).read_bytes()


def qlint(*argv: str, cwd: Path, stdin: bytes = b"") -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "qlint", *argv, "--no-cache"], input=stdin,
                          capture_output=True, cwd=cwd, timeout=120)


@pytest.mark.skipif(shutil.which("patch") is None, reason="needs patch(1)")
def test_diff_prints_what_fix_would_change_and_writes_nothing(tiers):
    result = qlint("m.py", "--diff", cwd=tiers.parent)
    assert result.returncode == 1
    assert result.stdout == (b"--- m.py\n+++ m.py\n@@ -1,4 +1,4 @@\n"
                             b"-import torch.quantization as tq\n+import torch.ao.quantization as tq\n"
                             b" import torch.nn as nn\n \n \n")
    # Findings and summaries on stderr, as a plain run prints them.
    err = result.stderr.decode()
    assert "m.py:1:8: QL505 [*] deprecated-namespace" in err and "m.py:9:21: QL201 inplace-module" in err
    assert err.endswith("Found 3 problems (1 error, 2 warnings).\n"
                        "[*] 1 fixable with --fix (1 more with --unsafe-fixes).\n")
    assert tiers.read_text() == TIERS
    # The diff is what --fix writes.
    patched = _patched(result.stdout, tiers.parent, "m.py")
    assert qlint("m.py", "--fix", cwd=tiers.parent).returncode == 1
    assert tiers.read_bytes() == patched == TIERS_SAFE.encode()


def test_diff_with_nothing_to_fix_prints_nothing_on_stdout_and_exits_0(tiers, capsys):
    tiers.write_text(TIERS_ALL)
    status, out, err = run(capsys, "m.py", "--diff")
    assert (status, out) == (0, "")  # QL303 has no fix here: the diff decides, not the findings
    assert "QL303" in err and err.endswith("Found 1 problem (1 error, 0 warnings).\n")
    assert run(capsys, "m.py", "--diff", "--silent") == (0, "", "")


def test_diff_follows_the_tiers_and_exit_zero(tiers, capsys):
    status, out, err = run(capsys, "m.py", "--diff", "--select", "QL201")
    assert (status, out) == (0, "")  # the unsafe fix is not in the tiers
    assert err.endswith("No fixes available with --fix (1 more with --unsafe-fixes).\n")
    status, out, _ = run(capsys, "m.py", "--diff", "--unsafe-fixes")
    assert status == 1 and "+import torch.ao.quantization as tq\n" in out and "+        self.relu = nn.ReLU()\n" in out
    assert run(capsys, "m.py", "--diff", "--fix", "--exit-zero")[0] == 0  # --diff wins over --fix: no write
    assert tiers.read_text() == TIERS


def test_show_fixes_lists_fixes_per_file_and_rule(tiers, capsys):
    other = tiers.parent / "sub" / "n.py"
    other.parent.mkdir()
    other.write_text("import torch.quantization as tq\nimport torch.nn.quantized as nnq\nimport torch.nn as nn\n\n\n"
                     "class Head(nn.Module):\n    def __init__(self):\n        super().__init__()\n"
                     "        self.act = nn.ReLU(inplace=True)\n")
    status, out, err = run(capsys, ".", "--diff", "--show-fixes", "--unsafe-fixes")
    assert "\nWould fix 5 problems:\n- m.py:\n    1 × QL201 (inplace-module)\n    1 × QL505 (deprecated-namespace)\n" \
           "- sub/n.py:\n    2 × QL505 (deprecated-namespace)\n    1 × QL201 (inplace-module)\n\n" in err
    status, out, err = run(capsys, ".", "--fix", "--show-fixes")
    assert "\nFixed 3 problems:\n- m.py:\n    1 × QL505 (deprecated-namespace)\n" \
           "- sub/n.py:\n    2 × QL505 (deprecated-namespace)\n\nFound 6 problems (3 fixed, 3 remaining).\n" in out
    assert "Fixed" not in run(capsys, ".", "--fix", "--show-fixes")[1]  # nothing more to fix: no list
    status, out, _ = run(capsys, ".", "--fix", "--show-fixes", "--unsafe-fixes", "--output-format", "json")
    assert "Fixed" not in out and json.loads(out)  # machine formats stay parseable


def test_diff_and_fix_on_standard_input(tmp_path):
    diff = qlint("-", "--stdin-filename", "pkg/m.py", "--diff", cwd=tmp_path, stdin=TIERS.encode())
    assert diff.returncode == 1
    assert diff.stdout.startswith(b"--- pkg/m.py\n+++ pkg/m.py\n@@ ")
    assert b"+import torch.ao.quantization as tq\n" in diff.stdout
    assert b"pkg/m.py:1:8: QL505 [*] deprecated-namespace" in diff.stderr  # the findings of the source given
    clean = qlint("-", "--diff", cwd=tmp_path, stdin=b"x = 1\n")
    assert (clean.returncode, clean.stdout) == (0, b"")
    fixed = qlint("-", "--fix", "--show-fixes", cwd=tmp_path, stdin=b"import torch.quantization as tq\n")
    assert fixed.stdout == b"import torch.ao.quantization as tq\n"
    assert fixed.stderr.decode() == ("\nFixed 1 problem:\n- -:\n    1 × QL505 (deprecated-namespace)\n\n"
                                     "Found 1 problem (1 fixed, 0 remaining).\n")
    assert fixed.returncode == 0


@pytest.mark.skipif(shutil.which("patch") is None, reason="needs patch(1)")
@pytest.mark.parametrize("newline, encoding, cookie", [
    ("\r\n", "utf-8", ""),
    ("\n", "latin-1", "# -*- coding: latin-1 -*-\n"),
    ("\r\n", "latin-1", "# -*- coding: latin-1 -*-\r\n"),
])
def test_fix_and_diff_keep_line_endings_encoding_and_mode(tmp_path, newline, encoding, cookie):
    source = cookie + "import torch.quantization as tq\nname = 'caf\xe9'\nno_newline_at_end = 1".replace(
        "\n", newline)
    path = tmp_path / "m.py"
    path.write_bytes(source.encode(encoding))
    path.chmod(0o741)
    expected = source.replace("torch.quantization", "torch.ao.quantization").encode(encoding)
    diff = qlint("m.py", "--diff", cwd=tmp_path)
    assert diff.returncode == 1 and path.read_bytes() == source.encode(encoding)
    assert _patched(diff.stdout, tmp_path, "m.py") == expected
    result = qlint("m.py", "--fix", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert path.read_bytes() == expected  # only the fix changed: endings, encoding, last line kept
    assert path.stat().st_mode & 0o777 == 0o741


def test_compute_fixes_writes_nothing_and_fix_paths_counts_fixes_per_code(tiers):
    config = load_config(start=tiers.parent)
    result = compute_fixes([tiers], config, unsafe=True)
    assert result == FixResult(fixed={tiers: {"QL505": 1, "QL201": 1}}) and result.count == 2
    assert result.changes == {tiers: (TIERS.encode(), TIERS_ALL.encode())}
    assert tiers.read_text() == TIERS
    assert fix_paths([tiers], config) == FixResult(fixed={tiers: {"QL505": 1}})
    assert tiers.read_text() == TIERS_SAFE


def test_an_unsafe_fix_s_docs_say_how_to_apply_it():
    from qlint.output.docs import rule_markdown

    rule = all_rules()["QL201"]
    section = rule_markdown(rule).split("### Fix safety\n\n", 1)[1]
    assert section.startswith("This rule's fix is **unsafe**: `qlint --fix` applies it only with `--unsafe-fixes`")
    assert section.rstrip().endswith("shows it first. " + rule.fix_safety_note.strip())


MEMBER = textwrap.dedent("""\
    import torch
    import torch.nn as nn


    class Block(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(3, 3, 1)

        def forward(self, x):
            return torch.relu(self.conv(x)) + torch.relu(x)  # noqa: QL301
""")
MEMBER_FIXED = MEMBER.replace("nn.Conv2d(3, 3, 1)\n", "nn.Conv2d(3, 3, 1)\n        self.relu = nn.ReLU()\n"
                              "        self.relu_1 = nn.ReLU()\n").replace(
    "torch.relu(self.conv(x)) + torch.relu(x)", "self.relu(self.conv(x)) + self.relu_1(x)")


@pytest.mark.skipif(shutil.which("patch") is None, reason="needs patch(1)")
@pytest.mark.parametrize("newline", ["\n", "\r\n"])
def test_an_unsafe_fix_that_adds_submodules_through_diff_and_fix(tmp_path, monkeypatch, capsys, newline):
    """QL101's fix adds a `nn.ReLU()` per call in `__init__` and calls it in place."""
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "m.py"
    path.write_bytes(MEMBER.replace("\n", newline).encode())
    expected = MEMBER_FIXED.replace("\n", newline).encode()
    status, out, err = run(capsys, "m.py", "--diff")
    assert (status, out) == (0, "") and err.endswith("No fixes available with --fix (2 more with --unsafe-fixes).\n")
    status, out, err = run(capsys, "m.py", "--diff", "--unsafe-fixes", "--show-fixes")
    assert status == 1 and "Would fix 2 problems:\n- m.py:\n    2 × QL101 (functional-relu)\n" in err
    assert _patched(out.encode(), tmp_path, "m.py") == expected
    assert path.read_bytes() == MEMBER.replace("\n", newline).encode()
    status, out, _ = run(capsys, "m.py", "--fix", "--unsafe-fixes")
    assert (status, path.read_bytes()) == (0, expected)
    assert out == "Found 2 problems (2 fixed, 0 remaining).\n"
    assert run(capsys, "m.py", "--diff", "--unsafe-fixes")[:2] == (0, "")  # a second run changes nothing
