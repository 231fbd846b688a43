"""The ``calib`` command line: a thin layer over the library.

Options are parsed here, the dataclasses built, the library called and the result
printed. A :class:`~calib.errors.CalibError` becomes ``Error: ...`` on stderr and
exit status 1, never a traceback. Heavy imports (pandas, TensorFlow) happen inside
the commands that need them, so ``calib --help`` starts fast.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, Callable

import click

from .errors import CalibError

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ start-up chatter

BUNDLED_DATA = Path(__file__).resolve().parent.parent / "data" / "readings.csv"
BUNDLED_CONFIG = Path(__file__).resolve().parent.parent / "data" / "calib.toml"


class _Group(click.Group):
    """Maps every CalibError to a one-line ``Error: ...`` once, for all commands."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except CalibError as exc:
            msg = " ".join(str(exc).split())  # always one line
            raise click.ClickException(msg) from None
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            sys.exit(130)


def _verbosity() -> int:
    """-1 with -q, 0 by default, 1+ with -v."""
    ctx = click.get_current_context(silent=True)
    obj = ctx.find_root().obj if ctx is not None else None
    return int((obj or {}).get("verbosity", 0))


def _info(msg: str) -> None:
    """A stage message on stderr, unless -q."""
    if _verbosity() >= 0:
        click.echo(msg, err=True)


def _progress(total: int, label: str, unit: str, metric: str = "", as_json: bool = False) -> Any:
    from .progress import Progress

    return Progress(total, label=label, unit=unit, metric=metric, enabled=_verbosity() >= 0 and not as_json,
                    start_now=True)


def _echo_json(obj: Any) -> None:
    click.echo(json.dumps(obj, indent=2, default=_json_default))


def _json_default(o: Any) -> Any:
    import numpy as np

    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, np.ndarray):
        return o.tolist()
    if isinstance(o, Path):
        return str(o)
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def data_options(f: Callable) -> Callable:
    """Shared options naming the columns (config file values are overridden)."""
    f = click.option("--group", "group", metavar="COL", help="Column identifying the sensor spot (splits by spot).")(f)
    f = click.option("--target", "target", metavar="COL", help="Reference O2 column (its unit by name suffix or config).")(f)
    f = click.option("--features", "features", metavar="A,B,...", help="Input columns, comma separated, in model order.")(f)
    f = click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
                     help="TOML config file ([data], [split], [validate], [model], [sweep]).")(f)
    return f


def sweep_options(f: Callable) -> Callable:
    """Options of the sweep shared by ``calib sweep`` and ``calib calibrate`` (override ``[sweep]``)."""
    f = click.option("--seed", type=int, help="Seed of the split, the folds and the sampler (default: [split] "
                     "seed, [sweep] seed; calibrate: the network's too unless [model] seed is set).")(f)
    f = click.option("--storage", metavar="PATH_OR_URL", help="Trial record: a journal file or an RDB URL "
                     "(default: [sweep] storage, else runs/sweep.journal; calibrate: runs/<name>/sweep-<key>.journal).")(f)
    f = click.option("--jobs", type=int, help="Parallel worker processes (-1: all cores; default: [sweep] jobs, else 1).")(f)
    f = click.option("--folds", type=int, help="k of the k-fold (default: [sweep] folds, else [validate] folds).")(f)
    f = click.option("--trials", type=int, help="Total trials the study should reach, resumed ones included "
                     "(default: [sweep] trials, else 12).")(f)
    f = click.option("--strategy", type=click.Choice(["grid", "random", "bayes"]),
                     help="Search strategy (default: [sweep] strategy, else random).")(f)
    return f


def _load(config_path: Path | None, features: str | None, target: str | None, group: str | None, **over: Any):
    from .config import load_config, parse_column_list

    cfg = load_config(config_path)
    return cfg.with_overrides(features=parse_column_list(features), target=target, group=group, **over)


def _resolve_data(data: Path | None, config_path: Path | None) -> tuple[Path, Path | None]:
    """No DATA means the bundled dataset and its config."""
    if data is None:
        if not BUNDLED_DATA.exists():
            raise CalibError(f"no DATA given and the bundled dataset {BUNDLED_DATA} is missing")
        return BUNDLED_DATA, config_path or BUNDLED_CONFIG
    return data, config_path


