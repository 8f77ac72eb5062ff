"""Settings: [tool.qlint] discovery, validation, rule selection, per-file ignores, overrides."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from qlint.config import DEFAULT_EXCLUDE, Config, ConfigError, load_config
from qlint.registry import all_rules

ALL_CODES = frozenset(code for code, rule in all_rules().items() if not rule.opt_in)  # what `QL` selects


def codes_starting(*prefixes: str) -> frozenset[str]:
    return frozenset(code for code in ALL_CODES if code.startswith(prefixes))


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_registry_has_the_codes_these_tests_select():
    assert {"QL000", "QL301", "QL302", "QL401"} <= ALL_CODES


def test_nearest_pyproject_with_a_qlint_table_wins(tmp_path):
    write(tmp_path / "pyproject.toml", '[tool.qlint]\nselect = ["QL4"]\n')
    write(tmp_path / "app" / "pyproject.toml", '[project]\nname = "app"\n')  # no [tool.qlint]: skipped
    deep = tmp_path / "app" / "models" / "vision"
    deep.mkdir(parents=True)

    config = load_config(start=deep)

    assert config.source == tmp_path / "pyproject.toml"
    assert config.root == tmp_path
    assert config.select == ("QL4",)

    write(tmp_path / "app" / "pyproject.toml", '[tool.qlint]\nselect = ["QL3"]\n')
    assert load_config(start=deep / "model.py").select == ("QL3",)


def test_without_a_pyproject_the_defaults_apply_relative_to_the_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = load_config(start=tmp_path)
    assert config.source is None
    assert config.root == tmp_path
    assert config.enabled_codes(Path("any.py")) == ALL_CODES
    assert config.exclude == DEFAULT_EXCLUDE


def test_config_file_may_be_a_plain_toml_with_settings_at_top_level(tmp_path):
    settings = write(tmp_path / "ci" / "qlint.toml", 'ignore = ["QL4"]\nextend-exclude = ["legacy/"]\n')
    config = load_config(config_file=settings, start=tmp_path)
    assert config.source == settings
    assert config.root == settings.parent
    assert config.ignore == ("QL4",)
    assert config.extend_exclude == ("legacy",)


@pytest.mark.parametrize(
    ("table", "expected_in_message"),
    [
        ('extend_exclude = ["x"]', ["unknown key 'extend_exclude'", "did you mean 'extend-exclude'?"]),
        ('line-length = 88', ["unknown key 'line-length'", "known keys: select, extend-select, ignore"]),
        ('select = "QL3"', ["[tool.qlint] select", "expected a list of strings, found 'QL3'"]),
        ('exclude = [1]', ["[tool.qlint] exclude", "expected a list of strings, found [1]"]),
        ('select = ["QL999"]', ["[tool.qlint] select", "unknown rule code or prefix 'QL999'"]),
        ('ignore = ["ql301"]', ["[tool.qlint] ignore", "unknown rule code or prefix 'ql301'"]),
        ('per-file-ignores = ["x"]', ["per-file-ignores", "expected a table of glob = [codes]"]),
        ('per-file-ignores = { "tests/*" = ["QL77"] }', ["per-file-ignores 'tests/*'", "'QL77'"]),
        ('per-file-ignores = { "tests/*" = "QL3" }', ["per-file-ignores 'tests/*'", "list of strings"]),
        ('select = [', ["invalid TOML"]),
    ],
)
def test_mistakes_in_the_settings_are_errors_naming_file_and_key(tmp_path, table, expected_in_message):
    pyproject = write(tmp_path / "pyproject.toml", f"[tool.qlint]\n{table}\n")
    with pytest.raises(ConfigError) as error:
        load_config(config_file=pyproject)
    message = str(error.value)
    assert message.startswith(f"{pyproject}: "), message
    for expected in expected_in_message:
        assert expected in message, message


def test_config_file_errors(tmp_path):
    without_table = write(tmp_path / "pyproject.toml", '[tool.ruff]\nline-length = 88\n')
    with pytest.raises(ConfigError, match=r"pyproject.toml: no \[tool.qlint\] table"):
        load_config(config_file=without_table)
    with pytest.raises(ConfigError, match="missing.toml: config file not found"):
        load_config(config_file=tmp_path / "missing.toml")


def test_unknown_codes_on_the_command_line_are_errors_naming_the_option(tmp_path):
    with pytest.raises(ConfigError, match=r"^--select: unknown rule code or prefix 'QL9'"):
        load_config(start=tmp_path, select=["QL9"])
    with pytest.raises(ConfigError, match=r"^--ignore: unknown rule code or prefix 'X1'"):
        load_config(start=tmp_path, ignore=["X1"])


def test_prefixes_select_and_ignore_families_of_rules(tmp_path):
    file = tmp_path / "model.py"

    def enabled(select=("QL",), ignore=()):
        return Config(select=select, ignore=ignore, root=tmp_path).enabled_codes(file)

    assert enabled() == ALL_CODES
    assert enabled(select=("QL3",)) == codes_starting("QL3") | {"QL000"}
    assert enabled(ignore=("QL3",)) == ALL_CODES - codes_starting("QL3")
    # The more specific selector wins; ignore wins a tie (as in ruff).
    assert enabled(select=("QL301",), ignore=("QL3",)) == {"QL000", "QL301"}
    assert enabled(select=("QL3",), ignore=("QL301",)) == codes_starting("QL3") - {"QL301"} | {"QL000"}
    assert enabled(select=("QL3",), ignore=("QL3",)) == {"QL000"}
    # Parse errors are reported whatever is selected, unless ignored.
    assert enabled(select=("QL4",), ignore=("QL000",)) == codes_starting("QL4")
    assert enabled(ignore=("QL",)) == frozenset()


def test_per_file_ignores_match_globs_relative_to_the_root_and_basenames(tmp_path, monkeypatch):
    write(
        tmp_path / "pyproject.toml",
        '[tool.qlint]\nignore = ["QL402"]\n'
        '[tool.qlint.per-file-ignores]\n"tests/*" = ["QL3"]\n"__init__.py" = ["QL4", "QL000"]\n',
    )
    config = load_config(start=tmp_path)
    assert config.per_file_ignores == (("tests/*", ("QL3",)), ("__init__.py", ("QL4", "QL000")))

    base = ALL_CODES - {"QL402"}
    assert config.enabled_codes(tmp_path / "models" / "net.py") == base
    assert config.enabled_codes(tmp_path / "tests" / "unit" / "test_net.py") == base - codes_starting("QL3")
    assert config.enabled_codes(tmp_path / "models" / "__init__.py") == base - codes_starting("QL4", "QL000")

    (tmp_path / "models").mkdir()
    monkeypatch.chdir(tmp_path / "models")
    assert config.enabled_codes(Path("../tests/test_net.py")) == base - codes_starting("QL3")
    assert config.enabled_codes(Path("net.py")) == base


def test_command_line_options_override_the_file(tmp_path):
    write(
        tmp_path / "pyproject.toml",
        '[tool.qlint]\nselect = ["QL3"]\nignore = ["QL301"]\nexclude = ["a"]\nextend-exclude = ["b"]\n',
    )
    config = load_config(start=tmp_path, select=["QL4"], ignore=["QL402"], exclude=["c"], extend_exclude=["d"])
    assert (config.select, config.ignore) == (("QL4",), ("QL402",))
    assert (config.exclude, config.extend_exclude) == (("c",), ("b", "d"))

    untouched = load_config(start=tmp_path)
    assert (untouched.select, untouched.ignore, untouched.exclude) == (("QL3",), ("QL301",), ("a",))


def test_is_excluded_looks_at_the_path_and_its_parents_below_the_root(tmp_path):
    root = tmp_path / "build"  # the project's own directory may carry an excluded name
    config = Config(root=root, extend_exclude=("tests/fixtures", "*_pb2.py"))
    assert config.is_excluded(root / "dist" / "pkg" / "a.py")
    assert config.is_excluded(root / "pkg" / "__pycache__")
    assert config.is_excluded(root / "tests" / "fixtures" / "deep" / "a.py")
    assert config.is_excluded(root / "pkg" / "model_pb2.py")
    assert not config.is_excluded(root / "pkg" / "model.py")
    assert not config.is_excluded(root / "other" / "tests" / "fixtures" / "a.py")  # relative patterns anchor


def test_fingerprint_changes_exactly_with_the_settings(tmp_path):
    config = Config(root=tmp_path, ignore=("QL4",))
    assert config.fingerprint() == Config(root=tmp_path, ignore=("QL4",)).fingerprint()
    assert config.fingerprint() != Config(root=tmp_path, ignore=("QL3",)).fingerprint()
    assert config.fingerprint() != Config(root=tmp_path, ignore=("QL4",), per_file_ignores=(("t/*", ("QL3",)),)).fingerprint()


@pytest.mark.parametrize("content, expected", [
    ('tool = "qlint"\n', "`tool` must be a table (such as [tool.qlint]), found 'qlint'"),
    ("[tool]\nqlint = 1\n", "`tool.qlint` must be a table ([tool.qlint] with settings under it), found 1"),
    ('[project]\nname = "caf\xe9"\n', "invalid TOML: not UTF-8 (byte 0xe9 at offset 21); TOML files must be UTF-8"),
])
def test_a_broken_pyproject_up_the_parent_chain_is_a_clear_error(tmp_path, capsys, content, expected):
    from qlint.cli import main

    (tmp_path / "pyproject.toml").write_bytes(content.encode("latin-1"))
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "m.py").write_text("x = 1\n")
    with pytest.raises(ConfigError, match=re.escape(expected)):
        load_config(start=tmp_path / "src")
    assert main([str(tmp_path / "src" / "m.py")]) == 2
    err = capsys.readouterr().err
    assert err == f"qlint: error: {tmp_path / 'pyproject.toml'}: {expected}\n"
def test_extend_select_and_extend_ignore_add_to_the_file_and_the_command_line(tmp_path):
    write(tmp_path / "pyproject.toml",
          '[tool.qlint]\nselect = ["QL3"]\nextend-select = ["QL401"]\nextend-ignore = ["QL301"]\n')
    config = load_config(start=tmp_path)
    assert (config.extend_select, config.extend_ignore) == (("QL401",), ("QL301",))
    assert config.enabled_codes(tmp_path / "m.py") == codes_starting("QL3") - {"QL301"} | {"QL000", "QL401"}

    more = load_config(start=tmp_path, extend_select=["QL5"], extend_ignore=["QL302"])
    assert more.enabled_codes(tmp_path / "m.py") == (
        codes_starting("QL3", "QL5") - {"QL301", "QL302"} | {"QL000", "QL401", "QL506"})  # QL5 names opt-in QL506
    # --select starts over (the file's extend-select goes too); --ignore likewise.
    fresh = load_config(start=tmp_path, select=["QL4"], ignore=["QL402"])
    assert fresh.enabled_codes(tmp_path / "m.py") == codes_starting("QL4") - {"QL402"} | {"QL000"}
    assert fresh.fingerprint() != config.fingerprint()
    with pytest.raises(ConfigError, match=r"^--extend-select: unknown rule code or prefix 'QL99'"):
        load_config(start=tmp_path, extend_select=["QL99"])


def test_opt_in_rules_need_a_selector_more_specific_than_ql(tmp_path):
    opt_in = {code for code, rule in all_rules().items() if rule.opt_in}
    # QL506: fuse_model for models with no fuse method; QL608/QL609: script rules beyond issue 8's table
    assert opt_in == {"QL001", "QL506", "QL608", "QL609"}
    file = tmp_path / "m.py"
    assert not opt_in & Config(root=tmp_path).enabled_codes(file)
    assert "QL001" in Config(root=tmp_path, extend_select=("QL001",)).enabled_codes(file)
    assert "QL001" in Config(root=tmp_path, select=("QL0",)).enabled_codes(file)
    assert "QL001" not in Config(root=tmp_path, select=("QL0",), ignore=("QL001",)).enabled_codes(file)


def test_the_code_catalog_lists_the_registry():
    from qlint.registry import CATALOG, REGENERATE_CATALOG, catalog_json

    assert CATALOG.read_text() == catalog_json(), f"qlint/data/rules.json is out of date; run: {REGENERATE_CATALOG}"
