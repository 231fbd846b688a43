"""Tests of calib.cli.progress: plain log lines off a terminal, a bar on one, nothing when disabled; -v log lines."""

from __future__ import annotations

import io

import logging

from calib.cli.progress import Progress, hms, make_progress, show_log


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


def test_sweep_progress_plain_lines_when_not_a_terminal():
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


def test_sweep_progress_bar_on_a_terminal():
    class Tty(io.StringIO):
        def isatty(self):
            return True

    out = Tty()
    bar = make_progress(3, stream=out)
    bar(1, 3, None)
    bar(3, 3, 0.75)
    assert "3/3" in out.getvalue() and "best MAE 0.75" in out.getvalue()


def test_show_log_writes_messages_to_stderr_and_undoes(capsys):
    log = logging.getLogger("calib.nn.training")
    undo = show_log(logging.INFO)
    log.info("epoch %s/%s: train_loss=%.6g", 1, 3, 0.5)
    log.debug("not shown")
    undo()
    log.info("gone")
    assert capsys.readouterr().err == "epoch 1/3: train_loss=0.5\n"
    assert not logging.getLogger("calib").handlers
