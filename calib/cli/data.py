"""Commands on readings: ``calib ingest`` (validate, normalise, split) and ``calib simulate``."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import CalibError
from .format import format_ingest_summary, format_json, format_wrote
from .options import PATH, data_options, force_option, json_option, load_config

__all__ = ["ingest", "simulate"]


@click.command()
@click.argument("data", type=PATH)
@data_options
@click.option("-o", "--output", "output", required=True, type=PATH,
              help="Where to write the validated, unit-normalised table (.parquet or .csv).")
@force_option
@json_option("Print the summary as JSON.")
def ingest(data: Path, config_path: Path | None, features: str | None, target: str | None,
           group: str | None, output: Path, force: bool, as_json: bool) -> None:
    """Validate and unit-normalise DATA, split it, and write it to OUTPUT.

    \b
    The table written has the normalised columns (phase in deg, temperature in degC,
    pressure in hPa, O2 in its unit) plus a `split` column (train / dev / test).
    Example:
      calib ingest aadi4330.csv --target o2_umol_per_L -o aadi.parquet
    """
    from ..fsutil import atomic_write, check_output_path
    from ..ingest import prepare, summarize

    cfg = load_config(config_path, features, target, group)
    if output.resolve() == data.resolve():
        raise CalibError(f"{output}: refusing to overwrite the input file; choose another -o path")
    if output.suffix.lower() not in (".parquet", ".pq", ".csv"):
        raise CalibError(f"{output}: unsupported output type; expected a .parquet or .csv path")
    check_output_path(output, force=force)
    ds, sp = prepare(data, cfg)
    frame = ds.frame.copy()
    frame["split"] = sp.labels(ds.n_rows)

    def write(tmp: Path) -> None:
        if output.suffix.lower() == ".csv":
            frame.to_csv(tmp, index=False)
        else:
            frame.to_parquet(tmp, index=False)

    atomic_write(output, write, overwrite=force)
    summary = summarize(ds, sp)
    summary["output"] = str(output)
    if as_json:
        click.echo(format_json(summary))
    else:
        click.echo(format_ingest_summary(summary))


@click.command()
@click.option("-o", "--output", "out_dir", default=Path("data"), show_default=True,
              type=PATH, help="Folder for readings.csv and calib.toml.")
@click.option("--spots", "n_spots", type=int, help="Number of sensor spots in the batch.")
@click.option("--seed", type=int, help="Random seed.")
@force_option
@json_option("Print what was written as JSON.")
def simulate(out_dir: Path, n_spots: int | None, seed: int | None, force: bool, as_json: bool) -> None:
    """Generate a simulated sensor batch (two-site Stern-Volmer physics) and its config.

    Existing readings.csv / calib.toml in the folder are kept unless --force is given.

    \b
    Example:
      calib simulate -o data/ --spots 12 --seed 0
    """
    from dataclasses import replace

    from ..simulate import SimulationConfig, write_bundle

    sc = SimulationConfig()
    changes = {k: v for k, v in (("n_spots", n_spots), ("seed", seed)) if v is not None}
    if changes:
        sc = replace(sc, **changes)
    readings, config = write_bundle(out_dir, sc, force=force)
    if as_json:
        click.echo(format_json({"readings": str(readings), "config": str(config)}))
    else:
        click.echo(format_wrote(readings, config))
