"""The TOML configuration file and the CLI overrides merged into it.

A configuration has these sections, all optional except that a target must be
named somewhere (config or ``--target``)::

    [data]
    features = ["phase_5000hz_deg", "temperature_degC"]  # default: every column with a unit suffix
    target = "o2_hPa"
    group = "spot_id"              # sensor spot id: splits and folds never share a spot
    aux_targets = []               # e.g. ["temperature_degC"] to predict it too (multi-task)
    convert_target_to = "hPa"      # optional: convert the target to another O2 unit
    sep = ","                      # optional: CSV separator (default: detected)
    decimal = "."                  # optional: decimal mark (default: detected)
    sheet = "Sheet1"               # optional: Excel sheet (default: the first)

    [data.units]                   # units of columns whose name carries no unit suffix
    phase_a = "deg"
    delay = { unit = "us", frequency_hz = 5000 }

    [conditions]                   # inputs of O2 unit conversions: a column name or a constant
    temperature_degC = "temperature_degC"
    pressure_hPa = 1013.25
    salinity_psu = 0.0

    [split]
    test_fraction = 0.2
    dev_fraction = 0.2
    seed = 0
    scaling = "standard"           # standard | minmax | robust | none

    [validate]
    folds = 5
    tolerance = "auto"             # target unit, for the Error Limited Accuracy ("auto": 1 hPa of pO2)
    noise_floor = 0.3              # target unit; default: estimated from replicate readings
    interval_level = 0.95          # coverage of the conformal interval <target>_lo .. _hi
    reference_uncertainty = 0.5    # target unit, k = 1: the reference standard (budget)
    drift_allowance = 0.0          # target unit, k = 1: drift allowed until the next check
    aux_tolerance = { temperature_degC = 0.1 }   # per auxiliary output, its unit ("auto": 0.1 degC, ...)

    [model]                        # calib.nn.ModelConfig, validated at load

    [sweep]                        # read by `calib sweep` and `calib calibrate` alike
    strategy = "random"            # grid | random | bayes
    trials = 12                    # total trials the study should reach
    seed = 0                       # sampler and fold assignment (and the main job's network)
    folds = 5                      # default: [validate] folds
    jobs = 1                       # worker processes (-1: every core)
    storage = "runs/foil.journal"  # default: runs/<data stem>/sweep-<key>/sweep.journal (sweep),
                                   # runs/<name>/sweep-<key>.journal (calibrate): one per data and settings
    study = "calib"
    objective = { o2_hPa = 1.0, temperature_degC = 0.5 }  # weights of MAE/tolerance per output
    [sweep.space]                  # calib.search.SearchSpace, validated at load

    [calibrate]                    # the main job's artifact
    name = "my-foil-batch"         # default: the data file's stem
    models_dir = "models"
    runs_dir = "runs"              # default: $CALIB_RUNS_DIR, else runs

    [adjust]                       # optional: a spot-normalised batch model (calib.spots.normalise)
    temperature_degC = 22.5        # the two-point check's temperature
    air = 212.0                    # target value of the air level (zero level: 0)

    [check]                        # dated spot checks of calib adjust (calib.spots.history)
    gain_min = 0.85                # accepted gain, inclusive
    gain_max = 1.20
    max_offset = "auto"            # target unit; "auto": 5 % of the air reference
    # tolerance = 2.0              # target unit; default: [validate] tolerance
    interval_days = 180            # longest check interval

Unknown sections and keys are errors, not silently ignored (one message, with a "did you
mean" hint). ``[calibrate] trials``, ``strategy`` and ``jobs`` are deprecated aliases of the
``[sweep]`` keys of the same name (see :func:`config_from_dict`).
"""

from __future__ import annotations

import os
import tomllib
import warnings
from dataclasses import dataclass, field, fields, replace
from numbers import Integral, Real
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, ClassVar, Mapping, Sequence

from .constraints import (
    ARTIFACT_NAME,
    COLUMN,
    FOLDS,
    JOBS,
    NAME,
    SEED,
    Boolean,
    Interval,
    Satisfies,
    SeqOf,
    StrOptions,
    check_keys,
    check_param,
    check_params,
    did_you_mean,
    require,
)
from .errors import ConfigError, toml_key, toml_string
from .metrics import Objective

if TYPE_CHECKING:  # pragma: no cover
    from .nn import ModelConfig
    from .spots.normalise import SpotReference
    from .search import SearchSpace

__all__ = [
    "AdjustSpec",
    "CalibrateSpec",
    "CheckSpec",
    "Config",
    "DEFAULT_TRIALS",
    "DataSpec",
    "SplitSpec",
    "SweepSpec",
    "ValidateSpec",
    "config_from_dict",
    "did_you_mean",
    "load_config",
    "parse_column_list",
    "sweep_settings",
    "toml_key",
    "toml_string",
]

