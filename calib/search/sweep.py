"""The sweep: :func:`run_sweep` (validate, open the study, run the missing trials, read the
result back) and :func:`load_result` (read a finished or running sweep, no training).

See :mod:`calib.search` for the search space, the strategies, durability and processes.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import socket
import time
from collections.abc import Callable, Mapping
from numbers import Integral
from pathlib import Path
from typing import Any

import numpy as np

from ..constraints import NAME, Interval, Options, Satisfies, check_params
from ..errors import ConfigError
from ..nn import ModelConfig
from ..scaling import SCALING
from ..metrics import Objective
from ..validate import CV_RULES, resolve_objective
from .liveness import counts_or_runs, mark_interrupted
from .results import SweepResult, build_result, progress_state
from .samplers import make_sampler
from .space import DEFAULT_SPACE, SearchSpace, check_strategy, value_key
from .storage import is_url, mask_url, open_study, quiet_optuna, storage_spec
from .trial import TrialJob
from .workers import WarmPool, local_workers, run_dask, run_here, run_local

_log = logging.getLogger(__name__)

#: Rules of :func:`run_sweep`'s settings (the k-fold ones are :func:`calib.validate.cross_validate`'s).
SWEEP_RULES: Mapping[str, list] = {
    "n_trials": [Interval(Integral, 1, None)],
    "folds": CV_RULES["folds"],
    "jobs": CV_RULES["jobs"],
    "seed": CV_RULES["seed"],
    "tolerance": CV_RULES["tolerance"],
    "scaling": SCALING,
    "noise_floor": CV_RULES["noise_floor"],
    "recycle_every": [Interval(Integral, 1, None), Options([None], label="None")],
    "study_name": NAME,
    "scheduler": [None, Satisfies(lambda v: isinstance(v, str) and "://" in v,
                                  "{name} is an address such as tcp://host:8786")],
    "progress": [None, Satisfies(callable, "{name} is callable")],
}


#: Trained trials whose k-fold result (fold weights, out-of-fold predictions: ~32 bytes a row) a
#: sweep hands back, the lowest scores first (:attr:`SweepResult.validations`).
KEPT_VALIDATIONS = 4


def _data_fingerprint(ds: Any, rows: np.ndarray) -> str:
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(ds.x(rows), dtype=np.float64).tobytes())
    h.update(np.ascontiguousarray(ds.y(rows), dtype=np.float64).tobytes())
    g = ds.groups(rows)
    if g is not None:
        h.update("\0".join(map(str, g)).encode())
    h.update(json.dumps([list(ds.feature_names), list(ds.target_names)]).encode())
    return h.hexdigest()[:16]


def _bind_study(study: Any, spec: str, study_name: str, attrs: dict[str, Any]) -> None:
    """Record the sweep's identity on a new study; refuse to resume a different one."""
    have = study.user_attrs
    if "strategy" not in have:
        for k, v in attrs.items():
            study.set_user_attr(k, v)
        return
    labels = {
        "space": "search space", "strategy": "strategy", "folds": "number of folds", "seed": "seed",
        "base_config": "base model config", "scaling": "scaling", "data": "data (rows or values)",
    }
    for k, label in labels.items():
        if k in have and value_key(have[k]) != value_key(attrs[k]):
            detail = "" if k in ("space", "base_config", "data") else f" ({have[k]!r}, now {attrs[k]!r})"
            raise ConfigError(
                f"storage {mask_url(spec)} holds a study {study_name!r} with another {label}{detail}; "
                "use a new --storage (or another --study name)"
            )


def study_identity(ds: Any, rows: np.ndarray, base_config: ModelConfig, space: SearchSpace, *, strategy: str,
                   folds: int, seed: int, scaling: str, objective: Objective | None = None) -> dict[str, Any]:
    """What makes a study *this* sweep: resuming is allowed only with the same identity.

    Recorded on the study at its start (its ``user_attrs``) and checked on every resume;
    :func:`study_key` turns it into the name of the default record.

    Returns
    -------
    dict
        ``strategy``, ``space``, ``folds``, ``seed``, ``base_config``, ``scaling`` and
        ``data`` (a fingerprint of the rows' inputs, targets, groups and column names); with
        several outputs also ``objective`` (their tolerances and weights).
    """
    ident = {
        "strategy": strategy, "space": space.to_dict(), "folds": int(folds), "seed": int(seed),
        "base_config": base_config.to_dict(), "scaling": scaling, "data": _data_fingerprint(ds, np.asarray(rows)),
    }
    if objective is not None and len(objective.names) > 1:
        ident["objective"] = objective.to_dict()
    return ident


