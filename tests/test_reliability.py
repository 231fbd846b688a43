"""Reliability of calib: malformed readings, faults (SIGKILL, read-only, full disk), security.

- ``calib predict`` against the corpus in ``tests/malformed_predict/``: every bad file gives
  exit 1 and exactly one ``Error: ...`` line naming the file, the row and the column, and
  nothing is written; valid variants (other column order, extra columns) give the reference
  predictions and leave the other cells byte for byte.
- Faults: SIGKILL during export and during predict; read-only folders and full disks (by
  monkeypatching OS calls, and on a real tiny tmpfs when the tests run as root).
- Security: calib's source never unpickles.

Not repeated here: temperature in K (tests/test_runtime.py), ``-o`` equal to the input
(tests/test_predict.py), tampered artifacts (tests/test_artifact.py; the CLI's one line:
tests/test_cli.py), SIGKILL during a sweep (tests/test_search_sweep.py) and the determinism of the main
job with a fixed seed (tests/test_pipeline.py::test_calibrate_predict_and_determinism).
"""

from __future__ import annotations

import ast
import errno
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from calib.cli import cli

REPO = Path(__file__).resolve().parents[1]
CORPUS = Path(__file__).resolve().parent / "malformed_predict"
FEATURES = ["phase_1000hz_deg", "phase_2000hz_deg", "phase_5000hz_deg", "phase_10000hz_deg", "temperature_degC"]
ADDED = ["o2_hPa_pred", "o2_hPa_std", "o2_hPa_lo", "o2_hPa_hi", "out_of_range", "out_of_range_reason",
         "domain_distance"]

@pytest.fixture(scope="module")
def art(tiny_run):
    """The session's tiny artifact made by ``calib calibrate`` (conftest ``tiny_run``)."""
    assert [f["name"] for f in json.loads((tiny_run["path"] / "calibration.json").read_text())["features"]] \
        == FEATURES
    return tiny_run


def _predict(art_path: Path, src: Path, out: Path, *extra: str):
    return CliRunner().invoke(cli, ["predict", str(art_path), str(src), "-o", str(out), *extra])


def _one_error_line(res) -> str:
    """The CLI's output must be exactly one line ``Error: ...``; returns the message after it."""
    assert res.exit_code == 1, res.output
    lines = res.output.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), res.output
    return lines[0][len("Error: "):]


