"""Dual sensing (issue 18): O2 and temperature from the same phases, every output a first-class result.

One tiny multi-task main job per session (phases only as inputs, ``temperature_degC`` as
``[data] aux_targets``): per-output metrics in ``validate``/``calibrate`` JSON, the objective,
the single-task baseline, one named ONNX output (and interval) per target equal to the Keras
predictions and to every door, and the one-line refusals of a bad aux target.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from calib.cli import cli
from calib.config import Config, config_from_dict
from calib.errors import ConfigError
from calib.metrics import Objective
from conftest import TINY_TRAINING

PHASES = ["phase_1000hz_deg", "phase_2000hz_deg", "phase_5000hz_deg", "phase_10000hz_deg"]


def _multitask_toml(toml: Path, tmp: Path, extra: str = "", validate: str = "") -> Path:
    """``toml``'s [data] with the phases as the only inputs and temperature as an aux target;
    ``validate`` is added to its [validate] table, ``extra`` after :data:`TINY_TRAINING`."""
    text = Path(toml).read_text().split("[model]")[0]
    lines = []
    for line in text.splitlines():
        if line.startswith("features"):
            line = "features = [" + ", ".join(f'"{p}"' for p in PHASES) + ']\naux_targets = ["temperature_degC"]'
        elif line.startswith("[validate]") and validate:
            line += "\n" + validate
        lines.append(line)
    out = tmp / "multitask.toml"
    out.write_text("\n".join(lines) + "\n" + TINY_TRAINING + extra)
    return out


@pytest.fixture(scope="module")
def multitask_run(tmp_path_factory, small_batch):
    """``calib calibrate --json`` of a tiny multi-task job on the session's small batch."""
    csv, toml = small_batch
    tmp = tmp_path_factory.mktemp("multitask")
    cfg = _multitask_toml(toml, tmp, validate="aux_tolerance = { temperature_degC = 0.5 }")
    res = CliRunner().invoke(cli, ["-q", "calibrate", str(csv), "--config", str(cfg), "--models-dir",
                                   str(tmp / "models"), "--name", "dual", "--json"],
                             env={"CALIB_RUNS_DIR": str(tmp / "runs")})
    assert res.exit_code == 0, res.output
    run = json.loads(res.output)
    return {"csv": Path(csv), "config": cfg, "run": run, "path": Path(run["artifact"]), "tmp": tmp}


def test_calibrate_json_scores_every_output(multitask_run):
    run = multitask_run["run"]
    outs = run["outputs"]
    assert list(outs["cv"]) == ["o2_hPa", "temperature_degC"]
    t = outs["cv"]["temperature_degC"]
    assert t["unit"] == "degC" and t["tolerance"] == 0.5 and t["weight"] == 1.0
    for which in ("val", "train"):
        for m in ("mae", "rmse", "max_abs", "r2", "ela"):
            assert np.isfinite(t[which][m]["mean"]), (which, m)
    # the target's entry is the same numbers as the classic summary
    assert outs["cv"]["o2_hPa"]["val"]["mae"]["mean"] == pytest.approx(run["cv"]["val"]["mae"]["mean"])
    # test part: each output scored once, with its interval's coverage for the aux output
    assert set(outs["test"]) == {"o2_hPa", "temperature_degC"}
    assert outs["test"]["o2_hPa"]["mae"] == pytest.approx(run["test"]["mae"])
    assert 0 <= outs["test"]["temperature_degC"]["interval_coverage"] <= 1
    # the objective is explicit: weighted mean of MAE / tolerance, in the target's unit
    obj = outs["objective"]
    assert obj["label"] == "objective" and "MAE(temperature_degC)/0.5 degC" in obj["formula"]
    meta = json.loads((multitask_run["path"] / "calibration.json").read_text())
    folds = meta["cv"]["folds"]
    o = Objective.from_dict(meta["cv"]["objective"])
    per_fold = [o.value([f["val"]["mae"], f["aux_val"][0]["mae"]]) for f in folds]
    assert obj["mean"] == pytest.approx(np.mean(per_fold))
    assert [f["objective"] for f in folds] == pytest.approx(per_fold)
    # the single-task baseline: one network per output, the same folds
    base = outs["baseline"]["outputs"]
    assert [b["name"] for b in base] == ["o2_hPa", "temperature_degC"]
    for b in base:
        assert len(b["single"]["folds"]) == len(b["multi"]["folds"]) == len(folds)
        assert b["difference"]["folds"] == pytest.approx(np.subtract(b["multi"]["folds"], b["single"]["folds"]))
        lo, hi = b["difference"]["ci95"]
        assert lo <= b["difference"]["mean"] <= hi
        assert b["verdict"] in ("the shared network is better", "the single-task network is better",
                                "no clear difference")
    assert base[1]["multi"]["folds"] == pytest.approx([f["aux_val"][0]["mae"] for f in folds])
    # the sweep: every trial's score is the objective, each output's MAE beside it
    best = run["sweep"]["best"]
    assert set(best["outputs"]) == {"o2_hPa", "temperature_degC"}
    board = meta["sweep"]["leaderboard"]
    assert all(set(r["outputs"]) == {"o2_hPa", "temperature_degC"} for r in board)


