"""A readings file in chunks: the streamed counterpart of :func:`calib.ingest.read_table`.

``calib predict`` (:func:`calib.predict.predict_file`) streams a large file through
:func:`open_chunked`: read, checked, predicted and written a chunk at a time (about
:data:`CHUNK_BYTES` of the file), so its memory is flat in the file's size and the input
size limit (:mod:`calib.limits`, "read into memory") does not apply.

Which files are streamed
------------------------
A file is streamed when the result is sure to be the very one the whole-file path gives
(:func:`~calib.ingest.read_table` and the same writers), else it is read whole:

- a regular file (not a named pipe) of at least :func:`calib.limits.stream_min_bytes` bytes
  (``CALIB_STREAM_MIN_BYTES``, default 16 MiB; below it the whole-file path is as fast and
  small), not compressed (by suffix or content) and not Excel;
- Parquet (``.parquet``/``.pq``) whose integer columns' null counts are in the file's
  statistics (pandas turns an integer column with a null anywhere into floats: the chunks
  must do the same);
- any other name is CSV: in an encoding where ASCII is ASCII (UTF-8 with or without BOM,
  cp1252, latin-1; not UTF-16/32), without a double quote (a quoted cell may hold a line
  break; quoted files are rewritten through pandas), without a bare ``\\r`` line end (and,
  for a CSV output, whose header line splits back into its column names: :mod:`calib.predict`).

What is checked on the first ~50 lines (encoding, separator, decimal mark, header) is
decided there exactly as :func:`~calib.ingest.read_table` decides it on the whole file.
What only shows later is handled as it comes: a quote or a bare ``\\r`` in a later chunk
raises :class:`NotStreamable` (the caller drops what it wrote and reads the file whole); a
later byte that is not UTF-8 raises :class:`RetryEncoding` (the caller starts over with
cp1252, then latin-1: what the whole-file decoding would have chosen).

Chunks
------
Each chunk is a :class:`~calib.ingest.RawTable` whose ``first_row`` is the file row of its
first row (header = row 1), so every error names the file's row; CSV chunks also carry
their lines exactly as in the file. Every chunk but the last holds a whole number of the
caller's blocks (``block_rows``; :mod:`calib.predict` predicts blocks of
:data:`calib.runtime.CHUNK_ROWS` file rows, read whole or streamed alike). CSV is parsed with pyarrow (a chunk it refuses, e.g.
a row with fewer fields, is parsed again with pandas as the whole-file path does, for the
same cells and errors). Trailing blank rows are held back until a filled row follows (then
they are rows, with their errors) or the file ends (then they are dropped, as
:func:`~calib.ingest.read_table` drops them). The input's SHA-256 is computed on the bytes
as they are read (Parquet: in one pass before).

One difference: where a file has several errors, the streamed path reports the first
chunk's first error (in column order within the chunk), the whole-file path the first
column's first error over the whole file.
"""

from __future__ import annotations

import hashlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

import numpy as np

from .errors import CalibError, IngestError
from .csvtext import check_width, csv_dialect, parse_csv
from .ingest import RawTable, check_header, last_filled_row
from .limits import stream_min_bytes
from .rawio import ASCII_COMPATIBLE, COMPRESSIONS, decode_text, sniff_compression

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    import pyarrow as pa

__all__ = ["CHUNK_BYTES", "Chunk", "ChunkedFile", "NotStreamable", "RetryEncoding", "open_chunked"]

#: About how much of the file one chunk holds (CSV: bytes read; Parquet: uncompressed bytes).
CHUNK_BYTES = 2 << 20
#: Lines of a CSV file's head in which the encoding, separator and decimal mark are detected.
HEAD_LINES = 51
#: Most bytes read for that head (a longer head: the file is read whole).
MAX_HEAD_BYTES = 32 << 20