def study_key(identity: Mapping[str, Any]) -> str:
    """12 hex digits of the SHA-256 of a :func:`study_identity` (not of the budget: trials, jobs)."""
    blob = json.dumps({k: value_key(v) for k, v in sorted(identity.items())}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def default_storage(ds: Any, identity: Mapping[str, Any], runs_dir: str | os.PathLike[str] | None = None) -> str:
    """The trial record of a sweep given no storage: one per data set and search settings.

    ``<runs_dir>/<data file stem>/sweep-<key>/sweep.journal`` with ``key`` =
    :func:`study_key` (data, space, strategy, folds, seed, base config, scaling), so a second
    data set or another space never meets the first one's study, and re-running the same
    sweep (a larger ``n_trials`` too) resumes it. The leaderboard files go beside it.

    Parameters
    ----------
    ds : Dataset
        Its ``source`` names the data (``data`` when it has none).
    identity : mapping
        :func:`study_identity`.
    runs_dir : str or path, optional
        Default: ``$CALIB_RUNS_DIR``, else ``runs``.
    """
    import re

    root = Path(runs_dir if runs_dir is not None else os.environ.get("CALIB_RUNS_DIR", "runs"))
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(str(getattr(ds, "source", "") or "")).stem).strip("-.") or "data"
    return str(root / stem[:80] / f"sweep-{study_key(identity)}" / "sweep.journal")


