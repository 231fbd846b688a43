"""Tests of calib.artifact: the versioned artifact (store, export, ONNX), its verification and TF-free loading."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import uuid
import zipfile
from pathlib import Path

import numpy as np
import pytest

from calib.artifact import export as E

from calib.artifact import store as S

from calib.runtime import load_model
from calib.errors import ArtifactError, ConfigError, IncompatibleArtifactError, IngestError, IntegrityError

REPO = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------- fixtures
def write_readings(path: Path, n_per_level: int = 2, seed: int = 0) -> Path:
    """Synthetic single-site Stern-Volmer readings: phase (deg) and temperature in K -> pO2 (hPa)."""
    rng = np.random.default_rng(seed)
    rows = []
    for spot in range(4):
        for t in (5.0, 15.0, 25.0, 35.0):
            for po2 in (0.0, 20.0, 50.0, 100.0, 200.0, 300.0):
                for _ in range(n_per_level):
                    theta0 = 63.6 - 0.078 * t
                    ksv = 0.031 + 0.00045 * t
                    theta = np.degrees(np.arctan(np.tan(np.radians(theta0)) / (1 + ksv * po2)))
                    theta += rng.normal(0, 0.01)
                    tk = t + 273.15 + rng.normal(0, 0.02)
                    rows.append(f"S{spot},{theta:.4f},{tk:.3f},{po2:.1f},run {spot}")
    path.write_text("spot_id,phase_deg,temp_K,o2_hPa,note\n" + "\n".join(rows) + "\n")
    return path


def _train(x, y, seed, epochs=6):
    from calib.nn import ModelConfig, train
    from calib.scaling import fit_scaler

    cfg = ModelConfig(hidden_layers=(8,), epochs=epochs, batch_size=32, patience=None, seed=seed)
    return cfg, train(cfg, x, y, x_scaler=fit_scaler(x), y_scaler=fit_scaler(y)).model


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A dataset read by calib.ingest, a final model, 3 fold models and the metadata."""
    from calib.config import DataSpec
    from calib.ingest import load_dataset
    from calib.metrics import score
    from calib.nn import predict

    folder = tmp_path_factory.mktemp("data")
    csv = write_readings(folder / "readings.csv")
    ds = load_dataset(csv, DataSpec(features=("phase_deg", "temp_K"), target="o2_hPa", group="spot_id"))
    x, y = ds.x(), ds.y()
    cfg, final = _train(x, y, seed=0)
    folds, fold_scores = [], []
    idx = np.arange(ds.n_rows)
    for k in range(3):
        val = idx[idx % 3 == k]
        tr = idx[idx % 3 != k]
        _, fm = _train(x[tr], y[tr], seed=k + 1)
        folds.append(fm)
        fold_scores.append(score(y[val, 0], predict(fm, x[val]), tolerance=1.0))
    maes = np.array([s.mae for s in fold_scores])
    meta = {
        **E.describe_dataset(ds),
        "hyperparameters": cfg.to_dict(),
        "cv": {
            "n_folds": 3,
            "folds": [{"fold": i, "val": s.to_dict()} for i, s in enumerate(fold_scores)],
            "summary": {"val": {"mae": {"mean": float(maes.mean()), "std": float(maes.std(ddof=1))}}},
        },
        "test": score(y[:, 0], predict(final, x)).to_dict(),
        "physics_fit": {"kind": "svu", "mae": 2.5},
        "noise_floor": 0.4,
        "operator": "test-suite",
    }
    rng = np.random.default_rng(1)
    lo, hi = x.min(axis=0), x.max(axis=0)
    x_new = rng.uniform(lo, hi, size=(500, 2))
    return {"ds": ds, "final": final, "folds": folds, "meta": meta, "x_new": x_new, "csv": csv}


