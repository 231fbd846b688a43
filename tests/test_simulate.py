"""Tests of calib.simulate: physics known answers, noise model, determinism, bundle files."""

from __future__ import annotations

import math
import tomllib
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import calib.simulate as sim
from calib.errors import ConfigError
from calib.simulate import (
    FoilModel,
    SimulationConfig,
    noise_floor_hPa,
    noise_floor_table,
    phase_deg,
    render_calib_toml,
    simulate,
    spot_parameters,
    write_bundle,
)

DATA_DIR = Path(__file__).resolve().parents[1] / "data"

#: a batch with no randomness at all: every reading is the nominal physics
QUIET = dict(
    temperature_jitter_degC=0.0,
    tau0_scale_sd=0.0,
    ksv_scale_sd=0.0,
    f_shift_sd=0.0,
    phase_offset_sd_deg=0.0,
    temperature_offset_sd_degC=0.0,
    phase_noise_deg=0.0,
    temperature_noise_degC=0.0,
    reference_rel_error=0.0,
    reference_abs_error_hPa=0.0,
)


# ----------------------------------------------------------------------------- physics


@pytest.mark.parametrize(
    "temperature, tau0_us, domain_deg",
    [pytest.param(3.0, 64.0, 63.6, id="3degC"), pytest.param(39.0, 57.0, 60.8, id="39degC")],
)
def test_theta0_at_5khz_matches_domain(temperature, tau0_us, domain_deg):
    theta0 = float(phase_deg(0.0, temperature, 5000.0))
    assert theta0 == pytest.approx(math.degrees(math.atan(2 * math.pi * 5000 * tau0_us * 1e-6)), abs=1e-9)
    assert theta0 == pytest.approx(domain_deg, abs=0.05)


def test_zero_o2_is_single_exponential_whatever_f():
    # at pO2 = 0 both sites decay with tau0, so tan(theta0) = omega * tau0 exactly
    foil = FoilModel(f=(0.3, 0.9))
    nu = np.array([500.0, 1000.0, 5000.0, 20000.0])
    tau0 = foil.at(20.0)["tau0_us"] * 1e-6
    expected = np.degrees(np.arctan(2 * np.pi * nu * tau0))
    np.testing.assert_allclose(phase_deg(0.0, 20.0, nu, foil), expected, rtol=1e-12)


def test_single_site_is_exact_stern_volmer():
    foil = FoilModel(f=(1.0, 1.0), ksv2_per_hPa=(0.0, 0.0))
    p = np.linspace(0.0, 400.0, 41)
    for t in (0.0, 3.0, 25.0, 45.0):
        par = foil.at(t)
        for nu in (1000.0, 5000.0):
            omega_tau0 = 2 * np.pi * nu * par["tau0_us"] * 1e-6
            theta = np.radians(phase_deg(p, t, nu, foil))
            np.testing.assert_allclose(np.tan(theta), omega_tau0 / (1 + par["ksv1_per_hPa"] * p), rtol=1e-12)
            # Stern-Volmer in phase form: tan(theta0)/tan(theta) = 1 + Ksv * pO2
            np.testing.assert_allclose(np.tan(theta[0]) / np.tan(theta), 1 + par["ksv1_per_hPa"] * p, rtol=1e-12)


def test_two_site_matches_complex_sum():
    # independent computation: phase lag = -arg(sum_i I_i / (1 + j*omega*tau_i))
    p = np.array([0.0, 7.0, 60.0, 212.0, 300.0])
    t, nu = 12.0, 2000.0
    par = FoilModel().at(t)
    f_shift, k1s, k2s, ts = 0.02, 1.05, 0.9, 0.98
    f = par["f"] + f_shift
    z = np.zeros_like(p, dtype=complex)
    for share, ksv in ((f, par["ksv1_per_hPa"] * k1s), (1 - f, par["ksv2_per_hPa"] * k2s)):
        q = 1 + ksv * p
        z += (share / q) / (1 + 1j * 2 * np.pi * nu * par["tau0_us"] * ts * 1e-6 / q)
    got = phase_deg(p, t, nu, tau0_scale=ts, ksv1_scale=k1s, ksv2_scale=k2s, f_shift=f_shift)
    np.testing.assert_allclose(got, -np.degrees(np.angle(z)), rtol=1e-12)


