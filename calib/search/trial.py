"""One trial, as a worker process runs it: claim a trial in the shared study, score its
config by k-fold validation, record the outcome (:func:`run_one_trial` on a :class:`TrialJob`).

Also what a worker process does first (:func:`init_worker`: one TensorFlow thread, quiet
Optuna, exit when the sweep's main process dies) and after each trial (:func:`_release_tf`).
"""

from __future__ import annotations

import contextlib
import gc
import logging
import math
import os
import socket
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, TrainingError
from ..nn import ModelConfig
from .liveness import Heartbeat, counts_or_runs, worker_id
from .samplers import make_sampler
from .space import SearchSpace, file_form
from .storage import claim_lock, open_study

_log = logging.getLogger(__name__)


def _rss_mb() -> tuple[float | None, float | None]:
    """(current, peak) resident memory of this process in MiB."""
    cur = peak = None
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                cur = int(line.split()[1]) / 1024
            elif line.startswith("VmHWM:"):
                peak = int(line.split()[1]) / 1024
    except OSError:
        try:
            import psutil

            cur = psutil.Process().memory_info().rss / 2**20
        except Exception:
            pass
    if peak is None:
        try:
            import resource

            r = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            peak = r / 2**20 if sys.platform == "darwin" else r / 1024
        except Exception:
            pass
    return cur, peak


_WATCHING = False


def _watch_parent(pid: int) -> None:
    """Exit this worker at once when the sweep's main process ``pid`` dies (SIGKILL, crash):
    a running trial stays RUNNING and the next run marks it interrupted."""
    while True:
        if os.getppid() != pid:
            os._exit(70)
        time.sleep(0.5)


def init_worker(watch_pid: int | None = None) -> None:
    """First thing in a worker process: one TF thread, quiet Optuna, watch the parent."""
    global _WATCHING
    from ..validate import limit_threads

    limit_threads(lean=True)  # without Keras's scikit-learn, pandas and matplotlib helpers
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    if watch_pid is not None and not _WATCHING:
        _WATCHING = True
        threading.Thread(target=_watch_parent, args=(watch_pid,), name="calib-sweep-watchdog",
                         daemon=True).start()


def _release_tf() -> None:
    if "keras" in sys.modules:
        with contextlib.suppress(Exception):
            sys.modules["keras"].backend.clear_session(free_memory=True)
    gc.collect()


# --------------------------------------------------------------------------- one trial
@dataclass(frozen=True)
class TrialJob:
    """Everything a worker needs to run one trial (picklable)."""

    storage: str
    study_name: str
    n_trials: int
    strategy: str
    space: SearchSpace
    seed: int
    base: dict[str, Any]
    ds: Any
    rows: np.ndarray
    folds: int
    tolerance: float
    scaling: str
    noise_floor: float | None
    in_worker: bool
    watch_pid: int | None
    objective: Any = None  # calib.metrics.Objective
    prune: bool = False


#: Distinct finished trials before a trial may be pruned, and folds it runs before (:class:`FoldPruner`).
PRUNE_STARTUP_TRIALS = 3
PRUNE_WARMUP_FOLDS = 1


class FoldPruner:
    """Prune a trial whose running mean fold score, after fold ``k + 1``, is worse than the median
    of the finished trials' running means after as many folds.

    Optuna's ``MedianPruner`` compares a trial's *best* value over its steps, which suits a
    learning curve but not a running mean over folds of unequal difficulty (the first fold's
    value would stand for the trial). Here the folds are the same for every trial of a study,
    so the running means after ``k + 1`` folds compare like with like. A twin (a config drawn
    again, ``same_config_as``) is counted once. No pruning before :data:`PRUNE_STARTUP_TRIALS`
    distinct trials have finished, nor before fold :data:`PRUNE_WARMUP_FOLDS` + 1.

    Optuna calls :meth:`prune` through ``trial.should_prune()``.
    """

    def __init__(self, n_startup_trials: int = PRUNE_STARTUP_TRIALS, n_warmup_steps: int = PRUNE_WARMUP_FOLDS):
        self.n_startup_trials = int(n_startup_trials)
        self.n_warmup_steps = int(n_warmup_steps)

    def prune(self, study: Any, trial: Any) -> bool:
        from optuna.trial import TrialState

        step = trial.last_step
        if step is None or step < self.n_warmup_steps:
            return False
        others = [t.intermediate_values[step] for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
                  if step in t.intermediate_values and "same_config_as" not in t.user_attrs]
        if len(others) < self.n_startup_trials:
            return False
        return bool(trial.intermediate_values[step] > float(np.median(others)))


