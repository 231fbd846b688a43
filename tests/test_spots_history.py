"""Tests of calib.spots.history: dated spot checks, acceptance bounds, drift, due dates, lineage.

The spot drifts with a known law: the ``linear`` batch model (conftest ``linear_artifact``,
``O2 = -10 * (phase - (60 - 0.1 T))``) read by a spot with phase offset ``d`` and Stern-Volmer
scale ``k`` needs ``O2 = 10 d / k + (1 / k) * batch``, so a spot whose gain ``g(t)`` and offset
``o(t)`` change linearly in time is simulated with ``k = 1 / g`` and ``d = o k / 10``.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import LINEAR_FEATURES, copy_artifact, lin_phase, lin_ref_rows

from calib.cli import cli
from calib.runtime import load_model
from calib.spots.history import read_history

START = datetime(2026, 1, 5, tzinfo=timezone.utc)
GAIN0, GAIN_RATE = 1.0, 5e-4          # 1/day
OFFSET0, OFFSET_RATE = 0.5, 0.02      # hPa, hPa/day


def law(day: float) -> tuple[float, float]:
    return GAIN0 + GAIN_RATE * day, OFFSET0 + OFFSET_RATE * day


def ref_rows(gain: float, offset: float, spot: str = "S1") -> list[dict]:
    k = 1.0 / gain
    return lin_ref_rows(spot, offset=offset * k / 10.0, k=k)


def check(parent, tmp_path, day: float, gain: float, offset: float, *extra: str, column: bool = False):
    """``calib adjust --json`` with a check of spot S1 on day ``day`` (``--date``, or a date column)."""
    ref = tmp_path / f"check-{day:g}.csv"
    rows = ref_rows(gain, offset)
    when = (START + timedelta(days=day)).strftime("%Y-%m-%dT%H:%M")
    if column:
        rows = [{**r, "date": when} for r in rows]
    pd.DataFrame(rows).to_csv(ref, index=False)
    cfg = tmp_path / "calib.toml"
    cfg.write_text("[check]\ntolerance = 2.0\ninterval_days = 120\n")
    args = ["adjust", str(parent), "--reference", str(ref), "--config", str(cfg), "--json", *extra]
    return CliRunner().invoke(cli, args + ([] if column else ["--date", when]))


def readings() -> pd.DataFrame:
    p, t = np.array([0.0, 100.0, 250.0]), np.array([10.0, 20.0, 30.0])
    return pd.DataFrame({"spot_id": "S1", LINEAR_FEATURES[0]: lin_phase(p, t), LINEAR_FEATURES[1]: t})


@pytest.fixture
def parent(linear_artifact, tmp_path):
    return copy_artifact(linear_artifact, tmp_path)


def test_drift_and_due_date_are_recovered_from_dated_checks(parent, tmp_path):
    days = (0.0, 30.0, 60.0, 90.0)
    for i, day in enumerate(days):
        res = check(parent, tmp_path, day, *law(day), column=i % 2 == 1)  # --date, then a date column
        assert res.exit_code == 0, res.output
    spot = json.loads(res.output)["spots"][0]
    c = spot["check"]
    g, o = law(90.0)
    assert (c["gain"], c["offset"]) == (pytest.approx(g, rel=1e-6), pytest.approx(o, abs=1e-4))
    assert c["within_bounds"] and not c["forced"] and c["previous_checks"] == 3
    d = c["drift"]
    assert d["n_checks"] == 4 and d["span_days"] == pytest.approx(90.0)
    assert d["gain_per_day"] == pytest.approx(GAIN_RATE, rel=1e-4)
    assert d["offset_per_day"] == pytest.approx(OFFSET_RATE, rel=1e-3)
    # the latest child is off by (t - t_last) * (dg * (y - o) / g + do), largest at 300 hPa
    rate = max(abs(GAIN_RATE * (y - o) / g + OFFSET_RATE) for y in (0.0, 300.0))
    assert d["error_per_day"] == pytest.approx(rate, rel=1e-3)
    due = START + timedelta(days=90.0 + 2.0 / rate)
    assert abs((datetime.fromisoformat(c["due"].replace("Z", "+00:00")) - due).total_seconds()) < 600
    assert c["projected_error_at_due"] == pytest.approx(2.0, rel=1e-6)
    # the history is the child's versions: nothing else is kept
    meta = json.loads((parent / "calibration.json").read_text())
    hist = read_history(tmp_path / "models", "lin", meta["model_id"], "S1")
    assert [h.version for h in hist] == ["1.0.0", "1.1.0", "1.2.0", "1.3.0"]
    assert [h.date for h in hist] == [START + timedelta(days=x) for x in days]
    # one check: the default interval alone sets the due date
    other = tmp_path / "other"
    other.mkdir()
    first = check(copy_artifact_to(parent, other), other, 0.0, *law(0.0))
    c1 = json.loads(first.output)["spots"][0]["check"]
    assert c1["drift"] is None and c1["due"] == "2026-05-05T00:00:00Z" and c1["projected_error_at_due"] is None


def copy_artifact_to(parent, folder):
    import shutil

    dst = folder / "models" / "lin" / parent.name
    shutil.copytree(parent, dst)
    return dst


def test_an_out_of_bounds_check_is_refused_and_the_previous_child_stays_applied(parent, tmp_path):
    assert check(parent, tmp_path, 0.0, *law(0.0)).exit_code == 0
    model = load_model(parent)
    before = model.predict_frame(readings())
    assert before["adjusted"].all() and model.children["S1"].name == "1.0.0"
    # a gain of 0.80 (a vendor refuses < 0.85): one error line, nothing written
    res = check(parent, tmp_path, 30.0, 0.80, 0.5)
    assert res.exit_code == 1
    assert res.output.strip() == ("Error: check-30.csv (spot 'S1'): check refused: gain 0.8000 outside 0.85..1.2 "
                                  "([check] bounds); nothing written, spot 'S1' keeps lin.S1 1.0.0 (checked "
                                  "2026-01-05); use --force to record it anyway")
    assert sorted(p.name for p in (tmp_path / "models" / "lin.S1").iterdir()) == ["1.0.0"]
    after = load_model(parent).predict_frame(readings())
    pd.testing.assert_frame_equal(after, before)  # routing still picks the previous child
    # so is an offset too large (5 % of the 212 hPa air reference)
    res = check(parent, tmp_path, 30.0, 1.0, 12.0)
    assert res.exit_code == 1 and "offset +12 hPa beyond +-10.6 hPa" in res.output
    # --force records it, marked as such, and it becomes the spot's current child
    res = check(parent, tmp_path, 30.0, 0.80, 0.5, "--force")
    assert res.exit_code == 0, res.output
    c = json.loads(res.output)["spots"][0]["check"]
    assert not c["within_bounds"] and c["forced"] and c["reasons"] == ["gain 0.8000 outside 0.85..1.2"]
    forced = load_model(parent)
    assert forced.children["S1"].name == "1.1.0"
    meta = json.loads((forced.children["S1"] / "calibration.json").read_text())
    assert meta["spot_adjustment"]["check"]["forced"] is True
    assert "OUTSIDE the acceptance bounds" in (forced.children["S1"] / "MODEL_CARD.md").read_text()
    np.testing.assert_allclose(forced.predict_frame(readings())["o2_hPa_pred"],
                               0.5 + 0.8 * (before["o2_hPa_pred"] - 0.5), rtol=1e-5, atol=1e-3)


def test_a_check_dated_before_the_latest_is_refused(parent, tmp_path):
    assert check(parent, tmp_path, 30.0, *law(30.0)).exit_code == 0
    res = check(parent, tmp_path, 10.0, *law(10.0))
    assert res.exit_code == 1
    assert res.output.startswith("Error: the check of spot 'S1' is dated 2026-01-15T00:00:00Z, before its latest "
                                 "recorded check 2026-02-04T00:00:00Z (version 1.0.0)")
    assert sorted(p.name for p in (tmp_path / "models" / "lin.S1").iterdir()) == ["1.0.0"]


@pytest.mark.parametrize("date, message", [
    pytest.param("01/03/2026", r"^Error: date must be an ISO 8601 date such as 2026-03-01", id="not-iso"),
    pytest.param("2026-02-30", r"^Error: date must be an ISO 8601 date", id="no-such-day"),
    pytest.param("9999-12-31", r"^Error: date must lie in the years 1900..2999, got date='9999-12-31'$",
                 id="far-future-overflowed-the-due-date"),
])
def test_a_bad_date_is_one_line(parent, tmp_path, date, message):
    ref = tmp_path / "ref.csv"
    pd.DataFrame(ref_rows(1.0, 0.5)).to_csv(ref, index=False)
    res = CliRunner().invoke(cli, ["adjust", str(parent), "--reference", str(ref), "--date", date])
    assert res.exit_code == 1 and len(res.output.strip().splitlines()) == 1
    assert re.match(message, res.output), res.output
    assert not (tmp_path / "models" / "lin.S1").exists()


def test_a_bad_date_cell_names_the_row_and_column(parent, tmp_path):
    ref = tmp_path / "ref.csv"
    rows = [{**r, "date": "2026-03-01"} for r in ref_rows(1.0, 0.5)]
    rows[2]["date"] = "03/01/2026"
    pd.DataFrame(rows).to_csv(ref, index=False)
    res = CliRunner().invoke(cli, ["adjust", str(parent), "--reference", str(ref)])
    assert res.exit_code == 1
    assert res.output.strip() == ("Error: ref.csv row 4, column date: '03/01/2026' is not an ISO 8601 date of the "
                                  "check; expected e.g. 2026-03-01 or 2026-03-01T10:15 (UTC unless a zone is given)")


@pytest.mark.parametrize("cell", ["9999-12-31", "0001-01-01"])
def test_a_date_cell_out_of_the_years_is_one_line(parent, tmp_path, cell):
    """A date column of 9999-12-31 gave OverflowError's traceback (its due date is past year 9999);
    0001-01-01 came back as date='1-01-01T00:00:00Z'."""
    ref = tmp_path / "ref.csv"
    pd.DataFrame([{**r, "date": cell} for r in ref_rows(1.0, 0.5)]).to_csv(ref, index=False)
    res = CliRunner().invoke(cli, ["adjust", str(parent), "--reference", str(ref)])
    assert res.exit_code == 1
    assert res.output.strip() == (f"Error: ref.csv row 2, column date: '{cell}' is not the date of a check; expected a "
                                  "date in the years 1900..2999")
    assert not (tmp_path / "models" / "lin.S1").exists()


def test_models_of_a_missing_folder_or_a_file_is_an_error(tmp_path):
    (tmp_path / "f.csv").write_text("x\n")
    for arg, what in ((tmp_path / "nope", "no such folder"), (tmp_path / "f.csv", "a file")):
        res = CliRunner().invoke(cli, ["models", str(arg)])
        assert res.exit_code == 1 and res.output == (f"Error: {arg}: {what}; expected the folder that holds the "
                                                      "calibration models (such as models/)\n"), res.output
    assert CliRunner().invoke(cli, ["models", str(tmp_path)]).exit_code == 0  # a folder without models


def test_models_says_why_a_listed_version_cannot_be_loaded(parent, tmp_path):
    """A version folder renamed (here: linked as 9.9.9) is refused by predict; models says so."""
    (parent.parent / "9.9.9").symlink_to(parent.name)
    res = CliRunner().invoke(cli, ["models", str(tmp_path / "models")])
    assert res.exit_code == 0, res.output
    assert "(current 9.9.9)" in res.output
    assert re.search(r"current version cannot be loaded: .*calibration\.json: version: says '[0-9.]+' but the "
                     r"folder is '9\.9\.9'", res.output), res.output
    doc = json.loads(CliRunner().invoke(cli, ["models", str(tmp_path / "models"), "--json"]).output)
    assert "9.9.9" in doc[parent.parent.name]["problem"]
    (parent.parent / "9.9.9").unlink()
    doc = json.loads(CliRunner().invoke(cli, ["models", str(tmp_path / "models"), "--json"]).output)
    assert doc[parent.parent.name]["problem"] is None


def test_models_shows_lineage_and_due_or_overdue(parent, tmp_path):
    for day in (0.0, 30.0):
        assert check(parent, tmp_path, day, *law(day)).exit_code == 0
    models = tmp_path / "models"
    doc = json.loads(CliRunner().invoke(cli, ["models", str(models), "--json", "--date", "2026-02-05"]).output)
    assert doc["lin"]["children"] == ["lin.S1"] and doc["lin"]["parent"] is None
    child = doc["lin.S1"]
    assert child["versions"] == ["1.0.0", "1.1.0"] and child["current"] == "1.1.0"
    assert child["parent"]["name"] == "lin" and child["spot"] == "S1"
    assert child["check"]["date"] == "2026-02-04T00:00:00Z" and child["check"]["n_checks"] == 2
    assert child["check"]["overdue"] is False and child["check"]["days"] >= 0
    text = CliRunner().invoke(cli, ["models", str(models), "--date", "2027-01-01"]).output
    assert "lin: 1.0.0 (current 1.0.0)\n  spot children: lin.S1" in text
    assert "  spot S1 of lin 1.0.0" in text and "OVERDUE by" in text
