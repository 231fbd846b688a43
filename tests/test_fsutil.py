"""calib.fsutil: atomic writes and the one output path policy (the CLI side: tests/test_reliability.py)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from calib.errors import ConfigError
from calib.fsutil import artifact_folder_of, atomic_path, atomic_write, check_output_path


def test_no_overwrite_refuses_a_file_that_appears_while_writing(tmp_path):
    target = tmp_path / "out.csv"
    with pytest.raises(ConfigError, match=r"^output .*out\.csv already exists; use --force to overwrite$"):
        with atomic_path(target, overwrite=False) as tmp:
            tmp.write_text("new\n")
            target.write_text("someone else's\n")  # created after the check, before the rename
    assert target.read_text() == "someone else's\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.csv"]  # no temporary file left


def test_overwrite_only_when_asked(tmp_path):
    target = tmp_path / "out.txt"
    atomic_write(target, lambda p: p.write_text("one"), overwrite=False)
    atomic_write(target, lambda p: p.write_text("two"))
    assert target.read_text() == "two"


@pytest.mark.parametrize("make, match", [
    pytest.param(lambda p: p.mkdir(), "is a folder, not a regular file", id="folder"),
    pytest.param(lambda p: os.mkfifo(p), r"is a named pipe \(FIFO\), not a regular file", id="fifo"),
    pytest.param(lambda p: p.symlink_to("/dev/null"), r"is a symbolic link \(to /dev/null\)", id="link-to-device"),
    pytest.param(lambda p: p.write_text("x"), "already exists; use --force to overwrite", id="existing-file"),
])
def test_check_output_path_refusals(tmp_path, make, match):
    target = tmp_path / "out.csv"
    make(target)
    with pytest.raises(ConfigError, match=match):
        check_output_path(target, force=False)
    if "exists" not in match:
        with pytest.raises(ConfigError, match=match):
            check_output_path(target, force=True)
    else:
        assert check_output_path(target, force=True) == target


def test_artifact_folder_of(tmp_path):
    v = tmp_path / "models" / "foil" / "1.0.0"
    (v / "sub").mkdir(parents=True)
    assert artifact_folder_of(v / "sub") is None  # not an artifact yet
    (v / "SHA256SUMS").write_text("")
    assert artifact_folder_of(v / "sub") == v and artifact_folder_of(v) == v
    assert artifact_folder_of(v.parent / "1.1.0") == v.parent / "1.1.0"  # a version being written beside it
    assert artifact_folder_of(v.parent) is None and artifact_folder_of(tmp_path / "elsewhere") is None
    with pytest.raises(ConfigError, match=r"is inside the artifact folder .*1\.0\.0"):
        check_output_path(v / "sub" / "x.csv", force=True)
