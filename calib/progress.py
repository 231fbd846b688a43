"""Progress display: a live tqdm bar on a terminal, plain one-line log messages otherwise.

Used for trials (sweep), folds (validate) and the stages of the main job. Output goes to
stderr so that ``--json`` output on stdout stays machine-readable; ``-q`` turns it off.
"""

from __future__ import annotations

import sys
import time
from typing import Any

__all__ = ["Progress", "hms"]


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
