"""Tests of the streamed path of calib.predict (calib.chunks): the same output as the whole-file path.

Every test predicts a file twice, read whole and streamed, and compares: the CSV byte for byte, a
Parquet file as a table with its metadata, the provenance (but its time) and the summary (but its
seconds). Streaming is forced on small files (``CALIB_STREAM_MIN_BYTES=0``) in chunks of 64 rows
(``calib.runtime.CHUNK_ROWS`` and ``calib.chunks.CHUNK_BYTES`` patched), so a 1,000-row file is 16
chunks. The artifact is the session's tiny ``calib calibrate`` one (conftest ``tiny_run``).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import tiny_with_s01_child

import calib.chunks as chunks
import calib.predict as predict
import calib.runtime as runtime
from calib.cli import cli
from calib.errors import IngestError
from calib.predict import predict_file
from calib.provenance import read_provenance
from calib.runtime import load_model

ROWS = 1000


@pytest.fixture(scope="module")
def model(tiny_run):
    return load_model(tiny_run["path"])


@pytest.fixture(scope="module")
def lines(tiny_run) -> list[bytes]:
    """The header and ROWS data lines of readings like the artifact's (resampled, as text)."""
    raw = pd.read_csv(tiny_run["csv"])
    df = raw.sample(ROWS, replace=True, random_state=0).drop(columns=["o2_hPa"]).reset_index(drop=True)
    df.insert(1, "note", [f"r{i} µ" for i in range(ROWS)])  # a passthrough column, not ASCII
    return df.to_csv(index=False).encode("utf-8").splitlines()


@pytest.fixture
def small_chunks(monkeypatch):
    """Chunks of 64 rows (and model.run blocks of 64 rows in both paths)."""
    monkeypatch.setattr(runtime, "CHUNK_ROWS", 64)
    monkeypatch.setattr(chunks, "CHUNK_BYTES", 1)


def _write(path: Path, lines: list[bytes], eol: bytes = b"\n", final: bool = True, head: bytes = b"") -> Path:
    path.write_bytes(head + eol.join(lines) + (eol if final else b""))
    return path


def _run(model, src: Path, out: Path, monkeypatch, stream: bool, **kw):
    """predict_file read whole or streamed (a streamed run fails if it falls back to the whole file)."""
    with monkeypatch.context() as mp:
        mp.setenv("CALIB_STREAM_MIN_BYTES", "0" if stream else str(1 << 40))
        if stream:
            mp.setattr(predict._Job, "whole", lambda self: pytest.fail("read whole, not streamed"))
        return predict_file(model, src, out, **kw)


def _same(model, src: Path, tmp_path: Path, monkeypatch, suffix: str = ".csv", **kw) -> dict:
    """Predict ``src`` whole and streamed; assert the same output, provenance and summary."""
    a, b = tmp_path / f"whole{suffix}", tmp_path / f"stream{suffix}"
    sa = _run(model, src, a, monkeypatch, stream=False, **kw)
    sb = _run(model, src, b, monkeypatch, stream=True, **kw)
    for s in (sa, sb):
        del s["seconds"], s["output"], s["provenance"]
    assert sa == sb
    if suffix == ".csv":
        assert a.read_bytes() == b.read_bytes()
        pa_, pb_ = (json.loads(Path(f"{p}.json").read_text()) for p in (a, b))
    else:
        import pyarrow.parquet as pq

        ta, tb = pq.read_table(a), pq.read_table(b)
        assert ta.equals(tb)  # columns, types and values
        ma, mb = dict(ta.schema.metadata), dict(tb.schema.metadata)
        pa_, pb_ = json.loads(ma.pop(b"calib.provenance")), json.loads(mb.pop(b"calib.provenance"))
        assert ma == mb
    for p in (pa_, pb_):
        del p["created_utc"]
    assert pa_ == pb_ and pa_["input"]["sha256"] == hashlib.sha256(src.read_bytes()).hexdigest()
    return sb