def test_temperature_laws_at_anchors_and_extrapolated():
    foil = FoilModel()
    par = foil.at(np.array([3.0, 39.0, 0.0, 45.0]))
    np.testing.assert_allclose(par["tau0_us"], [64.0, 57.0, 64 + 7 / 12, 64 - 7 * 42 / 36])
    np.testing.assert_allclose(par["f"], [0.61, 0.69, 0.61 - 0.08 / 12, 0.61 + 0.08 * 42 / 36])
    np.testing.assert_allclose(par["ksv1_per_hPa"], [0.031, 0.047, 0.031 - 0.016 / 12, 0.031 + 0.016 * 42 / 36])
    np.testing.assert_allclose(par["ksv2_per_hPa"], 0.003)


def test_phase_falls_with_o2_and_stays_in_0_90():
    p = np.linspace(0.0, 300.0, 301)[:, None, None]
    t = np.linspace(0.0, 45.0, 10)[None, :, None]
    nu = np.array([1000.0, 2000.0, 5000.0, 10000.0])[None, None, :]
    theta = phase_deg(p, t, nu)
    assert theta.shape == (301, 10, 4)
    assert np.all(np.diff(theta, axis=0) < 0)
    assert np.all((theta > 0) & (theta < 90))


def test_frequencies_give_different_phases():
    theta = phase_deg(np.array([0.0, 50.0, 212.0])[:, None], 20.0, np.array([1000.0, 2000.0, 5000.0, 10000.0]))
    # at every pO2 the phase rises with frequency, by at least 5 deg per step
    assert np.all(np.diff(theta, axis=1) > 5.0)
    # the frequencies do not carry the same information: the shapes differ
    rel = (theta[0] - theta) / theta[0]
    assert np.ptp(rel[2]) > 0.05


@pytest.mark.parametrize(
    "kwargs, match",
    [
        pytest.param(dict(po2_hPa=-1.0), r"po2_hPa >= 0 must hold", id="negative-o2"),
        pytest.param(dict(temperature_degC=46.0), r"0.0 <= temperature_degC <= 45.0 must hold", id="too-warm"),
        pytest.param(dict(temperature_degC=-0.5), r"0.0 <= temperature_degC <= 45.0 must hold", id="too-cold"),
        pytest.param(dict(frequency_hz=0.0), r"frequency_hz > 0 must hold", id="zero-frequency"),
        pytest.param(dict(tau0_scale=0.0), r"tau0_scale > 0 must hold", id="tau0-scale"),
        pytest.param(dict(f_shift=0.5), r"0 <= f \+ f_shift <= 1 must hold", id="f-shift"),
    ],
)
def test_phase_deg_rejects_out_of_range(kwargs, match):
    args = dict(po2_hPa=10.0, temperature_degC=20.0, frequency_hz=5000.0)
    extra = {k: kwargs.pop(k) for k in list(kwargs) if k not in args}
    args.update(kwargs)
    with pytest.raises(ConfigError, match=match):
        phase_deg(**args, **extra)


# ----------------------------------------------------------------------------- simulate


def test_default_design_shape_and_columns():
    cfg = SimulationConfig()
    df = simulate(cfg)
    assert list(df.columns) == [
        "spot_id",
        "batch_id",
        "temperature_degC",
        "phase_1000hz_deg",
        "phase_2000hz_deg",
        "phase_5000hz_deg",
        "phase_10000hz_deg",
        "o2_hPa",
        "condition_id",
    ]
    assert len(df) == 12 * 9 * 9 * 2
    assert sorted(df["spot_id"].unique()) == [f"S{i:02d}" for i in range(1, 13)]
    assert df["condition_id"].nunique() == 12 * 9 * 9
    assert df.groupby("condition_id").size().eq(2).all()
    assert {0.0, 212.0, 300.0} <= set(df["o2_hPa"])
    assert df["temperature_degC"].between(4.5, 40.5).all()
    assert not df.isna().any().any()