def _fmt_summary(s: dict[str, Any]) -> str:
    lines = [f"{s['file']}: {s['rows']} rows" + (f", {s['groups']} groups ({s['group']})" if s["group"] else "")]
    w = max(len(c["name"]) for c in s["columns"])
    for c in s["columns"]:
        conv = f" (from {c['source']} [{c['source_unit']}])" if c["source"] != c["name"] or c["source_unit"] != c["unit"] else ""
        lines.append(f"  {c['role']:<10} {c['name']:<{w}}  {c['min']:>10.4g} .. {c['max']:<10.4g} {c['unit']}{conv}")
    if "split" in s:
        sp = s["split"]
        lines.append(f"  split{' by group' if sp['by_group'] else ''} (seed {sp['seed']}): "
                     f"train {sp['train']}, dev {sp['dev']}, test {sp['test']} rows")
    return "\n".join(lines)


@click.group(cls=_Group, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="calib")
@click.option("-v", "--verbose", count=True, help="More detail on stderr (-v: per-epoch losses).")
@click.option("-q", "--quiet", is_flag=True, help="No progress or stage messages on stderr (errors only).")
@click.pass_context
def cli(ctx: click.Context, verbose: int, quiet: bool) -> None:
    """calib: neural-network calibration models for optical oxygen sensors.

    \b
    Pipeline: ingest -> validate (k-fold) -> sweep -> calibrate (export) -> predict.
    Progress and stage messages go to stderr (a bar on a terminal, plain lines otherwise);
    results go to stdout, as JSON with --json. Options -v/-q come before the command.
    Example:
      calib calibrate                      # the main job on the bundled data
      calib -q predict models/sim-ptp-batch readings.csv -o out.csv
    """
    ctx.obj = {"verbosity": -1 if quiet else verbose}


@cli.command()
@click.argument("data", type=click.Path(dir_okay=False, path_type=Path))
@data_options
@click.option("-o", "--output", "output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write the validated, unit-normalised table (.parquet or .csv).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def ingest(data: Path, config_path: Path | None, features: str | None, target: str | None,
           group: str | None, output: Path, as_json: bool) -> None:
    """Validate and unit-normalise DATA, split it, and write it to OUTPUT.

    \b
    The table written has the normalised columns (phase in deg, temperature in degC,
    pressure in hPa, O2 in its unit) plus a `split` column (train / dev / test).
    Example:
      calib ingest aadi4330.csv --target o2_umol_per_L -o aadi.parquet
    """
    from .ingest import prepare, summarize
    from .fsutil import atomic_write

    cfg = _load(config_path, features, target, group)
    if output.resolve() == data.resolve():
        raise CalibError(f"{output}: refusing to overwrite the input file; choose another -o path")
    if output.suffix.lower() not in (".parquet", ".pq", ".csv"):
        raise CalibError(f"{output}: unsupported output type; expected a .parquet or .csv path")
    ds, sp = prepare(data, cfg)
    frame = ds.frame.copy()
    frame["split"] = sp.labels(ds.n_rows)

    def write(tmp: Path) -> None:
        if output.suffix.lower() == ".csv":
            frame.to_csv(tmp, index=False)
        else:
            frame.to_parquet(tmp, index=False)

    atomic_write(output, write)
    summary = summarize(ds, sp)
    summary["output"] = str(output)
    if as_json:
        _echo_json(summary)
    else:
        click.echo(_fmt_summary(summary))
        click.echo(f"wrote {output}")


@cli.command()
@click.option("-o", "--output", "out_dir", default=Path("data"), show_default=True,
              type=click.Path(file_okay=False, path_type=Path), help="Folder for readings.csv and calib.toml.")
@click.option("--spots", "n_spots", type=int, help="Number of sensor spots in the batch.")
@click.option("--seed", type=int, help="Random seed.")
@click.option("--json", "as_json", is_flag=True, help="Print what was written as JSON.")
def simulate(out_dir: Path, n_spots: int | None, seed: int | None, as_json: bool) -> None:
    """Generate a simulated sensor batch (two-site Stern-Volmer physics) and its config.

    \b
    Example:
      calib simulate -o data/ --spots 12 --seed 0
    """
    from dataclasses import replace

    from .simulate import SimulationConfig, write_bundle

    sc = SimulationConfig()
    changes = {k: v for k, v in (("n_spots", n_spots), ("seed", seed)) if v is not None}
    if changes:
        sc = replace(sc, **changes)
    out_dir.mkdir(parents=True, exist_ok=True)
    readings, config = write_bundle(out_dir, sc)
    if as_json:
        _echo_json({"readings": str(readings), "config": str(config)})
    else:
        click.echo(f"wrote {readings} and {config}")


