"""The cells of a predictions file: what :mod:`calib.predict` writes, whole or chunk by chunk.

Both paths of ``calib predict`` (the whole file in memory, or streamed in chunks) write a file
through these functions, so a file predicted either way has the same bytes (CSV) or the same
table (Parquet):

- :func:`text_columns`: the new cells as text (the shortest text that reads back to the same
  float32; ``True``/``False``; the out-of-range reasons as they are).
- :func:`append_cells`: CSV lines with the new cells appended, each line keeping its own text
  and line end (``\\n`` or ``\\r\\n``); :func:`append_to_lines` for a whole file, or None
  where that would not be safe (quoted fields, a bare ``\\r``, lines that do not map one to
  one onto the rows).
- :func:`rewrite_csv`: a frame written through pandas (Parquet/Excel input, quoted CSV).
- :func:`arrow_columns`, :func:`with_predictions`, :func:`provenance_metadata`: the Parquet table;
  :class:`ParquetAppender` writes it a chunk at a time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd
    import pyarrow as pa

__all__ = ["SEPARATORS", "text_columns", "header_sep", "append_cells", "append_to_lines", "rewrite_csv",
           "arrow_columns", "with_predictions", "provenance_metadata", "ParquetAppender"]

#: CSV separators calib reads (and writes back).
SEPARATORS = (";", "\t", "|", ",")


def _float_text(values: np.ndarray, decimal: str) -> Any:
    """pyarrow string array: shortest text that reads back to the same float32."""
    import pyarrow as pa
    import pyarrow.compute as pc

    arr = pc.cast(pa.array(np.asarray(values, dtype=np.float32)), pa.string())
    return pc.replace_substring(arr, ".", ",") if decimal == "," else arr


def text_columns(cols: Mapping[str, np.ndarray], decimal: str) -> dict[str, Any]:
    """The output columns (:meth:`calib.runtime.CalibrationModel.result_columns`) as pyarrow string arrays.

    Parameters
    ----------
    cols : mapping of str to ndarray
        float (written as float32 text with ``decimal``), bool (``True``/``False``) or object
        (words without separators, :func:`calib.trust.reasons`).
    decimal : str
        ``"."`` or ``","``.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    out: dict[str, Any] = {}
    for k, v in cols.items():
        if v.dtype == np.bool_:
            out[k] = pc.if_else(pa.array(v), "True", "False")
        elif v.dtype == object:
            out[k] = pa.array([str(t) for t in v], type=pa.string())
        else:
            out[k] = _float_text(v, decimal)
    return out


def header_sep(header: str, columns: Sequence[str], given: str | None) -> str | None:
    """The separator that splits the header line back into exactly ``columns``, or None."""
    for sep in ((given,) if given else SEPARATORS):
        if [c.strip() for c in header.split(sep)] == list(columns):
            return sep
    return None


def _line_ends(raw: bytes) -> np.ndarray:
    """Offset of each line's end in ``raw`` (before its ``\\r\\n`` or ``\\n``; the last line may have none)."""
    buf = np.frombuffer(raw, dtype=np.uint8)
    ends = np.flatnonzero(buf == 10)
    if len(buf) and buf[-1] != 10:
        ends = np.append(ends, len(buf))
    cr = np.zeros(len(ends), dtype=bool)
    inside = ends > 0
    cr[inside] = buf[ends[inside] - 1] == 13
    return ends - cr


