"""Simulate a batch of luminescent O2 sensor spots (the project's bundled dataset).

The simulator produces calibration readings of ``n_spots`` spots cut from one
Pt-porphyrin foil, each measured at a grid of temperatures and O2 set-points,
with several modulation frequencies. It uses numpy and pandas only.

Physics
-------
Two-site Stern-Volmer model (dynamic quenching at two kinds of dye site). Site
``i`` (``i = 1, 2``) has the fraction ``f_1 = f``, ``f_2 = 1 - f`` of the
unquenched emission, the Stern-Volmer constant ``Ksv_i`` (1/hPa), and at the
oxygen partial pressure ``pO2`` (hPa):

* lifetime ``tau_i = tau0 / (1 + Ksv_i * pO2)`` (us),
* steady-state intensity share ``I_i = f_i / (1 + Ksv_i * pO2)``.

Excited with light modulated at ``nu`` (Hz, ``omega = 2*pi*nu``), the emission is
``sum_i I_i / (1 + j*omega*tau_i)`` relative to the excitation, so the phase lag
(deg) is::

    theta = atan( sum_i I_i*w*tau_i/(1 + (w*tau_i)^2) / sum_i I_i/(1 + (w*tau_i)^2) )

which lies in (0, 90) deg and falls monotonically as pO2 rises. For one site
(``f = 1``) it reduces exactly to ``tan(theta) = omega*tau0/(1 + Ksv1*pO2)``. The
often quoted two-site formula ``tan(theta)/tan(theta0) = f/(1 + Ksv1*pO2) +
(1 - f)/(1 + Ksv2*pO2)`` is only an approximation of this exact frequency-domain
form (the simulator does not use it).

Temperature laws: every parameter is linear in temperature through the values
of one real Pt-porphyrin foil at 3 and 39 degC (see ``/work/shared/DOMAIN.md``),
and extrapolated mildly to the validity range 0-45 degC:

=================  ===========  ============  ====================
parameter          at 3 degC    at 39 degC    at 0 / 45 degC
=================  ===========  ============  ====================
tau0 (us)          64.0         57.0          64.58 / 55.83
f (site 1 share)   0.61         0.69          0.6033 / 0.7033
Ksv1 (1/hPa)       0.031        0.047         0.02967 / 0.04967
Ksv2 (1/hPa)       0.003        0.003         0.003 / 0.003
=================  ===========  ============  ====================

Check: at 5 kHz, 3 degC and pO2 = 0, ``theta0 = atan(2*pi*5000*64e-6) = 63.56``
deg; at 39 degC ``atan(2*pi*5000*57e-6) = 60.82`` deg (DOMAIN.md: 63.6 -> 60.8 deg).

Batch, instrument and noise model
---------------------------------
Per spot (drawn once, from its own seeded stream, so spot ``S01`` does not change
when ``n_spots`` changes): ``tau0`` scale ~ N(1, 0.01), ``Ksv1`` and ``Ksv2`` scales
~ N(1, 0.03) each (independent), ``f`` shift ~ N(0, 0.01), an instrument phase
offset ~ N(0, 0.2) deg (the same at all frequencies) and a temperature-sensor
offset ~ N(0, 0.05) degC.

Per condition (spot x temperature set-point x O2 set-point): the true temperature is
the set-point plus a uniform jitter in [-0.3, +0.3] degC; the true pO2 differs from
the recorded reference (the set-point) by N(0, 0.1 % of it) + N(0, 0.05 hPa),
clipped at 0 hPa. Both are shared by the replicates of the condition.

Per reading (``replicates`` per condition): phase noise N(0, 0.005) deg at each
frequency and temperature noise N(0, 0.02) degC, independent.

Written columns: ``temperature_degC`` is the spot's temperature sensor (true
temperature + spot offset + noise, rounded to 0.001 degC), ``phase_<nu>hz_deg`` the
measured phase (physics + spot offset + noise, rounded to 0.0001 deg), ``o2_hPa``
the reference pO2 set-point (the target), ``condition_id`` numbers the conditions.
"""

from __future__ import annotations

import math
import os
import secrets
from dataclasses import dataclass, field, fields
from numbers import Integral, Real
from pathlib import Path

import numpy as np
import pandas as pd

from .constraints import SEED, Interval, Satisfies, SeqOf, check_params, require
from .errors import ConfigError

__all__ = [
    "TEMPERATURE_RANGE_DEGC",
    "MAX_SIMULATED_ROWS",
    "FoilModel",
    "SimulationConfig",
    "phase_deg",
    "phase_column",
    "spot_parameters",
    "simulate",
    "noise_floor_table",
    "noise_floor_hPa",
    "write_bundle",
    "render_calib_toml",
]

#: Inclusive temperature range (degC) in which the foil's temperature laws are trusted.
TEMPERATURE_RANGE_DEGC: tuple[float, float] = (0.0, 45.0)

