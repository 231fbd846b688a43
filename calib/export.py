"""Versioned calibration artifacts: export, verification and loading without TensorFlow.

trained Keras model (+ k fold models) + metadata -> ``models/<name>/<version>/`` ->
:class:`CalibrationModel` (ONNX Runtime only).

An artifact is one folder::

    models/<name>/<version>/
        model.onnx        one ONNX graph: float32 input "readings" [N, n_features] in the
                          order of calibration.json "features"; outputs "<target>" ([N], or
                          [N, n_targets] with auxiliary targets) and, with fold models,
                          "<target>_std" ([N], standard deviation across the fold models)
        model.keras       the final Keras model (loads with keras.models.load_model(...,
                          safe_mode=True)), for Python/TensorFlow users
        calibration.json  schema_version, model_id, name, version, features with units and
                          calibrated ranges, target, metrics, data checksum, versions, ...
        MODEL_CARD.md     intended use, data, metrics, limits
        report.html       self-contained HTML report (calib.report), unless report=False
        SHA256SUMS        ``sha256sum -c`` format, over every other file
        (extra files)     e.g. test_predictions.csv, also listed in SHA256SUMS

Versions are semantic and bump automatically: the first export of a name is 1.0.0; the
next one is a minor bump (1.1.0) when the features (names and units), the target and the
auxiliary targets (name and unit) equal those of the latest version, else a major bump
(2.0.0). A version folder is never overwritten: it is built in ``models/<name>/.tmp-<uuid>``
and renamed into place in one step; when a concurrent export took the version meanwhile,
the next version is computed again. A crash leaves only a ``.tmp-*`` folder, which loading
and listing ignore and the next export removes once it is older than an hour.

:func:`load_model` checks every file against ``SHA256SUMS`` before anything is parsed,
refuses pickles and Keras files with ``Lambda`` layers or non-Keras code, and runs the
graph with ONNX Runtime. Importing this module and loading a model never import
TensorFlow or Keras; only :func:`export_artifact` does.

Examples
--------
>>> art = export_artifact("models", "foil-A", model=final, fold_models=folds,
...                       metadata=meta)                              # doctest: +SKIP
>>> m = load_model("models/foil-A")          # latest version         # doctest: +SKIP
>>> m.predict(df)                            # O2 in m.unit           # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import copy
import errno
import hashlib
import json
import math
import os
import re
import shutil
import threading
import time
import uuid
import zipfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Iterator, Mapping, Sequence

import numpy as np

from .errors import (
    ArtifactError,
    ConfigError,
    IncompatibleArtifactError,
    IngestError,
    IntegrityError,
)

if TYPE_CHECKING:  # pragma: no cover - typing only, keeps the import TF-free
    import keras
    import pandas as pd

    from .ingest import Dataset

__all__ = [
    "SCHEMA_VERSION",
    "INPUT_NAME",
    "Artifact",
    "CalibrationModel",
    "export_artifact",
    "describe_dataset",
    "load_model",
    "verify_artifact",
    "read_metadata",
    "resolve_artifact",
    "list_versions",
    "list_artifacts",
]

#: Schema of ``calibration.json`` written by this version of calib ("major.minor").
SCHEMA_VERSION = "1.0"
#: Newest schema major this version of calib reads.
SUPPORTED_SCHEMA_MAJOR = 1
#: Name of the ONNX graph's single input (same as ``calib.nn.ONNX_INPUT_NAME``).
INPUT_NAME = "readings"

ONNX_FILE = "model.onnx"
KERAS_FILE = "model.keras"
METADATA_FILE = "calibration.json"
CARD_FILE = "MODEL_CARD.md"
SUMS_FILE = "SHA256SUMS"
REPORT_FILE = "report.html"
#: Files every artifact has (besides SHA256SUMS).
REQUIRED_FILES = (METADATA_FILE, ONNX_FILE, KERAS_FILE, CARD_FILE)
TMP_PREFIX = ".tmp-"
#: A ``.tmp-*`` folder older than this (s) is a crashed export and is removed.
STALE_TMP_SECONDS = 3600.0

_SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
_SHA_LINE = re.compile(r"^([0-9a-fA-F]{64}) [ *](.+)$")
_PICKLE_EXT = (".pkl", ".pickle", ".joblib", ".dill", ".pck", ".cloudpickle")
_REQUIRED_META = ("features", "target", "hyperparameters", "data")
_RESERVED_META = ("schema_version", "model_id", "name", "version", "created_utc", "versions", "onnx")
_MAX_JSON_BYTES = 64 << 20
#: Rows per ONNX Runtime call in :meth:`CalibrationModel.predict` (bounded memory, ~fastest).
CHUNK_ROWS = 65536

# export_onnx swaps attributes of the model's layers while it traces: one export at a time
_TF_LOCK = threading.Lock()


# --------------------------------------------------------------------------- small helpers
def _jsonable(obj: Any) -> Any:
    """Plain-JSON form of ``obj``: numpy scalars/arrays, tuples, paths, dataclasses; NaN/inf -> None."""
    if obj is None or isinstance(obj, (bool, str)):
        return obj
    if isinstance(obj, (np.bool_,)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        v = float(obj)
        return v if math.isfinite(v) else None
    if isinstance(obj, np.ndarray):
        return _jsonable(obj.tolist())
    if isinstance(obj, Mapping):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if hasattr(obj, "to_dict"):
        return _jsonable(obj.to_dict())
    if hasattr(obj, "__dataclass_fields__"):
        from dataclasses import asdict

        return _jsonable(asdict(obj))
    raise ConfigError(f"metadata must be JSON-serialisable, got a {type(obj).__name__}: {obj!r:.80}")


def _dumps(obj: Any) -> bytes:
    return (json.dumps(obj, indent=2, ensure_ascii=False, allow_nan=False) + "\n").encode("utf-8")


def _semver_key(version: str) -> tuple[int, int, int]:
    m = _SEMVER.match(version)
    if m is None:
        raise ValueError(version)
    return int(m.group(1)), int(m.group(2)), int(m.group(3))


def _sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _os_message(exc: OSError) -> str:
    if exc.errno == errno.ENOSPC:
        return "no space left on the device"
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return "the folder is read-only or not writable"
    return exc.strerror or str(exc)


@contextlib.contextmanager
def _writing(where: Path, name: str) -> Iterator[None]:
    """Turn an OSError while writing an artifact into a one-line ArtifactError."""
    try:
        yield
    except OSError as exc:
        raise ArtifactError(
            f"cannot write artifact {name!r} in {where}: {_os_message(exc)}"
            + (f" ({exc.filename})" if exc.filename else "")
        ) from None


# --------------------------------------------------------------------------- listing
def list_versions(name_dir: str | Path) -> list[str]:
    """Versions of one artifact name, oldest first (semantic order).

    Parameters
    ----------
    name_dir : str or Path
        ``models/<name>``.

    Returns
    -------
    list of str
        Names of the sub-folders that are semantic versions (``1.2.0``); ``.tmp-*`` folders
        of running or crashed exports and anything else are ignored. Empty when the folder
        does not exist.
    """
    p = Path(name_dir)
    if not p.is_dir():
        return []
    out = [e.name for e in p.iterdir() if _SEMVER.match(e.name) and e.is_dir()]
    return sorted(out, key=_semver_key)


def list_artifacts(models_dir: str | Path) -> dict[str, list[str]]:
    """All artifact names under ``models_dir`` with their versions (oldest first).

    Names without any version folder (e.g. only a crashed ``.tmp-*``) are left out.
    """
    p = Path(models_dir)
    if not p.is_dir():
        return {}
    out: dict[str, list[str]] = {}
    for e in sorted(p.iterdir()):
        if e.is_dir() and not e.name.startswith("."):
            versions = list_versions(e)
            if versions:
                out[e.name] = versions
    return out


def resolve_artifact(path: str | Path) -> Path:
    """The version folder that ``path`` designates.

    Parameters
    ----------
    path : str or Path
        A version folder (``models/foil-A/1.2.0``), a name folder (``models/foil-A`` ->
        its latest version by semantic version) or a file inside a version folder.

    Returns
    -------
    Path

    Raises
    ------
    ArtifactError
        If ``path`` does not exist or holds no artifact.
    """
    p = Path(path)
    if not p.exists():
        raise ArtifactError(f"{p}: no such artifact (path not found)")
    if p.is_file():
        if p.name in (*REQUIRED_FILES, SUMS_FILE):
            p = p.parent
        else:
            raise ArtifactError(f"{p}: not an artifact folder; give models/<name> or models/<name>/<version>")
    if (p / SUMS_FILE).exists() or (p / METADATA_FILE).exists():
        return p
    versions = list_versions(p)
    if versions:
        return p / versions[-1]
    raise ArtifactError(
        f"{p}: not an artifact: no {SUMS_FILE} and no version folders (such as 1.0.0) in it"
    )


# --------------------------------------------------------------------------- verification
def _read_sums(vdir: Path) -> dict[str, str]:
    sums_path = vdir / SUMS_FILE
    if not sums_path.is_file():
        raise IntegrityError(f"{vdir}: missing file {SUMS_FILE}; the artifact cannot be checked")
    raw = sums_path.read_bytes()
    if len(raw) > (1 << 20):
        raise IntegrityError(f"{sums_path}: too large ({len(raw)} bytes) for a checksum list")
    listed: dict[str, str] = {}
    for i, line in enumerate(raw.decode("utf-8", errors="replace").splitlines(), start=1):
        if not line.strip():
            continue
        m = _SHA_LINE.match(line)
        if m is None:
            raise IntegrityError(f"{sums_path} line {i}: expected '<sha256>  <file>', got {line[:80]!r}")
        digest, rel = m.group(1).lower(), m.group(2)
        pp = PurePosixPath(rel)
        if pp.is_absolute() or ".." in pp.parts or "\\" in rel or rel == SUMS_FILE:
            raise IntegrityError(f"{sums_path} line {i}: file name {rel!r} is not a plain relative path")
        if rel in listed:
            raise IntegrityError(f"{sums_path} line {i}: {rel} is listed twice")
        listed[rel] = digest
    return listed


def _files_on_disk(vdir: Path) -> list[str]:
    found = []
    for root, dirs, files in os.walk(vdir, followlinks=False):
        for d in dirs:
            if os.path.islink(os.path.join(root, d)):
                rel = Path(root, d).relative_to(vdir).as_posix()
                raise ArtifactError(f"{vdir}: {rel} is a symbolic link; an artifact holds plain files only")
        for f in files:
            full = Path(root, f)
            rel = full.relative_to(vdir).as_posix()
            if full.is_symlink() or not full.is_file():
                raise ArtifactError(f"{vdir}: {rel} is not a plain file; an artifact holds plain files only")
            if rel != SUMS_FILE:
                found.append(rel)
    return sorted(found)


def _check_integrity(vdir: Path, keep: Sequence[str] = ()) -> tuple[dict[str, str], dict[str, bytes]]:
    """Check SHA256SUMS against the folder; return (listed, {name: bytes} for ``keep``)."""
    listed = _read_sums(vdir)
    on_disk = set(_files_on_disk(vdir))
    for rel in sorted(on_disk - set(listed)):
        raise IntegrityError(
            f"{vdir}: unlisted file {rel} (not in {SUMS_FILE}); an artifact must not hold files "
            "that were not exported with it"
        )
    for rel in (*REQUIRED_FILES, *sorted(listed)):
        if rel not in on_disk:
            raise IntegrityError(f"{vdir}: missing file {rel}")
        if rel not in listed:
            raise IntegrityError(f"{vdir}: file {rel} is not listed in {SUMS_FILE}")
    kept: dict[str, bytes] = {}
    for rel, digest in sorted(listed.items()):
        full = vdir / rel
        if rel in keep:
            data = full.read_bytes()
            actual = _sha256_bytes(data)
            kept[rel] = data  # parsed from these very bytes: no check-then-read gap
        else:
            h = hashlib.sha256()
            with open(full, "rb") as fh:
                while block := fh.read(1 << 20):
                    h.update(block)
            actual = h.hexdigest()
        if actual != digest:
            raise IntegrityError(
                f"{vdir}: checksum mismatch for {rel} ({SUMS_FILE} says {digest[:12]}..., the file "
                f"has {actual[:12]}...): the file was modified or corrupted"
            )
    return listed, kept


def _parse_metadata(vdir: Path, data: bytes) -> dict[str, Any]:
    if len(data) > _MAX_JSON_BYTES:
        raise ArtifactError(f"{vdir / METADATA_FILE}: too large ({len(data)} bytes)")
    try:
        meta = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"{vdir / METADATA_FILE}: not valid JSON ({exc})") from None
    if not isinstance(meta, dict):
        raise ArtifactError(f"{vdir / METADATA_FILE}: expected a JSON object at the top level")
    sv = meta.get("schema_version")
    m = re.match(r"^(\d+)\.(\d+)$", str(sv)) if isinstance(sv, str) else None
    if m is None:
        raise ArtifactError(
            f"{vdir / METADATA_FILE}: schema_version must be a 'major.minor' string, got {sv!r}"
        )
    if int(m.group(1)) > SUPPORTED_SCHEMA_MAJOR:
        raise IncompatibleArtifactError(
            f"{vdir}: schema_version {sv} is newer than this calib reads (major "
            f"{SUPPORTED_SCHEMA_MAJOR}); upgrade calib to load this artifact"
        )
    for key in ("features", "target", "onnx", "version", "model_id"):
        if key not in meta:
            raise ArtifactError(f"{vdir / METADATA_FILE}: missing key {key!r}")
    return meta


def _check_npy_header(fh: Any, what: str) -> None:
    from numpy.lib import format as npf

    try:
        major, _ = npf.read_magic(fh)
        if major == 1:
            _, _, dtype = npf.read_array_header_1_0(fh)
        else:
            _, _, dtype = npf.read_array_header_2_0(fh)
    except Exception as exc:  # malformed header: refuse rather than guess
        raise ArtifactError(f"{what}: unreadable .npy header ({exc})") from None
    if dtype.hasobject:
        raise ArtifactError(f"{what}: a .npy array of Python objects (loading it would unpickle); refused")


def _check_safe_files(vdir: Path, names: Sequence[str]) -> None:
    """Refuse pickles (by name or content), object .npy/.npz arrays, unsafe Keras files."""
    for rel in names:
        full = vdir / rel
        low = rel.lower()
        if low.endswith(_PICKLE_EXT):
            raise ArtifactError(
                f"{vdir}: {rel} is a pickle/joblib file; calib never loads pickles (they can run "
                "arbitrary code); refused"
            )
        with open(full, "rb") as fh:
            head = fh.read(2)
            if len(head) == 2 and head[0] == 0x80 and 2 <= head[1] <= 5:
                raise ArtifactError(f"{vdir}: {rel} holds pickle data; calib never loads pickles; refused")
            if low.endswith(".npy"):
                fh.seek(0)
                _check_npy_header(fh, f"{vdir}: {rel}")
        if low.endswith(".npz"):
            try:
                with zipfile.ZipFile(full) as zf:
                    for member in zf.namelist():
                        if member.endswith(".npy"):
                            with zf.open(member) as fh:
                                _check_npy_header(fh, f"{vdir}: {rel}/{member}")
            except zipfile.BadZipFile:
                raise ArtifactError(f"{vdir}: {rel} is not a valid .npz file") from None
    _check_keras_file(vdir / KERAS_FILE)


_UNSAFE_CLASSES = ("Lambda", "TFOpLambda", "__lambda__")


def _check_keras_file(path: Path) -> None:
    """Refuse a ``.keras`` file whose config has a Lambda layer or code outside Keras.

    Only ``config.json`` inside the zip is read (as JSON); nothing is deserialised.
    """
    try:
        with zipfile.ZipFile(path) as zf:
            info = zf.getinfo("config.json")
            if info.file_size > _MAX_JSON_BYTES:
                raise ArtifactError(f"{path}: config.json is too large ({info.file_size} bytes)")
            config = json.loads(zf.read(info).decode("utf-8"))
    except KeyError:
        raise ArtifactError(f"{path}: not a Keras v3 file (no config.json inside)") from None
    except (zipfile.BadZipFile, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"{path}: not a readable Keras file ({exc})") from None

    def walk(obj: Any, where: str) -> None:
        if isinstance(obj, dict):
            cls = obj.get("class_name")
            if cls in _UNSAFE_CLASSES:
                raise ArtifactError(
                    f"{path}: {where} is a {cls} layer (arbitrary Python code); refused, export "
                    "models built from built-in Keras layers only"
                )
            module = obj.get("module")
            if module is not None and not (
                isinstance(module, str) and (module == "keras" or module.startswith("keras."))
            ):
                raise ArtifactError(
                    f"{path}: {where} refers to module {module!r}, which is not part of Keras "
                    "(custom code); refused"
                )
            reg = obj.get("registered_name")
            if isinstance(reg, str) and ">" in reg:
                raise ArtifactError(
                    f"{path}: {where} is the registered custom object {reg!r}; refused"
                )
            for k, v in obj.items():
                walk(v, f"{where}/{k}" if where else str(k))
        elif isinstance(obj, list):
            for i, v in enumerate(obj):
                walk(v, f"{where}[{i}]")

    walk(config, "config")


def verify_artifact(path: str | Path) -> dict[str, Any]:
    """Check an artifact completely without loading its model.

    Checks, in order: ``SHA256SUMS`` is present, every listed file exists and matches its
    checksum, no file is unlisted, the four required files are there;
    ``calibration.json`` parses and its schema major is supported; no file is a pickle
    (by extension or content) or an object ``.npy``; ``model.keras`` has no ``Lambda``
    layer and no module outside Keras.

    Parameters
    ----------
    path : str or Path
        Version folder, or name folder (-> latest version).

    Returns
    -------
    dict
        ``{"ok": True, "path": ..., "version": ..., "model_id": ..., "files": [...]}``.

    Raises
    ------
    IntegrityError
        Missing, unlisted or modified file (the message names it).
    IncompatibleArtifactError
        The artifact's schema major is newer than this calib reads.
    ArtifactError
        Pickle files, unsafe Keras config, malformed metadata.
    """
    vdir = resolve_artifact(path)
    listed, kept = _check_integrity(vdir, keep=(METADATA_FILE,))
    meta = _parse_metadata(vdir, kept[METADATA_FILE])
    _check_safe_files(vdir, sorted(listed))
    return {
        "ok": True,
        "path": str(vdir),
        "version": meta.get("version"),
        "model_id": meta.get("model_id"),
        "files": sorted(listed),
    }


def read_metadata(path: str | Path) -> dict[str, Any]:
    """``calibration.json`` of an artifact, read without verifying the other files.

    Raises
    ------
    ArtifactError
        No artifact at ``path``, or the file is missing or malformed.
    IncompatibleArtifactError
        The schema major is newer than this calib reads.
    """
    vdir = resolve_artifact(path)
    f = vdir / METADATA_FILE
    if not f.is_file():
        raise IntegrityError(f"{vdir}: missing file {METADATA_FILE}")
    return _parse_metadata(vdir, f.read_bytes())


# --------------------------------------------------------------------------- input columns
def _stem(name: str, unit: str) -> str | None:
    """``temp_degC`` -> ``temp`` when ``name`` ends in ``_<unit>`` (case-insensitive)."""
    suffix = "_" + unit.lower()
    if name.lower().endswith(suffix) and len(name) > len(suffix):
        return name[: -len(suffix)]
    return None


def resolve_feature_columns(
    features: Sequence[Mapping[str, Any]], columns: Sequence[str], where: str = "input"
) -> list[tuple[str, str | None]]:
    """Find the column of each feature, and the unit to convert it from.

    For each feature (in order) the first match wins: a column with the feature's
    normalised ``name`` (values in its ``unit``, no conversion); a column with its
    ``source`` name (values in ``source_unit``); a column with the same stem and another
    unit suffix that converts to the feature's unit (e.g. ``temp_K`` for ``temp_degC``).

    Parameters
    ----------
    features : sequence of mapping
        ``calibration.json`` feature entries (``name``, ``unit``, ``source``, ``source_unit``,
        ``frequency_hz``).
    columns : sequence of str
        Column names available.
    where : str, default="input"
        How to name the data in error messages (e.g. ``"readings.csv row 1"``).

    Returns
    -------
    list of (column, from_unit or None)
        ``from_unit`` is None when the column is already in the feature's unit.

    Raises
    ------
    IngestError
        A feature has no column, or two columns could both be it.
    """
    from . import units as U

    cols = list(columns)
    colset = set(cols)
    out: list[tuple[str, str | None]] = []
    for f in features:
        name, unit = str(f["name"]), str(f["unit"])
        source = str(f.get("source") or name)
        source_unit = str(f.get("source_unit") or unit)
        freq = f.get("frequency_hz")
        if name in colset:
            out.append((name, None))
            continue
        if source in colset:
            out.append((source, None if source_unit == unit else source_unit))
            continue
        stem = _stem(name, unit)
        found: list[tuple[str, str]] = []
        wrong_unit: list[tuple[str, str]] = []  # same stem, a unit that does not convert
        if stem is not None:
            for c in cols:
                parsed = U.unit_from_column_name(c)
                if parsed is None or parsed[0] == unit:
                    continue
                cstem = _stem(c, parsed[0])
                if cstem is None or cstem.lower() != stem.lower():
                    continue
                try:
                    canonical = U.canonical_unit(parsed[0], freq if freq else parsed[1])
                except Exception:  # unit without a conversion to this feature's unit
                    canonical = None
                if canonical == unit:
                    found.append((c, parsed[0]))
                else:
                    wrong_unit.append((c, parsed[0]))
        if len(found) > 1:
            raise IngestError(
                f"{where}: feature {name} ({unit}) could be any of the columns "
                f"{', '.join(c for c, _ in found)}; keep only one of them"
            )
        if not found and wrong_unit:
            c, u = wrong_unit[0]
            raise IngestError(
                f"{where}, column {c}: {u} cannot be converted to {unit}; expected feature {name} "
                f"in {unit} (or in a unit calib converts to {unit})"
            )
        if not found:
            import difflib

            alt = f" or {source} in {source_unit}" if source != name else ""
            # hint only at columns that are not themselves inputs of the model
            taken = {str(g["name"]) for g in features} | {str(g.get("source") or g["name"]) for g in features}
            close = difflib.get_close_matches(name, [c for c in cols if c not in taken], n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            shown = ", ".join(cols[:20]) + (" ..." if len(cols) > 20 else "")
            raise IngestError(
                f"{where}: missing column {name!r} (feature in {unit}{alt}){hint} "
                f"(columns present: {shown})"
            )
        out.append(found[0])
    return out


def _feature_frequency(f: Mapping[str, Any]) -> float | None:
    v = f.get("frequency_hz")
    return float(v) if v not in (None, "") else None


# --------------------------------------------------------------------------- the loaded model
class CalibrationModel:
    """A calibration artifact loaded for inference with ONNX Runtime (no TensorFlow).

    Create it with :func:`load_model`. Results equal the Keras model's to float32
    rounding (relative 1e-5).

    Attributes
    ----------
    path : Path
        The version folder.
    metadata : dict
        A copy of ``calibration.json``.
    features : tuple of str
        Input names in model order (normalised names, canonical units).
    feature_units : tuple of str
        Unit of each input (``deg``, ``degC``, ...).
    target, unit : str
        Primary target name and its unit (e.g. ``o2_hPa``, ``hPa``).
    targets : tuple of str
        The primary target and the auxiliary targets, in output-column order.
    version, name, model_id : str
    has_std : bool
        Whether the artifact has fold models, hence ``<target>_std``.
    lower, upper : ndarray of float64
        Range of each input seen in training (inclusive bounds).
    """

    def __init__(self, path: Path, metadata: dict[str, Any], onnx_bytes: bytes, threads: int | None):
        self.path = Path(path)
        self._meta = metadata
        self._onnx = onnx_bytes
        self._threads = threads
        feats = metadata["features"]
        self._feature_specs = tuple(dict(f) for f in feats)
        self.features = tuple(str(f["name"]) for f in feats)
        self.feature_units = tuple(str(f["unit"]) for f in feats)
        self.target = str(metadata["target"]["name"])
        self.unit = str(metadata["target"]["unit"])
        self.targets = (self.target, *(str(a["name"]) for a in metadata.get("aux_targets") or ()))
        self.version = str(metadata["version"])
        self.name = str(metadata.get("name", self.path.parent.name))
        self.model_id = str(metadata["model_id"])
        onnx_meta = metadata["onnx"]
        self.input_name = str(onnx_meta.get("input", INPUT_NAME))
        outputs = list(onnx_meta.get("outputs", [self.target]))
        self.output_name = outputs[0]
        self.std_name = outputs[1] if len(outputs) > 1 else None
        self.has_std = self.std_name is not None
        self.lower = np.array([_bound(f, "min", -np.inf) for f in feats], dtype=np.float64)
        self.upper = np.array([_bound(f, "max", np.inf) for f in feats], dtype=np.float64)
        self._lower32 = self.lower.astype(np.float32)
        self._upper32 = self.upper.astype(np.float32)
        self._session_all = self._make_session(onnx_bytes)
        self._session_main = None if self.has_std else self._session_all
        self._check_io()

    # ---- sessions
    def _make_session(self, data: bytes):
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.log_severity_level = 3
        if self._threads is not None:
            so.intra_op_num_threads = int(self._threads)
        try:
            return ort.InferenceSession(data, sess_options=so, providers=["CPUExecutionProvider"])
        except Exception as exc:  # ORT raises its own exception types
            raise ArtifactError(f"{self.path / ONNX_FILE}: ONNX Runtime cannot load it ({exc})") from None

    def _check_io(self) -> None:
        s = self._session_all
        ins = s.get_inputs()
        if len(ins) != 1 or ins[0].name != self.input_name:
            raise ArtifactError(
                f"{self.path / ONNX_FILE}: expected one input {self.input_name!r}, got "
                f"{[i.name for i in ins]}"
            )
        width = ins[0].shape[-1] if ins[0].shape else None
        if isinstance(width, int) and width != len(self.features):
            raise ArtifactError(
                f"{self.path / ONNX_FILE}: input has {width} columns but calibration.json lists "
                f"{len(self.features)} features"
            )
        names = {o.name for o in s.get_outputs()}
        wanted = [self.output_name] + ([self.std_name] if self.std_name else [])
        missing = [n for n in wanted if n not in names]
        if missing:
            raise ArtifactError(f"{self.path / ONNX_FILE}: missing output(s) {missing}; has {sorted(names)}")

    def _main_session(self):
        """A session computing only the final model's output (fold models pruned away).

        ONNX Runtime evaluates every node of a graph whatever outputs are requested, so
        prediction without the standard deviation runs a copy of the graph reduced to the
        final model: about (k + 1) times faster with k fold models.
        """
        if self._session_main is None:
            import onnx
            from onnx.utils import Extractor

            proto = onnx.load_model_from_string(self._onnx)
            sub = Extractor(proto).extract_model([self.input_name], [self.output_name])
            self._session_main = self._make_session(sub.SerializeToString())
        return self._session_main

    # ---- public API
    @property
    def metadata(self) -> dict[str, Any]:
        return copy.deepcopy(self._meta)

    def __repr__(self) -> str:
        return (
            f"CalibrationModel(name={self.name!r}, version={self.version!r}, target={self.target!r}, "
            f"unit={self.unit!r}, features={list(self.features)!r}, path={str(self.path)!r})"
        )

    def as_array(self, X: Any) -> np.ndarray:
        """Readings as a C-contiguous float32 array (n, n_features) in model order and units.

        Parameters
        ----------
        X : pandas.DataFrame, mapping of column -> values, or array_like
            A DataFrame (or dict of columns) with the features by normalised name, or by
            source name / other unit suffix (converted with :mod:`calib.units`); or a 2-D
            array (one 1-D row is one reading) with the columns in :attr:`features` order,
            already in :attr:`feature_units`.

        Raises
        ------
        IngestError
            Missing feature column, wrong shape, or a value that is not a finite number.
        """
        from . import units as U

        n_feat = len(self.features)
        if hasattr(X, "columns") or isinstance(X, Mapping):
            columns = [str(c) for c in (X.columns if hasattr(X, "columns") else X.keys())]
            resolved = resolve_feature_columns(self._feature_specs, columns)
            first = X[resolved[0][0]]
            n = len(first)
            out = np.empty((n, n_feat), dtype=np.float32)
            for j, ((col, from_unit), spec) in enumerate(zip(resolved, self._feature_specs)):
                try:
                    raw = np.asarray(X[col], dtype=np.float64)
                except (TypeError, ValueError):
                    raise IngestError(
                        f"column {col}: expected numbers for feature {spec['name']} "
                        f"({spec['unit']}), got values of type {np.asarray(X[col]).dtype}"
                    ) from None
                if raw.shape != (n,):
                    raise IngestError(f"column {col}: expected {n} values, got shape {raw.shape}")
                if from_unit is not None:
                    raw, unit = U.to_canonical(raw, from_unit, frequency_hz=_feature_frequency(spec))
                out[:, j] = raw
            self._check_finite(out, [c for c, _ in resolved], index=getattr(X, "index", None))
            return out
        arr = np.asarray(X)
        if arr.dtype.kind not in "biuf":
            try:
                arr = arr.astype(np.float64)
            except (TypeError, ValueError):
                raise IngestError(f"readings must be numbers, got an array of {arr.dtype}") from None
        if arr.ndim == 1 and arr.shape[0] == n_feat:
            arr = arr[None, :]
        if arr.ndim != 2 or arr.shape[1] != n_feat:
            raise IngestError(
                f"readings must have shape (n, {n_feat}) with columns {', '.join(self.features)}, "
                f"got shape {arr.shape}"
            )
        out = np.ascontiguousarray(arr, dtype=np.float32)
        self._check_finite(out, list(self.features), index=None)
        return out

    @staticmethod
    def _check_finite(x: np.ndarray, names: Sequence[str], index: Any) -> None:
        # a float64 sum of float32 values is finite exactly when every value is
        if x.size and not np.isfinite(x.sum(dtype=np.float64)):
            i, j = np.argwhere(~np.isfinite(x))[0]
            label = f"index {index[i]!r}" if index is not None else f"row {i} (0-based)"
            raise IngestError(
                f"{label}, column {names[j]}: {x[i, j]} is not a finite number (or beyond float32); "
                "expected a measured value"
            )

    def _run(self, x32: np.ndarray, want_std: bool) -> tuple[np.ndarray, np.ndarray | None]:
        n = x32.shape[0]
        n_out = len(self.targets)
        pred = np.empty((n, n_out) if n_out > 1 else (n,), dtype=np.float32)
        std = np.empty(n, dtype=np.float32) if (want_std and self.has_std) else None
        if std is not None:
            session, names = self._session_all, [self.output_name, self.std_name]
        else:
            session, names = self._main_session(), [self.output_name]
        for start in range(0, n, CHUNK_ROWS):
            chunk = x32[start : start + CHUNK_ROWS]
            res = session.run(names, {self.input_name: chunk})
            pred[start : start + len(chunk)] = res[0].reshape(pred[start : start + len(chunk)].shape)
            if std is not None:
                std[start : start + len(chunk)] = res[1].reshape(-1)
        return pred, std

    def predict(self, X: Any, *, return_std: bool = False) -> np.ndarray | tuple[np.ndarray, np.ndarray]:
        """Predict the target(s) for readings.

        Parameters
        ----------
        X : pandas.DataFrame, mapping or array_like
            See :meth:`as_array`.
        return_std : bool, default=False
            Also return the standard deviation across the fold models (ddof=0), in
            :attr:`unit`; requires an artifact exported with fold models.

        Returns
        -------
        ndarray of float64
            Shape (n,) for one target, (n, n_targets) with auxiliary targets, in the
            targets' units; computed in float32. With ``return_std``: ``(pred, std)``.

        Raises
        ------
        IngestError
            Missing feature, wrong shape, or a non-finite reading.
        ArtifactError
            ``return_std`` with an artifact that has no fold models.
        """
        if return_std and not self.has_std:
            raise ArtifactError(f"{self.path}: exported without fold models; no standard deviation available")
        pred, std = self._run(self.as_array(X), want_std=return_std)
        if return_std:
            return pred.astype(np.float64), std.astype(np.float64)
        return pred.astype(np.float64)

    def out_of_range(self, X: Any) -> np.ndarray:
        """Per reading: whether any input lies outside the range seen in training.

        Bounds are inclusive: a reading equal to a training minimum or maximum is in range.
        """
        return self._out_of_range(self.as_array(X))

    def _out_of_range(self, x32: np.ndarray) -> np.ndarray:
        return ((x32 < self._lower32) | (x32 > self._upper32)).any(axis=1)

    def predict_frame(self, df: Any) -> pd.DataFrame:
        """``df`` with the predictions appended.

        Parameters
        ----------
        df : pandas.DataFrame
            Readings (see :meth:`as_array`); other columns are kept unchanged.

        Returns
        -------
        pandas.DataFrame
            A copy of ``df`` (same index) plus ``<target>_pred`` (and ``<aux>_pred`` per
            auxiliary target), ``<target>_std`` when the artifact has fold models, and
            ``out_of_range`` (bool, any input outside the training range).

        Raises
        ------
        IngestError
            Missing feature, a non-finite reading, or ``df`` already has an output column.
        """
        import pandas as pd

        if not isinstance(df, pd.DataFrame):
            df = pd.DataFrame(np.asarray(df), columns=list(self.features))
        new = self.output_columns()
        clash = [c for c in new if c in df.columns]
        if clash:
            raise IngestError(
                f"input already has column(s) {', '.join(clash)}; rename or drop them before predicting"
            )
        x32 = self.as_array(df)
        pred, std = self._run(x32, want_std=True)
        out = df.copy()
        cols = self._result_columns(pred, std, self._out_of_range(x32))
        for k, v in cols.items():
            out[k] = v
        return out

    def output_columns(self) -> list[str]:
        """Names of the columns :meth:`predict_frame` adds, in order."""
        cols = [f"{t}_pred" for t in self.targets]
        if self.has_std:
            cols.append(f"{self.target}_std")
        return [*cols, "out_of_range"]

    def _result_columns(
        self, pred: np.ndarray, std: np.ndarray | None, oor: np.ndarray
    ) -> dict[str, np.ndarray]:
        cols: dict[str, np.ndarray] = {}
        if pred.ndim == 1:
            cols[f"{self.target}_pred"] = pred.astype(np.float64)
        else:
            for j, t in enumerate(self.targets):
                cols[f"{t}_pred"] = pred[:, j].astype(np.float64)
        if std is not None:
            cols[f"{self.target}_std"] = std.astype(np.float64)
        cols["out_of_range"] = oor
        return cols

    def verify(self) -> dict[str, Any]:
        """Check the artifact on disk again (see :func:`verify_artifact`).

        Raises
        ------
        IntegrityError, IncompatibleArtifactError, ArtifactError
        """
        return verify_artifact(self.path)


def _bound(f: Mapping[str, Any], key: str, default: float) -> float:
    v = f.get(key)
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else default


def load_model(path: str | Path, *, threads: int | None = None) -> CalibrationModel:
    """Load a calibration artifact for inference, without TensorFlow.

    Every file is checked against ``SHA256SUMS`` before anything is parsed; see
    :func:`verify_artifact` for the checks. The ONNX graph is run with ONNX Runtime's
    CPU provider from the very bytes whose checksum was checked.

    Parameters
    ----------
    path : str or Path
        ``models/<name>/<version>``, or ``models/<name>`` for its latest version.
    threads : int, optional
        ONNX Runtime intra-op threads (>= 1); by default ONNX Runtime chooses (one per
        physical core).

    Returns
    -------
    CalibrationModel

    Raises
    ------
    IntegrityError
        A file is missing, unlisted or modified.
    IncompatibleArtifactError
        Written with a newer schema major.
    ArtifactError
        No artifact at ``path``; a pickle or an unsafe Keras file inside; ONNX Runtime cannot
        load the graph.
    ConfigError
        ``threads`` < 1.

    Examples
    --------
    >>> m = load_model("models/foil-A")                                # doctest: +SKIP
    >>> m.predict(df)                                                  # doctest: +SKIP
    """
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 1):
        raise ConfigError(f"threads >= 1 must hold (or None for automatic), got threads={threads!r}")
    vdir = resolve_artifact(path)
    listed, kept = _check_integrity(vdir, keep=(METADATA_FILE, ONNX_FILE))
    meta = _parse_metadata(vdir, kept[METADATA_FILE])
    _check_safe_files(vdir, sorted(listed))
    return CalibrationModel(vdir, meta, kept[ONNX_FILE], threads)


# --------------------------------------------------------------------------- export: metadata
def describe_dataset(ds: Dataset, rows: np.ndarray | None = None) -> dict[str, Any]:
    """The ``features``, ``target``, ``aux_targets`` and ``data`` entries of the metadata.

    Parameters
    ----------
    ds : calib.ingest.Dataset
    rows : ndarray of int, optional
        Rows the final model was trained on; the calibrated ranges (``min``/``max``) are
        taken over these rows. All rows when not given.

    Returns
    -------
    dict
        Ready to merge into the ``metadata`` of :func:`export_artifact`.
    """
    idx = np.arange(ds.n_rows) if rows is None else np.asarray(rows)

    def col(c: Any) -> dict[str, Any]:
        v = ds.frame[c.name].to_numpy(dtype=np.float64)[idx]
        return {
            "name": c.name,
            "unit": c.unit,
            "source": c.source,
            "source_unit": c.source_unit,
            "quantity": c.quantity,
            "frequency_hz": c.frequency_hz,
            "min": float(v.min()),
            "max": float(v.max()),
        }

    target = col(ds.target)
    target.pop("frequency_hz")
    return {
        "features": [col(c) for c in ds.features],
        "target": target,
        "aux_targets": [col(c) for c in ds.aux_targets],
        "data": {
            "file": Path(ds.source).name,
            "sha256": ds.sha256,
            "rows": int(ds.n_rows),
            "rows_used": int(len(idx)),
            "group": ds.group,
        },
    }


def _check_column_entry(entry: Any, what: str, ranges: bool) -> dict[str, Any]:
    if not isinstance(entry, Mapping):
        raise ConfigError(f"metadata {what} must be an object with name and unit, got {entry!r:.80}")
    e = dict(entry)
    for key in ("name", "unit"):
        if not isinstance(e.get(key), str) or not e[key]:
            raise ConfigError(f"metadata {what} must have a non-empty string {key!r}, got {e.get(key)!r}")
    e.setdefault("source", e["name"])
    e.setdefault("source_unit", e["unit"])
    if ranges or "min" in e or "max" in e:
        lo, hi = e.get("min"), e.get("max")
        for key, v in (("min", lo), ("max", hi)):
            if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v):
                raise ConfigError(
                    f"metadata {what} {e['name']!r} must have a finite {key!r} (range seen in "
                    f"training), got {key}={v!r}"
                )
        if not lo <= hi:
            raise ConfigError(f"metadata {what} {e['name']!r}: min <= max must hold, got min={lo}, max={hi}")
        e["min"], e["max"] = float(lo), float(hi)
    return e


def _validate_metadata(metadata: Any) -> dict[str, Any]:
    if not isinstance(metadata, Mapping):
        raise ConfigError(f"metadata must be a mapping, got {type(metadata).__name__}")
    meta = _jsonable(metadata)
    reserved = [k for k in _RESERVED_META if k in meta]
    if reserved:
        raise ConfigError(
            f"metadata key(s) {', '.join(reserved)} are set by export_artifact; remove them"
        )
    missing = [k for k in _REQUIRED_META if k not in meta]
    if missing:
        raise ConfigError(
            f"metadata must have the key(s) {', '.join(_REQUIRED_META)}; missing: {', '.join(missing)}"
        )
    feats = meta["features"]
    if not isinstance(feats, list) or not feats:
        raise ConfigError(f"metadata features must be a non-empty list, got {feats!r:.80}")
    meta["features"] = [_check_column_entry(f, "feature", True) for f in feats]
    names = [f["name"] for f in meta["features"]]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ConfigError(f"metadata features must have distinct names, got {', '.join(dup)} twice")
    meta["target"] = _check_column_entry(meta["target"], "target", True)
    aux = meta.get("aux_targets") or []
    if not isinstance(aux, list):
        raise ConfigError(f"metadata aux_targets must be a list, got {aux!r:.80}")
    meta["aux_targets"] = [_check_column_entry(a, "aux target", False) for a in aux]
    hp = meta["hyperparameters"]
    if not isinstance(hp, dict) or "seed" not in hp:
        raise ConfigError("metadata hyperparameters must be an object that includes the 'seed'")
    data = meta["data"]
    if not isinstance(data, dict):
        raise ConfigError(f"metadata data must be an object with file, sha256 and rows, got {data!r:.80}")
    for key in ("file", "sha256", "rows"):
        if key not in data:
            raise ConfigError(f"metadata data must have the key {key!r} (file, sha256, rows)")
    if not (isinstance(data["sha256"], str) and re.fullmatch(r"[0-9a-f]{64}", data["sha256"])):
        raise ConfigError(f"metadata data.sha256 must be 64 lower-case hex digits, got {data['sha256']!r}")
    if not isinstance(data["rows"], int) or data["rows"] < 1:
        raise ConfigError(f"metadata data.rows >= 1 must hold, got rows={data['rows']!r}")
    for key in ("cv", "test", "baseline"):
        v = meta.setdefault(key, None)
        if v is not None and not isinstance(v, dict):
            raise ConfigError(f"metadata {key} must be an object (metrics) or absent, got {v!r:.80}")
    target = meta["target"]["name"]
    if target in (INPUT_NAME, *names):
        raise ConfigError(f"target name must differ from the input {INPUT_NAME!r} and the features, got {target!r}")
    return meta


def _signature(meta: Mapping[str, Any]) -> Any:
    """What must stay equal for a minor bump: feature, target and aux names and units."""
    try:
        return (
            tuple((f["name"], f["unit"]) for f in meta["features"]),
            (meta["target"]["name"], meta["target"]["unit"]),
            tuple((a["name"], a["unit"]) for a in meta.get("aux_targets") or ()),
        )
    except (KeyError, TypeError):
        return None


def _next_version(name_dir: Path, signature: Any) -> str:
    """1.0.0, or the latest version with a minor bump (same signature) or a major bump."""
    versions = list_versions(name_dir)
    if not versions:
        return "1.0.0"
    latest = versions[-1]
    major, minor, _ = _semver_key(latest)
    try:
        prev = json.loads((name_dir / latest / METADATA_FILE).read_text(encoding="utf-8"))
        same = _signature(prev) == signature
    except (OSError, ValueError):
        same = False  # unreadable latest version: treat as incompatible
    return f"{major}.{minor + 1}.0" if same else f"{major + 1}.0.0"


def _software_versions() -> dict[str, str | None]:
    import platform
    from importlib import metadata as im

    from . import __version__

    out: dict[str, str | None] = {"calib": __version__, "python": platform.python_version()}
    for key, dists in (
        ("tensorflow", ("tensorflow", "tensorflow-cpu", "tf-nightly")),
        ("keras", ("keras",)),
        ("onnx", ("onnx",)),
        ("onnxruntime", ("onnxruntime", "onnxruntime-gpu")),
        ("tf2onnx", ("tf2onnx",)),
        ("numpy", ("numpy",)),
    ):
        out[key] = None
        for d in dists:
            try:
                out[key] = im.version(d)
                break
            except im.PackageNotFoundError:
                continue
    return out


# --------------------------------------------------------------------------- export: ONNX
def _model_io(model: Any, what: str) -> tuple[int, int]:
    try:
        if len(model.inputs) != 1 or len(model.outputs) != 1:
            raise ConfigError(f"{what} must have one input and one output")
        return int(model.inputs[0].shape[-1]), int(model.outputs[0].shape[-1])
    except (AttributeError, TypeError, IndexError):
        raise ConfigError(f"{what} must be a built keras.Model, got {type(model).__name__}") from None


def _opset(proto: Any) -> int:
    return max((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), default=0)


def _merge_onnx(protos: list[Any], target: str, n_features: int, n_out: int, std_name: str | None) -> Any:
    """One graph: input ``readings``; ``target`` from protos[0]; ``std_name`` across protos[1:]."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    from onnx.compose import add_prefix

    from .nn import ONNX_INPUT_NAME, ONNX_OUTPUT_NAME

    nodes, inits, vinfo = [], [], []
    outs = []
    for i, proto in enumerate(protos):
        g = proto.graph
        if [x.name for x in g.input] != [ONNX_INPUT_NAME] or [o.name for o in g.output] != [ONNX_OUTPUT_NAME]:
            raise ArtifactError(
                f"unexpected ONNX export of model {i}: inputs {[x.name for x in g.input]}, "
                f"outputs {[o.name for o in g.output]}"
            )
        p = add_prefix(proto, f"m{i}/")
        nodes.append(helper.make_node("Identity", [INPUT_NAME], [f"m{i}/{ONNX_INPUT_NAME}"], name=f"m{i}/input"))
        nodes.extend(p.graph.node)
        inits.extend(p.graph.initializer)
        vinfo.extend(p.graph.value_info)
        outs.append(f"m{i}/{ONNX_OUTPUT_NAME}")
    opset = max(_opset(p) for p in protos)
    new_axes = opset >= 18  # ReduceMean takes axes as an input from opset 18

    def reduce_mean(x: str, y: str, keepdims: int) -> Any:
        if new_axes:
            return helper.make_node("ReduceMean", [x, "calib/axis1"], [y], keepdims=keepdims, name=y)
        return helper.make_node("ReduceMean", [x], [y], axes=[1], keepdims=keepdims, name=y)

    inits.append(numpy_helper.from_array(np.array([1], dtype=np.int64), "calib/axis1"))
    inits.append(numpy_helper.from_array(np.array([0], dtype=np.int64), "calib/col0"))
    if n_out == 1:
        if opset >= 13:
            nodes.append(helper.make_node("Squeeze", [outs[0], "calib/axis1"], [target], name="calib/target"))
        else:
            nodes.append(helper.make_node("Squeeze", [outs[0]], [target], axes=[1], name="calib/target"))
        out_shape: list[Any] = ["N"]
    else:
        nodes.append(helper.make_node("Identity", [outs[0]], [target], name="calib/target"))
        out_shape = ["N", n_out]
    outputs = [helper.make_tensor_value_info(target, TensorProto.FLOAT, out_shape)]
    if std_name is not None:
        cols = []
        for i, o in enumerate(outs[1:], start=1):
            nodes.append(helper.make_node("Gather", [o, "calib/col0"], [f"calib/fold{i}"], axis=1, name=f"calib/fold{i}"))
            cols.append(f"calib/fold{i}")
        nodes.append(helper.make_node("Concat", cols, ["calib/folds"], axis=1, name="calib/folds"))
        nodes.append(reduce_mean("calib/folds", "calib/mean", 1))
        nodes.append(helper.make_node("Sub", ["calib/folds", "calib/mean"], ["calib/dev"], name="calib/dev"))
        nodes.append(helper.make_node("Mul", ["calib/dev", "calib/dev"], ["calib/sq"], name="calib/sq"))
        nodes.append(reduce_mean("calib/sq", "calib/var", 0))
        nodes.append(helper.make_node("Sqrt", ["calib/var"], [std_name], name="calib/std"))
        outputs.append(helper.make_tensor_value_info(std_name, TensorProto.FLOAT, ["N"]))
    graph = helper.make_graph(
        nodes,
        "calib",
        [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, ["N", n_features])],
        outputs,
        initializer=inits,
        value_info=vinfo,
    )
    domains: dict[str, int] = {}
    for p in protos:
        for o in p.opset_import:
            domains[o.domain] = max(domains.get(o.domain, 0), o.version)
    model = helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid(d, v) for d, v in sorted(domains.items())],
        producer_name="calib",
    )
    model.ir_version = max(p.ir_version for p in protos)
    onnx.checker.check_model(model, full_check=True)
    return model


