"""Coefficient sheets: a fitted classical form in the instrument vendor's own notation.

:class:`calib.physics.PhysicsModel` parameters (``calibration.json`` ``physics`` or
``physics_fit.params``) -> :class:`CoefficientSheet` -> the rows a technician types into the
optode or the CTD configuration (``coefficients.csv`` in the artifact, a table in the card,
the report and the certificate).

Forms
-----
Aanderaa SVU (optodes 4330/4831/4835; property ``SVUFoilCoef``, C0..C6), phase ``P`` in deg,
temperature ``T`` in degC::

    Ksv = C0 + C1*T + C2*T^2;   P0 = C3 + C4*T;   Pc = C5 + C6*P
    O2  = (P0 / Pc - 1) / Ksv

Sea-Bird SBE63 (application note 64; A0..A2, B0, B1, C0..C2, E), phase delay in us::

    V   = phase delay / 39.457071
    Ksv = C0 + C1*T + C2*T^2
    O2  = ((A0 + A1*T + A2*V^2) / (B0 + B1*V) - 1) / Ksv        (x salinity and pressure factors)

The bench calibration is at salinity 0 and no pressure; Sea-Bird's pressure coefficient ``E`` is
not fitted and is given as its nominal 0.011. The forms are invariant under scaling C3..C6
(A0..A2, B0, B1) together; calib fixes C6 = 1 (B1 = 1): the instrument computes the same O2.
The O2 unit is the target's: a sheet fitted in umol/L gives umol/L (the Aanderaa default); in
mL/L (the SBE63 default). ``two_site`` and ``poly`` have no vendor form: their sheet lists
calib's parameters in :mod:`calib.physics` notation.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np

from .errors import ConfigError

__all__ = ["CoefficientSheet", "coefficient_sheet", "vendor_predict", "sheet_csv", "SBE63_E"]

#: Sea-Bird's nominal pressure-correction coefficient (not part of a bench calibration).
SBE63_E = 0.011
_SBE63_US_PER_VOLT = 39.457071

_FORMULAS = {
    "svu": "Ksv = C0 + C1*T + C2*T^2; P0 = C3 + C4*T; Pc = C5 + C6*P; O2 = (P0/Pc - 1)/Ksv  (P phase in deg, T in degC)",
    "sbe63": ("V = delay/39.457071; Ksv = C0 + C1*T + C2*T^2; O2 = ((A0 + A1*T + A2*V^2)/(B0 + B1*V) - 1)/Ksv "
              "(delay in us, T in degC; salinity 0, pressure 0)"),
    "two_site": ("tan(P)/tan(theta0(T)) = f(T)/(1 + K1(T)*O2) + (1 - f(T))/(1 + K2(T)*O2); theta0, f, K2 linear "
                 "and K1 quadratic in the scaled temperature (calib.physics)"),
    "poly": "polynomial ridge regression on standardised inputs (calib.physics)",
}


@dataclass(frozen=True)
class CoefficientSheet:
    """One classical form's coefficients, as the vendor names them.

    Attributes
    ----------
    kind : str
        ``svu``, ``sbe63``, ``two_site`` or ``poly``.
    vendor : str
        ``Aanderaa (SVUFoilCoef)``, ``Sea-Bird SBE63`` or ``calib`` (no vendor form).
    formula : str
    unit : str
        Unit of the O2 the coefficients give.
    rows : tuple of (str, float)
        Coefficient name and value, in the vendor's order.
    inputs : tuple of str
        The reading columns the form uses (phase or delay, then temperature).
    """

    kind: str
    vendor: str
    formula: str
    unit: str
    rows: tuple[tuple[str, float], ...]
    inputs: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "vendor": self.vendor, "formula": self.formula, "unit": self.unit,
                "coefficients": {k: v for k, v in self.rows}, "inputs": list(self.inputs)}

    def value(self, name: str) -> float:
        return dict(self.rows)[name]


def coefficient_sheet(physics: Mapping[str, Any]) -> CoefficientSheet:
    """The sheet of a fitted physics model (:meth:`calib.physics.PhysicsModel.to_dict` form).

    Raises
    ------
    ConfigError
        ``physics`` is not a fitted physics model's dict.
    """
    if not isinstance(physics, Mapping) or not isinstance(physics.get("params"), Mapping):
        raise ConfigError("coefficient_sheet needs a fitted physics model (calibration.json 'physics')")
    kind = str(physics.get("kind"))
    p = physics["params"]
    unit = str(physics.get("target_unit", ""))
    names = tuple(physics.get("feature_names") or ())
    cols = tuple(int(c) for c in physics.get("columns") or ())
    inputs = tuple(names[c] for c in cols if c < len(names)) if kind != "poly" else names
    try:
        if kind == "svu":
            rows = tuple((f"C{i}", float(p[f"c{i}"])) for i in range(7))
            return CoefficientSheet(kind, "Aanderaa (SVUFoilCoef)", _FORMULAS[kind], unit, rows, inputs)
        if kind == "sbe63":
            rows = tuple((k.upper(), float(p[k])) for k in ("a0", "a1", "a2", "b0", "b1", "c0", "c1", "c2"))
            return CoefficientSheet(kind, "Sea-Bird SBE63", _FORMULAS[kind], unit, rows + (("E", SBE63_E),), inputs)
        if kind == "two_site":
            rows = tuple((k, float(v)) for k, v in p.items() if isinstance(v, (int, float)))
            return CoefficientSheet(kind, "calib (no vendor form)", _FORMULAS[kind], unit, rows, inputs)
        if kind == "poly":
            coef = [float(v) for v in p.get("coef", [])]
            rows = (("degree", float(p.get("degree", 0))), ("intercept", float(p.get("intercept", 0.0))),
                    *((f"coef_{i}", v) for i, v in enumerate(coef)))
            return CoefficientSheet(kind, "calib (no vendor form)", _FORMULAS[kind], unit, rows, inputs)
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"physics model of kind {kind!r} lacks a coefficient ({exc})") from None
    raise ConfigError(f"no coefficient sheet for physics kind {kind!r}")


def vendor_predict(sheet: CoefficientSheet, phase: np.ndarray, temperature: np.ndarray) -> np.ndarray:
    """O2 from the vendor's formula and the sheet's coefficients, written independently of
    :mod:`calib.physics` (what the instrument computes; the round-trip check).

    Parameters
    ----------
    phase : ndarray
        Phase in deg (SVU) or phase delay in us (SBE63).
    temperature : ndarray
        degC.
    """
    c = dict(sheet.rows)
    P = np.asarray(phase, dtype=np.float64)
    T = np.asarray(temperature, dtype=np.float64)
    if sheet.kind == "svu":
        ksv = c["C0"] + c["C1"] * T + c["C2"] * T**2
        p0 = c["C3"] + c["C4"] * T
        pc = c["C5"] + c["C6"] * P
        return (p0 / pc - 1.0) / ksv
    if sheet.kind == "sbe63":
        V = P / _SBE63_US_PER_VOLT
        ksv = c["C0"] + c["C1"] * T + c["C2"] * T**2
        return ((c["A0"] + c["A1"] * T + c["A2"] * V**2) / (c["B0"] + c["B1"] * V) - 1.0) / ksv
    raise ConfigError(f"{sheet.vendor}: no vendor formula for physics kind {sheet.kind!r}")


def sheet_csv(sheet: CoefficientSheet) -> str:
    """``coefficients.csv``: ``coefficient,value`` rows (full precision) after comment lines
    naming the form, the formula, the inputs and the unit."""
    lines = [f"# {sheet.vendor}: {sheet.kind}", f"# {sheet.formula}",
             f"# inputs: {', '.join(sheet.inputs)}; O2 in {sheet.unit}", "coefficient,value"]
    lines += [f"{k},{v:.10g}" for k, v in sheet.rows]
    return "\n".join(lines) + "\n"
