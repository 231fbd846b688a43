"""The sweep's Optuna samplers, seeded per trial number, and :func:`preview_trials`.

``random`` and ``bayes`` (TPE) delegate to a fresh sampler seeded by (sweep seed, trial
number), so a trial draws the same parameters whatever process or resume it lands in;
``grid`` is Optuna's ``GridSampler`` in a seeded order that runs an interrupted point again.
"""

from __future__ import annotations

import itertools
import socket
import time
import warnings
from collections.abc import Callable, Mapping
from numbers import Integral
from typing import Any

import numpy as np

from ..constraints import SEED, Interval, check_params
from ..nn import ModelConfig
from .liveness import is_stale
from .results import trial_counts
from .space import SearchSpace, check_strategy, encode_value
from .storage import quiet_optuna


def _trial_seed(seed: int, number: int) -> int:
    return int(np.random.SeedSequence([int(seed), int(number)]).generate_state(1)[0])


def _make_random(seed: int) -> Any:
    from optuna.samplers import RandomSampler

    return RandomSampler(seed=seed)


def _make_tpe(seed: int) -> Any:
    from optuna.samplers import TPESampler

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return TPESampler(seed=seed)


def make_sampler(strategy: str, space: SearchSpace, seed: int) -> Any:
    import optuna

    class PerTrialSampler(optuna.samplers.BaseSampler):
        """Delegates to a fresh sampler seeded by (sweep seed, trial number): the same draws
        whatever process or resume a trial lands in."""

        def __init__(self, factory: Callable[[int], Any], seed: int) -> None:
            self._factory, self._seed = factory, seed
            self._inner = factory(seed)

        def before_trial(self, study: Any, trial: Any) -> None:
            self._inner = self._factory(_trial_seed(self._seed, trial.number))
            self._inner.before_trial(study, trial)

        def infer_relative_search_space(self, study: Any, trial: Any) -> Any:
            return self._inner.infer_relative_search_space(study, trial)

        def sample_relative(self, study: Any, trial: Any, search_space: Any) -> Any:
            return self._inner.sample_relative(study, trial, search_space)

        def sample_independent(self, study: Any, trial: Any, name: str, dist: Any) -> Any:
            return self._inner.sample_independent(study, trial, name, dist)

        def after_trial(self, study: Any, trial: Any, state: Any, values: Any) -> None:
            self._inner.after_trial(study, trial, state, values)

        def reseed_rng(self) -> None:  # pragma: no cover - seeds come from trial numbers
            pass

    class Grid(optuna.samplers.GridSampler):
        """Optuna's GridSampler, but an interrupted grid point is run again, and telling the
        last point does not call ``study.stop()`` (which only works inside ``optimize``)."""

        def __init__(self, space: SearchSpace, seed: int) -> None:
            names = sorted(space.names)
            by_name = {p.name: [encode_value(p.name, v) for v in p.grid_values()] for p in space.params}
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                super().__init__({n: by_name[n] for n in names}, seed=seed)
            self._names = names
            self._points = list(itertools.product(*(by_name[n] for n in names)))
            self._order = np.random.RandomState(seed).permutation(len(self._points)).tolist()
            self._space_attr = {n: by_name[n] for n in names}

        def before_trial(self, study: Any, trial: Any) -> None:
            if "grid_id" in trial.system_attrs or "fixed_params" in trial.system_attrs:
                return
            from optuna.trial import TrialState

            now, host = time.time(), socket.gethostname()
            taken, done = set(), set()
            for t in study.get_trials(deepcopy=False):
                gid = t.system_attrs.get("grid_id")
                if gid is None or t.number == trial.number:
                    continue
                if trial_counts(t):
                    done.add(gid)
                    taken.add(gid)
                elif t.state == TrialState.RUNNING and not is_stale(t, now, host):
                    taken.add(gid)
            free = [i for i in self._order if i not in taken] or [i for i in self._order if i not in done]
            gid = free[0] if free else self._order[0]
            study._storage.set_trial_system_attr(trial._trial_id, "search_space", self._space_attr)
            study._storage.set_trial_system_attr(trial._trial_id, "grid_id", int(gid))

        def sample_independent(self, study: Any, trial: Any, name: str, dist: Any) -> Any:
            gid = trial.system_attrs["grid_id"]
            return self._points[gid][self._names.index(name)]

        def after_trial(self, study: Any, trial: Any, state: Any, values: Any) -> None:
            pass

    if strategy == "grid":
        return Grid(space, seed)
    if strategy == "random":
        return PerTrialSampler(_make_random, seed)
    return PerTrialSampler(_make_tpe, seed)


def preview_trials(space: SearchSpace | Mapping[str, Any], n: int, *, strategy: str = "random",
                   seed: int = 0, base: ModelConfig | None = None) -> list[dict[str, Any]]:
    """The parameters the first ``n`` trials of a sweep would draw, without training.

    Runs the sweep's sampler on an in-memory study with a dummy objective (0.0), so it
    shows exactly the ``random`` and ``grid`` draws of :func:`run_sweep` with this ``seed``
    (``bayes`` draws depend on the scores and only its first, random, trials match).

    Parameters
    ----------
    space : SearchSpace or mapping
    n : int
        Number of trials (>= 1); for ``grid`` at most the grid size.
    strategy : {"random", "grid", "bayes"}, default="random"
    seed : int, default=0
        Seed of the sampler (>= 0), as :func:`run_sweep`'s.
    base : ModelConfig, optional
        The sweep's base config: parameters inert for the config drawn so far are not drawn,
        as in a sweep (:meth:`SearchSpace.suggest`). ``None``: every parameter is drawn.

    Returns
    -------
    list of dict
        File-form parameters, one dict per trial.

    Raises
    ------
    ConfigError
        Bad strategy, ``n``, ``seed`` or space.
    """
    import optuna

    check_strategy(strategy)
    space = SearchSpace.from_dict(space)
    check_params({"n": n, "seed": seed}, {"n": [Interval(Integral, 1, None)], "seed": SEED})
    if strategy == "grid":
        n = min(n, space.grid_size())
    with quiet_optuna():
        study = optuna.create_study(sampler=make_sampler(strategy, space, seed), direction="minimize")
        out = []
        for _ in range(n):
            trial = study.ask()
            out.append(space.suggest(trial, base))
            study.tell(trial, 0.0)
    return out
