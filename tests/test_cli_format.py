"""Tests of calib.cli.format: the text of each command's output, and the --json form."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

from calib.cli.format import (
    format_adjustment,
    format_inspection,
    format_json,
    format_leaderboard,
    format_model_list,
    format_wrote,
)
from calib.spots.adjust import AdjustResult, ReferencePoint, SpotAdjustment
from test_search_results import _result  # the same small SweepResult


def test_format_leaderboard_aligned_with_a_line_on_failed_trials():
    text = format_leaderboard(_result(), top=10).splitlines()
    assert text[0].split() == ["rank", "trial", "MAE", "hPa", "s", "learning_rate", "hidden_layers"]
    assert text[1].split()[:5] == ["1", "2", "1.5", "+/-", "0.5"]
    assert len({line.index("learning_rate") for line in text[:1]}) == 1
    assert text[1].index("0.001") == text[0].index("learning_rate")  # columns aligned
    assert text[-1] == "1 failed trial(s): #1 training diverged"  # the interrupted one is not counted
    assert len(format_leaderboard(_result(), top=1).splitlines()) == 3


def _info(verification: dict | None) -> dict:
    return {
        "name": "foil", "version": "1.0.0", "path": "models/foil/1.0.0", "model_id": "abc",
        "created_utc": "2024-01-01T00:00:00Z", "schema_version": 3,
        "target": {"name": "o2_hPa", "unit": "hPa", "min": 0.0, "max": 250.0}, "has_std": True,
        "features": [{"name": "phase_5000hz_deg", "unit": "deg", "min": 20.0, "max": 60.0,
                      "source": "phase_5000hz_deg", "source_unit": "deg"},
                     {"name": "temperature_degC", "unit": "degC", "min": 5.0, "max": 35.0,
                      "source": "temp_K", "source_unit": "K"}],
        "metrics": {"cv": {"val": {"mae": {"mean": 0.5, "std": 0.1}}}, "test": {"mae": 0.6}},
        "versions": ["1.0.0"], "verification": verification,
    }


def test_format_inspection():
    text = format_inspection(_info({"ok": True, "files": ["a", "b"]}))
    assert text.splitlines()[0] == "foil 1.0.0  (models/foil/1.0.0)"
    assert "    phase_5000hz_deg (deg): 20 .. 60" in text
    assert "    temperature_degC (degC): 5 .. 35  [from temp_K in K]" in text
    assert "  cv MAE 0.5 +/- 0.1 hPa" in text and "  test MAE 0.6 hPa" in text
    assert text.splitlines()[-1] == "  verification: OK (2 files match SHA256SUMS, no unsafe content)"
    bad = format_inspection(_info({"ok": False, "kind": "IntegrityError", "error": "checksum mismatch for MODEL_CARD.md"}))
    assert bad.splitlines()[-1] == "  verification: FAILED (IntegrityError): checksum mismatch for MODEL_CARD.md"
    assert format_inspection(_info(None)).splitlines()[-1] == "  verification: not run (use --verify)"


def test_format_adjustment_one_line_per_spot():
    zero = ReferencePoint("zero", (2,), 0.0, 0.31, 0.0, 20.0)
    air = ReferencePoint("air", (3,), 200.0, 190.7, 200.0, 20.0)
    adj = SpotAdjustment(spot_id="S 1/a", method="linear", features=("phase_5000hz_deg",), input_offset=(0.0,),
                         phase_shift=0.0, scale=1.05, intercept=-0.3, unit="hPa", zero=zero, air=air)
    res = AdjustResult(parent={"name": "lin", "version": "1.0.0"}, reference={"file": "spot_checks.csv"},
                       method="linear", adjustments=(adj,))
    assert format_adjustment(res).splitlines() == [
        "lin 1.0.0: 1 spot(s) adjusted from spot_checks.csv (method linear)",
        "  S 1/a: O2 = -0.3 hPa + 1.05000 x batch; batch read zero 0.31 / air 190.7 hPa (references 0 / 200)",
    ]


def test_format_model_list_and_wrote():
    assert format_model_list({}, Path("models")) == "no calibration models under models"
    plain = {"versions": ["1.0.0"], "current": "1.0.0", "parent": None, "spot": None, "children": ["a.S1"],
             "check": None}
    child = {"versions": ["1.0.0", "1.1.0"], "current": "1.1.0", "parent": {"name": "a", "version": "1.0.0",
             "model_id": "m1"}, "spot": "S1", "children": [],
             "check": {"date": "2026-03-01T00:00:00Z", "gain": 1.01, "offset": -0.25, "due": "2026-06-01T00:00:00Z",
                       "overdue": True, "days": -3, "forced": False, "n_checks": 2}}
    assert format_model_list({"a": plain, "a.S1": child}, "m") == (
        "a: 1.0.0 (current 1.0.0)\n  spot children: a.S1\n"
        "a.S1: 1.0.0, 1.1.0 (current 1.1.0)\n  spot S1 of a 1.0.0 (model id m1)\n"
        "  last check 2026-03-01 (2 recorded): gain 1.01000, offset -0.25; next check due 2026-06-01 (OVERDUE by 3 day(s))")
    assert format_wrote("x.csv") == "wrote x.csv" and format_wrote("a", Path("b")) == "wrote a and b"


def test_format_json_is_calibs_one_json_form():
    obj = {"n": np.int64(3), "x": np.float32(0.5), "a": np.arange(2), "p": Path("m/x"), "t": (1, 2),
           "nan": math.nan, "ok": np.bool_(True)}
    text = format_json(obj)
    assert json.loads(text) == {"n": 3, "x": 0.5, "a": [0, 1], "p": "m/x", "t": [1, 2], "nan": None, "ok": True}
    assert text.startswith('{\n  "n": 3,')  # indented by 2, keys in their order


def test_format_leaderboard_names_the_pruned_trials():
    import dataclasses

    from calib.search import TrialRecord

    res = _result()
    pruned = TrialRecord(4, {"learning_rate": 0.3, "hidden_layers": [8]}, "PRUNED", None, None, 1.0,
                         "pruned after fold 2 of 5: running mean 9.1, worse than the median")
    res = dataclasses.replace(res, trials=(*res.trials, pruned))
    text = format_leaderboard(res, top=10).splitlines()
    assert text[-1] == "1 pruned trial(s), stopped behind the median after some folds ([sweep] prune): #4"
    assert text[-2] == "1 failed trial(s): #1 training diverged"
    assert pruned.counts and res.n_counted == 4  # a pruned trial counts toward n_trials
    from calib.search import leaderboard

    assert [r["number"] for r in leaderboard(res)] == [2, 0]  # never ranked
