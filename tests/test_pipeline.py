"""End-to-end tests of calib.pipeline, the main job: calibrate -> artifact -> predict (issue 5)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from calib.cli import cli
from calib.pipeline import CalibrateSettings
from calib.errors import ConfigError
from conftest import tiny_calibration


@pytest.mark.slow
def test_calibrate_predict_and_determinism(tiny_run, small_batch, tmp_path):
    """The session's tiny main job (conftest ``tiny_run``): its artifact predicts the held-out spots
    as the job recorded them, and the same job again with the same seed gives identical metrics."""
    run, art, csv = tiny_run["run"], tiny_run["path"], tiny_run["csv"]
    assert run["version"] == "1.0.0" and art.is_dir()
    assert {"model.onnx", "model.keras", "calibration.json", "MODEL_CARD.md", "SHA256SUMS"} <= {p.name for p in art.iterdir()}
    meta = json.loads((art / "calibration.json").read_text())
    assert meta["target"]["name"] == "o2_hPa" and meta["target"]["unit"] == "hPa"
    assert [f["name"] for f in meta["features"]][-1] == "temperature_degC"
    assert meta["test"]["mae"] == pytest.approx(run["test"]["mae"])

    # predict the held-out spots' readings (the test part) from the command line
    test_rows = pd.read_csv(art / "test_predictions.csv")
    held_out = pd.read_csv(csv)
    held_out = held_out[held_out["spot_id"].isin(meta["test"]["groups"])]
    data = tmp_path / "held_out.csv"
    held_out.to_csv(data, index=False)
    out = tmp_path / "pred.csv"
    res = CliRunner().invoke(cli, ["predict", str(art.parent), str(data), "-o", str(out), "--json"])
    assert res.exit_code == 0, res.output
    pred = pd.read_csv(out)
    assert list(pred.columns[: len(held_out.columns)]) == list(held_out.columns)
    np.testing.assert_allclose(pred["o2_hPa_pred"], test_rows["o2_hPa_pred"], atol=1e-3)
    mae = float(np.mean(np.abs(pred["o2_hPa_pred"] - pred["o2_hPa"])))
    cv_mean, cv_std = run["cv"]["val"]["mae"]["mean"], run["cv"]["val"]["mae"]["std"]
    assert mae <= cv_mean + 3 * cv_std, (mae, cv_mean, cv_std)
    assert (pred["o2_hPa_std"] > 0).all()

    # the same job again with the same seed: identical metrics (version bumps: tests/test_artifact.py;
    # tampered artifacts: tests/test_artifact.py and tests/test_cli.py)
    _, run2 = tiny_calibration(tmp_path, csv, small_batch[1])
    assert run2["cv"] == run["cv"] and run2["test"] == run["test"]


@pytest.mark.parametrize("kw, match", [
    pytest.param({"name": "bad name"}, "name is 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit must hold, got name='bad name'", id="name"),
    pytest.param({"trials": 0}, "trials >= 1 must hold, got trials=0", id="trials"),
    pytest.param({"jobs": 0}, "jobs >= 1", id="jobs"),
    pytest.param({"strategy": "grit"}, "strategy in {'grid', 'random', 'bayes'} must hold", id="strategy"),
])
def test_settings_rules(kw, match):
    with pytest.raises(ConfigError, match=match):
        CalibrateSettings(**kw)


def test_unknown_calibrate_key():
    with pytest.raises(ConfigError, match="unknown key 'nme' in \\[calibrate\\]"):
        CalibrateSettings.from_dict({"nme": "x"})


def test_calibrate_settings_name_the_study_of_the_sweep():
    from calib.config import load_config, sweep_settings
    from calib.pipeline import _sweep_overrides

    from pathlib import Path

    cfg = load_config(Path(__file__).resolve().parents[1] / "data" / "calib.toml")
    cs = CalibrateSettings(study="foil-b", trials=3)
    ss = sweep_settings(cfg, **_sweep_overrides(cs))
    assert ss.study == "foil-b" and ss.trials == 3
    assert sweep_settings(cfg, **_sweep_overrides(CalibrateSettings())).study == cfg.sweep.study


def test_a_trial_that_trains_like_the_default_stands_for_it():
    """The untuned default must be beaten by one standard error, also when the sweep drew it as a trial
    (here with a learning rate, which L-BFGS ignores): its recorded score competes, preferred within one
    SE, and no extra k-fold runs; a trial better by more than one SE wins."""
    from types import SimpleNamespace as NS

    from calib.config import load_config
    from calib.nn import ModelConfig
    from calib.pipeline import _against_default
    from calib.search import SearchSpace

    cfg = load_config("data/calib.toml")
    ds = NS(target=NS(name="o2_hPa", unit="hPa", source="o2_hPa"), aux_targets=())
    base = ModelConfig(optimizer="lbfgs", hidden_layers=(8,))
    space = SearchSpace.from_dict({"hidden_layers": {"choices": [[8], [16]]},
                                   "learning_rate": {"low": 1e-4, "high": 1e-2}})

    def trial(number, layers, score, **extra):
        return NS(number=number, state="COMPLETE", params={"hidden_layers": layers, **extra}, score=score,
                  score_std=1.0, best_epochs=[10] * 5)

    def choose(trials):
        best = min(trials, key=lambda t: t.score)
        sw = NS(trials=trials, best=best, best_config=space.to_config(base, best.params), validations={})
        said: list[str] = []
        fail = NS(folds=5, jobs=1, seed=0)  # a k-fold would need data: none is given, none may run
        return _against_default(ds, None, cfg, base, sw, space, fail, said.append), said

    # the default (trial 0) within one SE (1.0 / sqrt(5) = 0.447) of the best: kept, no k-fold
    (config, cv), said = choose([trial(0, [8], 2.5, learning_rate=0.005), trial(1, [16], 2.2)])
    assert config is base and cv is None  # the very object: the main job's diagnosis reads tuned = best is not base
    assert said and "kept the untuned default (trial #0)" in said[0]
    # a trial better by more than one SE replaces it
    (config, cv), said = choose([trial(0, [8], 2.8, learning_rate=0.005), trial(1, [16], 2.2)])
    assert config.hidden_layers == (16,) and config is not base and cv is None and not said


def test_the_refit_trained_ahead_is_the_one_the_main_job_keeps(small_batch):
    """The main job's refit trained ahead in an idle sweep worker (``_RefitAhead``): offered only
    once the untuned default's trial is finished, for the one-SE choice so far, with the main
    job's refit recipe; handed over only for the config finally refitted, and then equal to the
    main process's own refit."""
    from concurrent.futures import Future
    from types import SimpleNamespace as NS

    from calib.config import load_config
    from calib.ingest import prepare
    from calib.nn import fit_member, predict_member, rebuild_member, refit_config
    from calib.pipeline import _RefitAhead
    from calib.scaling import Scaler
    from calib.search import SearchSpace
    from calib.validate import cross_validate

    csv, toml = small_batch
    cfg = load_config(toml)
    ds, sp = prepare(csv, cfg)
    rows = sp.train_dev
    base = cfg.model_config().replace(optimizer="lbfgs", hidden_layers=(6,), epochs=60, patience=10, seed=0)
    space = SearchSpace.from_dict({"hidden_layers": {"choices": [[6], [4]]}})
    cv = cross_validate(ds, rows, base, folds=3, seed=0, physics=False, keep_weights=True)
    submitted: list = []

    def submit(fn, *args):  # runs at once, here: the same process, so the same TF threads
        submitted.append(args)
        fut: Future = Future()
        fut.set_result(fn(*args))
        return fut

    def trial(number, layers, score):
        return NS(number=number, state="COMPLETE", params={"hidden_layers": layers}, score=score, score_std=0.5,
                  best_epochs=list(cv.best_epochs))

    ahead = _RefitAhead(ds, rows, cfg, base, space)
    # the default's trial has not finished: nothing to train ahead
    ahead.offer(NS(trials=[trial(1, [4], 2.0)], validations={1: cv}), submit)
    assert not submitted and ahead.take(base) is None
    # it has: its refit (the one-SE choice keeps it) runs, once
    interim = NS(trials=[trial(0, [6], 2.1), trial(1, [4], 2.0)], validations={0: cv, 1: cv})
    ahead.offer(interim, submit)
    ahead.offer(interim, submit)
    assert len(submitted) == 1
    final_cfg, epochs = refit_config(base, cv.best_epochs, len(rows), cv.fit_rows, cv.curve_best_epoch)
    assert ahead.config == final_cfg and epochs > 0
    assert ahead.take(final_cfg.replace(seed=1)) is None  # another refit: the main process refits itself
    parts = ahead.take(final_cfg)
    ahead_member = rebuild_member(final_cfg, len(ds.feature_names), 1, parts["weights"], Scaler.from_dict(parts["x_scaler"]),
                                  Scaler.from_dict(parts["y_scaler"]), None)
    own = fit_member(final_cfg, ds.x(rows), ds.y(rows), scaling=cfg.split.scaling,
                     feature_names=list(ds.feature_names), feature_units=[c.unit for c in ds.features],
                     target_unit=ds.target.unit)
    assert all(np.array_equal(a, b) for a, b in zip(ahead_member.model.get_weights(), own.model.get_weights()))
    np.testing.assert_array_equal(predict_member(ahead_member, ds.x(sp.test)), predict_member(own, ds.x(sp.test)))
    # a worker that failed hands over nothing
    broken = _RefitAhead(ds, rows, cfg, base, space)

    def failing(fn, *args):
        fut: Future = Future()
        fut.set_exception(RuntimeError("worker died"))
        return fut

    broken.offer(interim, failing)
    assert broken.take(final_cfg) is None