def make_pruner(prune: bool) -> Any:
    """The study's pruner: :class:`FoldPruner` when ``prune``, else Optuna's ``NopPruner``."""
    import optuna

    return FoldPruner() if prune else optuna.pruners.NopPruner()


def _report_folds(trial: Any, values: Any, start: int = 0) -> float:
    """Report the running mean of fold scores ``values[:k+1]`` at step ``k`` for ``k >= start``."""
    mean = float("nan")
    for k in range(len(values)):
        mean = float(np.mean(values[: k + 1]))
        if k >= start:
            trial.report(mean, k)
    return mean


#: What a trial copies from a finished trial of the same config (:func:`done_twin`).
TWIN_ATTRS = ("score_std", "best_epochs", "train_mae", "outputs")


def done_twin(study: Any, space: SearchSpace, base: ModelConfig, config: ModelConfig, number: int) -> Any:
    """A COMPLETE trial of ``study`` (not ``number``) whose config trains like ``config``
    (:meth:`calib.nn.ModelConfig.effective`: e.g. L-BFGS ignores the learning rate), or None.

    A trial's k-fold validation is a function of its config, the data, the folds and the seed,
    which a study fixes (:func:`calib.search.sweep.study_identity`): a sampler that draws a config
    again (TPE does, on small spaces) gets the recorded score instead of training it again. A
    PRUNED twin is returned too: the config is pruned again, at no cost.
    """
    from optuna.trial import TrialState

    for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)):
        if t.number == number or (t.state == TrialState.COMPLETE and t.value is None):
            continue
        try:
            other = space.to_config(base, {k: file_form(k, v) for k, v in t.params.items()})
            if other.effective() == config.effective():
                return t
        except ConfigError:
            continue
    return None


