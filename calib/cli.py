"""The ``calib`` command line: a thin layer over the library.

Options are parsed here, the dataclasses built, the library called and the result
printed. A :class:`~calib.errors.CalibError` becomes ``Error: ...`` on stderr and
exit status 1, never a traceback. Heavy imports (pandas, TensorFlow) happen inside
the commands that need them, so ``calib --help`` starts fast.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Callable

import click

from .errors import CalibError

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
def cli() -> None:
    """calib: neural-network calibration models for optical oxygen sensors.

    \b
    Pipeline: ingest -> validate (k-fold) -> sweep -> calibrate (export) -> predict.
    Example:
      calib ingest data/readings.csv --config data/calib.toml -o out.parquet
    """


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
    from .ingest import load_dataset, split_dataset, summarize
    from .fsutil import atomic_write

    cfg = _load(config_path, features, target, group)
    if output.resolve() == data.resolve():
        raise CalibError(f"{output}: refusing to overwrite the input file; choose another -o path")
    if output.suffix.lower() not in (".parquet", ".pq", ".csv"):
        raise CalibError(f"{output}: unsupported output type; expected a .parquet or .csv path")
    ds = load_dataset(data, cfg.data)
    sp = split_dataset(ds, test_fraction=cfg.split.test_fraction, dev_fraction=cfg.split.dev_fraction, seed=cfg.split.seed)
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


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="calib")


if __name__ == "__main__":  # pragma: no cover
    main()
