"""calib.coefficients: vendor coefficient sheets, and the whole-certificate calibration behind them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import raw_data_dir

from calib.cli import cli
from calib.coefficients import coefficient_sheet, sheet_csv, vendor_predict
from calib.errors import ConfigError
from calib.runtime import load_model

CERTS = {
    "svu": ("aadi4330_1463_b1206E.csv", '["phase_deg", "temperature_degC"]', "o2_umol_per_L", "phase_deg"),
    "sbe63": ("sbe63_0800_factory.csv", '["phase_delay_us", "temperature_degC"]', "o2_mL_per_L", "phase_delay_us"),
}


def _whole_certificate(tmp_path: Path, kind: str) -> tuple[Path, pd.DataFrame, dict]:
    file, feats, target, _ = CERTS[kind]
    cert = raw_data_dir() / "aanderaa-optode-calcerts" / file
    (tmp_path / "calib.toml").write_text(
        f'[data]\nfeatures = {feats}\ntarget = "{target}"\n\n[split]\ntest_fraction = 0\n\n'
        f'[model]\nfamily = "physics"\nphysics_kind = "{kind}"\n\n[sweep]\nstrategy = "grid"\ntrials = 1\n\n'
        '[sweep.space]\nfamily = { choices = ["physics"] }\n')
    res = CliRunner().invoke(cli, ["-q", "calibrate", str(cert), "--config", str(tmp_path / "calib.toml"),
                                   "--models-dir", str(tmp_path / "models"), "--name", kind, "--json"],
                             env={"CALIB_RUNS_DIR": str(tmp_path / "runs")})
    assert res.exit_code == 0, res.output
    run = json.loads(res.output)
    return Path(run["artifact"]), pd.read_csv(cert), run


@pytest.mark.parametrize("kind", ["svu", "sbe63"])
def test_whole_certificate_calibration_and_its_vendor_sheet_round_trip(kind, tmp_path):
    """Every certificate point calibrates the model (test_fraction = 0); the vendor's own formula with the
    sheet's coefficients gives calib's predictions (the numbers a technician types into the instrument)."""
    path, cert, run = _whole_certificate(tmp_path, kind)
    meta = json.loads((path / "calibration.json").read_text())
    assert meta["split"]["test_rows"] == 0 and meta["data"]["rows"] == len(cert)
    assert meta["test"] is None and "cross-validation" in meta["error_estimate"] and run["test"] is None
    assert meta["hyperparameters"]["physics_kind"] == kind and meta["physics"]["kind"] == kind
    sheet = meta["coefficients"]
    assert sheet["vendor"].startswith("Aanderaa" if kind == "svu" else "Sea-Bird") and "family physics" in sheet["source"]
    csv = (path / "coefficients.csv").read_text()
    assert csv.splitlines()[3] == "coefficient,value" and all(k in csv for k in sheet["coefficients"])
    phase_col = CERTS[kind][3]
    want = load_model(path).predict(cert[[phase_col, "temperature_degC"]])
    from calib.coefficients import CoefficientSheet

    sh = CoefficientSheet(kind, sheet["vendor"], sheet["formula"], sheet["unit"],
                          tuple((k, float(v)) for k, v in sheet["coefficients"].items()))
    got = vendor_predict(sh, cert[phase_col].to_numpy(), cert["temperature_degC"].to_numpy())
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * float(np.abs(want).max()))
    # the card and the report describe a physics fit as such, with its coefficients
    card = (path / "MODEL_CARD.md").read_text()
    assert "family physics, no network" in card and "hidden_layers" not in card
    assert all(f"| {k} |" in card for k in sheet["coefficients"])
    report = (path / "report.html").read_text()
    assert 'id="coefficients"' in report and 'id="cv-parity"' in report and "calib (physics)" in report
    # every calibration point has its out-of-fold prediction and the exported model's value
    oof = pd.read_csv(path / "cv_predictions.csv")
    target = CERTS[kind][2]
    assert len(oof) == len(cert) and oof[f"{target}_pred"].notna().all()
    np.testing.assert_allclose(oof[f"{target}_fit"], want, rtol=1e-4, atol=1e-4 * float(np.abs(want).max()))
    # the printable certificate: every point, pass/fail against the tolerance, units typeset, the sheet
    html = (path / "certificate.html").read_text()
    tol = meta["cv"]["folds"][0]["val"]["tolerance"]
    n_fail = int((np.abs(oof[f"{target}_fit"] - oof[target]) > tol).sum())
    assert html.count("<td class='pass'>pass</td>") == len(cert) - n_fail and html.count(">FAIL</td>") == n_fail
    assert ("\u00b5mol/L" if kind == "svu" else "mL/L") in html and "umol_per_L" not in html.split("<h2>")[1]
    assert "@media print" in html and all(k in html for k in sheet["coefficients"])


def test_sheet_refuses_a_model_without_coefficients():
    with pytest.raises(ConfigError, match="fitted physics model"):
        coefficient_sheet({"kind": "svu"})
    with pytest.raises(ConfigError, match="lacks a coefficient"):
        coefficient_sheet({"kind": "svu", "params": {"c0": 1.0}})
    sheet = coefficient_sheet({"kind": "svu", "params": {f"c{i}": float(i + 1) for i in range(7)},
                               "target_unit": "umol_per_L", "feature_names": ["p", "t"], "columns": [0, 1]})
    assert [k for k, _ in sheet.rows] == [f"C{i}" for i in range(7)] and sheet.inputs == ("p", "t")
    assert "C6,7" in sheet_csv(sheet)


def test_physics_kind_is_validated_once_with_one_line(tmp_path):
    from calib.nn import ModelConfig

    assert ModelConfig(physics_kind="polynomial").physics_kind == "poly"
    with pytest.raises(ConfigError, match="physics_kind in"):
        ModelConfig(physics_kind="stern_volmer")
    res = CliRunner().invoke(cli, ["validate", "--physics-kind", "nope"])
    assert res.exit_code == 2 and "nope" in res.output  # click's own choice check