# --------------------------------------------------------------------------- the same output
@pytest.mark.parametrize("case", [
    pytest.param("plain", id="comma-lf"),
    pytest.param("crlf", id="crlf"),
    pytest.param("german", id="semicolon-decimal-comma-crlf"),
    pytest.param("no-final-newline", id="no-final-newline"),
    pytest.param("trailing-blank-lines", id="trailing-blank-lines-over-several-chunks"),
    pytest.param("bom", id="utf8-bom"),
    pytest.param("late-cp1252", id="cp1252-byte-in-a-late-chunk"),
])
def test_streamed_csv_is_byte_identical(model, lines, tmp_path, monkeypatch, small_chunks, case):
    rows = list(lines)
    eol, final, head = b"\n", True, b""
    if case == "crlf":
        eol = b"\r\n"
    elif case == "german":
        rows, eol = [r.replace(b",", b";").replace(b".", b",") for r in rows], b"\r\n"
    elif case == "no-final-newline":
        final = False
    elif case == "trailing-blank-lines":
        rows += [b""] * 150 + [b"  "]
    elif case == "bom":
        head = b"\xef\xbb\xbf"
    elif case == "late-cp1252":
        rows = [r.replace("µ".encode(), b"u") for r in rows]
        rows[900] = rows[900].replace(b"u", b"\xb5")  # cp1252 micro sign: not UTF-8, so the file is cp1252
    src = _write(tmp_path / "in.csv", rows, eol, final, head)
    summary = _same(model, src, tmp_path, monkeypatch)
    assert summary["rows"] == ROWS and summary["out_of_range"] >= 0
    out = (tmp_path / "stream.csv").read_bytes()
    assert out.startswith(head + rows[0] + (b";" if case == "german" else b",") + b"o2_hPa_pred")


@pytest.mark.parametrize("src_suffix, out_suffix", [
    pytest.param(".csv", ".parquet", id="csv-to-parquet"),
    pytest.param(".parquet", ".parquet", id="parquet-to-parquet"),
    pytest.param(".parquet", ".csv", id="parquet-to-csv"),
])
def test_streamed_parquet_is_equal(model, lines, tmp_path, monkeypatch, small_chunks, src_suffix, out_suffix):
    import pyarrow as pa
    import pyarrow.parquet as pq

    src = _write(tmp_path / "in.csv", lines)
    if src_suffix == ".parquet":
        df = pd.read_csv(src)
        df["count"] = pd.array([None if i == 800 else i for i in range(ROWS)], dtype="Int64")  # floats in pandas
        t = pa.Table.from_pandas(df, preserve_index=False)
        blank = pa.table({c: pa.nulls(70, t.schema.field(c).type) for c in t.column_names})
        src = tmp_path / "in.parquet"
        pq.write_table(pa.concat_tables([t, blank]), src, row_group_size=300)  # 70 blank rows at the end: dropped
    summary = _same(model, src, tmp_path, monkeypatch, suffix=out_suffix)
    assert summary["rows"] == ROWS and summary["format"] == out_suffix[1:]
    assert read_provenance(tmp_path / f"stream{out_suffix}")["input"]["rows"] == ROWS


def test_a_quote_in_a_late_chunk_reads_the_file_whole(model, lines, tmp_path, monkeypatch, small_chunks):
    rows = list(lines)
    rows[950] = rows[950].replace("r949 µ".encode(), b'"r949, quoted"')
    src = _write(tmp_path / "in.csv", rows)
    calls = []
    real = predict._Job.whole
    monkeypatch.setattr(predict._Job, "whole", lambda self: calls.append(1) or real(self))
    monkeypatch.setenv("CALIB_STREAM_MIN_BYTES", "0")
    predict_file(model, src, tmp_path / "stream.csv")
    assert calls == [1]  # streamed up to the quote, then read whole: the pandas rewrite as always
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv", "stream.csv", "stream.csv.json"]
    got = pd.read_csv(tmp_path / "stream.csv", dtype=str, keep_default_na=False)
    assert got["note"].iloc[949] == "r949, quoted" and len(got) == ROWS


