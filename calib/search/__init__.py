"""Hyperparameter search: a search space over :class:`~calib.nn.ModelConfig` -> :class:`SweepResult`.

Dataset + rows (the train part) + base config + :class:`SearchSpace` -> trials, each one
config scored by k-fold validation (:func:`calib.validate.cross_validate`, mean validation
MAE in the target's unit), recorded durably in an `Optuna <https://optuna.org>`_ study.

The search space comes from the ``[sweep.space]`` table of the TOML config, one entry per
``ModelConfig`` field::

    [sweep]
    strategy = "bayes"           # grid | random | bayes
    trials = 40                  # the TOTAL the study should reach (resumes count)
    seed = 0
    folds = 5                    # default: [validate] folds
    jobs = 2                     # parallel worker processes on this machine
    storage = "runs/foil7.journal"   # a journal file, or an RDB URL (sqlite:///.., postgresql://..);
                                     # default: runs/<data stem>/sweep-<key>/sweep.journal
    study = "calib"

    [sweep.space]
    learning_rate = { low = 1e-4, high = 3e-2 }            # log scale by default
    l2 = { choices = [0.0, 1e-6, 1e-5, 1e-4] }             # a log range cannot hold 0
    hidden_layers = { choices = [[16], [32, 32], [64, 64]] }
    batch_size = { choices = [16, 32, "full"] }
    dropout = { low = 0.0, high = 0.3, step = 0.1 }
    epochs = { low = 100, high = 400, step = 100 }         # integer bounds: an integer range

Strategies: ``grid`` (the product of the choices; a range needs ``num = N`` points, spaced
geometrically for a log range, or a ``step``), ``random`` (uniform, log-uniform for log
ranges) and ``bayes`` (Optuna's TPE sampler). Random and TPE draws are seeded per trial
number, so a sequential sweep with the same seed tries the same configs and gets the same
scores, and a resumed sweep does not repeat the draws it already made.

Durability and resuming
-----------------------
Every trial is written to the storage as it finishes: a journal file (Optuna's
``JournalStorage`` over ``JournalFileBackend``, the default, one per data set and search
settings: ``runs/<data stem>/sweep-<key>/sweep.journal``, :func:`default_storage`) or a
database URL that several machines can share. Running the same call again resumes: finished
trials are kept; a trial left RUNNING by a process that was killed (Ctrl-C, SIGKILL, a lost
machine) is marked FAIL with the reason ``"interrupted"`` and does not count; ``n_trials`` is
the total the study should reach, so a larger ``n_trials`` adds only the missing trials.
Resuming with another search space, strategy, seed, folds, base config, scaling or data is a
:class:`~calib.errors.ConfigError`.

Processes
---------
Trials run in worker processes (joblib's loky), ``jobs`` of them, each limited to one
TensorFlow thread (:func:`calib.validate.limit_threads`); a worker is replaced by a fresh
process every ``recycle_every`` trials, so memory stays flat whatever TensorFlow keeps per
traced model (each trial also ends with ``keras.backend.clear_session``). With
``scheduler="tcp://HOST:PORT"`` the trials run on an existing Dask cluster through joblib's
dask backend instead; every worker shares the same storage (use an RDB URL, or a journal
file on a filesystem all workers see).

A diverging trial (:class:`~calib.errors.TrainingError`, NaN loss) is recorded FAIL with its
reason and the sweep goes on; a :class:`~calib.errors.ConfigError` stops the sweep before any
trial starts: the whole space is checked up front by building one config per choice and bound.

Modules
-------
:mod:`~calib.search.space` (the space; the `[sweep]` table is :class:`calib.config.SweepSpec`),
:mod:`~calib.search.results` (records, the best trial, the leaderboard),
:mod:`~calib.search.storage` (journal / RDB), :mod:`~calib.search.samplers`,
:mod:`~calib.search.liveness` (heartbeats, interrupted trials), :mod:`~calib.search.trial`
(one trial in a worker), :mod:`~calib.search.workers` (local processes, Dask),
:mod:`~calib.search.sweep` (:func:`run_sweep`). Its terminal text (leaderboard, progress bar) is
the command line's, :mod:`calib.cli.format` and :mod:`calib.cli.progress`.
Importing this package does not import TensorFlow.
"""

from __future__ import annotations

from .results import (SIMPLICITY, SweepResult, TrialRecord, leaderboard, leaderboard_stem, one_se_choice,
                      write_leaderboard)
from .samplers import preview_trials
from .space import DEFAULT_SPACE, LOG_BY_DEFAULT, STRATEGIES, ParamSpec, SearchSpace
from .storage import (DEFAULT_STORAGE, leaderboard_folder, mask_url, open_storage, open_study, quiet_optuna,
                      storage_spec)
from .sweep import default_storage, load_result, run_sweep, study_identity, study_key
from .workers import WarmPool, local_workers

__all__ = [
    "STRATEGIES",
    "LOG_BY_DEFAULT",
    "DEFAULT_STORAGE",
    "DEFAULT_SPACE",
    "ParamSpec",
    "SearchSpace",
    "TrialRecord",
    "SweepResult",
    "SIMPLICITY",
    "one_se_choice",
    "run_sweep",
    "WarmPool",
    "local_workers",
    "load_result",
    "preview_trials",
    "leaderboard",
    "write_leaderboard",
    "leaderboard_stem",
    "default_storage",
    "study_identity",
    "study_key",
    "storage_spec",
    "leaderboard_folder",
    "open_storage",
    "open_study",
    "quiet_optuna",
    "mask_url",
]
