"""k-fold validation of a model configuration, with the physics fit beside it.

Dataset + rows (the train part) + :class:`~calib.nn.ModelConfig` -> :class:`CVResult`.

Every fold builds a fresh model from the frozen config (as scikit-learn's
``clone()`` does). With a group column the folds are those of scikit-learn's
:class:`~sklearn.model_selection.GroupKFold` (computed without importing it), so a sensor
spot is never in training and validation at once. Inside each fold, early stopping uses an
inner dev part carved from the fold's training rows (by group too), so the validation fold
is touched only to score. The physics fit (:mod:`calib.physics`) is fitted and scored on
exactly the same folds.

Folds run in parallel worker processes (joblib/loky) when ``jobs > 1``; each worker
limits TensorFlow to one intra-op and one inter-op thread before TensorFlow starts.
"""

from __future__ import annotations

import logging
import math
from numbers import Real
import os
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Callable, Sequence

import numpy as np

from .constraints import FOLDS, JOBS, SEED, Interval, check_params, require
from .floors import estimate_noise_floor, replicate_sets, spot_floor
from .folds import inner_dev as _inner_dev, make_folds
from .metrics import Metrics, Objective, score

__all__ = ["FoldScore", "CVResult", "Diagnosis", "cross_validate", "make_folds", "diagnose",
           "estimate_noise_floor", "replicate_sets", "spot_floor", "single_task_baseline", "resolve_objective",
           "with_physics"]


# --------------------------------------------------------------------------- results
@dataclass(frozen=True)
class FoldScore:
    """Scores of one fold.

    Attributes
    ----------
    fold : int
        0-based fold number.
    n_train, n_val : int
        Rows the fold trained on (inner dev included) and was scored on.
    n_fit : int
        Rows the network's optimizer fitted: ``n_train`` less the inner dev part that drives
        early stopping (what :func:`calib.nn.refit_config` scales a full-batch refit by).
    val, train : Metrics
        The network on the validation fold and on its own training rows (target unit).
    physics_val, physics_train : Metrics or None
        The physics fit on the same rows.
    physics_kind : str or None
        Which classical form was fitted (``svu``, ``two_site``, ``sbe63``, ``poly``).
    train_loss, dev_loss : tuple of float
        Learning curve: data loss per epoch (scaled units) on the training rows and on the inner
        dev part that drives early stopping (with early stopping off: on the validation fold,
        which then only draws the curve and drives no decision).
    best_epoch : int
        Epoch whose weights were kept (1-based).
    seconds : float
        Wall time of the fold's network training.
    aux_val, aux_train : tuple of Metrics
        The network's scores of each auxiliary output (``[data] aux_targets``, in order), in
        that output's unit and with its tolerance; empty for a single-target model.
    objective : float or None
        The fold's objective (:class:`calib.metrics.Objective`, primary target's unit): its
        validation MAE for a single-target model.
    val_curve : tuple of float
        L-BFGS with early stopping: data loss on the validation fold (scaled units) every
        :data:`calib.nn.training.MONITOR_EVERY` iterations until the fold stopped; it drives no
        decision of the fold (:attr:`CVResult.curve_best_epoch` reads the refit length off it).
        Empty otherwise.
    val_path : ndarray or None
        The fold model's predictions on its validation rows at the same iterations, float32
        (len(val_curve), n_val, n_outputs); not serialised.
    """

    fold: int
    n_train: int
    n_val: int
    val: Metrics
    train: Metrics
    physics_val: Metrics | None
    physics_train: Metrics | None
    physics_kind: str | None
    train_loss: tuple[float, ...]
    dev_loss: tuple[float, ...]
    best_epoch: int
    seconds: float
    aux_val: tuple[Metrics, ...] = ()
    aux_train: tuple[Metrics, ...] = ()
    objective: float | None = None
    n_fit: int = 0
    val_curve: tuple[float, ...] = ()
    val_path: Any = field(default=None, repr=False, compare=False)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d.pop("val_path")
        return d