@pytest.fixture(scope="module")
def artifact(trained, tmp_path_factory):
    models = tmp_path_factory.mktemp("models")
    return E.export_artifact(
        models, "foil-A", model=trained["final"], fold_models=trained["folds"],
        metadata=trained["meta"], extra_files={"report.html": "<html>report</html>"},
    )


def copy_artifact(art: S.Artifact, tmp_path: Path) -> Path:
    dst = tmp_path / "models" / art.name / art.version
    shutil.copytree(art.path, dst)
    return dst


def rewrite_sums(vdir: Path) -> None:
    """Recompute SHA256SUMS so that only the content checks can catch a change."""
    lines = []
    for p in sorted(vdir.rglob("*")):
        if p.is_file() and p.name != S.SUMS_FILE:
            rel = p.relative_to(vdir).as_posix()
            lines.append(f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {rel}\n")
    (vdir / S.SUMS_FILE).write_text("".join(lines))


# --------------------------------------------------------------------------- round trip
def test_onnx_predictions_equal_keras(trained, artifact):
    from calib.nn import predict

    m = load_model(artifact.path)
    expected = predict(trained["final"], trained["x_new"])
    got = m.predict(trained["x_new"])
    assert got.shape == (500,)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)
    assert np.ptp(expected) > 10.0  # a real spread of predictions, not a constant


def test_std_output_equals_numpy_std_of_fold_models(trained, artifact):
    from calib.nn import predict

    m = load_model(artifact.path)
    pred, std = m.predict(trained["x_new"], return_std=True)
    folds = np.stack([predict(f, trained["x_new"]) for f in trained["folds"]], axis=1)
    np.testing.assert_allclose(std, folds.std(axis=1), rtol=1e-4, atol=5e-5)
    assert std.min() > 0.0
    np.testing.assert_allclose(pred, m.predict(trained["x_new"]), rtol=0, atol=0)


def test_predict_frame_adds_columns_and_flags_out_of_range(trained, artifact):
    import pandas as pd

    m = load_model(artifact.path)
    lo, hi = m.lower, m.upper
    df = pd.DataFrame(
        {"phase_deg": [lo[0], hi[0] + 1.0, (lo[0] + hi[0]) / 2], "temp_degC": [lo[1], 20.0, hi[1]]},
        index=[10, 11, 12],
    )
    out = m.predict_frame(df)
    assert list(out.columns) == ["phase_deg", "temp_degC", "o2_hPa_pred", "o2_hPa_std", "out_of_range",
                                 "out_of_range_reason"]
    assert list(out.index) == [10, 11, 12]
    assert out["out_of_range"].tolist() == [False, True, False]  # bounds are inclusive


def test_non_finite_reading_is_refused(artifact):
    m = load_model(artifact.path)
    with pytest.raises(IngestError, match=r"row 1 \(0-based\), column temp_degC: nan is not a finite"):
        m.predict(np.array([[30.0, 20.0], [30.0, np.nan]]))


def test_missing_feature_column_is_named(artifact):
    import pandas as pd

    m = load_model(artifact.path)
    with pytest.raises(IngestError, match=r"missing column 'phase_deg' \(feature in deg\); did you mean 'phase_dg'"):
        m.predict(pd.DataFrame({"phase_dg": [30.0], "temp_degC": [20.0]}))


def test_keras_file_loads_in_safe_mode(trained, artifact):
    import keras

    from calib.nn import predict

    k = keras.models.load_model(artifact.path / "model.keras", safe_mode=True)
    np.testing.assert_allclose(predict(k, trained["x_new"]), predict(trained["final"], trained["x_new"]), rtol=1e-6)


