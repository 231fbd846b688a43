"""Tests of calib.cli: help for every command, start-up without TensorFlow, JSON output, errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from calib.cli import cli

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("command", sorted(cli.commands))
def test_every_command_has_help_with_an_example(command):
    res = CliRunner().invoke(cli, [command, "--help"])
    assert res.exit_code == 0, res.output
    assert "Usage: " in res.output and "Example" in res.output


def test_top_level_help_lists_commands():
    res = CliRunner().invoke(cli, ["--help"])
    assert res.exit_code == 0
    for c in ("ingest", "validate", "simulate"):
        assert c in res.output


@pytest.mark.parametrize("args", [pytest.param(["--help"], id="help"), pytest.param(["ingest", "--help"], id="ingest-help")])
def test_help_is_fast_and_tensorflow_free(args):
    code = ("import sys, time; t=time.perf_counter(); from calib.cli import cli; "
            f"cli.main({args!r}, standalone_mode=False); "
            "print(time.perf_counter()-t, 'tensorflow' in sys.modules, 'pandas' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out[-2] == "False" and out[-1] == "False"
    assert float(out[-3]) < 1.0


def test_console_script_help_under_a_second():
    exe = Path(sys.executable).parent / "calib"
    if not exe.exists():
        pytest.fail(f"console script {exe} missing: install with pip install -e .")
    t = time.perf_counter()
    subprocess.run([str(exe), "--help"], capture_output=True, check=True)
    assert time.perf_counter() - t < 1.5  # process start included


def test_ingest_writes_parquet_with_split_and_prints_summary(tmp_path, small_batch):
    csv, toml = small_batch
    out = tmp_path / "out.parquet"
    res = CliRunner().invoke(cli, ["ingest", str(csv), "--config", str(toml), "-o", str(out), "--json"])
    assert res.exit_code == 0, res.output
    summary = json.loads(res.output)
    df = pd.read_parquet(out)
    assert summary["rows"] == len(df) and set(df["split"]) == {"train", "dev", "test"}
    assert summary["split"]["by_group"] and summary["groups"] == df["spot_id"].nunique()
    # no spot appears in two parts
    assert (df.groupby("spot_id")["split"].nunique() == 1).all()


def test_ingest_refuses_to_overwrite_input(tmp_path, small_batch):
    csv, toml = small_batch
    res = CliRunner().invoke(cli, ["ingest", str(csv), "--config", str(toml), "-o", str(csv)])
    assert res.exit_code == 1 and res.output.startswith("Error: ") and "refusing to overwrite" in res.output


def test_config_error_is_one_line(tmp_path, small_batch):
    csv, _ = small_batch
    bad = tmp_path / "bad.toml"
    bad.write_text("[validate]\nfolds = 1\n")
    res = CliRunner().invoke(cli, ["validate", str(csv), "--config", str(bad), "--target", "o2_hPa"])
    assert res.exit_code == 1
    assert res.output.strip() == f"Error: {bad}: folds >= 2 must hold, got folds=1"


@pytest.mark.parametrize("args, message", [
    (["--features", ""], "--features '': expected column names, comma separated"),
    (["--features", " , ,"], "--features ' , ,': expected column names, comma separated"),
    (["--group", ""], "--group '': expected a column name; leave the option out to use the config's [data] group"),
    (["--target", " "], "--target ' ': expected a column name; leave the option out to use the config's [data] target"),
])
def test_an_empty_column_option_is_refused_not_ignored(small_batch, tmp_path, args, message):
    """An empty --features/--group/--target (an unset shell variable) never falls back silently."""
    csv, toml = small_batch
    for command, extra in (("validate", []), ("ingest", ["-o", str(tmp_path / "out.parquet")])):
        res = CliRunner().invoke(cli, [command, str(csv), "--config", str(toml), *extra, *args])
        out = res.output.strip()
        assert res.exit_code == 1 and out.startswith(f"Error: {message}") and "\n" not in out, (command, out)
    assert not (tmp_path / "out.parquet").exists()


def test_unknown_model_key_stops_before_training(tmp_path, small_batch):
    csv, _ = small_batch
    bad = tmp_path / "bad.toml"
    bad.write_text("[model]\nlearnin_rate = 0.1\n")
    res = CliRunner().invoke(cli, ["validate", str(csv), "--config", str(bad), "--target", "o2_hPa"])
    assert res.exit_code == 1 and res.output.startswith("Error: ") and "learnin_rate" in res.output


def test_validate_json(tmp_path, small_batch):
    csv, toml = small_batch
    cfg = tmp_path / "c.toml"
    text = Path(toml).read_text().split("[model]")[0]  # keep [data], [split], [validate]
    cfg.write_text(text + "\n[model]\nhidden_layers = [8]\nepochs = 10\npatience = \"none\"\n")
    res = CliRunner().invoke(cli, ["validate", str(csv), "--config", str(cfg), "--folds", "2", "--json"])
    assert res.exit_code == 0, res.output
    d = json.loads(res.output)
    assert d["n_folds"] == 2 and d["group_kfold"] and len(d["folds"]) == 2
    assert len(d["folds"][0]["train_loss"]) == 10
    assert {"mae", "rmse", "max_abs", "r2", "ela"} <= set(d["summary"]["val"])
    assert d["diagnosis"]["verdict"]


@pytest.mark.slow
def test_validate_on_bundled_data_beats_the_physics_fit():
    """Issue 3: on the bundled data, GroupKFold validation beats the physics fit's MAE.

    Two folds (half the spots each), trained at once with ``--jobs 2``: even on half the spots the
    network's validation MAE is a fraction of the physics fit's (5 folds only widen the gap)."""
    res = CliRunner().invoke(cli, ["validate", "--folds", "2", "--jobs", "2", "--json"])
    assert res.exit_code == 0, res.output
    d = json.loads(res.output)
    assert d["group_kfold"]
    nn, base = d["summary"]["val"]["mae"]["mean"], d["summary"]["physics_val"]["mae"]["mean"]
    assert nn < base, (nn, base)


# ---------------------------------------------------------------- --json schema of every command
@pytest.fixture(scope="module")
def pipeline(tiny_run):
    """The session's tiny main job (conftest ``tiny_run``); returns (its folder, data csv, config, calibrate JSON)."""
    return tiny_run["dir"], tiny_run["csv"], tiny_run["config"], tiny_run["run"]


