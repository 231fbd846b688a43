"""calib.rawio: an input's bytes read once, decompressed and decoded (end to end: tests/test_reliability.py)."""

from __future__ import annotations

import gzip
import io
import zipfile

import pytest

from calib.errors import IngestError
from calib.rawio import decode_text, decompress

TEXT = "phase_deg;note\n40,5;Grüße µ\n"


@pytest.mark.parametrize("data, encoding", [
    pytest.param(TEXT.encode("utf-8"), "utf-8", id="utf-8"),
    pytest.param(b"\xef\xbb\xbf" + TEXT.encode("utf-8"), "utf-8-sig", id="utf-8-bom"),
    pytest.param(TEXT.encode("utf-16"), "utf-16", id="utf-16-bom"),
    pytest.param(TEXT.encode("utf-16-le"), "utf-16-le", id="utf-16-le-no-bom"),
    pytest.param(TEXT.encode("utf-16-be"), "utf-16-be", id="utf-16-be-no-bom"),
    pytest.param(TEXT.encode("utf-32"), "utf-32", id="utf-32-bom"),
    pytest.param(TEXT.encode("cp1252"), "cp1252", id="cp1252"),
])
def test_decode_text(data, encoding):
    assert decode_text(data, "r.csv") == (TEXT, encoding)


def test_cp1252_and_latin1_apart():
    assert decode_text("€ – “x”".encode("cp1252"), "r.csv") == ("€ – “x”", "cp1252")
    assert decode_text(b"\x81\x8d", "r.csv")[1] == "latin-1"  # undefined in cp1252: every byte still decodes


def test_binary_and_broken_utf16_are_refused():
    with pytest.raises(IngestError, match=r"^r\.csv: binary file with a \.csv extension"):
        decode_text(b"\x00\x01\x02\x00\x00\x00\xff", "r.csv")
    with pytest.raises(IngestError, match=r"^r\.csv: not valid UTF-16 text"):
        decode_text(b"\xff\xfea\x00b", "r.csv")


def test_decompress_by_suffix_and_by_content():
    raw = TEXT.encode()
    assert decompress(gzip.compress(raw), "r.csv.gz") == (raw, "gzip", ".csv")
    assert decompress(gzip.compress(raw), "r.csv") == (raw, "gzip", ".csv")
    assert decompress(raw, "r.csv") == (raw, None, ".csv")
    workbook = io.BytesIO()
    with zipfile.ZipFile(workbook, "w") as zf:
        zf.writestr("[Content_Types].xml", "<x/>")
    assert decompress(workbook.getvalue(), "book.xlsx") == (workbook.getvalue(), None, ".xlsx")  # left to openpyxl


def test_a_named_pipe_is_read_once_or_refused_after_the_wait(tmp_path, monkeypatch):
    """A FIFO: a writer's bytes are read to the end; one nothing writes to is refused after
    $CALIB_PIPE_WAIT_S instead of blocking forever; the variable is validated."""
    import os
    import threading
    import time

    from calib.errors import ConfigError
    from calib.rawio import read_input

    fifo = tmp_path / "pipe.csv"
    os.mkfifo(fifo)
    monkeypatch.setenv("CALIB_PIPE_WAIT_S", "1")
    t0 = time.perf_counter()
    with pytest.raises(IngestError, match=r"pipe\.csv: a named pipe \(FIFO\) that nothing wrote to within 1 s"):
        read_input(fifo)
    assert time.perf_counter() - t0 < 10

    def feed():
        time.sleep(0.3)  # a writer that comes late, within the wait
        with open(fifo, "wb") as fh:
            fh.write(TEXT.encode())

    writer = threading.Thread(target=feed, daemon=True)
    writer.start()
    assert read_input(fifo) == TEXT.encode()
    writer.join(5)
    monkeypatch.setenv("CALIB_PIPE_WAIT_S", "soon")
    with pytest.raises(ConfigError, match="CALIB_PIPE_WAIT_S must be a positive integer, got CALIB_PIPE_WAIT_S='soon'"):
        read_input(fifo)