def _stamp_onnx(proto: Any, meta: Mapping[str, Any]) -> bytes:
    from onnx import helper

    major, minor, patch = _semver_key(meta["version"])
    proto.model_version = major * 1_000_000 + minor * 1_000 + patch
    proto.doc_string = (
        f"calib calibration model {meta['name']} {meta['version']}: input {INPUT_NAME!r} float32 "
        f"[N, {len(meta['features'])}] ({', '.join(f['name'] for f in meta['features'])}) -> "
        f"{meta['target']['name']} in {meta['target']['unit']}"
    )
    feats = [
        {k: f.get(k) for k in ("name", "unit", "source", "source_unit", "frequency_hz", "min", "max")}
        for f in meta["features"]
    ]
    props = {
        "calib_version": str(meta["versions"].get("calib")),
        "schema_version": meta["schema_version"],
        "model_id": meta["model_id"],
        "name": meta["name"],
        "version": meta["version"],
        "created_utc": meta["created_utc"],
        "features": json.dumps(feats),
        "target": meta["target"]["name"],
        "unit": meta["target"]["unit"],
        "aux_targets": json.dumps([{"name": a["name"], "unit": a["unit"]} for a in meta["aux_targets"]]),
        "outputs": json.dumps(meta["onnx"]["outputs"]),
    }
    del proto.metadata_props[:]
    helper.set_model_props(proto, props)
    return proto.SerializeToString()


