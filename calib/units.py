"""Units of sensor readings and O2 targets: names, column suffixes and conversions.

Three jobs, numpy only:

1. **Names.** :data:`UNITS` maps each canonical unit token to its quantity;
   :func:`normalize_unit` turns what people write ("°C", "µmol/L", "% air saturation")
   into a token, and :func:`unit_from_column_name` reads a token (and a modulation
   frequency) from a column name such as ``phase_5khz_deg``.
2. **Feature units.** :func:`to_canonical` brings phase to deg (from rad, or from a
   delay in us when the modulation frequency is known: ``theta_deg = 360 * f * t``),
   temperature to degC and pressure to hPa.
3. **O2 units.** :func:`convert_o2` converts between the O2 units of :data:`O2_UNITS`;
   :func:`o2_conversion_needs` says which of temperature (degC), total pressure (hPa)
   and salinity (psu) a conversion needs.

Physics of the O2 conversions
-----------------------------
*Solubility.* The O2 concentration of water in equilibrium with water-saturated air at
a total pressure of 1 atm (1013.25 hPa) is the "combined fit" of Garcia & Gordon
(1992) to the data of Benson & Krause (1984)::

    ln C = A0 + A1 Ts + A2 Ts^2 + A3 Ts^3 + A4 Ts^4 + A5 Ts^5
           + S (B0 + B1 Ts + B2 Ts^2 + B3 Ts^3) + C0 S^2
    Ts   = ln((298.15 - t) / (273.15 + t))          (t in degC, S in psu)

with one coefficient set for C in umol/kg (:func:`o2_solubility_umol_per_kg`, check
value 274.610 umol/kg at t = 10 degC, S = 35) and one for C in mL/L = cm3/dm3
(:func:`o2_solubility_ml_per_l`, check value 6.315 mL/L). The fits are valid for
-2 <= t <= 40 degC and 0 <= S <= 42 psu. Following Garcia & Gordon,
umol/L = mL/L * 44.6596 (the real-gas molar volume of O2, 22.3916 L/mol), which gives
:func:`o2_solubility_umol_per_l`.

*Water vapour.* The vapour pressure over seawater is Weiss & Price (1980)::

    ln pH2O[atm] = 24.4543 - 67.4509 (100/T) - 4.8489 ln(T/100) - 0.000544 S

with T in K, converted to hPa by 1 atm = 1013.25 hPa (:func:`vapour_pressure_hPa`;
23.37 hPa at 20 degC, 31.66 hPa at 25 degC in fresh water).

*Partial pressure.* Dry air holds a mole fraction 0.20946 of O2, so air-saturated
water at total pressure P (hPa) has (:func:`po2_air_saturated_hPa`)::

    pO2_sat = 0.20946 * (P - pH2O(t, S))           [hPa]

*The units, all expressed through pO2 (hPa):*

- ``hPa``, ``kPa``: pO2 itself (1 kPa = 10 hPa).
- ``percent_airsat`` = 100 * pO2 / pO2_sat(P): needs t, S and P.
- ``percent_O2`` = 100 * pO2 / (P - pH2O(t, S)): the O2 volume fraction of the
  water-vapour-saturated gas phase in equilibrium with the sample at total pressure P,
  in percent of the dry-gas part (air-saturated water reads 20.946 %). Converting
  between ``percent_O2`` and ``percent_airsat`` is the fixed factor 0.20946 and needs
  nothing; converting either to pO2 needs t, S and P.
- ``umol_per_L`` = C_sat(t, S) * pO2 / (0.20946 * (1013.25 - pH2O(t, S))): Henry's law
  scaling of the 1-atm solubility, the convention of Bittig et al. (2018). It needs t
  and S but not P: a concentration fixes pO2 whatever the air pressure.
- ``mg_per_L`` = umol/L * 31.9988e-3 (molar mass of O2, g/mol) and
  ``mL_per_L`` = umol/L / 44.6596: fixed factors, no inputs needed among
  ``umol_per_L``, ``mg_per_L`` and ``mL_per_L``.
- ``umol_per_kg`` = umol/L / (rho / 1000), with rho the seawater density at 1 atm in
  kg/m3 from the UNESCO (1981) one-atmosphere equation of state EOS-80 (Millero &
  Poisson 1981, standard error 3.6e-3 kg/m3, i.e. 4e-6 relative; ITS-90 temperatures
  are converted to IPTS-68 by t68 = 1.00024 t90): needs t and S
  (:func:`seawater_density_kg_per_m3`).

Every conversion is an exact algebraic inverse of its reverse, so round trips are
exact to floating-point rounding.

References
----------
- Garcia, H. E. & Gordon, L. I. (1992). Oxygen solubility in seawater: better fitting
  equations. *Limnology and Oceanography* 37(6), 1307-1312.
- Benson, B. B. & Krause, D. (1984). The concentration and isotopic fractionation of
  oxygen dissolved in freshwater and seawater in equilibrium with the atmosphere.
  *Limnology and Oceanography* 29(3), 620-632.
- Weiss, R. F. & Price, B. A. (1980). Nitrous oxide solubility in water and seawater.
  *Marine Chemistry* 8, 347-359.
- Bittig, H. C. et al. (2018). Oxygen optode sensors: principle, characterization,
  calibration, and application in the ocean. *Frontiers in Marine Science* 4:429.
- UNESCO (1981). Background papers and supporting data on the International Equation
  of State of Seawater 1980. *UNESCO Technical Papers in Marine Science* 38;
  Millero, F. J. & Poisson, A. (1981). *Deep-Sea Research* 28A, 625-629.
"""

