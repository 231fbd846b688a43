"""Options shared by several commands, as decorators (sqlite-utils' ``output_options``), and the
step from those options to the library's :class:`~calib.config.Config`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import click

from ..errors import CalibError

__all__ = ["PATH", "BUNDLED_DATA", "BUNDLED_CONFIG", "data_options", "sweep_options", "json_option", "force_option",
           "load_config", "resolve_data", "model_config"]

#: Every path argument and option: click only turns the text into a Path. Existence, kind (file,
#: folder, device, pipe) and readability are the library's checks, so that a bad path is one
#: ``Error: ...`` line and exit 1 (click's own checks would be a usage error, exit 2).
PATH = click.Path(path_type=Path, readable=False)

BUNDLED_DATA = Path(__file__).resolve().parents[2] / "data" / "readings.csv"
BUNDLED_CONFIG = Path(__file__).resolve().parents[2] / "data" / "calib.toml"


def data_options(f: Callable) -> Callable:
    """Shared options naming the columns (config file values are overridden)."""
    f = click.option("--group", "group", metavar="COL", help="Column identifying the sensor spot (splits by spot).")(f)
    f = click.option("--target", "target", metavar="COL", help="Reference O2 column (its unit by name suffix or config).")(f)
    f = click.option("--features", "features", metavar="A,B,...", help="Input columns, comma separated, in model order.")(f)
    f = click.option("--config", "config_path", type=PATH,
                     help="TOML config file ([data], [split], [validate], [model], [sweep]).")(f)
    return f


def sweep_options(f: Callable) -> Callable:
    """Options of the sweep shared by ``calib sweep`` and ``calib calibrate`` (override ``[sweep]``)."""
    f = click.option("--seed", type=int, help="Seed of the split, the folds and the sampler (default: [split] "
                     "seed, [sweep] seed; calibrate: the network's too unless [model] seed is set).")(f)
    f = click.option("--storage", metavar="PATH_OR_URL", help="Trial record: a journal file or an RDB URL "
                     "(default: [sweep] storage, else sweep: runs/<data stem>/sweep-<key>/sweep.journal; calibrate: "
                     "runs/<name>/sweep-<key>.journal; one per data set and settings).")(f)
    f = click.option("--jobs", type=int, help="Parallel worker processes (-1: all cores; default: [sweep] jobs, else 1).")(f)
    f = click.option("--folds", type=int, help="k of the k-fold (default: [sweep] folds, else [validate] folds).")(f)
    f = click.option("--trials", type=int, help="Total trials the study should reach, resumed ones included "
                     "(default: [sweep] trials, else 12).")(f)
    f = click.option("--strategy", type=click.Choice(["grid", "random", "bayes"]),
                     help="Search strategy (default: [sweep] strategy, else random).")(f)
    f = click.option("--prune/--no-prune", default=None,
                     help="Stop trials behind the median after 2+ folds (default: [sweep] prune, else on).")(f)
    return f


def physics_option(f: Callable) -> Callable:
    """``--physics-kind``: the classical form (overrides ``[model] physics_kind``)."""
    return click.option("--physics-kind", "physics_kind",
                        type=click.Choice(["auto", "svu", "two_site", "sbe63", "poly", "polynomial"]),
                        help="Classical form of the physics fit and of the physics/hybrid families "
                             "(default: [model] physics_kind, else auto).")(f)


def json_option(help: str) -> Callable[[Callable], Callable]:
    """``--json`` (parameter ``as_json``): print the result as JSON on stdout instead of text."""
    return click.option("--json", "as_json", is_flag=True, help=help)


def force_option(f: Callable) -> Callable:
    """``--force``: replace an existing output file (never the input, never inside an artifact)."""
    return click.option("--force", is_flag=True,
                        help="Replace an existing output file (otherwise an existing file is refused).")(f)


def load_config(config_path: Path | None, features: str | None, target: str | None, group: str | None,
                **over: Any) -> Any:
    """The :class:`~calib.config.Config` of ``--config`` with the column options (and ``over``) applied."""
    from ..config import load_config as load, parse_column_list
    from ..errors import ConfigError

    # an option given empty is a mistake (an unset shell variable), never "use the config's"
    if features is not None and parse_column_list(features) is None:
        raise ConfigError(f"--features {features!r}: expected column names, comma separated (e.g. phase_deg,"
                          "temperature_degC); leave the option out to use the config's [data] features")
    for opt, value in (("--target", target), ("--group", group)):
        if value is not None and not value.strip():
            raise ConfigError(f"{opt} {value!r}: expected a column name; leave the option out to use the "
                              f"config's [data] {opt[2:]}")
    cfg = load(config_path)
    return cfg.with_overrides(features=parse_column_list(features), target=target, group=group, **over)


def resolve_data(data: Path | None, config_path: Path | None) -> tuple[Path, Path | None]:
    """No DATA means the bundled dataset and its config."""
    if data is None:
        if not BUNDLED_DATA.exists():
            raise CalibError(f"no DATA given and the bundled dataset {BUNDLED_DATA} is missing")
        return BUNDLED_DATA, config_path or BUNDLED_CONFIG
    return data, config_path


def model_config(cfg: Any, seed: int | None = None) -> Any:
    """The ``[model]`` config, with ``--seed`` when given."""
    mc = cfg.model_config()
    return mc if seed is None else mc.replace(seed=seed)
