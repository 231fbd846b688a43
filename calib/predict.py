"""Batch inference on files, and inspection of artifacts.

readings file (CSV / Parquet / Excel) + :class:`~calib.runtime.CalibrationModel` ->
the same file with ``<target>_pred``, ``<target>_std`` and ``out_of_range`` appended.

:func:`predict_file` validates the readings against the artifact's schema exactly like
ingestion does for training data (each feature present by normalised or source name,
numbers finite, physically possible; errors name the file, row and column), then writes
every column of the input untouched, in its original order, plus the predictions.

Output format
-------------
The output file's suffix decides: ``.parquet``/``.pq`` -> Parquet, anything else -> CSV
(Excel output is not written; save as ``.csv`` and open that in Excel).

- CSV from a CSV input keeps the input's separator and decimal mark (a ``;``/``,``-file
  from a German lab stays one), its encoding, line endings and the exact text of every
  original cell: the new cells are appended to each line. (A file with quoted fields is
  rewritten through pandas instead: the same cells, re-quoted where needed, UTF-8.)
- CSV from Parquet/Excel uses ``,`` and ``.``.
- Predictions are written as the shortest text that reads back to the same float32
  value; ``out_of_range`` as ``True``/``False``.
- Parquet from a Parquet input keeps the input's columns and types; from CSV the original
  columns are stored as text (exactly as in the file); predictions are float64 (the
  float32 results) and ``out_of_range`` is boolean.
- Provenance (:mod:`calib.provenance`): which artifact made the numbers (name, version,
  model id, SHA-256 of ``model.onnx`` and of ``SHA256SUMS``, the spot children used, the
  input's SHA-256) is in a Parquet file's key-value metadata ``calib.provenance``, and for
  CSV in a sidecar ``<output>.json`` written atomically with it (replaced only with
  ``force``, like the CSV).

Large files: streamed
---------------------
A plain CSV or Parquet file of at least 16 MiB (``CALIB_STREAM_MIN_BYTES``, :mod:`calib.limits`)
is read, checked, predicted and written in chunks of about 2 MiB (:mod:`calib.chunks`): memory is
flat in the file's size (a 10M-row CSV in under 300 MB), and the input size limit (1 GiB read
into memory) does not apply. The output is the same as the whole-file path's, byte for byte for
CSV (a Parquet file the same table and metadata), written atomically as well: an error in a late
chunk (named by its file row) leaves no output and no temporary file, and an existing output
untouched. Read whole, as before: Excel, compressed files, UTF-16/UTF-32 text, CSV with quoted
fields (rewritten through pandas), named pipes and smaller files (see :mod:`calib.chunks` for
the rule). With several bad cells, a streamed file's error names the first chunk's first one.

Examples
--------
>>> import calib
>>> m = calib.load_model("models/foil-A")                                      # doctest: +SKIP
>>> predict_file(m, "readings.csv", "readings_o2.csv")                   # doctest: +SKIP
{'rows': 1000, 'out_of_range': 3, ...}
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .artifact.store import list_versions, read_metadata, resolve_artifact, verify_artifact
from .constraints import NAME, check_params
from .errors import ArtifactError, ConfigError, IngestError
from .outfile import (
    SEPARATORS,
    ParquetAppender,
    append_cells,
    append_to_lines,
    arrow_columns,
    header_sep,
    rewrite_csv,
    text_columns,
    with_predictions,
)
from .rawio import ASCII_COMPATIBLE
from . import runtime
from .runtime import CalibrationModel, Prediction, find_children

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

    from .chunks import ChunkedFile
    from .ingest import RawTable

__all__ = ["predict_file", "inspect_artifact"]

_PARQUET = (".parquet", ".pq")
_EXCEL = (".xlsx", ".xlsm", ".xls")


# --------------------------------------------------------------------------- predict_file
def predict_file(
    model: CalibrationModel,
    data: str | Path,
    output: str | Path,
    *,
    sep: str | None = None,
    decimal: str | None = None,
    force: bool = False,
    sheet: str | None = None,
) -> dict[str, Any]:
    """Predict the target for every reading of a file and write the file with the results.

    A large plain CSV or Parquet file is streamed in chunks (see the module notes): the same
    output, checks and errors, with memory flat in its size.

    Parameters
    ----------
    model : CalibrationModel
        From :func:`calib.load_model` (spot children are applied by spot id).
    data : str or Path
        Readings: CSV (any of ``,;\\t|`` separators, decimal point or comma), Parquet or
        Excel. Every feature of the model must be a column, by its normalised name (e.g.
        ``temperature_degC``) or by its source name in the source unit (e.g.
        ``temperature_K``; converted with :mod:`calib.units`). Other columns pass through.
    output : str or Path
        Result file; ``.parquet``/``.pq`` writes Parquet, any other suffix CSV (see the
        module notes). Written atomically; must differ from ``data``; its folder must exist;
        the output path policy of :func:`calib.fsutil.check_output_path` applies (no folder,
        link, device or pipe, nothing inside an artifact, an existing file only with ``force``).
    sep, decimal : str, optional
        CSV separator and decimal mark of ``data`` (detected when not given); a CSV output
        from a CSV input uses the same.
    force : bool, default=False
        Replace ``output`` if it exists (``--force``).
    sheet : str, optional
        The worksheet of an Excel ``data``, by name (``--sheet``); default: the first.

    Returns
    -------
    dict
        ``input``, ``output``, ``format``, ``rows``, ``out_of_range`` (count),
        ``columns_added``, ``model`` (name), ``version``, ``model_id``, ``target``, ``unit``,
        ``seconds``; for a model with spot routing (spot children from ``calib adjust``, or
        a spot-normalised batch model; :mod:`calib.runtime`) also ``adjusted`` (rows predicted
        by their spot's child; the ``adjusted`` column says which) and ``spot_models``.

    Raises
    ------
    IngestError
        Unreadable file, missing feature column, a cell that is not a finite number or is
        physically impossible (naming file, row and column), or an output column that
        already exists in ``data``. Nothing is written.
    ConfigError
        ``output`` is ``data``, an Excel or compressed file, a folder, link, device or pipe,
        inside an artifact, or exists (without ``force``); ``sep``/``decimal`` invalid.
    CalibError
        The output cannot be written (folder missing, read-only, disk full).
    """
    from .chunks import NotStreamable, RetryEncoding
    from .fsutil import check_output_path
    from .provenance import sidecar_path
    from .rawio import COMPRESSIONS

    t0 = time.perf_counter()
    if not isinstance(model, CalibrationModel):
        raise ConfigError(f"model must be a CalibrationModel (calib.load_model), got {type(model).__name__}")
    if sep is not None and sep not in SEPARATORS:
        raise ConfigError(f"sep must be one of ',', ';', '\\t', '|', got sep={sep!r}")
    if decimal is not None and decimal not in (".", ","):
        raise ConfigError(f"decimal must be '.' or ',', got decimal={decimal!r}")
    check_params({"sheet": sheet}, {"sheet": [None, *NAME]})  # a worksheet name, as [data] sheet
    data, output = Path(data), Path(output)
    if _same_file(output, data):
        raise ConfigError("output must differ from the input (the input is never overwritten), "
                          f"got output={str(output)!r}")
    if output.is_dir():
        raise ConfigError(f"output must be a file path, got the folder {str(output)!r}")
    out_suffix = output.suffix.lower()
    if out_suffix in _EXCEL or out_suffix in COMPRESSIONS:
        what = "Excel" if out_suffix in _EXCEL else "compressed output"
        raise ConfigError(f"output must be .csv or .parquet ({what} is not written), got output={str(output)!r}")
    check_output_path(output, force=force)
    fmt = "parquet" if out_suffix in _PARQUET else "csv"
    side = sidecar_path(output)
    if fmt == "csv":
        if _same_file(side, data):  # -o x.csv on the input x.csv.json: the sidecar would replace the input
            raise ConfigError(f"output's provenance sidecar {str(side)!r} is the input (the input is never "
                              "overwritten); choose another output name")
        check_output_path(side, force=force, what="provenance sidecar")

    with model.pinned_children():  # the same spot children for every chunk, the header and the provenance
        job = _Job(model, data, output, fmt, side, sep, decimal, force, sheet)
        totals = None
        stream = _open_stream(data, sep, decimal) if sheet is None else None  # a sheet: an Excel file, read whole
        while stream is not None and totals is None:
            try:
                totals = job.streamed(stream)
            except RetryEncoding as exc:  # a later chunk showed the file's encoding: start over in it
                stream = _open_stream(data, sep, decimal, exc.encoding)
            except NotStreamable:  # something only the whole-file path reproduces (a quote, ...)
                stream = None
        if totals is None:
            totals = job.whole()
    return job.summary(totals, time.perf_counter() - t0)


def _same_file(a: Path, b: Path) -> bool:
    """Whether writing ``a`` would replace ``b`` (the same path, or the same file through a link)."""
    return _resolved(a) == _resolved(b) or (a.exists() and b.exists() and os.path.samefile(a, b))


def _resolved(path: Path) -> Path:
    try:
        return path.resolve()
    except (OSError, RuntimeError):  # Python < 3.13 raises RuntimeError for a loop of links
        raise ConfigError(f"{str(path)!r}: a symbolic link in a loop (it never reaches a file); "
                          "expected a file, or a link to one") from None


def _open_stream(data: Path, sep: str | None, decimal: str | None, encoding: str | None = None) -> ChunkedFile | None:
    from .chunks import RetryEncoding, open_chunked

    while True:
        try:
            # chunks of whole blocks: the same inference calls as for the file read whole (_Job._predict)
            return open_chunked(data, sep=sep, decimal=decimal, encoding=encoding, block_rows=runtime.CHUNK_ROWS)
        except RetryEncoding as exc:
            encoding = exc.encoding


class _Totals:
    """Counts over the chunks of a file (one chunk for the whole-file path)."""

    def __init__(self) -> None:
        self.rows = self.out_of_range = 0
        self.reasons: dict[str, int] = {}
        self.adjusted: int | None = None
        self.spot_models: dict[str, str] = {}

    def add(self, res: Prediction) -> None:
        self.rows += len(res.out_of_range)
        self.out_of_range += int(res.out_of_range.sum())
        for k, v in _reason_counts(res.reason).items():
            self.reasons[k] = self.reasons.get(k, 0) + v
        if res.adjusted is not None:
            self.adjusted = (self.adjusted or 0) + int(res.adjusted.sum())
            self.spot_models.update(res.spot_models)


class _Job:
    """One ``predict_file`` call: the whole-file and the streamed path, writing the same output."""

    def __init__(self, model: CalibrationModel, data: Path, output: Path, fmt: str, side: Path,
                 sep: str | None, decimal: str | None, force: bool, sheet: str | None = None):
        self.model, self.data, self.output, self.fmt, self.side = model, data, output, fmt, side
        self.sep, self.decimal, self.force, self.sheet = sep, decimal, force, sheet
        self.added = model.output_columns()

    def _check_columns(self, table: RawTable) -> None:
        clash = [c for c in self.added if c in table.columns]
        if clash:
            raise IngestError(
                f"{table.name} row 1: column(s) {', '.join(clash)} already exist; rename them (or "
                "predict from the original readings file)"
            )

    def _predict(self, table: RawTable, totals: _Totals) -> dict[str, np.ndarray]:
        """The output columns of ``table``'s rows, predicted a block of file rows at a time.

        Blocks of :data:`calib.runtime.CHUNK_ROWS` rows counted from the file's first row, so the
        whole file and its chunks (whole blocks, :mod:`calib.chunks`) make the very same ONNX
        Runtime calls, for the batch model and for each spot's child: ONNX Runtime's last bit
        depends on a row's place in a call.
        """
        import numpy as np

        x = self.model.readings(table)
        spots = self.model.spots_of(table.frame)
        step = runtime.CHUNK_ROWS
        parts = []
        for start in range(0, len(x), step):
            block = slice(start, start + step)
            # the one inference path: spot routing and flags as in the Python API (calib.runtime)
            res = self.model.run(x[block], {c: ids[block] for c, ids in spots.items()})
            totals.add(res)
            parts.append(self.model.result_columns(res))
        assert parts and list(parts[0]) == self.added, self.added  # the spot children are pinned
        return {k: np.concatenate([p[k] for p in parts]) for k in self.added}

    def _trace(self, totals: _Totals, sha256: str) -> dict[str, Any]:
        from .provenance import provenance

        # which artifact (and spot children) made the numbers: Parquet metadata, or a CSV sidecar
        return provenance(self.model, totals.spot_models, input_file=self.data, input_sha256=sha256,
                          rows=totals.rows, columns_added=self.added)

    def _sidecar(self, trace: dict[str, Any], output_sha256: str) -> None:
        """The CSV's provenance sidecar (atomic); a CSV whose sidecar cannot be written is removed again."""
        from .fsutil import atomic_write
        from .provenance import provenance_json

        try:
            text = provenance_json(trace, output_sha256)
            atomic_write(self.side, lambda tmp: tmp.write_text(text, encoding="utf-8"), overwrite=self.force)
        except BaseException:
            self.output.unlink(missing_ok=True)
            raise

    # ---- the whole file in memory
    def whole(self) -> _Totals:
        from .fsutil import atomic_write, sha256_file
        from .ingest import read_table
        from .provenance import provenance_json

        table = read_table(self.data, sep=self.sep, decimal=self.decimal, sheet=self.sheet)
        self._check_columns(table)
        totals = _Totals()
        new = self._predict(table, totals)
        trace = self._trace(totals, table.sha256)
        is_csv_in = table.format == "csv"
        if self.fmt == "parquet":
            atomic_write(self.output, lambda tmp: _write_parquet(tmp, table, new, provenance_json(trace)),
                         overwrite=self.force)
            return totals
        # the bytes already read (never the file again); lines are appended to only in an
        # encoding where ASCII is ASCII (UTF-16 input is rewritten as UTF-8 through pandas)
        raw = table.raw if is_csv_in and table.encoding in ASCII_COMPATIBLE else None
        out_sep = ","
        if raw is not None:
            header = raw.split(b"\n", 1)[0].rstrip(b"\r").decode(table.encoding or "latin-1")
            found = header_sep(header, table.columns, self.sep)
            if found is None:
                raw = None  # cannot re-create the header reliably: rewrite through pandas
            out_sep = found or table.sep
        elif is_csv_in:
            out_sep = table.sep
        out_decimal = table.decimal if is_csv_in else "."
        if out_sep == out_decimal:
            out_decimal = "."
        # the CSV, then its provenance sidecar (with the CSV's SHA-256), each atomic
        atomic_write(self.output, lambda tmp: _write_csv(tmp, table, raw, out_sep, out_decimal, new),
                     overwrite=self.force)
        self._sidecar(trace, sha256_file(self.output))
        return totals

    # ---- streamed, chunk by chunk
    def streamed(self, src: ChunkedFile) -> _Totals:
        """Predict ``src`` chunk by chunk into a temporary file, renamed onto the output at the end.

        Raises
        ------
        NotStreamable, RetryEncoding
            (from :mod:`calib.chunks`) The temporary file is gone; read the file whole, or again.
        """
        import hashlib

        from .chunks import NotStreamable
        from .fsutil import atomic_path
        from .provenance import provenance_json

        self._check_columns(src.template)
        self.model.readings(src.template)  # the features' columns (names, units): before anything is written
        csv_in = src.format == "csv"
        out_sep, out_decimal = ",", "."
        if self.fmt == "csv" and csv_in:
            out_sep = header_sep(src.header_text, src.columns, self.sep)
            if out_sep is None:
                raise NotStreamable(f"{src.name}: the header cannot be written back as it is")
            out_decimal = src.decimal if src.decimal != out_sep else "."
        totals = _Totals()
        digest = hashlib.sha256()
        with atomic_path(self.output, suffix=self.output.suffix, overwrite=self.force) as tmp:
            if self.fmt == "parquet":
                sink = ParquetAppender(tmp)
                try:
                    for chunk in src:
                        new = self._predict(chunk.table, totals)
                        sink.write(with_predictions(arrow_columns(chunk.table.frame) if csv_in else chunk.arrow,
                                                    new))
                    trace = self._trace(totals, src.sha256)
                    sink.close(provenance_json(trace))
                finally:
                    sink.close(None)
                return totals
            with open(tmp, "wb") as fh:
                for i, chunk in enumerate(src):
                    cells = text_columns(self._predict(chunk.table, totals), out_decimal)
                    if csv_in:
                        block = append_cells(src.header_line + chunk.lines if i == 0 else chunk.lines, out_sep,
                                             list(cells.values()), header=self.added if i == 0 else None)
                    else:
                        block = rewrite_csv(chunk.table.frame, cells, out_sep, header=i == 0).encode("utf-8")
                    fh.write(block)
                    digest.update(block)
                fh.write(src.tail)
                digest.update(src.tail)
            trace = self._trace(totals, src.sha256)
        self._sidecar(trace, digest.hexdigest())
        return totals

    def summary(self, totals: _Totals, seconds: float) -> dict[str, Any]:
        from .provenance import PROVENANCE_KEY

        model = self.model
        return {
            "input": str(self.data),
            "output": str(self.output),
            "format": self.fmt,
            "rows": totals.rows,
            "out_of_range": totals.out_of_range,
            "out_of_range_reasons": dict(sorted(totals.reasons.items())),
            "columns_added": self.added,
            "model": model.name,
            "version": model.version,
            "model_id": model.model_id,
            "target": model.target,
            "unit": model.unit,
            "seconds": round(seconds, 4),
            "provenance": str(self.side) if self.fmt == "csv" else f"{self.output} (Parquet metadata {PROVENANCE_KEY})",
            # spot routing (calib.runtime): rows predicted by a spot's child, {spot: child version}
            **({} if totals.adjusted is None else {"adjusted": totals.adjusted,
                                                   "spot_models": dict(totals.spot_models)}),
        }


# --------------------------------------------------------------------------- whole-file writers
def _write_csv(tmp: Path, table: RawTable, raw: bytes | None, sep: str, decimal: str,
               new: dict[str, np.ndarray]) -> None:
    cells = text_columns(new, decimal)
    if raw is not None:
        data = append_to_lines(raw, len(table.frame), sep, list(new), list(cells.values()))
        if data is not None:
            tmp.write_bytes(data)
            return
    rewrite_csv(table.frame, cells, sep, tmp)


def _write_parquet(tmp: Path, table: RawTable, new: dict[str, np.ndarray], trace: str) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from .outfile import provenance_metadata

    if table.format == "parquet" and table.raw is not None:
        # the file's own columns and types; without the trailing blank rows read_table dropped
        t = pq.read_table(pa.BufferReader(table.raw)).slice(0, len(table.frame))
    else:
        t = arrow_columns(table.frame)
    t = with_predictions(t, new)
    pq.write_table(t.replace_schema_metadata(provenance_metadata(t.schema, trace)), tmp)


def _reason_counts(reason: Any) -> dict[str, int]:
    """How many rows each check flagged (an input's name, ``joint``, ``output``, ...)."""
    counts: dict[str, int] = {}
    if reason is None:
        return counts
    for text in reason[reason != ""]:
        for word in str(text).split(" + "):
            counts[word] = counts.get(word, 0) + 1
    return dict(sorted(counts.items()))


# --------------------------------------------------------------------------- inspect
def inspect_artifact(path: str | Path, verify: bool = False) -> dict[str, Any]:
    """What an artifact holds, and optionally whether it passes verification.

    Parameters
    ----------
    path : str or Path
        Version folder, or name folder (-> latest version).
    verify : bool, default=False
        Run :func:`calib.artifact.verify_artifact` (checksums, no pickles, safe Keras file).

    Returns
    -------
    dict
        ``path``, ``name``, ``version``, ``versions`` (all versions of the name),
        ``model_id``, ``created_utc``, ``schema_version``, ``software``, ``features``,
        ``target``, ``aux_targets``, ``outputs``, ``has_std``, ``hyperparameters``, ``data``,
        ``metrics`` (``cv`` summary, ``test``, ``physics_fit``), ``spot_children`` ({spot: child
        folder}), ``requires_adjustment`` and ``verification``: None when
        not run, else ``{"ok": True, ...}`` or ``{"ok": False, "error": ..., "kind": ...}``.

    Raises
    ------
    ArtifactError
        No artifact at ``path`` or an unreadable ``calibration.json``.
    """
    vdir = resolve_artifact(path)
    verification: dict[str, Any] | None = None
    if verify:
        try:
            verification = verify_artifact(vdir)
        except ArtifactError as exc:
            verification = {"ok": False, "error": str(exc), "kind": type(exc).__name__}
    meta = read_metadata(vdir)
    cv = meta.get("cv")
    outputs = list((meta.get("onnx") or {}).get("outputs") or [])
    return {
        "path": str(vdir),
        "name": meta.get("name", vdir.parent.name),
        "version": meta.get("version"),
        "versions": list_versions(vdir.parent),
        "model_id": meta.get("model_id"),
        "created_utc": meta.get("created_utc"),
        "schema_version": meta.get("schema_version"),
        "software": meta.get("versions"),
        "features": meta.get("features"),
        "target": meta.get("target"),
        "aux_targets": meta.get("aux_targets") or [],
        "outputs": outputs,
        "has_std": len(outputs) > 1,
        "hyperparameters": meta.get("hyperparameters"),
        "data": meta.get("data"),
        "metrics": {
            "cv": cv.get("summary", cv) if isinstance(cv, dict) else cv,
            "test": meta.get("test"),
            "physics_fit": meta.get("physics_fit", meta.get("baseline")),
        },
        "spot_children": {s: str(p) for s, (_, p) in find_children(vdir).items()},
        "requires_adjustment": bool(meta.get("spot_normalisation")),
        "verification": verification,
    }
