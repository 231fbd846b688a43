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

import numpy as np

from .artifact.store import list_versions, read_metadata, resolve_artifact, verify_artifact
from .errors import ArtifactError, ConfigError, IngestError
from .rawio import ASCII_COMPATIBLE
from .runtime import CalibrationModel, find_children

if TYPE_CHECKING:  # pragma: no cover
    from .ingest import RawTable

__all__ = ["predict_file", "inspect_artifact"]

_PARQUET = (".parquet", ".pq")
_EXCEL = (".xlsx", ".xlsm", ".xls")
_SEPS = (";", "\t", "|", ",")


# --------------------------------------------------------------------------- writing
def _float_text(values: np.ndarray, decimal: str) -> Any:
    """pyarrow string array: shortest text that reads back to the same float32."""
    import pyarrow as pa
    import pyarrow.compute as pc

    arr = pc.cast(pa.array(np.asarray(values, dtype=np.float32)), pa.string())
    return pc.replace_substring(arr, ".", ",") if decimal == "," else arr


def _text_columns(cols: dict[str, np.ndarray], decimal: str) -> dict[str, Any]:
    import pyarrow as pa
    import pyarrow.compute as pc

    out: dict[str, Any] = {}
    for k, v in cols.items():
        if v.dtype == np.bool_:
            out[k] = pc.if_else(pa.array(v), "True", "False")
        elif v.dtype == object:  # words without separators (calib.trust.reasons)
            out[k] = pa.array([str(t) for t in v], type=pa.string())
        else:
            out[k] = _float_text(v, decimal)
    return out


def _header_sep(header: str, columns: list[str], given: str | None) -> str | None:
    """The separator that splits the header line back into exactly ``columns``."""
    for sep in ((given,) if given else _SEPS):
        if [c.strip() for c in header.split(sep)] == columns:
            return sep
    return None


def _append_to_lines(raw: bytes, n_rows: int, sep: str, header_add: list[str], cells: list[Any]) -> bytes | None:
    """The CSV bytes with ``sep + new cells`` appended to every line, or None if unsafe.

    Unsafe (-> None): quoted fields (a cell may span lines) or lines that do not map one
    to one onto the parsed rows.
    """
    import pyarrow.compute as pc

    if b'"' in raw:
        return None
    lines = raw.split(b"\n")
    if len(lines) < n_rows + 1 or any(ln.strip() for ln in lines[n_rows + 1 :]):
        return None
    sep_b = sep.encode("ascii")
    joined = pc.binary_join_element_wise(*cells, sep).to_pylist()
    suffixes = [b""] + [sep_b + s.encode("ascii") for s in joined]
    suffixes[0] = sep_b + sep.join(header_add).encode("utf-8")
    out = []
    for ln, suf in zip(lines, suffixes):
        if ln.endswith(b"\r"):
            out.append(ln[:-1] + suf + b"\r")
        else:
            out.append(ln + suf)
    out.extend(lines[n_rows + 1 :])
    return b"\n".join(out)


def _write_csv(tmp: Path, table: RawTable, raw: bytes | None, sep: str, decimal: str,
               new: dict[str, np.ndarray]) -> None:
    cells = _text_columns(new, decimal)
    if raw is not None:
        data = _append_to_lines(raw, len(table.frame), sep, list(new), list(cells.values()))
        if data is not None:
            tmp.write_bytes(data)
            return
    frame = table.frame.copy()
    for k, v in cells.items():
        frame[k] = v.to_numpy(zero_copy_only=False)
    frame.to_csv(tmp, sep=sep, index=False, encoding="utf-8", lineterminator="\n")


def _write_parquet(tmp: Path, table: RawTable, new: dict[str, np.ndarray], trace: str) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    if table.format == "parquet" and table.raw is not None:
        t = pq.read_table(pa.BufferReader(table.raw))
    else:
        arrays = {}
        for c in table.columns:
            s = table.frame[c]
            try:
                arrays[c] = pa.array(s, from_pandas=True)
            except (pa.ArrowInvalid, pa.ArrowTypeError):  # mixed Excel cells: keep their text
                arrays[c] = pa.array(s.map(lambda v: None if v is None else str(v)), type=pa.string())
        t = pa.table(arrays)
    for k, v in new.items():
        if v.dtype == object:
            arr = pa.array([str(w) for w in v], type=pa.string())
        else:
            arr = pa.array(v if v.dtype == np.bool_ else v.astype(np.float64))
        t = t.append_column(k, arr)
    from .provenance import PROVENANCE_KEY

    t = t.replace_schema_metadata({**(t.schema.metadata or {}), PROVENANCE_KEY.encode(): trace.encode("utf-8")})
    pq.write_table(t, tmp)


