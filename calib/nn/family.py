"""The model family: a network, physics + a network on its residual, or physics alone.

Small factory certificates (24-63 points) are fitted well by the classical forms
(Aanderaa SVU, two-site Stern-Volmer, Sea-Bird SBE63), and a network alone may not reach
them there; larger multi-frequency batches hold structure the classical forms miss. So
calib's model family has three members, chosen by k-fold like any hyperparameter
(``ModelConfig.family``):

``mlp``
    readings -> network -> O2.
``hybrid``
    readings -> classical fit (:func:`calib.physics.fit_physics`, on the same training
    rows) + network(readings) -> O2; the network learns the physics fit's residual.
``physics``
    readings -> classical fit -> O2 (the network's output layer is zero).

Every member is a Keras network plus an optional :class:`~calib.physics.PhysicsModel`
(plain JSON numbers). The export step folds the physics fit into the same ONNX graph
(:mod:`calib.artifact.physics_graph`), so lab software runs one file whatever the family.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np

from ..errors import TrainingError
from ..scaling import fit_scaler
from .network import build_model, predict
from .training import train

__all__ = ["Member", "fit_member", "fit_member_parts", "fit_members", "predict_member", "rebuild_member",
           "refit_config"]


@dataclass(frozen=True)
class Member:
    """One trained family member.

    Attributes
    ----------
    model : keras.Model
        The network (raw readings in, target(s) in their unit out; for ``hybrid`` the
        residual of the physics fit, for ``physics`` zero).
    physics : PhysicsModel or None
        The classical fit added to the network's first output (``hybrid``, ``physics``).
    result : TrainResult or None
        The network's training record (``None`` for ``physics``).
    x_scaler, y_scaler : Scaler
        Scalings inside the network's graph.
    """

    model: Any
    physics: Any
    result: Any
    x_scaler: Any
    y_scaler: Any

    @property
    def train_loss(self) -> tuple[float, ...]:
        return () if self.result is None else tuple(self.result.train_loss)

    @property
    def dev_loss(self) -> tuple[float, ...]:
        return () if self.result is None else tuple(self.result.dev_loss)

    @property
    def monitor_loss(self) -> tuple[float, ...]:
        return () if self.result is None else tuple(self.result.monitor_loss)

    @property
    def monitor_pred(self) -> np.ndarray | None:
        """The member's predictions on the monitor rows along the run (see :func:`fit_member`)."""
        return None if self.result is None else self.result.monitor_pred

    @property
    def best_epoch(self) -> int:
        return 0 if self.result is None else int(self.result.best_epoch)

    @property
    def seconds(self) -> float:
        return 0.0 if self.result is None else float(self.result.seconds)


def _physics_fit(x: np.ndarray, y0: np.ndarray, names: Sequence[str], units: Sequence[str], target_unit: str,
                 kind: str = "auto") -> Any:
    from ..physics import fit_physics  # scipy: loaded by the families that need it

    try:
        return fit_physics(x, y0, list(names), list(units), target_unit, kind=kind)
    except Exception as exc:  # a failing physics fit fails this trial, not the sweep
        raise TrainingError(f"the physics fit failed: {exc}") from None


