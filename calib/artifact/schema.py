"""The schema of ``calibration.json`` and its agreement with ``model.onnx``'s own stamp.

A checksum proves that the files are those listed in ``SHA256SUMS``, not that they make
sense: someone who edits ``calibration.json`` and re-writes ``SHA256SUMS`` (by hand, or
with a careless script) gets a consistent folder. So after the checksums, an artifact is
read through two more checks, each refusing with one :class:`~calib.errors.ArtifactError`
line that names the file and the key path:

1. :func:`check_metadata`: the keys calib reads and their JSON types, e.g.
   ``models/x/1.0.0/calibration.json: features[1].unit: expected a string, got null``.
   Keys calib does not know are allowed (newer minor schemas add some: ``conformal``,
   ``domain``, ...), and so are more ``onnx.outputs`` than ``[target, target_std]``.
2. :func:`check_onnx_stamp`: ``calibration.json`` against the metadata properties that
   :func:`calib.artifact.onnx.stamp_onnx` wrote into the graph (feature names and units in
   order, target, unit, outputs, named inputs, opset, model id, name, version). Two swapped features in
   ``calibration.json`` would otherwise feed the temperature into the phase input.
   A graph without any metadata properties (not written by calib's exporter) skips
   this check; every artifact calib has written carries them.

:func:`onnx_metadata_props` reads the properties straight from the protobuf bytes (the
top-level fields only; the graph is skipped, not parsed), so verification needs neither
the ``onnx`` package nor ONNX Runtime. This module imports neither TensorFlow nor ONNX.
"""

from __future__ import annotations

import json
import math
import re
from pathlib import Path
from typing import Any, Mapping

from ..errors import ArtifactError
from ..units import UNITS

__all__ = ["check_metadata", "onnx_metadata_props", "check_onnx_stamp", "OPTIONAL_OBJECTS"]

_SEMVER = re.compile(r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)$")
#: Top-level keys that, when present, must be a JSON object or null.
OPTIONAL_OBJECTS = ("versions", "hyperparameters", "cv", "test", "physics", "physics_fit", "data",
                    "spot_adjustment")
#: ``features[i]`` keys that, when present, must be a string or null.
_FEATURE_STRINGS = ("source", "source_unit", "quantity")
#: ``metadata_props`` field of ONNX's ModelProto, and the key/value fields of its entries.
_MODEL_PROPS_FIELD, _KEY_FIELD, _VALUE_FIELD = 14, 1, 2


