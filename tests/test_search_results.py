"""Tests of calib.search.results: the leaderboard, its files and the one-standard-error choice."""

from __future__ import annotations

import csv
import json

import pytest

from calib.nn import ModelConfig
from calib.search import SweepResult, TrialRecord, leaderboard, one_se_choice, write_leaderboard

BASE = ModelConfig(hidden_layers=(4,), epochs=20, patience=None, batch_size=None, seed=0)


def _result() -> SweepResult:
    trials = (
        TrialRecord(0, {"learning_rate": 0.01, "hidden_layers": [8, 8]}, "COMPLETE", 2.5, 0.25, 3.0, None, (20, 20)),
        TrialRecord(1, {"learning_rate": 1e6, "hidden_layers": [8]}, "FAIL", None, None, 0.1, "training diverged"),
        TrialRecord(2, {"learning_rate": 0.001, "hidden_layers": [8]}, "COMPLETE", 1.5, 0.5, 4.0, None, (18, 20)),
        TrialRecord(3, {"learning_rate": 0.003, "hidden_layers": [8]}, "FAIL", None, None, None, "interrupted"),
    )
    return SweepResult(trials, trials[2], BASE.replace(learning_rate=0.001, hidden_layers=(8,)),
                       "/x/sweep.journal", "calib", "random", 9.0, "hPa")



def test_leaderboard_is_best_first():
    rows = leaderboard(_result())
    assert [(r["rank"], r["number"], r["mae"], r["mae_std"]) for r in rows] == [(1, 2, 1.5, 0.5), (2, 0, 2.5, 0.25)]


def test_write_leaderboard(tmp_path):
    csv_path, json_path = write_leaderboard(_result(), tmp_path / "runs")
    rows = list(csv.DictReader(csv_path.open()))
    assert [r["number"] for r in rows] == ["2", "0"] and rows[1]["hidden_layers"] == "[8, 8]"
    assert float(rows[0]["mae"]) == 1.5
    doc = json.loads(json_path.read_text())
    assert doc["best"]["number"] == 2 and len(doc["trials"]) == 4 and doc["leaderboard"][0]["number"] == 2
    assert doc["best_config"]["hidden_layers"] == [8]
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["leaderboard.csv", "leaderboard.json"]


def test_one_se_choice_prefers_the_simpler_family_within_one_standard_error():
    # hybrid lowest, physics within one SE (0.02 / sqrt(4) = 0.01): physics is kept
    entries = [("mlp", 1.30, 0.05, 4), ("hybrid", 1.00, 0.02, 4), ("physics", 1.009, 0.03, 4)]
    assert one_se_choice(entries) == 2
    # physics beyond one SE: the lowest (hybrid) stays
    entries[2] = ("physics", 1.011, 0.03, 4)
    assert one_se_choice(entries) == 1
    # within a family the lowest score wins, and a far better network is never overruled
    entries = [("mlp", 0.50, 0.05, 5), ("mlp", 0.48, 0.05, 5), ("physics", 2.0, 0.1, 5)]
    assert one_se_choice(entries) == 1
    # hybrid and mlp are both networks: between them the lowest score wins
    assert one_se_choice([("mlp", 1.00, 0.2, 5), ("hybrid", 1.05, 0.2, 5)]) == 0
    assert one_se_choice([("hybrid", 1.00, 0.2, 5), ("mlp", 1.05, 0.2, 5)]) == 0
    # unknown spread (one fold): the bare lowest score
    assert one_se_choice([("hybrid", 1.0, None, 1), ("physics", 1.0001, None, 1)]) == 0
    # ties on score and family: the first entry
    assert one_se_choice([("mlp", 1.0, 0.0, 3), ("mlp", 1.0, 0.0, 3)]) == 0
    with pytest.raises(ValueError):
        one_se_choice([])