def _tree(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


@pytest.fixture(scope="module")
def reference(art, tmp_path_factory):
    """Predictions of tests/malformed_predict/reference.csv: the lines of the output file."""
    out = tmp_path_factory.mktemp("ref") / "reference_out.csv"
    res = _predict(art["path"], CORPUS / "reference.csv", out)
    assert res.exit_code == 0, res.output
    return out.read_text().splitlines()


def _added_cells(line: str) -> list[str]:
    return line.split(",")[-len(ADDED):]


# =========================================================================== malformed corpus
BAD_FILES = [
    pytest.param("missing_feature.csv",
                 r"missing_feature\.csv row 1: missing column 'phase_2000hz_deg' \(feature in deg\) "
                 r"\(columns present: .*\)", id="missing-feature"),
    pytest.param("phase_in_mV.csv",
                 r"phase_in_mV\.csv row 1, column phase_5000hz_mV: mV cannot be converted to deg; "
                 r"expected feature phase_5000hz_deg in deg .*", id="unit-not-convertible"),
    pytest.param("text_in_number.csv",
                 r"text_in_number\.csv row 4, column phase_5000hz_deg: 'n/a' is not a number", id="text-in-number"),
    pytest.param("empty_cell.csv",
                 r"empty_cell\.csv row 3, column temperature_degC: empty cell; expected a number", id="empty-cell"),
    pytest.param("nan_cell.csv",
                 r"nan_cell\.csv row 5, column phase_10000hz_deg: 'NaN' is not a finite number; expected a "
                 r"measured value", id="nan"),
    pytest.param("inf_cell.csv",
                 r"inf_cell\.csv row 3, column phase_2000hz_deg: 'inf' is not a finite number; expected a "
                 r"measured value", id="inf"),
    pytest.param("phase_above_90.csv",
                 r"phase_above_90\.csv row 2, column phase_10000hz_deg: 90\.5 deg is impossible; expected a "
                 r"phase within 0\.\.90 deg", id="phase-above-90"),
    pytest.param("temperature_kelvin_given_in_degC.csv",
                 r"temperature_kelvin_given_in_degC\.csv row 3, column temperature_K: 24\.999 K "
                 r"\(= -248\.151 degC\) is impossible; expected a temperature within -5\.\.100 degC",
                 id="kelvin-column-holding-degC"),
    pytest.param("duplicate_header.csv",
                 r"duplicate_header\.csv row 1, column phase_5000hz_deg: duplicate column name .*",
                 id="duplicate-header"),
    pytest.param("too_many_fields.csv",
                 r"too_many_fields\.csv row 3: 7 fields, expected 6 .*", id="too-many-fields"),
    pytest.param("too_few_fields.csv",  # the passthrough column missing: pandas padded it with an empty cell
                 r"too_few_fields\.csv row 3: 6 fields, expected 7 \(separator ','\)", id="too-few-fields"),
    pytest.param("header_only.csv", r"header_only\.csv: no data rows; .*", id="header-only"),
    pytest.param("unclosed_quote.csv",  # pandas said only "EOF inside string starting at row 2"
                 r'unclosed_quote\.csv row 3, column phase_2000hz_deg: a quoted cell is never closed; expected a '
                 r'closing " before the end of the file', id="unclosed-quote"),
]


@pytest.mark.parametrize("name, message", BAD_FILES)
def test_bad_readings_file_gives_one_error_line_and_writes_nothing(art, tmp_path, name, message):
    src = CORPUS / name
    before = src.read_bytes()
    corpus_before = _tree(CORPUS)
    out = tmp_path / "out" / "pred.csv"
    out.parent.mkdir()
    msg = _one_error_line(_predict(art["path"], src, out))
    assert re.fullmatch(message, msg), msg
    assert list(out.parent.iterdir()) == []  # no output, no temporary file
    assert src.read_bytes() == before and _tree(CORPUS) == corpus_before


@pytest.mark.parametrize("name", [
    pytest.param("column_order.csv", id="other-column-order"),
    pytest.param("extra_columns.csv", id="extra-columns"),
])
def test_columns_are_matched_by_name(art, reference, tmp_path, name):
    out = tmp_path / "out.csv"
    res = _predict(art["path"], CORPUS / name, out)
    assert res.exit_code == 0, res.output
    got = out.read_text().splitlines()
    # the same float32 readings -> the very same predictions, to the last digit
    assert [_added_cells(g) for g in got] == [_added_cells(r) for r in reference]


def test_extra_columns_pass_through_byte_for_byte(art, tmp_path):
    src = CORPUS / "extra_columns.csv"
    out = tmp_path / "out.csv"
    assert _predict(art["path"], src, out).exit_code == 0
    original = src.read_bytes().split(b"\n")
    written = out.read_bytes().split(b"\n")
    assert len(written) == len(original)
    for orig, got in zip(original[:-1], written[:-1]):
        assert got.startswith(orig + b",")  # every original cell, untouched (' 007 ', 1e5, Grüße, empty)
        assert got[len(orig) + 1:].count(b",") == len(ADDED) - 1
    assert original[-1] == written[-1] == b""
    assert written[0].endswith(b"," + ",".join(ADDED).encode())


def _big_file(path: Path, n_rows: int, bad_last: bool) -> Path:
    """``n_rows`` readings cycling through reference.csv's 5 rows; optionally a bad last cell."""
    header, *rows = (CORPUS / "reference.csv").read_text().splitlines()
    body = [rows[i % len(rows)] for i in range(n_rows)]
    if bad_last:
        body[-1] = body[-1].rsplit(",", 1)[0] + ",20.1.5"
    path.write_text(header + "\n" + "\n".join(body) + "\n")
    return path


def test_bad_cell_at_the_end_of_100k_rows(art, tmp_path):
    src = _big_file(tmp_path / "big.csv", 100_000, bad_last=True)
    out = tmp_path / "out" / "pred.csv"
    out.parent.mkdir()
    msg = _one_error_line(_predict(art["path"], src, out))
    assert msg == "big.csv row 100001, column temperature_degC: '20.1.5' is not a number"
    assert list(out.parent.iterdir()) == []


# =========================================================================== SIGKILL during export
EXPORT_CHILD = r"""
import sys
from calib.artifact.export import export_artifact
from calib.nn import ModelConfig, build_model
from calib.scaling import Scaler
models_dir, name = sys.argv[1], sys.argv[2]
cfg = ModelConfig(hidden_layers=(8,), seed=0)
xs, ys = Scaler("standard", (30.0, 20.0), (10.0, 10.0)), Scaler("standard", (150.0,), (100.0,))
models = [build_model(cfg.replace(seed=i), 2, 1, xs, ys) for i in range(3)]
meta = {"features": [{"name": "phase_5000hz_deg", "unit": "deg", "min": 30.0, "max": 65.0},
                     {"name": "temperature_degC", "unit": "degC", "min": 5.0, "max": 35.0}],
        "target": {"name": "o2_hPa", "unit": "hPa", "min": 0.0, "max": 300.0},
        "hyperparameters": cfg.to_dict(), "data": {"file": "x.csv", "sha256": "0" * 64, "rows": 10}}
print("ready", flush=True)
while True:
    a = export_artifact(models_dir, name, model=models[0], fold_models=models[1:], metadata=meta,
                        extra_files={"notes.txt": "x" * 200000})
    print("exported", a.version, flush=True)
"""


def _export_children_killed(models: Path, name: str, delays: list[float]) -> list[str]:
    """Start one exporting process per delay (concurrently, same name); SIGKILL each ``delay`` s
    after it is ready. Returns the versions the children reported as exported."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3"}
    procs = [subprocess.Popen([sys.executable, "-c", EXPORT_CHILD, str(models), name], cwd=REPO, env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True) for _ in delays]
    reported: list[str] = []
    first: list[str] = []

    def kill_later(proc: subprocess.Popen, delay: float) -> None:
        first.append(proc.stdout.readline().strip())
        time.sleep(delay)
        os.kill(proc.pid, signal.SIGKILL)

    threads = [threading.Thread(target=kill_later, args=(p, d)) for p, d in zip(procs, delays)]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=180)
        for p in procs:
            p.wait(timeout=60)
            reported += [ln.split()[1] for ln in p.stdout.read().splitlines() if ln.startswith("exported")]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.stdout.close()
    assert first == ["ready"] * len(delays), first
    assert all(p.returncode == -signal.SIGKILL for p in procs)
    return reported


@pytest.mark.slow
def test_sigkill_during_export_leaves_only_complete_versions(tmp_path):
    from calib.artifact import export as E
    from calib.artifact import store as S
    from calib.runtime import load_model

    models, name = tmp_path / "models", "foil"
    rng = random.Random(7)
    delays = [rng.uniform(0.3, 2.5) for _ in range(3)]
    reported = _export_children_killed(models, name, delays)

    name_dir = models / name
    entries = sorted(p.name for p in name_dir.iterdir())
    tmps = [e for e in entries if e.startswith(S.TMP_PREFIX)]
    versions = [e for e in entries if not e.startswith(S.TMP_PREFIX)]
    assert all(re.fullmatch(r"\d+\.\d+\.\d+", v) and (name_dir / v).is_dir() for v in versions), entries
    assert tmps, f"no kill landed inside an export (delays {delays}, exported {reported})"
    assert set(reported) <= set(versions)
    assert S.list_versions(name_dir) == sorted(versions, key=lambda v: tuple(map(int, v.split("."))))
    assert S.list_artifacts(models) == ({name: S.list_versions(name_dir)} if versions else {})
    for v in versions:  # every version folder is complete: SHA256SUMS lists and matches every file
        assert S.verify_artifact(name_dir / v)["ok"]
        m = load_model(name_dir / v)
        assert m.version == v and np.isfinite(m.predict([[45.0, 20.0]])).all()
    if versions:
        assert load_model(name_dir).version == S.list_versions(name_dir)[-1]

    # the crashed exports' .tmp-* folders are ignored above and removed by the next export once stale
    past = time.time() - 2 * S.STALE_TMP_SECONDS
    for t in tmps:
        os.utime(name_dir / t, (past, past))
    from calib.nn import ModelConfig, build_model
    from calib.scaling import Scaler

    cfg = ModelConfig(hidden_layers=(8,))
    model = build_model(cfg, 2, 1, Scaler("standard", (30.0, 20.0), (10.0, 10.0)), Scaler("standard", (150.0,), (100.0,)))
    meta = json.loads(json.dumps({"features": [{"name": "phase_5000hz_deg", "unit": "deg", "min": 30.0, "max": 65.0},
                                               {"name": "temperature_degC", "unit": "degC", "min": 5.0, "max": 35.0}],
                                  "target": {"name": "o2_hPa", "unit": "hPa", "min": 0.0, "max": 300.0},
                                  "hyperparameters": cfg.to_dict(),
                                  "data": {"file": "x.csv", "sha256": "0" * 64, "rows": 10}}))
    a = E.export_artifact(models, name, model=model, metadata=meta, report=None)
    assert not [p for p in name_dir.iterdir() if p.name.startswith(S.TMP_PREFIX)]
    assert S.list_versions(name_dir)[-1] == a.version and S.verify_artifact(a.path)["ok"]


# =========================================================================== SIGKILL during predict
def _hidden_tmps(folder: Path, target: str) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.name.startswith(f".{target}.") and p.name.endswith(".tmp"))


def _predict_killed(art_path: Path, src: Path, out: Path, delay: float | None) -> tuple[bool, float]:
    """Run ``calib predict`` in a process; SIGKILL it ``delay`` s after its temporary output file
    appears (None: let it finish). Returns (killed, seconds until the temporary file appeared)."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    t0 = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "calib.cli", "-q", "predict", str(art_path), str(src),
                             "-o", str(out)], cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    before = set(_hidden_tmps(out.parent, out.name))
    seen = None
    try:
        while proc.poll() is None and time.monotonic() - t0 < 120:
            if seen is None and set(_hidden_tmps(out.parent, out.name)) - before:
                seen = time.monotonic()
            if seen is not None and delay is not None and time.monotonic() - seen >= delay:
                os.kill(proc.pid, signal.SIGKILL)
                break
            time.sleep(0.001)
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        err = proc.stderr.read().decode()
        proc.stderr.close()
    if delay is None:
        assert proc.returncode == 0, err
    return proc.returncode == -signal.SIGKILL, (seen or t0) - t0


