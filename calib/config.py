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

    [model]                        # see calib.nn.ModelConfig
    [sweep]                        # see calib.search

    [adjust]                       # optional: a spot-normalised batch model (calib.spots.normalise)
    temperature_degC = 22.5        # the two-point check's temperature
    air = 212.0                    # target value of the air level (zero level: 0)

Unknown sections and keys are errors, not silently ignored.
"""

from __future__ import annotations

import math
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping, Sequence

from .errors import ConfigError

__all__ = [
    "Config",
    "DataSpec",
    "SplitSpec",
    "ValidateSpec",
    "load_config",
    "parse_column_list",
]

_SECTIONS = ("data", "conditions", "split", "validate", "model", "sweep", "calibrate", "adjust")
_CONDITION_KEYS = ("temperature_degC", "pressure_hPa", "salinity_psu")


def _freeze(d: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return MappingProxyType(dict(d or {}))


def did_you_mean(word: str, options: Sequence[str]) -> str:
    """``"; did you mean 'x'?"`` for the closest option, or ``""``."""
    import difflib

    close = difflib.get_close_matches(str(word), list(options), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def _check_keys(where: str, given: Mapping[str, Any], allowed: tuple[str, ...]) -> None:
    unknown = sorted(set(given) - set(allowed))
    if unknown:
        raise ConfigError(
            f"unknown key{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} in [{where}]"
            f"{did_you_mean(unknown[0], allowed)} (valid keys: {', '.join(allowed)})"
        )


def parse_column_list(text: str | None) -> tuple[str, ...] | None:
    """Split ``"A,B, C"`` into ``("A", "B", "C")``; ``None`` or blank gives ``None``."""
    if text is None or not text.strip():
        return None
    cols = tuple(c.strip() for c in text.split(",") if c.strip())
    return cols or None


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
        Modulation frequency (Hz) of a phase-delay column, to convert microseconds to degrees.
    convert_target_to : str or None
        O2 unit to convert the target to (needs the inputs in ``conditions``).
    conditions : mapping of str to (str or float)
        ``temperature_degC``, ``pressure_hPa``, ``salinity_psu``: a column name or a constant.
    sep, decimal : str or None
        CSV separator and decimal mark; ``None`` = detected.
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

    def __post_init__(self) -> None:
        object.__setattr__(self, "units", _freeze(self.units))
        object.__setattr__(self, "frequencies", _freeze(self.frequencies))
        object.__setattr__(self, "conditions", _freeze(self.conditions))
        if self.features is not None and len(self.features) == 0:
            raise ConfigError("features must name at least one column, got features=[]")
        if self.features is not None and len(set(self.features)) != len(self.features):
            dup = sorted({f for f in self.features if self.features.count(f) > 1})
            raise ConfigError(f"features must not repeat a column, got {', '.join(dup)} twice")
        if self.sep is not None and self.sep not in (",", ";", "\t", "|"):
            raise ConfigError(f"sep must be one of ',', ';', '\\t', '|', got sep={self.sep!r}")
        if self.decimal is not None and self.decimal not in (".", ","):
            raise ConfigError(f"decimal must be '.' or ',', got decimal={self.decimal!r}")
        if self.sep is not None and self.sep == self.decimal:
            raise ConfigError(f"sep and decimal must differ, got both {self.sep!r}")
        for key, value in self.conditions.items():
            if key not in _CONDITION_KEYS:
                raise ConfigError(
                    f"unknown key {key!r} in [conditions]; valid keys: {', '.join(_CONDITION_KEYS)}"
                )
            if not isinstance(value, (str, int, float)) or isinstance(value, bool):
                raise ConfigError(
                    f"[conditions] {key} must be a column name or a number, got {key}={value!r}"
                )
        for col, freq in self.frequencies.items():
            if not (isinstance(freq, (int, float)) and math.isfinite(freq) and freq > 0):
                raise ConfigError(f"frequency_hz > 0 must hold, got frequency_hz={freq!r} for column {col!r}")
        for name in (self.target, self.group, *(self.aux_targets or ())):
            if name is not None and (not isinstance(name, str) or not name):
                raise ConfigError(f"column names must be non-empty strings, got {name!r}")
        if self.target is not None and self.group == self.target:
            raise ConfigError(f"group and target must differ, got both {self.target!r}")


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
        Seed of the split: the same seed gives the same split.
    scaling : {"standard", "minmax", "robust", "none"}, default="standard"
        Input and target scaling, fitted on training rows only.
    """

    test_fraction: float = 0.2
    dev_fraction: float = 0.2
    seed: int = 0
    scaling: str = "standard"

    def __post_init__(self) -> None:
        from .scaling import SCALING_KINDS

        for name in ("test_fraction", "dev_fraction"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not (0 <= v < 1):
                raise ConfigError(f"0 <= {name} < 1 must hold, got {name}={v!r}")
        if self.test_fraction + self.dev_fraction >= 1:
            raise ConfigError(
                "test_fraction + dev_fraction < 1 must hold, got "
                f"test_fraction={self.test_fraction}, dev_fraction={self.dev_fraction}"
            )
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError(f"seed must be an integer >= 0, got seed={self.seed!r}")
        if self.scaling not in SCALING_KINDS:
            raise ConfigError(
                f"scaling must be one of {', '.join(SCALING_KINDS)}, got scaling={self.scaling!r}"
            )


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
        Best achievable MAE in the target's unit (measurement noise); ``None`` = estimated
        from replicate readings where the data has them.
    """

    folds: int = 5
    tolerance: float | str = "auto"
    noise_floor: float | None = None

    def __post_init__(self) -> None:
        if isinstance(self.folds, bool) or not isinstance(self.folds, int) or self.folds < 2:
            raise ConfigError(f"folds >= 2 must hold, got folds={self.folds!r}")
        if self.tolerance != "auto" and (
            isinstance(self.tolerance, bool) or not isinstance(self.tolerance, (int, float))
            or not self.tolerance > 0
        ):
            raise ConfigError(f"tolerance > 0 (or \"auto\") must hold, got tolerance={self.tolerance!r}")
        if self.noise_floor is not None and (
            not isinstance(self.noise_floor, (int, float)) or not self.noise_floor >= 0
        ):
            raise ConfigError(f"noise_floor >= 0 must hold, got noise_floor={self.noise_floor!r}")

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
    """1 hPa of O2 partial pressure in ``target_unit`` (20 degC, S = 0, 1013.25 hPa); 1.0 if not O2."""
    from .errors import UnitError
    from .units import convert_o2

    try:
        value = float(convert_o2(1.0, "hPa", target_unit, temperature_degC=20.0, pressure_hPa=1013.25,
                                 salinity_psu=0.0))
    except UnitError:
        return 1.0
    return value if value > 0 and value == value else 1.0


@dataclass(frozen=True)
class Config:
    """A whole configuration: data, split and validation specs, plus the raw
    ``[model]``, ``[sweep]`` and ``[calibrate]`` tables (validated by their own stages)."""

    data: DataSpec = field(default_factory=DataSpec)
    split: SplitSpec = field(default_factory=SplitSpec)
    validate: ValidateSpec = field(default_factory=ValidateSpec)
    model: Mapping[str, Any] = field(default_factory=dict)
    sweep: Mapping[str, Any] = field(default_factory=dict)
    calibrate: Mapping[str, Any] = field(default_factory=dict)
    adjust: Mapping[str, Any] = field(default_factory=dict)
    path: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "adjust", _freeze(self.adjust))
        object.__setattr__(self, "model", _freeze(self.model))
        object.__setattr__(self, "sweep", _freeze(self.sweep))
        object.__setattr__(self, "calibrate", _freeze(self.calibrate))

    def with_overrides(
        self,
        *,
        features: tuple[str, ...] | None = None,
        target: str | None = None,
        group: str | None = None,
        folds: int | None = None,
        seed: int | None = None,
    ) -> "Config":
        """Return a copy with CLI options applied (``None`` keeps the config's value)."""
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
        return replace(self, data=data, validate=validate, split=split)


def _data_spec(d: Mapping[str, Any], conditions: Mapping[str, Any]) -> DataSpec:
    allowed = (
        "features", "target", "group", "aux_targets", "units", "convert_target_to",
        "sep", "decimal", "sheet",
    )
    _check_keys("data", d, allowed)
    units: dict[str, str] = {}
    freqs: dict[str, float] = {}
    for col, spec in dict(d.get("units", {})).items():
        if isinstance(spec, str):
            units[col] = spec
        elif isinstance(spec, Mapping):
            _check_keys(f"data.units.{col}", spec, ("unit", "frequency_hz"))
            if "unit" not in spec:
                raise ConfigError(f"[data.units] {col} must give a unit, e.g. {{ unit = \"us\", frequency_hz = 5000 }}")
            units[col] = str(spec["unit"])
            if "frequency_hz" in spec:
                freqs[col] = spec["frequency_hz"]
        else:
            raise ConfigError(f"[data.units] {col} must be a unit string or a table, got {spec!r}")

    def _list(key: str) -> tuple[str, ...] | None:
        v = d.get(key)
        if v is None:
            return None
        if isinstance(v, str):
            return parse_column_list(v) or ()
        if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
            raise ConfigError(f"[data] {key} must be a list of column names, got {key}={v!r}")
        return tuple(v)

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
    allowed = tuple(cls.__dataclass_fields__)
    _check_keys(where, d, allowed)
    try:
        return cls(**d)
    except TypeError as exc:  # pragma: no cover - guarded by _check_keys
        raise ConfigError(f"[{where}]: {exc}") from exc


def _checked_adjust(d: Mapping[str, Any]) -> Mapping[str, Any]:
    if d:
        from .spots.normalise import SpotReference

        SpotReference.from_dict(dict(d))  # validated where it enters
    return d


def config_from_dict(d: Mapping[str, Any], path: str | None = None) -> Config:
    """Build a validated :class:`Config` from a parsed TOML mapping."""
    _check_keys("top level", d, _SECTIONS)
    for section in _SECTIONS:
        if section in d and not isinstance(d[section], Mapping):
            raise ConfigError(f"[{section}] must be a table, got {d[section]!r}")
    return Config(
        data=_data_spec(d.get("data", {}), d.get("conditions", {})),
        split=_spec(SplitSpec, "split", d.get("split", {})),
        validate=_spec(ValidateSpec, "validate", d.get("validate", {})),
        model=d.get("model", {}),
        sweep=d.get("sweep", {}),
        calibrate=d.get("calibrate", {}),
        adjust=_checked_adjust(d.get("adjust", {})),
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
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise ConfigError(f"{p}: config file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{p}: cannot read config file ({exc})") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: not valid TOML ({exc})") from None
    try:
        return config_from_dict(raw, path=str(p))
    except ConfigError as exc:
        raise ConfigError(f"{p}: {exc}") from None