from __future__ import annotations

import re
from numbers import Real
from typing import Callable

import numpy as np
from numpy.typing import ArrayLike

from .constraints import Interval, check_param, require
from .errors import UnitError

__all__ = [
    "UNITS",
    "O2_UNITS",
    "FEATURE_UNITS",
    "CONDITION_NAMES",
    "normalize_unit",
    "unit_from_column_name",
    "split_unit_suffix",
    "snake_stem",
    "canonical_unit",
    "to_canonical",
    "convert_o2",
    "o2_conversion_needs",
    "o2_solubility_umol_per_kg",
    "o2_solubility_ml_per_l",
    "o2_solubility_umol_per_l",
    "vapour_pressure_hPa",
    "po2_air_saturated_hPa",
    "seawater_density_kg_per_m3",
]

# --------------------------------------------------------------------------- constants

#: Mole fraction of O2 in dry air.
O2_MOLE_FRACTION_AIR = 0.20946
#: Standard atmosphere, hPa.
STANDARD_ATMOSPHERE_HPA = 1013.25
#: umol of O2 per mL of O2 gas (Garcia & Gordon 1992).
UMOL_PER_ML_O2 = 44.6596
#: Molar mass of O2, g/mol (so mg/L = umol/L * 31.9988e-3).
MOLAR_MASS_O2 = 31.9988

# ------------------------------------------------------------------------ unit registry

#: Canonical unit token -> quantity. "hPa" and "kPa" are listed as pressure; they are
#: also O2 partial-pressure units (see :data:`O2_UNITS`): the column's role decides.
UNITS: dict[str, str] = {
    "deg": "phase",
    "rad": "phase",
    "us": "delay",
    "degC": "temperature",
    "K": "temperature",
    "degF": "temperature",
    "hPa": "pressure",
    "kPa": "pressure",
    "mbar": "pressure",
    "Pa": "pressure",
    "atm": "pressure",
    "percent_airsat": "o2",
    "percent_O2": "o2",
    "umol_per_L": "o2",
    "mg_per_L": "o2",
    "mL_per_L": "o2",
    "umol_per_kg": "o2",
    "psu": "salinity",
    "mV": "voltage",
    "1": "dimensionless",
    "Hz": "frequency",
}

#: How each canonical token is typeset for people (reports, certificates, cards).
DISPLAY: dict[str, str] = {
    "deg": "\u00b0", "rad": "rad", "us": "\u00b5s", "degC": "\u00b0C", "K": "K", "degF": "\u00b0F",
    "percent_airsat": "% air sat.",
    "percent_O2": "% O\u2082", "umol_per_L": "\u00b5mol/L", "mg_per_L": "mg/L", "mL_per_L": "mL/L",
    "umol_per_kg": "\u00b5mol/kg", "psu": "PSU", "1": "",
}


def display_unit(token: str) -> str:
    """A canonical unit token typeset for people: ``umol_per_L`` -> ``µmol/L``, ``degC`` -> ``°C``."""
    return DISPLAY.get(str(token), str(token))


#: Units an O2 target may have (hPa and kPa are pO2 here).
O2_UNITS: tuple[str, ...] = (
    "hPa",
    "kPa",
    "percent_airsat",
    "percent_O2",
    "umol_per_L",
    "mg_per_L",
    "mL_per_L",
    "umol_per_kg",
)

#: Units a feature (input) column may have -> quantity.
FEATURE_UNITS: dict[str, str] = {u: q for u, q in UNITS.items() if q != "o2"}