_PHASE_DECIMALS = 4
_TEMPERATURE_DECIMALS = 3
_O2_DECIMALS = 3


def _pair(name: str, value: object) -> tuple[float, float]:
    try:
        a, b = (float(v) for v in value)  # type: ignore[union-attr]
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{name} must be a pair of numbers, got {name}={value!r}") from exc
    if not (math.isfinite(a) and math.isfinite(b)):
        raise ConfigError(f"{name} must be finite, got {name}={value!r}")
    return (a, b)


_FOIL_RULES = {  # each value of the pair (the anchors' values)
    "tau0_us": [SeqOf(Interval(Real, 0, None, closed="neither"), what="{name} > 0")],
    "f": [SeqOf(Interval(Real, 0, 1, closed="right"), what="0 < {name} <= 1")],
    "ksv1_per_hPa": [SeqOf(Interval(Real, 0, None), what="{name} >= 0")],
    "ksv2_per_hPa": [SeqOf(Interval(Real, 0, None), what="{name} >= 0")],
}


@dataclass(frozen=True)
class FoilModel:
    """Temperature laws of the foil: each parameter is linear in T through two anchors.

    Parameters
    ----------
    t_anchor_degC : tuple of float, default=(3.0, 39.0)
        The two temperatures (degC) at which the values below hold; first < second.
    tau0_us : tuple of float, default=(64.0, 57.0)
        Unquenched lifetime (us) at the anchors; > 0.
    f : tuple of float, default=(0.61, 0.69)
        Share of site 1 in the unquenched emission at the anchors; in (0, 1]
        (``f = 1`` with ``Ksv2 = 0`` is the single-site Stern-Volmer foil).
    ksv1_per_hPa : tuple of float, default=(0.031, 0.047)
        Stern-Volmer constant of site 1 (1/hPa) at the anchors; >= 0.
    ksv2_per_hPa : tuple of float, default=(0.003, 0.003)
        Stern-Volmer constant of site 2 (1/hPa) at the anchors; >= 0.

    Raises
    ------
    ConfigError
        If a value breaks its rule; the message names it.
    """

    t_anchor_degC: tuple[float, float] = (3.0, 39.0)
    tau0_us: tuple[float, float] = (64.0, 57.0)
    f: tuple[float, float] = (0.61, 0.69)
    ksv1_per_hPa: tuple[float, float] = (0.031, 0.047)
    ksv2_per_hPa: tuple[float, float] = (0.003, 0.003)

    def __post_init__(self) -> None:
        for fl in fields(self):
            object.__setattr__(self, fl.name, _pair(fl.name, getattr(self, fl.name)))
        t0, t1 = self.t_anchor_degC
        require(t0 < t1, "t_anchor_degC[0] < t_anchor_degC[1]", t_anchor_degC=self.t_anchor_degC)
        check_params({f.name: getattr(self, f.name) for f in fields(self)}, _FOIL_RULES)

    def at(self, temperature_degC: np.ndarray | float) -> dict[str, np.ndarray]:
        """Parameters at ``temperature_degC`` (degC), vectorised.

        Returns
        -------
        dict of str to ndarray
            ``tau0_us``, ``f``, ``ksv1_per_hPa``, ``ksv2_per_hPa``, each shaped like the input.
        """
        t = np.asarray(temperature_degC, dtype=np.float64)
        t0, t1 = self.t_anchor_degC
        a = (t - t0) / (t1 - t0)
        out = {}
        for name in ("tau0_us", "f", "ksv1_per_hPa", "ksv2_per_hPa"):
            lo, hi = getattr(self, name)
            out[name] = lo + (hi - lo) * a
        return out