@pytest.mark.slow
def test_sigkill_during_predict_leaves_no_partial_output(art, reference, tmp_path):
    import pandas as pd

    from calib.fsutil import STALE_TMP_SECONDS

    n = 1_000_000
    src = _big_file(tmp_path / "million.csv", n, bad_last=False)
    folder = tmp_path / "out"
    folder.mkdir()
    out = folder / "pred.csv"
    rng = random.Random(3)
    finished = []
    for k, delay in enumerate((0.0, rng.uniform(0.05, 1.0))):  # as the temporary file appears, then mid-write
        killed, _ = _predict_killed(art["path"], src, out, delay)
        assert killed
        # what remains is a hidden temporary file beside the target, or the output (renamed
        # atomically at the very end, compared with an uninterrupted run below), nothing else
        side = folder / f"{out.name}.json"  # the provenance sidecar, written after the CSV
        assert {p.name for p in folder.iterdir()} <= {out.name, side.name,
                                                      *(p.name for p in _hidden_tmps(folder, out.name))}
        if out.exists():
            finished.append(out.rename(tmp_path / f"finished{k}.csv"))
        side.unlink(missing_ok=True)
    leftovers = _hidden_tmps(folder, out.name)
    assert leftovers, "no kill landed between the temporary file and the rename"
    # the next predict to the same target removes stale leftovers (> 1 h), keeps a fresh one
    # (it could belong to a concurrent run) and writes the complete output
    past = time.time() - 2 * STALE_TMP_SECONDS
    for p in leftovers:
        os.utime(p, (past, past))
    fresh = folder / f".{out.name}.abcd1234.csv.tmp"
    fresh.write_bytes(b"partial")
    killed, _ = _predict_killed(art["path"], src, out, None)
    assert not killed
    assert sorted(p.name for p in folder.iterdir()) == sorted([fresh.name, out.name, f"{out.name}.json"])
    data = out.read_bytes()
    assert all(f.read_bytes() == data for f in finished)
    # complete and correct: every input line kept, the predictions of reference.csv's rows
    lines_in, lines_out = src.read_bytes().split(b"\n"), data.split(b"\n")
    assert len(lines_out) == len(lines_in) == n + 2
    assert all(o.startswith(i + b",") for i, o in zip(lines_in[:-1], lines_out[:-1]))
    got = pd.read_csv(out, usecols=ADDED)
    ref = pd.DataFrame([r.split(",")[-len(ADDED):] for r in reference[1:]], columns=ADDED)
    for c in ADDED[:2]:
        np.testing.assert_allclose(got[c].to_numpy(), np.tile(ref[c].astype(float).to_numpy(), n // 5), rtol=1e-5)
    assert not got["out_of_range"].any()


# =========================================================================== read-only folder, full disk
def _raise(err: int, path: str):
    raise OSError(err, os.strerror(err), path)


def _inside(path: object, folder: Path) -> bool:
    return str(path).startswith(str(folder))


@pytest.mark.parametrize("fault, fmt, message", [
    pytest.param("mkstemp-erofs", "csv", r"{out}: cannot write in {folder} \(Read-only file system\)", id="read-only"),
    pytest.param("mkstemp-enospc", "csv", r"{out}: cannot write in {folder} \(No space left on device\)",
                 id="full-before-writing"),
    pytest.param("write-enospc", "csv", r"{out}: write failed \(No space left on device\)", id="full-while-writing"),
    pytest.param("write-enospc", "parquet", r"{out}: write failed \(No space left on device\)",
                 id="full-while-writing-parquet"),
    pytest.param("replace-erofs", "csv", r"{out}: write failed \(Read-only file system\)", id="rename-refused"),
])
def test_predict_write_errors_are_one_line(art, tmp_path, monkeypatch, fault, fmt, message):
    import pyarrow.parquet as pq

    folder = tmp_path / "out"
    folder.mkdir()
    out = folder / f"pred.{fmt}"
    mkstemp, write_bytes, replace, write_table = tempfile.mkstemp, Path.write_bytes, os.replace, pq.write_table
    if fault.startswith("mkstemp"):
        err = errno.EROFS if fault.endswith("erofs") else errno.ENOSPC
        monkeypatch.setattr(tempfile, "mkstemp", lambda *a, **k: _raise(err, str(folder)) if _inside(
            k.get("dir"), folder) else mkstemp(*a, **k))
    elif fault == "write-enospc":
        monkeypatch.setattr(Path, "write_bytes", lambda self, data: _raise(errno.ENOSPC, str(self)) if _inside(
            self, folder) else write_bytes(self, data))
        monkeypatch.setattr(pq, "write_table", lambda t, where, **k: _raise(errno.ENOSPC, str(where)) if _inside(
            where, folder) else write_table(t, where, **k))
    else:  # a new file is placed with os.link (never replaces), an existing one with os.replace
        link = os.link
        monkeypatch.setattr(os, "replace", lambda a, b: _raise(errno.EROFS, str(b)) if _inside(b, folder) else replace(a, b))
        monkeypatch.setattr(os, "link", lambda a, b: _raise(errno.EROFS, str(b)) if _inside(b, folder) else link(a, b))
    msg = _one_error_line(_predict(art["path"], CORPUS / "reference.csv", out))
    assert re.fullmatch(message.format(out=re.escape(str(out)), folder=re.escape(str(folder))), msg), msg
    assert list(folder.iterdir()) == []


def _tiny_export_inputs():
    from calib.nn import ModelConfig, build_model
    from calib.scaling import Scaler

    cfg = ModelConfig(hidden_layers=(4,))
    model = build_model(cfg, 2, 1, Scaler("standard", (30.0, 20.0), (10.0, 10.0)), Scaler("standard", (150.0,), (100.0,)))
    meta = {"features": [{"name": "phase_5000hz_deg", "unit": "deg", "min": 30.0, "max": 65.0},
                         {"name": "temperature_degC", "unit": "degC", "min": 5.0, "max": 35.0}],
            "target": {"name": "o2_hPa", "unit": "hPa", "min": 0.0, "max": 300.0},
            "hyperparameters": cfg.to_dict(), "data": {"file": "x.csv", "sha256": "0" * 64, "rows": 10}}
    return model, meta


@pytest.mark.parametrize("fault, message", [
    pytest.param("mkdir-erofs", "the folder is read-only or not writable", id="read-only-models-dir"),
    pytest.param("write-enospc", "no space left on the device", id="disk-full-mid-export"),
    pytest.param("rename-enospc", "no space left on the device", id="disk-full-at-rename"),
])
def test_export_write_errors_are_one_artifact_error(tmp_path, monkeypatch, fault, message):
    from calib.artifact import export as E
    from calib.artifact import store as S
    from calib.errors import ArtifactError, CalibError

    model, meta = _tiny_export_inputs()
    models = tmp_path / "models"
    models.mkdir()
    mkdir, write_bytes, rename = Path.mkdir, Path.write_bytes, os.rename
    if fault == "mkdir-erofs":
        monkeypatch.setattr(Path, "mkdir", lambda self, *a, **k: _raise(errno.EROFS, str(self)) if _inside(
            self, models) else mkdir(self, *a, **k))
    elif fault == "write-enospc":
        monkeypatch.setattr(Path, "write_bytes", lambda self, data: _raise(errno.ENOSPC, str(self)) if _inside(
            self, models) else write_bytes(self, data))
    else:
        monkeypatch.setattr(os, "rename", lambda a, b: _raise(errno.ENOSPC, str(b)) if _inside(b, models) else rename(a, b))
    with pytest.raises(ArtifactError) as info:
        E.export_artifact(models, "foil", model=model, metadata=meta)
    assert isinstance(info.value, CalibError)
    text = str(info.value)
    assert "\n" not in text and text.startswith(f"cannot write artifact 'foil' in {models}") and message in text
    monkeypatch.undo()
    assert S.list_artifacts(models) == {}
    assert [p for p in models.rglob("*") if p.is_file()] == []  # the temporary folder is gone too


def _mount_tmpfs(where: Path, size: str) -> bool:
    if not (hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("mount")):
        return False
    where.mkdir()
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)],
                          capture_output=True).returncode == 0