def _fmt_cv(cv: Any) -> str:
    unit = cv.unit
    head = f"{'fold':>5} {'n_val':>6} {'MAE':>9} {'RMSE':>9} {'max':>9} {'R2':>7} {'ELA':>6} | {'base MAE':>9} {'base RMSE':>9}  best epoch"
    lines = [f"k-fold validation of {cv.target} [{unit}], {len(cv.folds)} folds"
             + (" by group (GroupKFold)" if cv.group_kfold else ""), head]
    for f in cv.folds:
        b = f.baseline_val
        lines.append(f"{f.fold + 1:>5} {f.n_val:>6} {f.val.mae:>9.4g} {f.val.rmse:>9.4g} {f.val.max_abs:>9.4g} "
                     f"{f.val.r2:>7.4f} {f.val.ela:>6.1%} | {b.mae if b else float('nan'):>9.4g} "
                     f"{b.rmse if b else float('nan'):>9.4g}  {f.best_epoch}")
    s = cv.summary()

    def ms(which: str, m: str, pct: bool = False) -> str:
        mean, std = s[which][m]["mean"], s[which][m]["std"]
        return f"{mean:.1%} +/- {std:.1%}" if pct else f"{mean:.4g} +/- {std:.3g}"

    lines.append(f"network : MAE {ms('val', 'mae')}, RMSE {ms('val', 'rmse')}, max {ms('val', 'max_abs')}, "
                 f"R2 {ms('val', 'r2')}, within {cv.folds[0].val.tolerance:g} {unit}: {ms('val', 'ela', True)}")
    kinds = sorted({f.baseline_kind for f in cv.folds if f.baseline_kind})
    if cv.folds[0].baseline_val is not None:
        lines.append(f"baseline: MAE {ms('baseline_val', 'mae')}, RMSE {ms('baseline_val', 'rmse')}, "
                     f"max {ms('baseline_val', 'max_abs')} ({'/'.join(kinds)})")
        nn, base = s["val"]["mae"]["mean"], s["baseline_val"]["mae"]["mean"]
        if base > 0:
            verdict = "equal" if abs(nn / base - 1) < 0.005 else ("better" if nn < base else "worse")
            lines.append(f"calib's MAE is {nn / base:.2f}x the classical baseline's ({verdict})")
    d = cv.diagnosis()
    floor = "unknown" if d.noise_floor is None else f"{d.noise_floor:.3g} {unit} ({d.noise_floor_source})"
    lines.append(f"noise floor {floor}; train MAE {d.train_mae:.4g}, validation MAE {d.val_mae:.4g}"
                 + ("" if d.avoidable_bias is None else f"; avoidable bias {d.avoidable_bias:.3g}")
                 + f", variance gap {d.variance:.3g}")
    lines.append(f"verdict: {d.verdict}")
    return "\n".join(lines)


def _model_config(cfg: Any, seed: int | None = None) -> Any:
    mc = cfg.model_config()
    return mc if seed is None else mc.replace(seed=seed)


@cli.command()
@click.argument("data", required=False, type=click.Path(dir_okay=False, path_type=Path))
@data_options
@click.option("--folds", type=int, help="Number of folds (default: [validate] folds, else 5).")
@click.option("--jobs", type=int, default=1, show_default=True, help="Folds trained in parallel processes (-1: all cores).")
@click.option("--seed", type=int, help="Seed of the split, the folds and the network.")
@click.option("--json", "as_json", is_flag=True, help="Print the result (per fold, mean/std, learning curves) as JSON.")
def validate(data: Path | None, config_path: Path | None, features: str | None, target: str | None,
             group: str | None, folds: int | None, jobs: int, seed: int | None, as_json: bool) -> None:
    """k-fold validation of the [model] config on the train part of DATA, beside the classical baseline.

    \b
    Folds are GroupKFold folds when a group column is set (no spot in training and
    validation at once); the test part is left untouched. With no DATA, the bundled data.
    Example:
      calib validate data/readings.csv --config data/calib.toml --folds 5 --jobs 2
    """
    from .ingest import prepare
    from .validate import cross_validate

    data, config_path = _resolve_data(data, config_path)
    cfg = _load(config_path, features, target, group, folds=folds, seed=seed)
    mc = _model_config(cfg, seed)
    ds, sp = prepare(data, cfg)
    cv = cross_validate(ds, sp.train_dev, mc, folds=cfg.validate.folds, jobs=jobs,
                        tolerance=cfg.validate.resolve_tolerance(ds.target.unit), scaling=cfg.split.scaling,
                        seed=cfg.split.seed,
                        noise_floor=cfg.validate.noise_floor, verbose=_verbosity() > 0,
                        progress=_progress(cfg.validate.folds, "k-fold", "fold", as_json=as_json))
    if as_json:
        _echo_json(cv.to_dict())
    else:
        click.echo(_fmt_cv(cv))


