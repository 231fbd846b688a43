"""Export: a trained Keras model (+ its k fold models) and metadata -> a new artifact version.

:func:`export_artifact` validates the metadata, converts every model to ONNX (TensorFlow is
imported here only), folds each member's physics fit into its graph, merges them into one
``model.onnx`` (:mod:`calib.artifact.onnx`), writes ``model.keras``, the card and any extra
files, and publishes the version folder atomically (:func:`calib.artifact.store.publish`).
The HTML report is given by the caller (:mod:`calib.pipeline` renders it), so this module
does not depend on the report.

Examples
--------
>>> art = export_artifact("models", "foil-A", model=final, fold_models=folds,
...                       metadata=meta)                              # doctest: +SKIP
>>> calib.load_model("models/foil-A").predict(df)                     # doctest: +SKIP
"""

from __future__ import annotations

import re
import threading
from numbers import Integral, Real
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Callable, Mapping, Sequence

import numpy as np

from ..constraints import NAME, Interval, Satisfies, check_param, check_params, require
from ..errors import ConfigError
from ..serial import to_jsonable
from .card import model_card
from .contract import ONNX_OPSET, contract_metadata, name_inputs
from .onnx import merge_onnx, opset_of, stamp_onnx
from .trust_graph import attach_trust, aux_interval_outputs, trust_outputs
from .store import (
    CARD_FILE,
    INPUT_NAME,
    KERAS_FILE,
    ONNX_FILE,
    PICKLE_EXTENSIONS,
    REPORT_FILE,
    REQUIRED_FILES,
    SUMS_FILE,
    Artifact,
    check_keras_file,
    check_name,
    publish,
)

if TYPE_CHECKING:  # pragma: no cover - typing only, keeps the import TF-free
    import keras

    from ..ingest import Dataset

__all__ = ["export_artifact", "describe_dataset", "validate_metadata", "ReportRenderer"]

#: ``(final metadata, extra files) -> report.html bytes``; see :func:`export_artifact`.
ReportRenderer = Callable[[dict, Mapping[str, bytes]], bytes]

_REQUIRED_META = ("features", "target", "hyperparameters", "data")
_FINITE = [Interval(Real, None, None)]
#: Rules of the values of the metadata's ``data`` object (its shape is checked by hand).
_DATA_RULES: Mapping[str, list] = {
    "data.sha256": [Satisfies(lambda v: isinstance(v, str) and re.fullmatch(r"[0-9a-f]{64}", v) is not None,
                              "{name} is 64 lower-case hex digits")],
    "data.rows": [Interval(Integral, 1, None)],
}
_RESERVED_META = ("schema_version", "model_id", "name", "version", "created_utc", "versions", "onnx")

# the tf2onnx fallback of onnx_model swaps attributes of the model's layers while it traces, and
# Keras saving walks them: one model at a time
_TF_LOCK = threading.Lock()


# --------------------------------------------------------------------------- metadata
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
        check_param(key, e.get(key), NAME, note=f" in metadata {what}")
    e.setdefault("source", e["name"])
    e.setdefault("source_unit", e["unit"])
    if ranges or "min" in e or "max" in e:
        lo, hi = e.get("min"), e.get("max")
        where = f" in metadata {what} {e['name']!r} (range seen in training)"
        for key, v in (("min", lo), ("max", hi)):
            check_param(key, v, _FINITE, note=where)
        require(lo <= hi, "min <= max", min=lo, max=hi, note=where)
        e["min"], e["max"] = float(lo), float(hi)
    return e


def validate_metadata(metadata: Any) -> dict[str, Any]:
    if not isinstance(metadata, Mapping):
        raise ConfigError(f"metadata must be a mapping, got {type(metadata).__name__}")
    meta = to_jsonable(metadata)
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
    check_params({"data.sha256": data["sha256"], "data.rows": data["rows"]}, _DATA_RULES)
    for key in ("cv", "test", "physics_fit"):
        v = meta.setdefault(key, None)
        if v is not None and not isinstance(v, dict):
            raise ConfigError(f"metadata {key} must be an object (metrics) or absent, got {v!r:.80}")
    target = meta["target"]["name"]
    if target in (INPUT_NAME, *names):
        raise ConfigError(f"target name must differ from the input {INPUT_NAME!r} and the features, got {target!r}")
    return meta



def _model_io(model: Any, what: str) -> tuple[int, int]:
    try:
        if len(model.inputs) != 1 or len(model.outputs) != 1:
            raise ConfigError(f"{what} must have one input and one output")
        return int(model.inputs[0].shape[-1]), int(model.outputs[0].shape[-1])
    except (AttributeError, TypeError, IndexError):
        raise ConfigError(f"{what} must be a built keras.Model, got {type(model).__name__}") from None


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
        if pp.as_posix().lower().endswith((*PICKLE_EXTENSIONS, ".npy", ".npz")):
            raise ConfigError(f"extra_files must not be pickles or numpy files, got {rel!r}")
        if isinstance(content, str):
            content = content.encode("utf-8")
        if not isinstance(content, (bytes, bytearray)):
            raise ConfigError(f"extra_files[{rel!r}] must be bytes or str, got {type(content).__name__}")
        out[pp.as_posix()] = bytes(content)
    return out



def _build_models(tmp: Path, model: Any, fold_models: Sequence[Any], n_features: int) -> list[Any]:
    """The ONNX graph of every model (in memory) and model.keras."""
    from ..nn import onnx_model

    with _TF_LOCK:
        protos = [onnx_model(m, n_features, opset=ONNX_OPSET) for m in (model, *fold_models)]
        model.save(str(tmp / KERAS_FILE))
    check_keras_file(tmp / KERAS_FILE)
    return protos