def test_the_physics_fits_made_ahead_are_the_ones_the_main_job_scores(small_batch):
    """``_FitsAhead`` fits each fold's and the final classical fit in a thread during the
    sweep's tail; ``with_physics`` and the final ``physics_fit`` then score exactly what they
    would have fitted themselves, and nothing is handed over for other folds or another kind."""
    from calib.config import load_config
    from calib.ingest import prepare
    from calib.physics import fit_physics
    from calib.pipeline import _FitsAhead
    from calib.validate import cross_validate, with_physics

    csv, toml = small_batch
    cfg = load_config(toml)
    ds, sp = prepare(csv, cfg)
    rows = sp.train_dev
    base = cfg.model_config().replace(optimizer="lbfgs", hidden_layers=(4,), epochs=20, patience=5, seed=0)
    cv = cross_validate(ds, rows, base, folds=3, seed=0, physics=False, keep_weights=True)
    assert all(f.physics_kind is None for f in cv.folds)

    ahead = _FitsAhead(ds, rows)
    assert ahead.folds(cv.fold_pairs, "auto") is None and ahead.final("auto") is None  # never started
    ahead.start(cv.fold_pairs, "auto", "svu")
    fits = ahead.folds(cv.fold_pairs, "auto")
    assert fits is not None and len(fits) == 3 and all(f is not None for f in fits)
    assert ahead.folds(cv.fold_pairs, "two_site") is None  # another kind
    assert ahead.folds(cv.fold_pairs[::-1], "auto") is None  # other folds
    assert ahead.folds(cv.fold_pairs[:2], "auto") is None
    names, units = list(ds.feature_names), [c.unit for c in ds.features]
    x, y = ds.x(rows), ds.y(rows)[:, 0]
    own = fit_physics(x, y, names, units, ds.target.unit, kind="svu")
    assert ahead.final("svu").to_dict() == own.to_dict() and ahead.final("auto") is None

    scored, made = with_physics(cv, ds, rows), with_physics(cv, ds, rows, fits)
    assert all(f.physics_kind for f in scored.folds)
    for a, b in zip(scored.folds, made.folds):
        assert a.physics_kind == b.physics_kind and a.physics_val.to_dict() == b.physics_val.to_dict()
        assert a.physics_train.to_dict() == b.physics_train.to_dict()
    # the domain's prototypes: made ahead, the same domain; none for other folds
    from calib.trust import fit_domain

    units = [c.unit for c in ds.features]
    g = ahead.geometry(cv.fold_pairs)
    assert g is not None and ahead.geometry(cv.fold_pairs[::-1]) is None
    swapped = [(va, tr) for tr, va in cv.fold_pairs]
    assert ahead.geometry(swapped) is None
    oof = np.asarray(cv.oof, float)[:, 0] if np.asarray(cv.oof).ndim > 1 else np.asarray(cv.oof, float)
    assert fit_domain(x, y, oof, cv.fold_pairs, units, geometry=g) == fit_domain(x, y, oof, cv.fold_pairs, units)
    # a failed fit ahead (None) is fitted again, so a failure is reported as before
    again = with_physics(cv, ds, rows, [None] * 3)
    assert [f.physics_val.to_dict() for f in again.folds] == [f.physics_val.to_dict() for f in scored.folds]


@pytest.mark.parametrize("where", [pytest.param("models_dir", id="models-dir-a-file"),
                                   pytest.param("runs_dir", id="runs-dir-a-file")])
def test_a_models_or_runs_folder_that_is_a_file_is_refused_before_the_sweep(small_batch, tmp_path, where):
    """[calibrate] models_dir = a file was refused only at the export, after the whole sweep; runs_dir
    = a file gave NotADirectoryError's traceback. Both are one line now, before any trial."""
    csv, toml = small_batch
    blocker = tmp_path / "a_file"
    blocker.write_text("keep me\n")
    dirs = {"models_dir": tmp_path / "models", "runs_dir": tmp_path / "runs", where: blocker}
    cfg = tmp_path / "calib.toml"
    cfg.write_text(toml.read_text().replace("[calibrate]\n", "[calibrate]\n" + "".join(
        f'{k} = "{v}"\n' for k, v in dirs.items())))
    res = CliRunner().invoke(cli, ["-q", "calibrate", str(csv), "--config", str(cfg)])
    assert res.exit_code == 1
    lines = res.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ") and "a_file" in lines[0], res.output
    assert blocker.read_text() == "keep me\n"
    assert not (tmp_path / "runs").exists() and not (tmp_path / "models").exists()