def fit_member(
    config: Any,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_dev: np.ndarray | None = None,
    y_dev: np.ndarray | None = None,
    *,
    scaling: str = "standard",
    feature_names: Sequence[str] = (),
    feature_units: Sequence[str] = (),
    target_unit: str = "",
    physics_rows: tuple[np.ndarray, np.ndarray] | None = None,
    verbose: bool = False,
    monitor: tuple[np.ndarray, np.ndarray] | None = None,
) -> Member:
    """Train one member of ``config.family`` on the given rows.

    Parameters
    ----------
    config : ModelConfig
    x_train, y_train : ndarray
        Training readings (physical units) and targets (n,) or (n, n_targets); O2 first.
    x_dev, y_dev : ndarray, optional
        Dev rows for the learning curve and early stopping (network families).
    scaling : str, default="standard"
        Scaling of inputs and (residual) targets, fitted on the training rows.
    feature_names, feature_units, target_unit
        What the physics fit needs to find its phase and temperature columns.
    physics_rows : (x, y), optional
        Rows to fit the physics part on (default: the training rows). The physics fit has a
        handful of parameters and no early stopping, so it may use the dev rows too.
    verbose : bool, default=False
        Log the network's losses per epoch (logger ``calib.nn.training``, INFO).
    monitor : (x, y), optional
        Rows whose loss and predictions (the member's, physics fit included) an L-BFGS network
        records along its run (:attr:`Member.monitor_loss`, :attr:`Member.monitor_pred`); no
        decision uses them.

    Returns
    -------
    Member

    Raises
    ------
    TrainingError
        Diverging training, or a physics fit that fails for ``hybrid``/``physics``.
    """
    base, y_train, y_dev, xs, ys = _prepare(config, x_train, y_train, x_dev, y_dev, scaling, feature_names,
                                            feature_units, target_unit, physics_rows)
    if config.family == "physics":  # build_model zeroes a physics network's outputs
        model = build_model(config, x_train.shape[1], y_train.shape[1], xs, ys)
        return Member(model, base, None, xs, ys)
    xm = ym = None
    if monitor is not None and len(monitor[0]):
        xm = np.asarray(monitor[0], dtype=np.float64)
        ym = np.asarray(monitor[1], dtype=np.float64).reshape(len(xm), -1).copy()
        if base is not None:  # the network learns the physics fit's residual
            ym[:, 0] -= base.predict(xm)
    res = train(config, x_train, y_train, x_dev, y_dev, x_scaler=xs, y_scaler=ys, verbose=verbose,
                x_monitor=xm, y_monitor=ym)
    if base is not None and res.monitor_pred is not None:  # the member's predictions: network + physics fit
        path = res.monitor_pred.copy()
        path[:, :, 0] = (path[:, :, 0].astype(np.float64) + base.predict(xm)[None, :]).astype(np.float32)
        res = dataclasses.replace(res, monitor_pred=path)
    return Member(res.model, base, res, xs, ys)


def _prepare(config: Any, x_train: np.ndarray, y_train: np.ndarray, x_dev: np.ndarray | None,
             y_dev: np.ndarray | None, scaling: str, feature_names: Sequence[str], feature_units: Sequence[str],
             target_unit: str, physics_rows: tuple[np.ndarray, np.ndarray] | None) -> tuple[Any, ...]:
    """The physics fit, the network's (residual) targets and the scalers of one member."""
    y_train = np.asarray(y_train, dtype=np.float64).reshape(len(x_train), -1)
    if config.family == "physics" and y_train.shape[1] > 1:  # no network: the aux outputs would be constants
        raise TrainingError(f"family \"physics\" predicts only the target (the classical O2 form); with "
                            f"{y_train.shape[1] - 1} auxiliary target(s) use family \"hybrid\" or \"mlp\"")
    if y_dev is not None:
        y_dev = np.asarray(y_dev, dtype=np.float64).reshape(len(x_dev), -1)
    base = None
    if config.family in ("hybrid", "physics"):
        px, py = physics_rows if physics_rows is not None else (x_train, y_train)
        py = np.asarray(py, dtype=np.float64).reshape(len(px), -1)
        base = _physics_fit(np.asarray(px, dtype=np.float64), py[:, 0], feature_names, feature_units, target_unit,
                            kind=getattr(config, "physics_kind", "auto"))
        y_train = y_train.copy()
        y_train[:, 0] -= base.predict(x_train)
        if y_dev is not None:
            y_dev = y_dev.copy()
            y_dev[:, 0] -= base.predict(x_dev)
    xs = fit_scaler(x_train, scaling)
    # physics: an identity output scaling, so the zeroed network outputs exactly 0.0 (not a
    # float32 rounding of -center/scale * scale + center) and the member equals the classical fit
    ys = fit_scaler(y_train, "none" if config.family == "physics" else scaling)
    return base, y_train, y_dev, xs, ys