def test_onnx_has_one_output_per_target_equal_to_keras_and_every_door(multitask_run):
    """Keras, the bare ONNX graph, load_model, predict_frame, calib predict and calib serve: the same
    numbers and intervals for both targets, the same flags."""
    import onnxruntime as ort

    import calib

    art = multitask_run["path"]
    meta = json.loads((art / "calibration.json").read_text())
    outs = meta["onnx"]["outputs"]
    assert outs[:2] == ["o2_hPa", "temperature_degC"]
    assert {"temperature_degC_lo", "temperature_degC_hi", "o2_hPa_lo", "o2_hPa_hi", "domain_code"} <= set(outs)
    assert "predicted temperature_degC in degC" in meta["onnx"]["output_meaning"]["temperature_degC"]
    sess = ort.InferenceSession(str(art / "model.onnx"))
    shapes = {o.name: o.shape for o in sess.get_outputs()}
    assert shapes["o2_hPa"] == ["N"] and shapes["temperature_degC"] == ["N"]
    # Keras (TensorFlow) predictions of the test part, as the main job wrote them
    test = pd.read_csv(art / "test_predictions.csv")
    feed = {f: test[f].to_numpy(np.float32) for f in PHASES}
    got = dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feed)))
    for t in ("o2_hPa", "temperature_degC"):
        np.testing.assert_allclose(got[t], test[f"{t}_pred"], rtol=1e-5, atol=1e-5 * max(1.0, np.abs(test[f"{t}_pred"]).max()))
        np.testing.assert_allclose(got[f"{t}_lo"], test[f"{t}_lo"], rtol=1e-5, atol=1e-4)
    # the Python API and predict_frame give the same numbers as the bare graph
    m = calib.load_model(art)
    p = m.predict(test[PHASES])
    assert p.shape == (len(test), 2)
    np.testing.assert_allclose(p[:, 1], got["temperature_degC"], rtol=1e-6)
    pf = m.predict_frame(test[PHASES])
    for col in ("temperature_degC_pred", "temperature_degC_lo", "temperature_degC_hi"):
        np.testing.assert_allclose(pf[col], got[col.replace("_pred", "")], rtol=1e-6)
    # the CLI writes <name>_pred for each target
    out = multitask_run["tmp"] / "pred.csv"
    src = multitask_run["tmp"] / "readings.csv"
    test[PHASES].to_csv(src, index=False)
    res = CliRunner().invoke(cli, ["-q", "predict", str(art), str(src), "-o", str(out)])
    assert res.exit_code == 0, res.output
    cli_out = pd.read_csv(out)
    for col in ("o2_hPa_pred", "temperature_degC_pred", "temperature_degC_lo", "temperature_degC_hi"):
        np.testing.assert_allclose(cli_out[col], pf[col], rtol=1e-6)
    np.testing.assert_array_equal(cli_out["out_of_range"], pf["out_of_range"])
    # the service (in process): the same numbers, intervals and flags for both targets
    from fastapi.testclient import TestClient

    from calib.serve.app import create_app

    client = TestClient(create_app(art.parent.parent))
    r = client.post(f"/models/{art.parent.name}/predict", json={"columns": test[PHASES].to_dict(orient="list")})
    assert r.status_code == 200, r.text
    served = pd.DataFrame(r.json()["predictions"])
    for col in ("o2_hPa_pred", "temperature_degC_pred", "temperature_degC_lo", "temperature_degC_hi", "o2_hPa_lo"):
        np.testing.assert_allclose(served[col].astype(float), pf[col], rtol=1e-6)
    np.testing.assert_array_equal(served["out_of_range"].astype(bool), pf["out_of_range"])