def _with_physics(protos: list[Any], physics: Sequence[Any] | None, n_out: int) -> list[Any]:
    """Fold each member's classical physics fit (hybrid/physics families) into its ONNX graph."""
    if not physics:
        return protos
    if len(physics) != len(protos):
        raise ConfigError(f"physics must give one entry (or None) per model, got {len(physics)} for {len(protos)}")
    from .physics_graph import attach_physics

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
    report: ReportRenderer | None = None,
    trust: Any = None,
    certificate: ReportRenderer | None = None,
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
        fit that the ``hybrid``/``physics`` families add to the network's first output;
        folded into the same ONNX graph (:mod:`calib.artifact.physics_graph`).
    metadata : mapping
        Must have ``features`` (ordered list of ``{name, unit, min, max}`` plus ``source``,
        ``source_unit``, ``frequency_hz``; ``min``/``max`` = range seen in training),
        ``target`` (``{name, unit, min, max, ...}``), ``hyperparameters`` (including
        ``seed``) and ``data`` (``{file, sha256, rows}``); should have ``cv``, ``test``,
        ``physics_fit`` (the physics fit alone: kind, params, metrics; null when absent) and may have ``aux_targets``,
        ``noise_floor`` and any other JSON-serialisable keys. :func:`describe_dataset` gives
        the ``features``/``target``/``aux_targets``/``data`` entries. ``schema_version``,
        ``model_id``, ``name``, ``version``, ``created_utc``, ``versions`` and ``onnx`` are
        added here and must not be given.
    extra_files : mapping of str to bytes, optional
        Further files (relative name -> content), e.g. ``{"test_predictions.csv": csv}``.
    report : callable, optional
        ``report(metadata, extra_files) -> bytes``: renders ``report.html`` from the final
        metadata (e.g. :func:`calib.report.artifact_report`); listed in ``SHA256SUMS``.
        None writes no report. An ``extra_files["report.html"]`` is kept as given instead.
    certificate : callable, optional
        ``certificate(metadata, extra_files) -> bytes``: renders ``certificate.html``
        (:func:`calib.report.certificate.render_certificate`); listed in ``SHA256SUMS``.
    trust : calib.trust.TrustSpec, optional
        Conformal interval and applicability domain (:mod:`calib.trust`): added to the graph
        as outputs ``<target>_lo``, ``<target>_hi``, ``domain_code``, ``domain_distance``
        (:mod:`calib.artifact.trust_graph`) and to ``calibration.json`` as ``conformal`` and
        ``domain``.

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
    The version folder appears atomically (:func:`calib.artifact.store.publish`); two
    concurrent exports of one name get two distinct versions; an existing version is
    never overwritten.
    """
    check_name(name)
    meta = validate_metadata(metadata)
    extras = _check_extra_files(extra_files)
    fold_models = tuple(fold_models)
    if len(fold_models) == 1:
        raise ConfigError("fold_models must hold k >= 2 models (or none), got 1")
    if report is not None and not callable(report):
        raise ConfigError(f"report must be a callable (metadata, extra_files) -> bytes or None, got {report!r:.60}")
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
    aux = [a["name"] for a in meta["aux_targets"]]
    std_name = f"{target}_std" if fold_models else None
    merged: list[Any] = []
    if trust is not None and [n for n, _c in trust.aux] not in ([], aux):
        raise ConfigError(f"trust intervals of {[n for n, _c in trust.aux]} do not match the aux_targets {aux}")

    def prepare(tmp: Path) -> None:
        protos = _build_models(tmp, model, fold_models, n_features)
        protos = _with_physics(protos, physics, n_out)
        merged.append(merge_onnx(protos, target, n_features, n_out, std_name, aux=aux))
        if trust is not None:
            attach_trust(merged[0], trust, input_name=INPUT_NAME, target=target, n_out=1)
            meta.update(trust.to_dict())
        # last: one named float32 [N] input per feature (calib.artifact.contract)
        name_inputs(merged[0], [f["name"] for f in meta["features"]])
        for rel, content in extras.items():
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            (tmp / rel).write_bytes(content)
        outputs = ([target, *aux] + ([std_name] if std_name else []) + (trust_outputs(target) if trust else [])
                   + (aux_interval_outputs([n for n, _c in trust.aux]) if trust else []))
        meta["onnx"] = {
            "file": ONNX_FILE,
            **contract_metadata(meta["features"], meta["target"], meta["aux_targets"], outputs,
                                opset_of(merged[0]), (meta.get("conformal") or {}).get("level")),
            "n_fold_models": len(fold_models),
            "std_ddof": 0 if fold_models else None,
        }

    def finish(tmp: Path, final: dict[str, Any]) -> None:
        (tmp / ONNX_FILE).write_bytes(stamp_onnx(merged[0], final))
        extra_names = sorted(extras)
        if report is not None and REPORT_FILE not in extras:
            (tmp / REPORT_FILE).write_bytes(report(final, extras))
            extra_names = sorted({*extras, REPORT_FILE})
        if certificate is not None:
            (tmp / "certificate.html").write_bytes(certificate(final, extras))
            extra_names = sorted({*extra_names, "certificate.html"})
        (tmp / CARD_FILE).write_bytes(model_card(final, extra_names))

    return publish(models_dir, name, meta, prepare=prepare, finish=finish)
