"""Commands on calibration artifacts: ``calib predict``, ``inspect``, ``models``, ``adjust`` and ``report``.

``predict``, ``inspect`` and ``models`` never import TensorFlow.
"""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import CalibError
from .format import (
    format_adjustment,
    format_inspection,
    format_json,
    format_model_list,
    format_prediction,
    format_wrote,
)
from .options import PATH, force_option, json_option

__all__ = ["predict", "inspect", "models", "report", "adjust"]


@click.command()
@click.argument("model", type=PATH)
@click.argument("data", type=PATH)
@click.option("-o", "--output", "output", required=True, type=PATH,
              help="Where to write DATA's columns plus the predictions (.csv or .parquet).")
@click.option("--sep", help="CSV separator of DATA (default: detected).")
@click.option("--decimal", help="Decimal mark of DATA (default: detected).")
@click.option("--sheet", help="Worksheet of an Excel DATA, by name (default: the first).")
@click.option("--threads", type=int, help="Threads computing predictions (chunks of rows at once, one ONNX Runtime "
              "thread each), 1 to 4 per CPU core (at most 256; default: one per CPU, at most 8).")
@force_option
@json_option("Print the summary as JSON.")
def predict(model: Path, data: Path, output: Path, sep: str | None, decimal: str | None, sheet: str | None,
            threads: int | None, force: bool, as_json: bool) -> None:
    """Apply the calibration model MODEL to the readings in DATA (no TensorFlow needed).

    \b
    MODEL is models/<name> (its latest version) or a version folder models/<name>/<version>.
    Checksums are verified first. DATA's columns are written untouched, plus <target>_pred,
    <target>_std (spread of the fold models) and out_of_range (a reading outside the calibrated
    range). The output is written atomically and never overwrites DATA, nor an existing
    file without --force. DATA may be compressed (.gz, .bz2, .xz, .zip). A plain CSV or Parquet
    DATA of 16 MiB or more (CALIB_STREAM_MIN_BYTES) is streamed in chunks: the same output, memory
    flat in its size, no input size limit.
    Example:
      calib predict models/sim-ptp-batch data/readings.csv -o predictions.csv
    """
    from ..limits import check_threads
    from ..predict import predict_file
    from ..runtime import load_model

    m = load_model(model, threads=check_threads(threads))
    summary = predict_file(m, data, output, sep=sep, decimal=decimal, force=force, sheet=sheet)
    click.echo(format_json(summary) if as_json else format_prediction(m, summary, output))


@click.command()
@click.argument("model", type=PATH)
@click.option("--verify", is_flag=True, help="Check every checksum and refuse unsafe content; exit 1 if it fails.")
@json_option("Print the metadata as JSON.")
def inspect(model: Path, verify: bool, as_json: bool) -> None:
    """Show what a calibration artifact holds: inputs, ranges, metrics, versions.

    \b
    Example:
      calib inspect models/sim-ptp-batch --verify
    """
    from ..predict import inspect_artifact

    info = inspect_artifact(model, verify=verify)
    click.echo(format_json(info) if as_json else format_inspection(info))
    ver = info.get("verification")
    if verify and ver is not None and not ver.get("ok", False):
        raise CalibError(f"{model}: verification failed: {ver.get('error', 'see above')}")


@click.command()
@click.argument("models_dir", required=False, default=Path("models"), type=PATH)
@click.option("--date", help="Judge due / overdue checks at this date (ISO 8601; default: now).")
@json_option("Print as JSON.")
def models(models_dir: Path, date: str | None, as_json: bool) -> None:
    """List the calibration models under MODELS_DIR (default: models/) with their lineage.

    \b
    Per model: its versions and the current one; a batch model's spot children; a spot
    child's parent, its latest check and when the next check is due (or overdue).
    Example:
      calib models models/
    """
    from ..spots.history import lineage

    arts = lineage(models_dir, date)
    click.echo(format_json(arts) if as_json else format_model_list(arts, models_dir))


@click.command()
@click.argument("source", type=PATH)
@click.option("-o", "--output", "output", required=True, type=PATH,
              help="Where to write the self-contained HTML report.")