_PARQUET = (".parquet", ".pq")
_EXCEL = (".xlsx", ".xlsm", ".xls")
#: What the whole-file decoding tries after a failed UTF-8 (or cp1252) decoding.
_NEXT_ENCODING = {"utf-8": "cp1252", "cp1252": "latin-1"}


class NotStreamable(CalibError):
    """The file holds something only the whole-file path reproduces (a quote, a bare ``\\r``, ...)."""


class RetryEncoding(NotStreamable):
    """A later chunk is not text in the head's encoding: stream again in :attr:`encoding`."""

    def __init__(self, encoding: str):
        super().__init__(f"not in the detected encoding; next: {encoding}")
        self.encoding = encoding


@dataclass(frozen=True)
class Chunk:
    """Consecutive rows of a streamed file.

    Attributes
    ----------
    table : RawTable
        The rows (header checked, cells not yet validated); ``table.first_row`` is the file
        row of the first.
    lines : bytes or None
        CSV: these rows' lines exactly as in the file (each with its line end).
    arrow : pyarrow.Table or None
        Parquet: these rows as read (the file's own types).
    """

    table: RawTable
    lines: bytes | None = None
    arrow: Any = None


class ChunkedFile:
    """A CSV or Parquet file read chunk by chunk (:func:`open_chunked`); iterate it once.

    Every chunk but the last holds a multiple of ``block_rows`` rows (the caller's blocks,
    e.g. :data:`calib.runtime.CHUNK_ROWS`, fall on the same file rows whether the file is
    read whole or in chunks), about :data:`CHUNK_BYTES` of the file.

    Attributes
    ----------
    name, path : str
        The file's name and path.
    format : str
        ``"csv"`` or ``"parquet"``.
    columns : list of str
        Column names (stripped, checked).
    sep, decimal, encoding : str
        CSV separator, decimal mark, text encoding (``","``, ``"."``, None for Parquet).
    header_line : bytes
        CSV: the header line as in the file (with its line end).
    header_text : str
        CSV: the header line decoded, without its line end.
    template : RawTable
        No rows, the file's columns: checks of the header before anything is written.
    chunk_rows : int
        Rows per chunk.
    sha256 : str
        SHA-256 of the file's bytes (once iterated to the end).
    tail : bytes
        CSV: the blank lines after the last row, as in the file (once iterated to the end).
    rows : int
        Rows read (once iterated to the end).
    """

    def __init__(self, path: Path, fmt: str, columns: list[str], *, row_bytes: float, block_rows: int,
                 sep: str = ",", decimal: str = ".", encoding: str | None = None, header_line: bytes = b"",
                 header_text: str = "", parquet: Any = None, float_columns: frozenset[str] = frozenset()):
        import pandas as pd

        self.path, self.name, self.format = str(path), path.name, fmt
        self.columns, self.sep, self.decimal, self.encoding = columns, sep, decimal, encoding
        self.header_line, self.header_text = header_line, header_text
        self.template = self._table(pd.DataFrame({c: pd.Series([], dtype=object) for c in columns}), 2)
        self.chunk_rows = block_rows * max(1, round(CHUNK_BYTES / (block_rows * max(row_bytes, 1.0))))
        self.sha256, self.tail, self.rows = "", b"", 0
        self._parquet, self._float_columns = parquet, float_columns

    def _table(self, frame: pd.DataFrame, first_row: int) -> RawTable:
        return RawTable(frame=frame, name=self.name, path=self.path, decimal=self.decimal, sha256="",
                        format=self.format, sep=self.sep, encoding=self.encoding, first_row=first_row)

    def __iter__(self) -> Iterator[Chunk]:
        """The chunks; trailing blank rows are held back until a filled row follows (then they are
        rows, with their errors) or the file ends (then they are dropped, as read_table drops them)."""
        held: list[tuple[pd.DataFrame, Any, int]] = []  # a chunk ending in blank rows, and all-blank ones after it
        row = 2
        for frame, payload in (self._csv_parts() if self.format == "csv" else self._parquet_parts()):
            filled = last_filled_row(frame)
            if filled >= 0:
                for part in held:
                    yield self._chunk(*part)
                held = []
            if filled == len(frame) - 1:
                yield self._chunk(frame, payload, row)
            else:
                held.append((frame, payload, row))
            row += len(frame)
        if held:  # blank rows at the end of the file
            frame, payload, first = held[0]
            last = last_filled_row(frame)
            rest = [p for _, p, _ in held[1:]]
            if self.format == "csv":
                cut = int(payload[1][last]) if last >= 0 else 0
                self.tail = payload[0][cut:] + b"".join(p[0] for p in rest)
                if self.tail.strip():  # e.g. ",,," lines: the whole-file path rewrites the file
                    raise NotStreamable(f"{self.name}: trailing lines of separators only")
                payload = (payload[0][:cut], payload[1][: last + 1])
            else:
                payload = payload.slice(0, last + 1)
            if last >= 0:
                yield self._chunk(frame.iloc[: last + 1], payload, first)
            row = first + last + 1
        self.rows = row - 2
        if not self.rows:
            raise IngestError(f"{self.name}: no data rows; expected at least one row of readings below the header")

    def _chunk(self, frame: pd.DataFrame, payload: Any, first_row: int) -> Chunk:
        table = self._table(frame, first_row)
        return Chunk(table, lines=payload[0]) if self.format == "csv" else Chunk(table, arrow=payload)

    # ------------------------------------------------------------------ CSV
    def _csv_parts(self) -> Iterator[tuple[pd.DataFrame, tuple[bytes, np.ndarray]]]:
        """``chunk_rows`` lines at a time: their cells, and (their bytes, the offset after each line)."""
        digest = hashlib.sha256()
        n, row, buf = self.chunk_rows, 2, b""
        with open(self.path, "rb") as fh:
            head = fh.read(len(self.header_line))
            digest.update(head)
            if head != self.header_line:
                raise NotStreamable(f"{self.name} changed while being read")
            while True:
                block = fh.read(max(CHUNK_BYTES, 1 << 20))
                digest.update(block)
                buf += block
                newlines = np.flatnonzero(np.frombuffer(buf, dtype=np.uint8) == 10)
                while len(newlines) >= n or (not block and buf):
                    cut = int(newlines[n - 1]) + 1 if len(newlines) >= n else len(buf)
                    body, buf = buf[:cut], buf[cut:]
                    newlines = newlines[n:] - cut
                    frame, ends = self._parse(body, row)
                    row += len(frame)
                    yield frame, (body, ends)
                if not block:
                    break
        self.sha256 = digest.hexdigest()

    def _parse(self, body: bytes, first_row: int) -> tuple[pd.DataFrame, np.ndarray]:
        """The rows of ``body`` (whole lines) as text cells, and the byte offset after each row's line."""
        if b'"' in body or body.count(b"\r") != body.count(b"\r\n"):
            raise NotStreamable(f"{self.name}: quoted fields or bare carriage returns after row {first_row}")
        enc = "utf-8" if self.encoding == "utf-8-sig" else self.encoding
        if body.isascii() or enc == "latin-1":
            utf8 = body if body.isascii() else body.decode(enc).encode("utf-8")
        else:
            try:
                text = body.decode(enc)
            except UnicodeDecodeError:
                if enc in _NEXT_ENCODING and self.encoding == enc:
                    raise RetryEncoding(_NEXT_ENCODING[enc]) from None
                raise NotStreamable(f"{self.name}: not {enc} text after row {first_row}") from None
            utf8 = body if enc == "utf-8" else text.encode("utf-8")
        ends = np.flatnonzero(np.frombuffer(body, dtype=np.uint8) == 10) + 1
        if not body.endswith(b"\n"):
            ends = np.append(ends, len(body))
        frame = self._parse_arrow(utf8)
        if frame is None:  # refused by pyarrow: pandas, exactly as the whole-file path parses
            text = self.header_line.decode(self.encoding or "utf-8") + utf8.decode("utf-8")
            frame = parse_csv(self.name, text, self.sep, row_offset=first_row - 2).iloc[1:].reset_index(drop=True)
            frame.columns = self.columns
        if len(frame) != len(ends):  # a line end pyarrow or pandas saw differently
            raise NotStreamable(f"{self.name}: lines and rows differ after row {first_row}")
        return frame, ends

    def _parse_arrow(self, utf8: bytes) -> pd.DataFrame | None:
        import pyarrow as pa
        import pyarrow.csv as pcsv

        names = [str(i) for i in range(len(self.columns))]
        try:
            table = pcsv.read_csv(
                pa.py_buffer(utf8),
                # one block, one thread: as fast for a chunk of a few MiB, and no blocks held in parallel
                read_options=pcsv.ReadOptions(column_names=names, use_threads=False, block_size=max(len(utf8), 1 << 16)),
                parse_options=pcsv.ParseOptions(delimiter=self.sep, quote_char=False, ignore_empty_lines=False),
                convert_options=pcsv.ConvertOptions(column_types={n: pa.large_string() for n in names},
                                                    strings_can_be_null=False, quoted_strings_can_be_null=False),
            )
        except (pa.ArrowInvalid, ValueError):
            return None
        frame = table.to_pandas()
        frame.columns = self.columns
        return frame

    # ------------------------------------------------------------------ Parquet
    def _parquet_parts(self) -> Iterator[tuple[pd.DataFrame, pa.Table]]:
        """``chunk_rows`` rows at a time: their cells, and the rows as read."""
        import pyarrow as pa

        from .fsutil import sha256_file

        self.sha256 = sha256_file(self.path)
        n, parts, have = self.chunk_rows, [], 0
        pf = self._parquet
        try:
            for batch in pf.iter_batches(batch_size=n):
                parts.append(pa.Table.from_batches([batch]))
                have += batch.num_rows
                while have >= n:
                    table = pa.concat_tables(parts)
                    parts, have = [table.slice(n)], have - n
                    yield self._parquet_frame(table.slice(0, n)), table.slice(0, n)
            if have:
                table = pa.concat_tables(parts)
                yield self._parquet_frame(table), table
        finally:
            pf.close()

    def _parquet_frame(self, table: pa.Table) -> pd.DataFrame:
        """Cells as :func:`calib.ingest.read_table` holds them: ``to_pandas`` of the whole file, as objects."""
        import pyarrow.compute as pc

        for name in self._float_columns:  # an integer column with a null somewhere in the file
            i = table.schema.get_field_index(name)
            table = table.set_column(i, table.field(i).name, pc.cast(table.column(i), "float64", safe=False))
        frame = table.to_pandas(ignore_metadata=True).astype(object)
        frame.columns = self.columns
        return frame.reset_index(drop=True)