def test_real_full_and_read_only_filesystem(art, tmp_path):
    """On a real 32 KiB tmpfs (root only; skipped elsewhere: the monkeypatched tests above run everywhere)."""
    from calib.artifact import export as E
    from calib.errors import ArtifactError

    fs = tmp_path / "fs"
    if not _mount_tmpfs(fs, "32k"):
        pytest.skip("mounting a tmpfs needs root and mount(8); the monkeypatched tests cover the logic")
    try:
        src = _big_file(tmp_path / "2k.csv", 2000, bad_last=False)  # its output is > 32 KiB
        out = fs / "pred.csv"
        assert _one_error_line(_predict(art["path"], src, out)) == f"{out}: write failed (No space left on device)"
        model, meta = _tiny_export_inputs()
        with pytest.raises(ArtifactError, match=f"cannot write artifact 'foil' in {fs}.*: no space left on the device"):
            E.export_artifact(fs / "models", "foil", model=model, metadata=meta)
        assert _tree(fs) == ["models", "models/foil"]  # no output, no temporary file or folder

        subprocess.run(["mount", "-o", "remount,ro", str(fs)], check=True)
        assert _one_error_line(_predict(art["path"], src, out)) == \
            f"{out}: cannot write in {fs} (Read-only file system)"
        with pytest.raises(ArtifactError, match="the folder is read-only or not writable"):
            E.export_artifact(fs / "other-models", "foil", model=model, metadata=meta)
        assert _tree(fs) == ["models", "models/foil"]
    finally:
        if subprocess.run(["umount", str(fs)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(fs)], capture_output=True)


# =========================================================================== security
# --------------------------------------------------------------------------- source scan
_UNPICKLING_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "joblib", "marshal", "shelve", "torch"}
_UNPICKLING_FUNCS = {"load", "loads", "Unpickler", "open"}


def _dotted(node: ast.AST) -> str | None:
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if isinstance(node, ast.Name):
        parts.append(node.id)
        return ".".join(reversed(parts))
    return None


def _kw(call: ast.Call, name: str) -> ast.AST | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def unsafe_loads(source: str, filename: str = "<string>") -> list[str]:
    """Calls in ``source`` that could unpickle or run code from a file: pickle/joblib/dill/marshal
    loads, ``pandas.read_pickle``, ``numpy.load`` without ``allow_pickle`` constant False-or-absent,
    Keras ``load_model`` without ``safe_mode=True``, ``enable_unsafe_deserialization``."""
    tree = ast.parse(source, filename)
    aliases: dict[str, str] = {}  # local name -> full dotted origin
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for a in node.names:
                aliases[a.asname or a.name.split(".")[0]] = a.name if a.asname else a.name.split(".")[0]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for a in node.names:
                aliases[a.asname or a.name] = f"{node.module}.{a.name}"
    found = []
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        name = _dotted(node.func)
        if name is None:
            continue
        head, _, rest = name.partition(".")
        full = aliases.get(head, head) + ("." + rest if rest else "")
        root, leaf = full.split(".")[0], full.rsplit(".", 1)[-1]
        where = f"{filename}:{node.lineno}: {full}"
        if root in _UNPICKLING_MODULES and leaf in _UNPICKLING_FUNCS:
            found.append(where)
        elif leaf == "read_pickle":
            found.append(where)
        elif root in ("numpy", "np") and leaf == "load":
            ap = _kw(node, "allow_pickle")
            if ap is not None and not (isinstance(ap, ast.Constant) and ap.value is False):
                found.append(where + " (allow_pickle)")
        elif root in ("keras", "tensorflow", "tf") and leaf in ("load_model", "load"):
            sm = _kw(node, "safe_mode")
            if not (isinstance(sm, ast.Constant) and sm.value is True):
                found.append(where + " (without safe_mode=True)")
        elif leaf == "enable_unsafe_deserialization":
            found.append(where)
    return found