# --------------------------------------------------------------------------- layout and metadata
def test_artifact_files_and_checksums(artifact):
    files = sorted(p.name for p in artifact.path.iterdir())
    assert files == sorted(["model.onnx", "model.keras", "calibration.json", "MODEL_CARD.md", "SHA256SUMS", "report.html"])
    listed = {}
    for line in (artifact.path / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split("  ")
        listed[name] = digest
    assert set(listed) == set(files) - {"SHA256SUMS"}
    for name, digest in listed.items():
        assert hashlib.sha256((artifact.path / name).read_bytes()).hexdigest() == digest


def test_calibration_json_content(trained, artifact):
    meta = json.loads((artifact.path / "calibration.json").read_text())
    assert meta["schema_version"] == S.SCHEMA_VERSION == "1.3"
    assert uuid.UUID(meta["model_id"]).version == 4
    assert (meta["name"], meta["version"]) == ("foil-A", "1.0.0")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", meta["created_utc"])
    assert set(meta["versions"]) >= {"calib", "tensorflow", "keras", "onnx", "onnxruntime", "tf2onnx"}
    assert all(meta["versions"][k] for k in ("calib", "keras", "onnx", "onnxruntime", "tf2onnx"))
    temp = meta["features"][1]
    assert (temp["name"], temp["unit"], temp["source"], temp["source_unit"]) == ("temp_degC", "degC", "temp_K", "K")
    x = trained["ds"].x()
    assert temp["min"] == pytest.approx(x[:, 1].min()) and temp["max"] == pytest.approx(x[:, 1].max())
    assert 4.8 < temp["min"] < 5.2  # 278.15 K read as 5 degC (noise 0.02 K)
    assert meta["target"]["name"] == "o2_hPa" and meta["target"]["max"] == 300.0
    assert meta["hyperparameters"]["seed"] == 0
    assert meta["data"]["sha256"] == hashlib.sha256(trained["csv"].read_bytes()).hexdigest()
    assert meta["data"]["rows"] == 192
    assert meta["onnx"]["inputs"] == ["phase_deg", "temp_degC"] and meta["onnx"]["outputs"] == ["o2_hPa", "o2_hPa_std"]
    assert meta["onnx"]["opset"] == 15 and meta["onnx"]["input_dtype"] == "float32"
    assert set(meta["onnx"]["output_meaning"]) == {"o2_hPa", "o2_hPa_std"}
    assert meta["operator"] == "test-suite"  # caller keys are kept
    assert artifact.metadata == meta


def test_onnx_metadata_props_readable_with_onnx(artifact):
    import onnx

    proto = onnx.load(str(artifact.path / "model.onnx"))
    props = {p.key: p.value for p in proto.metadata_props}
    meta = json.loads((artifact.path / "calibration.json").read_text())
    assert props["model_id"] == meta["model_id"]
    assert props["version"] == "1.0.0" and props["schema_version"] == "1.3"
    assert props["calib_version"] == meta["versions"]["calib"]
    assert [f["name"] for f in json.loads(props["features"])] == ["phase_deg", "temp_degC"]
    assert (props["target"], props["unit"]) == ("o2_hPa", "hPa")
    # one named float32 [N] input per feature (calib.artifact.contract), the pinned opset recorded
    assert [i.name for i in proto.graph.input] == ["phase_deg", "temp_degC"]
    assert [o.name for o in proto.graph.output] == ["o2_hPa", "o2_hPa_std"]
    for i in proto.graph.input:
        assert i.type.tensor_type.elem_type == onnx.TensorProto.FLOAT
        assert [d.dim_param for d in i.type.tensor_type.shape.dim] == ["N"]
    assert max(o.version for o in proto.opset_import if o.domain == "") == 15 == int(props["opset"])
    assert [(i["name"], i["unit"], i["dtype"]) for i in json.loads(props["inputs"])] == [
        ("phase_deg", "deg", "float32"), ("temp_degC", "degC", "float32")]
    assert json.loads(props["output_meaning"]) == meta["onnx"]["output_meaning"]
    assert "standard deviation" in meta["onnx"]["output_meaning"]["o2_hPa_std"]


def test_model_card_states_range_unit_and_limits(artifact):
    card = (artifact.path / "MODEL_CARD.md").read_text()
    assert "## Intended use" in card and "## Limits" in card
    assert "in **hPa**" in card
    assert "| 1 | temp_degC | degC | temp_K (K) |" in card
    assert "out_of_range = True" in card and "noise" in card.lower() and "0.4 hPa" in card


def test_describe_dataset_ranges_use_training_rows(trained):
    ds = trained["ds"]
    rows = np.flatnonzero(ds.frame["temp_degC"].to_numpy() < 20)
    d = E.describe_dataset(ds, rows)
    assert d["features"][1]["max"] < 16.0
    assert d["data"]["rows"] == 192 and d["data"]["rows_used"] == len(rows) == 96


# --------------------------------------------------------------------------- versions
def test_versions_bump_minor_then_major_and_never_overwrite(trained, tmp_path):
    meta = trained["meta"]
    a1 = E.export_artifact(tmp_path, "foil", model=trained["final"], metadata=meta)
    a2 = E.export_artifact(tmp_path, "foil", model=trained["final"], metadata=meta)
    changed = json.loads(json.dumps(meta))
    changed["features"][0]["name"] = "phase_5000hz_deg"
    a3 = E.export_artifact(tmp_path, "foil", model=trained["final"], metadata=changed)
    a4 = E.export_artifact(tmp_path, "foil", model=trained["final"], metadata=changed)
    assert [a.version for a in (a1, a2, a3, a4)] == ["1.0.0", "1.1.0", "2.0.0", "2.1.0"]
    assert S.list_versions(tmp_path / "foil") == ["1.0.0", "1.1.0", "2.0.0", "2.1.0"]
    first = json.loads((tmp_path / "foil" / "1.0.0" / "calibration.json").read_text())
    assert first["model_id"] == a1.metadata["model_id"] != a2.metadata["model_id"]
    assert load_model(tmp_path / "foil").version == "2.1.0"
    assert S.list_artifacts(tmp_path) == {"foil": ["1.0.0", "1.1.0", "2.0.0", "2.1.0"]}


def test_target_unit_change_is_a_major_bump(trained, tmp_path):
    E.export_artifact(tmp_path, "foil", model=trained["final"], metadata=trained["meta"])
    changed = json.loads(json.dumps(trained["meta"]))
    changed["target"].update(name="o2_kPa", unit="kPa")
    assert E.export_artifact(tmp_path, "foil", model=trained["final"], metadata=changed).version == "2.0.0"


def test_concurrent_exports_get_distinct_versions(trained, tmp_path, monkeypatch):
    # both exports compute the next version before either renames its folder into place
    barrier = threading.Barrier(2)
    local = threading.local()
    original = S._next_version

    def racing(name_dir, signature):
        version = original(name_dir, signature)
        if not getattr(local, "waited", False):
            local.waited = True
            barrier.wait(timeout=120)
        return version

    monkeypatch.setattr(S, "_next_version", racing)
    results, errors = [], []

    def run():
        try:
            results.append(E.export_artifact(tmp_path, "foil", model=trained["final"], metadata=trained["meta"]))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=180)
    assert not errors
    assert sorted(a.version for a in results) == ["1.0.0", "1.1.0"]
    for a in results:  # each folder holds its own, consistent version
        assert load_model(a.path).version == a.path.name == a.version
    assert len({a.metadata["model_id"] for a in results}) == 2
    assert not [p for p in (tmp_path / "foil").iterdir() if p.name.startswith(".tmp-")]