# --------------------------------------------------------------------------- opening
def open_chunked(path: str | Path, *, sep: str | None = None, decimal: str | None = None,
                 encoding: str | None = None, block_rows: int = 1) -> ChunkedFile | None:
    """Open ``path`` for streaming, or None when it is read whole (see the module notes).

    Parameters
    ----------
    path : str or Path
        The readings file.
    sep, decimal : str, optional
        CSV separator and decimal mark; detected on the head when not given.
    encoding : str, optional
        Text encoding to use (after :class:`RetryEncoding`); detected on the head when not given.
    block_rows : int, default=1
        Every chunk but the last holds a multiple of this many rows.

    Returns
    -------
    ChunkedFile or None

    Raises
    ------
    IngestError
        A header the whole-file path refuses too (duplicate, empty or control-character
        names, more columns than the limit, a blank first line), with the same message.
    RetryEncoding
        The head is not text in ``encoding``.
    """
    p = Path(path)
    try:
        st = os.stat(p)
    except OSError:
        return None  # the whole-file path names the problem
    suffix = p.suffix.lower()
    if (not stat.S_ISREG(st.st_mode) or st.st_size == 0 or st.st_size < stream_min_bytes()
            or suffix in COMPRESSIONS or suffix in _EXCEL):
        return None
    try:
        with open(p, "rb") as fh:
            head = fh.read(1 << 16)
            if sniff_compression(head) is not None or head[:4] == b"PAR1" or head[:2] == b"PK":
                return _open_parquet(p, block_rows) if suffix in _PARQUET and head[:4] == b"PAR1" else None
            if suffix in _PARQUET:
                return None
            while head.count(b"\n") < HEAD_LINES and len(head) < MAX_HEAD_BYTES:
                more = fh.read(1 << 20)
                if not more:
                    break
                head += more
    except OSError:
        return None
    whole = len(head) == st.st_size
    if not whole and (head.count(b"\n") < HEAD_LINES or b"\x00" in head[:4096]):
        return None  # the head would not decide what the whole file decides
    return _open_csv(p, head, whole, sep, decimal, encoding, block_rows)