def _json(args):
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    return json.loads(res.output)


def test_json_calibrate(pipeline):
    run = pipeline[3]
    assert {"artifact", "version", "model_id", "cv", "test", "diagnosis", "hyperparameters", "sweep"} <= set(run)
    assert run["version"] == "1.0.0" and set(run["cv"]) >= {"val", "physics_val"}
    assert {"mae", "rmse", "max_abs", "r2", "ela"} <= set(run["test"])


def test_json_predict_inspect_models_report(pipeline):
    tmp, csv, _, run = pipeline
    pred = _json(["predict", str(tmp / "models" / "tiny"), str(csv), "-o", str(tmp / "p.csv"), "--json"])
    assert {"rows", "out_of_range", "output", "version", "model_id", "target", "unit"} <= set(pred)
    assert pred["rows"] == len(pd.read_csv(csv)) and pred["model_id"] == run["model_id"]
    info = _json(["inspect", run["artifact"], "--verify", "--json"])
    assert info["verification"]["ok"] and info["version"] == "1.0.0"
    assert [f["name"] for f in info["features"]][-1] == "temperature_degC"
    listed = _json(["models", str(tmp / "models"), "--json"])
    assert list(listed) == ["tiny"] and listed["tiny"]["versions"] == ["1.0.0"] and listed["tiny"]["current"] == "1.0.0"
    rep = _json(["report", run["artifact"], "-o", str(tmp / "r.html"), "--json"])
    assert rep["bytes"] > 10_000 and (tmp / "r.html").read_text().count("<section") >= 8


@pytest.mark.slow
def test_json_sweep_resumes_and_lists_every_trial(pipeline):
    tmp, csv, cfg, _ = pipeline
    store = tmp / "s" / "sweep.journal"
    store.parent.mkdir()
    out = _json(["-q", "sweep", str(csv), "--config", str(cfg), "--storage", str(store), "--trials", "1", "--json"])
    assert len(out["trials"]) == 1 and out["best"]["state"] == "COMPLETE"
    assert {"number", "params", "state", "score"} <= set(out["trials"][0])
    again = _json(["-q", "sweep", str(csv), "--config", str(cfg), "--storage", str(store), "--trials", "2", "--json"])
    assert [t["number"] for t in again["trials"]] == [0, 1]
    assert again["trials"][0]["score"] == out["trials"][0]["score"]
    assert (store.parent / "leaderboard.csv").exists() and (store.parent / "leaderboard.json").exists()


