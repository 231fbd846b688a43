"""What the commands show on stderr: progress, stage messages and log lines, as -v/-q say.

:class:`Progress` draws a live tqdm bar on a terminal and plain one-line messages otherwise;
it is used for trials (sweep), folds (validate) and the stages of the main job.
:func:`show_log` routes the library's :mod:`logging` records (the training loop's per-epoch
losses, logger ``calib.nn.training``) to stderr with ``-v``. Everything goes to stderr so
that ``--json`` output on stdout stays machine-readable; ``-q`` turns it off.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import Any, Callable

import click

__all__ = ["Progress", "hms", "make_progress", "verbosity", "info", "show_log"]


def verbosity() -> int:
    """-1 with -q, 0 by default, 1+ with -v (of the running ``calib`` command)."""
    ctx = click.get_current_context(silent=True)
    obj = ctx.find_root().obj if ctx is not None else None
    return int((obj or {}).get("verbosity", 0))


def info(msg: str) -> None:
    """A stage message on stderr, unless -q."""
    if verbosity() >= 0:
        click.echo(msg, err=True)


def hms(seconds: float) -> str:
    """``h:mm:ss`` of a duration in seconds."""
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


class Progress:
    """Callable ``(done, total, value=None)`` drawing progress of ``total`` steps.

    Parameters
    ----------
    total : int
        Steps expected (may change between calls, e.g. a resumed sweep).
    label : str, default="progress"
        Shown before the counts, e.g. ``sweep`` or ``k-fold``.
    unit : str, default="step"
        What a step is (``trial``, ``fold``); pluralised with ``s``.
    metric : str, default="best MAE"
        Name of the optional value shown, e.g. the best score so far.
    enabled : bool, default=True
        False draws nothing (``-q``, ``--json``).
    stream : file, optional
        Where to draw; default ``sys.stderr``. A terminal gets a tqdm bar, anything else
        (a log file, CI) one plain line per step with elapsed time and ETA.
    start_now : bool, default=False
        Start the clock now, at step 0 (else at the first call, which may report a resumed count).
    """

    def __init__(self, total: int, *, label: str = "progress", unit: str = "step", metric: str = "best MAE",
                 enabled: bool = True, stream: Any = None, start_now: bool = False) -> None:
        self.total, self.label, self.unit, self.metric = total, label, unit, metric
        self.enabled = enabled
        self.stream = stream
        self._bar: Any = None
        self._t0: float | None = time.monotonic() if start_now else None
        self._done0 = 0
        self._opened = False

    def _out(self) -> Any:
        return self.stream if self.stream is not None else sys.stderr

    def __call__(self, done: int, total: int | None = None, value: float | None = None) -> None:
        if not self.enabled:
            return
        if total is not None:
            self.total = total
        total = self.total
        out = self._out()
        if not self._opened:
            self._opened = True
            if self._t0 is None:
                self._t0, self._done0 = time.monotonic(), done
            if getattr(out, "isatty", lambda: False)():
                from tqdm import tqdm

                self._bar = tqdm(total=total, initial=self._done0, desc=self.label, unit=self.unit, file=out,
                                 dynamic_ncols=True)
        value_txt = "n/a" if value is None else f"{value:.4g}"
        if self._bar is not None:
            self._bar.total = total
            self._bar.update(done - self._bar.n)
            if self.metric:
                self._bar.set_postfix_str(f"{self.metric} {value_txt}")
            if done >= total:
                self.close()
            return
        elapsed = time.monotonic() - (self._t0 or time.monotonic())
        ran = done - self._done0
        eta = "" if ran <= 0 else f", ETA {hms(elapsed / ran * max(0, total - done))}"
        shown = f", {self.metric} {value_txt}" if self.metric else ""
        print(f"{self.label}: {done}/{total} {self.unit}s done{shown}, elapsed {hms(elapsed)}{eta}",
              file=out, flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def make_progress(total: int, enabled: bool = True, stream: Any = None, metric: str = "best MAE") -> Progress:
    """A ``progress`` callable for :func:`calib.search.run_sweep`.

    On a terminal (``stream.isatty()``) it draws a live tqdm bar: trials done, best MAE so far,
    ETA; otherwise (a log file, CI) it prints one plain line per trial, e.g.
    ``sweep: 3/20 trials done, best MAE 0.4123, elapsed 0:01:02, ETA 0:05:51``.

    Parameters
    ----------
    total : int
        Trials the study should reach.
    enabled : bool, default=True
        ``False`` gives a silent callable.
    stream : file, optional
        Where to draw; standard error by default.
    metric : str, default="best MAE"
        What the score is called (``best objective`` with several outputs).

    Returns
    -------
    callable
        ``progress(done, total, best_score)``, with a ``close()`` method.
    """
    return Progress(total, label="sweep", unit="trial", metric=metric, enabled=enabled, stream=stream)


class _EchoHandler(logging.Handler):
    """Writes a record's message to the current stderr (click's, so CliRunner captures it)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            click.echo(self.format(record), err=True)
        except Exception:  # pragma: no cover - logging must never sink a command
            self.handleError(record)


def show_log(level: int, logger: str = "calib") -> Callable[[], None]:
    """Show ``logger``'s records from ``level`` up on stderr, as plain messages; returns the undo.

    ``calib -v`` calls it with ``logging.INFO`` so the training loop's per-epoch losses appear
    (the text of each line is the library's). Call the returned function when the command ends.
    """
    log = logging.getLogger(logger)
    handler = _EchoHandler(level)
    handler.setFormatter(logging.Formatter("%(message)s"))
    old_level = log.level
    log.addHandler(handler)
    if log.getEffectiveLevel() > level:
        log.setLevel(level)

    def undo() -> None:
        log.removeHandler(handler)
        log.setLevel(old_level)

    return undo
