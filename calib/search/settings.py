"""The ``[sweep]`` table of the config: :class:`SweepSettings` (how to search), validated."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError
from .space import DEFAULT_SPACE, SearchSpace, check_strategy, is_int
from .storage import DEFAULT_STORAGE, storage_spec


_SWEEP_KEYS = ("strategy", "trials", "seed", "folds", "jobs", "storage", "study", "space")


@dataclass(frozen=True)
class SweepSettings:
    """The ``[sweep]`` table: how to search, validated.

    Parameters
    ----------
    strategy : {"random", "grid", "bayes"}, default="random"
    trials : int, default=20
        Total trials the study should reach (>= 1); for ``grid`` at most the grid size.
    seed : int, default=0
        Seed of the sampler and of the fold assignment (>= 0).
    folds : int or None, default=None
        k of the k-fold (>= 2); ``None`` takes ``[validate] folds``.
    jobs : int, default=1
        Parallel worker processes (>= 1, or -1 for every core).
    storage : str, default="runs/sweep.journal"
        A journal file path or an RDB URL (``sqlite:///sweep.db``, ``postgresql://...``).
    study : str, default="calib"
        Study name inside the storage.
    space : SearchSpace, default=DEFAULT_SPACE

    Raises
    ------
    ConfigError
        If a value breaks its rule (one message per rule).
    """

    strategy: str = "random"
    trials: int = 20
    seed: int = 0
    folds: int | None = None
    jobs: int = 1
    storage: str = DEFAULT_STORAGE
    study: str = "calib"
    space: SearchSpace = DEFAULT_SPACE

    def __post_init__(self) -> None:
        check_strategy(self.strategy)
        if not is_int(self.trials) or self.trials < 1:
            raise ConfigError(f"trials >= 1 must hold, got trials={self.trials!r}")
        if not is_int(self.seed) or self.seed < 0:
            raise ConfigError(f"seed must be an integer >= 0, got seed={self.seed!r}")
        if self.folds is not None and (not is_int(self.folds) or self.folds < 2):
            raise ConfigError(f"folds >= 2 must hold, got folds={self.folds!r}")
        check_jobs(self.jobs)
        if not isinstance(self.storage, str) or not self.storage.strip():
            raise ConfigError(f"storage must be a file path or a database URL, got storage={self.storage!r}")
        storage_spec(self.storage)
        if not isinstance(self.study, str) or not self.study.strip():
            raise ConfigError(f"study must be a non-empty name, got study={self.study!r}")
        if not isinstance(self.space, SearchSpace):
            object.__setattr__(self, "space", SearchSpace.from_dict(self.space))
        if self.strategy == "grid":
            for p in self.space.params:
                p.grid_values()

    @classmethod
    def from_dict(cls, mapping: Mapping[str, Any]) -> SweepSettings:
        """Build from the ``[sweep]`` table (its ``space`` sub-table included).

        Raises
        ------
        ConfigError
            If ``mapping`` has an unknown key (the message lists the valid ones) or a value
            breaks its rule.
        """
        if not isinstance(mapping, Mapping):
            raise ConfigError(f"[sweep] must be a table, got {mapping!r}")
        unknown = sorted(str(k) for k in mapping if k not in _SWEEP_KEYS)
        if unknown:
            raise ConfigError(
                f"unknown key{'s' if len(unknown) > 1 else ''} {', '.join(map(repr, unknown))} in "
                f"[sweep]; valid keys: {', '.join(_SWEEP_KEYS)}"
            )
        kw = dict(mapping)
        if "space" in kw:
            kw["space"] = SearchSpace.from_dict(kw["space"])
        return cls(**kw)


def check_jobs(jobs: Any) -> None:
    """Raise :class:`~calib.errors.ConfigError` unless ``jobs >= 1`` or ``jobs == -1`` (every core)."""
    if not is_int(jobs) or jobs == 0 or jobs < -1:
        raise ConfigError(f"jobs >= 1 (or -1 for every core) must hold, got jobs={jobs!r}")