def test_crash_mid_build_leaves_no_half_artifact(trained, tmp_path, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("simulated crash while writing the model card")

    monkeypatch.setattr(E, "model_card", boom)
    with pytest.raises(RuntimeError, match="simulated crash"):
        E.export_artifact(tmp_path, "foil", model=trained["final"], metadata=trained["meta"])
    assert list((tmp_path / "foil").iterdir()) == []


def test_stale_tmp_is_ignored_then_cleaned(trained, artifact, tmp_path):
    vdir = copy_artifact(artifact, tmp_path)
    name_dir = vdir.parent
    old, fresh = name_dir / ".tmp-crashed", name_dir / ".tmp-running"
    for d in (old, fresh):
        d.mkdir()
        (d / "model.onnx").write_bytes(b"half")
    past = time.time() - 2 * 3600
    os.utime(old, (past, past))
    assert S.list_versions(name_dir) == ["1.0.0"]
    assert load_model(name_dir).path == vdir
    E.export_artifact(tmp_path / "models", "foil-A", model=trained["final"], metadata=trained["meta"])
    assert not old.exists() and fresh.exists()
    assert S.list_versions(name_dir) == ["1.0.0", "1.1.0"]


# --------------------------------------------------------------------------- write errors
@pytest.mark.parametrize(
    "err, message",
    [
        pytest.param(errno.ENOSPC, "no space left on the device", id="disk-full"),
        pytest.param(errno.EROFS, "read-only or not writable", id="read-only-fs"),
    ],
)
def test_os_errors_become_artifact_errors(trained, tmp_path, monkeypatch, err, message):
    def fail(folder):
        raise OSError(err, os.strerror(err), str(folder / "SHA256SUMS"))

    monkeypatch.setattr(S, "_write_sums", fail)
    with pytest.raises(ArtifactError, match=message):
        E.export_artifact(tmp_path, "foil", model=trained["final"], metadata=trained["meta"])
    assert list((tmp_path / "foil").iterdir()) == []


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root ignores folder permissions")
def test_read_only_models_dir(trained, tmp_path):
    tmp_path.chmod(0o555)
    try:
        with pytest.raises(ArtifactError, match="read-only or not writable"):
            E.export_artifact(tmp_path / "models", "foil", model=trained["final"], metadata=trained["meta"])
    finally:
        tmp_path.chmod(0o755)


def test_models_dir_that_is_a_file(trained, tmp_path):
    f = tmp_path / "models"
    f.write_text("not a folder")
    with pytest.raises(ArtifactError, match="is a file"):
        E.export_artifact(f, "foil", model=trained["final"], metadata=trained["meta"])


def test_lambda_model_is_refused_at_export(tmp_path, trained):
    import keras

    inp = keras.Input((2,), name="readings")
    out = keras.layers.Lambda(lambda t: t[:, :1] * 2.0)(inp)
    with pytest.raises(ArtifactError, match="Lambda layer"):
        E.export_artifact(tmp_path, "foil", model=keras.Model(inp, out), metadata=trained["meta"])
    assert list((tmp_path / "foil").iterdir()) == []


# --------------------------------------------------------------------------- validation
def _meta_with(meta, **changes):
    m = json.loads(json.dumps(meta))
    for key, value in changes.items():
        if value is None:
            m.pop(key)
        else:
            m[key] = value
    return m


def _good_metadata():
    return {
        "features": [{"name": "phase_5000hz_deg", "unit": "deg", "min": 25.0, "max": 65.0}],
        "target": {"name": "o2_hPa", "unit": "hPa", "min": 0.0, "max": 300.0},
        "hyperparameters": {"seed": 0},
        "data": {"file": "batch.csv", "sha256": "0" * 64, "rows": 40},
    }


@pytest.mark.parametrize(
    "edit, match",
    [
        pytest.param(lambda m: m["features"][0].update(unit=""),
                     r"^unit is a non-empty string must hold, got unit='' in metadata feature$", id="unit"),
        pytest.param(lambda m: m["features"][0].update(min="a"),
                     r"^min is a finite number must hold, got min='a' \(not a number\) in metadata feature "
                     r"'phase_5000hz_deg' \(range seen in training\)$", id="min-number"),
        pytest.param(lambda m: m["target"].update(min=400.0),
                     r"^min <= max must hold, got min=400.0, max=300.0 in metadata target 'o2_hPa'", id="min-max"),
        pytest.param(lambda m: m["data"].update(sha256="ABC"),
                     r"^data.sha256 is 64 lower-case hex digits must hold, got data.sha256='ABC'$", id="sha256"),
        pytest.param(lambda m: m["data"].update(rows=0), r"^data.rows >= 1 must hold, got data.rows=0$", id="rows"),
        pytest.param(lambda m: m["data"].update(rows=True),
                     r"^data.rows >= 1 must hold, got data.rows=True \(not an integer\)$", id="rows-bool"),
    ],
)
def test_metadata_value_rules(edit, match):
    meta = _good_metadata()
    assert E.validate_metadata(meta)["data"]["rows"] == 40
    edit(meta)
    with pytest.raises(ConfigError, match=match):
        E.validate_metadata(meta)


@pytest.mark.parametrize(
    "change, match",
    [
        pytest.param({"name": "../evil"}, "name is 1-128 letters, .* must hold, got name='../evil'", id="bad-name"),
        pytest.param({"meta": {"version": "9.9.9"}}, "version are set by export_artifact", id="reserved-key"),
        pytest.param({"meta": {"data": None}}, "missing: data", id="missing-key"),
        pytest.param({"meta": {"hyperparameters": {"hidden_layers": [8]}}}, "includes the 'seed'", id="no-seed"),
        pytest.param({"features_min": 99.0}, "min <= max must hold", id="min-above-max"),
        pytest.param({"features_extra": True}, "metadata lists 3 features", id="feature-count"),
        pytest.param({"folds": 1}, "k >= 2", id="one-fold"),
        pytest.param({"extra": {"../x.txt": b""}}, "plain relative paths", id="extra-escapes"),
        pytest.param({"extra": {"scaler.pkl": b""}}, "must not be pickles", id="extra-pickle"),
        pytest.param({"extra": {"SHA256SUMS": b""}}, "must not replace", id="extra-reserved"),
    ],
)
def test_export_validation(trained, tmp_path, change, match):
    meta = _meta_with(trained["meta"], **change.get("meta", {}))
    if "features_min" in change:
        meta["features"][0]["min"] = meta["features"][0]["max"] + change["features_min"]
    if "features_extra" in change:
        meta["features"].append({"name": "pressure_hPa", "unit": "hPa", "min": 900.0, "max": 1100.0})
    folds = trained["folds"][: change.get("folds", 0)]
    with pytest.raises(ConfigError, match=match):
        E.export_artifact(tmp_path, change.get("name", "foil"), model=trained["final"], fold_models=folds,
                          metadata=meta, extra_files=change.get("extra"))
    assert not (tmp_path / "foil").exists() or not any((tmp_path / "foil").iterdir())


# --------------------------------------------------------------------------- verification
def test_verify_passes_on_a_fresh_artifact(artifact):
    v = load_model(artifact.path).verify()
    assert v["ok"] and v["version"] == "1.0.0" and "report.html" in v["files"]


def test_one_flipped_byte_in_onnx_is_an_integrity_error(artifact, tmp_path):
    vdir = copy_artifact(artifact, tmp_path)
    data = bytearray((vdir / "model.onnx").read_bytes())
    data[len(data) // 2] ^= 0x01
    (vdir / "model.onnx").write_bytes(bytes(data))
    with pytest.raises(IntegrityError, match="checksum mismatch for model.onnx"):
        load_model(vdir)


def test_unlisted_extra_file_is_refused(artifact, tmp_path):
    vdir = copy_artifact(artifact, tmp_path)
    (vdir / "notes.txt").write_text("added later")
    with pytest.raises(IntegrityError, match="unlisted file notes.txt"):
        load_model(vdir)


def test_missing_file_is_refused(artifact, tmp_path):
    vdir = copy_artifact(artifact, tmp_path)
    (vdir / "model.keras").unlink()
    with pytest.raises(IntegrityError, match="missing file model.keras"):
        load_model(vdir)


def test_missing_checksum_list_is_refused(artifact, tmp_path):
    vdir = copy_artifact(artifact, tmp_path)
    (vdir / "SHA256SUMS").unlink()
    with pytest.raises(IntegrityError, match="missing file SHA256SUMS"):
        load_model(vdir)


def test_newer_schema_major_is_incompatible(artifact, tmp_path):
    vdir = copy_artifact(artifact, tmp_path)
    meta = json.loads((vdir / "calibration.json").read_text())
    meta["schema_version"] = "2.0"
    (vdir / "calibration.json").write_text(json.dumps(meta))
    rewrite_sums(vdir)
    with pytest.raises(IncompatibleArtifactError, match="schema_version 2.0 is newer"):
        load_model(vdir)


def test_newer_schema_minor_is_accepted(artifact, tmp_path):
    vdir = copy_artifact(artifact, tmp_path)
    meta = json.loads((vdir / "calibration.json").read_text())
    meta["schema_version"] = "1.7"
    (vdir / "calibration.json").write_text(json.dumps(meta))
    rewrite_sums(vdir)
    assert load_model(vdir).version == "1.0.0"


@pytest.mark.parametrize(
    "name, content, match",
    [
        pytest.param("scaler.pkl", b"\x80\x04K\x01.", "is a pickle/joblib file", id="pkl-extension"),
        pytest.param("model.joblib", b"anything", "is a pickle/joblib file", id="joblib-extension"),
        pytest.param("weights.bin", b"\x80\x05\x95\x00", "holds pickle data", id="pickle-content"),
    ],
)
def test_pickles_inside_are_refused(artifact, tmp_path, name, content, match):
    vdir = copy_artifact(artifact, tmp_path)
    (vdir / name).write_bytes(content)
    rewrite_sums(vdir)  # listed: only the pickle rule can catch it
    with pytest.raises(ArtifactError, match=match):
        load_model(vdir)


def test_plain_npy_is_accepted(artifact, tmp_path):
    vdir = copy_artifact(artifact, tmp_path)
    np.save(vdir / "extra.npy", np.arange(3.0))
    rewrite_sums(vdir)
    assert load_model(vdir).version == "1.0.0"


def test_keras_file_with_lambda_layer_is_refused(artifact, tmp_path):
    import keras

    vdir = copy_artifact(artifact, tmp_path)
    inp = keras.Input((2,), name="readings")
    out = keras.layers.Lambda(lambda t: t[:, :1] * 2.0)(inp)
    keras.Model(inp, out).save(vdir / "model.keras")
    rewrite_sums(vdir)  # checksums agree: only the Lambda check can catch it
    with pytest.raises(ArtifactError, match="is a Lambda layer"):
        load_model(vdir)


def test_keras_file_with_foreign_module_is_refused(artifact, tmp_path):
    vdir = copy_artifact(artifact, tmp_path)
    src = vdir / "model.keras"
    with zipfile.ZipFile(src) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    config = json.loads(members["config.json"])
    config["config"]["layers"][2]["module"] = "evil_pkg.layers"
    members["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(src, "w") as zf:
        for n, b in members.items():
            zf.writestr(n, b)
    rewrite_sums(vdir)
    with pytest.raises(ArtifactError, match="module 'evil_pkg.layers', which is not part of Keras"):
        load_model(vdir)


class _Evil:
    """Unpickling this creates the folder ``marker``: proof that something was unpickled."""

    def __init__(self, marker: Path):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


def _tamper(vdir: Path, how: str, marker: Path) -> None:
    import pickle

    if how == "edited-json":
        meta = json.loads((vdir / "calibration.json").read_text())
        meta["features"][0]["max"] = 89.0  # widen a calibrated range by hand
        (vdir / "calibration.json").write_text(json.dumps(meta, indent=2))
    elif how == "edited-extra-file":
        with open(vdir / "report.html", "a") as fh:
            fh.write("<p>edited</p>\n")
    elif how == "pickle-file":
        (vdir / "scaler.pkl").write_bytes(pickle.dumps(_Evil(marker)))
        rewrite_sums(vdir)
    elif how == "pickle-as-onnx":
        (vdir / "model.onnx").write_bytes(pickle.dumps(_Evil(marker), protocol=4))
        rewrite_sums(vdir)
    elif how == "object-npy":
        np.save(vdir / "weights.npy", np.array([_Evil(marker)], dtype=object), allow_pickle=True)
        rewrite_sums(vdir)
    elif how == "symlink":
        real = vdir.parent.parent / "elsewhere.onnx"
        shutil.move(vdir / "model.onnx", real)
        (vdir / "model.onnx").symlink_to(real)
    else:  # pragma: no cover
        raise AssertionError(how)


@pytest.mark.parametrize("how, message", [
    pytest.param("edited-json", "checksum mismatch for calibration.json", id="edited-json"),
    pytest.param("edited-extra-file", "checksum mismatch for report.html", id="edited-extra-file"),
    pytest.param("pickle-file", "scaler.pkl is a pickle/joblib file", id="pickle-file"),
    pytest.param("pickle-as-onnx", "model.onnx holds pickle data", id="pickle-as-onnx"),
    pytest.param("object-npy", "a .npy array of Python objects", id="object-npy"),
    pytest.param("symlink", "model.onnx is not a plain file", id="symlink"),
])
def test_tampered_artifact_is_refused_and_nothing_is_unpickled(artifact, tmp_path, how, message):
    """Loading (a version folder or its name folder) and verifying refuse; a pickled payload never runs.
    The CLI's one ``Error: ...`` line for a tampered artifact: tests/test_cli.py."""
    vdir = copy_artifact(artifact, tmp_path)
    marker = tmp_path / "UNPICKLED"
    _tamper(vdir, how, marker)
    for target in (vdir, vdir.parent):
        with pytest.raises(ArtifactError) as info:
            load_model(target)
        assert message in str(info.value) and str(vdir) in str(info.value), str(info.value)
    with pytest.raises(ArtifactError, match=re.escape(message)):
        S.verify_artifact(vdir)
    assert not marker.exists()  # nothing was ever unpickled


def test_no_artifact_at_path(tmp_path):
    with pytest.raises(ArtifactError, match="not an artifact"):
        load_model(tmp_path)


def test_threads_must_be_positive(artifact):
    with pytest.raises(ConfigError, match=r"^threads >= 1 \(or None for automatic\) must hold, got threads=0$"):
        load_model(artifact.path, threads=0)
    with pytest.raises(ConfigError, match=r"^threads >= 1 \(or None for automatic\) must hold, got threads=True$"):
        load_model(artifact.path, threads=True)
    assert load_model(artifact.path, threads=1).predict([30.0, 20.0]).shape == (1,)


# --------------------------------------------------------------------------- no TensorFlow
def test_load_model_does_not_import_tensorflow(trained, artifact, tmp_path):
    from calib.nn import predict

    x_file = tmp_path / "x.npy"
    np.save(x_file, trained["x_new"])
    code = (
        "import json, sys\n"
        "import numpy as np\n"
        "from calib.runtime import load_model\n"
        f"m = load_model({str(artifact.path.parent)!r})\n"
        f"p, s = m.predict(np.load({str(x_file)!r}), return_std=True)\n"
        "print(json.dumps({'tf': 'tensorflow' in sys.modules, 'keras': 'keras' in sys.modules,"
        " 'version': m.version, 'pred': p.tolist()}))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["tf"] is False and out["keras"] is False
    assert out["version"] == "1.0.0"
    np.testing.assert_allclose(out["pred"], predict(trained["final"], trained["x_new"]), rtol=1e-5, atol=1e-5)