def phase_deg(
    po2_hPa: np.ndarray | float,
    temperature_degC: np.ndarray | float,
    frequency_hz: np.ndarray | float,
    foil: FoilModel | None = None,
    *,
    tau0_scale: np.ndarray | float = 1.0,
    ksv1_scale: np.ndarray | float = 1.0,
    ksv2_scale: np.ndarray | float = 1.0,
    f_shift: np.ndarray | float = 0.0,
) -> np.ndarray:
    """Noise-free phase lag of the two-site model, in degrees (vectorised, broadcasting).

    Parameters
    ----------
    po2_hPa : array-like
        Oxygen partial pressure (hPa), >= 0.
    temperature_degC : array-like
        True spot temperature (degC), within ``TEMPERATURE_RANGE_DEGC`` (0-45, inclusive).
    frequency_hz : array-like
        Modulation frequency (Hz), > 0.
    foil : FoilModel, optional
        Temperature laws; default ``FoilModel()`` (the real foil of DOMAIN.md).
    tau0_scale, ksv1_scale, ksv2_scale : array-like, default=1.0
        Multiplicative spot factors on ``tau0``, ``Ksv1`` and ``Ksv2``; > 0.
    f_shift : array-like, default=0.0
        Additive spot shift of ``f``; ``f + f_shift`` must stay in [0, 1].

    Returns
    -------
    ndarray
        Phase (deg), in (0, 90), the broadcast shape of the inputs.

    Raises
    ------
    ConfigError
        If an input is outside its stated range.

    Examples
    --------
    >>> round(float(phase_deg(0.0, 3.0, 5000.0)), 2)
    63.56
    """
    foil = FoilModel() if foil is None else foil
    p = np.asarray(po2_hPa, dtype=np.float64)
    t = np.asarray(temperature_degC, dtype=np.float64)
    nu = np.asarray(frequency_hz, dtype=np.float64)
    lo, hi = TEMPERATURE_RANGE_DEGC
    require(bool(np.all(np.isfinite(p) & (p >= 0))), "po2_hPa >= 0", min_po2_hPa=float(np.nanmin(p)))
    require(bool(np.all((t >= lo) & (t <= hi))), f"{lo} <= temperature_degC <= {hi}",
            min_temperature_degC=float(np.nanmin(t)), max_temperature_degC=float(np.nanmax(t)),
            note=" (validity of the temperature laws)")
    require(bool(np.all(np.isfinite(nu) & (nu > 0))), "frequency_hz > 0", min_frequency_hz=float(np.nanmin(nu)))
    for name, v in (("tau0_scale", tau0_scale), ("ksv1_scale", ksv1_scale), ("ksv2_scale", ksv2_scale)):
        require(bool(np.all(np.asarray(v, dtype=np.float64) > 0)), f"{name} > 0", **{name: v})
    par = foil.at(t)
    f1 = par["f"] + np.asarray(f_shift, dtype=np.float64)
    require(bool(np.all((f1 >= 0) & (f1 <= 1))), "0 <= f + f_shift <= 1",
            min_f_plus_f_shift=float(f1.min()), max_f_plus_f_shift=float(f1.max()))
    tau0_s = par["tau0_us"] * np.asarray(tau0_scale, dtype=np.float64) * 1e-6
    omega = 2.0 * np.pi * nu
    num = np.zeros(np.broadcast_shapes(p.shape, t.shape, nu.shape, f1.shape, tau0_s.shape))
    den = np.zeros_like(num)
    for share, ksv in (
        (f1, par["ksv1_per_hPa"] * np.asarray(ksv1_scale, dtype=np.float64)),
        (1.0 - f1, par["ksv2_per_hPa"] * np.asarray(ksv2_scale, dtype=np.float64)),
    ):
        q = 1.0 + ksv * p
        intensity = share / q
        x = omega * tau0_s / q
        num = num + intensity * x / (1.0 + x * x)
        den = den + intensity / (1.0 + x * x)
    return np.degrees(np.arctan2(num, den))


def phase_column(frequency_hz: int) -> str:
    """Column name of the phase at ``frequency_hz`` (Hz), e.g. ``phase_5000hz_deg``."""
    return f"phase_{int(frequency_hz)}hz_deg"


_DEFAULT_T_LEVELS = tuple(float(v) for v in np.linspace(5.0, 40.0, 9))
_DEFAULT_O2_LEVELS = (0.0, 5.0, 20.0, 50.0, 100.0, 150.0, 212.0, 250.0, 300.0)


#: Most rows a simulated batch may have (about 125 MB of CSV): --spots 100000 wrote 1.1 GB in minutes,
#: a file over the 1 GiB that calib reads whole (calib.limits).
MAX_SIMULATED_ROWS = 2_000_000

_NON_NEGATIVE = [Interval(Real, 0, None)]
_SIMULATION_RULES = {
    "n_spots": [Interval(Integral, 1, None)],
    "replicates": [Interval(Integral, 1, None)],
    "seed": SEED,
    "batch_id": [Satisfies(lambda v: isinstance(v, str) and bool(v.strip()) and not any(c in v for c in ',"\n\r'),
                           "{name} is a non-empty string without comma, quote or newline")],
    "foil": [Satisfies(lambda v: isinstance(v, FoilModel), "{name} is a FoilModel")],
    **{name: _NON_NEGATIVE for name in (
        "temperature_jitter_degC", "tau0_scale_sd", "ksv_scale_sd", "f_shift_sd", "phase_offset_sd_deg",
        "temperature_offset_sd_degC", "phase_noise_deg", "temperature_noise_degC", "reference_rel_error",
        "reference_abs_error_hPa")},
}