#: Names of the extra inputs an O2 conversion may need, in this order.
CONDITION_NAMES: tuple[str, ...] = ("temperature_degC", "pressure_hPa", "salinity_psu")

_ALIASES: dict[str, str] = {}


def _add_aliases(token: str, *aliases: str) -> None:
    for text in (token, *aliases):
        _ALIASES[_alias_key(text)] = token


def _alias_key(text: str) -> str:
    # Lower-case, micro sign and Greek mu -> "u", collapse whitespace; the look-alikes of the degree
    # sign that keyboards and spreadsheets type (masculine ordinal "º", ring above "˚") -> "°",
    # and "° C" -> "°c".
    key = text.strip().lower().replace("\u00b5", "u").replace("\u03bc", "u")
    key = re.sub(r"[\u00ba\u02da]", "\u00b0", key)
    return re.sub(r"\s+", " ", re.sub(r"\u00b0\s+(?=[cf]$)", "\u00b0", key))


_add_aliases("deg", "°", "degree", "degrees", "degs")
_add_aliases("rad", "radian", "radians")
_add_aliases("us", "µs", "microsecond", "microseconds", "usec")
_add_aliases("degC", "°C", "℃", "C", "celsius", "deg C", "deg_C", "degrees C", "degrees celsius")
_add_aliases("K", "kelvin")
_add_aliases("degF", "°F", "℉", "fahrenheit", "deg F", "deg_F", "degrees F", "degrees fahrenheit")
_add_aliases("hPa", "hectopascal")
_add_aliases("kPa", "kilopascal")
_add_aliases("mbar", "millibar")
_add_aliases("Pa", "pascal")
_add_aliases("atm", "atmosphere", "atmospheres")
_add_aliases(
    "percent_airsat",
    "%airsat",
    "% airsat",
    "%air sat",
    "% air sat",
    "%air saturation",
    "% air saturation",
    "percent air saturation",
    "air saturation %",
    "%sat",
    "% sat",
)
_add_aliases("percent_O2", "%O2", "% O2", "vol% O2", "vol %O2", "percent O2")
_add_aliases(
    "umol_per_L", "umol/L", "µmol/L", "umol L-1", "umol l^-1", "uM", "mmol/m3", "mmol m-3"
)
_add_aliases("mg_per_L", "mg/L", "mg L-1", "mg l^-1")
_add_aliases("mL_per_L", "mL/L", "mL L-1", "ml l^-1", "cm3/dm3")
_add_aliases("umol_per_kg", "umol/kg", "µmol/kg", "umol kg-1", "umol kg^-1")
_add_aliases("psu", "pss", "pss-78", "practical salinity")
_add_aliases("mV", "millivolt", "millivolts")
_add_aliases("1", "counts", "count", "dimensionless", "a.u.")
_add_aliases("Hz", "hertz")

assert set(_ALIASES.values()) == set(UNITS)


def normalize_unit(text: str) -> str:
    """Return the canonical token of a unit written in any accepted spelling.

    Matching ignores case and surrounding whitespace; "µ" (micro sign or Greek mu) is
    read as "u".

    Parameters
    ----------
    text : str
        A unit as written, e.g. ``"°C"``, ``"degrees"``, ``"µs"``, ``"% air saturation"``,
        ``"µmol/L"`` or a canonical token such as ``"umol_per_L"``.

    Returns
    -------
    str
        A key of :data:`UNITS`.

    Raises
    ------
    UnitError
        If the unit is unknown; the message lists the known units.

    Examples
    --------
    >>> normalize_unit("°C"), normalize_unit("umol/l"), normalize_unit("%O2")
    ('degC', 'umol_per_L', 'percent_O2')
    """
    if not isinstance(text, str):
        raise UnitError(f"unit must be a string, got {text!r}")
    try:
        return _ALIASES[_alias_key(text)]
    except KeyError:
        raise UnitError(
            f"unit {text!r} is unknown; known units: {', '.join(UNITS)}"
        ) from None


# ------------------------------------------------------------------ column-name suffixes