def test_source_scanner_finds_every_unsafe_form():
    bad = """
import pickle, joblib, dill
import numpy as np
import keras
import tensorflow as tf
from pickle import loads as pl
from keras.models import load_model
import pandas as pd
pickle.load(f); pickle.loads(b); pl(b); joblib.load(p); dill.loads(b); pickle.Unpickler(f).load()
np.load(p, allow_pickle=True); np.load(p, allow_pickle=flag)
keras.models.load_model(p); keras.saving.load_model(p, safe_mode=False); load_model(p)
tf.keras.models.load_model(p); pd.read_pickle(p); keras.config.enable_unsafe_deserialization()
"""
    found = unsafe_loads(bad)
    assert len(found) == 14, found
    good = """
import numpy as np
import keras
from calib.runtime import load_model
np.load(p); np.load(p, allow_pickle=False)
keras.models.load_model(p, safe_mode=True, compile=False)
load_model("models/foil")
"""
    assert unsafe_loads(good) == []


def test_calib_source_never_unpickles_or_loads_unsafe_keras():
    files = sorted((REPO / "calib").rglob("*.py"))
    assert len(files) > 10
    found = [hit for f in files for hit in unsafe_loads(f.read_text(), str(f.relative_to(REPO)))]
    assert found == []


# =========================================================================== hostile files, careless commands
# On the session's tiny hand-set artifact (conftest ``linear_artifact``: O2 = -10 phase - T + 600 hPa).
LIN_HEADER = "phase_5000hz_deg,temperature_degC"
LIN_ROWS = "40,20\n45,25\n"
LIN_PRED = ["180", "125"]


def _lin(tmp_path: Path, text: str = LIN_HEADER + "\n" + LIN_ROWS, name: str = "r.csv") -> Path:
    p = tmp_path / name
    p.write_bytes(text.encode() if isinstance(text, str) else text)
    return p


def _preds(out: Path) -> list[str]:
    from calib.ingest import read_table

    return list(read_table(out).frame["o2_hPa_pred"])


def _refused(res, folder: Path, before: list[str], match: str) -> None:
    """Exit 1, one ``Error:`` line matching ``match``, and ``folder`` exactly as before."""
    msg = _one_error_line(res)
    assert re.search(match, msg), msg
    assert _tree(folder) == before


@pytest.mark.parametrize("kind", [
    pytest.param("fifo", id="named-pipe"),
    pytest.param("symlink-dev-null", id="symlink-to-dev-null"),
    pytest.param("symlink-file", id="symlink-to-a-file"),
    pytest.param("folder", id="folder"),
    pytest.param("socket", id="socket"),
    pytest.param("device", id="device-node"),
])
def test_output_that_is_not_a_regular_file_is_refused(linear_artifact, tmp_path, kind):
    import socket

    src = _lin(tmp_path)
    out = tmp_path / "out.csv"
    if kind == "fifo":
        os.mkfifo(out)
    elif kind == "symlink-dev-null":
        out.symlink_to("/dev/null")
    elif kind == "symlink-file":
        (tmp_path / "real.csv").write_text("keep\n")
        out.symlink_to(tmp_path / "real.csv")
    elif kind == "folder":
        out.mkdir()
    elif kind == "socket":
        out = Path(tempfile.mkdtemp()) / "s.csv"  # AF_UNIX paths are short
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(str(out))
    else:
        try:
            os.mknod(out, 0o600 | __import__("stat").S_IFCHR, os.makedev(1, 3))  # /dev/null's numbers
        except (PermissionError, OSError):
            pytest.skip("creating a device node needs root (symlink-to-dev-null covers the rest)")
    before = _tree(out.parent)
    for extra in ([], ["--force"]):  # --force never writes through a link, a device or a pipe
        res = _predict(linear_artifact.path, src, out, *extra)
        _refused(res, out.parent, before, r"(is a symbolic link|is a named pipe|is a socket|is a character device"
                                          r"|must be a file path)")
    if kind == "symlink-file":
        assert (tmp_path / "real.csv").read_text() == "keep\n"


def test_existing_output_needs_force(linear_artifact, tmp_path):
    src, out = _lin(tmp_path), tmp_path / "out.csv"
    out.write_text("precious\n")
    before = _tree(tmp_path)
    _refused(_predict(linear_artifact.path, src, out), tmp_path, before,
             rf"^output {re.escape(str(out))} already exists; use --force to overwrite$")
    assert out.read_text() == "precious\n"
    assert _predict(linear_artifact.path, src, out, "--force").exit_code == 0
    assert _preds(out) == LIN_PRED


@pytest.mark.parametrize("where", [
    pytest.param("version-folder", id="in-version-folder"),
    pytest.param("subfolder", id="below-version-folder"),
    pytest.param("new-version", id="in-a-version-folder-being-written"),
])
def test_output_inside_an_artifact_is_refused(linear_artifact, tmp_path, where):
    from conftest import copy_artifact

    vdir = copy_artifact(linear_artifact, tmp_path)
    src = _lin(tmp_path)
    target = {"version-folder": vdir / "pred.csv", "subfolder": vdir / "extra" / "pred.csv",
              "new-version": vdir.parent / "9.9.9" / "pred.csv"}[where]
    target.parent.mkdir(exist_ok=True)
    before = _tree(tmp_path / "models")
    _refused(_predict(vdir, src, target, "--force"), tmp_path / "models", before,
             r"is inside the artifact folder .*; choose a path outside it$")


@pytest.mark.parametrize("command", [
    pytest.param(["ingest", "{src}", "--target", "o2_hPa", "-o", "{out}"], id="ingest"),
    pytest.param(["report", "{art}", "-o", "{out}"], id="report"),
])
def test_every_writer_refuses_to_overwrite_without_force(linear_artifact, tmp_path, command):
    src = _lin(tmp_path, "phase_5000hz_deg,temperature_degC,o2_hPa\n" + "\n".join(
        f"{40 + i},{20 + i % 3},{100 + 10 * i}" for i in range(12)) + "\n")
    out = tmp_path / ("out.csv" if command[0] == "ingest" else "out.html")
    out.write_text("precious\n")
    args = [a.format(src=src, out=out, art=linear_artifact.path) for a in command]
    before = _tree(tmp_path)
    _refused(CliRunner().invoke(cli, args), tmp_path, before, r"already exists; use --force to overwrite$")
    assert out.read_text() == "precious\n"
    res = CliRunner().invoke(cli, [*args, "--force"])
    assert res.exit_code == 0, res.output
    assert out.read_text() != "precious\n"


