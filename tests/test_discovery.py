"""File discovery: recursion, the default skip list, virtualenvs, excludes, explicit files."""
from __future__ import annotations

from pathlib import Path

import pytest

from qlint.config import Config
from qlint.discovery import discover

TREE = [
    "setup.py",
    "pkg/__init__.py",
    "pkg/model.py",
    "pkg/sub/layers.py",
    "pkg/sub/generated_pb2.py",
    "pkg/__pycache__/model.cpython-311.py",
    "pkg/notes.txt",
    "pkg/stubs.pyi",
    "legacy/old.py",
    "tests/fixtures/broken.py",
    ".git/hooks/pre_commit.py",
    ".tox/py311/lib/x.py",
    ".venv/lib/site.py",
    "env/lib/python3.11/site-packages/torch_like.py",
    "build/lib/pkg/model.py",
    "dist/pkg.py",
    "torch_qlint.egg-info/x.py",
    "node_modules/x.py",
    "scripts/run_calibration",
]


@pytest.fixture
def project(tmp_path, monkeypatch):
    for name in TREE:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text("x = 1\n")
    (tmp_path / "env" / "pyvenv.cfg").write_text("home = /usr/bin\n")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def found(paths, config) -> list[str]:
    return [path.as_posix() for path in discover([Path(p) for p in paths], config)]


def test_directories_yield_py_files_minus_the_default_skips_and_virtualenvs(project):
    assert found(["."], Config(root=project)) == [
        "legacy/old.py",
        "pkg/__init__.py",
        "pkg/model.py",
        "pkg/sub/generated_pb2.py",
        "pkg/sub/layers.py",
        "setup.py",
        "tests/fixtures/broken.py",
    ]


def test_extend_exclude_adds_name_and_relative_patterns(project):
    config = Config(root=project, extend_exclude=("legacy", "tests/fixtures", "*_pb2.py"))
    assert found(["."], config) == ["pkg/__init__.py", "pkg/model.py", "pkg/sub/layers.py", "setup.py"]


def test_relative_patterns_anchor_at_the_root_not_at_the_walked_directory(project):
    config = Config(root=project, extend_exclude=("sub",))
    assert "pkg/sub/layers.py" not in found(["."], config)
    config = Config(root=project, extend_exclude=("pkg/sub",))
    assert found(["pkg"], config) == ["pkg/__init__.py", "pkg/model.py"]
    config = Config(root=project, extend_exclude=("sub/*",))  # nothing is at <root>/sub
    assert "pkg/sub/layers.py" in found(["pkg"], config)


def test_exclude_replaces_the_default_list_but_virtualenvs_stay_skipped(project):
    files = found(["."], Config(root=project, exclude=("legacy",)))
    assert "legacy/old.py" not in files
    assert {"build/lib/pkg/model.py", "dist/pkg.py", ".git/hooks/pre_commit.py"} <= set(files)
    assert not any(file.startswith("env/") for file in files)


def test_explicit_paths_are_linted_even_when_excluded_or_without_py_suffix(project):
    config = Config(root=project, extend_exclude=("legacy",))
    assert found(["legacy/old.py", "build/lib/pkg/model.py", "scripts/run_calibration"], config) == [
        "build/lib/pkg/model.py",
        "legacy/old.py",
        "scripts/run_calibration",
    ]
    # An explicitly named excluded directory is searched; excludes apply to its contents.
    assert found(["build"], config) == ["build/lib/pkg/model.py"]


def test_paths_keep_their_given_form_and_are_deduplicated(project):
    config = Config(root=project)
    assert found(["pkg/sub", "pkg/sub/layers.py", "./pkg/sub/layers.py", str(project / "pkg/sub/layers.py")], config) == [
        "pkg/sub/generated_pb2.py",
        "pkg/sub/layers.py",
    ]
    assert found([str(project / "pkg" / "sub")], config) == [
        (project / "pkg/sub/generated_pb2.py").as_posix(),
        (project / "pkg/sub/layers.py").as_posix(),
    ]


def test_a_missing_path_is_an_error_naming_it(project):
    with pytest.raises(FileNotFoundError, match="no_such_dir: no such file or directory"):
        discover([Path("pkg"), Path("no_such_dir")], Config(root=project))