def fit_members(
    config: Any,
    problems: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]],
    *,
    scaling: str = "standard",
    feature_names: Sequence[str] = (),
    feature_units: Sequence[str] = (),
    target_unit: str = "",
    physics_rows: Sequence[tuple[np.ndarray, np.ndarray] | None] | None = None,
    verbose: bool = False,
) -> list[Member]:
    """Train one member per problem, the networks together (:func:`~calib.nn.stacked.train_stacked`).

    The same members as :func:`fit_member` on each problem in turn, to float tolerance (the
    same seeds, rows and early stopping), in about the time of one: the k folds of a trial.

    Parameters
    ----------
    config : ModelConfig or sequence of ModelConfig
        One config for all, or one per problem sharing :func:`~calib.nn.stacked.stack_key`.
    problems : sequence of (x_train, y_train, x_dev, y_dev)
        As :func:`fit_member`'s arguments, one tuple per member.
    scaling, feature_names, feature_units, target_unit, verbose
        As for :func:`fit_member`.
    physics_rows : sequence of (x, y) or None, optional
        Per problem, the rows of its physics fit (default: its training rows).

    Returns
    -------
    list of Member
        In the order of ``problems``.

    Raises
    ------
    TrainingError
        Diverging training of any member, or a failing physics fit.
    """
    from .stacked import train_stacked

    configs = list(config) if isinstance(config, (list, tuple)) else [config] * len(problems)
    rows = list(physics_rows) if physics_rows is not None else [None] * len(problems)
    prepared = [_prepare(c, xt, yt, xd, yd, scaling, feature_names, feature_units, target_unit, pr)
                for c, (xt, yt, xd, yd), pr in zip(configs, problems, rows)]
    members: list[Member | None] = [None] * len(problems)
    trained = []
    for i, (c, (xt, _, _, _), q) in enumerate(zip(configs, problems, prepared)):
        if c.family == "physics":  # no training: build_model zeroes a physics network's outputs
            members[i] = Member(build_model(c, xt.shape[1], q[1].shape[1], q[3], q[4]), q[0], None, q[3], q[4])
        else:
            trained.append(i)
    if trained:
        results = train_stacked([configs[i] for i in trained],
                                [(problems[i][0], prepared[i][1], problems[i][2], prepared[i][2]) for i in trained],
                                x_scalers=[prepared[i][3] for i in trained],
                                y_scalers=[prepared[i][4] for i in trained], verbose=verbose)
        for i, r in zip(trained, results):
            q = prepared[i]
            members[i] = Member(r.model, q[0], r, q[3], q[4])
    return members  # type: ignore[return-value]


def predict_member(member: Member, x: np.ndarray) -> np.ndarray:
    """Predictions (n, n_targets) of a member: network + physics fit on the first target."""
    x = np.asarray(x, dtype=np.float64)
    p = np.asarray(predict(member.model, x), dtype=np.float64).reshape(len(x), -1)
    if member.physics is not None:
        p = p.copy()
        p[:, 0] += member.physics.predict(x)
    return p


def rebuild_member(config: Any, n_inputs: int, n_outputs: int, weights: Sequence[np.ndarray],
                   x_scaler: Any, y_scaler: Any, physics: Any) -> Member:
    """Rebuild a member from plain parts (weights, scalers, physics fit), e.g. after a worker process."""
    model = build_model(config, n_inputs, n_outputs, x_scaler, y_scaler)
    model.set_weights(list(weights))
    return Member(model, physics, None, x_scaler, y_scaler)


def fit_member_parts(config: dict[str, Any], x_train: np.ndarray, y_train: np.ndarray,
                     kwargs: dict[str, Any]) -> dict[str, Any]:
    """:func:`fit_member` for another process: plain data in and out.

    ``config`` is ``ModelConfig.to_dict()``; ``kwargs`` are :func:`fit_member`'s keyword
    arguments. Returns the network's ``weights``, the ``x_scaler`` / ``y_scaler`` dicts and the
    ``physics`` fit's dict (or None): what :func:`rebuild_member` takes back.
    """
    from .config import ModelConfig

    member = fit_member(ModelConfig.from_dict(config), x_train, y_train, **kwargs)
    return {"weights": [np.asarray(w) for w in member.model.get_weights()],
            "x_scaler": member.x_scaler.to_dict(), "y_scaler": member.y_scaler.to_dict(),
            "physics": None if member.physics is None else member.physics.to_dict()}