def test_deterministic_by_seed():
    cfg = SimulationConfig(n_spots=3)
    pd.testing.assert_frame_equal(simulate(cfg), simulate(SimulationConfig(n_spots=3)))
    other = simulate(SimulationConfig(n_spots=3, seed=1))
    assert not np.allclose(other["phase_5000hz_deg"], simulate(cfg)["phase_5000hz_deg"])


def test_spots_do_not_depend_on_batch_size():
    small = simulate(SimulationConfig(n_spots=2))
    large = simulate(SimulationConfig(n_spots=5))
    pd.testing.assert_frame_equal(small, large.iloc[: len(small)].reset_index(drop=True))


def test_quiet_batch_is_the_nominal_physics():
    cfg = SimulationConfig(n_spots=2, replicates=1, **QUIET)
    df = simulate(cfg)
    for nu, col in zip(cfg.frequencies_hz, cfg.phase_columns):
        expected = phase_deg(df["o2_hPa"].to_numpy(), df["temperature_degC"].to_numpy(), nu)
        np.testing.assert_allclose(df[col], expected, atol=0.5e-4 + 1e-12)
    assert set(df["temperature_degC"].round(6)) == {round(t, 3) for t in cfg.temperature_levels_degC}


def test_replicates_differ_by_the_stated_noise():
    cfg = SimulationConfig()
    df = simulate(cfg)
    g = df.groupby("condition_id")
    first, second = g.nth(0).set_index("condition_id"), g.nth(1).set_index("condition_id")
    assert (first["o2_hPa"] == second["o2_hPa"]).all()
    assert (first["spot_id"] == second["spot_id"]).all()
    n = len(first)
    rel_tol = 4 / math.sqrt(2 * (n - 1))  # 4 standard errors of a sample sd
    for col in cfg.phase_columns:
        sd = float((first[col] - second[col]).std())
        assert sd == pytest.approx(math.sqrt(2) * 0.005, rel=rel_tol), col
    sd_t = float((first["temperature_degC"] - second["temperature_degC"]).std())
    assert sd_t == pytest.approx(math.sqrt(2) * 0.02, rel=rel_tol)


def test_phase_offset_is_per_spot_and_shared_by_frequencies():
    cfg = SimulationConfig(n_spots=6, replicates=1, **{**QUIET, "phase_offset_sd_deg": 0.2})
    df = simulate(cfg)
    offsets = spot_parameters(cfg).set_index("spot_id")["phase_offset_deg"]
    for nu, col in zip(cfg.frequencies_hz, cfg.phase_columns):
        resid = df[col] - phase_deg(df["o2_hPa"].to_numpy(), df["temperature_degC"].to_numpy(), nu)
        by_spot = resid.groupby(df["spot_id"])
        assert by_spot.std().max() < 1e-4
        np.testing.assert_allclose(by_spot.mean(), offsets.loc[by_spot.mean().index], atol=1e-4)


def test_spot_variation_dominates_noise():
    cfg = SimulationConfig()
    df = simulate(cfg)
    resid = df["phase_5000hz_deg"] - phase_deg(0.0, df["temperature_degC"].clip(0, 45).to_numpy(), 5000.0)
    zero = df["o2_hPa"] == 0
    per_spot = resid[zero].groupby(df.loc[zero, "spot_id"]).mean()
    # spots differ by tenths of a degree (phase offset sd 0.2 deg, tau0 sd 1 %); noise is 0.005 deg
    assert per_spot.std() > 0.1