def run_one_trial(job: TrialJob) -> dict[str, Any] | None:
    """Claim one trial in the shared study, run it, record it. ``None``: the total is reached.

    Runs in a worker process (or in the caller for ``jobs=1, recycle_every=None``).
    Returns ``number``, ``state``, ``score``, ``reason``, ``seconds`` and, for a COMPLETE trial
    that trained, ``cv``: its :class:`calib.validate.CVResult` with the fold weights.
    """
    if job.in_worker:
        init_worker(job.watch_pid)
    import optuna
    from optuna.trial import TrialState

    from ..validate import cross_validate

    sampler = make_sampler(job.strategy, job.space, job.seed)
    study = open_study(job.storage, job.study_name, sampler)
    study.pruner = make_pruner(job.prune)
    host = socket.gethostname()
    with claim_lock(job.storage, job.study_name):
        now = time.time()
        if sum(counts_or_runs(t, now, host) for t in study.get_trials(deepcopy=False)) >= job.n_trials:
            return None
        trial = study.ask()
        try:
            trial.set_user_attr("worker", worker_id())
            trial.set_user_attr("heartbeat", time.time())
        except BaseException:  # Ctrl-C right after ask: do not leave an anonymous RUNNING trial
            with contextlib.suppress(Exception):
                trial.set_user_attr("reason", "interrupted")
                study.tell(trial, state=TrialState.FAIL)
            raise
    # another machine may have asked at the same time (RDB storage, no shared lock)
    now = time.time()
    ahead = sum(
        1 for t in study.get_trials(deepcopy=False)
        if t.number < trial.number and counts_or_runs(t, now, host)
    )
    if ahead >= job.n_trials:
        trial.set_user_attr("reason", f"surplus: the study already had {job.n_trials} trials")
        study.tell(trial, state=TrialState.FAIL)
        return None

    base = ModelConfig.from_dict(job.base)
    t0 = time.perf_counter()
    outcome: dict[str, Any] = {"number": trial.number, "state": "FAIL", "score": None, "reason": None}
    pending: BaseException | None = None
    with Heartbeat(trial):
        try:
            params = job.space.suggest(trial, base)
            config = job.space.to_config(base, params)
            twin = done_twin(study, job.space, base, config, trial.number)
            if twin is not None:  # the sampler drew a config already validated: same seed and folds, same score
                for step, value in sorted(twin.intermediate_values.items()):
                    trial.report(value, step)
                trial.set_user_attr("same_config_as", int(twin.number))
                if twin.state == TrialState.PRUNED:
                    raise optuna.TrialPruned(f"same config as trial #{twin.number}, which was pruned")
                for key in TWIN_ATTRS:
                    if key in twin.user_attrs:
                        trial.set_user_attr(key, twin.user_attrs[key])
                score = float(twin.value)
            else:
                seen: list[float] = []

                def on_fold(k: int, value: float) -> None:  # one by one: report each fold, maybe prune
                    seen.append(value)
                    mean = _report_folds(trial, seen, start=len(seen) - 1)
                    if len(seen) < job.folds and trial.should_prune():
                        raise optuna.TrialPruned(
                            f"pruned after fold {len(seen)} of {job.folds}: running mean {mean:.4g}, worse than "
                            f"the median of the finished trials after as many folds")

                cv = cross_validate(job.ds, job.rows, config, folds=job.folds, jobs=1,
                                    tolerance=job.tolerance, scaling=job.scaling, seed=job.seed,
                                    noise_floor=job.noise_floor, physics=False, objective=job.objective,
                                    keep_weights=True, on_fold=on_fold)
                _report_folds(trial, cv.objective_values(), start=len(seen))  # stacked folds report at the end
                outcome["cv"] = cv  # its fold models go back to the sweep (SweepResult.validations)
                score, std = cv.objective_mean_std()
                trial.set_user_attr("score_std", float(std))
                trial.set_user_attr("best_epochs", [int(e) for e in cv.best_epochs])
                trial.set_user_attr("train_mae", float(cv.mean_std("mae", "train")[0]))
                if len(cv.outputs.names) > 1:  # several outputs: each one's MAE beside the objective
                    trial.set_user_attr("outputs", {n: [float(v) for v in cv.mean_std("mae", "val", n)]
                                                    for n in cv.outputs.names})
            if math.isfinite(score):
                outcome.update(state="COMPLETE", score=float(score))
            else:
                outcome.pop("cv", None)
                outcome["reason"] = f"validation MAE is {score} (non-finite predictions)"
        except optuna.TrialPruned as exc:
            outcome.update(state="PRUNED", reason=str(exc))
            outcome.pop("cv", None)
        except TrainingError as exc:
            outcome["reason"] = str(exc)
        except ConfigError as exc:
            outcome["reason"] = f"config error: {exc}"
            pending = exc
        except Exception as exc:  # a bug or an environment problem: record it, stop the sweep
            outcome["reason"] = f"error: {type(exc).__name__}: {exc}"
            pending = exc
        except BaseException as exc:  # KeyboardInterrupt, SystemExit
            outcome["reason"] = "interrupted"
            pending = exc
    outcome["seconds"] = time.perf_counter() - t0
    if job.watch_pid is not None and os.getppid() != job.watch_pid:
        os._exit(70)  # the sweep died meanwhile: as the watchdog would (its 0.5 s poll can lag), record nothing
    cur, peak = _rss_mb()
    try:
        trial.set_user_attr("seconds", outcome["seconds"])
        if cur is not None:
            trial.set_user_attr("_rss_mb", round(cur, 1))
        if peak is not None:
            trial.set_user_attr("peak_rss_mb", round(peak, 1))
        if outcome["state"] == "COMPLETE":
            study.tell(trial, outcome["score"])
        elif outcome["state"] == "PRUNED":
            trial.set_user_attr("reason", outcome["reason"])
            study.tell(trial, state=TrialState.PRUNED)
        else:
            trial.set_user_attr("reason", outcome["reason"])
            study.tell(trial, state=TrialState.FAIL)
    except Exception as exc:  # marked interrupted by another process meanwhile
        _log.warning("trial %d could not be recorded: %s", trial.number, exc)
    finally:
        _release_tf()
    if pending is not None:
        raise pending
    return outcome
