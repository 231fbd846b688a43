"""Is a RUNNING trial still being worked on? Process liveness, heartbeats, interrupted trials.

A running trial records its worker (host, pid, process start time) and a heartbeat every
:data:`HEARTBEAT_S`. A RUNNING trial is *stale* when its process is gone (same machine, read
from ``/proc`` or psutil) or its heartbeat is older than :data:`STALE_AFTER_S` (another
machine); :func:`mark_interrupted` marks such trials FAIL with the reason ``"interrupted"``,
so they do not count toward ``n_trials`` and are run again.

Optuna's own heartbeat (``heartbeat_interval``/``grace_period`` and ``fail_stale_trials``) is
not used: Optuna 5's ``JournalStorage``, calib's default storage, does not support it, it
only beats inside ``study.optimize`` (calib asks and tells trial by trial), and a grace period
cannot tell at once that a process of this machine died (a sweep resumed right after a
SIGKILL must find its killed trial interrupted).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from pathlib import Path
from typing import Any

from .results import trial_counts
from .space import is_int

_log = logging.getLogger(__name__)


#: Seconds between heartbeats of a running trial.
HEARTBEAT_S = 30.0
#: A RUNNING trial of another machine without a heartbeat for this long counts as interrupted.
STALE_AFTER_S = 300.0


def _proc_start(pid: int) -> str | None:
    """A token that tells process ``pid`` apart from a later one with the same id."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat[stat.rfind(")") + 2 :].split()[19]
    except (OSError, IndexError):
        pass
    try:
        import psutil

        return repr(psutil.Process(pid).create_time())
    except Exception:
        return None


def _process_alive(pid: int, start: str | None) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except FileNotFoundError:
        return False
    except OSError:
        stat = None
    if stat is not None:
        fields = stat[stat.rfind(")") + 2 :].split()
        if fields and fields[0] in ("Z", "X"):  # zombie: dead, not yet reaped
            return False
        return start is None or (len(fields) > 19 and fields[19] == start)
    try:
        import psutil

        p = psutil.Process(pid)
        if p.status() == psutil.STATUS_ZOMBIE:
            return False
        return start is None or repr(p.create_time()) == start
    except ImportError:
        pass
    except Exception:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def worker_id() -> dict[str, Any]:
    """This process as recorded on its trial: host, pid and process start token."""
    pid = os.getpid()
    return {"host": socket.gethostname(), "pid": pid, "start": _proc_start(pid)}


def is_stale(t: Any, now: float, host: str) -> bool:
    """A RUNNING trial whose process is gone (this machine) or silent (another machine)."""
    from optuna.trial import TrialState

    if t.state != TrialState.RUNNING:
        return False
    w = t.user_attrs.get("worker")
    if isinstance(w, dict) and w.get("host") == host and is_int(w.get("pid")):
        return not _process_alive(int(w["pid"]), w.get("start"))
    beat = t.user_attrs.get("heartbeat")
    if not isinstance(beat, (int, float)):
        beat = t.datetime_start.timestamp() if t.datetime_start is not None else 0.0
    return now - float(beat) > STALE_AFTER_S


def counts_or_runs(t: Any, now: float, host: str) -> bool:
    """Whether a trial counts toward ``n_trials`` or is RUNNING in a live process."""
    from optuna.trial import TrialState

    return trial_counts(t) or (t.state == TrialState.RUNNING and not is_stale(t, now, host))


def mark_interrupted(study: Any, reason: str = "interrupted") -> int:
    """Mark RUNNING trials of dead processes FAIL with ``reason``; returns how many."""
    from optuna.trial import TrialState

    now, host, n = time.time(), socket.gethostname(), 0
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if not is_stale(t, now, host):
            continue
        try:
            study._storage.set_trial_user_attr(t._trial_id, "reason", reason)
            study.tell(t.number, state=TrialState.FAIL, skip_if_finished=True)
            n += 1
        except Exception as exc:  # finished meanwhile by its owner
            _log.debug("could not mark trial %d interrupted: %s", t.number, exc)
    return n


class Heartbeat:
    """While a trial runs: record a heartbeat every HEARTBEAT_S in the trial's user attrs."""

    def __init__(self, trial: Any) -> None:
        self._trial = trial
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="calib-sweep-heartbeat", daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(HEARTBEAT_S):
            with contextlib.suppress(Exception):
                self._trial.set_user_attr("heartbeat", time.time())

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
