"""Tests of calib.search.storage: the storage argument, masked URLs, a journal with a torn last record."""

from __future__ import annotations

import pytest

from calib.errors import ConfigError
from calib.search import mask_url, open_study, storage_spec


def test_mask_url_hides_only_the_password():
    assert mask_url("postgresql://calib:s3cret@db.lab:5432/sweeps") == "postgresql://calib:***@db.lab:5432/sweeps"
    assert mask_url("sqlite:///runs/sweep.db") == "sqlite:///runs/sweep.db"
    assert mask_url("runs/sweep.journal") == "runs/sweep.journal"


def test_storage_spec(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert storage_spec(None) == str(tmp_path / "runs" / "sweep.journal")
    assert storage_spec(tmp_path / "a.journal") == str(tmp_path / "a.journal")
    assert storage_spec(" sqlite:///x.db ") == "sqlite:///x.db"
    with pytest.raises(ConfigError, match=r"^storage URL scheme in \{'sqlite', .*\} \(or a journal file path\) must hold, got storage='redis://u:\*\*\*@h/0'$"):
        storage_spec("redis://u:pw@h/0")
    with pytest.raises(ConfigError, match=r"^storage is a file path or a database URL must hold, got storage=''$"):
        storage_spec("")


def test_torn_journal_record_is_dropped_and_the_study_reads(tmp_path):
    spec = storage_spec(tmp_path / "s.journal")
    open_study(spec, "calib", create=True).set_user_attr("strategy", "random")
    with open(spec, "ab") as fh:
        fh.write(b'{"op_code": 5, "worker_id": "x", "study_id"')  # a process killed mid-write
    assert open_study(spec, "calib", create=True).user_attrs["strategy"] == "random"
    with open(spec, "rb") as fh:
        assert fh.read().endswith(b"\n")
    with pytest.raises(ConfigError, match=r"holds no study named 'other'"):
        open_study(spec, "other")


@pytest.mark.parametrize("text", [pytest.param(b"spot_id,o2_hPa\nS1,0.0\nS1,212.5", id="csv-without-final-newline"),
                                  pytest.param(b"spot_id,o2_hPa\nS1,0.0\n", id="csv"),
                                  pytest.param(b"\x89PNG\r\n\x1a\n\x00", id="binary")])
def test_a_file_that_is_no_journal_is_refused_and_left_untouched(tmp_path, text):
    """calib report data.csv / --storage data.csv: the torn-record repair cut the file's last
    row and Optuna's JSONDecodeError came out as a traceback; now one ConfigError, file untouched."""
    path = tmp_path / "data.csv"
    path.write_bytes(text)
    with pytest.raises(ConfigError, match=r"data.csv: not a sweep journal \(its first line is not an Optuna journal "
                                          r"record\); expected a journal file"):
        open_study(storage_spec(path), "calib", create=True)
    assert path.read_bytes() == text


def test_the_leaderboard_of_a_database_goes_beside_it_or_to_the_runs_folder(tmp_path, monkeypatch):
    """calib sweep --storage sqlite:///... wrote leaderboard.csv / .json into the working folder,
    replacing a user's own files there; now beside the database file (a server: runs/<data stem>)."""
    from calib.search import leaderboard_folder

    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("CALIB_RUNS_DIR", str(tmp_path / "runs"))
    assert leaderboard_folder(str(tmp_path / "s.journal")) == tmp_path
    assert leaderboard_folder("sqlite:///db/sweeps.db") == tmp_path / "db"
    assert leaderboard_folder(f"sqlite:///{tmp_path}/abs/sweeps.db") == tmp_path / "abs"
    assert leaderboard_folder("postgresql://u:pw@db.lab/sweeps", "/data/foil 7.csv") == tmp_path / "runs" / "foil-7"
    assert leaderboard_folder("sqlite://", None) == tmp_path / "runs" / "data"


def test_a_sqlite_storage_gets_its_folder_made_as_a_journal_does(tmp_path, monkeypatch):
    from calib.errors import CalibError

    monkeypatch.chdir(tmp_path)
    open_study(storage_spec("sqlite:///new/dir/sweeps.db"), "calib", create=True)
    assert (tmp_path / "new" / "dir" / "sweeps.db").is_file()
    (tmp_path / "afile").write_text("x")
    with pytest.raises(CalibError, match=r"^sqlite:///afile/sweeps\.db: cannot create folder afile \("):
        open_study(storage_spec("sqlite:///afile/sweeps.db"), "calib", create=True)
    assert (tmp_path / "afile").read_text() == "x"