def _open_parquet(p: Path, block_rows: int) -> ChunkedFile | None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(p)
        names = [str(n) for n in pf.schema_arrow.names]
    except Exception:  # the whole-file path names the problem
        return None
    check_width(len(names), p.name)
    cols = check_header(names, p.name)
    md = pf.metadata
    nulls: dict[str, int | None] = {}
    for field in pf.schema_arrow:
        if pa.types.is_integer(field.type):
            nulls[field.name] = 0
    for r in range(md.num_row_groups):
        rg = md.row_group(r)
        for c in range(rg.num_columns):
            col = rg.column(c)
            if col.path_in_schema in nulls and nulls[col.path_in_schema] is not None:
                s = col.statistics
                nulls[col.path_in_schema] = (nulls[col.path_in_schema] + s.null_count
                                             if s is not None and s.has_null_count else None)
    if any(v is None for v in nulls.values()):
        return None  # cannot tell whether pandas would make an integer column float
    size = sum(md.row_group(i).total_byte_size for i in range(md.num_row_groups))
    return ChunkedFile(p, "parquet", cols, row_bytes=size / max(1, md.num_rows), block_rows=block_rows, parquet=pf,
                       float_columns=frozenset(k for k, v in nulls.items() if v))


def _open_csv(p: Path, head: bytes, whole: bool, sep: str | None, decimal: str | None,
              encoding: str | None, block_rows: int) -> ChunkedFile | None:
    if not whole:
        head = head[: head.rfind(b"\n") + 1]  # whole lines only (a character may span the cut)
    if encoding is None:
        text, encoding = decode_text(head, p.name)
    else:
        try:
            text = head.decode(encoding)
        except UnicodeDecodeError:
            if encoding in _NEXT_ENCODING:
                raise RetryEncoding(_NEXT_ENCODING[encoding]) from None
            return None
    if encoding not in ASCII_COMPATIBLE or b'"' in head:
        return None
    lines = text.splitlines()
    if not whole and not any(ln.strip() for ln in lines):
        return None  # blank head: the whole-file path tells a blank first line from an empty file
    sep, decimal = csv_dialect(p.name, lines, sep, decimal)
    end = head.find(b"\n") + 1 or len(head)
    header_line = head[:end]
    header_text = header_line.decode(encoding).rstrip("\n").rstrip("\r")
    frame = parse_csv(p.name, header_text + "\n", sep)
    check_width(frame.shape[1], p.name)
    cols = check_header(list(frame.iloc[0]), p.name)
    row_bytes = (len(head) - end) / max(1, head.count(b"\n") - 1)
    return ChunkedFile(p, "csv", cols, row_bytes=row_bytes, block_rows=block_rows, sep=sep, decimal=decimal,
                       encoding=encoding, header_line=header_line, header_text=header_text)