def test_simulate_never_overwrites_without_force(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    (folder / "calib.toml").write_text("# my edited config\n")
    before = _tree(tmp_path)
    _refused(CliRunner().invoke(cli, ["simulate", "-o", str(folder), "--spots", "1"]), tmp_path, before,
             r"calib\.toml already exists; use --force to overwrite$")
    assert (folder / "calib.toml").read_text() == "# my edited config\n"
    res = CliRunner().invoke(cli, ["simulate", "-o", str(folder), "--spots", "1", "--force"])
    assert res.exit_code == 0, res.output
    assert "[data]" in (folder / "calib.toml").read_text() and (folder / "readings.csv").is_file()


def test_fifo_input_is_read_once(linear_artifact, tmp_path):
    fifo = tmp_path / "readings.csv"
    os.mkfifo(fifo)
    text = (LIN_HEADER + "\n" + LIN_ROWS).encode()

    def feed():
        with open(fifo, "wb") as fh:  # blocks until calib opens the pipe; EOF after one pass
            fh.write(text)

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    out = tmp_path / "out.csv"
    # a second read of the pipe would block forever: a subprocess with a timeout turns that into a failure
    proc = subprocess.run([sys.executable, "-m", "calib.cli", "-q", "predict", str(linear_artifact.path), str(fifo),
                           "-o", str(out)], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    writer.join(5)
    assert proc.returncode == 0, proc.stderr
    assert _preds(out) == LIN_PRED


def test_a_pipe_nothing_writes_to_is_refused_after_the_wait(linear_artifact, tmp_path):
    fifo = tmp_path / "readings.csv"
    os.mkfifo(fifo)
    out = tmp_path / "out.csv"
    t0 = time.perf_counter()
    # without the wait, opening the pipe blocks forever: the subprocess's timeout turns that into a failure
    proc = subprocess.run([sys.executable, "-m", "calib.cli", "-q", "predict", str(linear_artifact.path), str(fifo),
                           "-o", str(out)], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO), "CALIB_PIPE_WAIT_S": "1"})
    assert proc.returncode != 0 and not out.exists()
    assert proc.stderr.strip().splitlines() == [
        f"Error: {fifo}: a named pipe (FIFO) that nothing wrote to within 1 s; expected CSV, Parquet or Excel data "
        "(a longer wait: CALIB_PIPE_WAIT_S)"]
    assert time.perf_counter() - t0 < 60


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom", "/dev/null"])
def test_device_input_is_refused_at_once(linear_artifact, tmp_path, device):
    if not os.path.exists(device):
        pytest.skip(f"no {device}")
    out = tmp_path / "out.csv"
    t0 = time.perf_counter()
    _refused(_predict(linear_artifact.path, Path(device), out), tmp_path, [],
             rf"^{device}: is a character device, not a regular file; expected a CSV, Parquet or Excel file$")
    assert time.perf_counter() - t0 < 5


def test_unreadable_input_is_one_error_line(linear_artifact, tmp_path, monkeypatch):
    from calib import rawio

    src = _lin(tmp_path)

    def denied(path, *a, **k):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(path))

    monkeypatch.setattr(rawio, "open", denied, raising=False)  # tests may run as root: chmod 000 would not do
    before = _tree(tmp_path)
    _refused(_predict(linear_artifact.path, src, tmp_path / "out.csv"), tmp_path, before,
             rf"^{re.escape(str(src))}: cannot read \(Permission denied\)$")


def test_input_over_the_size_limit_is_refused(linear_artifact, tmp_path, monkeypatch):
    import gzip

    src = _lin(tmp_path, LIN_HEADER + "\n" + LIN_ROWS * 100)  # 1234 bytes
    monkeypatch.setenv("CALIB_MAX_INPUT_BYTES", "100")
    _refused(_predict(linear_artifact.path, src, tmp_path / "out.csv"), tmp_path, _tree(tmp_path),
             r"^r\.csv: 1\.2 KiB is over the input size limit of 100 bytes; split the file or raise the limit "
             r"with the environment variable CALIB_MAX_INPUT_BYTES$")
    # a small archive that expands beyond the limit (a zip bomb) is refused while decompressing
    bomb = _lin(tmp_path, gzip.compress(b"a" * 10_000), "bomb.csv.gz")
    monkeypatch.setenv("CALIB_MAX_INPUT_BYTES", "1000")
    _refused(_predict(linear_artifact.path, bomb, tmp_path / "out.csv"), tmp_path, _tree(tmp_path),
             r"^bomb\.csv\.gz: decompressed, more than 1000 bytes is over the input size limit")


def _compress(kind: str, data: bytes) -> bytes:
    import bz2
    import gzip
    import io
    import lzma
    import zipfile

    if kind == "zip":
        buf = io.BytesIO()
        with zipfile.ZipFile(buf, "w") as zf:
            zf.writestr("readings.csv", data)
        return buf.getvalue()
    return {"gz": gzip.compress, "bz2": bz2.compress, "xz": lzma.compress}[kind](data)


@pytest.mark.parametrize("kind", ["gz", "bz2", "xz", "zip"])
@pytest.mark.parametrize("named", [pytest.param(True, id="by-suffix"), pytest.param(False, id="named-csv")])
def test_compressed_csv_is_read(linear_artifact, tmp_path, kind, named):
    data = _compress(kind, (LIN_HEADER + "\n" + LIN_ROWS).encode())
    src = _lin(tmp_path, data, f"r.csv.{kind}" if named else "r.csv")
    out = tmp_path / "out.csv"
    res = _predict(linear_artifact.path, src, out)
    assert res.exit_code == 0, res.output
    assert _preds(out) == LIN_PRED


def test_corrupt_or_wrong_archives_are_one_line(linear_artifact, tmp_path):
    import gzip

    cases = {
        "cut.csv.gz": (gzip.compress((LIN_HEADER + "\n" + LIN_ROWS).encode())[:-12], r"not a readable gzip file"),
        "plain.csv.gz": (LIN_HEADER.encode(), r"not a gzip file although named so"),
        "two.zip": (None, r"a zip archive must hold exactly one file, it holds 2 \(a\.csv, b\.csv\)"),
        "compressed-output": (None, r"compressed output is not written"),
    }
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("a.csv", "x")
        zf.writestr("b.csv", "y")
    for name, (data, match) in cases.items():
        if name == "compressed-output":
            src, out = _lin(tmp_path), tmp_path / "o" / "pred.csv.gz"
        else:
            src, out = _lin(tmp_path, buf.getvalue() if data is None else data, name), tmp_path / "o" / "pred.csv"
        out.parent.mkdir(exist_ok=True)
        _refused(_predict(linear_artifact.path, src, out), out.parent, [], match)


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16", "utf-16-le", "cp1252", "latin-1"])
def test_encodings_of_lab_software_are_read(linear_artifact, tmp_path, encoding):
    note = "Grüße µ €" if encoding not in ("latin-1",) else "Grüße µ"
    text = f"{LIN_HEADER},note\n40,20,{note}\n45,25,{note}\n"
    src = _lin(tmp_path, text.encode(encoding))
    out = tmp_path / "out.csv"
    res = _predict(linear_artifact.path, src, out)
    assert res.exit_code == 0, res.output
    from calib.ingest import read_table

    back = read_table(out).frame
    assert list(back["o2_hPa_pred"]) == LIN_PRED and list(back["note"]) == [note, note]