_SUFFIX_TOKENS: tuple[str, ...] = tuple(
    sorted(
        (
            "deg", "rad", "us", "degC", "degF", "K", "hPa", "kPa", "mbar", "Pa", "atm",
            "umol_per_L", "umol_per_kg", "mg_per_L", "mL_per_L",
            "percent_airsat", "percent_O2", "psu", "mV", "Hz",
        ),
        key=len,
        reverse=True,
    )
)
_FREQUENCY_RE = re.compile(r"(?:^|[_\s])(\d+(?:\.\d+)?)\s*(k?)hz(?=[_\s]|$)", re.IGNORECASE)
#: ``<stem> [<unit>]`` or ``<stem> (<unit>)`` at the end of a column name.
_BRACKET_RE = re.compile(r"^(?P<stem>.*?\S)\s*(?:\[(?P<square>[^\[\]]+)\]|\((?P<round>[^()]+)\))\s*$", re.DOTALL)


def _frequency(stem: str) -> float | None:
    match = _FREQUENCY_RE.search(stem)
    if match is None:
        return None
    return float(match.group(1)) * (1000.0 if match.group(2) else 1.0)


def split_unit_suffix(name: str) -> tuple[str, str, float | None, bool] | None:
    """Split a column name into its stem and its unit (and a modulation frequency).

    Two forms are read: an underscore suffix (``phase_5000hz_deg``, ``temperature_degC``;
    the tokens of :func:`unit_from_column_name`) and a unit in brackets or parentheses at
    the end, in any spelling :func:`normalize_unit` knows (``Phase [°]``, ``Temp (°C)``,
    ``O2 [µmol/L]``, ``Phase 5 kHz [deg]``, ``T (degC)``). A bracketed text that is not one
    of the suffix units (``Sensor (S1)``, ``Signal (counts)``) is no unit.

    Parameters
    ----------
    name : str
        Column name.

    Returns
    -------
    tuple of (str, str, float or None, bool), or None
        ``(stem, unit token, frequency in Hz or None, bracketed)``; None when the name
        carries no unit.

    Examples
    --------
    >>> split_unit_suffix("Temp (°C)")
    ('Temp', 'degC', None, True)
    >>> split_unit_suffix("phase_5khz_deg")
    ('phase_5khz', 'deg', 5000.0, False)
    """
    lowered = name.lower()
    for token in _SUFFIX_TOKENS:
        suffix = "_" + token.lower()
        if lowered.endswith(suffix) and len(lowered) > len(suffix):
            stem = name[: -len(suffix)]
            return stem, token, _frequency(stem), False
    m = _BRACKET_RE.match(name)
    if m is None:
        return None
    try:
        token = normalize_unit(m.group("square") or m.group("round"))
    except UnitError:
        return None
    if token not in _SUFFIX_TOKENS:
        return None
    stem = m.group("stem").strip()
    return stem, token, _frequency(stem), True


def snake_stem(stem: str) -> str:
    """A bracketed column's stem as the stem of a normalised name: ``"Phase 5 kHz"`` -> ``"Phase_5kHz"``.

    Examples
    --------
    >>> snake_stem("O2  sat")
    'O2_sat'
    """
    joined = re.sub(r"(\d)\s+(k?hz)\b", r"\1\2", stem.strip(), flags=re.IGNORECASE)
    return re.sub(r"\s+", "_", joined)


def unit_from_column_name(name: str) -> tuple[str, float | None] | None:
    """Read the unit (and a modulation frequency) from a column name.

    The unit is the suffix after the last matching underscore: ``_deg``, ``_rad``,
    ``_us``, ``_degC``, ``_degF``, ``_K``, ``_hPa``, ``_kPa``, ``_mbar``, ``_Pa``, ``_atm``,
    ``_umol_per_L``, ``_umol_per_kg``, ``_mg_per_L``, ``_mL_per_L``,
    ``_percent_airsat``, ``_percent_O2``, ``_psu``, ``_mV``, ``_Hz``. Matching ignores
    case and tries the longest suffix first, so ``temperature_degC`` is degC, not deg.
    Or one of these units in brackets or parentheses at the end, in any spelling
    :func:`normalize_unit` knows: ``Phase [°]``, ``Temp (°C)``, ``O2 [µmol/L]``
    (:func:`split_unit_suffix`). A part ``_<number>hz`` or ``_<number>khz`` (e.g.
    ``phase_5000hz_deg``, ``delay_5khz_us``, ``phase_1.5kHz_deg``, ``Phase 5 kHz [°]``)
    is the modulation frequency.

    Parameters
    ----------
    name : str
        Column name.

    Returns
    -------
    tuple of (str, float or None), or None
        ``(unit token, frequency in Hz or None)``, or None when no suffix matches.

    Examples
    --------
    >>> unit_from_column_name("phase_1.5kHz_deg")
    ('deg', 1500.0)
    >>> unit_from_column_name("temperature_degC")
    ('degC', None)
    >>> unit_from_column_name("O2 [µmol/L]")
    ('umol_per_L', None)
    """
    parsed = split_unit_suffix(name)
    return None if parsed is None else (parsed[1], parsed[2])


