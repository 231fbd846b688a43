"""The artifact store: layout, versions, checksums, verification and atomic publication.

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
        report.html       self-contained HTML report (calib.report), when the exporter gives one
        SHA256SUMS        ``sha256sum -c`` format, over every other file
        (extra files)     e.g. test_predictions.csv, also listed in SHA256SUMS

Versions are semantic and bump automatically: the first publication of a name is 1.0.0;
the next one is a minor bump (1.1.0) when the features (names and units), the target and
the auxiliary targets (name and unit) equal those of the latest version, else a major bump
(2.0.0). A version folder is never overwritten: :func:`publish` builds it in
``models/<name>/.tmp-<uuid>`` and renames it into place in one step; when a concurrent
publication took the version meanwhile, the next version is computed again. A crash
leaves only a ``.tmp-*`` folder, which loading and listing ignore and the next publication
removes once it is older than an hour. Both :func:`calib.artifact.export_artifact` (batch
models) and :mod:`calib.spots` (spot children) publish through this one function.

:func:`verify_artifact` checks every file against ``SHA256SUMS`` before anything is
parsed, and refuses pickles and Keras files with ``Lambda`` layers or non-Keras code.
Checksums prove integrity (the files are those listed), not authorship: whoever can write
the folder can re-write ``SHA256SUMS`` too. So ``calibration.json`` is then checked against
its schema and against ``model.onnx``'s own stamp (:mod:`calib.artifact.schema`), and sizes
are capped before anything is read (:data:`MAX_ONNX_BYTES`, :data:`MAX_JSON_BYTES`). A lab
that needs authorship signs ``SHA256SUMS`` (README, "Artifacts"). An unreadable file
(permissions, I/O error) or a lack of memory while reading is one :class:`ArtifactError`
line. This module never imports TensorFlow.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import shutil
import time
import uuid
import zipfile
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import Any, Callable, Iterator, Mapping, Sequence

from ..constraints import ARTIFACT_NAME, check_param
from ..errors import ArtifactError, IncompatibleArtifactError, IntegrityError
from ..serial import json_bytes
from .schema import check_metadata, check_onnx_stamp, onnx_metadata_props

__all__ = [
    "SCHEMA_VERSION",
    "SUPPORTED_SCHEMA_MAJOR",
    "INPUT_NAME",
    "ONNX_FILE",
    "KERAS_FILE",
    "METADATA_FILE",
    "CARD_FILE",
    "SUMS_FILE",
    "REPORT_FILE",
    "REQUIRED_FILES",
    "TMP_PREFIX",
    "STALE_TMP_SECONDS",
    "PICKLE_EXTENSIONS",
    "MAX_JSON_BYTES",
    "MAX_ONNX_BYTES",
    "MAX_SUMS_BYTES",
    "reading_artifact",
    "Artifact",
    "check_name",
    "check_models_dir",
    "semver_key",
    "writing_artifact",
    "list_versions",
    "list_artifacts",
    "resolve_artifact",
    "check_integrity",
    "open_artifact",
    "parse_metadata",
    "check_safe_files",
    "check_keras_file",
    "KERAS_ALLOWED",
    "verify_artifact",
    "read_metadata",
    "software_versions",
    "publish",
]

#: Schema of ``calibration.json`` written by this version of calib ("major.minor").
SCHEMA_VERSION = "1.3"
#: Newest schema major this version of calib reads.
SUPPORTED_SCHEMA_MAJOR = 1
#: The readings matrix [N, n_features] inside the graph (``calib.nn.ONNX_INPUT_NAME``): the
#: graph input of schema 1.1; from schema 1.2 the graph takes one named input per feature
#: and concatenates them into this tensor (:mod:`calib.artifact.contract`).
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
#: File name endings of pickle-like files, never loaded nor written into an artifact.
PICKLE_EXTENSIONS = (".pkl", ".pickle", ".joblib", ".dill", ".pck", ".cloudpickle")
#: Largest ``calibration.json`` (or Keras ``config.json``) read, in bytes.
MAX_JSON_BYTES = 64 << 20
#: Largest ``model.onnx`` loaded or published, in bytes (256 MiB), checked with ``stat``
#: before a byte is read. The largest network :class:`calib.nn.ModelConfig` accepts
#: (:data:`calib.nn.config.MAX_PARAMETERS`, 5 million float32 weights, 20 MB) fits about 12
#: times: a final model and 11 fold models.
MAX_ONNX_BYTES = 256 << 20
#: Largest ``SHA256SUMS`` read, in bytes.
MAX_SUMS_BYTES = 1 << 20
#: Files read into memory and their caps (every other file is hashed in 1 MiB blocks).
_SIZE_CAPS = {METADATA_FILE: MAX_JSON_BYTES, ONNX_FILE: MAX_ONNX_BYTES}

_SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$")
_SHA_LINE = re.compile(r"^([0-9a-fA-F]{64}) [ *](.+)$")


# --------------------------------------------------------------------------- small helpers
def check_name(name: Any) -> str:
    """``name`` if it is a valid artifact name, else a ConfigError.

    A name is 1-128 letters, digits, ``.``, ``_`` or ``-``, starting with a letter or digit.
    """
    check_param("name", name, ARTIFACT_NAME)
    return name


def check_models_dir(models_dir: str | os.PathLike[str], name: str) -> None:
    """Refuse a models folder (or its ``<name>`` folder) that is a file: :func:`publish` cannot
    write there, and the main job checks it before its sweep instead of after it.

    Raises
    ------
    ArtifactError
        ``models_dir`` or ``models_dir/name`` exists and is not a folder.
    """
    for folder in (Path(models_dir), Path(models_dir) / name):
        if folder.exists() and not folder.is_dir():
            what = "models folder" if folder == Path(models_dir) else "artifact folder"
            raise ArtifactError(f"cannot write artifact {name!r}: {what} {folder} is a file")
        if not folder.exists():
            break


def semver_key(version: str) -> tuple[int, int, int]:
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


def _mb(n: int) -> str:
    return f"{n / (1 << 20):.1f} MiB"


@contextlib.contextmanager
def reading_artifact(where: Path | str) -> Iterator[None]:
    """Turn an OSError or a MemoryError while reading an artifact into one ArtifactError line.

    Parameters
    ----------
    where : Path or str
        The artifact (as given), named when the error has no file name.
    """
    try:
        yield
    except MemoryError:
        raise ArtifactError(f"{where}: not enough memory to load the artifact") from None
    except OSError as exc:
        what = exc.strerror or type(exc).__name__
        raise ArtifactError(f"{exc.filename or where}: cannot read the artifact ({what})") from None


@contextlib.contextmanager
def writing_artifact(where: Path, name: str) -> Iterator[None]:
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
    return sorted(out, key=semver_key)


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
    size = sums_path.stat().st_size
    if size > MAX_SUMS_BYTES:
        raise IntegrityError(f"{sums_path}: too large ({size} bytes) for a checksum list")
    raw = sums_path.read_bytes()
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


def check_integrity(vdir: Path, keep: Sequence[str] = ()) -> tuple[dict[str, str], dict[str, bytes]]:
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
    for rel, cap in _SIZE_CAPS.items():  # before a byte is read: a 2 GB graph costs no memory
        size = (vdir / rel).stat().st_size
        if size > cap:
            raise ArtifactError(
                f"{vdir / rel}: {_mb(size)}, more than the {_mb(cap)} calib loads "
                f"({'MAX_ONNX_BYTES' if rel == ONNX_FILE else 'MAX_JSON_BYTES'}); refused"
            )
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


def parse_metadata(vdir: Path, data: bytes) -> dict[str, Any]:
    """``calibration.json`` from its bytes: JSON, a supported schema, the schema's keys and types.

    Raises
    ------
    ArtifactError
        Not JSON, or a key is missing or of the wrong type (:func:`calib.artifact.schema.check_metadata`).
    IncompatibleArtifactError
        The schema major is newer than this calib reads.
    """
    if len(data) > MAX_JSON_BYTES:
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
    if int(m.group(1)) < 1:
        raise ArtifactError(f"{vdir / METADATA_FILE}: schema_version {sv} is unknown (calib writes 1.x)")
    if int(m.group(1)) > SUPPORTED_SCHEMA_MAJOR:
        raise IncompatibleArtifactError(
            f"{vdir}: schema_version {sv} is newer than this calib reads (major "
            f"{SUPPORTED_SCHEMA_MAJOR}); upgrade calib to load this artifact"
        )
    check_metadata(meta, vdir / METADATA_FILE, vdir.name)
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


def check_safe_files(vdir: Path, names: Sequence[str]) -> None:
    """Refuse pickles (by name or content), object .npy/.npz arrays, unsafe Keras files."""
    for rel in names:
        full = vdir / rel
        low = rel.lower()
        if low.endswith(PICKLE_EXTENSIONS):
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
    check_keras_file(vdir / KERAS_FILE)


#: The Keras classes a ``model.keras`` may name, by module: what calib's networks and spot
#: children are built from, plus a few code-free built-ins of user models (Python API) and
#: the optimizer a compiled model records. Anything else (``Lambda``, ``TorchModuleWrapper``,
#: a custom or registered class, an allowed name under another module) is refused.
KERAS_ALLOWED: Mapping[str, frozenset[str]] = {
    "keras": frozenset({"DTypePolicy", "FloatDTypePolicy", "Sequential", "Functional", "Model"}),
    "keras.src.models.functional": frozenset({"Functional"}),
    "keras.layers": frozenset({"InputLayer", "Dense", "Dropout", "Normalization", "Activation",
                               "BatchNormalization", "LayerNormalization", "Rescaling", "Concatenate",
                               "Add"}),
    "keras.initializers": frozenset({"GlorotUniform", "GlorotNormal", "HeNormal", "HeUniform",
                                     "LecunNormal", "LecunUniform", "TruncatedNormal", "RandomNormal",
                                     "RandomUniform", "Zeros", "Ones", "Constant"}),
    "keras.regularizers": frozenset({"L1", "L2", "L1L2"}),
    "keras.optimizers": frozenset({"Adam", "AdamW", "SGD", "RMSprop"}),
    "keras.losses": frozenset({"MeanSquaredError", "MeanAbsoluteError", "Huber"}),
    "keras.metrics": frozenset({"MeanSquaredError", "MeanAbsoluteError", "RootMeanSquaredError"}),
}
#: Class names Keras writes without a module (references to tensors inside a config).
_KERAS_MARKERS = frozenset({"__keras_tensor__"})
_KERAS_NAMES = frozenset().union(*KERAS_ALLOWED.values())


def check_keras_file(path: Path) -> None:
    """Refuse a ``.keras`` file whose config names a class outside :data:`KERAS_ALLOWED`.

    Only ``config.json`` inside the zip is read (as JSON); nothing is deserialised. Every
    object with a ``class_name`` must name an allowed (module, class) pair; one without a
    module must name an allowed class (Keras looks it up among its own); a module outside
    Keras and a registered custom object (``package>Name``) are refused.

    Raises
    ------
    ArtifactError
        Naming the file, where in the config, and the class or module.
    """
    try:
        with zipfile.ZipFile(path) as zf:
            info = zf.getinfo("config.json")
            if info.file_size > MAX_JSON_BYTES:
                raise ArtifactError(f"{path}: config.json is too large ({info.file_size} bytes)")
            config = json.loads(zf.read(info).decode("utf-8"))
    except KeyError:
        raise ArtifactError(f"{path}: not a Keras v3 file (no config.json inside)") from None
    except (zipfile.BadZipFile, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"{path}: not a readable Keras file ({exc})") from None

    def refuse(where: str, what: str) -> ArtifactError:
        return ArtifactError(f"{path}: {where} {what}; refused, export models built from built-in Keras layers only")

    def check_class(obj: dict, where: str) -> None:
        cls, module, reg = obj.get("class_name"), obj.get("module"), obj.get("registered_name")
        if cls in ("Lambda", "TFOpLambda", "__lambda__"):
            raise refuse(where, f"is a {cls} layer (arbitrary Python code)")
        if module is not None and not (isinstance(module, str) and (module == "keras" or module.startswith("keras."))):
            raise refuse(where, f"refers to module {module!r}, which is not part of Keras (custom code)")
        if isinstance(reg, str) and ">" in reg:
            raise refuse(where, f"is the registered custom object {reg!r}")
        if "class_name" not in obj:
            return
        if module is None:
            if cls in _KERAS_MARKERS or cls in _KERAS_NAMES:
                return
            raise refuse(where, f"names the class {cls!r} without a module, not one calib allows")
        if cls not in KERAS_ALLOWED.get(module, ()):
            raise refuse(where, f"names the class {cls!r} of module {module!r}, not one calib allows (KERAS_ALLOWED)")
        if reg is not None and reg != cls:
            raise refuse(where, f"names {cls!r} registered as {reg!r}")

    def walk(obj: Any, where: str) -> None:
        if isinstance(obj, dict):
            check_class(obj, where or "config")
            for k, v in obj.items():
                walk(v, f"{where}/{k}" if where else str(k))
        elif isinstance(obj, list):
            for i, v in enumerate(obj):
                walk(v, f"{where}[{i}]")

    walk(config, "")


def verify_artifact(path: str | Path) -> dict[str, Any]:
    """Check an artifact completely without loading its model.

    Checks, in order: ``SHA256SUMS`` is present, every listed file exists, no file is
    unlisted, the four required files are there; ``model.onnx`` and ``calibration.json``
    are within :data:`MAX_ONNX_BYTES` and :data:`MAX_JSON_BYTES` (by ``stat``, before
    reading); every file matches its checksum; ``calibration.json`` parses, its schema
    major is supported and its keys have the schema's types
    (:func:`calib.artifact.schema.check_metadata`); no file is a pickle (by extension or
    content) or an object ``.npy``; ``model.keras`` names only allowed Keras classes
    (:func:`check_keras_file`); ``calibration.json`` agrees with ``model.onnx``'s stamp
    (:func:`calib.artifact.schema.check_onnx_stamp`). An unreadable file or a lack of memory
    is an ArtifactError too.

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
        Pickle files, unsafe Keras config, malformed metadata, metadata that disagrees with
        the graph, a file over its size cap, an unreadable file.
    """
    vdir, meta, _onnx, files = open_artifact(path)
    return {
        "ok": True,
        "path": str(vdir),
        "version": meta.get("version"),
        "model_id": meta.get("model_id"),
        "files": files,
    }


def open_artifact(path: str | Path) -> tuple[Path, dict[str, Any], bytes, list[str]]:
    """Every check of :func:`verify_artifact`, returning what they read: the one way in.

    Returns
    -------
    vdir, metadata, onnx_bytes, files
        The version folder, the parsed ``calibration.json``, the bytes of ``model.onnx``
        that were checksummed (load these, not the file again), the listed files.

    Raises
    ------
    IntegrityError, IncompatibleArtifactError, ArtifactError
        As :func:`verify_artifact`.
    """
    with reading_artifact(path):
        vdir = resolve_artifact(path)
        listed, kept = check_integrity(vdir, keep=(METADATA_FILE, ONNX_FILE))
        meta = parse_metadata(vdir, kept[METADATA_FILE])
        check_safe_files(vdir, sorted(listed))
        check_onnx_stamp(meta, onnx_metadata_props(kept[ONNX_FILE], vdir / ONNX_FILE), vdir)
    return vdir, meta, kept[ONNX_FILE], sorted(listed)


def read_metadata(path: str | Path) -> dict[str, Any]:
    """``calibration.json`` of an artifact, read without verifying the other files.

    Raises
    ------
    ArtifactError
        No artifact at ``path``, or the file is missing or malformed.
    IncompatibleArtifactError
        The schema major is newer than this calib reads.
    """
    with reading_artifact(path):
        vdir = resolve_artifact(path)
        f = vdir / METADATA_FILE
        if not f.is_file():
            raise IntegrityError(f"{vdir}: missing file {METADATA_FILE}")
        size = f.stat().st_size
        if size > MAX_JSON_BYTES:
            raise ArtifactError(f"{f}: too large ({size} bytes)")
        return parse_metadata(vdir, f.read_bytes())


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
    major, minor, _ = semver_key(latest)
    try:
        prev = json.loads((name_dir / latest / METADATA_FILE).read_text(encoding="utf-8"))
        same = _signature(prev) == signature
    except (OSError, ValueError):
        same = False  # unreadable latest version: treat as incompatible
    return f"{major}.{minor + 1}.0" if same else f"{major + 1}.0.0"


def software_versions() -> dict[str, str | None]:
    import platform
    from importlib import metadata as im

    from .. import __version__

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



def _ordered(meta: dict[str, Any]) -> dict[str, Any]:
    """Metadata with the identifying keys first (readable calibration.json)."""
    first = ("schema_version", "model_id", "name", "version", "created_utc", "versions", "features",
             "target", "aux_targets", "hyperparameters", "cv", "test", "physics", "physics_fit", "data", "onnx")
    out = {k: meta[k] for k in first if k in meta}
    out.update({k: v for k, v in meta.items() if k not in out})
    return out


def publish(
    models_dir: str | Path,
    name: str,
    meta: dict[str, Any],
    *,
    prepare: Callable[[Path], None],
    finish: Callable[[Path, dict[str, Any]], None],
) -> Artifact:
    """Write a new version of ``models_dir/name`` atomically; the one way artifacts appear.

    Parameters
    ----------
    models_dir : str or Path
        Folder of all artifacts (created if missing).
    name : str
        Artifact name (:func:`check_name`).
    meta : dict
        The metadata without ``schema_version``, ``model_id``, ``name``, ``version``,
        ``created_utc`` and ``versions``, which are set here.
    prepare : callable(tmp)
        Writes the files that do not depend on the version (e.g. ``model.keras``, extra
        files) into the temporary folder; called once.
    finish : callable(tmp, metadata)
        Writes the files that name the version (``model.onnx`` stamped with it, the card,
        the report) from the final, ordered metadata; called again when a concurrent
        publication took the version. ``calibration.json`` and ``SHA256SUMS`` are written here.

    Returns
    -------
    Artifact

    Raises
    ------
    ArtifactError
        The folder cannot be written (read-only, full, not a folder).
    """
    check_name(name)
    models_dir = Path(models_dir)
    name_dir = models_dir / name
    check_models_dir(models_dir, name)
    with writing_artifact(models_dir, name):
        name_dir.mkdir(parents=True, exist_ok=True)
        _clean_stale_tmp(name_dir)
        tmp = name_dir / f"{TMP_PREFIX}{uuid.uuid4().hex}"
        tmp.mkdir()
    try:
        with writing_artifact(name_dir, name):
            prepare(tmp)
            meta.update(schema_version=SCHEMA_VERSION, model_id=str(uuid.uuid4()), name=name,
                        versions=software_versions())
            signature = _signature(meta)
            for _attempt in range(1000):
                version = _next_version(name_dir, signature)
                vdir = name_dir / version
                if vdir.exists():  # appeared since the listing (concurrent export): next one
                    continue
                meta["version"] = version
                meta["created_utc"] = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
                ordered = _ordered(meta)
                # never publish what load_model would refuse
                check_metadata(json.loads(json_bytes(ordered)), vdir / METADATA_FILE, version)
                (tmp / METADATA_FILE).write_bytes(json_bytes(ordered))
                finish(tmp, ordered)
                size = (tmp / ONNX_FILE).stat().st_size
                if size > MAX_ONNX_BYTES:
                    raise ArtifactError(
                        f"cannot publish {name!r}: its model.onnx is {_mb(size)}, more than the "
                        f"{_mb(MAX_ONNX_BYTES)} calib loads (MAX_ONNX_BYTES); use fewer fold models "
                        "or a smaller network"
                    )
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