def test_spot_routing_is_the_same_streamed(tiny_run, lines, tmp_path, monkeypatch, small_chunks):
    """A parent with a spot child (S01's two-point check): the child's rows, flags and provenance."""
    parent_dir, _ = tiny_with_s01_child(tiny_run, tmp_path)
    parent = load_model(parent_dir)
    assert parent.routes_spots
    src = _write(tmp_path / "in.csv", lines)
    summary = _same(parent, src, tmp_path, monkeypatch)
    n_s01 = sum(r.startswith(b"S01,") for r in lines[1:])
    assert summary["adjusted"] == n_s01 > 0 and list(summary["spot_models"]) == ["S01"]
    out = pd.read_csv(tmp_path / "stream.csv")
    assert (out["adjusted"] == (out["spot_id"] == "S01")).all()


# --------------------------------------------------------------------------- errors and atomicity
def test_a_bad_cell_in_a_late_chunk_names_its_row_and_writes_nothing(tiny_run, lines, tmp_path, monkeypatch,
                                                                        small_chunks):
    rows = list(lines)
    cells = rows[990].split(b",")
    cells[3] = b"n/a"  # the first feature column, row 991 of the file
    rows[990] = b",".join(cells)
    src = _write(tmp_path / "in.csv", rows)
    out = tmp_path / "out" / "pred.csv"
    out.parent.mkdir()
    (out.parent / "pred.csv").write_text("old\n")
    (out.parent / "pred.csv.json").write_text("{}\n")
    column = rows[0].split(b",")[3].decode()
    messages = []
    for stream in (False, True):
        monkeypatch.setenv("CALIB_STREAM_MIN_BYTES", "0" if stream else str(1 << 40))
        res = CliRunner().invoke(cli, ["predict", str(tiny_run["path"]), str(src), "-o", str(out), "--force"])
        assert res.exit_code == 1 and len(res.output.splitlines()) == 1, res.output
        messages.append(res.output)
        # the existing output and its sidecar untouched; no temporary file left
        assert sorted(p.name for p in out.parent.iterdir()) == ["pred.csv", "pred.csv.json"]
        assert out.read_text() == "old\n"
    assert messages[0] == messages[1] == f"Error: in.csv row 991, column {column}: 'n/a' is not a number\n"


@pytest.mark.parametrize("cut", [
    pytest.param("last", id="last-field-missing"),  # a passthrough column: pandas padded it silently
    pytest.param("middle", id="middle-field-missing"),  # every later cell shifted one column left
])
def test_a_short_row_in_a_late_chunk_is_refused_whole_and_streamed(model, lines, tmp_path, monkeypatch,
                                                                     small_chunks, cut):
    rows = list(lines)
    cells = rows[700].split(b",")
    del cells[-1 if cut == "last" else 2]
    rows[700] = b",".join(cells)
    src = _write(tmp_path / "in.csv", rows)
    n = len(rows[0].split(b","))
    for stream in (False, True):
        with pytest.raises(IngestError, match=rf"^in\.csv row 701: {n - 1} fields, expected {n} \(separator ','\)$"):
            _run(model, src, tmp_path / "out.csv", monkeypatch, stream=stream)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv"]