@pytest.mark.parametrize("header, match", [
    pytest.param("phase_5000hz_deg,temp\x1b[2J_degC,x", r"column 2: the name 'temp\\x1b\[2J_degC' holds the control or "
                 r"bidi character '\\x1b' \(U\+001B\)", id="escape-sequence"),
    pytest.param("phase_5000hz_deg,temperature_degC,x\u202eevil", r"column 3: the name 'x\\u202eevil' holds the "
                 r"control or bidi character '\\u202e' \(U\+202E\)", id="bidi-override"),
])
def test_control_and_bidi_characters_in_the_header_are_refused_escaped(linear_artifact, tmp_path, header, match):
    src = _lin(tmp_path, header + "\n40,20,1\n")
    res = _predict(linear_artifact.path, src, tmp_path / "out.csv")
    assert "\x1b" not in res.output and "\u202e" not in res.output
    _refused(res, tmp_path, _tree(tmp_path), match)


def test_error_messages_never_print_control_characters(linear_artifact, tmp_path):
    src = _lin(tmp_path, LIN_HEADER + "\n40,\x1b[31mred\u202e\n", "evil\x1b]0;x\x07.csv")
    res = _predict(linear_artifact.path, src, tmp_path / "out.csv")
    assert not any(c in res.output for c in "\x1b\x07\u202e")
    _refused(res, tmp_path, _tree(tmp_path), r"^evil\\x1b\]0;x\\x07\.csv row 2, column temperature_degC: "
                                             r"'\\x1b\[31mred\\u202e' is not a number$")


@pytest.mark.parametrize("header, match", [
    pytest.param("phase_5000hz_deg,temperature_degC, Temperature_degC",
                 r"row 1: columns 2 and 3 \('temperature_degC' and 'Temperature_degC'\) differ only in case or spaces",
                 id="case-and-space"),
    pytest.param("phase_5000hz_deg,temperature_degC,temperature_K",
                 r"row 1: feature temperature_degC \(degC\) could be any of the columns 'temperature_degC', "
                 r"'temperature_K'; keep only one of them", id="two-units"),
    pytest.param("phase_5000hz_rad,temperature_degC,phase_5000hz_us",
                 r"feature phase_5000hz_deg \(deg\) could be any of the columns 'phase_5000hz_rad', "
                 r"'phase_5000hz_us'", id="two-other-units"),
])
def test_the_same_quantity_twice_is_refused_naming_both(linear_artifact, tmp_path, header, match):
    src = _lin(tmp_path, header + "\n40,20,20\n")
    _refused(_predict(linear_artifact.path, src, tmp_path / "out.csv"), tmp_path, _tree(tmp_path), match)


def test_a_column_differing_only_in_case_is_found(linear_artifact, tmp_path):
    src = _lin(tmp_path, "PHASE_5000Hz_deg,Temperature_degC\n" + LIN_ROWS)
    out = tmp_path / "out.csv"
    assert _predict(linear_artifact.path, src, out).exit_code == 0
    assert _preds(out) == LIN_PRED


def test_too_many_columns_is_refused_fast(linear_artifact, tmp_path):
    n = 200_000  # 3.5 MB: once minutes and 1.3 GB in a per-column blank-line check
    src = _lin(tmp_path, ",".join(f"c{i}_deg" for i in range(n)) + "\n" + ",".join("1" * n) + "\n")
    t0 = time.perf_counter()
    _refused(_predict(linear_artifact.path, src, tmp_path / "out.csv"), tmp_path, _tree(tmp_path),
             r"^r\.csv row 1: 200000 columns is over the limit of 10000; expected a readings table \(raise the "
             r"limit with the environment variable CALIB_MAX_COLUMNS\)$")
    assert time.perf_counter() - t0 < 10


def test_wide_table_within_the_limit_is_fast(linear_artifact, tmp_path):
    extra = [f"c{i}" for i in range(9_000)]
    rows = "\n".join(",".join(["40", "20"] + ["x"] * len(extra)) for _ in range(3))
    src = _lin(tmp_path, ",".join([LIN_HEADER, *extra]) + "\n" + rows + "\n")
    out = tmp_path / "out.csv"
    t0 = time.perf_counter()
    assert _predict(linear_artifact.path, src, out).exit_code == 0
    assert time.perf_counter() - t0 < 20
    assert out.read_text().splitlines()[1].endswith(",180,1,False,")  # out_of_range_reason empty


@pytest.mark.parametrize("threads", ["100000", "0", "-3"])
def test_threads_are_capped(linear_artifact, tmp_path, threads):
    src = _lin(tmp_path)
    t0 = time.perf_counter()
    _refused(_predict(linear_artifact.path, src, tmp_path / "out.csv", "--threads", threads), tmp_path, _tree(tmp_path),
             rf"^threads within 1\.\.\d+ \(4 per CPU core, at most 256\) must hold, got threads={threads}$")
    assert time.perf_counter() - t0 < 5


@pytest.mark.parametrize("argv", [
    pytest.param(["predict", "{art}", "{tmp}", "-o", "{tmp}/o.csv"], id="predict-folder-as-data"),
    pytest.param(["ingest", "{tmp}", "-o", "{tmp}/o.csv"], id="ingest-folder-as-data"),
    pytest.param(["ingest", "{tmp}/r.csv", "-o", "{tmp}"], id="ingest-folder-as-output"),
    pytest.param(["validate", "{tmp}/r.csv", "--config", "{tmp}"], id="folder-as-config"),
    pytest.param(["validate", "{tmp}/r.csv", "--config", "/dev/zero"], id="device-as-config"),
    pytest.param(["simulate", "-o", "{tmp}/r.csv"], id="simulate-file-as-folder"),
])
def test_careless_paths_are_one_error_line_not_a_usage_error(linear_artifact, tmp_path, argv):
    _lin(tmp_path)
    args = [a.format(art=linear_artifact.path, tmp=tmp_path) for a in argv]
    before = _tree(tmp_path)
    _refused(CliRunner().invoke(cli, args), tmp_path, before, r".")


# =========================================================================== property tests
# Random readings files (shapes, cell types, separators, decimal marks, encodings, compression,
# hostile names) through `calib predict`, and random DataFrames through predict_frame: either
# the right numbers or one `Error:` line, exit 1, nothing written. Seeded (derandomize) and
# budgeted: both together take a few seconds.
from hypothesis import HealthCheck, event, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_NAMES = ["phase_5000hz_deg", "temperature_degC", "temperature_K", "Temperature_degC", "phase_5000hz_rad",
          "spot_id", "o2_hPa_pred", "note", "x\u202e", "t\x1b[0m", ""]