@dataclass(frozen=True)
class Diagnosis:
    """Bias / variance / dev-overfitting diagnosis against the floors (target unit, MAE).

    Attributes
    ----------
    noise_floor : float or None
        MAE that the readings' own noise sets (:func:`estimate_noise_floor`, or the config).
    noise_floor_source : str
        ``config``, ``replicates`` or ``unknown``.
    spot_floor : float or None
        With grouped folds: MAE of the spot-to-spot part of the out-of-fold error
        (:func:`spot_floor`), which no model of these inputs avoids on an unseen spot.
    floor : float or None
        What the errors are compared with: the noise floor, combined in quadrature with the
        spot floor when the folds hold out whole spots (the *unseen-spot floor*).
    floor_name : str
        ``noise floor`` or ``unseen-spot floor``.
    family : str
        The diagnosed model family (``mlp``, ``hybrid``, ``physics``): the advice fits it.
    """

    noise_floor: float | None
    noise_floor_source: str
    train_mae: float
    val_mae: float
    test_mae: float | None
    avoidable_bias: float | None
    variance: float
    dev_overfitting: float | None
    verdict: str
    spot_floor: float | None = None
    floor: float | None = None
    floor_name: str = "noise floor"
    family: str = "mlp"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class CVResult:
    """The result of k-fold validation of one config.

    Attributes
    ----------
    folds : tuple of FoldScore
    config : dict
        The model config (``ModelConfig.to_dict()``).
    target, unit : str
        Target column and its unit: every error is in this unit.
    group_kfold : bool
        Whether folds were formed by group.
    noise_floor : float or None
        Best achievable MAE (given, or estimated from replicate readings).
    noise_floor_source : str
        ``config``, ``replicates`` or ``unknown``.
    seconds : float
        Wall time of the whole validation.
    fold_weights : tuple, optional
        Each fold's ``(weights, x_scaler dict, y_scaler dict, physics fit dict or None)``,
        kept for the ensemble (:func:`calib.nn.rebuild_member`); not serialised.
    oof : ndarray or None
        Out-of-fold prediction of the primary target for every validated row (in the order
        of ``rows``); not serialised.
    fold_pairs : tuple of (train, validation) index arrays
        The folds, as positions in ``rows``; not serialised.
    spot_floor : float or None
        With grouped folds: the spot-to-spot part of the out-of-fold error (:func:`spot_floor`).
    objective : Objective or None
        The outputs (target first), their units, tolerances and weights; what :attr:`score`
        is. ``None``: the target alone.
    oof_all : ndarray or None
        Out-of-fold predictions of every output, shape (n, n_outputs); not serialised.
    baseline : dict or None
        With auxiliary targets: :func:`single_task_baseline` (each output by its own network of
        the same size, on the same folds) when it was asked for.
    """

    folds: tuple[FoldScore, ...]
    config: dict[str, Any]
    target: str
    unit: str
    group_kfold: bool
    noise_floor: float | None
    noise_floor_source: str
    seconds: float
    fold_weights: tuple[Any, ...] = field(default=(), repr=False, compare=False)
    oof: Any = field(default=None, repr=False, compare=False)
    fold_pairs: tuple[Any, ...] = field(default=(), repr=False, compare=False)
    spot_floor: float | None = None
    objective: Objective | None = None
    oof_all: Any = field(default=None, repr=False, compare=False)
    baseline: dict[str, Any] | None = None

    @property
    def outputs(self) -> Objective:
        """The objective of the outputs (the target alone when none was given)."""
        if self.objective is not None:
            return self.objective
        tol = self.folds[0].val.tolerance if self.folds else 1.0
        return Objective.single(self.target, self.unit, tol)

    def _metrics(self, f: FoldScore, which: str, output: str | None) -> Metrics | None:
        if output is None or output == self.target:
            return getattr(f, which)
        names = self.outputs.names
        if output not in names:
            raise KeyError(f"{output!r} is not an output (outputs: {', '.join(names)})")
        if which not in ("val", "train"):
            return None
        aux = f.aux_val if which == "val" else f.aux_train
        return aux[names.index(output) - 1]

    def mean_std(self, metric: str, which: str = "val", output: str | None = None) -> tuple[float, float]:
        """Mean and standard deviation over folds of ``metric`` of ``which``
        (``val``, ``train``, ``physics_val``, ``physics_train``) of ``output`` (default: the target;
        the physics fit only scores the target)."""
        vals = [getattr(m, metric) for m in (self._metrics(f, which, output) for f in self.folds) if m is not None]
        if not vals:
            return float("nan"), float("nan")
        a = np.asarray(vals, dtype=float)
        return float(a.mean()), float(a.std(ddof=1)) if a.size > 1 else 0.0

    def objective_values(self) -> np.ndarray:
        """Each fold's objective (primary target's unit)."""
        return np.asarray([f.val.mae if f.objective is None else f.objective for f in self.folds], dtype=float)

    def objective_mean_std(self) -> tuple[float, float]:
        """Mean and standard deviation over folds of the objective."""
        a = self.objective_values()
        if a.size == 0:
            return float("nan"), float("nan")
        return float(a.mean()), float(a.std(ddof=1)) if a.size > 1 else 0.0

    @property
    def score(self) -> float:
        """Mean validation objective over folds: what a sweep minimises (the target's MAE for a
        single-target model; :class:`calib.metrics.Objective` with auxiliary targets)."""
        return self.objective_mean_std()[0]

    @property
    def best_epochs(self) -> list[int]:
        return [f.best_epoch for f in self.folds]

    @property
    def curve_best_epoch(self) -> int | None:
        """Iteration at which the folds' mean validation curve (:attr:`FoldScore.val_curve`) is lowest.

        Each fold's curve ends where its early stopping ended it; past that end it is held at
        its last value. ``None`` unless every fold has a curve (L-BFGS with early stopping).
        This is k-fold cross-validation of the iteration count, which the refit uses
        (:func:`calib.nn.refit_config`); each fold's own early stopping watches an inner dev
        part of one or two groups and stops earlier than the validation folds' minima.
        """
        from .nn.training import MONITOR_EVERY

        curves = [np.asarray(f.val_curve, dtype=np.float64) for f in self.folds]
        if not curves or any(c.size == 0 or not np.isfinite(c).all() for c in curves):
            return None
        n = max(c.size for c in curves)
        held = np.stack([np.concatenate([c, np.full(n - c.size, c[-1])]) for c in curves])
        return int((int(np.argmin(held.mean(axis=0))) + 1) * MONITOR_EVERY)

    def oof_at(self, iteration: int) -> tuple[np.ndarray, np.ndarray] | None:
        """Out-of-fold predictions of the fold models at ``iteration`` (their recorded paths).

        A fold that stopped before ``iteration`` gives its last recorded point. Returns
        ``(primary target (n,), every output (n, n_outputs))`` in the order of the validated
        rows, as :attr:`oof` and :attr:`oof_all`; ``None`` unless every fold has a path.
        """
        from .nn.training import MONITOR_EVERY

        paths = [f.val_path for f in self.folds]
        if (self.oof_all is None or len(self.fold_pairs) != len(paths)
                or any(p is None or len(p) == 0 for p in paths)):
            return None
        k = max(int(iteration) // MONITOR_EVERY, 1) - 1
        out = np.empty_like(np.asarray(self.oof_all, dtype=np.float64))
        for (_tr, va), p in zip(self.fold_pairs, paths):
            out[va] = p[min(k, len(p) - 1)]
        return out[:, 0].copy(), out

    @property
    def refit_oof(self) -> tuple[np.ndarray, np.ndarray, str]:
        """Out-of-fold predictions of fold models trained as the final model is: ``(oof, oof_all, source)``.

        For L-BFGS with validation curves (:attr:`curve_best_epoch`) the refit trains to the
        curve's lowest iteration, so the residuals that size the interval and the budget are the
        fold models' at that iteration (:meth:`oof_at`), not at their own early stop; otherwise
        :attr:`oof` and :attr:`oof_all` (also for a ``hybrid`` whose folds kept the physics
        fit, which refits as ``physics``).
        """
        it = self.curve_best_epoch
        if it is not None:
            from .nn import ModelConfig, refit_config

            base = ModelConfig.from_dict(self.config)
            if refit_config(base, self.best_epochs, 1)[0].family != base.family:
                it = None
        at = None if it is None else self.oof_at(it)
        if at is None:
            return np.asarray(self.oof, float), (None if self.oof_all is None else np.asarray(self.oof_all, float)), \
                "out-of-fold"
        return at[0], at[1], f"out-of-fold at iteration {it} (the refit's length)"

    @property
    def fit_rows(self) -> list[int]:
        """Rows each fold's network was fitted on (:attr:`FoldScore.n_fit`)."""
        return [f.n_fit for f in self.folds]

    def summary(self) -> dict[str, Any]:
        """Mean +/- std of every metric for the network and the physics fit."""
        out: dict[str, Any] = {}
        for which in ("val", "train", "physics_val", "physics_train"):
            out[which] = {m: dict(zip(("mean", "std"), self.mean_std(m, which)))
                          for m in ("mae", "rmse", "max_abs", "r2", "ela")}
        obj = self.outputs
        out["outputs"] = {
            name: {"unit": unit, "tolerance": tol, "weight": w,
                   **{which: {m: dict(zip(("mean", "std"), self.mean_std(m, which, name)))
                              for m in ("mae", "rmse", "max_abs", "r2", "ela")} for which in ("val", "train")}}
            for name, unit, tol, w in zip(obj.names, obj.units, obj.tolerances, obj.weights)}
        out["objective"] = {**dict(zip(("mean", "std"), self.objective_mean_std())),
                            "formula": obj.describe(), "label": obj.label}
        return out

    def diagnosis(self, test_mae: float | None = None, tuned: bool | None = None) -> Diagnosis:
        return diagnose(self.mean_std("mae", "train")[0], self.mean_std("mae")[0], test_mae,
                        self.noise_floor, self.noise_floor_source, spot=self.spot_floor,
                        family=str(self.config.get("family", "mlp")), tuned=tuned)

    def to_dict(self, test_mae: float | None = None, tuned: bool | None = None) -> dict[str, Any]:
        return {
            "target": self.target,
            "unit": self.unit,
            "group_kfold": self.group_kfold,
            "n_folds": len(self.folds),
            "config": self.config,
            "summary": self.summary(),
            "folds": [f.to_dict() for f in self.folds],
            "diagnosis": self.diagnosis(test_mae, tuned).to_dict(),
            "seconds": self.seconds,
            "objective": self.outputs.to_dict(),
            "baseline": self.baseline,
        }


#: Advice per family for high avoidable bias and for high variance.
_ADVICE = {
    "physics": ("the classical form cannot follow these data; try family = \"hybrid\" (a network on its "
                "residual) or \"mlp\"",
                "the classical fit varies across folds; use more calibration points or a simpler form "
                "(kind = \"svu\")"),
    "network": ("try a larger network, more epochs, a larger learning rate or less regularisation",
                "try more data or spots, stronger L2/dropout, a smaller network or earlier stopping"),
}


def diagnose(train_mae: float, val_mae: float, test_mae: float | None, floor: float | None,
             floor_source: str = "config", *, spot: float | None = None, family: str = "mlp",
             tuned: bool | None = None) -> Diagnosis:
    """Bias / variance / dev-overfitting diagnosis with a one-line plain-language verdict.

    ``avoidable_bias = train - floor``, ``variance = validation - train``,
    ``dev_overfitting = test - validation`` (all MAE, target unit). ``floor`` is the noise
    floor; with ``spot`` (grouped folds) the errors are compared with the unseen-spot floor
    ``sqrt(floor**2 + spot**2)`` (a network without the spot's identity cannot learn a
    spot's own offset, on training spots either). The advice fits ``family``. ``tuned``:
    whether the config was chosen on these folds (False: the main job kept the untuned
    ``[model]`` default, so a test error above the validation error is not the search's
    overfitting but a test part unlike the folds; None: unknown).
    """
    unseen = spot is not None
    if floor is not None and unseen:
        ref_floor: float | None = math.hypot(floor, spot)
    elif unseen:
        ref_floor = spot
    else:
        ref_floor = floor
    name = "unseen-spot floor" if unseen else "noise floor"
    bias = None if ref_floor is None else train_mae - ref_floor
    var = val_mae - train_mae
    dev = None if test_mae is None else test_mae - val_mae
    ref = max(val_mae, 1e-12)
    bias_advice, var_advice = _ADVICE["physics" if family == "physics" else "network"]
    test_above = dev is not None and dev > max(0.25 * val_mae, 2 * abs(var), 1e-12)
    if test_above and tuned is False:
        verdict = ("test part unlike the folds: the test error is well above the validation error, and the "
                   "config was not tuned on the folds (the untuned default was kept), so the test "
                   + ("spots are harder than the folds' spots" if unseen else "rows differ from the folds' rows")
                   + "; one test part is one draw: judge the model on more " + ("spots" if unseen else "data"))
    elif test_above:
        verdict = ("dev overfitting: the test error is well above the validation error; the search "
                   "tuned to the validation folds or the test spots differ; use more folds or more spots")
    elif ref_floor is not None and val_mae <= 1.5 * ref_floor:
        verdict = (f"near the {name}: the model is about as good as its inputs allow"
                   + ("; spot-to-spot variation sets that floor, a two-point check per spot (calib adjust) "
                      "removes most of it" if unseen and spot is not None and floor is not None and spot > floor
                      else ""))
    elif bias is not None and bias > 0.5 * ref and bias >= var:
        verdict = f"high avoidable bias: training error is far above the {name}; {bias_advice}"
    elif var > 0.5 * ref and (bias is None or var > bias):
        verdict = f"high variance: validation error is well above training error; {var_advice}"
    else:
        verdict = ("balanced: bias and variance are both moderate; " + (
            "the classical form fits these data about as well as it can; family = \"hybrid\" may still help"
            if family == "physics" else "a hyperparameter sweep may still help"))
    return Diagnosis(floor, floor_source if floor is not None else "unknown", train_mae, val_mae,
                     test_mae, bias, var, dev, verdict, spot_floor=spot, floor=ref_floor, floor_name=name,
                     family=family)


_THREADS_LIMITED = False


def one_thread_env() -> None:
    """The environment of :func:`limit_threads` (one TF and OpenMP thread, TF quiet), set
    without starting TensorFlow: before anything loads a threaded runtime, e.g. before
    :func:`calib.nn.tf.import_in_background`. A value the user set is kept."""
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")
    os.environ.setdefault("TF_NUM_INTEROP_THREADS", "1")
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def limit_threads(lean: bool = False) -> None:
    """One intra-op and one inter-op TF thread (before TF starts): in a fresh worker, and in the main job.

    ``lean`` imports TensorFlow without Keras's optional helpers (:func:`calib.nn.tf.tensorflow`;
    a sweep worker's start-up).
    """
    global _THREADS_LIMITED
    if _THREADS_LIMITED:
        return
    one_thread_env()
    from .nn.tf import tensorflow as _quiet_tf

    def _one_thread(tf: Any) -> None:
        try:
            tf.config.threading.set_intra_op_parallelism_threads(1)
            tf.config.threading.set_inter_op_parallelism_threads(1)
        except RuntimeError:  # TF already running in this process: the env vars above rule
            pass

    _quiet_tf(before_first_op=_one_thread, lean=lean)
    _THREADS_LIMITED = True


def _show_training_log() -> None:
    """In a worker process of a verbose run: the per-epoch losses on stderr, as the parent shows them.

    The parent's logging set-up (``calib -v``) does not reach a fresh worker process.
    """
    log = logging.getLogger("calib.nn.training")
    if not log.hasHandlers():
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        log.addHandler(handler)
        log.setLevel(logging.INFO)


def _fold_rows(task: dict[str, Any], cfg: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """A fold's network training rows and its dev rows (the inner dev part, or the validation fold)."""
    x_tr, y_tr, x_va, y_va = task["x_tr"], task["y_tr"], task["x_va"], task["y_va"]
    early = cfg.patience is not None and cfg.family != "physics"
    if early:
        inner_tr, inner_dev = _inner_dev(len(x_tr), task["g_tr"], cfg.seed + task["fold"])
    else:
        inner_tr, inner_dev = np.arange(len(x_tr)), np.arange(0)
    if len(inner_dev) == 0:
        inner_tr = np.arange(len(x_tr))
    if len(inner_dev):
        return x_tr[inner_tr], y_tr[inner_tr], x_tr[inner_dev], y_tr[inner_dev]
    # no early stopping: the validation fold only draws the dev learning curve, no decision uses it
    return x_tr[inner_tr], y_tr[inner_tr], x_va, y_va


def _member_args(task: dict[str, Any]) -> dict[str, Any]:
    return {"scaling": task["scaling"], "feature_names": task["feature_names"],
            "feature_units": task["feature_units"], "target_unit": task["target_unit"],
            "verbose": bool(task.get("verbose"))}


def _score_fold(task: dict[str, Any], member: Any, n_fit: int) -> dict[str, Any]:
    """Score one fold's trained member (and the physics fit) on its rows; plain data out.
    ``n_fit``: the rows its network was fitted on (:attr:`FoldScore.n_fit`)."""
    from .nn import predict_member

    x_tr, y_tr, x_va, y_va = task["x_tr"], task["y_tr"], task["x_va"], task["y_va"]
    tol = task["tolerance"]
    tols = task.get("tolerances") or [tol]
    p_va = predict_member(member, x_va)
    p_tr = predict_member(member, x_tr)
    val = score(y_va[:, 0], p_va[:, 0], tol)
    aux_val = tuple(score(y_va[:, j], p_va[:, j], tols[j]) for j in range(1, y_va.shape[1]))
    obj = task.get("objective")
    out: dict[str, Any] = {
        "fold": task["fold"],
        "n_train": len(x_tr),
        "n_fit": int(n_fit),
        "n_val": len(x_va),
        "val": val,
        "train": score(y_tr[:, 0], p_tr[:, 0], tol),
        "train_loss": member.train_loss,
        "dev_loss": member.dev_loss,
        "best_epoch": member.best_epoch,
        "seconds": member.seconds,
        "pred_val": p_va,
        "aux_val": aux_val,
        "aux_train": tuple(score(y_tr[:, j], p_tr[:, j], tols[j]) for j in range(1, y_tr.shape[1])),
        "objective": None if obj is None else Objective.from_dict(obj).value([m.mae for m in (val, *aux_val)]),
        "val_curve": member.monitor_loss,
        "val_path": member.monitor_pred,
        "weights": [np.asarray(w) for w in member.model.get_weights()] if task.get("keep_weights") else None,
        "x_scaler": member.x_scaler.to_dict(),
        "y_scaler": member.y_scaler.to_dict(),
        "physics": None if member.physics is None else member.physics.to_dict(),
        "physics_val": None, "physics_train": None, "physics_kind": None,
    }
    if task.get("physics", True):
        out.update(_physics_scores(member.physics, x_tr, y_tr[:, 0], x_va, y_va[:, 0], task["feature_names"],
                                   task["feature_units"], task["target_unit"],
                                   str(task["config"].get("physics_kind", "auto")), tol))
    return out


def _physics_scores(own: Any, x_tr: np.ndarray, y_tr: np.ndarray, x_va: np.ndarray, y_va: np.ndarray,
                    names: list[str], units: list[str], target_unit: str, kind: str,
                    tol: float) -> dict[str, Any]:
    """One fold's ``physics_val``, ``physics_train`` and ``physics_kind``: the classical fit on the
    fold's training rows (``own``, a hybrid/physics member's fit on exactly these rows, when it
    has one), scored on both parts. A failed fit is named in ``physics_kind``, never raised."""
    from .physics import fit_physics

    try:
        b = own if own is not None else fit_physics(x_tr, y_tr, names, units, target_unit, kind=kind)
        return {"physics_val": score(y_va, b.predict(x_va), tol), "physics_train": score(y_tr, b.predict(x_tr), tol),
                "physics_kind": b.kind}
    except Exception as exc:  # the physics fit must never sink a validation run
        return {"physics_val": None, "physics_train": None, "physics_kind": f"failed: {type(exc).__name__}: {exc}"}


def _free_models() -> None:
    """Free the graphs and models of finished folds (long-lived workers, long sweeps)."""
    try:
        from .nn.tf import keras as _quiet_keras

        _quiet_keras().backend.clear_session(free_memory=True)
    except Exception:  # pragma: no cover
        pass


def _fit_fold(task: dict[str, Any]) -> dict[str, Any]:
    """Train and score one fold. Runs in a worker process; takes and returns plain data."""
    if task.get("limit_threads"):
        limit_threads()
        if task.get("verbose"):
            _show_training_log()
    from .nn import ModelConfig, fit_member

    cfg = ModelConfig.from_dict(task["config"])
    rows = _fold_rows(task, cfg)
    # early stopping on an inner dev part: the validation fold's curve is recorded beside it
    monitor = None if rows[2] is task["x_va"] else (task["x_va"], task["y_va"])
    member = fit_member(cfg, *rows, physics_rows=(task["x_tr"], task["y_tr"]), monitor=monitor,
                        **_member_args(task))
    out = _score_fold(task, member, len(rows[0]))
    del member
    if task.get("free_models", True):  # a worker process frees after each fold
        _free_models()
    return out


def _fit_folds_stacked(tasks: list[dict[str, Any]], progress: Callable[[int, int], None] | None
                       ) -> list[dict[str, Any]]:
    """Train every fold's network in one stacked call (:func:`calib.nn.fit_members`), then score each."""
    from .nn import ModelConfig, fit_members

    cfg = ModelConfig.from_dict(tasks[0]["config"])
    rows = [_fold_rows(t, cfg) for t in tasks]
    members = fit_members(cfg, rows, physics_rows=[(t["x_tr"], t["y_tr"]) for t in tasks], **_member_args(tasks[0]))
    results = []
    for t, member, r in zip(tasks, members, rows):
        results.append(_score_fold(t, member, len(r[0])))
        if progress:
            progress(len(results), len(tasks))
    del members
    _free_models()
    return results


#: Rules of :func:`cross_validate`'s settings.
CV_RULES = {
    "folds": FOLDS,
    "jobs": JOBS,
    "seed": SEED,
    "tolerance": [Interval(Real, 0, None, closed="neither")],
    "noise_floor": [None, Interval(Real, 0, None)],
}


def cross_validate(
    ds: Any,
    rows: np.ndarray,
    config: Any,
    *,
    folds: int = 5,
    jobs: int = 1,
    tolerance: float = 1.0,
    scaling: str = "standard",
    seed: int = 0,
    noise_floor: float | None = None,
    physics: bool = True,
    keep_weights: bool = False,
    progress: Callable[[int, int], None] | None = None,
    verbose: bool = False,
    stacked: bool | None = None,
    objective: Objective | None = None,
    on_fold: Callable[[int, float], None] | None = None,
) -> CVResult:
    """k-fold validation of ``config`` on ``rows`` of ``ds`` (the train part; never test rows).

    Parameters
    ----------
    ds : Dataset
    rows : ndarray of int
        Row indices to validate on (train and dev parts).
    config : ModelConfig
        Frozen network config; every fold builds a fresh model from it.
    folds : int, default=5
        Number of folds (GroupKFold when ``ds`` has a group column).
    jobs : int, default=1
        Parallel worker processes (joblib loky); 1 runs in this process; -1 uses every core.
    tolerance : float, default=1.0
        Error Limited Accuracy bound, target unit.
    scaling : str, default="standard"
        Input and target scaling, fitted on each fold's training rows only.
    seed : int, default=0
        Seed of the fold assignment.
    noise_floor : float, optional
        Best achievable MAE (target unit); estimated from replicates when ``None``.
    physics : bool, default=True
        Also fit and score the physics fit on the same folds.
    keep_weights : bool, default=False
        Keep each fold's trained weights in ``CVResult.fold_weights`` (for an ensemble).
    progress : callable, optional
        Called as ``progress(done, total)`` after each fold.
    verbose : bool, default=False
        Log each fold's losses per epoch (logger ``calib.nn.training``, INFO); with worker
        processes (``jobs > 1``) each worker writes them to its stderr.
    stacked : bool or None, default=None
        Train the folds' networks together in one compiled call on stacked weights
        (:func:`calib.nn.fit_members`): the same per-fold models as one by one (same seeds,
        rows and early stopping; equal to float tolerance). ``None`` stacks when the folds
        run in this process (``jobs`` 1) and the optimizer is a first-order one (Adam & co:
        1.3-2.3x faster stacked); L-BFGS folds run one by one, which measured faster than
        its stacked lockstep on 2 cores (benchmarks/stacked_folds.md). Worker processes
        (``jobs > 1``) train one fold each. ``True`` with ``jobs > 1`` is refused.
    objective : Objective, optional
        The outputs' tolerances and weights (:meth:`calib.config.Config.objective`); its
        primary tolerance replaces ``tolerance``. Default: ``tolerance`` for the target,
        :func:`calib.config.auto_tolerance` for each auxiliary target, every weight 1.
    on_fold : callable, optional
        ``on_fold(k, value)`` after fold ``k`` (0-based, in order) with its objective value,
        when the folds train one by one in this process (L-BFGS, or ``stacked=False``, with
        ``jobs`` 1); not called for stacked or parallel folds. An exception it raises stops the
        validation and propagates (the sweep prunes a trial so).

    Returns
    -------
    CVResult

    Raises
    ------
    ConfigError
        Fewer rows or groups than folds.
    TrainingError
        A fold diverged (NaN/inf loss).
    """
    check_params({"folds": folds, "jobs": jobs, "seed": seed, "tolerance": tolerance, "noise_floor": noise_floor},
                 CV_RULES)
    rows = np.asarray(rows)
    x, y = ds.x(rows), ds.y(rows)
    objective = resolve_objective(ds, tolerance, objective)
    tolerance = objective.tolerances[0]
    g = ds.groups(rows)
    pairs = make_folds(len(rows), folds, g, seed)
    cfg_dict = config.to_dict()
    n_jobs = os.cpu_count() or 1 if jobs == -1 else jobs
    n_jobs = min(n_jobs, folds)
    tasks = [{
        "fold": i, "config": cfg_dict, "x_tr": x[tr], "y_tr": y[tr], "x_va": x[va], "y_va": y[va],
        "g_tr": None if g is None else g[tr], "tolerance": tolerance, "scaling": scaling,
        "feature_names": list(ds.feature_names), "feature_units": [c.unit for c in ds.features],
        "target_unit": ds.target.unit, "physics": physics, "keep_weights": keep_weights,
        "limit_threads": n_jobs > 1, "verbose": verbose,
        "tolerances": list(objective.tolerances), "objective": objective.to_dict(),
    } for i, (tr, va) in enumerate(pairs)]
    t0 = time.perf_counter()
    results: list[dict[str, Any]] = []
    if stacked or (stacked is None and n_jobs == 1 and config.optimizer != "lbfgs"):
        require(n_jobs == 1, "jobs = 1 when stacked=True", jobs=jobs, note=" (stacked folds train in this process)")
        results = _fit_folds_stacked(tasks, progress)
    elif n_jobs == 1:
        # one free after the last fold, not after each: clear_session costs 0.3-0.4 s (a garbage
        # collection and TensorFlow's kernel caches) and a fold's model holds about 5 MB
        try:
            for t in tasks:
                results.append(_fit_fold({**t, "free_models": False}))
                if progress:
                    progress(len(results), len(tasks))
                if on_fold is not None:
                    r = results[-1]
                    on_fold(int(r["fold"]), float(r["val"].mae if r["objective"] is None else r["objective"]))
        finally:
            _free_models()
    else:
        from joblib import Parallel, delayed

        par = Parallel(n_jobs=n_jobs, backend="loky", return_as="generator_unordered")
        for r in par(delayed(_fit_fold)(t) for t in tasks):
            results.append(r)
            if progress:
                progress(len(results), len(tasks))
    results.sort(key=lambda r: r["fold"])
    fold_scores = tuple(FoldScore(**{k: r[k] for k in FoldScore.__dataclass_fields__}) for r in results)
    source = "config"
    pred_all = np.empty((len(rows), y.shape[1]))
    for (tr, va), r in zip(pairs, results):
        pred_all[va] = r["pred_val"]
    pred = pred_all[:, 0].copy()
    if noise_floor is None:
        noise_floor = estimate_noise_floor(ds, rows, pred)
        source = "replicates" if noise_floor is not None else "unknown"
    return CVResult(
        folds=fold_scores, config=cfg_dict, target=ds.target.name, unit=ds.target.unit,
        group_kfold=g is not None, noise_floor=noise_floor, noise_floor_source=source,
        seconds=time.perf_counter() - t0,
        fold_weights=tuple((r["weights"], r["x_scaler"], r["y_scaler"], r["physics"]) for r in results)
        if keep_weights else (),
        oof=pred, fold_pairs=tuple(pairs),
        spot_floor=None if g is None else spot_floor(y[:, 0], pred, g),
        objective=objective, oof_all=pred_all,
    )


def with_physics(cv: CVResult, ds: Any, rows: np.ndarray, fits: Sequence[Any] | None = None) -> CVResult:
    """``cv`` with the physics fit scored on its folds, as ``cross_validate(..., physics=True)``
    scores it (a sweep trial validates without it): each fold's classical fit on the fold's
    training rows (a hybrid/physics member's own fit when it has one), scored on both parts.

    Parameters
    ----------
    cv : CVResult
        From :func:`cross_validate` on ``rows`` of ``ds`` (its ``fold_pairs`` are positions in ``rows``).
    ds : Dataset
    rows : ndarray of int
    fits : sequence of PhysicsModel or None, optional
        Each fold's classical fit, already made on exactly that fold's training rows with the
        config's ``physics_kind`` (e.g. by the main job during its sweep); None entries, and
        folds of a hybrid/physics member (their own fit), are fitted or taken as usual.

    Returns
    -------
    CVResult
        ``cv`` itself when every fold already has its physics fit.
    """
    from .physics import PhysicsModel

    if all(f.physics_kind is not None for f in cv.folds):
        return cv
    rows = np.asarray(rows)
    x, y = ds.x(rows), ds.y(rows)[:, 0]
    names, units = list(ds.feature_names), [c.unit for c in ds.features]
    kind = str(cv.config.get("physics_kind", "auto"))
    own = [fw[3] for fw in cv.fold_weights] if cv.fold_weights else [None] * len(cv.folds)
    made = list(fits) if fits is not None and len(fits) == len(cv.folds) else [None] * len(cv.folds)
    folds = tuple(
        replace(f, **_physics_scores(fit if phys is None else PhysicsModel.from_dict(phys), x[tr], y[tr], x[va],
                                     y[va], names, units, ds.target.unit, kind, f.val.tolerance))
        for f, (tr, va), phys, fit in zip(cv.folds, cv.fold_pairs, own, made))
    return replace(cv, folds=folds)


def resolve_objective(ds: Any, tolerance: float, objective: Objective | None) -> Objective:
    """The given objective, checked against ``ds``'s outputs, or the default one."""
    from .config import auto_tolerance
    from .errors import ConfigError

    names = tuple(ds.target_names)
    if objective is None:
        aux = tuple(ds.aux_targets)
        return Objective(names, (ds.target.unit, *(c.unit for c in aux)),
                         (float(tolerance), *(auto_tolerance(c.unit) for c in aux)), (1.0,) * len(names))
    if not isinstance(objective, Objective):
        raise ConfigError(f"objective must be a calib.metrics.Objective or None, got {type(objective).__name__}")
    if tuple(objective.names) != names:
        raise ConfigError(f"objective outputs {', '.join(objective.names)} must be the data's outputs "
                          f"{', '.join(names)} (target first)")
    return objective


def single_task_baseline(ds: Any, rows: np.ndarray, config: Any, multi: CVResult, *, folds: int, seed: int,
                         scaling: str = "standard", jobs: int = 1) -> dict[str, Any]:
    """Each output predicted by its own network of the same size, on the same folds as ``multi``.

    The shared (multi-task) network of ``multi`` is compared output by output with a
    single-task network of the same config (family ``mlp`` for an auxiliary output when the
    config's family uses the O2 physics form) trained on the same rows and folds (same seed).

    Parameters
    ----------
    ds : Dataset
        With auxiliary targets.
    rows : ndarray of int
        The rows ``multi`` validated on.
    config : ModelConfig
        The shared network's config.
    multi : CVResult
        :func:`cross_validate` of ``config`` on ``ds``.
    folds, seed, scaling, jobs
        As for :func:`cross_validate` (the same as for ``multi``).

    Returns
    -------
    dict
        ``outputs``: per output ``name``, ``unit``, ``multi`` and ``single`` (validation MAE mean
        and std over folds), ``difference`` (multi - single, per fold, its mean, std and a 95 %
        t-interval of the mean; negative = the shared network is better), ``ratio``
        (multi / single mean MAE) and ``verdict``; ``seconds``.
    """
    import dataclasses

    from scipy import stats

    t0 = time.perf_counter()
    obj = multi.outputs
    cols = (ds.target, *ds.aux_targets)
    out = []
    for i, col in enumerate(cols):
        single_ds = dataclasses.replace(ds, target=col, aux_targets=())
        cfg = config if i == 0 or config.family == "mlp" else config.replace(family="mlp")
        cv = cross_validate(single_ds, rows, cfg, folds=folds, jobs=jobs, tolerance=obj.tolerances[i],
                            scaling=scaling, seed=seed, noise_floor=0.0, physics=False)
        m_folds = np.asarray([(f.val if i == 0 else f.aux_val[i - 1]).mae for f in multi.folds])
        s_folds = np.asarray([f.val.mae for f in cv.folds])
        d = m_folds - s_folds
        k = d.size
        sd = float(d.std(ddof=1)) if k > 1 else 0.0
        half = float(stats.t.ppf(0.975, k - 1) * sd / np.sqrt(k)) if k > 1 else float("nan")
        lo, hi = float(d.mean()) - half, float(d.mean()) + half
        verdict = ("the shared network is better" if hi < 0 else "the single-task network is better" if lo > 0
                   else "no clear difference")
        out.append({"name": col.name, "unit": col.unit, "family": cfg.family,
                    "multi": {"mean": float(m_folds.mean()), "std": float(m_folds.std(ddof=1)) if k > 1 else 0.0,
                              "folds": m_folds.tolist()},
                    "single": {"mean": float(s_folds.mean()), "std": float(s_folds.std(ddof=1)) if k > 1 else 0.0,
                               "folds": s_folds.tolist()},
                    "difference": {"mean": float(d.mean()), "std": sd, "ci95": [lo, hi], "folds": d.tolist()},
                    "ratio": float(m_folds.mean() / s_folds.mean()) if s_folds.mean() > 0 else float("nan"),
                    "verdict": verdict})
    return {"outputs": out, "folds": int(folds), "seconds": time.perf_counter() - t0,
            "note": "multi - single validation MAE per fold on the same folds; 95 % t-interval of the mean"}