@dataclass(frozen=True)
class SimulationConfig:
    """Everything that defines a simulated batch; validated on construction.

    Parameters
    ----------
    n_spots : int, default=12
        Number of spots (``S01``, ``S02``, ...); >= 1.
    replicates : int, default=2
        Readings per condition (same spot, temperature and O2 set-point); >= 1.
    seed : int, default=0
        Seed of every random draw; >= 0. Same seed, same data.
    batch_id : str, default="SIM-PtP-01"
        Written in the ``batch_id`` column; non-empty, no comma, quote or newline.
    frequencies_hz : tuple of int, default=(1000, 2000, 5000, 10000)
        Modulation frequencies (Hz), whole numbers > 0, distinct; one phase column each.
    temperature_levels_degC : tuple of float, default=9 levels evenly from 5 to 40
        Temperature set-points (degC). With the jitter they must stay in 0-45 degC.
    temperature_jitter_degC : float, default=0.3
        Half-width (degC) of the uniform jitter of the true temperature around the set-point; >= 0.
    o2_levels_hPa : tuple of float, default=(0, 5, 20, 50, 100, 150, 212, 250, 300)
        O2 set-points, pO2 (hPa), in [0, 1100], distinct.
    foil : FoilModel, default=FoilModel()
        Temperature laws of the foil.
    tau0_scale_sd : float, default=0.01
        Spot-to-spot sd of the ``tau0`` factor (around 1); >= 0.
    ksv_scale_sd : float, default=0.03
        Spot-to-spot sd of the ``Ksv1`` and ``Ksv2`` factors (around 1, independent); >= 0.
    f_shift_sd : float, default=0.01
        Spot-to-spot sd of the additive shift of ``f``; >= 0.
    phase_offset_sd_deg : float, default=0.2
        Spot-to-spot sd of the instrument phase offset (deg); >= 0.
    temperature_offset_sd_degC : float, default=0.05
        Spot-to-spot sd of the temperature-sensor offset (degC); >= 0.
    phase_noise_deg : float, default=0.005
        Per-reading phase noise sd (deg), independent per frequency; >= 0.
    temperature_noise_degC : float, default=0.02
        Per-reading temperature noise sd (degC); >= 0.
    reference_rel_error : float, default=0.001
        Relative sd of the reference pO2 error (0.001 = 0.1 %); >= 0.
    reference_abs_error_hPa : float, default=0.05
        Absolute sd of the reference pO2 error (hPa); >= 0.

    Raises
    ------
    ConfigError
        Naming the parameter, the rule and the value, e.g.
        ``"n_spots >= 1 must hold, got n_spots=0"``.
    """

    n_spots: int = 12
    replicates: int = 2
    seed: int = 0
    batch_id: str = "SIM-PtP-01"
    frequencies_hz: tuple[int, ...] = (1000, 2000, 5000, 10000)
    temperature_levels_degC: tuple[float, ...] = _DEFAULT_T_LEVELS
    temperature_jitter_degC: float = 0.3
    o2_levels_hPa: tuple[float, ...] = _DEFAULT_O2_LEVELS
    foil: FoilModel = field(default_factory=FoilModel)
    tau0_scale_sd: float = 0.01
    ksv_scale_sd: float = 0.03
    f_shift_sd: float = 0.01
    phase_offset_sd_deg: float = 0.2
    temperature_offset_sd_degC: float = 0.05
    phase_noise_deg: float = 0.005
    temperature_noise_degC: float = 0.02
    reference_rel_error: float = 0.001
    reference_abs_error_hPa: float = 0.05

    def __post_init__(self) -> None:
        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731
        check_params({f.name: getattr(self, f.name) for f in fields(self)}, _SIMULATION_RULES)
        for name in ("n_spots", "replicates", "seed"):
            set_(name, int(getattr(self, name)))

        # sequences
        freqs = self._numbers("frequencies_hz")
        if not all(v > 0 and float(v).is_integer() for v in freqs):
            raise ConfigError(f"frequencies_hz must be whole numbers > 0 (Hz), got frequencies_hz={freqs}")
        set_("frequencies_hz", tuple(int(v) for v in freqs))
        temps = self._numbers("temperature_levels_degC")
        o2 = self._numbers("o2_levels_hPa")
        check_params({"o2_levels_hPa": o2},
                     {"o2_levels_hPa": [SeqOf(Interval(Real, 0, 1100, closed="both"), what="0 <= {name} <= 1100")]})
        set_("temperature_levels_degC", temps)
        set_("o2_levels_hPa", o2)

        # scalars
        for name in (
            "temperature_jitter_degC",
            "tau0_scale_sd",
            "ksv_scale_sd",
            "f_shift_sd",
            "phase_offset_sd_deg",
            "temperature_offset_sd_degC",
            "phase_noise_deg",
            "temperature_noise_degC",
            "reference_rel_error",
            "reference_abs_error_hPa",
        ):
            set_(name, float(getattr(self, name)))  # checked by _SIMULATION_RULES
        lo, hi = TEMPERATURE_RANGE_DEGC
        j = self.temperature_jitter_degC
        require(min(temps) - j >= lo and max(temps) + j <= hi,
                f"{lo} <= temperature_levels_degC -/+ temperature_jitter_degC <= {hi}",
                temperature_levels_degC=temps, temperature_jitter_degC=j,
                note=" (validity of the temperature laws)")
        n_rows = self.n_spots * len(temps) * len(o2) * self.replicates
        require(n_rows <= MAX_SIMULATED_ROWS, f"rows = n_spots x temperature levels x O2 levels x replicates "
                f"<= {MAX_SIMULATED_ROWS:,}", n_spots=self.n_spots, replicates=self.replicates,
                note=f" ({n_rows:,} rows; a batch calib can read whole, under its 1 GiB input limit)")

    def _numbers(self, name: str) -> tuple[float, ...]:
        value = getattr(self, name)
        try:
            out = tuple(float(v) for v in value)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{name} must be a sequence of numbers, got {name}={value!r}") from exc
        if not out:
            raise ConfigError(f"{name} must not be empty, got {name}={value!r}")
        if not all(math.isfinite(v) for v in out):
            raise ConfigError(f"{name} must be finite, got {name}={value!r}")
        if len(set(out)) != len(out):
            raise ConfigError(f"{name} must be distinct, got {name}={value!r}")
        return out

    @property
    def phase_columns(self) -> tuple[str, ...]:
        """The phase column names, in the order of ``frequencies_hz``."""
        return tuple(phase_column(v) for v in self.frequencies_hz)

    @property
    def feature_columns(self) -> tuple[str, ...]:
        """The model inputs: the phase columns, then ``temperature_degC``."""
        return (*self.phase_columns, "temperature_degC")

    @property
    def spot_ids(self) -> tuple[str, ...]:
        """``S01``, ``S02``, ... (zero-padded to at least two digits)."""
        width = max(2, len(str(self.n_spots)))
        return tuple(f"S{i + 1:0{width}d}" for i in range(self.n_spots))