def test_header_problems_are_refused_before_writing(model, lines, tmp_path, monkeypatch, small_chunks):
    src = _write(tmp_path / "in.csv", [lines[0] + b",out_of_range"] + [r + b",x" for r in lines[1:]])
    with pytest.raises(IngestError, match=r"^in\.csv row 1: column\(s\) out_of_range already exist"):
        _run(model, src, tmp_path / "out.csv", monkeypatch, stream=True)
    src = _write(tmp_path / "in.csv", [lines[0].replace(b"temperature_degC", b"temperature_mV")] + lines[1:])
    with pytest.raises(IngestError, match=r"^in\.csv row 1, column temperature_mV: mV cannot be converted"):
        _run(model, src, tmp_path / "out.csv", monkeypatch, stream=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv"]


def test_cli_streams_a_file_over_the_input_size_limit(tiny_run, lines, tmp_path, monkeypatch, small_chunks):
    """The size limit is on what is read into memory: a streamed file may be larger."""
    src = _write(tmp_path / "in.csv", lines)
    monkeypatch.setenv("CALIB_MAX_INPUT_BYTES", "1000")
    monkeypatch.setenv("CALIB_STREAM_MIN_BYTES", str(1 << 40))
    res = CliRunner().invoke(cli, ["predict", str(tiny_run["path"]), str(src), "-o", str(tmp_path / "a.csv")])
    assert res.exit_code == 1 and "over the input size limit of 1000 bytes" in res.output
    monkeypatch.setenv("CALIB_STREAM_MIN_BYTES", "0")
    res = CliRunner().invoke(cli, ["predict", str(tiny_run["path"]), str(src), "-o", str(tmp_path / "b.csv"),
                                   "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["rows"] == ROWS


# --------------------------------------------------------------------------- which files stream
@pytest.mark.parametrize("case, streams", [
    pytest.param("plain", True, id="plain-csv"),
    pytest.param("parquet", True, id="parquet"),
    pytest.param("small", False, id="under-the-threshold"),
    pytest.param("gzip", False, id="compressed"),
    pytest.param("gzip-named-csv", False, id="compressed-by-content"),
    pytest.param("quoted", False, id="quoted-csv"),
    pytest.param("utf16", False, id="utf-16"),
    pytest.param("fifo", False, id="named-pipe"),
])
def test_which_files_are_streamed(lines, tmp_path, monkeypatch, case, streams):
    import gzip

    monkeypatch.setenv("CALIB_STREAM_MIN_BYTES", str(1 << 20) if case == "small" else "0")
    text = b"\n".join(lines) + b"\n"
    p = tmp_path / "in.csv"
    if case == "parquet":
        p = tmp_path / "in.parquet"
        pd.read_csv(io.BytesIO(text)).to_parquet(p)
    elif case == "gzip":
        p = tmp_path / "in.csv.gz"
        p.write_bytes(gzip.compress(text))
    elif case == "gzip-named-csv":
        p.write_bytes(gzip.compress(text))
    elif case == "quoted":
        p.write_bytes(text.replace(b"r1 ", b'"r1" '))
    elif case == "utf16":
        p.write_bytes(text.decode("utf-8").encode("utf-16"))
    elif case == "fifo":
        os.mkfifo(p)
    else:
        p.write_bytes(text)
    got = chunks.open_chunked(p)
    assert (got is not None) == streams
    if streams:
        assert got.columns[:2] == ["spot_id", "note"] and got.format == p.suffix[1:]


def test_stream_min_bytes_is_checked(monkeypatch):
    from calib.errors import ConfigError
    from calib.limits import stream_min_bytes

    monkeypatch.setenv("CALIB_STREAM_MIN_BYTES", "-1")
    with pytest.raises(ConfigError, match=r"^CALIB_STREAM_MIN_BYTES >= 0 must hold, got CALIB_STREAM_MIN_BYTES=-1"):
        stream_min_bytes()


def test_bare_carriage_returns_are_rewritten_not_appended_to(model, tmp_path):
    """Old Mac line ends: pandas reads rows where the appending would see one line (the file is
    rewritten through pandas, as a quoted one is)."""
    x = np.column_stack([np.full(3, (lo + hi) / 2) for lo, hi in zip(model.lower, model.upper)])
    header = ",".join(model.features)
    src = tmp_path / "in.csv"
    src.write_bytes(("\r".join([header] + [",".join(f"{v:.4f}" for v in r) for r in x]) + "\r").encode())
    predict_file(model, src, tmp_path / "out.csv")
    out = pd.read_csv(tmp_path / "out.csv")
    assert len(out) == 3 and list(out.columns[: len(model.features)]) == list(model.features)
    np.testing.assert_allclose(out["o2_hPa_pred"], model.predict(np.round(x, 4)), rtol=1e-5)
