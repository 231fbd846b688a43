"""Spot children: the batch model adjusted to one spot, published as an artifact of its own.

:func:`adjust_spots` computes every spot's two-point adjustment (:mod:`calib.spots.adjust`)
and writes one child per spot, ``models/<parent>.<spot>/<version>/``: the parent's ONNX graph
with the spot's correction folded in (still one file for lab software), a Keras model with
the same correction, and metadata naming the parent's model id, the spot column and the
reference file's SHA-256. Children are published through the same atomic
:func:`calib.artifact.store.publish` as batch models; :func:`calib.load_model` finds them
and applies them by spot id (:mod:`calib.runtime`).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

import numpy as np

from ..artifact.card import model_card
from ..artifact.contract import contract_metadata, name_inputs, unname_inputs
from ..artifact.onnx import opset_of, stamp_onnx
from ..artifact.trust_graph import attach_trust, strip_trust
from ..trust import ConformalSpec, TrustSpec
from ..artifact.store import CARD_FILE, INPUT_NAME, KERAS_FILE, ONNX_FILE, Artifact, check_keras_file, publish
from ..errors import ArtifactError, ConfigError, IngestError
from ..runtime import NORMALISATION_KEY as NORM_KEY
from ..runtime import SPOT_ADJUSTMENT_KEY as META_KEY
from ..serial import json_text
from .adjust import SPOT_MAP, AdjustResult, SpotAdjustment, check_method, child_name, compute_adjustments, load_parent
from .reference import spot_column_of

if TYPE_CHECKING:  # pragma: no cover
    from ..config import CheckSpec
    from ..runtime import CalibrationModel

__all__ = ["adjust_spots", "write_spot_artifact"]




def _child_onnx(parent: CalibrationModel, adj: SpotAdjustment) -> Any:
    """The parent's ONNX graph with the adjustment folded in (same input and output names).

    The correction reads the internal matrix ``readings``: the parent's named inputs are
    taken off first and put back last (:mod:`calib.artifact.contract`); a parent of schema
    1.1 (one ``readings`` input) gets a child with named inputs.
    """
    import onnx
    from onnx import helper, numpy_helper

    proto = unname_inputs(onnx.load_model_from_string(parent.onnx_bytes))
    trust = _child_trust(parent)
    if trust is not None:  # re-attached after the correction, with the child's interval
        strip_trust(proto, parent.target, parent.targets[1:])
    g = proto.graph
    inp = INPUT_NAME
    pre = "calib_spot/"
    # schema >= 1.3: the primary target is its own output [N]; before, column 0 of a matrix
    n_out = 1 if parent.aux_output_names else len(parent.targets)

    def with_trust(p: Any) -> Any:
        if trust is not None:
            attach_trust(p, trust, input_name=inp, target=parent.target, n_out=n_out,
                         domain_input=f"{pre}{inp}")
        return name_inputs(p, parent.features)  # checks the model

    if adj.method == SPOT_MAP:
        # readings * input_scale + input_add -> the parent graph (outputs unchanged)
        for node in g.node:
            for i, name in enumerate(node.input):
                if name == inp:
                    node.input[i] = f"{pre}{inp}"
        g.initializer.extend([
            numpy_helper.from_array(np.asarray(adj.input_scale, dtype=np.float32), f"{pre}input_scale"),
            numpy_helper.from_array(np.asarray(adj.input_add, dtype=np.float32), f"{pre}input_add"),
        ])
        g.node.insert(0, helper.make_node("Add", [f"{pre}{inp}_scaled", f"{pre}input_add"], [f"{pre}{inp}"],
                                          name=f"{pre}map_add"))
        g.node.insert(0, helper.make_node("Mul", [inp, f"{pre}input_scale"], [f"{pre}{inp}_scaled"],
                                          name=f"{pre}map_mul"))
        return with_trust(proto)
    outs = [parent.output_name] + ([parent.std_name] if parent.std_name else [])
    raw = {o: f"{pre}{o}_batch" for o in outs}
    for node in g.node:
        for i, name in enumerate(node.input):
            if name == inp:
                node.input[i] = f"{pre}{inp}"
            elif name in raw:
                node.input[i] = raw[name]
        for i, name in enumerate(node.output):
            if name in raw:
                node.output[i] = raw[name]
    if n_out == 1:
        scale = np.array(adj.scale, dtype=np.float32)
        intercept = np.array(adj.intercept, dtype=np.float32)
    else:
        scale = np.ones(n_out, dtype=np.float32)
        scale[0] = adj.scale
        intercept = np.zeros(n_out, dtype=np.float32)
        intercept[0] = adj.intercept
    g.initializer.extend([
        numpy_helper.from_array(np.asarray(adj.input_offset, dtype=np.float32), f"{pre}input_offset"),
        numpy_helper.from_array(scale, f"{pre}scale"),
        numpy_helper.from_array(intercept, f"{pre}intercept"),
        numpy_helper.from_array(np.array(abs(adj.scale), dtype=np.float32), f"{pre}std_scale"),
    ])
    g.node.insert(0, helper.make_node("Sub", [inp, f"{pre}input_offset"], [f"{pre}{inp}"], name=f"{pre}shift"))
    target = parent.output_name
    g.node.extend([
        helper.make_node("Mul", [raw[target], f"{pre}scale"], [f"{pre}scaled"], name=f"{pre}scale"),
        helper.make_node("Add", [f"{pre}scaled", f"{pre}intercept"], [target], name=f"{pre}intercept"),
    ])
    if parent.std_name:
        g.node.append(helper.make_node("Mul", [raw[parent.std_name], f"{pre}std_scale"], [parent.std_name],
                                       name=f"{pre}std"))
    return with_trust(proto)


def _child_trust(parent: CalibrationModel) -> TrustSpec | None:
    """The child's interval and domain: the parent's domain (in the parent's input space, which
    the child's graph feeds with the mapped readings) and the parent's two-point-adjusted
    conformal constants (``conformal_adjusted``; the parent's own when it has none)."""
    meta = parent.metadata
    try:
        spec = TrustSpec.from_metadata(meta)
        if spec is None or not parent.has_interval:
            return None
        if isinstance(meta.get("conformal_adjusted"), Mapping):
            spec = TrustSpec(ConformalSpec.from_dict(meta["conformal_adjusted"]), spec.domain, spec.aux)
    except (KeyError, TypeError, ValueError) as exc:
        raise ArtifactError(f"{parent.path}/calibration.json: malformed conformal/domain entry ({exc})") from None
    return spec


def _child_keras(parent_keras: Any, adj: SpotAdjustment, n_targets: int) -> Any:
    """The parent's Keras network between an input offset and an output scale (built-in layers only)."""
    from ..nn.tf import keras as _quiet_keras

    keras = _quiet_keras()
    n = len(adj.input_offset)
    mean_out = np.zeros(n_targets)
    mean_out[0] = adj.intercept
    var_out = np.ones(n_targets)
    var_out[0] = adj.scale ** 2
    inp = keras.Input(shape=(n,), dtype="float32", name="readings")
    if adj.input_scale:  # spot_map: x * m + c (invert: x * sqrt(variance) + mean; m > 0)
        h = keras.layers.Normalization(mean=list(map(float, adj.input_add)),
                                       variance=[float(v) ** 2 for v in adj.input_scale], invert=True,
                                       name="spot_input_map")(inp)
    else:
        h = keras.layers.Normalization(mean=list(map(float, adj.input_offset)), variance=[1.0] * n,
                                       name="spot_input_offset")(inp)
    y = parent_keras(h)
    out = keras.layers.Normalization(mean=mean_out.tolist(), variance=var_out.tolist(), invert=True,
                                     name="spot_output_scale")(y)
    return keras.Model(inp, out, name="calib_spot")


def _child_metadata(parent: CalibrationModel, adj: SpotAdjustment, ref_info: Mapping[str, Any],
                    spot_column: str, check: Mapping[str, Any] | None = None) -> dict[str, Any]:
    meta = parent.metadata
    for key in ("schema_version", "model_id", "name", "version", "created_utc", "versions"):
        meta.pop(key, None)
    feats = []
    scales = adj.input_scale or (1.0,) * len(adj.input_offset)
    for f, off, m in zip(meta["features"], adj.input_offset, scales):
        f = dict(f)
        if off or m != 1.0:  # the parent's range in the child's raw readings (m > 0)
            f["min"], f["max"] = (float(f["min"]) + off) / m, (float(f["max"]) + off) / m
        feats.append(f)
    meta["features"] = feats
    trust = _child_trust(parent)
    if trust is not None:
        meta.update(trust.to_dict())
        meta.pop("conformal_adjusted", None)
    # the child takes raw readings: the parent's normalisation is recorded in spot_adjustment
    meta.pop(NORM_KEY, None)
    meta[META_KEY] = {
        **adj.to_dict(),
        "spot_column": spot_column,
        "parent": {"name": parent.name, "version": parent.version, "model_id": parent.model_id,
                   "path": str(parent.path), "onnx_sha256": hashlib.sha256(parent.onnx_bytes).hexdigest()},
        "reference": {"file": ref_info["file"], "sha256": ref_info["sha256"]},
        **({} if check is None else {"check": dict(check)}),  # the dated check (calib.spots.history)
        "note": ("features[].min/max are the parent's calibrated ranges mapped back to this spot's raw "
                 "readings; metrics (cv, test, physics_fit) are the parent's on spot-normalised readings"
                 if adj.method == SPOT_MAP else
                 "features[].min/max are the parent's calibrated ranges shifted by input_offset; "
                 "metrics (cv, test, physics_fit) are the parent batch model's"),
    }
    return meta


def _card_section(meta: Mapping[str, Any]) -> str:
    a = meta[META_KEY]
    p = a["parent"]
    unit = a["unit"]
    lines = [
        "",
        "## Spot adjustment",
        "",
        f"This model is the batch model `{p['name']}` {p['version']} (model id `{p['model_id']}`) "
        f"adjusted to spot **{a['spot_id']}** (column `{a['spot_column']}`) by a two-point check "
        f"(method `{a['method']}`):",
        "",
        f"    {a['formula']}",
        "",
        ("- input map (scale, add): " + ", ".join(f"{k} ({a['input_scale'][k]:.6g}, {v:+.6g})"
                                                   for k, v in a["input_add"].items())
         + f"; the parent takes spot-normalised phases, anchored at {a['normalisation']['reference']['zero']:g} "
         f"and {a['normalisation']['reference']['air']:g} {unit} at "
         f"{a['normalisation']['reference']['temperature_degC']:g} degC."
         if a["method"] == SPOT_MAP else
         f"- phase shift {a['phase_shift']:.6g}, scale {a['scale']:.6g}, intercept {a['intercept']:.6g} {unit}; "
         "input offset " + ", ".join(f"{k} {v:.6g}" for k, v in a["input_offset"].items()) + "."),
        f"- Zero reference: {a['zero']['value']:.6g} {unit} (batch read {a['zero']['batch_reading']:.6g}); "
        f"air reference: {a['air']['value']:.6g} {unit} (batch read {a['air']['batch_reading']:.6g}).",
        f"- Reference file `{a['reference']['file']}`, SHA-256 `{a['reference']['sha256']}`, rows "
        f"{', '.join(map(str, a['zero']['rows'] + a['air']['rows']))}.",
        "- Metrics above are those of the batch model across spots; the two points fit exactly, so "
        "they do not validate the adjustment. The calibrated input ranges are the parent's, mapped to "
        "this spot's raw readings.",
        "- Use this model only for readings of this spot; `calib predict` with the batch model picks "
        "it for rows whose spot column names this spot.",
    ]
    c = a.get("check")
    if isinstance(c, Mapping):
        lines.append(f"- Check of {c['date'][:10]}: gain {c['gain']:.5f}, offset {c['offset']:+.4g} {unit}"
                     + ("" if c["within_bounds"] else " (OUTSIDE the acceptance bounds, recorded with --force)")
                     + f"; next check due {c['due'][:10]} (tolerance {c['tolerance']:g} {unit}).")
    lines.append("")
    return "\n".join(lines)


def write_spot_artifact(
    parent: CalibrationModel,
    adjustment: SpotAdjustment,
    reference: Mapping[str, Any],
    *,
    models_dir: str | Path | None = None,
    spot_column: str | None = None,
    parent_keras: Any = None,
    check: Mapping[str, Any] | None = None,
) -> Artifact:
    """Write the child artifact of one spot (atomically, next version of its name).

    Parameters
    ----------
    parent : CalibrationModel
        The batch model.
    adjustment : SpotAdjustment
        From :func:`compute_adjustments` for this ``parent``.
    reference : mapping
        ``file`` and ``sha256`` of the reference data (``compute_adjustments``' first result).
    models_dir : str or Path, optional
        Default: the parent's models folder (``models`` of ``models/<name>/<version>``).
    spot_column : str, optional
        Spot column name recorded in the metadata; default: the parent's group column.
    parent_keras : keras.Model, optional
        The parent's ``model.keras`` already loaded (saves reloading it per spot).
    check : mapping, optional
        The dated check, recorded as ``spot_adjustment.check``
        (:meth:`calib.spots.history.CheckAssessment.to_dict`).

    Returns
    -------
    calib.artifact.Artifact

    Raises
    ------
    ArtifactError
        The folder cannot be written, or the parent's Keras file is unsafe.
    """
    if adjustment.features != tuple(parent.features):
        raise ConfigError(
            f"adjustment features {list(adjustment.features)} differ from the model's {list(parent.features)}"
        )
    scol = spot_column or spot_column_of(parent, None)
    models_dir = Path(models_dir) if models_dir is not None else parent.path.parent.parent
    name = child_name(parent.name, adjustment.spot_id)
    meta = _child_metadata(parent, adjustment, reference, scol, check)
    proto = _child_onnx(parent, adjustment)
    if parent_keras is None:
        parent_keras = _load_parent_keras(parent)
    onnx_meta = {k: v for k, v in meta["onnx"].items() if k not in ("input", "input_shape")}
    meta["onnx"] = {**onnx_meta, **contract_metadata(
        meta["features"], meta["target"], meta.get("aux_targets") or [], onnx_meta["outputs"], opset_of(proto),
        (meta.get("conformal") or {}).get("level"))}

    def prepare(tmp: Path) -> None:
        child_k = _child_keras(parent_keras, adjustment, len(parent.targets))
        child_k.save(str(tmp / KERAS_FILE))
        check_keras_file(tmp / KERAS_FILE)

    def finish(tmp: Path, final: dict[str, Any]) -> None:
        (tmp / ONNX_FILE).write_bytes(_stamp_child(proto, final))
        from ..report.certificate import CERTIFICATE_FILE, render_certificate

        (tmp / CERTIFICATE_FILE).write_text(render_certificate(final), encoding="utf-8")
        card = model_card(final, [CERTIFICATE_FILE]).decode("utf-8") + _card_section(final)
        (tmp / CARD_FILE).write_text(card, encoding="utf-8")

    return publish(models_dir, name, meta, prepare=prepare, finish=finish)


def _stamp_child(proto: Any, meta: Mapping[str, Any]) -> bytes:
    stamp_onnx(proto, meta)  # model version, doc string, standard properties
    a = meta[META_KEY]
    proto.doc_string += (f"; spot {a['spot_id']} adjustment ({a['method']}) of "
                         f"{a['parent']['name']} {a['parent']['version']}")
    for k, v in (("spot_id", a["spot_id"]), ("parent_model_id", a["parent"]["model_id"]),
                 ("parent_version", a["parent"]["version"]), ("reference_sha256", a["reference"]["sha256"]),
                 ("spot_adjustment", json_text(a))):
        e = proto.metadata_props.add()
        e.key, e.value = k, str(v)
    return proto.SerializeToString()


def _load_parent_keras(parent: CalibrationModel) -> Any:
    from ..nn.tf import keras as _quiet_keras

    path = parent.path / KERAS_FILE
    check_keras_file(path)
    keras = _quiet_keras()
    try:
        return keras.models.load_model(str(path), safe_mode=True, compile=False)
    except Exception as exc:  # Keras raises its own types
        raise ArtifactError(f"{path}: Keras cannot load it ({type(exc).__name__}: {exc})") from None


def adjust_spots(
    model: CalibrationModel | str | Path,
    reference: str | Path,
    *,
    method: str | None = None,
    spots: Sequence[str] | None = None,
    spot_column: str | None = None,
    models_dir: str | Path | None = None,
    sep: str | None = None,
    decimal: str | None = None,
    write: bool = True,
    date: Any = None,
    check: CheckSpec | None = None,
    tolerance: float | None = None,
    force: bool = False,
) -> AdjustResult:
    """Adjust a batch model to each spot of a two-point reference file and write the children.

    Every spot is computed and checked before anything is written, so bad reference data
    leaves the models folder unchanged.

    Parameters
    ----------
    model : CalibrationModel or path
        The batch model (``models/<name>`` -> latest version, or ``models/<name>/<version>``).
    reference : str or Path
        Reference readings, see the module notes.
    method : {"linear", "phase_scale", "spot_map"} or None, default=None
        ``None``: ``spot_map`` for a parent with ``spot_normalisation``, else ``linear``.
    spots : sequence of str, optional
        Only these spots; default every spot of ``reference``.
    spot_column : str, optional
        Default: the model's group column (``calibration.json`` ``data.group``).
    models_dir : str or Path, optional
        Where the children go; default: the parent's models folder. Only children beside
        the parent are applied by it (:func:`calib.load_model` of the batch model); children
        elsewhere must be loaded themselves (the result's ``note`` says so).
    sep, decimal : str, optional
        CSV separator and decimal mark of ``reference``.
    write : bool, default=True
        False computes and reports only.
    date : str or datetime, optional
        Date of the check (ISO 8601, UTC unless a zone is given). Default: the reference's
        ``date``/``time`` column, else now (:mod:`calib.spots.history`).
    check : CheckSpec, optional
        Acceptance bounds and schedule (``[check]``); default :class:`calib.config.CheckSpec`.
    tolerance : float, optional
        Error allowed by drift before the next check, target unit; default ``check.tolerance``,
        else 1 hPa of pO2 in the target unit.
    force : bool, default=False
        Write checks outside the bounds too (marked ``forced``); without it such a check is
        refused and nothing is written.

    Returns
    -------
    AdjustResult

    Raises
    ------
    IngestError
        See :func:`compute_adjustments`; a check outside the ``[check]`` bounds without
        ``force`` (nothing written: each spot's previous child stays current).
    ConfigError, ArtifactError
        See :func:`compute_adjustments` and :func:`write_spot_artifact`; a bad ``date``, a
        check dated before the spot's latest one.
    """
    from .history import assess_checks, refusal

    parent = load_parent(model)
    info, adjustments = compute_adjustments(parent, reference, method=method, spots=spots,
                                            spot_column=spot_column, sep=sep, decimal=decimal)
    method = check_method(method, parent)
    judged = assess_checks(parent, info, adjustments, date=date, spec=check, tolerance=tolerance,
                           models_dir=models_dir)
    refused = [a for a in judged if not a.accepted]
    if refused and not force:
        raise IngestError(refusal(parent, info, refused))
    checks = tuple(a.to_dict(forced=force) for a in judged)
    arts: list[Any] = []
    if write and adjustments:
        pk = _load_parent_keras(parent)
        for adj, chk in zip(adjustments, checks):
            arts.append(write_spot_artifact(parent, adj, info, models_dir=models_dir,
                                            spot_column=info["spot_column"], parent_keras=pk, check=chk))
    return AdjustResult(
        parent={"name": parent.name, "version": parent.version, "model_id": parent.model_id,
                "path": str(parent.path)},
        reference=info,
        method=method,
        adjustments=adjustments,
        artifacts=tuple(arts),
        note=_placement_note(parent, models_dir) if arts else None,
        checks=checks,
    )


def _placement_note(parent: CalibrationModel, models_dir: str | Path | None) -> str | None:
    home = parent.path.parent.parent
    if models_dir is None or Path(models_dir).resolve() == home.resolve():
        return None
    return (f"the children were written to {models_dir}, not beside the batch model ({home}): "
            f"`calib predict {parent.path.parent}` does not apply them; predict with a child itself")
