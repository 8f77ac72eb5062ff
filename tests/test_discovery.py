"""File discovery: recursion, the default skip list, virtualenvs, excludes, explicit files."""
from __future__ import annotations

import os
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


def test_symlink_loops_are_warnings_and_the_walk_goes_on(tmp_path, capsys):
    (tmp_path / "pkg" / "loop").mkdir(parents=True)
    (tmp_path / "pkg" / "a.py").write_text("x = 1\n")
    (tmp_path / "pkg" / "loop" / "self").symlink_to("../loop")  # a folder loop: os.walk does not follow it
    (tmp_path / "pkg" / "b.py").symlink_to("c.py")
    (tmp_path / "pkg" / "c.py").symlink_to("b.py")
    warnings: list[str] = []
    assert discover([tmp_path], Config(root=tmp_path), warnings.append) == [tmp_path / "pkg" / "a.py"]
    assert sorted(warnings) == [f"{tmp_path / 'pkg' / name}: skipped, cannot be resolved: a symlink loop"
                                for name in ("b.py", "c.py")]


def test_an_unreadable_folder_is_a_warning_and_the_walk_goes_on(tmp_path, monkeypatch):
    """Root ignores permissions, so the refusal is simulated where os.walk lists a folder."""
    (tmp_path / "open").mkdir()
    (tmp_path / "open" / "a.py").write_text("x = 1\n")
    (tmp_path / "locked").mkdir()
    (tmp_path / "locked" / "b.py").write_text("x = 1\n")
    real_scandir = os.scandir

    def scandir(path="."):
        if Path(path).name == "locked":
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    warnings: list[str] = []
    assert discover([tmp_path], Config(root=tmp_path), warnings.append) == [tmp_path / "open" / "a.py"]
    assert warnings == [f"{tmp_path / 'locked'}: skipped, cannot read the folder: Permission denied"]


def test_a_folder_where_pyvenv_cfg_cannot_be_checked_is_walked_by_os_walk_s_rules(tmp_path, monkeypatch):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.py").write_text("x = 1\n")
    real_is_file = Path.is_file

    def is_file(self):
        if self.name == "pyvenv.cfg":
            raise PermissionError(13, "Permission denied", str(self))
        return real_is_file(self)

    monkeypatch.setattr(Path, "is_file", is_file)
    assert discover([tmp_path], Config(root=tmp_path)) == [tmp_path / "sub" / "a.py"]


def test_the_cli_warns_about_what_it_cannot_walk_and_lints_the_rest(tmp_path, capsys):
    from qlint.cli import main

    (tmp_path / "a.py").write_text("x = 1\n")
    (tmp_path / "b.py").symlink_to("b.py")
    assert main([str(tmp_path)]) == 0
    out, err = capsys.readouterr()
    assert out == "All checks passed!\n"
    assert err == f"qlint: warning: {tmp_path / 'b.py'}: skipped, cannot be resolved: a symlink loop\n"


def test_a_path_with_a_name_too_long_is_an_error_not_a_crash(tmp_path, capsys, monkeypatch):
    from qlint.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["a" * 300 + ".py"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("qlint: error: ") and "File name too long" in err and "Traceback" not in err