# --------------------------------------------------------------------------- export: card
def _fmt_num(v: Any) -> str:
    if isinstance(v, bool) or v is None:
        return str(v)
    if isinstance(v, (int, float)):
        return f"{v:.6g}"
    return str(v)


def _flat_metrics(obj: Any, prefix: str = "", limit: int = 24) -> list[tuple[str, Any]]:
    out: list[tuple[str, Any]] = []

    def walk(o: Any, p: str) -> None:
        if len(out) >= limit:
            return
        if isinstance(o, dict):
            for k, v in o.items():
                walk(v, f"{p}.{k}" if p else str(k))
        elif isinstance(o, (int, float, str)) or o is None:
            out.append((p, o))

    walk(obj, prefix)
    return out


def _metrics_section(meta: Mapping[str, Any], unit: str) -> list[str]:
    lines = ["## Metrics", "", f"Errors are in the target's unit ({unit}); ELA is the share within the tolerance.", ""]
    cv = meta.get("cv")
    summary = cv.get("summary") if isinstance(cv, dict) else None
    if isinstance(summary, dict) and isinstance(summary.get("val"), dict):
        n = cv.get("n_folds") or len(cv.get("folds") or []) or "k"
        lines += [f"**{n}-fold cross-validation** (mean +/- std over folds):", "",
                  "| metric | network (validation) | network (train) | baseline (validation) |",
                  "|---|---|---|---|"]
        for m in ("mae", "rmse", "max_abs", "r2", "ela"):
            cells = []
            for which in ("val", "train", "baseline_val"):
                s = (summary.get(which) or {}).get(m)
                if isinstance(s, dict) and s.get("mean") is not None:
                    cells.append(f"{_fmt_num(s['mean'])} +/- {_fmt_num(s.get('std'))}")
                else:
                    cells.append("-")
            lines.append(f"| {m} | " + " | ".join(cells) + " |")
        lines.append("")
    elif cv:
        lines += ["**Cross-validation:**", ""] + [f"- {k}: {_fmt_num(v)}" for k, v in _flat_metrics(cv)] + [""]
    else:
        lines += ["Cross-validation: not recorded.", ""]
    for key, title in (("test", "Test set (touched once)"), ("baseline", "Classical baseline")):
        v = meta.get(key)
        if v:
            lines += [f"**{title}:** " + ", ".join(f"{k} = {_fmt_num(x)}" for k, x in _flat_metrics(v)), ""]
        else:
            lines += [f"{title}: not recorded.", ""]
    return lines


