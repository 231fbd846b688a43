"""Tests of calib.progress: plain log lines off a terminal, nothing when disabled."""

from __future__ import annotations

import io

from calib.progress import Progress, hms


def test_plain_lines_when_not_a_terminal():
    out = io.StringIO()
    p = Progress(3, label="k-fold", unit="fold", metric="", stream=out, start_now=True)
    for i in range(1, 4):
        p(i, 3)
    lines = out.getvalue().splitlines()
    assert len(lines) == 3
    assert lines[0].startswith("k-fold: 1/3 folds done, elapsed 0:00:0") and "ETA" in lines[0]
    assert lines[2].startswith("k-fold: 3/3 folds done")


def test_metric_shown_and_disabled_prints_nothing():
    out = io.StringIO()
    Progress(2, label="sweep", unit="trial", metric="best MAE", stream=out)(1, 2, 0.1234567)
    assert "best MAE 0.1235" in out.getvalue()
    quiet = io.StringIO()
    Progress(2, enabled=False, stream=quiet)(1, 2)
    assert quiet.getvalue() == ""


def test_hms():
    assert hms(3725.4) == "1:02:05"