# independent random streams: (seed, stream, spot index)
_SPOT_STREAM = 0
_READING_STREAM = 1


def spot_parameters(config: SimulationConfig) -> pd.DataFrame:
    """The drawn per-spot deviations of a batch.

    Each spot has its own stream seeded by ``(seed, spot index)``, so the first
    spots are the same whatever ``n_spots`` is.

    Parameters
    ----------
    config : SimulationConfig

    Returns
    -------
    pandas.DataFrame
        One row per spot: ``spot_id``, ``tau0_scale``, ``ksv1_scale``, ``ksv2_scale``,
        ``f_shift``, ``phase_offset_deg`` (deg), ``temperature_offset_degC`` (degC).
    """
    rows = []
    for i, sid in enumerate(config.spot_ids):
        rng = np.random.default_rng([config.seed, _SPOT_STREAM, i])
        z = rng.standard_normal(6)
        rows.append(
            {
                "spot_id": sid,
                "tau0_scale": 1.0 + config.tau0_scale_sd * z[0],
                "ksv1_scale": 1.0 + config.ksv_scale_sd * z[1],
                "ksv2_scale": 1.0 + config.ksv_scale_sd * z[2],
                "f_shift": config.f_shift_sd * z[3],
                "phase_offset_deg": config.phase_offset_sd_deg * z[4],
                "temperature_offset_degC": config.temperature_offset_sd_degC * z[5],
            }
        )
    return pd.DataFrame(rows)