# --------------------------------------------------------------------------- type checks
def _kind(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return f"the number {v!r}"
    if isinstance(v, str):
        return f"the string {v[:40]!r}" + ("..." if len(v) > 40 else "")
    if isinstance(v, list):
        return "an empty list" if not v else f"a list of {len(v)}"
    if isinstance(v, dict):
        return "an object"
    return type(v).__name__  # pragma: no cover - JSON gives nothing else


class _Checker:
    """Type checks of one metadata dict; every failure names ``file: key.path``."""

    def __init__(self, file: Path | str):
        self.file = str(file)

    def fail(self, path: str, what: str) -> ArtifactError:
        return ArtifactError(f"{self.file}: {path}: {what}")

    def get(self, obj: Mapping[str, Any], key: str, path: str, expected: str, required: bool) -> Any:
        if key not in obj and required:
            raise self.fail(path, f"missing (expected {expected})")
        return obj.get(key)

    def string(self, obj: Mapping[str, Any], key: str, path: str, *, required: bool = True,
               null: bool = False) -> str | None:
        """A non-empty string; None when absent and not required, or null and ``null``."""
        v = self.get(obj, key, path, "a string", required)
        if key not in obj or (v is None and null):
            return None
        if not isinstance(v, str) or not v.strip():
            raise self.fail(path, f"expected a non-empty string, got {_kind(v)}")
        return v

    def unit(self, obj: Mapping[str, Any], path: str) -> str:
        u = self.string(obj, "unit", f"{path}.unit")
        if u not in UNITS:
            raise self.fail(f"{path}.unit", f"unknown unit {u!r} (known: {', '.join(UNITS)})")
        return u

    def number(self, obj: Mapping[str, Any], key: str, path: str) -> float | None:
        v = obj.get(key)
        if v is None:
            return None
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise self.fail(path, f"expected a finite number or null, got {_kind(v)}")
        return float(v)

    def obj(self, parent: Mapping[str, Any], key: str, path: str, *, required: bool = True) -> dict | None:
        v = self.get(parent, key, path, "an object", required)
        if v is None and not required:
            return None
        if not isinstance(v, dict):
            raise self.fail(path, f"expected an object, got {_kind(v)}")
        return v

    def items(self, parent: Mapping[str, Any], key: str, path: str, *, required: bool = True,
              nonempty: bool = False) -> list:
        v = self.get(parent, key, path, "a list", required)
        if v is None and not required:
            return []
        if not isinstance(v, list):
            raise self.fail(path, f"expected a list, got {_kind(v)}")
        if nonempty and not v:
            raise self.fail(path, "expected a non-empty list, got an empty list")
        return v

    def column(self, entry: Any, path: str) -> dict:
        """A feature/target entry: str name, known unit, numeric-or-null min <= max."""
        if not isinstance(entry, dict):
            raise self.fail(path, f"expected an object with name and unit, got {_kind(entry)}")
        self.string(entry, "name", f"{path}.name")
        self.unit(entry, path)
        lo = self.number(entry, "min", f"{path}.min")
        hi = self.number(entry, "max", f"{path}.max")
        if lo is not None and hi is not None and lo > hi:
            raise self.fail(path, f"min <= max must hold, got min={lo!r}, max={hi!r}")
        for key in _FEATURE_STRINGS:
            self.string(entry, key, f"{path}.{key}", required=False, null=True)
        return entry


def check_metadata(meta: Mapping[str, Any], file: Path | str, folder: str | None = None) -> None:
    """Check the keys calib reads from ``calibration.json`` and their JSON types.

    Parameters
    ----------
    meta : mapping
        The parsed ``calibration.json`` (its ``schema_version`` already checked).
    file : Path or str
        The file, for the messages.
    folder : str, optional
        Name of the version folder. When it is a semantic version (``1.2.0``) it must
        equal ``version`` (a copy under another name, e.g. ``/tmp/mymodel``, is fine).

    Raises
    ------
    ArtifactError
        ``<file>: <key path>: <what was expected>, got <what is there>``. Unknown keys are
        allowed; a spot child's ``spot_adjustment`` and its own ranges are expected.

    Examples
    --------
    >>> check_metadata({"features": None}, "calibration.json")
    Traceback (most recent call last):
    ...
    calib.errors.ArtifactError: calibration.json: features: expected a list, got null
    """
    c = _Checker(file)
    c.string(meta, "model_id", "model_id")
    c.string(meta, "name", "name")
    version = c.string(meta, "version", "version")
    if not _SEMVER.match(version or ""):
        raise c.fail("version", f"expected a semantic version such as '1.0.0', got {_kind(version)}")
    if folder is not None and _SEMVER.match(folder) and folder != version:
        raise c.fail("version", f"says {version!r} but the folder is {folder!r}; refused (renamed folder?)")
    c.string(meta, "created_utc", "created_utc", required=False, null=True)

    features = c.items(meta, "features", "features", nonempty=True)
    names: list[str] = []
    for i, f in enumerate(features):
        c.column(f, f"features[{i}]")
        c.number(f, "frequency_hz", f"features[{i}].frequency_hz")
        if f["name"] in names:
            raise c.fail(f"features[{i}].name", f"{f['name']!r} is listed twice")
        names.append(f["name"])
    target = c.obj(meta, "target", "target")
    c.column(target, "target")
    aux = meta.get("aux_targets")
    if aux is not None:
        for i, a in enumerate(c.items(meta, "aux_targets", "aux_targets")):
            c.column(a, f"aux_targets[{i}]")

    onnx = c.obj(meta, "onnx", "onnx")
    c.string(onnx, "file", "onnx.file")
    if onnx["file"] != "model.onnx":
        raise c.fail("onnx.file", f"expected 'model.onnx', got {_kind(onnx['file'])}")
    if "inputs" in onnx:  # one named input per feature (calib.artifact.contract)
        for i, n in enumerate(c.items(onnx, "inputs", "onnx.inputs", nonempty=True)):
            if not isinstance(n, str) or not n:
                raise c.fail(f"onnx.inputs[{i}]", f"expected a non-empty string, got {_kind(n)}")
    else:  # schema 1.1: one matrix input
        c.string(onnx, "input", "onnx.input")
    outputs = c.items(onnx, "outputs", "onnx.outputs", nonempty=True)
    for i, o in enumerate(outputs):
        if not isinstance(o, str) or not o:
            raise c.fail(f"onnx.outputs[{i}]", f"expected a non-empty string, got {_kind(o)}")
    if outputs[0] != target["name"]:
        raise c.fail("onnx.outputs[0]", f"expected the target {target['name']!r}, got {outputs[0]!r}")
    if len(set(outputs)) != len(outputs):
        raise c.fail("onnx.outputs", f"names an output twice: {outputs}")

    for key in OPTIONAL_OBJECTS:
        c.obj(meta, key, key, required=False)
    data = meta.get("data")
    if data is not None:
        c.string(data, "group", "data.group", required=False, null=True)
    norm = meta.get("spot_normalisation")
    if norm is not None and not isinstance(norm, (dict, bool)):
        raise c.fail("spot_normalisation", f"expected an object or null, got {_kind(norm)}")


# --------------------------------------------------------------------------- model.onnx's stamp
def _varint(data: bytes | memoryview, i: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        if i >= len(data) or shift > 63:
            raise ValueError(i)
        b = data[i]
        i += 1
        value |= (b & 0x7F) << shift
        if not b & 0x80:
            return value, i
        shift += 7


def _fields(data: bytes | memoryview) -> Any:
    """(field number, wire type, value) of one protobuf message; bytes fields as memoryviews."""
    i, n = 0, len(data)
    while i < n:
        tag, i = _varint(data, i)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            value, i = _varint(data, i)
        elif wire == 1:
            value, i = None, i + 8
        elif wire == 5:
            value, i = None, i + 4
        elif wire == 2:
            size, i = _varint(data, i)
            value, i = data[i:i + size], i + size
        else:  # groups (3, 4) are not in ONNX's schema
            raise ValueError(i)
        if i > n:
            raise ValueError(i)
        yield number, wire, value


def onnx_metadata_props(data: bytes, file: Path | str) -> dict[str, str]:
    """The ``metadata_props`` of an ONNX model, read from its bytes without parsing the graph.

    Parameters
    ----------
    data : bytes
        The serialised ``ModelProto`` (``model.onnx``).
    file : Path or str
        The file, for the messages.

    Returns
    -------
    dict of str to str
        Empty for a graph without metadata properties.

    Raises
    ------
    ArtifactError
        The bytes are not a protobuf message.
    """
    view = memoryview(data)
    props: dict[str, str] = {}
    try:
        for number, wire, value in _fields(view):
            if number != _MODEL_PROPS_FIELD or wire != 2:
                continue
            entry = {k: bytes(v).decode("utf-8") for k, w, v in _fields(value) if w == 2}
            if _KEY_FIELD in entry:
                props[entry[_KEY_FIELD]] = entry.get(_VALUE_FIELD, "")
    except (ValueError, UnicodeDecodeError):
        raise ArtifactError(f"{file}: not an ONNX model (malformed protobuf)") from None
    return props


def _pairs(feats: Any) -> list[tuple[Any, Any]]:
    return [(f.get("name"), f.get("unit")) if isinstance(f, dict) else (f, None) for f in feats]


def _show(pairs: list[tuple[Any, Any]]) -> str:
    return "[" + ", ".join(f"{n} ({u})" for n, u in pairs) + "]"


def check_onnx_stamp(meta: Mapping[str, Any], props: Mapping[str, str], vdir: Path) -> None:
    """Refuse a ``calibration.json`` that disagrees with the graph's own metadata properties.

    Parameters
    ----------
    meta : mapping
        ``calibration.json``, already through :func:`check_metadata`.
    props : mapping of str to str
        :func:`onnx_metadata_props` of ``model.onnx``. Without any (a graph not stamped by
        calib) nothing is checked; keys the stamp lacks are not compared.
    vdir : Path
        The version folder, for the messages.

    Raises
    ------
    ArtifactError
        One line naming both values, e.g. the two feature orders.
    """
    if not props:
        return
    there = vdir / "model.onnx"

    def differ(what: str, mine: Any, theirs: Any) -> ArtifactError:
        return ArtifactError(
            f"{vdir}: calibration.json and model.onnx disagree on {what}: calibration.json has "
            f"{mine}, model.onnx was exported with {theirs}; the files do not belong together "
            "(edited by hand?); refused"
        )

    def loaded(key: str) -> Any:
        try:
            return json.loads(props[key])
        except (ValueError, TypeError):
            raise ArtifactError(f"{there}: metadata property {key!r} is not valid JSON") from None

    if "features" in props:
        stamped = loaded("features")
        if not isinstance(stamped, list):
            raise ArtifactError(f"{there}: metadata property 'features' is not a list")
        mine, theirs = _pairs(meta["features"]), _pairs(stamped)
        if mine != theirs:
            raise differ("the features (name and unit, in input order)", _show(mine), _show(theirs))
    for key, value in (("target", meta["target"]["name"]), ("unit", meta["target"]["unit"]),
                       ("model_id", meta["model_id"]), ("name", meta["name"]), ("version", meta["version"])):
        if key in props and props[key] != value:
            what = "the target unit" if key == "unit" else f"the {key}"
            raise differ(what, repr(value), repr(props[key]))
    if "outputs" in props:
        stamped = loaded("outputs")
        if stamped != meta["onnx"]["outputs"]:
            raise differ("the outputs", meta["onnx"]["outputs"], stamped)
    if "inputs" in props:
        stamped = loaded("inputs")
        theirs = [i.get("name") if isinstance(i, dict) else i for i in stamped] if isinstance(stamped, list) else stamped
        mine = meta["onnx"].get("inputs", [meta["onnx"].get("input")])
        if theirs != mine:
            raise differ("the graph inputs", mine, theirs)
    if "opset" in props and str(meta["onnx"].get("opset")) != props["opset"]:
        raise differ("the opset", repr(meta["onnx"].get("opset")), repr(props["opset"]))