@pytest.mark.slow
def test_two_data_sets_swept_one_after_the_other_with_default_settings(pipeline, tmp_path, monkeypatch):
    """`calib sweep` without --storage: each data set (and search space) has its own record and leaderboard."""
    _, csv, cfg, _ = pipeline
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CALIB_RUNS_DIR", raising=False)
    other = tmp_path / "foil-B.csv"
    df = pd.read_csv(csv)
    df[df["spot_id"] != df["spot_id"].iloc[-1]].to_csv(other, index=False)  # another batch: one spot fewer
    outs = [_json(["-q", "sweep", str(data), "--config", str(cfg), "--trials", "1", "--json"]) for data in (csv, other)]
    stores = [Path(o["storage"]) for o in outs]
    assert [s.parent.parent for s in stores] == [tmp_path / "runs" / csv.stem, tmp_path / "runs" / "foil-B"]
    boards = [json.loads((s.parent / "leaderboard.json").read_text()) for s in stores]
    assert [b["storage"] for b in boards] == [str(s) for s in stores]
    assert [len(b["trials"]) for b in boards] == [1, 1]
    # a named study in an explicit storage keeps its own leaderboard beside the default study's
    named = _json(["-q", "sweep", str(other), "--config", str(cfg), "--trials", "1", "--storage", str(stores[0]),
                   "--study", "foil-B", "--json"])
    assert named["study_name"] == "foil-B" and (stores[0].parent / "leaderboard-foil-B.json").exists()
    assert json.loads((stores[0].parent / "leaderboard.json").read_text()) == boards[0]


def test_json_simulate(tmp_path):
    out = _json(["simulate", "-o", str(tmp_path), "--spots", "3", "--json"])
    assert Path(out["readings"]).exists() and Path(out["config"]).exists()


def test_quiet_prints_no_progress(pipeline):
    tmp, csv, cfg, _ = pipeline
    loud = CliRunner().invoke(cli, ["validate", str(csv), "--config", str(cfg), "--folds", "2"])
    assert loud.exit_code == 0 and "k-fold: 2/2 folds done" in loud.output
    res = CliRunner().invoke(cli, ["-q", "validate", str(csv), "--config", str(cfg), "--folds", "2"])
    assert res.exit_code == 0
    assert "folds done" not in res.output and "k-fold validation of" in res.output
    assert "train_loss=" not in loud.output + res.output


def test_verbose_shows_the_training_log_of_each_epoch(pipeline):
    tmp, csv, cfg, _ = pipeline
    res = CliRunner().invoke(cli, ["-v", "validate", str(csv), "--config", str(cfg), "--folds", "2"])
    assert res.exit_code == 0, res.output
    epochs = [line for line in res.output.splitlines() if line.startswith("epoch 1/")]
    assert len(epochs) == 2 and "train_loss=" in epochs[0]  # one per fold, the library's text
    import logging

    assert not logging.getLogger("calib").handlers  # the handler goes with the command


