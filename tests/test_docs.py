"""The committed docs match the code: docs/rules.md is the registry's, configuration.md
covers every option, setting key and output format."""
from __future__ import annotations

import re
from pathlib import Path

from qlint.cli import main
from qlint.config import DEFAULT_EXCLUDE
from qlint.output import FORMATS
from qlint.output.docs import REGENERATE, rule_markdown, rules_markdown
from qlint.registry import all_rules

DOCS = Path(__file__).resolve().parent.parent / "docs"


def test_rules_md_is_generated_from_the_registry():
    committed = (DOCS / "rules.md").read_text()
    assert committed == rules_markdown(), f"docs/rules.md is out of date with the rule registry; run: {REGENERATE}"


def test_rules_md_has_an_index_entry_and_a_section_per_rule():
    text = rules_markdown()
    for code, rule in all_rules().items():
        assert f"| [{code}](#{code.lower()}) |" in text and f'<a id="{code.lower()}"></a>' in text
        assert rule_markdown(rule) in text
        assert text.count(f"\n## {code} ") == 1


def test_rule_section_holds_everything_a_reader_needs():
    for rule in all_rules().values():
        section = rule_markdown(rule)
        for part in (rule.code, rule.name, rule.severity, rule.summary, rule.explanation.strip(),
                     rule.bad_example().strip(), rule.good_example().strip(), rule.fix.strip()):
            assert part in section, f"{rule.code}: {part!r} missing from its docs section"
        assert ("Fix: **" in section) == ("### Fix safety" in section) == bool(rule.fix_safety)
        if rule.fix_safety:
            assert rule.fix_safety_note.strip(), f"{rule.code}: its fix needs a fix_safety_note (why it is {rule.fix_safety})"
            assert f"**{rule.fix_safety}**" in section and rule.fix_safety_note.strip() in section


def test_configuration_md_documents_every_option_key_and_format(capsys):
    configuration = (DOCS / "configuration.md").read_text()
    main(["--help"])
    options = set(re.findall(r"^  (?:-\w \w+, )?(--[a-z][a-z-]+)", capsys.readouterr().out, re.M)) - {"--help"}
    assert options >= {"--select", "--statistics", "--jobs"}
    missing = sorted(option for option in options if f"`{option}" not in configuration)
    assert not missing, f"docs/configuration.md does not document {missing}"
    for key in ("select", "extend-select", "ignore", "extend-ignore", "exclude", "extend-exclude",
                "per-file-ignores", "max-file-bytes", "max-nesting", "file-timeout", "unsafe-fixes"):
        assert f"| `{key}` |" in configuration, f"docs/configuration.md: settings table lacks {key}"
    for pattern in DEFAULT_EXCLUDE:
        assert f"`{pattern}`" in configuration, f"docs/configuration.md: default exclude {pattern} not listed"
    for output_format in FORMATS:
        assert f"- `{output_format}`" in configuration, f"docs/configuration.md: no entry for {output_format}"


def test_runtime_reference_is_generated_from_the_code():
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location(
        "generate_runtime_reference", DOCS.parent / "tools" / "generate_runtime_reference.py")
    generator = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = generator
    spec.loader.exec_module(generator)
    committed = (DOCS / "runtime-reference.md").read_text()
    assert committed == generator.render(), (
        f"docs/runtime-reference.md is stale; run: {generator.REGENERATE_COMMAND}")
    import qlint.runtime
    for name in qlint.runtime.__all__:
        assert f"### `{name}`" in committed
    for fixture in ("qparity", "quant_engine"):
        assert f"### `{fixture}`" in committed


def test_the_qat_example_runs_and_passes(pytester):
    """docs/examples/test_qat_example.py is complete: it runs as it is, with the plugin."""
    import pytest

    pytest.importorskip("torch")
    source = (DOCS / "examples" / "test_qat_example.py").read_text()
    pytester.makepyfile(test_qat_example=source)
    result = pytester.runpytest_subprocess("--quant-engines=x86", "-p", "no:cacheprovider", "-W",
                                           "error::DeprecationWarning:test_qat_example")
    result.assert_outcomes(passed=5)


def test_the_qat_example_is_clean_for_qlint():
    from qlint.config import load_config
    from qlint.engine import lint_paths

    assert lint_paths([DOCS / "examples" / "test_qat_example.py"], load_config(start=DOCS), jobs=1) == []


def test_links_point_at_the_repository_pyproject_declares():
    import tomllib

    from qlint import REPOSITORY_URL

    root = Path(__file__).resolve().parents[1]
    urls = tomllib.loads((root / "pyproject.toml").read_text())["project"]["urls"]
    assert urls["Repository"] == REPOSITORY_URL
    assert REPOSITORY_URL in (root / "README.md").read_text()