# ------------------------------------------------------------------------ feature units

_TO_CANONICAL: dict[str, tuple[str, Callable[[np.ndarray], np.ndarray]]] = {
    "rad": ("deg", np.degrees),
    "K": ("degC", lambda v: v - 273.15),
    "degF": ("degC", lambda v: (v - 32.0) * (5.0 / 9.0)),
    "kPa": ("hPa", lambda v: v * 10.0),
    "mbar": ("hPa", lambda v: v * 1.0),
    "Pa": ("hPa", lambda v: v / 100.0),
    "atm": ("hPa", lambda v: v * STANDARD_ATMOSPHERE_HPA),
}


def _check_frequency(frequency_hz: float | None) -> None:
    check_param("frequency_hz", frequency_hz, [None, Interval(Real, 0, None, closed="neither")], error=UnitError)


def canonical_unit(unit: str, frequency_hz: float | None = None) -> str:
    """Return the unit :func:`to_canonical` converts ``unit`` to.

    Parameters
    ----------
    unit : str
        Any spelling accepted by :func:`normalize_unit`.
    frequency_hz : float, optional
        Modulation frequency in Hz (> 0); with it a delay in us becomes a phase in deg.

    Returns
    -------
    str
        ``"deg"`` for rad (and for us with a frequency), ``"degC"`` for K and degF, ``"hPa"`` for
        kPa, mbar, Pa and atm; the unit itself otherwise.

    Raises
    ------
    UnitError
        If the unit is unknown or ``frequency_hz`` is not > 0.
    """
    token = normalize_unit(unit)
    _check_frequency(frequency_hz)
    if token == "us" and frequency_hz is not None:
        return "deg"
    return _TO_CANONICAL.get(token, (token, None))[0]


def to_canonical(
    values: ArrayLike, unit: str, *, frequency_hz: float | None = None
) -> tuple[np.ndarray, str]:
    """Convert feature values to the canonical unit of their quantity.

    Phase goes to deg (rad -> deg; a delay t in us -> ``theta_deg = 360 * f * t * 1e-6``
    when the modulation frequency f is given, else it stays in us), temperature to degC
    (K - 273.15, (degF - 32) * 5/9), pressure to hPa (kPa * 10, mbar * 1, Pa / 100, atm * 1013.25). Other
    units are returned unchanged.

    Parameters
    ----------
    values : array_like
        Values in ``unit``.
    unit : str
        Any spelling accepted by :func:`normalize_unit`.
    frequency_hz : float, optional
        Modulation frequency in Hz (> 0), used only for a delay in us.

    Returns
    -------
    values : ndarray of float64
        Converted values, same shape.
    unit : str
        The canonical unit token (see :func:`canonical_unit`).

    Raises
    ------
    UnitError
        If the unit is unknown or ``frequency_hz`` is not > 0.

    Examples
    --------
    >>> to_canonical([10.0], "us", frequency_hz=5000.0)
    (array([18.]), 'deg')
    """
    token = normalize_unit(unit)
    _check_frequency(frequency_hz)
    arr = np.asarray(values, dtype=np.float64)
    if token == "us" and frequency_hz is not None:
        return 360.0 * float(frequency_hz) * arr * 1e-6, "deg"
    if token in _TO_CANONICAL:
        target, fn = _TO_CANONICAL[token]
        return np.asarray(fn(arr), dtype=np.float64), target
    return arr.copy(), token


# ------------------------------------------------------------------------- O2 physics

# Garcia & Gordon (1992), Table 1, Benson & Krause (1984) data, "combined fit".
_GG_UMOL_KG = (
    (5.80871, 3.20291, 4.17887, 5.10006, -9.86643e-2, 3.80369),
    (-7.01577e-3, -7.70028e-3, -1.13864e-2, -9.51519e-3),
    -2.75915e-7,
)
_GG_ML_L = (
    (2.00907, 3.22014, 4.05010, 4.94457, -2.56847e-1, 3.88767),
    (-6.24523e-3, -7.37614e-3, -1.03410e-2, -8.17083e-3),
    -4.88682e-7,
)