def test_predict_and_inspect_are_tensorflow_free(pipeline):
    tmp, csv, _, run = pipeline
    code = ("import sys; from calib.cli import cli; "
            f"cli.main(['-q', 'predict', {run['artifact']!r}, {str(csv)!r}, '-o', {str(tmp / 'tf_free.csv')!r}], "
            "standalone_mode=False); "
            f"cli.main(['inspect', {run['artifact']!r}, '--verify'], standalone_mode=False); "
            "print('tensorflow' in sys.modules, 'keras' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out[-2:] == ["False", "False"] and (tmp / "tf_free.csv").exists()


def test_tampered_artifact_gives_one_error_line_and_writes_nothing(pipeline, tmp_path):
    """The CLI side of integrity (every kind of tampering: tests/test_artifact.py)."""
    import shutil

    tmp, csv, _, run = pipeline
    vdir = tmp_path / "models" / "tiny" / "1.0.0"
    shutil.copytree(run["artifact"], vdir)
    onnx = vdir / "model.onnx"
    blob = bytearray(onnx.read_bytes())
    blob[len(blob) // 2] ^= 0xFF  # one flipped byte
    onnx.write_bytes(bytes(blob))
    out = tmp_path / "out" / "pred.csv"
    out.parent.mkdir()
    for target in (vdir, vdir.parent):  # a version folder, and a name folder (-> latest version)
        res = CliRunner().invoke(cli, ["predict", str(target), str(csv), "-o", str(out)])
        assert res.exit_code == 1 and res.output.splitlines() == [res.output.strip()], res.output
        assert res.output.startswith("Error: ") and str(vdir) in res.output
        assert "checksum mismatch for model.onnx" in res.output
    assert list(out.parent.iterdir()) == []
    res = CliRunner().invoke(cli, ["inspect", str(vdir), "--verify"])
    assert res.exit_code == 1
    assert res.stderr.splitlines() == [res.stderr.strip()] and res.stderr.startswith(f"Error: {vdir}: verification failed")
    assert "checksum mismatch for model.onnx" in res.stderr and "verification: FAILED" in res.stdout


def test_json_adjust_then_predict_applies_the_spot_models(pipeline, tmp_path):
    import shutil

    tmp, csv, _, run = pipeline
    art = tmp_path / "models" / "tiny" / "1.0.0"
    shutil.copytree(run["artifact"], art)
    df = pd.read_csv(csv)
    spots = sorted(df["spot_id"].unique())[:2]
    ref = df[(df["temperature_degC"].round() == 25) & df["o2_hPa"].isin([0.0, 212.0]) & df["spot_id"].isin(spots)]
    ref_path = tmp_path / "ref.csv"
    ref.to_csv(ref_path, index=False)
    out = _json(["adjust", str(art), "--reference", str(ref_path), "--json"])
    assert [s["spot_id"] for s in out["spots"]] == spots and all(s["version"] == "1.0.0" for s in out["spots"])
    assert sorted(_json(["models", str(tmp_path / "models"), "--json"])) == sorted(["tiny", *(f"tiny.{s}" for s in spots)])
    data = tmp_path / "readings.csv"
    df.to_csv(data, index=False)
    pred = _json(["predict", str(art), str(data), "-o", str(tmp_path / "p.csv"), "--json"])
    table = pd.read_csv(tmp_path / "p.csv")
    assert table.loc[table["spot_id"].isin(spots), "adjusted"].all()
    assert not table.loc[~table["spot_id"].isin(spots), "adjusted"].any()
    assert pred["rows"] == len(df)
    res = CliRunner().invoke(cli, ["adjust", str(art), "--reference", str(csv), "--dry-run"])
    assert res.exit_code == 1 and res.output.startswith("Error: ") and len(res.output.strip().splitlines()) == 1


@pytest.mark.parametrize("code, status, stderr", [(None, 0, ""), (3, 3, ""), ("Error: bad", 1, "Error: bad")])
def test_a_command_that_ran_tensorflow_exits_as_sys_exit_would(tmp_path, code, status, stderr):
    """``main()`` ends a process that imported TensorFlow with ``_exit_quickly`` (no module
    teardown): the same exit status and message as ``sys.exit``, atexit handlers run (here one
    writing a file) and buffered output flushed."""
    mark = tmp_path / "atexit-ran"
    script = ("import atexit, pathlib, sys; "
              f"atexit.register(lambda: pathlib.Path({str(mark)!r}).write_text('yes')); "
              "from calib.cli import _exit_quickly; sys.stdout.write('buffered'); "
              f"_exit_quickly({code!r}); print('not reached')")
    res = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert res.returncode == status
    assert res.stdout == "buffered" and res.stderr.strip() == stderr
    assert mark.read_text() == "yes"


def test_main_ends_quickly_only_after_tensorflow(tmp_path):
    """Without TensorFlow in the process ``main()`` raises SystemExit as click does (an embedding
    caller keeps its process); with it, the process ends at once with the command's status."""
    base = "import sys; from calib.cli import main; sys.argv = ['calib', '--version']; "
    res = subprocess.run([sys.executable, "-c", base + "\ntry:\n    main()\nexcept SystemExit as e:\n    print('kept', e.code)"],
                         capture_output=True, text=True)
    assert res.returncode == 0 and "kept 0" in res.stdout
    res = subprocess.run([sys.executable, "-c", "import tensorflow; " + base +
                          "\ntry:\n    main()\nexcept SystemExit as e:\n    print('kept', e.code)"],
                         capture_output=True, text=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
    assert res.returncode == 0 and "kept" not in res.stdout and "calib" in res.stdout


def test_a_sweep_into_a_database_leaves_the_working_folders_files_alone(small_batch, tmp_path, monkeypatch):
    """The leaderboard of a sweep with --storage sqlite:///... replaced ./leaderboard.csv and .json."""
    csv, toml = small_batch
    monkeypatch.chdir(tmp_path)
    for name in ("leaderboard.csv", "leaderboard.json"):
        (tmp_path / name).write_text("a user's own file\n")
    (tmp_path / "db").mkdir()  # SQLite makes the file, not its folder
    cfg = tmp_path / "calib.toml"
    cfg.write_text(Path(toml).read_text().split("[model]")[0] + "[sweep]\ntrials = 1\nfolds = 2\n"
                   "[sweep.space]\nfamily = { choices = ['physics'] }\n")
    res = CliRunner().invoke(cli, ["-q", "sweep", str(csv), "--config", str(cfg), "--storage", "sqlite:///db/s.db"])
    assert res.exit_code == 0, res.output
    assert all((tmp_path / n).read_text() == "a user's own file\n" for n in ("leaderboard.csv", "leaderboard.json"))
    assert (tmp_path / "db" / "leaderboard.csv").is_file() and (tmp_path / "db" / "leaderboard.json").is_file()