def simulate(config: SimulationConfig) -> pd.DataFrame:
    """Simulate the calibration readings of a batch (deterministic for a given seed).

    Parameters
    ----------
    config : SimulationConfig

    Returns
    -------
    pandas.DataFrame
        ``n_spots * len(temperature_levels_degC) * len(o2_levels_hPa) * replicates`` rows,
        ordered by spot, temperature set-point, O2 set-point, replicate, with columns
        ``spot_id`` (str), ``batch_id`` (str), ``temperature_degC`` (degC, 3 decimals),
        ``phase_<nu>hz_deg`` per frequency (deg, 4 decimals), ``o2_hPa`` (reference pO2 set-point,
        hPa, the target) and ``condition_id`` (int, from 0; equal for the replicates of one
        spot / temperature / O2 set-point).

    Examples
    --------
    >>> df = simulate(SimulationConfig(n_spots=2, replicates=1))
    >>> len(df), list(df.columns)[:3]
    (162, ['spot_id', 'batch_id', 'temperature_degC'])
    """
    spots = spot_parameters(config)
    t_levels = np.asarray(config.temperature_levels_degC)
    o2_levels = np.asarray(config.o2_levels_hPa)
    n_t, n_o, n_r = len(t_levels), len(o2_levels), config.replicates
    freqs = np.asarray(config.frequencies_hz, dtype=np.float64)
    frames = []
    for i, sp in enumerate(spots.itertuples(index=False)):
        rng = np.random.default_rng([config.seed, _READING_STREAM, i])
        # per condition (n_t, n_o): true temperature and true pO2
        jitter = rng.uniform(-1.0, 1.0, size=n_t) * config.temperature_jitter_degC
        t_true_level = t_levels + jitter
        t_true = np.repeat(t_true_level[:, None], n_o, axis=1)
        o2_ref = np.broadcast_to(o2_levels[None, :], (n_t, n_o))
        ref_err = (
            o2_ref * config.reference_rel_error * rng.standard_normal((n_t, n_o))
            + config.reference_abs_error_hPa * rng.standard_normal((n_t, n_o))
        )
        o2_true = np.clip(o2_ref + ref_err, 0.0, None)
        # noise-free phase per condition and frequency: (n_t, n_o, n_f)
        theta = phase_deg(
            o2_true[..., None],
            t_true[..., None],
            freqs,
            config.foil,
            tau0_scale=sp.tau0_scale,
            ksv1_scale=sp.ksv1_scale,
            ksv2_scale=sp.ksv2_scale,
            f_shift=sp.f_shift,
        )
        theta = theta + sp.phase_offset_deg
        # readings: (n_t, n_o, n_r, ...)
        phase = theta[:, :, None, :] + config.phase_noise_deg * rng.standard_normal((n_t, n_o, n_r, len(freqs)))
        t_meas = (
            t_true[:, :, None]
            + sp.temperature_offset_degC
            + config.temperature_noise_degC * rng.standard_normal((n_t, n_o, n_r))
        )
        n = n_t * n_o * n_r
        cond = i * n_t * n_o + np.arange(n_t * n_o).repeat(n_r)
        data = {
            "spot_id": np.full(n, sp.spot_id, dtype=object),
            "batch_id": np.full(n, config.batch_id, dtype=object),
            "temperature_degC": np.round(t_meas.reshape(n), _TEMPERATURE_DECIMALS),
        }
        flat_phase = np.round(phase.reshape(n, len(freqs)), _PHASE_DECIMALS)
        for k, col in enumerate(config.phase_columns):
            data[col] = flat_phase[:, k]
        data["o2_hPa"] = np.round(np.repeat(o2_ref.reshape(-1), n_r), _O2_DECIMALS)
        data["condition_id"] = cond.astype(np.int64)
        frames.append(pd.DataFrame(data))
    df = pd.concat(frames, ignore_index=True)
    df["spot_id"] = df["spot_id"].astype(str)
    df["batch_id"] = df["batch_id"].astype(str)
    return df


def _measurement_jacobian(
    config: SimulationConfig, po2: np.ndarray, temp: np.ndarray, rel_step: float = 1e-5
) -> dict[str, np.ndarray]:
    """Central-difference derivatives of the phases (deg) at every (pO2, T) point.

    Returns a dict of arrays of shape (n_points, n_freq): derivative with respect to
    pO2 (deg/hPa), T (deg/degC) and each spot parameter.
    """
    freqs = np.asarray(config.frequencies_hz, dtype=np.float64)
    p = po2[:, None]
    t = temp[:, None]

    def ph(dp=0.0, dt=0.0, **kw):
        return phase_deg(p + dp, t + dt, freqs, config.foil, **kw)

    hp = np.maximum(np.abs(p) * rel_step, 1e-4)
    ht = 1e-4
    lo, hi = TEMPERATURE_RANGE_DEGC
    # one-sided where a central step would leave the valid domain
    p_minus = np.where(p - hp >= 0, hp, 0.0)
    d_p = (ph(dp=hp) - ph(dp=-p_minus)) / (hp + p_minus)
    t_plus = np.where(t + ht <= hi, ht, 0.0)
    t_minus = np.where(t - ht >= lo, ht, 0.0)
    d_t = (ph(dt=t_plus) - ph(dt=-t_minus)) / (t_plus + t_minus)
    out = {"po2": d_p, "temperature": d_t}
    h = 1e-6
    for name in ("tau0_scale", "ksv1_scale", "ksv2_scale"):
        out[name] = (ph(**{name: 1.0 + h}) - ph(**{name: 1.0 - h})) / (2 * h)
    # f + f_shift must stay in [0, 1]: one-sided at the ends
    f = config.foil.at(t)["f"]
    f_plus = np.where(f + h <= 1.0, h, 0.0)
    f_minus = np.where(f - h >= 0.0, h, 0.0)
    out["f_shift"] = (ph(f_shift=f_plus) - ph(f_shift=-f_minus)) / (f_plus + f_minus)
    return out