def _noise_floor(meta: Mapping[str, Any]) -> Any:
    if meta.get("noise_floor") is not None:
        return meta["noise_floor"]
    cv = meta.get("cv")
    if isinstance(cv, dict) and isinstance(cv.get("diagnosis"), dict):
        return cv["diagnosis"].get("noise_floor")
    return None


def _model_card(meta: Mapping[str, Any], extra_names: Sequence[str]) -> bytes:
    t = meta["target"]
    unit = t["unit"]
    feats = meta["features"]
    outputs = meta["onnx"]["outputs"]
    data = meta["data"]
    aux = meta.get("aux_targets") or []
    floor = _noise_floor(meta)
    lines = [
        f"# Calibration model `{meta['name']}` {meta['version']}",
        "",
        f"- Model id: `{meta['model_id']}`; created {meta['created_utc']} with calib "
        f"{meta['versions'].get('calib')} (schema {meta['schema_version']}).",
        f"- Predicts **{t['name']}** in **{unit}**"
        + (f", with {', '.join(a['name'] + ' (' + a['unit'] + ')' for a in aux)}" if aux else "")
        + f" from {len(feats)} reading(s) per row.",
        "",
        "## Intended use",
        "",
        "Converts readings of optical (luminescence) O2 sensors made from the calibrated foil batch "
        "(the sensor spots of the data below) into the O2 level, for readings inside the calibrated "
        "ranges. It is not validated for other foil batches, other instruments, or readings outside "
        "those ranges; recalibrate or re-validate before such use.",
        "",
        "- Python without TensorFlow: `calib.load_model(path).predict(df)`, or `calib predict`.",
        f"- Any ONNX Runtime (C#, C++, Java, MATLAB, LabVIEW): `{ONNX_FILE}`, float32 input "
        f"`{INPUT_NAME}` of shape [N, {len(feats)}] in the order below, in the units below; outputs "
        + ", ".join(f"`{o}`" for o in outputs) + ".",
        f"- Python with TensorFlow: `keras.models.load_model('{KERAS_FILE}', safe_mode=True)`.",
        "",
        "## Inputs (in this order) and calibrated ranges",
        "",
        "| # | input | unit | from column (unit) | min | max |",
        "|---|---|---|---|---|---|",
    ]
    for i, f in enumerate(feats):
        src = f"{f.get('source')} ({f.get('source_unit')})"
        if f.get("frequency_hz"):
            src += f", {_fmt_num(f['frequency_hz'])} Hz"
        lines.append(f"| {i} | {f['name']} | {f['unit']} | {src} | {_fmt_num(f['min'])} | {_fmt_num(f['max'])} |")
    lines += [
        "",
        f"Target range in training: {_fmt_num(t['min'])} to {_fmt_num(t['max'])} {unit}.",
        "",
        "## Data",
        "",
        f"- File `{data.get('file')}`, SHA-256 `{data.get('sha256')}`, {data.get('rows')} rows"
        + (f" ({data['rows_used']} used to train the final model)" if data.get("rows_used") else "")
        + (f", grouped by `{data['group']}`" if data.get("group") else "")
        + ".",
        "- Hyperparameters: " + ", ".join(f"{k}={_fmt_num(v) if not isinstance(v, list) else v}"
                                          for k, v in meta["hyperparameters"].items()) + ".",
        "",
        *_metrics_section(meta, unit),
        "## Limits",
        "",
        "- **Calibrated ranges.** Each input is only trusted inside the range seen in training "
        "(table above, bounds inclusive), and only for combinations of inputs like those calibrated.",
        f"- **Unit.** Predictions are in {unit}; inputs must be in the units above (calib converts "
        "source units such as K or rad by column name; raw ONNX users must convert themselves).",
        "- **Noise floor.** No model beats the noise of its inputs"
        + (f": the estimated floor is {_fmt_num(floor)} {unit} (MAE)." if floor is not None else
           " (no floor was estimated for this model)."),
        "- **Out-of-range behaviour.** Outside the calibrated ranges the network extrapolates "
        "silently and may be badly wrong; it is not clipped. `calib` flags such rows with "
        "`out_of_range = True` (any input outside its range); the raw ONNX graph does not.",
    ]
    if len(outputs) > 1:
        k = meta["onnx"].get("n_fold_models")
        lines.append(
            f"- **Spread.** `{outputs[1]}` is the standard deviation (ddof=0) of the predictions of "
            f"the {k} cross-validation fold models: a model-spread indicator that grows where data "
            "were sparse, not a measurement uncertainty (reference and input noise are not included)."
        )
    lines += ["", "## Files", ""]
    for name in sorted({*REQUIRED_FILES, *extra_names}):
        lines.append(f"- `{name}`")
    lines += [f"- `{SUMS_FILE}` (check with `sha256sum -c {SUMS_FILE}`)", ""]
    return "\n".join(lines).encode("utf-8")