@click.option("--study", help="Study name inside a sweep storage (default: the only one).")
@force_option
@json_option("Print what was written as JSON.")
def report(source: Path, output: Path, study: str | None, force: bool, as_json: bool) -> None:
    """Write a self-contained HTML report of an artifact or of a sweep.

    \b
    SOURCE is an artifact (models/<name> or a version folder): learning curves, parity and
    residual plots of the test part, CV metrics beside the physics fit, the bias/
    variance verdict, the sweep leaderboard and score vs each hyperparameter, the metadata.
    Or a sweep record (journal file, RDB URL, or a folder with leaderboard.json): the sweep
    sections only. Every exported artifact already holds its report.html.
    Example:
      calib report models/sim-ptp-batch -o report.html
    """
    from ..report import write_report

    out = write_report(source, output, study_name=study, force=force)
    if as_json:
        click.echo(format_json({"source": str(source), "report": str(out), "bytes": out.stat().st_size}))
    else:
        click.echo(format_wrote(out))


@click.command()
@click.argument("model", type=PATH)
@click.option("--reference", "reference", required=True, type=PATH,
              help="Two-point reference readings per spot (zero O2 and air saturation).")
@click.option("--method", type=click.Choice(["spot_map", "linear", "phase_scale"]), default=None,
              help="spot_map (default for a spot-normalised model): two-point map of the phases; linear "
                   "(default otherwise): two-point correction of the O2 output; phase_scale: phase shift + O2 scale.")
@click.option("--spot", "spots", multiple=True, help="Only this spot id (repeatable); default: every spot.")
@click.option("--spot-column", help="Spot id column (default: the model's group column).")
@click.option("--models-dir", type=PATH,
              help="Where the spot models go (default: beside the batch model).")
@click.option("--dry-run", is_flag=True, help="Compute and check the adjustments, write nothing.")
@click.option("--date", help="Date of the check, ISO 8601 (2026-03-01 or 2026-03-01T10:15; UTC unless a zone is "
              "given). Default: the reference's date/time column, else now.")
@click.option("--config", "config_path", type=PATH, help="TOML config: [check] bounds, tolerance and interval "
              "([validate] tolerance when [check] has none).")
@click.option("--force", is_flag=True, help="Record a check outside the [check] bounds anyway (marked as forced).")
@json_option("Print the adjustments and artifacts as JSON.")
def adjust(model: Path, reference: Path, method: str | None, spots: tuple[str, ...], spot_column: str | None,
           models_dir: Path | None, dry_run: bool, date: str | None, config_path: Path | None, force: bool,
           as_json: bool) -> None:
    """Adjust a batch model to each sensor spot from its two-point check (zero O2 and air).

    \b
    REFERENCE holds, per spot, the readings of its reference points: the spot column, the
    model's input columns, and either the target column (0 for the zero point, the air
    value for the air point) or a `level` column (zero / air, with air_pressure_<unit>).
    Each spot gets its own versioned child artifact models/<name>.<spot>/<version>/ (ONNX
    with the adjustment folded in, naming the parent model and the reference's SHA-256).
    `calib predict` applies the right spot's adjustment when readings carry a spot id.
    Each check is dated and judged: a gain outside 0.85..1.20 or a large offset ([check])
    is refused and nothing is written (the previous child stays current) unless --force;
    the drift over the spot's checks gives the date the next check is due.
    Example:
      calib adjust models/sim-ptp-batch --reference two_point_checks.csv --date 2026-03-01
    """
    from ..config import load_config
    from ..spots.child import adjust_spots

    cfg = load_config(config_path)
    tol = cfg.check.tolerance
    if tol is None and cfg.validate.tolerance != "auto":
        tol = float(cfg.validate.tolerance)
    res = adjust_spots(model, reference, method=method, spots=list(spots) or None, spot_column=spot_column,
                       models_dir=models_dir, write=not dry_run, date=date, check=cfg.check, tolerance=tol,
                       force=force)
    click.echo(format_json(res.to_dict()) if as_json else format_adjustment(res))