@cli.command()
@click.argument("data", required=False, type=click.Path(dir_okay=False, path_type=Path))
@data_options
@sweep_options
@click.option("--scheduler", metavar="tcp://HOST:PORT", help="Run the trials on this Dask cluster.")
@click.option("--json", "as_json", is_flag=True, help="Print every trial and the best as JSON.")
def sweep(data: Path | None, config_path: Path | None, features: str | None, target: str | None, group: str | None,
          strategy: str | None, trials: int | None, folds: int | None, jobs: int | None, storage: str | None,
          scheduler: str | None, seed: int | None, as_json: bool) -> None:
    """Search hyperparameters ([sweep.space] in the config): each trial is a k-fold validation.

    \b
    Every finished trial is recorded as it finishes; re-running the same command resumes
    (no finished trial is lost or re-run). The leaderboard is printed and written as CSV and
    JSON next to the trial record.
    Example:
      calib sweep data/readings.csv --config data/calib.toml --strategy bayes --trials 30 --jobs 2
    """
    from .config import sweep_settings
    from .ingest import prepare
    from .search import DEFAULT_STORAGE, format_leaderboard, make_progress, run_sweep, write_leaderboard

    data, config_path = _resolve_data(data, config_path)
    cfg = _load(config_path, features, target, group, folds=folds, seed=seed)
    mc = _model_config(cfg)
    ss = sweep_settings(cfg, strategy=strategy, trials=trials, jobs=jobs, storage=storage)
    ds, sp = prepare(data, cfg)
    prog = make_progress(ss.trials, enabled=not as_json and _verbosity() >= 0)
    res = run_sweep(ds, sp.train_dev, mc, ss.search_space(), strategy=ss.strategy, n_trials=ss.trials,
                    folds=ss.folds, jobs=ss.jobs, storage=ss.storage or DEFAULT_STORAGE, study_name=ss.study,
                    seed=ss.seed, tolerance=cfg.validate.resolve_tolerance(ds.target.unit),
                    scaling=cfg.split.scaling,
                    noise_floor=cfg.validate.noise_floor, scheduler=scheduler, progress=prog)
    prog.close()
    folder = Path(res.storage).parent if "://" not in res.storage else Path(".")
    csv_path, json_path = write_leaderboard(res, folder)
    if as_json:
        _echo_json(res.to_dict())
    else:
        click.echo(format_leaderboard(res))
        click.echo(f"trials recorded in {res.storage}; leaderboard in {csv_path} and {json_path}")


