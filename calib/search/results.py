"""What a sweep returns: :class:`TrialRecord`, :class:`SweepResult`, the choice of the best trial
(:func:`one_se_choice`) and the leaderboard (:func:`leaderboard`, :func:`write_leaderboard`).

Also the reading of an Optuna study into these records (:func:`_trial_records`,
:func:`build_result`) and the rule of which trials count toward ``n_trials``
(:func:`_counted_reason`, :func:`trial_counts`).
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import CalibError, ConfigError
from ..nn import ModelConfig
from .space import SearchSpace, file_form
from .storage import mask_url


#: FAIL reasons (prefixes) that do not count toward ``n_trials``: such a trial is re-run.
_UNCOUNTED = ("interrupted", "surplus", "error")


@dataclass(frozen=True)
class TrialRecord:
    """One trial as recorded in the storage.

    Attributes
    ----------
    number : int
        Optuna trial number (0-based, unique in the study).
    params : dict
        Sampled values as written in the search space (``hidden_layers`` a list,
        ``batch_size`` possibly ``"full"``).
    state : str
        ``COMPLETE``, ``PRUNED`` (stopped after some folds, ``[sweep] prune``), ``FAIL`` or
        ``RUNNING`` (another process is still on it).
    score : float or None
        Mean validation MAE over the folds, target unit; ``None`` unless COMPLETE.
    score_std : float or None
        Standard deviation of the fold MAEs (ddof=1), target unit.
    seconds : float or None
        Wall time of the trial's k-fold validation (or until it failed).
    reason : str or None
        Why a FAIL trial failed (``"interrupted"`` for one left running by a killed process), or
        after which fold a PRUNED one stopped.
    best_epochs : tuple of int
        Per fold, the epoch whose weights were kept.
    outputs : dict
        With auxiliary targets: each output's validation MAE, ``{name: [mean, std]}`` in its own
        unit (``score`` is then the objective, :class:`calib.metrics.Objective`); else empty.
    """

    number: int
    params: dict[str, Any]
    state: str
    score: float | None
    score_std: float | None
    seconds: float | None
    reason: str | None
    best_epochs: tuple[int, ...] = ()
    outputs: dict[str, Any] = field(default_factory=dict)

    @property
    def counts(self) -> bool:
        """Whether this trial counts toward ``n_trials`` (finished, not interrupted)."""
        return self.state in ("COMPLETE", "PRUNED") or (self.state == "FAIL" and _counted_reason(self.reason))

    def to_dict(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "params": dict(self.params),
            "state": self.state,
            "score": self.score,
            "score_std": self.score_std,
            "seconds": self.seconds,
            "reason": self.reason,
            "best_epochs": list(self.best_epochs),
            **({"outputs": dict(self.outputs)} if self.outputs else {}),
        }


@dataclass(frozen=True)
class SweepResult:
    """Every trial of a study (resumed ones included) and the best one.

    Attributes
    ----------
    trials : tuple of TrialRecord
        By trial number.
    best : TrialRecord or None
        The COMPLETE trial the sweep keeps (``None`` if none): the lowest score, except that a
        ``physics`` trial within one standard error of it wins (:func:`one_se_choice`);
        lowest number on ties.
    best_config : ModelConfig or None
        ``base_config`` with the best trial's parameters.
    storage : str
        Journal file path or database URL (password masked).
    study_name, strategy : str
    seconds : float
        Wall time of this call.
    unit : str
        Unit of the scores (the target's unit, e.g. ``hPa``).
    validations : mapping of int to CVResult
        The k-fold results, with fold weights, of trials that this call trained (by trial
        number; in memory only, not in the record): the lowest-scoring few
        (:data:`calib.search.sweep.KEPT_VALIDATIONS`) and the base config's first trial. The
        main job keeps the chosen trial's fold models from here instead of validating its
        config again.
    """

    trials: tuple[TrialRecord, ...]
    best: TrialRecord | None
    best_config: ModelConfig | None
    storage: str
    study_name: str
    strategy: str
    seconds: float
    unit: str = ""
    validations: Mapping[int, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def n_counted(self) -> int:
        """Trials that count toward ``n_trials`` (COMPLETE + PRUNED + FAIL with a real reason)."""
        return sum(t.counts for t in self.trials)

    def to_dict(self) -> dict[str, Any]:
        """``{"trials": [...], "best": {...}, ...}``, JSON-able."""
        return {
            "study_name": self.study_name,
            "storage": self.storage,
            "strategy": self.strategy,
            "unit": self.unit,
            "seconds": self.seconds,
            "trials": [t.to_dict() for t in self.trials],
            "best": None if self.best is None else self.best.to_dict(),
            "best_config": None if self.best_config is None else self.best_config.to_dict(),
        }


def _counted_reason(reason: Any) -> bool:
    """Whether a FAIL reason counts toward ``n_trials`` (not interrupted, surplus or an error)."""
    return isinstance(reason, str) and bool(reason) and not reason.startswith(_UNCOUNTED)


def trial_counts(t: Any) -> bool:
    """Whether an Optuna trial counts toward ``n_trials``: COMPLETE, PRUNED, or FAIL with a counted reason."""
    from optuna.trial import TrialState

    return t.state in (TrialState.COMPLETE, TrialState.PRUNED) or (
        t.state == TrialState.FAIL and _counted_reason(t.user_attrs.get("reason"))
    )


def _trial_records(study: Any, space: SearchSpace) -> tuple[TrialRecord, ...]:
    """The study's trials as :class:`TrialRecord`, by number; parameters in the space's order."""
    out = []
    for t in sorted(study.get_trials(deepcopy=False), key=lambda t: t.number):
        ua = t.user_attrs
        params = {k: file_form(k, v) for k, v in t.params.items()}
        score = float(t.value) if t.state.name == "COMPLETE" and t.value is not None else None
        std = ua.get("score_std")
        secs = ua.get("seconds")
        if secs is None and t.datetime_start is not None and t.datetime_complete is not None:
            secs = (t.datetime_complete - t.datetime_start).total_seconds()
        out.append(TrialRecord(
            number=int(t.number),
            params={n: params[n] for n in space.names if n in params} | {
                k: v for k, v in params.items() if k not in space.names},
            state=t.state.name,
            score=score,
            score_std=None if std is None or score is None else float(std),
            seconds=None if secs is None else float(secs),
            reason=ua.get("reason") if t.state.name != "COMPLETE" else None,
            best_epochs=tuple(int(e) for e in ua.get("best_epochs", ())),
            outputs=dict(ua.get("outputs") or {}),
        ))
    return tuple(out)


#: Rank of each model family for the one-standard-error rule: the physics fit (a handful of
#: parameters) is simpler than the network families (``hybrid`` and ``mlp``, thousands).
SIMPLICITY = {"physics": 0, "hybrid": 1, "mlp": 1}


def one_se_choice(entries: Sequence[tuple[str, float, float | None, int]], prefer: int | None = None) -> int:
    """Index of the entry the sweep keeps: the one-standard-error rule on the model family.

    Parameters
    ----------
    entries : sequence of (family, score, score_std, n_folds)
        Per candidate: its model family, mean k-fold MAE (target unit), the standard deviation
        of its fold MAEs (``None`` if unknown) and its number of folds.

    Returns
    -------
    int
        Among the candidates whose score is within one standard error (``std / sqrt(k)``) of
        the lowest score, the one of the simplest family (:data:`SIMPLICITY`: ``physics``
        before the network families ``hybrid`` and ``mlp``, which rank equal); within a rank,
        the ``prefer`` entry (the untuned ``[model]`` default) if it is near, then the
        lowest score; on ties, the first entry.

    Notes
    -----
    Breiman's one-standard-error rule, applied to the physics-vs-network choice only: a
    network (alone or on the physics residual) must beat the physics fit by more than the
    fold-to-fold noise of the score to be chosen over it. On small certificates (24-63
    points) picking the bare lowest score lets a hybrid win by noise and lose on new rows.
    The same holds between a tuned config and the untuned default (``prefer``): with 5 spot
    folds, the lowest of 12 noisy scores is biased low (the search overfits the folds), so
    a tuned config must beat the default by more than one standard error to replace it.
    """
    if not entries:
        raise ValueError("no candidates to choose from")
    lowest = min(range(len(entries)), key=lambda i: (entries[i][1], i))
    _, score, std, k = entries[lowest]
    se = 0.0 if std is None or not math.isfinite(std) or k < 2 else float(std) / math.sqrt(k)
    near = [i for i, e in enumerate(entries) if e[1] <= score + se]

    def rank(i: int) -> tuple[int, int, float, int]:
        return (SIMPLICITY.get(entries[i][0], 1), 0 if i == prefer else 1, entries[i][1], i)

    return min(near, key=rank)


def _family(space: SearchSpace, base: ModelConfig, params: dict[str, Any]) -> str:
    try:
        return space.to_config(base, params).family
    except ConfigError:  # pragma: no cover - every sampled config was built once already
        return str(params.get("family", base.family))


def build_result(study: Any, space: SearchSpace, base: ModelConfig, spec: str, study_name: str,
                 strategy: str, seconds: float, unit: str) -> SweepResult:
    """The :class:`SweepResult` of ``study``: its trials, the best one (:func:`one_se_choice`), its config."""
    recs = _trial_records(study, space)
    done = sorted((r for r in recs if r.state == "COMPLETE"), key=lambda r: r.number)
    best = None
    if done:
        entries = [(_family(space, base, r.params), float(r.score), r.score_std, max(1, len(r.best_epochs)))
                   for r in done]
        best = done[one_se_choice(entries)]
    best_config = None
    if best is not None:
        try:
            best_config = space.to_config(base, best.params)
        except ConfigError:  # pragma: no cover - every sampled config was built once already
            best_config = None
    return SweepResult(trials=recs, best=best, best_config=best_config, storage=mask_url(spec),
                       study_name=study_name, strategy=strategy, seconds=seconds, unit=unit)


def progress_state(study: Any) -> tuple[int, float | None]:
    """(trials that count toward ``n_trials``, lowest COMPLETE score so far) of ``study``."""
    done, best = 0, None
    for t in study.get_trials(deepcopy=False):
        if trial_counts(t):
            done += 1
            if t.state.name == "COMPLETE" and t.value is not None and (best is None or t.value < best):
                best = float(t.value)
    return done, best


def leaderboard(result: SweepResult) -> list[dict[str, Any]]:
    """COMPLETE trials, best first (lowest mean validation MAE; ties by trial number).

    Returns
    -------
    list of dict
        ``rank`` (1 = best), ``number``, ``params``, ``mae`` (mean over folds, target unit;
        with auxiliary targets the objective), ``mae_std``, ``seconds``, ``best_epochs`` and,
        with auxiliary targets, ``outputs`` (each output's MAE ``[mean, std]``).
    """
    done = sorted((t for t in result.trials if t.state == "COMPLETE"), key=lambda t: (t.score, t.number))
    return [
        {"rank": i, "number": t.number, "params": dict(t.params), "mae": t.score,
         "mae_std": t.score_std, "seconds": t.seconds, "best_epochs": list(t.best_epochs),
         **({"outputs": dict(t.outputs)} if t.outputs else {})}
        for i, t in enumerate(done, start=1)
    ]


def leaderboard_stem(study_name: str) -> str:
    """``leaderboard`` for the default study ``calib``, ``leaderboard-<study>`` for any other."""
    return "leaderboard" if study_name == "calib" else f"leaderboard-{study_name}"


def write_leaderboard(result: SweepResult, folder: str | os.PathLike[str]) -> tuple[Path, Path]:
    """Write ``leaderboard.csv`` (one row per completed trial, one column per parameter) and
    ``leaderboard.json`` (the leaderboard, every trial and the best config) atomically.

    A study other than the default ``calib`` writes ``leaderboard-<study>.csv`` / ``.json``,
    so two studies in one storage keep their own. The files are the study's own record and
    are replaced when the same study is resumed.

    Parameters
    ----------
    result : SweepResult
    folder : str or path
        Created if missing; usually the folder of the journal file.

    Returns
    -------
    (csv_path, json_path)

    Raises
    ------
    CalibError
        If the folder cannot be created or written, or a leaderboard file is a link, device
        or pipe, or lies inside an artifact (:func:`calib.fsutil.check_output_path`).
    """
    from ..fsutil import atomic_write, check_output_path

    folder = Path(folder)
    stem = leaderboard_stem(result.study_name)
    for name in (f"{stem}.csv", f"{stem}.json"):  # the study's own record: replaced when it is resumed,
        check_output_path(folder / name, force=True)  # but never through a link, device or pipe
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CalibError(f"{folder}: cannot create folder ({exc.strerror or exc})") from None
    rows = leaderboard(result)
    names: list[str] = []
    for t in result.trials:
        names += [k for k in t.params if k not in names]
    outs: list[str] = []
    for r in rows:
        outs += [k for k in r.get("outputs", {}) if k not in outs]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["rank", "number", "objective" if outs else "mae", "mae_std" if not outs else "objective_std",
                "seconds", *(f"mae_{o}" for o in outs), *names])
    for r in rows:
        w.writerow([r["rank"], r["number"], repr(r["mae"]),
                    "" if r["mae_std"] is None else repr(r["mae_std"]),
                    "" if r["seconds"] is None else f"{r['seconds']:.3f}",
                    *(repr(r.get("outputs", {}).get(o, [""])[0]) for o in outs),
                    *(json.dumps(r["params"][n]) if isinstance(r["params"].get(n), list)
                      else r["params"].get(n, "") for n in names)])
    doc = {"unit": result.unit, "leaderboard": rows, **result.to_dict()}
    csv_path = atomic_write(folder / f"{stem}.csv", lambda p: p.write_text(buf.getvalue(), encoding="utf-8"))
    json_path = atomic_write(folder / f"{stem}.json",
                             lambda p: p.write_text(json.dumps(doc, indent=2) + "\n", encoding="utf-8"))
    return csv_path, json_path