# --------------------------------------------------------------------------- export
@dataclass(frozen=True)
class Artifact:
    """An exported artifact.

    Attributes
    ----------
    path : Path
        The version folder ``models/<name>/<version>``.
    name, version : str
    metadata : dict
        The content of ``calibration.json``.
    """

    path: Path
    name: str
    version: str
    metadata: dict[str, Any] = field(repr=False, compare=False)


def _check_extra_files(extra: Mapping[str, Any] | None) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    for rel, content in (extra or {}).items():
        pp = PurePosixPath(str(rel))
        if (
            not str(rel)
            or pp.is_absolute()
            or ".." in pp.parts
            or "\\" in str(rel)
            or any(part.startswith(".") for part in pp.parts)
        ):
            raise ConfigError(f"extra_files names must be plain relative paths, got {rel!r}")
        if pp.as_posix() in (*REQUIRED_FILES, SUMS_FILE):
            raise ConfigError(f"extra_files must not replace an artifact file, got {rel!r}")
        if pp.as_posix().lower().endswith((*_PICKLE_EXT, ".npy", ".npz")):
            raise ConfigError(f"extra_files must not be pickles or numpy files, got {rel!r}")
        if isinstance(content, str):
            content = content.encode("utf-8")
        if not isinstance(content, (bytes, bytearray)):
            raise ConfigError(f"extra_files[{rel!r}] must be bytes or str, got {type(content).__name__}")
        out[pp.as_posix()] = bytes(content)
    return out