_CELLS = st.one_of(
    st.floats(25, 65).map(lambda v: f"{v:.3f}"),                      # a plausible phase (deg)
    st.floats(0, 40).map(lambda v: f"{v:.2f}"),                       # a plausible temperature (degC)
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.integers(-10**6, 10**6).map(str),
    st.sampled_from(["", " ", "n/a", "1e400", "0x10", '"', '"a,b"', "\x1b[2J", "\u202e", "Grüße", "-0", "1,5"]),
    st.text(st.characters(codec="cp1252"), max_size=6),
)
_PROPERTY = settings(max_examples=70, deadline=None, derandomize=True, database=None,
                     suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


_NOTE = st.text(st.characters(codec="cp1252", exclude_characters=',;\t|"\r\n'), max_size=6)


@st.composite
def _valid_rows(draw, sep: str):
    """Readings the linear model takes: its two inputs (any order, case, degC or K) and maybe a note."""
    kelvin = draw(st.booleans())
    cols = ["phase_5000hz_deg", "temperature_K" if kelvin else "temperature_degC"]
    if draw(st.booleans()):
        cols = [c.upper() if c.startswith("phase") else c for c in cols]
    cols = draw(st.permutations(cols))
    note = draw(st.booleans())
    comma = sep != "," and draw(st.booleans())
    rows = []
    for _ in range(draw(st.integers(1, 5))):
        vals = {"p": draw(st.floats(25, 65)), "t": draw(st.floats(0, 40)) + (273.15 if kelvin else 0.0)}
        cells = [f"{vals['p' if c.lower().startswith('phase') else 't']:.4f}" for c in cols]
        rows.append([c.replace(".", ",") if comma else c for c in cells] + ([draw(_NOTE)] if note else []))
    return [*cols, *(["note"] if note else [])], rows


@st.composite
def _readings_file(draw):
    sep = draw(st.sampled_from([",", ";", "\t", "|"]))
    if draw(st.integers(0, 2)):  # two in three: a valid file (perhaps spoilt by one hostile cell)
        columns, rows = draw(_valid_rows(sep))
        if draw(st.integers(0, 3)) == 0:
            i, j = draw(st.integers(0, len(rows) - 1)), draw(st.integers(0, len(columns) - 1))
            rows[i][j] = draw(_CELLS)
    else:
        columns = draw(st.lists(st.sampled_from(_NAMES), min_size=1, max_size=5))
        rows = draw(st.lists(st.lists(_CELLS, min_size=len(columns), max_size=len(columns) + draw(
            st.sampled_from([0, 0, 0, 1]))), max_size=5))
    lines = [sep.join(columns), *(sep.join(r) for r in rows)]
    text = draw(st.sampled_from(["\n", "\r\n"])).join(lines) + draw(st.sampled_from(["", "\n", "\n\n"]))
    encoding = draw(st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "cp1252"]))
    data = text.encode(encoding, errors="replace")
    compression = draw(st.sampled_from([None, None, "gz", "zip"]))
    if compression:
        data = _compress(compression, data)
    return data, compression


@_PROPERTY
@given(_readings_file())
def test_property_predict_gives_right_numbers_or_one_error_line(linear_artifact, file):
    from calib.ingest import read_table
    from calib.readings import numeric_column
    from calib.runtime import load_model

    data, compression = file
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        src = tmp / ("r.csv" + (f".{compression}" if compression else ""))
        src.write_bytes(data)
        folder = tmp / "out"
        folder.mkdir()
        out = folder / "pred.csv"
        res = _predict(linear_artifact.path, src, out)
        assert isinstance(res.exception, (SystemExit, type(None))), res.exc_info
        assert src.read_bytes() == data
        if res.exit_code != 0:
            event(_one_error_line(res).split(":")[1][:30])
            assert list(folder.iterdir()) == []
            return
        event("predicted")
        assert sorted(p.name for p in folder.iterdir()) == ["pred.csv", "pred.csv.json"]
        x = load_model(linear_artifact.path).readings(read_table(src))
        got = read_table(out)
        pred = numeric_column(got, "o2_hPa_pred")
        np.testing.assert_allclose(pred, -10 * x[:, 0].astype(np.float64) - x[:, 1] + 600, rtol=1e-5, atol=1e-3)
        assert list(got.frame.columns)[-4:] == ADDED[:2] + ["out_of_range", "out_of_range_reason"]


_VALUES = st.one_of(
    st.lists(st.floats(25, 65), min_size=3, max_size=3),
    st.lists(st.floats(allow_nan=True, allow_infinity=True), min_size=3, max_size=3),
    st.lists(st.integers(-10, 100), min_size=3, max_size=3),
    st.lists(st.one_of(st.none(), st.booleans(), st.text(max_size=4), st.floats(0, 40)), min_size=3, max_size=3),
    st.lists(st.sampled_from(["40", "2e1", "x", ""]), min_size=3, max_size=3),
)


_FRAME_COLUMNS = st.one_of(
    st.lists(st.tuples(st.sampled_from(_NAMES), _VALUES), max_size=5),
    st.tuples(st.lists(st.floats(25, 65), min_size=3, max_size=3), st.lists(st.floats(0, 40), min_size=3, max_size=3),
              st.lists(st.tuples(st.sampled_from(_NAMES[5:]), _VALUES), max_size=2)).map(
        lambda t: [("phase_5000hz_deg", t[0]), ("temperature_degC", t[1]), *t[2]]),
)


@_PROPERTY
@given(_FRAME_COLUMNS, st.sampled_from(["object", "infer", "category", "float32"]))
def test_property_predict_frame_gives_right_numbers_or_one_calib_error(linear_artifact, columns, dtype):
    import pandas as pd

    from calib import load_model
    from calib.errors import CalibError

    m = load_model(linear_artifact.path)
    df = pd.DataFrame({f"{name}": values for name, values in columns}, index=[10, 11, 12]) if columns else \
        pd.DataFrame(index=[10, 11, 12])
    if dtype != "infer":
        try:
            with np.errstate(over="ignore"):  # float32 of a huge float: inf, refused below
                df = df.astype(dtype)
        except (TypeError, ValueError):
            return
    before = df.copy()
    try:
        out = m.predict_frame(df)
    except CalibError as exc:
        assert "\n" not in str(exc).strip()
        event(f"refused: {str(exc)[:25]}")
        return
    finally:
        pd.testing.assert_frame_equal(df, before)
    event("predicted")
    x = m.as_array(df)
    np.testing.assert_allclose(out["o2_hPa_pred"].to_numpy(), -10 * x[:, 0].astype(np.float64) - x[:, 1] + 600,
                               rtol=1e-5, atol=1e-3)
    assert list(out.index) == [10, 11, 12]
