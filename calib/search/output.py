"""Terminal output of a sweep: the leaderboard as aligned text and the progress bar.

Kept apart from the library (which returns data) for the command-line layer.
"""

from __future__ import annotations

from typing import Any

from ..progress import Progress
from .results import SweepResult, leaderboard


def _fmt_value(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.3g}"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_fmt_value(x) for x in v) + "]"
    return str(v)


def format_leaderboard(result: SweepResult, top: int = 10) -> str:
    """An aligned text table of the ``top`` best trials, with a line on the failed ones.

    Examples
    --------
    ::

        rank  trial  MAE hPa           s  learning_rate  hidden_layers  activation
           1      7  0.412 +/- 0.031  41  0.00412        [32, 32]       tanh
    """
    rows = leaderboard(result)[: max(0, int(top))]
    names: list[str] = []
    for r in rows:
        names += [k for k in r["params"] if k not in names]
    unit = f" {result.unit}" if result.unit else ""
    head = ["rank", "trial", f"MAE{unit}", "s", *names]
    body = []
    for r in rows:
        std = "" if r["mae_std"] is None else f" +/- {r['mae_std']:.4g}"
        body.append([str(r["rank"]), str(r["number"]), f"{r['mae']:.4g}{std}",
                     "" if r["seconds"] is None else f"{r['seconds']:.0f}",
                     *(_fmt_value(r["params"].get(n, "")) for n in names)])
    widths = [max(len(x) for x in col) for col in zip(head, *body)]
    right = {0, 1, 3}

    def line(cells: list[str]) -> str:
        return "  ".join(c.rjust(w) if i in right else c.ljust(w)
                         for i, (c, w) in enumerate(zip(cells, widths))).rstrip()

    out = [line(head), *(line(b) for b in body)]
    if not rows:
        out = ["no completed trials"]
    failed = [t for t in result.trials if t.state == "FAIL" and t.counts]
    if failed:
        out.append(f"{len(failed)} failed trial(s): " + "; ".join(
            f"#{t.number} {(t.reason or '').splitlines()[0][:80]}" for t in failed[:3])
            + (" ..." if len(failed) > 3 else ""))
    return "\n".join(out)


def make_progress(total: int, enabled: bool = True, stream: Any = None) -> Progress:
    """A ``progress`` callable for :func:`run_sweep`.

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

    Returns
    -------
    callable
        ``progress(done, total, best_score)``, with a ``close()`` method.
    """
    return Progress(total, label="sweep", unit="trial", metric="best MAE", enabled=enabled, stream=stream)
