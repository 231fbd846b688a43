"""Where trials run: in this process, in local worker processes (joblib's loky, recycled every
``recycle_every`` trials) or on an existing Dask cluster (joblib's dask backend).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable
from typing import Any

from ..errors import CalibError, ConfigError
from .liveness import mark_interrupted
from .results import progress_state
from .trial import TrialJob, init_worker, run_one_trial


def run_here(job: TrialJob, missing: int, after_trial: Callable[[dict[str, Any]], None]) -> None:
    """Run up to ``missing`` trials one after another in this process."""
    for _ in range(missing):
        out = run_one_trial(job)
        if out is None:
            return
        after_trial(out)


class _Slot:
    """One local worker process (a single-worker loky executor), replaced every M trials."""

    def __init__(self) -> None:
        self.executor: Any = None
        self.ran = 0
        self.retired = False
        self.lent = False  # runs work of the caller's ``spare`` (which outlives the sweep)

    def start(self, watch_pid: int | None) -> None:
        """A fresh worker process: one TensorFlow thread, TF and Optuna imported (:func:`init_worker`)."""
        from joblib.externals.loky import ProcessPoolExecutor

        self.executor = ProcessPoolExecutor(
            max_workers=1, initializer=init_worker, initargs=(watch_pid,),
            env={"TF_CPP_MIN_LOG_LEVEL": "2", "OMP_NUM_THREADS": "1",
                 "TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1"},
        )
        self.ran = 0

    def submit(self, job: TrialJob, recycle_every: int | None) -> Any:
        if self.executor is not None and recycle_every is not None and self.ran >= recycle_every:
            self.executor.shutdown(wait=True)
            self.executor = None
        if self.executor is None:
            self.start(job.watch_pid)
        self.ran += 1
        return self.executor.submit(run_one_trial, job)

    def kill(self, wait: bool = True) -> None:
        """End the process now (no clean exit: an idle worker has nothing to flush)."""
        if self.executor is not None:
            with contextlib.suppress(Exception):
                self.executor.shutdown(wait=wait, kill_workers=True)
            self.executor = None


def _marking(slot: _Slot) -> Callable[..., Any]:
    """``slot``'s submit for the caller's spare work, marking the slot as lent."""

    def submit(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        slot.lent = True
        return slot.executor.submit(fn, *args, **kwargs)

    return submit


def local_workers(jobs: int) -> int:
    """Worker processes of a local sweep with ``jobs`` (-1: one per core)."""
    import os

    return (os.cpu_count() or 1) if jobs == -1 else int(jobs)


class WarmPool:
    """Local worker processes started ahead of a sweep (:func:`calib.search.run_sweep`'s ``pool``).

    A worker's start-up (Python, TensorFlow, Optuna: about 5 s on 2 cores) otherwise comes after
    the caller has read its data; started first, it overlaps the caller's own start-up. The sweep
    takes the processes it needs (:meth:`take`); :meth:`close` ends the ones it did not take.

    Parameters
    ----------
    n_workers : int
        Processes to start (>= 1).
    """

    def __init__(self, n_workers: int) -> None:
        import os

        self.watch_pid = os.getpid()
        self.slots: list[_Slot] = []
        for _ in range(max(1, int(n_workers))):
            slot = _Slot()
            slot.start(self.watch_pid)
            slot.executor.submit(os.getpid)  # spawns the process now; the initializer imports TF
            self.slots.append(slot)

    def take(self, n: int, watch_pid: int | None) -> list[_Slot]:
        """Up to ``n`` started processes (none when they watch another process than ``watch_pid``)."""
        if watch_pid != self.watch_pid:
            return []
        taken, self.slots = self.slots[:n], self.slots[n:]
        return taken

    def close(self) -> None:
        """End the processes no sweep took."""
        for slot in self.slots:
            slot.kill()
        self.slots = []

    def __enter__(self) -> "WarmPool":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def run_local(job: TrialJob, missing: int, n_workers: int, recycle_every: int | None, study: Any,
              after_trial: Callable[[dict[str, Any]], None], pool: WarmPool | None = None,
              spare: Callable[[Callable[..., Any]], None] | None = None) -> None:
    """``n_workers`` worker processes pull trials until the study holds ``job.n_trials``
    (the started ones of ``pool`` first).

    ``spare(submit)`` is called when a worker has no trial left while others still run (the
    sweep's tail): ``submit(fn, *args)`` runs ``fn`` in that idle worker process and returns
    its future, which outlives the sweep (the process winds down after it)."""
    from concurrent.futures import FIRST_COMPLETED, wait
    from concurrent.futures.process import BrokenProcessPool as _StdBroken

    from joblib.externals.loky.process_executor import BrokenProcessPool

    slots = pool.take(n_workers, job.watch_pid) if pool is not None else []
    slots += [_Slot() for _ in range(n_workers - len(slots))]
    pending: dict[Any, _Slot] = {}
    submitted, crashes = 0, 0
    ok = False
    try:
        for slot in slots:
            pending[slot.submit(job, recycle_every)] = slot
            submitted += 1
        while pending:
            finished, _ = wait(list(pending), return_when=FIRST_COMPLETED)
            for fut in finished:
                slot = pending.pop(fut)
                try:
                    out = fut.result()
                except (BrokenProcessPool, _StdBroken) as exc:
                    crashes += 1
                    slot.kill()
                    mark_interrupted(study, "interrupted: worker process died")
                    if crashes > max(2, n_workers):
                        raise CalibError(f"sweep worker processes keep dying ({crashes} times; last: "
                                         f"{exc}); out of memory? lower jobs or the network size") from None
                    out = {}
                if out is None:
                    slot.retired = True
                    continue
                if out:
                    after_trial(out)
                done, _ = progress_state(study)
                if done + len(pending) < job.n_trials and not slot.retired:
                    pending[slot.submit(job, recycle_every)] = slot
                    submitted += 1
                elif spare is not None and pending and slot.executor is not None:
                    spare(_marking(slot))
        ok = True
    finally:
        for slot in slots:
            if ok and slot.lent:  # every trial is recorded; the spare work winds down after its future
                if slot.executor is not None:
                    slot.executor.shutdown(wait=False)
            else:  # idle (every trial recorded) or interrupted: ended now, no TensorFlow teardown (~1 s of CPU)
                slot.kill(wait=not ok)
        if not ok:
            mark_interrupted(study)


def run_dask(job: TrialJob, missing: int, jobs: int, scheduler: str,
             after_trial: Callable[[dict[str, Any]], None]) -> None:
    """Run the trials as joblib tasks on an existing Dask cluster."""
    import joblib

    try:
        from distributed import Client
    except ImportError:
        raise ConfigError("scheduler needs dask.distributed: pip install 'calib[cluster]'") from None
    try:
        client = Client(scheduler, set_as_default=False, timeout=30)
    except (OSError, TimeoutError) as exc:
        raise ConfigError(f"cannot reach the Dask scheduler {scheduler} ({exc})") from None
    job = dataclasses.replace(job, watch_pid=None)
    # joblib runs n_jobs=1 sequentially in this process: jobs=1 means the whole cluster here
    n_jobs = -1 if jobs == 1 else jobs
    try:
        with joblib.parallel_config(backend="dask", client=client):
            par = joblib.Parallel(n_jobs=n_jobs, return_as="generator_unordered", pre_dispatch="n_jobs")
            for out in par(joblib.delayed(run_one_trial)(job) for _ in range(missing)):
                if out is not None:
                    after_trial(out)
    finally:
        client.close()