@cli.command()
@click.argument("data", required=False, type=click.Path(dir_okay=False, path_type=Path))
@data_options
@sweep_options
@click.option("--models-dir", type=click.Path(file_okay=False, path_type=Path), help="Folder of artifacts (default: models).")
@click.option("--name", help="Artifact name (default: [calibrate] name, else the data file's stem).")
@click.option("--json", "as_json", is_flag=True, help="Print artifact, version, cv and test metrics as JSON.")
def calibrate(data: Path | None, config_path: Path | None, features: str | None, target: str | None,
              group: str | None, strategy: str | None, trials: int | None, folds: int | None, jobs: int | None,
              storage: str | None, seed: int | None, models_dir: Path | None, name: str | None,
              as_json: bool) -> None:
    """The main job: ingest -> sweep -> refit -> test once -> export a versioned model.

    \b
    With no DATA it runs on the bundled dataset and config (data/). The artifact
    models/<name>/<version>/ holds model.onnx, model.keras, calibration.json, MODEL_CARD.md
    and SHA256SUMS; re-running bumps the version and never overwrites one.
    Example:
      calib calibrate data/readings.csv --config data/calib.toml --trials 12 --jobs 2
    """
    from .pipeline import CalibrateSettings, calibrate as run_calibrate
    from .search import make_progress

    data, config_path = _resolve_data(data, config_path)
    cfg = _load(config_path, features, target, group, folds=folds, seed=seed)
    cs = CalibrateSettings.from_spec(cfg.calibrate, name=name, models_dir=None if models_dir is None else str(models_dir),
                                     trials=trials, strategy=strategy, jobs=jobs, storage=storage)
    say = None if as_json else _info
    prog_holder: dict[str, Any] = {}

    def sweep_progress(done: int, total: int, best: float | None) -> None:
        if "p" not in prog_holder:
            prog_holder["p"] = make_progress(total, enabled=not as_json and _verbosity() >= 0)
        prog_holder["p"](done, total, best)

    run = run_calibrate(data, cfg, cs, progress=say, sweep_progress=sweep_progress)
    if "p" in prog_holder and hasattr(prog_holder["p"], "close"):
        prog_holder["p"].close()
    if as_json:
        _echo_json(run.to_dict())
        return
    d = run.to_dict()
    unit = d["unit"]
    cvm = d["cv"]["val"]
    click.echo(f"artifact: {d['artifact']} (version {d['version']})")
    click.echo(f"cv   MAE {cvm['mae']['mean']:.4g} +/- {cvm['mae']['std']:.3g} {unit}, "
               f"RMSE {cvm['rmse']['mean']:.4g}, max {cvm['max_abs']['mean']:.4g}, R2 {cvm['r2']['mean']:.5f}")
    t = d["test"]
    click.echo(f"test MAE {t['mae']:.4g} {unit}, RMSE {t['rmse']:.4g}, max {t['max_abs']:.4g}, R2 {t['r2']:.5f}, "
               f"within {t['tolerance']:g} {unit}: {t['ela']:.1%}")
    if d["test_baseline"]:
        b = d["test_baseline"]
        click.echo(f"classical baseline ({d['baseline_kind']}) test MAE {b['mae']:.4g} {unit} "
                   f"-> the network's error is {t['mae'] / b['mae']:.2f}x the baseline's")
    click.echo(f"verdict: {d['diagnosis']['verdict']}")


@cli.command()
@click.argument("model", type=click.Path(path_type=Path))
@click.argument("data", type=click.Path(dir_okay=False, path_type=Path))
@click.option("-o", "--output", "output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write DATA's columns plus the predictions (.csv or .parquet).")
@click.option("--sep", help="CSV separator of DATA (default: detected).")
@click.option("--decimal", help="Decimal mark of DATA (default: detected).")
@click.option("--threads", type=int, help="ONNX Runtime threads (default: ONNX Runtime chooses).")
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def predict(model: Path, data: Path, output: Path, sep: str | None, decimal: str | None,
            threads: int | None, as_json: bool) -> None:
    """Apply the calibration model MODEL to the readings in DATA (no TensorFlow needed).

    \b
    MODEL is models/<name> (its latest version) or a version folder models/<name>/<version>.
    Checksums are verified first. DATA's columns are written untouched, plus <target>_pred,
    <target>_std (spread of the fold models) and out_of_range (a reading outside the calibrated
    range). The output is written atomically and never overwrites DATA.
    Example:
      calib predict models/calib data/readings.csv -o predictions.csv
    """
    from .runtime import load_model
    from .predict import predict_file

    m = load_model(model, threads=threads)
    summary = predict_file(m, data, output, sep=sep, decimal=decimal)
    if as_json:
        _echo_json(summary)
    else:
        n, oor = summary.get("rows"), summary.get("out_of_range")
        click.echo(f"{m.name} {m.version}: predicted {m.target} [{m.unit}] for {n} readings "
                   f"({oor} outside the calibrated range); wrote {summary.get('output', output)}")