def _clean_stale_tmp(name_dir: Path) -> None:
    now = time.time()
    for e in name_dir.iterdir():
        if e.name.startswith(TMP_PREFIX) and e.is_dir():
            with contextlib.suppress(OSError):
                if now - e.stat().st_mtime > STALE_TMP_SECONDS:
                    shutil.rmtree(e, ignore_errors=True)


def _write_sums(folder: Path) -> None:
    lines = []
    for rel in _files_on_disk(folder):
        digest = hashlib.sha256((folder / rel).read_bytes()).hexdigest()
        lines.append(f"{digest}  {rel}\n")
    (folder / SUMS_FILE).write_text("".join(lines), encoding="utf-8")


def _build_models(tmp: Path, model: Any, fold_models: Sequence[Any], n_features: int) -> list[Any]:
    """TensorFlow part: ONNX of every model (loaded back as protos) and model.keras."""
    import onnx

    from .nn import export_onnx

    work = tmp / "work"
    work.mkdir()
    protos = []
    with _TF_LOCK:
        for i, m in enumerate((model, *fold_models)):
            p = work / f"part{i}.onnx"
            export_onnx(m, p, n_features)
            protos.append(onnx.load(str(p)))
        model.save(str(tmp / KERAS_FILE))
    shutil.rmtree(work)
    _check_keras_file(tmp / KERAS_FILE)
    return protos