def test_report_and_card_show_every_output(multitask_run):
    art = multitask_run["path"]
    html = (art / "report.html").read_text()
    assert 'id="outputs"' in html and "parity and residuals of temperature_degC, test part" in html
    assert "Shared network vs single-task networks" in html
    card = (art / "MODEL_CARD.md").read_text()
    assert "## Every output" in card and "| temperature_degC | degC | 0.5 | 1 |" in card


def test_validate_json_and_text_have_per_output_metrics(small_batch, tmp_path):
    csv, toml = small_batch
    cfg = _multitask_toml(toml, tmp_path, "\n[sweep.objective]\ntemperature_degC = 0.0\n",
                          validate="aux_tolerance = { temperature_degC = 0.5 }")
    res = CliRunner().invoke(cli, ["-q", "validate", str(csv), "--config", str(cfg), "--folds", "2", "--json"])
    assert res.exit_code == 0, res.output
    d = json.loads(res.output)
    assert list(d["summary"]["outputs"]) == ["o2_hPa", "temperature_degC"]
    assert all(len(f["aux_val"]) == 1 and f["aux_val"][0]["tolerance"] == 0.5 for f in d["folds"])
    # weight 0 on the aux output: the objective is the target's MAE again
    assert d["summary"]["objective"]["label"] == "MAE"
    assert d["summary"]["objective"]["mean"] == pytest.approx(d["summary"]["val"]["mae"]["mean"])
    assert [b["name"] for b in d["baseline"]["outputs"]] == ["o2_hPa", "temperature_degC"]
    res = CliRunner().invoke(cli, ["-q", "validate", str(csv), "--config", str(cfg), "--folds", "2", "--no-baseline"])
    assert res.exit_code == 0, res.output
    assert "temperature_degC [°C]: MAE" in res.output and "objective" in res.output
    assert "shared vs single-task" not in res.output


def _cli_error(args):
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 1, res.output
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "Traceback" not in res.output, res.output
    return lines[0]


@pytest.mark.parametrize("case", ["missing", "text", "feature", "objective", "aux_tolerance"])
def test_bad_aux_target_is_one_clear_line(small_batch, tmp_path, case):
    csv, toml = small_batch
    frame = pd.read_csv(csv)
    extra, validate = "", ""
    if case == "missing":
        frame = frame.drop(columns=["temperature_degC"])
    elif case == "text":
        frame["temperature_degC"] = frame["temperature_degC"].astype(object)
        frame.loc[7, "temperature_degC"] = "warm"
    elif case == "objective":
        extra = "\n[sweep.objective]\ntemp = 1.0\n"
    elif case == "aux_tolerance":
        validate = "aux_tolerance = { temperature_degC = -1 }"
    data = tmp_path / "readings.csv"
    frame.to_csv(data, index=False)
    cfg = _multitask_toml(toml, tmp_path, extra, validate)
    if case == "feature":
        cfg.write_text(cfg.read_text().replace('"phase_10000hz_deg"]', '"phase_10000hz_deg", "temperature_degC"]'))
    line = _cli_error(["-q", "validate", str(data), "--config", str(cfg), "--folds", "2", "--no-baseline"])
    if case == "missing":
        assert "temperature_degC" in line and "aux target" in line
    elif case == "text":
        assert "readings.csv row 9, column temperature_degC" in line and "'warm'" in line
    elif case == "feature":
        assert "temperature_degC" in line and "both a feature and an aux target" in line
    elif case == "objective":
        assert "[sweep] objective names 'temp'" in line and "temperature_degC" in line
    else:
        assert "aux_tolerance.temperature_degC > 0 must hold" in line