def noise_floor_table(config: SimulationConfig, *, include_spot_variation: bool = False) -> pd.DataFrame:
    """O2 error (hPa, 1 sd) implied by the input noise at every grid point.

    The phases at all frequencies and the measured temperature are linearised
    numerically (central differences of :func:`phase_deg`) around each (T, pO2)
    set-point of the nominal foil. With ``J`` the derivatives of the measurement
    vector ``(theta_1 .. theta_K, T_meas)`` with respect to ``(pO2, T)`` and ``S``
    its noise covariance, the best (generalised least-squares) inversion of the
    readings has covariance ``(J' S^-1 J)^-1``; its pO2 entry is reported. The
    single-frequency column uses only ``theta_k`` and ``T_meas``.

    Parameters
    ----------
    config : SimulationConfig
        Grid, frequencies, foil and noise sds (``phase_noise_deg``, ``temperature_noise_degC``).
    include_spot_variation : bool, default=False
        Also count the spot-to-spot deviations (tau0, Ksv1, Ksv2, f, phase offset,
        temperature offset) as noise, correlated across frequencies: the floor of a
        model that applies one calibration to an unseen spot without a per-spot check.

    Returns
    -------
    pandas.DataFrame
        One row per grid point: ``temperature_degC``, ``o2_hPa``, ``sd_all_hPa`` (all
        frequencies together) and ``sd_<nu>hz_hPa`` per frequency. Reference errors
        are not included.

    Raises
    ------
    ConfigError
        If ``phase_noise_deg`` or ``temperature_noise_degC`` is 0 (the floor is then 0).
    """
    check_params({n: getattr(config, n) for n in ("phase_noise_deg", "temperature_noise_degC")},
                 dict.fromkeys(("phase_noise_deg", "temperature_noise_degC"),
                               [Satisfies(lambda v: v > 0, "{name} > 0 for a noise floor")]))
    tt, pp = np.meshgrid(config.temperature_levels_degC, config.o2_levels_hPa, indexing="ij")
    temp, po2 = tt.ravel(), pp.ravel()
    jac = _measurement_jacobian(config, po2, temp)
    n_pts, n_f = jac["po2"].shape
    # measurement vector m = (theta_1..theta_K, T_meas); unknowns u = (pO2, T)
    J = np.zeros((n_pts, n_f + 1, 2))
    J[:, :n_f, 0] = jac["po2"]
    J[:, :n_f, 1] = jac["temperature"]
    J[:, n_f, 1] = 1.0
    S = np.zeros((n_pts, n_f + 1, n_f + 1))
    idx = np.arange(n_f)
    S[:, idx, idx] = config.phase_noise_deg**2
    S[:, n_f, n_f] = config.temperature_noise_degC**2
    if include_spot_variation:
        # columns: effect of one sd of each spot parameter on m
        cols = [
            jac["tau0_scale"] * config.tau0_scale_sd,
            jac["ksv1_scale"] * config.ksv_scale_sd,
            jac["ksv2_scale"] * config.ksv_scale_sd,
            jac["f_shift"] * config.f_shift_sd,
            np.full((n_pts, n_f), config.phase_offset_sd_deg),
        ]
        G = np.zeros((n_pts, n_f + 1, len(cols) + 1))
        for k, c in enumerate(cols):
            G[:, :n_f, k] = c
        G[:, n_f, len(cols)] = config.temperature_offset_sd_degC
        S = S + G @ np.swapaxes(G, 1, 2)

    def po2_sd(rows: list[int]) -> np.ndarray:
        Jr = J[:, rows, :]
        Sr = S[:, rows][:, :, rows]
        info = np.swapaxes(Jr, 1, 2) @ np.linalg.solve(Sr, Jr)
        return np.sqrt(np.linalg.inv(info)[:, 0, 0])

    out = {"temperature_degC": temp, "o2_hPa": po2, "sd_all_hPa": po2_sd(list(range(n_f + 1)))}
    for k, nu in enumerate(config.frequencies_hz):
        out[f"sd_{nu}hz_hPa"] = po2_sd([k, n_f])
    return pd.DataFrame(out)


def noise_floor_hPa(config: SimulationConfig, *, include_spot_variation: bool = False) -> float:
    """Median over the grid of the O2 error (hPa, 1 sd) implied by the input noise.

    Uses all frequencies and the temperature together (column ``sd_all_hPa`` of
    :func:`noise_floor_table`). This is the measurement floor: no model of these
    inputs can beat it on average. Reference pO2 errors come on top.

    Parameters
    ----------
    config : SimulationConfig
    include_spot_variation : bool, default=False
        See :func:`noise_floor_table`.

    Returns
    -------
    float
        Median sd of pO2 (hPa) over the (temperature, O2) set-points.

    Raises
    ------
    ConfigError
        If ``phase_noise_deg`` or ``temperature_noise_degC`` is 0.

    Examples
    --------
    >>> round(noise_floor_hPa(SimulationConfig()), 3)
    0.067
    """
    table = noise_floor_table(config, include_spot_variation=include_spot_variation)
    return float(np.median(table["sd_all_hPa"]))


