"""Commands that train: ``calib validate`` (k-fold), ``calib sweep`` and ``calib calibrate`` (the main job)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from .format import format_calibration_run, format_cv, format_json, format_leaderboard, format_sweep_files
from .options import (PATH, data_options, json_option, load_config, model_config, physics_option, resolve_data,
                      sweep_options)
from .progress import Progress, info, make_progress, verbosity

__all__ = ["validate", "sweep", "calibrate"]


@click.command()
@click.argument("data", required=False, type=PATH)
@data_options
@click.option("--folds", type=int, help="Number of folds (default: [validate] folds, else 5).")
@click.option("--jobs", type=int, default=1, show_default=True, help="Folds trained in parallel processes (-1: all cores).")
@click.option("--seed", type=int, help="Seed of the split, the folds and the network.")
@click.option("--baseline/--no-baseline", default=None,
              help="With [data] aux_targets: also train one single-task network per output (same size, same "
                   "folds) and say whether the shared network helped (default: on with aux_targets).")
@physics_option
@json_option("Print the result (per fold, mean/std, learning curves) as JSON.")
def validate(data: Path | None, config_path: Path | None, features: str | None, target: str | None,
             group: str | None, folds: int | None, jobs: int, seed: int | None, baseline: bool | None,
             physics_kind: str | None, as_json: bool) -> None:
    """k-fold validation of the [model] config on the train part of DATA, beside the physics fit.

    \b
    Folds are GroupKFold folds when a group column is set (no spot in training and
    validation at once); the test part is left untouched. With no DATA, the bundled data.
    Example:
      calib validate data/readings.csv --config data/calib.toml --folds 5 --jobs 2
    """
    from dataclasses import replace

    from ..ingest import prepare
    from ..pipeline import objective_of
    from ..validate import cross_validate, limit_threads, single_task_baseline

    limit_threads()  # TensorFlow on one thread, as the sweep's workers: --jobs 1 scores as --jobs 2 does
    data, config_path = resolve_data(data, config_path)
    cfg = load_config(config_path, features, target, group, folds=folds, seed=seed, physics_kind=physics_kind)
    mc = model_config(cfg, seed)
    ds, sp = prepare(data, cfg)
    objective = objective_of(cfg, ds)
    progress = Progress(cfg.validate.folds, label="k-fold", unit="fold", metric="",
                        enabled=verbosity() >= 0 and not as_json, start_now=True)
    cv = cross_validate(ds, sp.train_dev, mc, folds=cfg.validate.folds, jobs=jobs,
                        tolerance=cfg.validate.resolve_tolerance(ds.target.unit), scaling=cfg.split.scaling,
                        seed=cfg.split.seed,
                        noise_floor=cfg.validate.noise_floor, verbose=verbosity() > 0,
                        progress=progress, objective=objective)
    if ds.aux_targets and baseline is not False:
        info(f"single-task baseline: {len(objective.names)} networks of the same size on the same folds")
        cv = replace(cv, baseline=single_task_baseline(ds, sp.train_dev, mc, cv, folds=cfg.validate.folds,
                                                       seed=cfg.split.seed, scaling=cfg.split.scaling, jobs=jobs))
    if as_json:
        click.echo(format_json(cv.to_dict()))
    else:
        click.echo(format_cv(cv))


@click.command()
@click.argument("data", required=False, type=PATH)
@data_options
@sweep_options
@click.option("--study", metavar="NAME", help="Study name inside the storage (default: [sweep] study, else calib); "
              "its leaderboard is leaderboard-NAME.csv/.json.")
@click.option("--scheduler", metavar="tcp://HOST:PORT", help="Run the trials on this Dask cluster.")
@json_option("Print every trial and the best as JSON.")
def sweep(data: Path | None, config_path: Path | None, features: str | None, target: str | None, group: str | None,
          strategy: str | None, trials: int | None, folds: int | None, jobs: int | None, storage: str | None,
          study: str | None, scheduler: str | None, seed: int | None, prune: bool | None, as_json: bool) -> None:
    """Search hyperparameters ([sweep.space] in the config): each trial is a k-fold validation.

    \b
    Every finished trial is recorded as it finishes; re-running the same command resumes
    (no finished trial is lost or re-run). Without --storage ([sweep] storage) the record is
    runs/<data stem>/sweep-<key>/sweep.journal, one per data set and search settings. The
    leaderboard is printed and written as CSV and JSON next to the trial record.
    Example:
      calib sweep data/readings.csv --config data/calib.toml --strategy bayes --trials 30 --jobs 2
    """
    from ..config import sweep_settings
    from ..ingest import prepare
    from ..pipeline import objective_of
    from ..search import leaderboard_folder, run_sweep, write_leaderboard

    data, config_path = resolve_data(data, config_path)
    cfg = load_config(config_path, features, target, group, folds=folds, seed=seed)
    mc = model_config(cfg)
    ss = sweep_settings(cfg, strategy=strategy, trials=trials, jobs=jobs, storage=storage, study=study, prune=prune)
    ds, sp = prepare(data, cfg)
    prog = make_progress(ss.trials, enabled=not as_json and verbosity() >= 0,
                         metric=f"best {objective_of(cfg, ds).label}")
    res = run_sweep(ds, sp.train_dev, mc, ss.search_space(), strategy=ss.strategy, n_trials=ss.trials,
                    folds=ss.folds, jobs=ss.jobs, storage=ss.storage, study_name=ss.study,
                    seed=ss.seed, tolerance=cfg.validate.resolve_tolerance(ds.target.unit),
                    scaling=cfg.split.scaling,
                    noise_floor=cfg.validate.noise_floor, scheduler=scheduler, progress=prog,
                    objective=objective_of(cfg, ds), prune=ss.prune)
    prog.close()
    csv_path, json_path = write_leaderboard(res, leaderboard_folder(res.storage, ds.source))
    if as_json:
        click.echo(format_json(res.to_dict()))
    else:
        click.echo(format_leaderboard(res))
        click.echo(format_sweep_files(res.storage, csv_path, json_path))


@click.command()
@click.argument("data", required=False, type=PATH)
@data_options
@sweep_options
@click.option("--models-dir", type=PATH, help="Folder of artifacts (default: models).")
@click.option("--name", help="Artifact name (default: [calibrate] name, else the data file's stem).")
@physics_option
@click.option("--study", metavar="NAME", help="Study name inside the trial record (default: [sweep] study, else calib).")
@click.option("--operator", help="Who calibrates (printed on certificate.html; default: [calibrate] operator).")
@click.option("--reference-standard", "reference_standard",
              help="The reference the points were measured against (default: [calibrate] reference_standard).")
@json_option("Print artifact, version, cv and test metrics as JSON.")
def calibrate(data: Path | None, config_path: Path | None, features: str | None, target: str | None,
              group: str | None, strategy: str | None, trials: int | None, folds: int | None, jobs: int | None,
              storage: str | None, seed: int | None, models_dir: Path | None, name: str | None,
              physics_kind: str | None, study: str | None, operator: str | None, reference_standard: str | None,
              prune: bool | None, as_json: bool) -> None:
    """The main job: ingest -> sweep -> refit -> test once -> export a versioned model.

    \b
    With no DATA it runs on the bundled dataset and config (data/). The artifact
    models/<name>/<version>/ holds model.onnx, model.keras, calibration.json, MODEL_CARD.md
    and SHA256SUMS; re-running bumps the version and never overwrites one.
    Example:
      calib calibrate data/readings.csv --config data/calib.toml --trials 12 --jobs 2
    """
    from ..pipeline import CalibrateSettings, calibrate as run_calibrate

    data, config_path = resolve_data(data, config_path)
    cfg = load_config(config_path, features, target, group, folds=folds, seed=seed, physics_kind=physics_kind)
    cs = CalibrateSettings.from_spec(cfg.calibrate, name=name, models_dir=None if models_dir is None else str(models_dir),
                                     trials=trials, strategy=strategy, jobs=jobs, storage=storage,
                                     study=study, operator=operator, reference_standard=reference_standard,
                                     prune=prune)
    say = None if as_json else info
    prog_holder: dict[str, Any] = {}

    def sweep_progress(done: int, total: int, best: float | None) -> None:
        if "p" not in prog_holder:
            multi = any(cfg.sweep.objective.get(a, 1.0) > 0 for a in cfg.data.aux_targets)
            prog_holder["p"] = make_progress(total, enabled=not as_json and verbosity() >= 0,
                                             metric="best objective" if multi else "best MAE")
        prog_holder["p"](done, total, best)

    run = run_calibrate(data, cfg, cs, progress=say, sweep_progress=sweep_progress)
    if "p" in prog_holder:
        prog_holder["p"].close()
    click.echo(format_json(run.to_dict()) if as_json else format_calibration_run(run.to_dict()))
