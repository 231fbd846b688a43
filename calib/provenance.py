"""Which artifact made a predictions file: a machine-readable record written with it.

Every file ``calib predict`` (:func:`calib.predict.predict_file`) writes says where its
numbers come from:

- **Parquet**: the file's key-value metadata holds ``calib.provenance``, a JSON text;
- **CSV**: a sidecar ``<output>.json`` (e.g. ``predictions.csv.json``) holds the same JSON
  plus the CSV's own SHA-256, so a sidecar that does not belong to the CSV beside it is
  recognised. Both files are written atomically, the CSV first (a CSV whose sidecar cannot
  be written is removed again); an existing sidecar is replaced only with ``--force``,
  like the CSV.

The record (:func:`provenance`)::

    {"calib_provenance": 1, "created_utc": "...", "calib_version": "...",
     "artifact": {"name", "version", "model_id", "path", "onnx_sha256", "sha256sums_sha256"},
     "spot_models": {spot: {the same keys, for the spot child used}},
     "input": {"file", "sha256", "rows"}, "columns_added": [...]}

``onnx_sha256`` is the SHA-256 of the artifact's ``model.onnx``, ``sha256sums_sha256`` that
of its ``SHA256SUMS`` (which pins every file of the version). :func:`read_provenance` reads
the record back from either form.

Examples
--------
>>> read_provenance("predictions.parquet")["artifact"]["model_id"]        # doctest: +SKIP
'3f2a...'
"""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from .errors import ArtifactError, IngestError
from .fsutil import sha256_file

if TYPE_CHECKING:  # pragma: no cover
    from .runtime import CalibrationModel

__all__ = ["PROVENANCE_KEY", "provenance", "sidecar_path", "provenance_json", "read_provenance"]

#: Key of the record in a Parquet file's key-value metadata.
PROVENANCE_KEY = "calib.provenance"
_FORMAT = 1


def sidecar_path(output: str | Path) -> Path:
    """The sidecar of a CSV predictions file: ``<output>.json``."""
    p = Path(output)
    return p.with_name(p.name + ".json")


def _artifact_entry(model: CalibrationModel) -> dict[str, Any]:
    from .artifact.store import SUMS_FILE

    try:
        sums = hashlib.sha256((model.path / SUMS_FILE).read_bytes()).hexdigest()
    except OSError:
        sums = None
    return {"name": model.name, "version": model.version, "model_id": model.model_id, "path": str(model.path),
            "onnx_sha256": hashlib.sha256(model.onnx_bytes).hexdigest(), "sha256sums_sha256": sums}


def provenance(model: CalibrationModel, spot_models: Mapping[str, str], *, input_file: str | Path,
               input_sha256: str | None, rows: int, columns_added: Sequence[str]) -> dict[str, Any]:
    """The provenance record of a predictions file.

    Parameters
    ----------
    model : CalibrationModel
        The model that predicted (a batch model or a child).
    spot_models : mapping of str to str
        ``{spot: child version}`` of the spot children that predicted rows
        (:attr:`calib.runtime.Prediction.spot_models`).
    input_file : str or Path
        The readings file.
    input_sha256 : str or None
        SHA-256 of the readings file's bytes.
    rows : int
        Rows predicted.
    columns_added : sequence of str
        The columns the predictions added.

    Returns
    -------
    dict
        Plain JSON (see the module notes).
    """
    from . import __version__

    children: dict[str, Any] = {}
    for spot, version in sorted(spot_models.items()):
        try:
            child = model.child(spot)
        except ArtifactError:
            child = None
        children[spot] = (_artifact_entry(child) if child is not None and child.version == version
                          else {"version": version})
    return {
        "calib_provenance": _FORMAT,
        "created_utc": datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "calib_version": __version__,
        "artifact": _artifact_entry(model),
        "spot_models": children,
        "input": {"file": Path(input_file).name, "sha256": input_sha256, "rows": int(rows)},
        "columns_added": list(columns_added),
    }


def provenance_json(record: Mapping[str, Any], output_sha256: str | None = None) -> str:
    """The record as JSON text; for a CSV sidecar with the CSV's own SHA-256 (``output``)."""
    doc = dict(record)
    if output_sha256 is not None:
        doc["output"] = {"sha256": output_sha256}
    return json.dumps(doc, indent=2, sort_keys=False) + "\n"


def read_provenance(path: str | Path) -> dict[str, Any]:
    """Read the provenance record of a predictions file written by ``calib predict``.

    Parameters
    ----------
    path : str or Path
        A ``.parquet``/``.pq`` file (its key-value metadata) or a CSV file (its sidecar
        ``<path>.json``, checked against the CSV's SHA-256).

    Returns
    -------
    dict
        See the module notes.

    Raises
    ------
    IngestError
        No record (a file not written by ``calib predict``), a malformed one, or a sidecar
        whose SHA-256 does not match the CSV beside it.
    """
    p = Path(path)
    if p.suffix.lower() in (".parquet", ".pq"):
        import pyarrow.parquet as pq

        try:  # the file's key-value metadata (a streamed file also has it in its stored Arrow schema)
            meta = pq.ParquetFile(p).metadata.metadata or {}
        except Exception as exc:  # pyarrow: not a Parquet file, unreadable
            raise IngestError(f"{p.name}: cannot read its Parquet metadata ({exc})") from None
        text = meta.get(PROVENANCE_KEY.encode())
        if text is None:
            raise IngestError(f"{p.name}: no {PROVENANCE_KEY} metadata (not written by calib predict)")
        return _parse(text, p.name)
    side = sidecar_path(p)
    try:
        text = side.read_bytes()
    except OSError as exc:
        raise IngestError(f"{p.name}: no provenance sidecar {side.name} ({exc.strerror or exc})") from None
    doc = _parse(text, side.name)
    want = (doc.get("output") or {}).get("sha256")
    try:
        have = sha256_file(p)  # in blocks: a streamed predictions file may be larger than memory
    except OSError as exc:
        raise IngestError(f"{p.name}: cannot read ({exc.strerror or exc})") from None
    if want != have:
        raise IngestError(f"{side.name}: records SHA-256 {want} but {p.name} has {have}; the sidecar does not "
                          "belong to this file (changed or replaced since calib predict wrote it)")
    return doc


def _parse(text: bytes, where: str) -> dict[str, Any]:
    try:
        doc = json.loads(text)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise IngestError(f"{where}: provenance is not valid JSON ({exc})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("artifact"), dict):
        raise IngestError(f"{where}: provenance has no 'artifact' entry (not written by calib predict)")
    return doc