def test_spot_parameter_spread_matches_config():
    cfg = SimulationConfig(n_spots=400)
    sp = spot_parameters(cfg)
    assert list(sp["spot_id"][:2]) == ["S001", "S002"]
    expected = {
        "tau0_scale": (1.0, 0.01),
        "ksv1_scale": (1.0, 0.03),
        "ksv2_scale": (1.0, 0.03),
        "f_shift": (0.0, 0.01),
        "phase_offset_deg": (0.0, 0.2),
        "temperature_offset_degC": (0.0, 0.05),
    }
    for col, (mean, sd) in expected.items():
        assert sp[col].std() == pytest.approx(sd, rel=0.15), col
        assert abs(sp[col].mean() - mean) < 4 * sd / math.sqrt(400), col


# ----------------------------------------------------------------------------- config


@pytest.mark.parametrize(
    "kwargs, match",
    [
        pytest.param(dict(n_spots=0), r"n_spots >= 1 must hold, got n_spots=0", id="n_spots"),
        pytest.param(dict(n_spots=2.5), r"n_spots >= 1 must hold, got n_spots=2.5 \(not an integer\)", id="n_spots-int"),
        pytest.param(dict(replicates=0), r"replicates >= 1 must hold, got replicates=0", id="replicates"),
        pytest.param(dict(n_spots=100_000), r"rows = n_spots x temperature levels x O2 levels x replicates <= 2,000,000 "
                     r"must hold, got n_spots=100000, replicates=2 \(16,200,000 rows", id="too-many-rows"),  # wrote 1.1 GB
        pytest.param(dict(replicates=10**9), r"<= 2,000,000 must hold, got n_spots=12, replicates=1000000000",
                     id="too-many-replicates"),
        pytest.param(dict(seed=-1), r"0 <= seed < 2147483648 must hold, got seed=-1", id="seed"),
        pytest.param(dict(batch_id=""), r"batch_id is a non-empty string without comma, quote or newline must hold", id="batch_id-empty"),
        pytest.param(dict(batch_id="a,b"), r"without comma.*got batch_id='a,b'", id="batch_id-comma"),
        pytest.param(dict(frequencies_hz=()), r"frequencies_hz must not be empty", id="freq-empty"),
        pytest.param(dict(frequencies_hz=(1000, -5)), r"whole numbers > 0.*got frequencies_hz", id="freq-neg"),
        pytest.param(dict(frequencies_hz=(1000.5,)), r"whole numbers > 0", id="freq-fraction"),
        pytest.param(dict(frequencies_hz=(1000, 1000)), r"frequencies_hz must be distinct", id="freq-dup"),
        pytest.param(dict(frequencies_hz="abc"), r"frequencies_hz must be a sequence of numbers", id="freq-type"),
        pytest.param(dict(o2_levels_hPa=(0, -1)), r"0 <= o2_levels_hPa <= 1100 must hold", id="o2-neg"),
        pytest.param(dict(o2_levels_hPa=(0, float("nan"))), r"o2_levels_hPa must be finite", id="o2-nan"),
        pytest.param(
            dict(temperature_levels_degC=(5, 44.9)),
            r"temperature_levels_degC -/\+ temperature_jitter_degC <= 45.0 must hold",
            id="temp-range",
        ),
        pytest.param(dict(temperature_jitter_degC=-0.1), r"temperature_jitter_degC >= 0 must hold", id="jitter"),
        pytest.param(dict(phase_noise_deg=-0.01), r"phase_noise_deg >= 0 must hold", id="phase-noise"),
        pytest.param(dict(ksv_scale_sd=float("inf")), r"ksv_scale_sd >= 0 must hold", id="ksv-sd-inf"),
        pytest.param(dict(reference_rel_error="x"), r"reference_rel_error >= 0 must hold, got reference_rel_error=\'x\' \(not a number\)", id="ref-type"),
        pytest.param(dict(foil="foil"), r"foil is a FoilModel must hold, got foil='foil'", id="foil-type"),
    ],
)
def test_config_validation(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        SimulationConfig(**kwargs)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        pytest.param(dict(t_anchor_degC=(39, 3)), r"t_anchor_degC\[0\] < t_anchor_degC\[1\] must hold", id="anchors"),
        pytest.param(dict(tau0_us=(64, 0)), r"tau0_us > 0 must hold, got tau0_us=\(64.0, 0.0\)", id="tau0"),
        pytest.param(dict(f=(0.0, 0.5)), r"0 < f <= 1 must hold", id="f"),
        pytest.param(dict(ksv1_per_hPa=(-0.01, 0.04)), r"ksv1_per_hPa >= 0 must hold", id="ksv1"),
        pytest.param(dict(ksv2_per_hPa=(0.003,)), r"ksv2_per_hPa must be a pair of numbers", id="ksv2-pair"),
    ],
)
def test_foil_validation(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        FoilModel(**kwargs)


def test_config_normalises_sequences():
    cfg = SimulationConfig(frequencies_hz=[2000.0, 5000], o2_levels_hPa=[0, 212])
    assert cfg.frequencies_hz == (2000, 5000)
    assert cfg.o2_levels_hPa == (0.0, 212.0)
    assert cfg.feature_columns == ("phase_2000hz_deg", "phase_5000hz_deg", "temperature_degC")
    assert hash(cfg) == hash(SimulationConfig(frequencies_hz=(2000, 5000), o2_levels_hPa=(0.0, 212.0)))


# ----------------------------------------------------------------------------- noise floor


def test_noise_floor_single_site_known_answer():
    # T-independent single-site foil: sd(pO2) = sigma_theta / |dtheta/dpO2| exactly (to first order)
    foil = FoilModel(tau0_us=(60.0, 60.0), f=(1.0, 1.0), ksv1_per_hPa=(0.04, 0.04), ksv2_per_hPa=(0.0, 0.0))
    cfg = SimulationConfig(foil=foil, frequencies_hz=(5000,), o2_levels_hPa=(0.0, 50.0, 212.0))
    table = noise_floor_table(cfg)
    a, k, p = 2 * np.pi * 5000 * 60e-6, 0.04, table["o2_hPa"].to_numpy()
    u = a / (1 + k * p)
    dtheta = np.degrees(a * k / (1 + k * p) ** 2 / (1 + u**2))  # deg/hPa
    np.testing.assert_allclose(table["sd_all_hPa"], 0.005 / dtheta, rtol=1e-4)
    np.testing.assert_allclose(table["sd_5000hz_hPa"], table["sd_all_hPa"], rtol=1e-12)


def test_noise_floor_of_default_batch():
    cfg = SimulationConfig()
    table = noise_floor_table(cfg)
    assert len(table) == 81
    single = table[[f"sd_{nu}hz_hPa" for nu in cfg.frequencies_hz]].to_numpy()
    # using every frequency can only help
    assert np.all(table["sd_all_hPa"].to_numpy()[:, None] <= single * (1 + 1e-9))
    floor = noise_floor_hPa(cfg)
    assert floor == pytest.approx(0.067, abs=0.002)  # the figure documented in data/README.md
    assert noise_floor_hPa(SimulationConfig(phase_noise_deg=0.01)) > 1.5 * floor
    assert noise_floor_hPa(cfg, include_spot_variation=True) > 10 * floor


def test_noise_floor_needs_noise():
    with pytest.raises(ConfigError, match=r"phase_noise_deg > 0 for a noise floor must hold"):
        noise_floor_hPa(SimulationConfig(phase_noise_deg=0.0))


# ----------------------------------------------------------------------------- bundle


@pytest.mark.parametrize("n_spots", [1, 2, 3, 4, 5, 6, 12])
def test_the_config_of_a_small_batch_splits_and_folds(tmp_path, n_spots):
    """calib simulate --spots 1..5 wrote group = "spot_id" and folds = 5, which its own data cannot
    hold ("too few groups to split", "folds <= number of groups"): the config fits the batch."""
    from calib.config import load_config
    from calib.ingest import prepare
    from calib.validate import make_folds

    readings, calib_toml = write_bundle(tmp_path, SimulationConfig(n_spots=n_spots, replicates=1))
    cfg = load_config(calib_toml)
    ds, splits = prepare(readings, cfg)
    rows = splits.train_dev
    groups = ds.groups()
    assert len(make_folds(len(rows), cfg.validate.folds, None if groups is None else groups[rows])) == cfg.validate.folds
    assert (cfg.data.group == "spot_id") == (n_spots >= 4)
    assert cfg.validate.folds == (5 if n_spots >= 6 or n_spots < 4 else n_spots - 1)

def test_write_bundle_round_trip(tmp_path):
    cfg = SimulationConfig(n_spots=6)
    out = tmp_path / "new" / "data"
    readings, calib_toml = write_bundle(out, cfg)
    assert (readings, calib_toml) == (out / "readings.csv", out / "calib.toml")
    back = pd.read_csv(readings)
    expected = simulate(cfg)
    assert list(back.columns) == list(expected.columns)
    for col in expected.columns:
        if expected[col].dtype.kind in "fi":
            np.testing.assert_allclose(back[col], expected[col], rtol=0, atol=1e-12)
        else:
            assert back[col].astype(str).tolist() == expected[col].tolist()
    conf = tomllib.loads(calib_toml.read_text(encoding="utf-8"))
    assert set(conf) == {"data", "split", "validate", "model", "sweep", "calibrate"}
    from calib.config import config_from_dict

    config_from_dict(conf)  # the whole file is a valid calib config
    assert conf["data"] == {
        "features": ["phase_1000hz_deg", "phase_2000hz_deg", "phase_5000hz_deg", "phase_10000hz_deg", "temperature_degC"],
        "target": "o2_hPa",
        "group": "spot_id",
    }
    assert conf["split"] == {"test_fraction": 0.2, "dev_fraction": 0.2, "seed": 0, "scaling": "standard"}
    assert conf["validate"] == {"folds": 5, "tolerance": 1.0}
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == []
    # permissions follow the umask like any other new file (not 0600 from a temp file)
    plain = tmp_path / "plain.txt"
    plain.write_text("x")
    assert readings.stat().st_mode == calib_toml.stat().st_mode == plain.stat().st_mode


def test_write_bundle_is_atomic(tmp_path, monkeypatch):
    (tmp_path / "readings.csv").write_text("old readings\n")
    (tmp_path / "calib.toml").write_text("old toml\n")

    def broken_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(sim.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk full"):
        write_bundle(tmp_path, SimulationConfig(n_spots=1), force=True)
    monkeypatch.undo()
    assert (tmp_path / "readings.csv").read_text() == "old readings\n"
    assert (tmp_path / "calib.toml").read_text() == "old toml\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["calib.toml", "readings.csv"]


def test_write_bundle_rejects_a_file_as_folder(tmp_path):
    target = tmp_path / "data"
    target.write_text("")
    with pytest.raises(ConfigError, match=r"out_dir must be a folder"):
        write_bundle(target, SimulationConfig(n_spots=1))


def test_bundled_data_matches_generator():
    readings = DATA_DIR / "readings.csv"
    assert readings.is_file(), f"{readings} is missing: regenerate with write_bundle(Path('data'), SimulationConfig(), force=True)"
    assert readings.stat().st_size < 1_000_000
    back = pd.read_csv(readings)
    expected = simulate(SimulationConfig())
    assert list(back.columns) == list(expected.columns)
    for col in expected.columns:
        if expected[col].dtype.kind in "fi":
            np.testing.assert_allclose(back[col], expected[col], rtol=0, atol=1e-9)
        else:
            assert back[col].astype(str).tolist() == expected[col].tolist()
    assert (DATA_DIR / "calib.toml").read_text(encoding="utf-8") == render_calib_toml(SimulationConfig())
