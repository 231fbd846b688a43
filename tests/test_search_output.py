"""Tests of calib.search.output: the leaderboard as text and the sweep's progress line/bar."""

from __future__ import annotations

import io

from calib.search import format_leaderboard, make_progress
from test_search_results import _result  # the same small SweepResult


def test_format_leaderboard_aligned_with_a_line_on_failed_trials():
    text = format_leaderboard(_result(), top=10).splitlines()
    assert text[0].split() == ["rank", "trial", "MAE", "hPa", "s", "learning_rate", "hidden_layers"]
    assert text[1].split()[:5] == ["1", "2", "1.5", "+/-", "0.5"]
    assert len({line.index("learning_rate") for line in text[:1]}) == 1
    assert text[1].index("0.001") == text[0].index("learning_rate")  # columns aligned
    assert text[-1] == "1 failed trial(s): #1 training diverged"  # the interrupted one is not counted
    assert len(format_leaderboard(_result(), top=1).splitlines()) == 3


def test_progress_plain_lines_when_not_a_terminal():
    out = io.StringIO()
    bar = make_progress(3, stream=out)
    bar(0, 3, None)
    bar(1, 3, 2.5)
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("sweep: 0/3 trials done, best MAE n/a")
    assert lines[1].startswith("sweep: 1/3 trials done, best MAE 2.5, elapsed 0:00:00, ETA 0:00:00")
    quiet = io.StringIO()
    make_progress(3, enabled=False, stream=quiet)(1, 3, 2.5)
    assert quiet.getvalue() == ""


def test_progress_bar_on_a_terminal():
    class Tty(io.StringIO):
        def isatty(self):
            return True

    out = Tty()
    bar = make_progress(3, stream=out)
    bar(1, 3, None)
    bar(3, 3, 0.75)
    assert "3/3" in out.getvalue() and "best MAE 0.75" in out.getvalue()