def _garcia_gordon(
    coeffs: tuple, temperature_degC: ArrayLike, salinity_psu: ArrayLike
) -> np.ndarray:
    a, b, c0 = coeffs
    t = np.asarray(temperature_degC, dtype=np.float64)
    s = np.asarray(salinity_psu, dtype=np.float64)
    ts = np.log((298.15 - t) / (273.15 + t))
    ln_c = a[0] + ts * (a[1] + ts * (a[2] + ts * (a[3] + ts * (a[4] + ts * a[5]))))
    ln_c = ln_c + s * (b[0] + ts * (b[1] + ts * (b[2] + ts * b[3]))) + c0 * s * s
    return np.exp(ln_c)


def o2_solubility_umol_per_kg(temperature_degC: ArrayLike, salinity_psu: ArrayLike) -> np.ndarray:
    """O2 solubility in umol/kg at 1 atm of water-saturated air (Garcia & Gordon 1992).

    Parameters
    ----------
    temperature_degC : array_like
        Temperature in degC (ITS-90); the fit holds for -2..40 degC.
    salinity_psu : array_like
        Practical salinity in psu; the fit holds for 0..42.

    Returns
    -------
    ndarray of float64
        Solubility in umol/kg (274.610 at 10 degC, S = 35).
    """
    return _garcia_gordon(_GG_UMOL_KG, temperature_degC, salinity_psu)


def o2_solubility_ml_per_l(temperature_degC: ArrayLike, salinity_psu: ArrayLike) -> np.ndarray:
    """O2 solubility in mL/L (cm3/dm3) at 1 atm of water-saturated air (Garcia & Gordon 1992).

    Parameters
    ----------
    temperature_degC : array_like
        Temperature in degC; the fit holds for -2..40 degC.
    salinity_psu : array_like
        Practical salinity in psu; the fit holds for 0..42.

    Returns
    -------
    ndarray of float64
        Solubility in mL/L (6.315 at 10 degC, S = 35).
    """
    return _garcia_gordon(_GG_ML_L, temperature_degC, salinity_psu)


def o2_solubility_umol_per_l(temperature_degC: ArrayLike, salinity_psu: ArrayLike) -> np.ndarray:
    """O2 solubility in umol/L at 1 atm of water-saturated air: mL/L form * 44.6596.

    Parameters
    ----------
    temperature_degC : array_like
        Temperature in degC; the fit holds for -2..40 degC.
    salinity_psu : array_like
        Practical salinity in psu; the fit holds for 0..42.

    Returns
    -------
    ndarray of float64
        Solubility in umol/L (about 284 umol/L = 9.09 mg/L in fresh water at 20 degC).
    """
    return o2_solubility_ml_per_l(temperature_degC, salinity_psu) * UMOL_PER_ML_O2


def vapour_pressure_hPa(temperature_degC: ArrayLike, salinity_psu: ArrayLike) -> np.ndarray:
    """Water vapour pressure over seawater in hPa (Weiss & Price 1980).

    Parameters
    ----------
    temperature_degC : array_like
        Temperature in degC.
    salinity_psu : array_like
        Practical salinity in psu.

    Returns
    -------
    ndarray of float64
        Vapour pressure in hPa (atm * 1013.25); 23.37 hPa at 20 degC, S = 0.
    """
    t_k = np.asarray(temperature_degC, dtype=np.float64) + 273.15
    s = np.asarray(salinity_psu, dtype=np.float64)
    ln_p_atm = 24.4543 - 67.4509 * (100.0 / t_k) - 4.8489 * np.log(t_k / 100.0) - 0.000544 * s
    return np.exp(ln_p_atm) * STANDARD_ATMOSPHERE_HPA


def po2_air_saturated_hPa(
    temperature_degC: ArrayLike, salinity_psu: ArrayLike, pressure_hPa: ArrayLike
) -> np.ndarray:
    """pO2 in hPa of air-saturated water: ``0.20946 * (P - pH2O(t, S))``.

    Parameters
    ----------
    temperature_degC : array_like
        Temperature in degC.
    salinity_psu : array_like
        Practical salinity in psu.
    pressure_hPa : array_like
        Total (air) pressure in hPa.

    Returns
    -------
    ndarray of float64
        pO2 in hPa (207.3 hPa at 20 degC, S = 0, P = 1013.25 hPa).
    """
    p = np.asarray(pressure_hPa, dtype=np.float64)
    return O2_MOLE_FRACTION_AIR * (p - vapour_pressure_hPa(temperature_degC, salinity_psu))