@cli.command()
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--verify", is_flag=True, help="Check every checksum and refuse unsafe content; exit 1 if it fails.")
@click.option("--json", "as_json", is_flag=True, help="Print the metadata as JSON.")
def inspect(model: Path, verify: bool, as_json: bool) -> None:
    """Show what a calibration artifact holds: inputs, ranges, metrics, versions.

    \b
    Example:
      calib inspect models/calib --verify
    """
    from .predict import format_inspection, inspect_artifact

    info = inspect_artifact(model, verify=verify)
    if as_json:
        _echo_json(info)
    else:
        click.echo(format_inspection(info))
    ver = info.get("verification")
    if verify and ver is not None and not ver.get("ok", False):
        raise CalibError(f"{model}: verification failed: {ver.get('error', 'see above')}")


@cli.command()
@click.argument("models_dir", required=False, default=Path("models"), type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print as JSON.")
def models(models_dir: Path, as_json: bool) -> None:
    """List the calibration models and versions under MODELS_DIR (default: models/).

    \b
    Example:
      calib models models/
    """
    from .artifact.store import list_artifacts

    arts = list_artifacts(models_dir)
    if as_json:
        _echo_json(arts)
    elif not arts:
        click.echo(f"no calibration models under {models_dir}")
    else:
        for name, versions in arts.items():
            click.echo(f"{name}: {', '.join(versions)}")


@cli.command()
@click.argument("source", type=click.Path(path_type=Path))
@click.option("-o", "--output", "output", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Where to write the self-contained HTML report.")
@click.option("--study", help="Study name inside a sweep storage (default: the only one).")
@click.option("--json", "as_json", is_flag=True, help="Print what was written as JSON.")
def report(source: Path, output: Path, study: str | None, as_json: bool) -> None:
    """Write a self-contained HTML report of an artifact or of a sweep.

    \b
    SOURCE is an artifact (models/<name> or a version folder): learning curves, parity and
    residual plots of the test part, CV metrics beside the classical baseline, the bias/
    variance verdict, the sweep leaderboard and score vs each hyperparameter, the metadata.
    Or a sweep record (journal file, RDB URL, or a folder with leaderboard.json): the sweep
    sections only. Every exported artifact already holds its report.html.
    Example:
      calib report models/sim-ptp-batch -o report.html
    """
    from .report import write_report

    out = write_report(source, output, study_name=study)
    if as_json:
        _echo_json({"source": str(source), "report": str(out), "bytes": out.stat().st_size})
    else:
        click.echo(f"wrote {out}")


@cli.command()
@click.argument("model", type=click.Path(path_type=Path))
@click.option("--reference", "reference", required=True, type=click.Path(dir_okay=False, path_type=Path),
              help="Two-point reference readings per spot (zero O2 and air saturation).")
@click.option("--method", type=click.Choice(["spot_map", "linear", "phase_scale"]), default=None,
              help="spot_map (default for a spot-normalised model): two-point map of the phases; linear "
                   "(default otherwise): two-point correction of the O2 output; phase_scale: phase shift + O2 scale.")
@click.option("--spot", "spots", multiple=True, help="Only this spot id (repeatable); default: every spot.")
@click.option("--spot-column", help="Spot id column (default: the model's group column).")
@click.option("--models-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Where the spot models go (default: beside the batch model).")
@click.option("--dry-run", is_flag=True, help="Compute and check the adjustments, write nothing.")
@click.option("--json", "as_json", is_flag=True, help="Print the adjustments and artifacts as JSON.")
def adjust(model: Path, reference: Path, method: str | None, spots: tuple[str, ...], spot_column: str | None,
           models_dir: Path | None, dry_run: bool, as_json: bool) -> None:
    """Adjust a batch model to each sensor spot from its two-point check (zero O2 and air).

    \b
    REFERENCE holds, per spot, the readings of its reference points: the spot column, the
    model's input columns, and either the target column (0 for the zero point, the air
    value for the air point) or a `level` column (zero / air, with air_pressure_<unit>).
    Each spot gets its own versioned child artifact models/<name>.<spot>/<version>/ (ONNX
    with the adjustment folded in, naming the parent model and the reference's SHA-256).
    `calib predict` applies the right spot's adjustment when readings carry a spot id.
    Example:
      calib adjust models/sim-ptp-batch --reference two_point_checks.csv
    """
    from .spots.child import adjust_spots, format_adjustment

    res = adjust_spots(model, reference, method=method, spots=list(spots) or None, spot_column=spot_column,
                       models_dir=models_dir, write=not dry_run)
    if as_json:
        _echo_json(res.to_dict())
    else:
        click.echo(format_adjustment(res))


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="calib")


if __name__ == "__main__":  # pragma: no cover
    main()