def refit_config(best: Any, best_epochs: Sequence[int], n_rows: int,
                 fit_rows: Sequence[int] | None = None, curve_epoch: int | None = None) -> tuple[Any, int]:
    """The config and epoch count to refit the chosen config on all its rows (no dev rows left).

    Early stopping cannot run without dev rows, so the refit trains for the median of the
    k-fold models' best epochs (ones that stopped early; for L-BFGS ``curve_epoch`` when
    given), without early stopping. A
    ``hybrid`` whose folds mostly kept their initial weights (best epoch 0: the residual
    network never improved on the physics fit) refits as ``physics``; ``physics`` needs no
    epochs.

    A mini-batch optimizer's epoch grows with the rows (more steps per epoch), a full-batch
    one's does not: an L-BFGS "epoch" is one iteration whatever the rows. So for
    ``optimizer = "lbfgs"`` the median best iteration is scaled by ``n_rows`` over the median
    of ``fit_rows`` (the rows the fold models were fitted on), as the same epoch count scales
    a mini-batch refit's steps, and capped at the iteration budget. Measured on the bundled
    batch's held-out spots (README, *Benchmarks*): the unscaled count (647, from folds fitted on
    1,134 rows; refit on 1,620) stopped the refit short, 4.87 +/- 0.36 hPa MAE over 10 seeds
    against 4.29 +/- 0.14 scaled (924).

    Parameters
    ----------
    best : ModelConfig
        The chosen config.
    best_epochs : sequence of int
        Best epoch of each k-fold model (0 = the initial weights were kept).
    n_rows : int
        Rows of the refit (to size the epoch budget when no fold stopped early).
    fit_rows : sequence of int, optional
        Rows each k-fold model's network was fitted on (:attr:`calib.validate.CVResult.fit_rows`);
        without them (or for a mini-batch optimizer) the median is not scaled.
    curve_epoch : int, optional
        For ``optimizer = "lbfgs"``: the iteration where the folds' mean validation curve is
        lowest (:attr:`calib.validate.CVResult.curve_best_epoch`), used instead of the median
        best iteration (then scaled the same way). The folds' own early stopping watches an
        inner dev part of one or two groups; on the bundled batch its median best iteration
        (647) lay well before the validation folds' minima (369-2798, mean curve lowest near
        1,000).

    Returns
    -------
    (ModelConfig, int)
        Config to pass to :func:`fit_member` and its epoch count (0 for ``physics``).
    """
    from .config import LBFGS_AUTO_ITERATIONS

    if best.family == "physics":
        return best, 0
    # a hybrid's epoch 0 is a model (the physics fit); other families never report 0
    probe = [int(e) for e in best_epochs if best.family == "hybrid" or e > 0]
    if best.patience is not None and probe:
        epochs = int(np.median(probe))
        if epochs == 0:
            return best.replace(family="physics"), 0
        if best.optimizer == "lbfgs" and curve_epoch is not None and int(curve_epoch) > 0:
            epochs = int(curve_epoch)
        fitted = [int(r) for r in (fit_rows or ()) if int(r) > 0]
        if best.optimizer == "lbfgs" and fitted and int(n_rows) > np.median(fitted):
            budget = best.epochs if best.epochs is not None else LBFGS_AUTO_ITERATIONS
            epochs = min(int(budget), int(round(epochs * int(n_rows) / float(np.median(fitted)))))
    else:
        epochs = best.budget(max(1, -(-int(n_rows) // (best.batch_size or max(1, int(n_rows))))))[0]
    return best.replace(epochs=epochs, patience=None), epochs