def seawater_density_kg_per_m3(temperature_degC: ArrayLike, salinity_psu: ArrayLike) -> np.ndarray:
    """Seawater density at 1 atm in kg/m3 (UNESCO 1981 EOS-80, one-atmosphere form).

    Parameters
    ----------
    temperature_degC : array_like
        Temperature in degC (ITS-90; converted to IPTS-68 as t68 = 1.00024 t90).
    salinity_psu : array_like
        Practical salinity in psu (0..42).

    Returns
    -------
    ndarray of float64
        Density in kg/m3 (standard error of the fit 3.6e-3 kg/m3).
    """
    t = np.asarray(temperature_degC, dtype=np.float64) * 1.00024
    s = np.asarray(salinity_psu, dtype=np.float64)
    rho_w = 999.842594 + t * (
        6.793952e-2 + t * (-9.095290e-3 + t * (1.001685e-4 + t * (-1.120083e-6 + t * 6.536332e-9)))
    )
    a = 0.824493 + t * (-4.0899e-3 + t * (7.6438e-5 + t * (-8.2467e-7 + t * 5.3875e-9)))
    b = -5.72466e-3 + t * (1.0227e-4 - 1.6546e-6 * t)
    return rho_w + a * s + b * s * np.sqrt(s) + 4.8314e-4 * s * s


# ------------------------------------------------------------------------ O2 conversion

# Each O2 unit belongs to a group with a base quantity; within a group units differ by
# a factor (value_in_unit = base * factor); between groups the bases are linked by the
# physics above.
#   "p": pO2 in hPa;  "x": O2 volume fraction of the wet gas, pO2 / (P - pH2O);
#   "c": concentration in umol/L.
_GROUP: dict[str, tuple[str, float]] = {
    "hPa": ("p", 1.0),
    "kPa": ("p", 0.1),
    "percent_O2": ("x", 100.0),
    "percent_airsat": ("x", 100.0 / O2_MOLE_FRACTION_AIR),
    "umol_per_L": ("c", 1.0),
    "mg_per_L": ("c", MOLAR_MASS_O2 * 1e-3),
    "mL_per_L": ("c", 1.0 / UMOL_PER_ML_O2),
    "umol_per_kg": ("c", float("nan")),  # factor 1000 / rho(t, S): needs t and S
}
_T, _P, _S = CONDITION_NAMES
_BRIDGE_NEEDS: dict[frozenset[str], frozenset[str]] = {
    frozenset({"p", "x"}): frozenset({_T, _P, _S}),
    frozenset({"p", "c"}): frozenset({_T, _S}),
    frozenset({"x", "c"}): frozenset({_T, _P, _S}),
}


def _o2_token(unit: str, parameter: str) -> str:
    token = normalize_unit(unit)
    if token not in _GROUP:
        raise UnitError(
            f"{parameter} must be an O2 unit ({', '.join(O2_UNITS)}), got {parameter}={unit!r}"
        )
    return token


def o2_conversion_needs(from_unit: str, to_unit: str) -> tuple[str, ...]:
    """Name the extra inputs that converting O2 from ``from_unit`` to ``to_unit`` needs.

    Parameters
    ----------
    from_unit, to_unit : str
        O2 units (any spelling accepted by :func:`normalize_unit`).

    Returns
    -------
    tuple of str
        A subset of ``("temperature_degC", "pressure_hPa", "salinity_psu")`` in that
        order; empty when the conversion is a fixed factor.

    Raises
    ------
    UnitError
        If either unit is unknown or not an O2 unit.

    Examples
    --------
    >>> o2_conversion_needs("umol_per_L", "hPa")
    ('temperature_degC', 'salinity_psu')
    >>> o2_conversion_needs("percent_airsat", "percent_O2")
    ()
    """
    src = _o2_token(from_unit, "from_unit")
    dst = _o2_token(to_unit, "to_unit")
    if src == dst:
        return ()
    needs: set[str] = set()
    if "umol_per_kg" in (src, dst):
        needs |= {_T, _S}
    g_src, g_dst = _GROUP[src][0], _GROUP[dst][0]
    if g_src != g_dst:
        needs |= _BRIDGE_NEEDS[frozenset({g_src, g_dst})]
    return tuple(name for name in CONDITION_NAMES if name in needs)


def _join(names: tuple[str, ...] | list[str]) -> str:
    names = list(names)
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