# --------------------------------------------------------------------------- predict_file
def predict_file(
    model: CalibrationModel,
    data: str | Path,
    output: str | Path,
    *,
    sep: str | None = None,
    decimal: str | None = None,
    force: bool = False,
) -> dict[str, Any]:
    """Predict the target for every reading of a file and write the file with the results.

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
    from .fsutil import atomic_write, check_output_path, sha256_file
    from .ingest import read_table
    from .provenance import PROVENANCE_KEY, provenance, provenance_json, sidecar_path
    from .rawio import COMPRESSIONS

    t0 = time.perf_counter()
    if not isinstance(model, CalibrationModel):
        raise ConfigError(f"model must be a CalibrationModel (calib.load_model), got {type(model).__name__}")
    if sep is not None and sep not in _SEPS:
        raise ConfigError(f"sep must be one of ',', ';', '\\t', '|', got sep={sep!r}")
    if decimal is not None and decimal not in (".", ","):
        raise ConfigError(f"decimal must be '.' or ',', got decimal={decimal!r}")
    data, output = Path(data), Path(output)
    same = output.resolve() == data.resolve() or (
        output.exists() and data.exists() and os.path.samefile(output, data)
    )
    if same:
        raise ConfigError(f"output must differ from the input (the input is never overwritten), got output={str(output)!r}")
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
        check_output_path(side, force=force, what="provenance sidecar")

    table = read_table(data, sep=sep, decimal=decimal)
    added = model.output_columns()
    clash = [c for c in added if c in table.columns]
    if clash:
        raise IngestError(
            f"{table.name} row 1: column(s) {', '.join(clash)} already exist; rename them (or "
            "predict from the original readings file)"
        )
    x = model.readings(table)
    # the one inference path: spot routing and flags as in the Python API (calib.runtime)
    res = model.run(x, model.spots_of(table.frame))
    new = model.result_columns(res)
    oor = res.out_of_range
    # which artifact (and spot children) made the numbers: Parquet metadata, or a CSV sidecar
    trace = provenance(model, res.spot_models, input_file=data, input_sha256=table.sha256, rows=len(x),
                       columns_added=added)

    is_csv_in = table.format == "csv"
    if fmt == "csv":
        # the bytes already read (never the file again); lines are appended to only in an
        # encoding where ASCII is ASCII (UTF-16 input is rewritten as UTF-8 through pandas)
        raw = table.raw if is_csv_in and table.encoding in ASCII_COMPATIBLE else None
        out_sep = ","
        if raw is not None:
            header = raw.split(b"\n", 1)[0].rstrip(b"\r").decode(table.encoding or "latin-1")
            found = _header_sep(header, table.columns, sep)
            if found is None:
                raw = None  # cannot re-create the header reliably: rewrite through pandas
            out_sep = found or table.sep
        elif is_csv_in:
            out_sep = table.sep
        out_decimal = table.decimal if is_csv_in else "."
        if out_sep == out_decimal:
            out_decimal = "."
        # the CSV, then its provenance sidecar (with the CSV's SHA-256), each atomic; a CSV whose
        # sidecar cannot be written is removed again
        atomic_write(output, lambda tmp: _write_csv(tmp, table, raw, out_sep, out_decimal, new), overwrite=force)
        try:
            text = provenance_json(trace, sha256_file(output))
            atomic_write(side, lambda tmp: tmp.write_text(text, encoding="utf-8"), overwrite=force)
        except BaseException:
            output.unlink(missing_ok=True)
            raise
    else:
        atomic_write(output, lambda tmp: _write_parquet(tmp, table, new, provenance_json(trace)), overwrite=force)
    return {
        "input": str(data),
        "output": str(output),
        "format": fmt,
        "rows": int(len(x)),
        "out_of_range": int(oor.sum()),
        "out_of_range_reasons": _reason_counts(res.reason),
        "columns_added": added,
        "model": model.name,
        "version": model.version,
        "model_id": model.model_id,
        "target": model.target,
        "unit": model.unit,
        "seconds": round(time.perf_counter() - t0, 4),
        "provenance": str(side) if fmt == "csv" else f"{output} (Parquet metadata {PROVENANCE_KEY})",
        # spot routing (calib.runtime): rows predicted by a spot's child, {spot: child version}
        **({} if res.adjusted is None else {"adjusted": int(res.adjusted.sum()), "spot_models": dict(res.spot_models)}),
    }


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