def test_objective_rules():
    o = Objective(("a", "b"), ("hPa", "degC"), (2.0, 0.5), (1.0, 3.0))
    assert o.value([4.0, 1.0]) == pytest.approx(2.0 * (1 * 4 / 2 + 3 * 1 / 0.5) / 4)
    assert Objective.from_dict(o.to_dict()) == o
    with pytest.raises(ConfigError, match="weight of the target 'a' > 0"):
        Objective(("a", "b"), ("hPa", "degC"), (1.0, 1.0), (0.0, 1.0))
    with pytest.raises(ConfigError, match="tolerance of output 'b' > 0"):
        Objective(("a", "b"), ("hPa", "degC"), (1.0, 0.0), (1.0, 1.0))
    cfg = config_from_dict({"validate": {"aux_tolerance": {"t": 0.2}}, "sweep": {"objective": {"t": 2.0}}})
    o = cfg.objective(("o2", "hPa"), [("t", "degC")])
    assert o.tolerances == (1.0, 0.2) and o.weights == (1.0, 2.0)
    # defaults: 0.1 degC for a temperature, weight 1
    assert Config().objective(("o2", "hPa"), [("t", "degC")]).tolerances == (1.0, 0.1)
    with pytest.raises(ConfigError, match="aux_tolerance names 'o2'"):
        config_from_dict({"validate": {"aux_tolerance": {"o2": 0.2}}}).objective(("o2", "hPa"), [("t", "degC")])


def test_noise_floor_with_temperature_as_an_output(small_batch, tmp_path):
    """No temperature input: replicates are still told apart by the (aux) temperature, and the floor is
    the O2 noise when the inversion must also solve for the temperature (larger, same order)."""
    from calib.config import load_config
    from calib.ingest import prepare
    from calib.validate import estimate_noise_floor, replicate_sets

    csv, toml = small_batch
    ds_t, sp = prepare(csv, load_config(toml))                       # temperature is an input
    ds_p, _ = prepare(csv, load_config(_multitask_toml(toml, tmp_path)))  # temperature is an output
    rows = sp.train_dev
    np.testing.assert_array_equal(replicate_sets(ds_t, rows) >= 0, replicate_sets(ds_p, rows) >= 0)
    with_t, without_t = estimate_noise_floor(ds_t, rows), estimate_noise_floor(ds_p, rows)
    assert with_t is not None and without_t is not None
    assert with_t < without_t < 20 * with_t


def test_aux_target_in_another_unit_is_converted_and_keyed_by_either_name(small_batch, tmp_path):
    """An aux target in kelvin is learnt in degC; [validate] aux_tolerance / [sweep] objective may name it by
    its source name (``temperature_K``) or its normalised one (``temperature_degC``)."""
    from calib.config import load_config
    from calib.ingest import prepare
    from calib.pipeline import objective_of

    csv, toml = small_batch
    frame = pd.read_csv(csv)
    frame["temperature_K"] = frame.pop("temperature_degC") + 273.15
    data = tmp_path / "kelvin.csv"
    frame.to_csv(data, index=False)
    cfg_path = _multitask_toml(toml, tmp_path, "\n[sweep.objective]\ntemperature_degC = 0.5\n",
                               validate="aux_tolerance = { temperature_K = 0.2 }")
    cfg_path.write_text(cfg_path.read_text().replace('aux_targets = ["temperature_degC"]',
                                                     'aux_targets = ["temperature_K"]'))
    cfg = load_config(cfg_path)
    ds, _ = prepare(data, cfg)
    assert [(c.name, c.unit) for c in ds.aux_targets] == [("temperature_degC", "degC")]
    np.testing.assert_allclose(ds.y()[:, 1], frame["temperature_K"] - 273.15, atol=1e-9)
    o = objective_of(cfg, ds)
    assert o.names == ("o2_hPa", "temperature_degC") and o.tolerances[1] == 0.2 and o.weights[1] == 0.5


def test_family_physics_with_an_aux_target_is_refused_not_a_constant(small_batch, tmp_path):
    """The physics family has no network, so an aux output would be a constant: one line, exit 1; in a
    sweep it is a failed trial with that reason (the other trials go on)."""
    csv, toml = small_batch
    cfg = _multitask_toml(toml, tmp_path)
    cfg.write_text(cfg.read_text().replace("[model]\n", '[model]\nfamily = "physics"\n', 1))
    line = _cli_error(["-q", "validate", str(csv), "--config", str(cfg), "--folds", "2", "--no-baseline"])
    assert 'family "physics" predicts only the target' in line and '"hybrid"' in line