def run_sweep(
    ds: Any,
    rows: np.ndarray,
    base_config: ModelConfig,
    space: SearchSpace | Mapping[str, Any] | None = None,
    *,
    strategy: str = "random",
    n_trials: int = 12,
    folds: int = 5,
    jobs: int = 1,
    storage: str | os.PathLike[str] | None = None,
    study_name: str = "calib",
    seed: int = 0,
    tolerance: float = 1.0,
    scaling: str = "standard",
    noise_floor: float | None = None,
    scheduler: str | None = None,
    progress: Callable[[int, int, float | None], None] | None = None,
    recycle_every: int | None = 10,
    objective: Objective | None = None,
    prune: bool = True,
    start_with_base: bool = False,
    pool: WarmPool | None = None,
    spare: Callable[[SweepResult, Callable[..., Any]], None] | None = None,
) -> SweepResult:
    """Search hyperparameters: each trial is one config scored by k-fold validation.

    Parameters
    ----------
    ds : Dataset
    rows : ndarray of int
        Rows to validate on (train and dev parts; never the test rows).
    base_config : ModelConfig
        Every trial is ``base_config.replace(**params)``; fix epochs, patience, ... here.
    space : SearchSpace or mapping, optional
        The ``[sweep.space]`` table; :data:`DEFAULT_SPACE` when ``None``.
    strategy : {"random", "grid", "bayes"}, default="random"
    n_trials : int, default=12
        Total trials the study should reach (>= 1), resumed ones included; trials
        interrupted by a killed process do not count. ``grid``: at most the grid size.
    folds : int, default=5
        k of the k-fold (>= 2; GroupKFold with a group column).
    jobs : int, default=1
        Trials run at once: worker processes on this machine (-1: one per core), or
        concurrent tasks on the Dask cluster with ``scheduler`` (1 or -1: one per worker
        thread of the cluster).
    storage : str or path, optional
        Journal file (its folder is created) or an RDB URL (``sqlite:///sweep.db``,
        ``postgresql://user:pw@host/db``) that several machines share. Default: one journal
        per data set and search settings, :func:`default_storage`
        (``runs/<data stem>/sweep-<key>/sweep.journal``).
    study_name : str, default="calib"
    seed : int, default=0
        Seed of the sampler and of the fold assignment (>= 0).
    tolerance : float, default=1.0
        Error Limited Accuracy bound (target unit), recorded with each fold.
    scaling : str, default="standard"
        Input/target scaling fitted per fold.
    noise_floor : float, optional
        Best achievable MAE (target unit), passed to validation.
    scheduler : str, optional
        ``"tcp://HOST:PORT"`` of a Dask scheduler: run the trials there (joblib's dask
        backend) instead of in local worker processes.
    progress : callable, optional
        ``progress(done, total, best_score)``: once at the start (trials already done when
        resuming) and after each trial (``calib sweep`` draws a progress bar with it).
    recycle_every : int or None, default=10
        Replace a local worker process by a fresh one after this many trials, which keeps
        memory flat. ``None`` keeps workers for the whole sweep, and with ``jobs=1`` runs the
        trials in this process. Not used with ``scheduler``.
    objective : Objective, optional
        What each trial's k-fold validation scores (:meth:`calib.config.Config.objective`): with
        auxiliary targets, the weighted mean of each output's MAE over its tolerance; the
        trial's score. Default: as :func:`calib.validate.cross_validate`'s default.
    prune : bool, default=True
        Stop trials that fall behind after some folds (``[sweep] prune``,
        :class:`calib.search.trial.FoldPruner`). A pruned trial counts toward ``n_trials``, is
        recorded as ``PRUNED`` and is never the best.
    start_with_base : bool, default=False
        A new study's first trial is ``base_config`` itself when it is a point of the space
        (:meth:`SearchSpace.point_of`): the main job's untuned default then always has a full
        k-fold to compete with (a first trial is never pruned).
    pool : WarmPool, optional
        Worker processes started ahead (:class:`calib.search.workers.WarmPool`): local workers
        are taken from it first. The caller closes it.
    spare : callable, optional
        ``spare(interim, submit)``, local workers only: called when a worker has no trial left
        while others still run. ``interim`` is the :class:`SweepResult` so far (finished trials
        and their kept k-folds); ``submit(fn, *args)`` runs ``fn`` in the idle worker process
        and returns its future (the main job refits its likely choice there).

    Returns
    -------
    SweepResult
        Every trial in the study, the best one and its config.

    Raises
    ------
    ConfigError
        Before any trial starts: an invalid argument or space entry, more folds than groups,
        a storage holding this study with another space/strategy/seed/folds/config/data, an
        unreachable scheduler. During the sweep: a trial's config error (recorded, then raised).
    CalibError
        Worker processes keep dying (e.g. out of memory).

    Examples
    --------
    >>> res = run_sweep(ds, splits.train_dev, ModelConfig(epochs=200), strategy="bayes",
    ...                 n_trials=30, storage="runs/foil7.journal", jobs=2)  # doctest: +SKIP
    >>> [(t.number, t.score) for t in res.trials][:2]  # doctest: +SKIP
    """
    t_start = time.perf_counter()
    # ---- validate everything before touching the storage
    check_strategy(strategy)
    if not isinstance(base_config, ModelConfig):
        raise ConfigError(f"base_config must be a ModelConfig, got {type(base_config).__name__}")
    space = DEFAULT_SPACE if space is None else SearchSpace.from_dict(space)
    check_params(
        {"n_trials": n_trials, "folds": folds, "jobs": jobs, "seed": seed, "tolerance": tolerance,
         "scaling": scaling, "noise_floor": noise_floor, "recycle_every": recycle_every,
         "study_name": study_name, "scheduler": scheduler, "progress": progress},
        SWEEP_RULES,
    )
    space.check(base_config, strategy)
    rows = np.asarray(rows)
    from ..folds import make_folds

    make_folds(len(rows), folds, ds.groups(rows), seed)  # ConfigError: too few rows/groups
    objective = resolve_objective(ds, tolerance, objective)
    attrs = study_identity(ds, rows, base_config, space, strategy=strategy, folds=folds, seed=seed, scaling=scaling,
                           objective=objective)
    spec = storage_spec(default_storage(ds, attrs) if storage is None else storage)
    total = n_trials
    if strategy == "grid":
        size = space.grid_size()
        if n_trials > size:
            _log.info("grid has %d points: running %d trials, not %d", size, size, n_trials)
        total = min(n_trials, size)

    # ---- open the study, check it is this sweep, mark interrupted trials
    with quiet_optuna():
        study = open_study(spec, study_name, make_sampler(strategy, space, seed), create=True)
    _bind_study(study, spec, study_name, attrs)
    point = space.point_of(base_config) if start_with_base and strategy != "grid" else None
    keep = set()  # trials whose k-fold is kept whatever their score: the base config's
    if point is not None and not study.get_trials(deepcopy=False):
        study.enqueue_trial(point)
        keep.add(0)
    n_int = mark_interrupted(study)
    done0, best0 = progress_state(study)
    if done0 or n_int:
        _log.info("resuming study %r in %s: %d of %d trials done, %d interrupted trial(s) marked failed",
                  study_name, mask_url(spec), done0, total, n_int)
    if progress is not None:
        progress(done0, total, best0)

    job = TrialJob(storage=spec, study_name=study_name, n_trials=total, strategy=strategy, space=space,
                   seed=int(seed), base=base_config.to_dict(), ds=ds, rows=rows, folds=int(folds),
                   tolerance=float(tolerance), scaling=scaling, noise_floor=noise_floor, objective=objective,
                   in_worker=True, watch_pid=os.getpid(), prune=bool(prune))

    validations: dict[int, Any] = {}

    def after_trial(outcome: dict[str, Any]) -> None:
        if outcome.get("cv") is not None:  # memory: the KEPT_VALIDATIONS best, and the base config's
            validations[int(outcome["number"])] = outcome["cv"]
            ranked = sorted((n for n in validations if n not in keep), key=lambda n: validations[n].score)
            for n in ranked[KEPT_VALIDATIONS:]:
                del validations[n]
        if progress is not None:
            progress(*_with_total(progress_state(study), total))

    unit = getattr(getattr(ds, "target", None), "unit", "") or ""

    def on_spare(submit: Callable[..., Any]) -> None:
        try:
            interim = build_result(study, space, base_config, spec, study_name, strategy,
                                   time.perf_counter() - t_start, unit)
            spare(dataclasses.replace(interim, validations=dict(validations)), submit)
        except Exception as exc:  # work ahead is an optimisation: it never sinks the sweep
            _log.warning("work offered to an idle sweep worker failed: %s: %s", type(exc).__name__, exc)

    now, host = time.time(), socket.gethostname()
    busy = sum(counts_or_runs(t, now, host) for t in study.get_trials(deepcopy=False))
    missing = max(0, total - busy)
    if missing:
        if scheduler is not None:
            run_dask(job, missing, jobs, scheduler, after_trial)
        elif jobs == 1 and recycle_every is None:
            run_here(dataclasses.replace(job, in_worker=False, watch_pid=None), missing, after_trial)
        else:
            n_workers = local_workers(jobs)
            run_local(job, missing, min(n_workers, missing), recycle_every, study, after_trial, pool=pool,
                      spare=None if spare is None else on_spare)
    res = build_result(study, space, base_config, spec, study_name, strategy, time.perf_counter() - t_start, unit)
    return dataclasses.replace(res, validations=validations)


def _with_total(state: tuple[int, float | None], total: int) -> tuple[int, int, float | None]:
    return state[0], total, state[1]


def load_result(storage: str | os.PathLike[str] | None = None, study_name: str = "calib") -> SweepResult:
    """Read a sweep's trials back from its storage (no training).

    Raises
    ------
    ConfigError
        If the storage holds no such study, or the study was not written by :func:`run_sweep`.
    """
    spec = storage_spec(storage)
    if not is_url(spec) and not Path(spec).exists():
        raise ConfigError(f"storage {spec} does not exist")
    with quiet_optuna():
        study = open_study(spec, study_name)
    ua = study.user_attrs
    if "space" not in ua or "base_config" not in ua:
        raise ConfigError(f"study {study_name!r} in {mask_url(spec)} was not written by calib's sweep")
    return build_result(study, SearchSpace.from_dict(ua["space"]), ModelConfig.from_dict(ua["base_config"]),
                        spec, study_name, ua.get("strategy", ""), 0.0, "")