def append_cells(raw: bytes, sep: str, cells: Sequence[Any], header: Sequence[str] | None = None) -> Any:
    """``raw`` with ``sep`` and the new cells inserted at the end of each line.

    Parameters
    ----------
    raw : bytes
        Exactly one line per row (after the header line when ``header`` is given), each ending
        in ``\\n`` or ``\\r\\n`` except perhaps the last; an ASCII-compatible encoding.
    sep : str
        The separator.
    cells : sequence of pyarrow string arrays
        One per new column (:func:`text_columns`), one value per row.
    header : sequence of str, optional
        The new column names, appended to the first line.

    Returns
    -------
    pyarrow.Buffer
        The bytes (a buffer: write it, hash it, or ``bytes()`` it).

    Raises
    ------
    ValueError
        ``raw`` does not hold one line per row.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    n = len(cells[0]) if cells else 0
    ends = _line_ends(raw)
    if len(ends) != n + (header is not None):
        raise ValueError(f"{len(ends)} lines for {n} rows" + (" and a header" if header is not None else ""))
    if not len(ends):
        return pa.py_buffer(raw)
    # raw cut just before each line's end: piece i = (end of line i-1) + line i's text; the last piece
    # also holds the last line end
    offsets = np.concatenate([[0], ends, [len(raw)]]).astype(np.int64)
    pieces = pa.LargeBinaryArray.from_buffers(pa.large_binary(), len(offsets) - 1,
                                              [None, pa.py_buffer(offsets), pa.py_buffer(raw)])
    sep_b = pa.scalar(sep.encode("ascii"), pa.large_binary())
    empty = pa.scalar(b"", pa.large_binary())
    parts = []
    if header is not None:
        parts.append(pa.array([(sep + sep.join(header)).encode("utf-8")], pa.large_binary()))
    if n:
        parts.append(pc.binary_join_element_wise(empty, *(pc.cast(c, pa.large_binary()) for c in cells), sep_b))
    parts.append(pa.array([b""], pa.large_binary()))
    joined = pc.binary_join_element_wise(pieces, pa.concat_arrays(parts), empty)
    offs = np.frombuffer(joined.buffers()[1], dtype=np.int64)[joined.offset:joined.offset + len(joined) + 1]
    return joined.buffers()[2].slice(int(offs[0]), int(offs[-1] - offs[0]))


def append_to_lines(raw: bytes, n_rows: int, sep: str, header_add: Sequence[str], cells: Sequence[Any]) -> Any:
    """A whole CSV file's bytes with the new cells appended to its header and rows, or None if unsafe.

    Unsafe (-> None, the caller rewrites the file through pandas): quoted fields (a cell may
    span lines), a bare ``\\r`` (a line end to the CSV parser, not to this function), or lines
    that do not map one to one onto the ``n_rows`` rows read (only blank lines may follow them).
    """
    if b'"' in raw or raw.count(b"\r") != raw.count(b"\r\n"):
        return None
    newlines = np.flatnonzero(np.frombuffer(raw, dtype=np.uint8) == 10)
    if len(newlines) >= n_rows + 1:
        cut = int(newlines[n_rows]) + 1
    elif len(newlines) == n_rows and not raw.endswith(b"\n"):
        cut = len(raw)  # the last row's line has no line end
    else:
        return None
    if raw[cut:].strip():
        return None
    body = append_cells(raw[:cut], sep, cells, header=header_add)
    return body.to_pybytes() + raw[cut:]


def rewrite_csv(frame: pd.DataFrame, cells: Mapping[str, Any], sep: str, target: Any = None,
                header: bool = True) -> str | None:
    """``frame`` plus the new cells as CSV through pandas (UTF-8, ``\\n``, re-quoted where needed).

    Written to ``target`` (a path), or returned as text when ``target`` is None.
    """
    frame = frame.copy()
    for k, v in cells.items():
        frame[k] = v.to_numpy(zero_copy_only=False)
    return frame.to_csv(target, sep=sep, index=False, header=header, encoding="utf-8", lineterminator="\n")


def arrow_columns(frame: pd.DataFrame) -> pa.Table:
    """The columns of a CSV/Excel frame as a pyarrow table (types as inferred; mixed Excel cells as text)."""
    import pyarrow as pa

    arrays = {}
    for c in frame.columns:
        s = frame[c]
        try:
            arrays[c] = pa.array(s, from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError):  # mixed Excel cells: keep their text
            arrays[c] = pa.array(s.map(lambda v: None if v is None else str(v)), type=pa.string())
    return pa.table(arrays)


def with_predictions(table: pa.Table, new: Mapping[str, np.ndarray]) -> pa.Table:
    """``table`` plus the output columns: float64 (the float32 results), bool, text."""
    import pyarrow as pa

    for k, v in new.items():
        if v.dtype == object:
            arr = pa.array([str(w) for w in v], type=pa.string())
        else:
            arr = pa.array(v if v.dtype == np.bool_ else v.astype(np.float64))
        table = table.append_column(k, arr)
    return table


def provenance_metadata(schema: pa.Schema, trace: str) -> dict[bytes, bytes]:
    """``schema``'s metadata plus the provenance record (:data:`calib.provenance.PROVENANCE_KEY`)."""
    from .provenance import PROVENANCE_KEY

    return {**(schema.metadata or {}), PROVENANCE_KEY.encode(): trace.encode("utf-8")}


class ParquetAppender:
    """A Parquet file written a table at a time; :meth:`close` adds the provenance record.

    The record goes into the file's key-value metadata and into the Arrow schema stored with
    it (``ARROW:schema``), where :func:`pyarrow.parquet.write_table` puts a table's schema
    metadata: the file reads back as the whole-file path's does.
    """

    def __init__(self, path: Any):
        self.path, self.writer, self.schema = path, None, None

    def write(self, table: pa.Table) -> None:
        import pyarrow.parquet as pq

        if self.writer is None:
            self.schema = table.schema
            self.writer = pq.ParquetWriter(self.path, table.schema)
        self.writer.write_table(table)

    def close(self, trace: str | None) -> None:
        """Finish the file (with the provenance record ``trace``; None: abandoned, no record)."""
        import base64

        if self.writer is None:
            return
        if trace is not None:
            meta = provenance_metadata(self.schema, trace)
            stored = base64.b64encode(self.schema.with_metadata(meta).serialize().to_pybytes())
            self.writer.add_key_value_metadata({k.decode(): v.decode("utf-8") for k, v in meta.items()}
                                               | {"ARROW:schema": stored.decode("ascii")})
        self.writer.close()
        self.writer = None