def render_calib_toml(config: SimulationConfig) -> str:
    """The ``calib.toml`` text for a simulated batch: ``[data]``, ``[split]``, ``[validate]``,
    and the training sections (:data:`TRAINING_SECTIONS`)."""
    features = ", ".join(f'"{c}"' for c in config.feature_columns)
    # the split's rule (calib.ingest.split_dataset): 20 % of the spots for test and for dev, at
    # least one each, >= 2 left to train; folds run over the train and dev spots. A batch of
    # fewer spots is split by rows, and a small one gets fewer folds, so that the config written
    # here is one that calib validate and calib calibrate accept.
    n = config.n_spots
    held = max(1, int(round(0.2 * n)))
    by_spot = n - 2 * held >= 2
    group = ('group = "spot_id"\n' if by_spot else
             f'# group = "spot_id"   # {n} spot(s) are too few to split by spot (4 or more): split by rows\n')
    folds = min(5, n - held) if by_spot else 5
    return (
        "# calib configuration for the bundled simulated batch (written by `calib simulate`)\n"
        "[data]\n"
        f"features = [{features}]\n"
        'target = "o2_hPa"\n'
        f"{group}"
        "\n"
        "[split]\n"
        "test_fraction = 0.2\n"
        "dev_fraction = 0.2\n"
        "seed = 0\n"
        'scaling = "standard"\n'
        "\n"
        "[validate]\n"
        f"folds = {folds}\n"
        "tolerance = 1.0        # hPa, for the Error Limited Accuracy\n"
        + TRAINING_SECTIONS
    )


#: The network, its search space and the main job's settings for the bundled batch.
TRAINING_SECTIONS = """
[model]                 # the base network; the sweep varies what [sweep.space] names
hidden_layers = [64, 64]
optimizer = "lbfgs"     # full-batch quasi-Newton: best on small smooth calibration data
epochs = "auto"         # lbfgs: 5000 iterations; adam & co: about 30000 optimizer steps
patience = "auto"       # early stopping on an inner dev part, best weights restored

[sweep]                 # read by calib sweep and calib calibrate alike
strategy = "bayes"      # Optuna TPE
trials = 12             # total trials the study should reach
jobs = 2                # worker processes

[sweep.space]
optimizer = { choices = ["lbfgs", "adam"] }
learning_rate = { low = 3e-4, high = 3e-2 }                      # log scale (adam only)
hidden_layers = { choices = [[32, 32], [64, 64], [64, 64, 64]] }
activation = { choices = ["tanh", "elu"] }
l2 = { choices = [0.0, 1e-6, 1e-5] }
family = { choices = ["mlp", "hybrid", "physics"] }

[calibrate]
name = "sim-ptp-batch"
"""


def _atomic_texts(targets: list[tuple[Path, str]], overwrite: bool) -> None:
    """Write every text to a temp file beside its target, then move them all into place
    (replacing existing files only with ``overwrite``)."""
    from .fsutil import place_file

    temps: list[Path] = []
    try:
        for path, text in targets:
            # open(..., "x") honours the umask (tempfile.mkstemp would make the file 0600)
            tmp = path.parent / f".{path.name}.{secrets.token_hex(8)}.tmp"
            with open(tmp, "x", encoding="utf-8", newline="") as fh:
                temps.append(tmp)
                fh.write(text)
                fh.flush()
                os.fsync(fh.fileno())
        for (path, _), tmp in zip(targets, temps):
            place_file(tmp, path, overwrite)
    finally:
        for tmp in temps:
            if tmp.exists():
                tmp.unlink()


def write_bundle(out_dir: Path, config: SimulationConfig, *, force: bool = False) -> tuple[Path, Path]:
    """Simulate a batch and write ``readings.csv`` and ``calib.toml`` into ``out_dir``.

    Each file is written to a temporary file in ``out_dir`` and moved into place with
    ``os.replace``, so a reader never sees a half-written file; on failure the
    temporary files are removed and existing files are left as they were.

    Parameters
    ----------
    out_dir : Path
        Target folder; created (with parents) if missing.
    config : SimulationConfig
    force : bool, default=False
        Replace an existing ``readings.csv`` / ``calib.toml`` (``--force``); otherwise they
        are refused before anything is written (:func:`calib.fsutil.check_output_path`).

    Returns
    -------
    tuple of Path
        ``(readings_csv, calib_toml)``.

    Raises
    ------
    ConfigError
        If ``out_dir`` exists and is not a folder, lies inside an artifact, or a file to write
        exists (without ``force``) or is a link, device or pipe.
    OSError
        If the files cannot be written.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"out_dir must be a folder, got out_dir={str(out_dir)!r} (a file)")
    from .fsutil import check_output_path

    readings, calib = out_dir / "readings.csv", out_dir / "calib.toml"
    for path in (readings, calib):
        check_output_path(path, force=force)
    out_dir.mkdir(parents=True, exist_ok=True)
    df = simulate(config)
    csv_text = df.to_csv(index=False, lineterminator="\n")
    _atomic_texts([(readings, csv_text), (calib, render_calib_toml(config))], overwrite=force)
    return readings, calib
