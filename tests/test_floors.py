"""Tests of calib.floors: the input-noise floor from replicate readings and the spot-to-spot floor."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from calib.floors import estimate_noise_floor, spot_floor
from calib.ingest import Column, Dataset


def test_noise_floor_from_replicates_is_the_input_noise_carried_to_the_target():
    """A phase = 60 - 0.1 O2 - 0.2 T read with noise 0.01 deg and a temperature with noise 0.05 degC:
    the best inversion has sd sqrt((0.01/0.1)^2 + (0.2*0.05/0.1)^2) = 0.141 hPa of O2."""
    rng = np.random.default_rng(0)
    o2 = np.repeat(np.tile(np.arange(0, 300, 10.0), 8), 3)
    t_true = np.repeat(np.repeat(np.linspace(5, 35, 8), 30), 3)
    phase = 60 - 0.1 * o2 - 0.2 * t_true + rng.normal(0, 0.01, len(o2))
    temp = t_true + rng.normal(0, 0.05, len(o2))
    df = pd.DataFrame({"phase_deg": phase, "temperature_degC": temp, "o2_hPa": o2})
    ds = Dataset(df, (Column("phase_deg", "phase_deg", "deg", "deg", "feature"),
                      Column("temperature_degC", "temperature_degC", "degC", "degC", "temperature")),
                 Column("o2_hPa", "o2_hPa", "hPa", "hPa", "o2"))
    sd = math.hypot(0.01 / 0.1, 0.2 * 0.05 / 0.1)
    est = estimate_noise_floor(ds, np.arange(len(df)))
    assert est == pytest.approx(sd * math.sqrt(2 / math.pi), rel=0.1)
    # no replicates -> unknown
    df2 = df.assign(o2_hPa=np.arange(len(df), dtype=float))
    ds2 = Dataset(df2, ds.features, ds.target)
    assert estimate_noise_floor(ds2, np.arange(len(df))) is None


def test_noise_floor_recovers_the_simulators_on_the_bundled_batch():
    from calib.config import load_config
    from calib.ingest import load_dataset
    from calib.simulate import SimulationConfig, noise_floor_hPa

    repo = Path(__file__).resolve().parents[1]
    cfg = load_config(repo / "data" / "calib.toml")
    ds = load_dataset(repo / "data" / "readings.csv", cfg.data)
    est = estimate_noise_floor(ds, np.arange(ds.n_rows))
    true = noise_floor_hPa(SimulationConfig())
    assert true / 1.5 < est < 1.5 * true


def test_spot_floor_is_the_spot_specific_part_of_the_error():
    rng = np.random.default_rng(1)
    g = np.repeat(np.arange(8), 50)
    p = np.tile(np.linspace(0, 300, 50), 8)
    offsets = rng.normal(0, 2.0, 8)
    common = 1.0 + 0.01 * p  # a bias every spot shares: not part of the floor
    y = p + offsets[g] + common
    est = spot_floor(y, p, g)
    assert est == pytest.approx(np.mean(np.abs(offsets - offsets.mean())), rel=0.05)
    assert spot_floor(y, p, np.zeros(len(y))) is None