def _with_physics(protos: list[Any], physics: Sequence[Any] | None, n_out: int) -> list[Any]:
    """Fold each member's classical physics fit (hybrid/physics families) into its ONNX graph."""
    if not physics:
        return protos
    if len(physics) != len(protos):
        raise ConfigError(f"physics must give one entry (or None) per model, got {len(physics)} for {len(protos)}")
    from .physics_onnx import attach_physics

    return [p if b is None else attach_physics(p, b, n_out) for p, b in zip(protos, physics)]


def export_artifact(
    models_dir: str | Path,
    name: str,
    *,
    model: keras.Model,
    fold_models: Sequence[keras.Model] = (),
    physics: Sequence[Any] | None = None,
    metadata: Mapping[str, Any],
    extra_files: Mapping[str, bytes | str] | None = None,
    report: bool = True,
) -> Artifact:
    """Write a new version of the calibration artifact ``models_dir/name``.

    Parameters
    ----------
    models_dir : str or Path
        Folder of all artifacts (created if missing).
    name : str
        Artifact name: letters, digits, ``.``, ``_``, ``-``; starting with a letter or digit.
    model : keras.Model
        The final trained model: raw readings in physical units (columns in the order of
        ``metadata["features"]``) -> target(s) in their unit; scaling inside the graph
        (as built by :func:`calib.nn.build_model`).
    fold_models : sequence of keras.Model, default=()
        The k (>= 2) cross-validation fold models; their predictions of the primary target
        give ``<target>_std`` (standard deviation across models, ddof=0).
    physics : sequence of PhysicsModel or None, optional
        One entry per model (``model`` first, then the fold models): the classical physics
        fit that the ``hybrid``/``physics`` families add to the network's first output
        (:mod:`calib.nn.family`); folded into the same ONNX graph (:mod:`calib.physics_onnx`).
    metadata : mapping
        Must have ``features`` (ordered list of ``{name, unit, min, max}`` plus ``source``,
        ``source_unit``, ``frequency_hz``; ``min``/``max`` = range seen in training),
        ``target`` (``{name, unit, min, max, ...}``), ``hyperparameters`` (including
        ``seed``) and ``data`` (``{file, sha256, rows}``); should have ``cv``, ``test``,
        ``baseline`` (metrics; null when absent) and may have ``aux_targets``,
        ``noise_floor`` and any other JSON-serialisable keys. :func:`describe_dataset` gives
        the ``features``/``target``/``aux_targets``/``data`` entries. ``schema_version``,
        ``model_id``, ``name``, ``version``, ``created_utc``, ``versions`` and ``onnx`` are
        added here and must not be given.
    extra_files : mapping of str to bytes, optional
        Further files (relative name -> content), e.g. ``{"test_predictions.csv": csv}``.
    report : bool, default=True
        Write ``report.html`` (:func:`calib.report.render_report` of the final metadata and
        of ``extra_files["test_predictions.csv"]`` when given), listed in ``SHA256SUMS``. A
        report that cannot be drawn gives a short HTML page saying why; it never fails the
        export. An ``extra_files["report.html"]`` is kept as given instead.

    Returns
    -------
    Artifact

    Raises
    ------
    ConfigError
        Bad name, metadata, extra file name, or models that disagree with the metadata.
    ArtifactError
        The models folder cannot be written (read-only, full, not a folder), or the model
        cannot be stored safely (e.g. a ``Lambda`` layer).

    Notes
    -----
    The version folder appears atomically (rename of a finished temporary folder); two
    concurrent exports of one name get two distinct versions; an existing version is
    never overwritten.
    """
    if not isinstance(name, str) or not _NAME.match(name):
        raise ConfigError(
            "name must be 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit, "
            f"got name={name!r}"
        )
    meta = _validate_metadata(metadata)
    extras = _check_extra_files(extra_files)
    fold_models = tuple(fold_models)
    if len(fold_models) == 1:
        raise ConfigError("fold_models must hold k >= 2 models (or none), got 1")
    n_features = len(meta["features"])
    n_out = 1 + len(meta["aux_targets"])
    n_in, m_out = _model_io(model, "model")
    if n_in != n_features:
        raise ConfigError(f"model takes {n_in} input column(s) but metadata lists {n_features} features")
    if m_out != n_out:
        raise ConfigError(f"model has {m_out} output(s) but metadata lists {n_out} target(s) (target + aux_targets)")
    for i, fm in enumerate(fold_models):
        if _model_io(fm, f"fold_models[{i}]") != (n_in, m_out):
            raise ConfigError(
                f"fold_models[{i}] takes/gives {_model_io(fm, 'fold')} columns, expected ({n_in}, {m_out})"
            )

    target = meta["target"]["name"]
    std_name = f"{target}_std" if fold_models else None
    models_dir = Path(models_dir)
    name_dir = models_dir / name
    if models_dir.exists() and not models_dir.is_dir():
        raise ArtifactError(f"cannot write artifact {name!r}: models folder {models_dir} is a file")
    with _writing(models_dir, name):
        name_dir.mkdir(parents=True, exist_ok=True)
        _clean_stale_tmp(name_dir)
        tmp = name_dir / f"{TMP_PREFIX}{uuid.uuid4().hex}"
        tmp.mkdir()
    try:
        with _writing(name_dir, name):
            protos = _build_models(tmp, model, fold_models, n_features)
            protos = _with_physics(protos, physics, n_out)
            merged = _merge_onnx(protos, target, n_features, n_out, std_name)
            for rel, content in extras.items():
                (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
                (tmp / rel).write_bytes(content)
            meta.update(
                schema_version=SCHEMA_VERSION,
                model_id=str(uuid.uuid4()),
                name=name,
                versions=_software_versions(),
                onnx={
                    "file": ONNX_FILE,
                    "input": INPUT_NAME,
                    "input_shape": ["N", n_features],
                    "outputs": [target] + ([std_name] if std_name else []),
                    "opset": _opset(merged),
                    "n_fold_models": len(fold_models),
                    "std_ddof": 0 if fold_models else None,
                },
            )
            signature = _signature(meta)
            for _attempt in range(1000):
                version = _next_version(name_dir, signature)
                vdir = name_dir / version
                if vdir.exists():  # appeared since the listing (concurrent export): next one
                    continue
                meta["version"] = version
                meta["created_utc"] = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
                ordered = _ordered(meta)
                (tmp / METADATA_FILE).write_bytes(_dumps(ordered))
                (tmp / ONNX_FILE).write_bytes(_stamp_onnx(merged, ordered))
                extra_names = sorted(extras)
                if report and REPORT_FILE not in extras:
                    (tmp / REPORT_FILE).write_bytes(_report_html(ordered, extras))
                    extra_names = sorted({*extras, REPORT_FILE})
                (tmp / CARD_FILE).write_bytes(_model_card(ordered, extra_names))
                _write_sums(tmp)
                try:
                    os.rename(tmp, vdir)
                except OSError as exc:
                    if exc.errno in (errno.EEXIST, errno.ENOTEMPTY) or vdir.exists():
                        continue  # a concurrent export took this version: take the next one
                    raise
                return Artifact(path=vdir, name=name, version=version, metadata=ordered)
            raise ArtifactError(f"cannot find a free version for {name!r} in {name_dir}")
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _report_html(meta: dict[str, Any], extras: Mapping[str, bytes]) -> bytes:
    """``report.html`` of the artifact being exported; a short page saying why if it cannot be drawn."""
    try:
        from .report import render_report

        frame = None
        if "test_predictions.csv" in extras:
            import io

            import pandas as pd

            frame = pd.read_csv(io.BytesIO(extras["test_predictions.csv"]))
        return render_report(meta, frame).encode("utf-8")
    except Exception as exc:  # the report is informative only: it never sinks the export
        import html

        why = html.escape(f"{type(exc).__name__}: {exc}"[:2000])
        name = html.escape(f"{meta.get('name')} {meta.get('version')}")
        return (
            '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>Calibration report: {name}</title></head><body>"
            f"<h1>Calibration report: {name}</h1><p>The report could not be drawn: {why}</p>"
            f"<p>The metrics are in {METADATA_FILE}; run <code>calib report</code> on this artifact "
            "to try again.</p></body></html>\n"
        ).encode("utf-8")


def _ordered(meta: dict[str, Any]) -> dict[str, Any]:
    """Metadata with the identifying keys first (readable calibration.json)."""
    first = ("schema_version", "model_id", "name", "version", "created_utc", "versions", "features",
             "target", "aux_targets", "hyperparameters", "cv", "test", "baseline", "data", "onnx")
    out = {k: meta[k] for k in first if k in meta}
    out.update({k: v for k, v in meta.items() if k not in out})
    return out