#: The one default sweep budget (``[sweep] trials``) of ``calib sweep`` and ``calib calibrate``.
DEFAULT_TRIALS = 12

_SECTIONS = ("data", "conditions", "split", "validate", "model", "sweep", "calibrate", "adjust", "check")
_CONDITION_KEYS = ("temperature_degC", "pressure_hPa", "salinity_psu")
#: ``[calibrate]`` keys that are deprecated aliases of the ``[sweep]`` keys of the same name.
CALIBRATE_ALIASES = ("trials", "strategy", "jobs")

# ---- rules shared by several sections (one place each)
NAME_RULE = NAME[0]
TRIALS_RULE = [Interval(Integral, 1, None)]
_COLUMN = COLUMN[0]
_FRACTION = [Interval(Real, 0, 1, closed="left")]


def _freeze(d: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return MappingProxyType(dict(d or {}))


def _deep_freeze(v: Any) -> Any:
    if isinstance(v, Mapping):
        return MappingProxyType({k: _deep_freeze(x) for k, x in v.items()})
    return v


def plain(v: Any) -> Any:
    """A frozen mapping (nested) as plain dicts, e.g. for JSON."""
    if isinstance(v, Mapping):
        return {k: plain(x) for k, x in v.items()}
    return v


def _fields(obj: Any) -> dict[str, Any]:
    return {f.name: getattr(obj, f.name) for f in fields(obj)}


def parse_column_list(text: str | None) -> tuple[str, ...] | None:
    """Split ``"A,B, C"`` into ``("A", "B", "C")``; ``None`` or blank gives ``None``."""
    if text is None or not text.strip():
        return None
    cols = tuple(c.strip() for c in text.split(",") if c.strip())
    return cols or None


# --------------------------------------------------------------------------- [data] + [conditions]
@dataclass(frozen=True)
class DataSpec:
    """Which columns are inputs, target and group, and their units.

    Attributes
    ----------
    features : tuple of str or None
        Input columns in model order; ``None`` means every column whose name carries a
        known unit suffix, other than the target, auxiliary targets and group.
    target : str or None
        The O2 reference column.
    group : str or None
        Column identifying the sensor spot (splits and folds are by group when given).
    aux_targets : tuple of str
        Further columns to predict together with the target (e.g. temperature).
    units : mapping of str to str
        Unit of each column whose name has no unit suffix (or to override it).
    frequencies : mapping of str to float
        Modulation frequency (Hz, > 0) of a phase-delay column, to convert microseconds to degrees.
    convert_target_to : str or None
        O2 unit to convert the target to (needs the inputs in ``conditions``).
    conditions : mapping of str to (str or float)
        ``temperature_degC``, ``pressure_hPa``, ``salinity_psu``: a column name or a constant.
    sep, decimal : str or None
        CSV separator (``,`` ``;`` tab ``|``) and decimal mark (``.`` ``,``); ``None`` = detected.
    sheet : str or int or None
        Excel sheet name or index; ``None`` = the first.
    """

    features: tuple[str, ...] | None = None
    target: str | None = None
    group: str | None = None
    aux_targets: tuple[str, ...] = ()
    units: Mapping[str, str] = field(default_factory=dict)
    frequencies: Mapping[str, float] = field(default_factory=dict)
    convert_target_to: str | None = None
    conditions: Mapping[str, Any] = field(default_factory=dict)
    sep: str | None = None
    decimal: str | None = None
    sheet: str | int | None = None

    rules: ClassVar[Mapping[str, list]] = {
        "features": [None, SeqOf(str, min_len=1, unique=True, what="{name} names >= 1 column, none twice")],
        "target": [None, _COLUMN],
        "group": [None, _COLUMN],
        "aux_targets": [SeqOf(str, what="{name} is a list of column names")],
        "convert_target_to": [None, NAME_RULE],
        "sep": [None, StrOptions([",", ";", "\t", "|"])],
        "decimal": [None, StrOptions([".", ","])],
        "sheet": [None, NAME_RULE, Interval(Integral, 0, None)],
    }

    def __post_init__(self) -> None:
        object.__setattr__(self, "units", _freeze(self.units))
        object.__setattr__(self, "frequencies", _freeze(self.frequencies))
        object.__setattr__(self, "conditions", _freeze(self.conditions))
        check_params(_fields(self), self.rules)
        if self.sep is not None:
            require(self.sep != self.decimal, "sep != decimal", sep=self.sep, decimal=self.decimal)
        check_keys("conditions", self.conditions, _CONDITION_KEYS)
        for key, value in self.conditions.items():
            check_param(key, value, [_COLUMN, Interval(Real, None, None)])
        for col, freq in self.frequencies.items():
            check_param("frequency_hz", freq, [Interval(Real, 0, None, closed="neither")],
                        note=f" for column {col!r}")
        if self.target is not None:
            require(self.group != self.target, "group != target", group=self.group, target=self.target)


# --------------------------------------------------------------------------- [split]
@dataclass(frozen=True)
class SplitSpec:
    """How rows are split into train, dev and test parts, and how inputs are scaled.

    Attributes
    ----------
    test_fraction : float, default=0.2
        Share of rows (or of groups) set aside for the one final test, 0 <= x < 1.
    dev_fraction : float, default=0.2
        Share of rows (or groups) for the dev part, 0 <= x < 1, with test + dev < 1.
    seed : int, default=0
        Seed of the split (>= 0): the same seed gives the same split.
    scaling : {"standard", "minmax", "robust", "none"}, default="standard"
        Input and target scaling, fitted on training rows only.
    """

    test_fraction: float = 0.2
    dev_fraction: float = 0.2
    seed: int = 0
    scaling: str = "standard"

    rules: ClassVar[Mapping[str, list]] = {"test_fraction": _FRACTION, "dev_fraction": _FRACTION, "seed": SEED}

    def __post_init__(self) -> None:
        from .scaling import SCALING

        check_params(_fields(self), {**self.rules, "scaling": SCALING})
        require(self.test_fraction + self.dev_fraction < 1, "test_fraction + dev_fraction < 1",
                test_fraction=self.test_fraction, dev_fraction=self.dev_fraction)


# --------------------------------------------------------------------------- [validate]
@dataclass(frozen=True)
class ValidateSpec:
    """k-fold validation settings.

    Attributes
    ----------
    folds : int, default=5
        Number of folds, >= 2.
    tolerance : float or "auto", default="auto"
        Error bound of the Error Limited Accuracy, in the target's unit (inclusive), > 0.
        ``"auto"``: the equivalent of 1 hPa of O2 partial pressure in the target's O2 unit
        (at 20 degC, salinity 0, 1013.25 hPa: 1 hPa, 0.48 % air saturation, 1.37 umol/L,
        0.031 mL/L, ...), 1.0 for a target that is not an O2 unit (:meth:`resolve_tolerance`).
    noise_floor : float or None, default=None
        Best achievable MAE in the target's unit (measurement noise), >= 0; ``None`` =
        estimated from replicate readings where the data has them.
    interval_level : float, default=0.95
        Coverage of the conformal prediction interval ``<target>_lo .. <target>_hi``
        (:mod:`calib.trust`), in (0.5, 1).
    reference_uncertainty : float, default=0.0
        Standard uncertainty (k = 1) of the reference values in the target's unit (e.g. the
        Winkler titration or gas standard), >= 0; enters the uncertainty budget.
    drift_allowance : float, default=0.0
        Standard uncertainty allowed for drift until the next check, target unit, >= 0.
    aux_tolerance : mapping of str to float, default={}
        Tolerance of each auxiliary output (``[data] aux_targets``) in its own unit, > 0: its
        Error Limited Accuracy bound and its scale in the objective
        (:class:`calib.metrics.Objective`). Missing: :func:`auto_tolerance` of its unit
        (0.1 degC for a temperature).
    """

    folds: int = 5
    tolerance: float | str = "auto"
    noise_floor: float | None = None
    interval_level: float = 0.95
    reference_uncertainty: float = 0.0
    drift_allowance: float = 0.0
    aux_tolerance: Mapping[str, float] = field(default_factory=dict)

    rules: ClassVar[Mapping[str, list]] = {
        "folds": FOLDS,
        "tolerance": [Interval(Real, 0, None, closed="neither"), StrOptions(["auto"], label='"auto"')],
        "noise_floor": [None, Interval(Real, 0, None)],
        "interval_level": [Interval(Real, 0.5, 1, closed="neither")],
        "reference_uncertainty": [Interval(Real, 0, None)],
        "drift_allowance": [Interval(Real, 0, None)],
    }

    def __post_init__(self) -> None:
        if not isinstance(self.aux_tolerance, Mapping):
            raise ConfigError(f"[validate] aux_tolerance must be a table of output = tolerance, "
                              f"got {self.aux_tolerance!r:.80}")
        object.__setattr__(self, "aux_tolerance", _freeze(self.aux_tolerance))
        check_params({k: v for k, v in _fields(self).items() if k != "aux_tolerance"}, self.rules)
        for key, value in self.aux_tolerance.items():
            check_param(f"aux_tolerance.{key}", value, [Interval(Real, 0, None, closed="neither")])

    def resolve_tolerance(self, target_unit: str) -> float:
        """The Error Limited Accuracy bound in ``target_unit``.

        A number is returned as it is. ``"auto"`` is 1 hPa of O2 partial pressure expressed
        in ``target_unit`` (conversions are proportional, so a difference converts like a
        value; reference conditions 20 degC, salinity 0, 1013.25 hPa), or 1.0 when
        ``target_unit`` is not an O2 unit.

        Examples
        --------
        >>> ValidateSpec().resolve_tolerance("hPa")
        1.0
        >>> round(ValidateSpec().resolve_tolerance("mL_per_L"), 4)
        0.0307
        """
        if self.tolerance != "auto":
            return float(self.tolerance)
        return auto_tolerance(target_unit)


def auto_tolerance(target_unit: str) -> float:
    """1 hPa of O2 partial pressure in ``target_unit`` (20 degC, S = 0, 1013.25 hPa); 0.1 for a
    temperature (degC); 1.0 for any other unit."""
    from .errors import UnitError
    from .units import convert_o2

    if target_unit == "degC":
        return 0.1
    try:
        value = float(convert_o2(1.0, "hPa", target_unit, temperature_degC=20.0, pressure_hPa=1013.25,
                                 salinity_psu=0.0))
    except UnitError:
        return 1.0
    return value if value > 0 and value == value else 1.0


# --------------------------------------------------------------------------- [sweep]
@dataclass(frozen=True)
class SweepSpec:
    """The ``[sweep]`` table: how hyperparameters are searched, by ``calib sweep`` and by the
    main job (``calib calibrate``) alike.

    Attributes
    ----------
    strategy : {"grid", "random", "bayes"}, default="random"
        Search strategy (bayes: Optuna TPE).
    trials : int, default=12
        Total trials the study should reach (>= 1), resumed ones included (:data:`DEFAULT_TRIALS`).
    seed : int, default=0
        Seed of the sampler and of the fold assignment (>= 0); the main job also seeds the
        network with it unless ``[model] seed`` is set.
    folds : int or None, default=None
        k of the k-fold (>= 2); ``None``: ``[validate] folds`` (:func:`sweep_settings` resolves it).
    jobs : int, default=1
        Parallel worker processes (>= 1, or -1 for every core).
    storage : str or None, default=None
        Journal file or RDB URL of the trial record. ``None``: the command's own default,
        ``runs/<data stem>/sweep-<key>/sweep.journal`` for ``calib sweep``
        (:func:`calib.search.default_storage`) and ``<runs_dir>/<name>/sweep-<key>.journal``
        (one per data and settings, so a main job resumes) for ``calib calibrate``.
    study : str, default="calib"
        Study name inside the storage.
    space : mapping or None, default=None
        The ``[sweep.space]`` table (validated as a :class:`calib.search.SearchSpace` at load);
        ``None``: :data:`calib.search.DEFAULT_SPACE`.
    objective : mapping of str to float, default={}
        Weight of each output (the target and ``[data] aux_targets``, >= 0) in the objective
        the sweep minimises and validation reports: the weighted mean of each output's MAE
        divided by its tolerance, in the target's unit (:class:`calib.metrics.Objective`).
        A missing output weighs 1; with one output the objective is the target's MAE.
    prune : bool, default=True
        Stop a trial early when, after its second or a later fold, its running mean score is worse
        than the median of the finished trials' after as many folds (from the 3rd distinct
        finished trial on: :class:`calib.search.trial.FoldPruner`). A pruned trial counts toward
        ``trials`` and is never kept. Folds that train together (Adam & co, stacked) report only
        when all are done, so only one-by-one folds (L-BFGS) are pruned.

    Raises
    ------
    ConfigError
        A value that breaks its rule, an invalid space entry, or a grid over a continuous range.
    """

    strategy: str = "random"
    trials: int = DEFAULT_TRIALS
    seed: int = 0
    folds: int | None = None
    jobs: int = 1
    storage: str | None = None
    study: str = "calib"
    space: Mapping[str, Any] | None = None
    objective: Mapping[str, float] = field(default_factory=dict)
    prune: bool = True

    rules: ClassVar[Mapping[str, list]] = {
        "strategy": [StrOptions(["grid", "random", "bayes"])],
        "prune": [Boolean()],
        "trials": TRIALS_RULE,
        "seed": SEED,
        "folds": [None, *FOLDS],
        "jobs": JOBS,
        "storage": [None, Satisfies(lambda v: isinstance(v, str) and bool(v.strip()),
                                    "{name} is a file path or a database URL")],
        "study": [NAME_RULE],
    }

    def __post_init__(self) -> None:
        if not isinstance(self.objective, Mapping):
            raise ConfigError(f"[sweep] objective must be a table of output = weight, got {self.objective!r:.80}")
        object.__setattr__(self, "objective", _freeze(self.objective))
        check_params({k: v for k, v in _fields(self).items() if k != "objective"}, self.rules)
        for key, value in self.objective.items():
            check_param(f"objective.{key}", value, [Interval(Real, 0, None)])
        if self.space is not None:
            if not isinstance(self.space, Mapping):
                raise ConfigError(f"[sweep.space] must be a table, got {self.space!r:.80}")
            object.__setattr__(self, "space", _deep_freeze(self.space))
        space = self.search_space()  # validated here, once
        if self.strategy == "grid":
            for p in space.params:
                p.grid_values()

    def search_space(self) -> SearchSpace:
        """The :class:`calib.search.SearchSpace` of ``space`` (the default space when ``None``)."""
        from .search import DEFAULT_SPACE, SearchSpace

        return DEFAULT_SPACE if self.space is None else SearchSpace.from_dict(plain(self.space))

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form (``space`` as nested dicts)."""
        d = _fields(self)
        d["space"] = plain(self.space)
        if self.objective:
            d["objective"] = plain(self.objective)
        else:
            d.pop("objective")
        return d


def sweep_settings(cfg: Config, **overrides: Any) -> SweepSpec:
    """The sweep settings a command runs with: ``[sweep]``, then the options given.

    ``calib sweep`` and ``calib calibrate`` both call this, so the same config gives the
    same strategy, trials, seed, folds, jobs and storage.

    Parameters
    ----------
    cfg : Config
    **overrides
        ``strategy``, ``trials``, ``seed``, ``folds``, ``jobs``, ``storage``, ``study``,
        ``prune``; ``None`` keeps the config's value.

    Returns
    -------
    SweepSpec
        With ``folds`` resolved (``[validate] folds`` when ``[sweep]`` has none).

    Raises
    ------
    ConfigError
        An unknown override or a value that breaks its rule.

    Examples
    --------
    >>> sweep_settings(Config(), trials=3, jobs=None).trials
    3
    """
    check_keys("sweep options", overrides, tuple(f.name for f in fields(SweepSpec) if f.name != "space"))
    changes = {k: v for k, v in overrides.items() if v is not None}
    spec = replace(cfg.sweep, **changes) if changes else cfg.sweep
    return spec if spec.folds is not None else replace(spec, folds=cfg.validate.folds)


# --------------------------------------------------------------------------- [calibrate]
@dataclass(frozen=True)
class CalibrateSpec:
    """The ``[calibrate]`` table: where the main job writes its artifact and journal.

    Attributes
    ----------
    name : str or None, default=None
        Artifact name (letters, digits, ``.``, ``_``, ``-``); ``None``: the data file's stem.
    models_dir : str, default="models"
        Folder of all artifacts.
    runs_dir : str, default=$CALIB_RUNS_DIR or "runs"
        Folder of the main job's sweep journals (resumable).
    operator, reference_standard : str, default=""
        Who calibrated, and against which reference (e.g. "Winkler titration, lot 1206"):
        printed on the artifact's ``certificate.html``.
    """

    name: str | None = None
    models_dir: str = "models"
    runs_dir: str = field(default_factory=lambda: os.environ.get("CALIB_RUNS_DIR", "runs"))
    operator: str = ""
    reference_standard: str = ""

    rules: ClassVar[Mapping[str, list]] = {
        "name": [None, *ARTIFACT_NAME],
        "models_dir": [NAME_RULE],
        "runs_dir": [NAME_RULE],
        "operator": [Satisfies(lambda v: isinstance(v, str) and len(v) <= 200, "{name} is a string (<= 200 characters)")],
        "reference_standard": [Satisfies(lambda v: isinstance(v, str) and len(v) <= 200,
                                         "{name} is a string (<= 200 characters)")],
    }

    def __post_init__(self) -> None:
        check_params(_fields(self), self.rules)


# --------------------------------------------------------------------------- [adjust]
@dataclass(frozen=True)
class AdjustSpec:
    """The ``[adjust]`` table: the two-point check of a spot-normalised batch model.

    The rules are :class:`calib.spots.normalise.SpotReference`'s (checked at load by building one).

    Attributes
    ----------
    temperature_degC : float
        Temperature of the two-point check, degC.
    air : float
        Target value of the air level, target unit (> zero).
    temperature_tolerance_degC : float, default=1.0
        Rows within this many degC of ``temperature_degC`` (inclusive) are at the check's temperature.
    zero : float, default=0.0
        Target value of the zero level, target unit (>= 0).
    level_tolerance : float, default=1e-6
        Relative to ``air`` (0 <= x < 0.1).
    """

    temperature_degC: float
    air: float
    temperature_tolerance_degC: float = 1.0
    zero: float = 0.0
    level_tolerance: float = 1e-6

    def __post_init__(self) -> None:
        ref = self.reference()  # the rules live in calib.spots.normalise
        for f in fields(self):
            object.__setattr__(self, f.name, getattr(ref, f.name))

    def reference(self) -> SpotReference:
        """This table as a :class:`calib.spots.normalise.SpotReference`."""
        from .spots.normalise import SpotReference

        return SpotReference(**_fields(self))

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> AdjustSpec:
        """Build from the ``[adjust]`` table (unknown and missing keys are errors)."""
        allowed = tuple(f.name for f in fields(cls))
        check_keys("adjust", d, allowed)
        missing = [k for k in ("temperature_degC", "air") if k not in d]
        if missing:
            raise ConfigError(f"[adjust] must give {' and '.join(missing)} (the two-point check's "
                              "temperature in degC and the air level in the target unit)")
        return cls(**dict(d))


# --------------------------------------------------------------------------- [check]
@dataclass(frozen=True)
class CheckSpec:
    """The ``[check]`` table: acceptance bounds and schedule of a spot's dated two-point checks.

    Read by ``calib adjust`` (:mod:`calib.spots.history`). A check's *gain* and *offset* are
    the straight line that maps the batch model's reading onto the reference at the zero and
    air points (for ``method = "linear"`` exactly the child's scale and intercept). Like an
    instrument vendor's, a check outside the bounds is refused (the spot's previous
    calibration stays current) unless forced.

    Attributes
    ----------
    gain_min, gain_max : float, default=0.85, 1.20
        Accepted gain, inclusive (dimensionless, 0 < gain_min < gain_max).
    max_offset : float or "auto", default="auto"
        Largest accepted absolute offset, target unit, inclusive (> 0); ``"auto"``: 5 % of
        the check's air reference value.
    tolerance : float or None, default=None
        Error allowed to build up by drift before the next check, target unit (> 0);
        ``None``: ``[validate] tolerance``.
    interval_days : float, default=180.0
        Check interval when the drift is unknown (one check) or slow, days (> 0): the next
        check is due after at most this long.
    """

    gain_min: float = 0.85
    gain_max: float = 1.20
    max_offset: float | str = "auto"
    tolerance: float | None = None
    interval_days: float = 180.0

    rules: ClassVar[Mapping[str, list]] = {
        "gain_min": [Interval(Real, 0, None, closed="neither")],
        "gain_max": [Interval(Real, 0, None, closed="neither")],
        "max_offset": [Interval(Real, 0, None, closed="neither"), StrOptions(["auto"], label='"auto"')],
        "tolerance": [None, Interval(Real, 0, None, closed="neither")],
        "interval_days": [Interval(Real, 0, 36525, closed="right")],  # at most 100 years (a date stays a date)
    }

    def __post_init__(self) -> None:
        check_params(_fields(self), self.rules)
        require(self.gain_min < self.gain_max, "gain_min < gain_max", gain_min=self.gain_min, gain_max=self.gain_max)

    def offset_limit(self, air_value: float) -> float:
        """``max_offset`` in the target unit (``"auto"``: 5 % of ``air_value``)."""
        return 0.05 * abs(float(air_value)) if self.max_offset == "auto" else float(self.max_offset)


# --------------------------------------------------------------------------- Config
@dataclass(frozen=True)
class Config:
    """A whole configuration, every section validated when it is built.

    Attributes
    ----------
    data : DataSpec
        ``[data]``, ``[data.units]`` and ``[conditions]``.
    split : SplitSpec
    validate : ValidateSpec
    model : mapping
        The ``[model]`` table as written (validated as a :class:`calib.nn.ModelConfig`;
        :meth:`model_config` builds it).
    sweep : SweepSpec
    calibrate : CalibrateSpec
    adjust : AdjustSpec or None
        ``None`` without an ``[adjust]`` table.
    check : CheckSpec
        ``[check]``: acceptance bounds and schedule of spot checks (``calib adjust``).
    path : str or None
        The file it was read from.
    """

    data: DataSpec = field(default_factory=DataSpec)
    split: SplitSpec = field(default_factory=SplitSpec)
    validate: ValidateSpec = field(default_factory=ValidateSpec)
    model: Mapping[str, Any] = field(default_factory=dict)
    sweep: SweepSpec = field(default_factory=SweepSpec)
    calibrate: CalibrateSpec = field(default_factory=CalibrateSpec)
    adjust: AdjustSpec | None = None
    check: CheckSpec = field(default_factory=CheckSpec)
    path: str | None = None

    def __post_init__(self) -> None:
        for name, cls in (("data", DataSpec), ("split", SplitSpec), ("validate", ValidateSpec),
                          ("sweep", SweepSpec), ("calibrate", CalibrateSpec), ("check", CheckSpec)):
            if not isinstance(getattr(self, name), cls):
                raise ConfigError(f"{name} must be a {cls.__name__}, got {type(getattr(self, name)).__name__}")
        if self.adjust is not None and not isinstance(self.adjust, AdjustSpec):
            raise ConfigError(f"adjust must be an AdjustSpec or None, got {type(self.adjust).__name__}")
        if not isinstance(self.model, Mapping):
            raise ConfigError(f"[model] must be a table, got {self.model!r:.80}")
        object.__setattr__(self, "model", _freeze(self.model))
        self.model_config()  # validated here, once

    def model_config(self) -> ModelConfig:
        """The ``[model]`` table as a :class:`calib.nn.ModelConfig` (defaults for missing keys)."""
        from .nn import ModelConfig

        check_keys("model", self.model, tuple(f.name for f in fields(ModelConfig)))
        return ModelConfig.from_dict(dict(self.model))

    def objective(self, target: Sequence[str], aux: Sequence[Sequence[str]] = ()) -> Objective:
        """The :class:`calib.metrics.Objective` of the outputs ``target`` = (name, unit[, source name]) and
        ``aux`` (the auxiliary targets' likewise, in output order); a key may be the normalised or the
        source name, a tolerance is in the normalised unit. ConfigError: ``[validate] aux_tolerance`` or
        ``[sweep] objective`` names a column that is not an output."""
        outs = [tuple(target), *(tuple(a) for a in aux)]
        names = [o[0] for o in outs]
        alias = {key: o[0] for o in outs for key in (o[0], *o[2:3])}
        for where, table, allowed in (("[validate] aux_tolerance", self.validate.aux_tolerance, names[1:]),
                                      ("[sweep] objective", self.sweep.objective, names)):
            for key in table:
                if alias.get(key) not in allowed:
                    what = "auxiliary output" if where.endswith("aux_tolerance") else "output"
                    raise ConfigError(f"{where} names {key!r}, which is not an {what} of the model "
                                      f"({what}s: {', '.join(allowed) or 'none'}){did_you_mean(key, allowed)}")
        tol_of = {alias[k]: float(v) for k, v in self.validate.aux_tolerance.items()}
        w_of = {alias[k]: float(v) for k, v in self.sweep.objective.items()}
        tols = [self.validate.resolve_tolerance(outs[0][1]), *(tol_of.get(o[0], auto_tolerance(o[1])) for o in outs[1:])]
        return Objective(tuple(names), tuple(o[1] for o in outs), tuple(tols), tuple(w_of.get(n, 1.0) for n in names))

    def with_overrides(
        self,
        *,
        features: tuple[str, ...] | None = None,
        target: str | None = None,
        group: str | None = None,
        folds: int | None = None,
        seed: int | None = None,
        physics_kind: str | None = None,
    ) -> Config:
        """Return a copy with CLI options applied (``None`` keeps the config's value).

        ``folds`` sets ``[validate] folds`` and ``[sweep] folds``; ``seed`` sets ``[split] seed``
        and ``[sweep] seed`` (the seed of the split, the folds and the sweep); ``physics_kind``
        sets ``[model] physics_kind`` (validated with the rest of ``[model]``).
        """
        data = self.data
        changes: dict[str, Any] = {}
        if features is not None:
            changes["features"] = tuple(features)
        if target is not None:
            changes["target"] = target
        if group is not None:
            changes["group"] = group or None
        if changes:
            data = replace(data, **changes)
        validate = self.validate if folds is None else replace(self.validate, folds=folds)
        split = self.split if seed is None else replace(self.split, seed=seed)
        sweep_changes = {k: v for k, v in (("folds", folds), ("seed", seed)) if v is not None}
        sweep = replace(self.sweep, **sweep_changes) if sweep_changes else self.sweep
        out = replace(self, data=data, validate=validate, split=split, sweep=sweep)
        if physics_kind is not None:
            out = replace(out, model={**dict(self.model), "physics_kind": physics_kind})
            out.model_config()  # validated now, one line if wrong
        return out


# --------------------------------------------------------------------------- building from TOML
def _data_spec(d: Mapping[str, Any], conditions: Mapping[str, Any]) -> DataSpec:
    allowed = (
        "features", "target", "group", "aux_targets", "units", "convert_target_to",
        "sep", "decimal", "sheet",
    )
    check_keys("data", d, allowed)
    from .errors import UnitError
    from .units import normalize_unit

    units: dict[str, str] = {}
    freqs: dict[str, float] = {}
    declared = d.get("units", {})
    if not isinstance(declared, Mapping):
        raise ConfigError(f"[data] units must be a table of column = unit (e.g. [data.units] \"Phase A\" = \"deg\"), "
                          f"got units={declared!r}")
    for col, spec in declared.items():
        if isinstance(spec, str):
            units[col] = spec
        elif isinstance(spec, Mapping):
            check_keys(f"data.units.{col}", spec, ("unit", "frequency_hz"))
            if "unit" not in spec:
                raise ConfigError(f"[data.units] {col} must give a unit, e.g. {{ unit = \"us\", frequency_hz = 5000 }}")
            units[col] = str(spec["unit"])
            if "frequency_hz" in spec:
                freqs[col] = spec["frequency_hz"]
        else:
            raise ConfigError(f"[data.units] {col} must be a unit string or a table, got {spec!r}")
        try:  # a typo is named here, with its column, not later by the first file read
            normalize_unit(units[col])
        except UnitError as exc:
            raise ConfigError(f"[data.units] {col}: {exc}") from None

    def _list(key: str) -> tuple[str, ...] | None:
        v = d.get(key)
        if v is None:
            return None
        if isinstance(v, str):
            return parse_column_list(v) or ()
        return tuple(v) if isinstance(v, list) else v

    return DataSpec(
        features=_list("features"),
        target=d.get("target"),
        group=d.get("group"),
        aux_targets=_list("aux_targets") or (),
        units=units,
        frequencies=freqs,
        convert_target_to=d.get("convert_target_to"),
        conditions=dict(conditions),
        sep=d.get("sep"),
        decimal=d.get("decimal"),
        sheet=d.get("sheet"),
    )


def _spec(cls: type, where: str, d: Mapping[str, Any]) -> Any:
    check_keys(where, d, tuple(f.name for f in fields(cls)))
    return cls(**d)


def _move_aliases(calibrate: Mapping[str, Any], sweep: Mapping[str, Any]) -> tuple[dict, dict]:
    """Move the deprecated ``[calibrate]`` trials/strategy/jobs to ``[sweep]``."""
    cal, sw = dict(calibrate), dict(sweep)
    for key in CALIBRATE_ALIASES:
        if key not in cal:
            continue
        value = cal.pop(key)
        if key in sw and sw[key] != value:
            raise ConfigError(
                f"[calibrate] {key} is a deprecated alias of [sweep] {key} and they differ "
                f"([calibrate] {key}={value!r}, [sweep] {key}={sw[key]!r}); keep only [sweep] {key}"
            )
        sw[key] = value
        warnings.warn(f"[calibrate] {key} is deprecated; write it as [sweep] {key} (read by calib sweep "
                      "and calib calibrate alike)", DeprecationWarning, stacklevel=4)
    return cal, sw


def config_from_dict(d: Mapping[str, Any], path: str | None = None) -> Config:
    """Build a validated :class:`Config` from a parsed TOML mapping.

    ``[calibrate] trials``, ``strategy`` and ``jobs`` are deprecated aliases: given there
    only, they are read as the ``[sweep]`` key of the same name (with a
    ``DeprecationWarning``); given in both tables, they must be equal.

    Raises
    ------
    ConfigError
        An unknown section or key, or a value that breaks its rule.
    """
    check_keys("top level", d, _SECTIONS)
    for section in _SECTIONS:
        if section in d and not isinstance(d[section], Mapping):
            raise ConfigError(f"[{section}] must be a table, got {d[section]!r}")
    cal, sw = _move_aliases(d.get("calibrate", {}), d.get("sweep", {}))
    return Config(
        data=_data_spec(d.get("data", {}), d.get("conditions", {})),
        split=_spec(SplitSpec, "split", d.get("split", {})),
        validate=_spec(ValidateSpec, "validate", d.get("validate", {})),
        model=d.get("model", {}),
        sweep=_spec(SweepSpec, "sweep", sw),
        calibrate=_spec(CalibrateSpec, "calibrate", cal),
        adjust=AdjustSpec.from_dict(d["adjust"]) if d.get("adjust") else None,
        check=_spec(CheckSpec, "check", d.get("check", {})),
        path=path,
    )


def load_config(path: str | Path | None) -> Config:
    """Read and validate a TOML config file; ``None`` gives the defaults.

    Raises
    ------
    ConfigError
        If the file is missing, is not valid TOML, or holds unknown or invalid keys.
    """
    if path is None:
        return Config()
    from .errors import IngestError
    from .rawio import read_input

    p = Path(path)
    if not os.path.lexists(p):
        raise ConfigError(f"{p}: config file not found")
    try:  # once, size-capped; a device or socket is refused (calib.rawio)
        text = read_input(p, expected="a TOML config file").decode("utf-8-sig")
    except IngestError as exc:
        raise ConfigError(f"config file {exc}") from None
    except UnicodeDecodeError as exc:  # TOML is UTF-8 (a UTF-16 "Unicode" save, a cp1252 degree sign)
        raise ConfigError(f"{p}: not UTF-8 text (byte 0x{exc.object[exc.start]:02x} at offset {exc.start}); "
                          "expected a TOML config file saved as UTF-8") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: not valid TOML ({exc})") from None
    try:
        return config_from_dict(raw, path=str(p))
    except ConfigError as exc:
        raise ConfigError(f"{p}: {exc}") from None