def convert_o2(
    values: ArrayLike,
    from_unit: str,
    to_unit: str,
    *,
    temperature_degC: ArrayLike | None = None,
    pressure_hPa: ArrayLike | None = None,
    salinity_psu: ArrayLike | None = None,
) -> np.ndarray:
    """Convert O2 values between units of :data:`O2_UNITS`.

    The formulas are in the module docstring. ``values`` and the conditions broadcast
    against each other; conditions a conversion does not need are ignored.

    Parameters
    ----------
    values : array_like
        O2 values in ``from_unit``.
    from_unit, to_unit : str
        O2 units (any spelling accepted by :func:`normalize_unit`).
    temperature_degC : array_like, optional
        Water temperature in degC, -5 <= t <= 80 (inclusive; a plausibility bound that
        catches K given as degC; the solubility fits hold for -2..40 degC).
    pressure_hPa : array_like, optional
        Total (air) pressure in hPa; must exceed the water vapour pressure.
    salinity_psu : array_like, optional
        Practical salinity in psu, >= 0 (0 for fresh water).

    Returns
    -------
    ndarray of float64
        Values in ``to_unit``, broadcast shape.

    Raises
    ------
    UnitError
        If a unit is unknown or not an O2 unit, a needed condition is missing, or a
        condition breaks its rule above.

    Examples
    --------
    >>> float(convert_o2(100.0, "percent_airsat", "percent_O2"))
    20.946
    """
    src = _o2_token(from_unit, "from_unit")
    dst = _o2_token(to_unit, "to_unit")
    needs = o2_conversion_needs(src, dst)
    given = {_T: temperature_degC, _P: pressure_hPa, _S: salinity_psu}
    missing = [name for name in needs if given[name] is None]
    if missing:
        message = (
            f"converting O2 from {src} to {dst} needs {_join(needs)}; "
            "give them as columns or under [conditions] in the config"
        )
        if len(missing) < len(needs):
            message += f"; missing: {_join(missing)}"
        raise UnitError(message)

    cond = {name: np.asarray(given[name], dtype=np.float64) for name in needs}
    t, p, s = cond.get(_T), cond.get(_P), cond.get(_S)
    if t is not None:
        bad_t = (t < -5.0) | (t > 80.0)
        require(not np.any(bad_t), "-5 <= temperature_degC <= 80", error=UnitError, note=" (degC, not K)",
                temperature_degC=float(t[bad_t].flat[0]) if np.any(bad_t) else None)
    if s is not None:
        require(not np.any(s < 0.0), "salinity_psu >= 0", error=UnitError,
                salinity_psu=float(s[s < 0.0].flat[0]) if np.any(s < 0.0) else None)
    if p is not None:
        ph2o = vapour_pressure_hPa(t, s)
        bad_p = np.broadcast_to(p <= ph2o, np.broadcast_shapes(p.shape, ph2o.shape))
        if np.any(bad_p):
            p_b = float(np.broadcast_to(p, bad_p.shape)[bad_p].flat[0])
            w_b = float(np.broadcast_to(ph2o, bad_p.shape)[bad_p].flat[0])
            require(False, "pressure_hPa > water vapour pressure", error=UnitError, pressure_hPa=p_b,
                    note=f" with vapour pressure {w_b:.2f} hPa (total pressure in hPa)")

    v = np.asarray(values, dtype=np.float64)
    if src == dst:
        return v.copy()

    # from_unit -> base of its group
    g_src, g_dst = _GROUP[src][0], _GROUP[dst][0]
    if src == "umol_per_kg":
        base = v * seawater_density_kg_per_m3(t, s) / 1000.0
    else:
        base = v / _GROUP[src][1]

    # bridge between group bases, through pO2 (hPa)
    if g_src != g_dst:
        if g_src == "x":
            po2 = base * (p - vapour_pressure_hPa(t, s))
        elif g_src == "c":
            po2 = base / _concentration_per_hpa(t, s)
        else:
            po2 = base
        if g_dst == "x":
            base = po2 / (p - vapour_pressure_hPa(t, s))
        elif g_dst == "c":
            base = po2 * _concentration_per_hpa(t, s)
        else:
            base = po2

    # base -> to_unit
    if dst == "umol_per_kg":
        out = base * 1000.0 / seawater_density_kg_per_m3(t, s)
    else:
        out = base * _GROUP[dst][1]
    return np.asarray(out, dtype=np.float64)


def _concentration_per_hpa(t: np.ndarray, s: np.ndarray) -> np.ndarray:
    """umol/L per hPa of pO2: C_sat(t, S) / (0.20946 * (1013.25 - pH2O(t, S)))."""
    return o2_solubility_umol_per_l(t, s) / (
        O2_MOLE_FRACTION_AIR * (STANDARD_ATMOSPHERE_HPA - vapour_pressure_hPa(t, s))
    )
