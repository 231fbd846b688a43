"""The training loop: :func:`train` fits a :func:`~calib.nn.network.build_model` network.

:func:`train` runs a compiled loop that takes a whole epoch per call, with early stopping that
restores the best weights; ``optimizer = "lbfgs"`` runs full-batch L-BFGS (scipy) on TensorFlow
gradients instead. The update rules of the first-order optimizers are in
:mod:`calib.nn.optimizers`. TensorFlow is imported inside the functions that need it.

Why a custom loop
-----------------
For the small networks used here (a few thousand weights) ``keras.Model.fit`` is bound by
its per-batch overhead (callbacks, logs, one function call per step): about 2 ms a step.
:func:`train` runs a whole epoch in one call of a ``tf.function``: the rows are shuffled
with a permutation drawn on the host from a seeded ``numpy`` generator, padded to whole
batches with zero-weight rows (so every mini-batch has a static shape and the last one
still averages over its real rows only), and a ``tf.while_loop`` takes one optimizer step
per batch on a single flat weight vector; the epoch's training loss, the dev loss and a
finiteness flag come back from the same call. The function takes the weights, the
optimizer state, the data and the hyper-parameters as arguments, so it is traced once per
network shape and batch layout and reused by later folds and trials (a small LRU cache,
no growth per model). Long runs are compiled with XLA (``jit_compile``), which makes a
step 2-4x cheaper again. ``benchmarks/train_speed.py`` compares the loop with ``model.fit``
and scikit-learn's ``MLPRegressor``.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import ConfigError, TrainingError
from ..scaling import Scaler
from .config import AUTO, LBFGS_AUTO_ITERATIONS, LBFGS_AUTO_PATIENCE, ModelConfig
from .network import build_model, dense_layers, tf_activation
from .optimizers import H_DROPOUT, H_L1, H_L2, hyper_vector, n_slots, tf_apply_updates, tf_learning_rate

__all__ = ["TrainResult", "train"]

#: Per-epoch losses (``verbose=True``) are logged here at INFO; ``calib -v`` shows them on stderr.
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainResult:
    """The outcome of :func:`train`.

    Attributes
    ----------
    model : keras.Model
        The trained network, raw readings -> target in its unit; it holds the weights of
        ``best_epoch``.
    train_loss : tuple of float
        Per epoch: mean data loss over the epoch's mini-batches (as ``model.fit`` reports
        it), in scaled target units, penalties excluded, dropout active.
    dev_loss : tuple of float
        Per epoch: data loss on the dev rows after the epoch, scaled target units, inference
        mode. Empty without dev data.
    best_epoch : int
        1-based epoch whose weights ``model`` holds: the epoch of the lowest monitored loss
        when early stopping is on, else the last epoch. 0 for a ``hybrid`` that kept its
        initial weights (the physics fit: no epoch improved the monitored loss).
    epochs_run : int
        Epochs actually run (< ``config.epochs`` when early stopping ended training).
    seconds : float
        Wall time of :func:`train`, including model construction and graph tracing.
    iterations : int
        Optimizer steps taken.
    final_learning_rate : float
        Learning rate the schedule gives at step ``iterations``, i.e. for the next step (what
        a Keras optimizer's ``learning_rate`` reports after that many steps; equal to
        ``config.learning_rate`` for the constant schedule).
    monitor_loss : tuple of float
        With monitor rows (L-BFGS only): data loss on them after iterations
        ``MONITOR_EVERY``, ``2 * MONITOR_EVERY``, ... (scaled target units, inference mode).
        No decision uses it; :func:`calib.validate.cross_validate` passes the validation fold,
        so that the refit length can be read off the folds' validation curves.
    monitor_pred : ndarray or None
        The network's predictions (target units) on the monitor rows at the same iterations,
        float32 of shape (len(monitor_loss), n_monitor_rows, n_outputs).
    """

    model: Any = field(repr=False)
    train_loss: tuple[float, ...]
    dev_loss: tuple[float, ...]
    best_epoch: int
    epochs_run: int
    seconds: float
    iterations: int = 0
    final_learning_rate: float = float("nan")
    monitor_loss: tuple[float, ...] = ()
    monitor_pred: Any = field(default=None, repr=False, compare=False)



#: Rows of a full batch and of the dev set are padded (with zero weight) to a multiple of
#: this, so that folds whose sizes differ by a row or two share one compiled function.
PAD_ROWS = 64
#: Iterations between two points of an L-BFGS run's monitor curve (:attr:`TrainResult.monitor_loss`).
MONITOR_EVERY = 10
#: Compiled epoch functions kept (least recently used dropped): bounded, no growth per model.
_CACHE_SIZE = 8
#: XLA compilation of the epoch costs 0.5-1.2 s more than tracing it (once per plan and
#: process) and makes each optimizer step 2-4x cheaper (30-40 instead of 90-120 us for 2x32
#: tanh, batch 32, on the shared 2-core development machine); it pays off from roughly this
#: many steps.
XLA_MIN_STEPS = 15_000

_EPOCH_CACHE: OrderedDict[Any, Any] = OrderedDict()
_CACHE_LOCK = threading.Lock()


@dataclass(frozen=True)
class _Plan:
    """Everything that shapes the traced epoch graph (hashable cache key)."""

    widths: tuple[int, ...]  # hidden widths + n_outputs
    n_inputs: int
    activation: str
    loss: str
    optimizer: str
    lr_schedule: str
    dropout: bool
    l1: bool
    l2: bool
    n_batches: int
    batch: int
    n_dev: int  # padded dev rows, 0 without dev data
    xla: bool



def _weight_shapes(plan: _Plan) -> list[tuple[int, ...]]:
    """Shapes of (kernel, bias) of every Dense layer, in the order of the flat vector."""
    shapes: list[tuple[int, ...]] = []
    fan_in = plan.n_inputs
    for width in plan.widths:
        shapes += [(fan_in, width), (width,)]
        fan_in = width
    return shapes


def _build_epoch_fn(plan: _Plan):
    """Trace-once function: ``epoch(theta, slots, step, x, z, w, perm, xd, zd, wd, hyper, seed)``.

    ``theta`` is the flat weight vector (kernel and bias of each Dense layer in turn).
    ``x``/``z``/``w`` hold the scaled training rows padded to ``n_batches * batch`` rows
    (weight 0 on padding) and ``perm`` a permutation of the real rows followed by the padding
    rows, so every mini-batch has a static shape and the last one carries the leftover rows
    (its loss is the mean over its real rows, as for a partial batch). Returns
    ``(train_loss, dev_loss, finite, next_learning_rate)``.
    """
    from .tf import tensorflow as _quiet_tf

    tf = _quiet_tf()

    activation = tf_activation(plan.activation)
    nb, bs, d, k = plan.n_batches, plan.batch, plan.n_inputs, plan.widths[-1]
    n_layers = len(plan.widths)
    shapes = _weight_shapes(plan)
    sizes = [int(np.prod(s)) for s in shapes]
    kernel_mask = np.concatenate(
        [np.full(size, 1.0 if len(s) == 2 else 0.0, np.float32) for s, size in zip(shapes, sizes)]
    )

    def forward(theta, x, training, hyper, seed, t):
        parts = tf.split(theta, sizes)
        h = x
        for i in range(n_layers):
            h = tf.matmul(h, tf.reshape(parts[2 * i], shapes[2 * i])) + parts[2 * i + 1]
            if i < n_layers - 1:
                h = activation(h)
                if training and plan.dropout:
                    rate = hyper[H_DROPOUT]
                    u = tf.random.stateless_uniform(tf.shape(h), seed=tf.stack([seed, t * 64 + i]))
                    h = tf.where(u >= rate, h / (1.0 - rate), tf.zeros_like(h))
        return h

    def pointwise(diff):
        return pointwise_loss(plan.loss, diff, tf.math)

    def data_loss(pred, z, w):
        return tf.reduce_sum(w * pointwise(pred - z)) / (tf.reduce_sum(w) * float(k))

    def penalty(theta, hyper):
        # the formula of keras.regularizers.L1L2 summed over the kernels (biases are free)
        mask = tf.constant(kernel_mask)
        total = tf.constant(0.0, tf.float32)
        if plan.l1:
            total += hyper[H_L1] * tf.reduce_sum(mask * tf.abs(theta))
        if plan.l2:
            total += hyper[H_L2] * tf.reduce_sum(mask * tf.square(theta))
        return total

    def epoch(theta, slots, step, x, z, w, perm, xd, zd, wd, hyper, seed):
        xs = tf.reshape(tf.gather(x, perm), (nb, bs, d))
        zs = tf.reshape(tf.gather(z, perm), (nb, bs, k))
        ws = tf.reshape(tf.gather(w, perm), (nb, bs, 1))

        def cond(i, total, finite):
            return tf.logical_and(i < nb, finite)

        def body(i, total, finite):
            xb, zb, wb = xs[i], zs[i], ws[i]
            t = step.read_value()
            with tf.GradientTape() as tape:
                current = theta.read_value()
                tape.watch(current)
                pred = forward(current, xb, True, hyper, seed, t)
                data = data_loss(pred, zb, wb)
                objective = data + penalty(current, hyper) if plan.l1 or plan.l2 else data
            grad = tape.gradient(objective, current)
            tf_apply_updates(plan, theta, slots, grad, tf.cast(t, tf.float32), hyper)
            step.assign_add(1)
            total += data * tf.reduce_sum(wb)
            return i + 1, total, tf.logical_and(finite, tf.math.is_finite(data))

        _, total, finite = tf.while_loop(
            cond, body, (tf.constant(0), tf.constant(0.0), tf.constant(True))
        )
        train_loss = total / tf.reduce_sum(w)
        if plan.n_dev:
            pred = forward(theta.read_value(), xd, False, hyper, seed, step.read_value())
            dev_loss = data_loss(pred, zd, wd)
        else:
            dev_loss = tf.constant(float("nan"))
        lr_next = tf_learning_rate(plan, tf.cast(step.read_value(), tf.float32), hyper)
        return train_loss, dev_loss, finite, lr_next

    # autograph=False: the loop is an explicit tf.while_loop and every Python branch depends
    # only on the static plan; AutoGraph would add ~0.7 s of source transformation.
    return tf.function(epoch, jit_compile=plan.xla, autograph=False)


def _choose_xla(plan: _Plan, steps: int) -> bool:
    """Auto-select XLA from this run's own work only (``epochs * batches``), never from what
    ran before in the process, so the same config and data always take the same code path
    and give the same numbers whether they run first or fiftieth in a worker."""
    return steps >= XLA_MIN_STEPS


def _epoch_fn(plan: _Plan):
    with _CACHE_LOCK:
        fn = _EPOCH_CACHE.get(plan)
        if fn is None:
            fn = _build_epoch_fn(plan)
            _EPOCH_CACHE[plan] = fn
            while len(_EPOCH_CACHE) > _CACHE_SIZE:
                _EPOCH_CACHE.popitem(last=False)
        else:
            _EPOCH_CACHE.move_to_end(plan)
        return fn


def as_2d(a: Any, name: str, n_cols: int | None = None) -> np.ndarray:
    """``a`` as a finite 2-D float64 array with at least one row (a 1-D array is one column)."""
    arr = np.asarray(a, dtype=np.float64)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ConfigError(f"{name} must be 1-D or 2-D, got an array of shape {arr.shape}")
    if arr.shape[0] == 0:
        raise ConfigError(f"{name} must have at least one row, got 0 rows")
    if n_cols is not None and arr.shape[1] != n_cols:
        raise ConfigError(f"{name} must have {n_cols} column(s), got {arr.shape[1]}")
    bad = int(np.size(arr) - np.count_nonzero(np.isfinite(arr)))
    if bad:
        raise ConfigError(f"{name} must be finite, found {bad} NaN/inf value(s)")
    return arr


def check_arrays(x_train: Any, y_train: Any, x_dev: Any = None, y_dev: Any = None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    """The training (and dev) arrays of :func:`train` as 2-D float64, checked.

    Raises
    ------
    ConfigError
        If an array is empty, not finite, of the wrong shape, or the rows disagree.
    """
    x = as_2d(x_train, "x_train")
    y = as_2d(y_train, "y_train")
    if y.shape[0] != x.shape[0]:
        raise ConfigError(
            f"x_train and y_train must have the same number of rows, got {x.shape[0]} and {y.shape[0]}"
        )
    if (x_dev is None) != (y_dev is None):
        raise ConfigError("x_dev and y_dev must be given together")
    xd = yd = None
    if x_dev is not None:
        xd = as_2d(x_dev, "x_dev", x.shape[1])
        yd = as_2d(y_dev, "y_dev", y.shape[1])
        if yd.shape[0] != xd.shape[0]:
            raise ConfigError(
                f"x_dev and y_dev must have the same number of rows, got {xd.shape[0]} and {yd.shape[0]}"
            )
    return x, y, xd, yd


def pad_rows(a: np.ndarray, rows: int) -> np.ndarray:
    """``a`` as float32 with zero rows appended up to ``rows`` (the zero-weight padding of a batch)."""
    out = np.zeros((rows, a.shape[1]), dtype=np.float32)
    out[: a.shape[0]] = a
    return out


def round_up(n: int, m: int) -> int:
    """``n`` rounded up to a multiple of ``m``."""
    return -(-n // m) * m


def diverged_error(config: ModelConfig, epoch: int, value: float) -> TrainingError:
    """The :class:`TrainingError` of a loss that became ``value`` (NaN or inf) at ``epoch``."""
    what = "nan" if math.isnan(value) else "inf"
    init = (
        f"init_stddev={config.init_stddev:g}"
        if config.init == "truncated_normal"
        else f"init={config.init}"
    )
    return TrainingError(
        f"training diverged at epoch {epoch}: loss is {what}; likely causes: learning rate too "
        f"large (learning_rate={config.learning_rate:g}), unscaled inputs, initial weights too "
        f"large ({init})"
    )


def initial_loss(config: ModelConfig, model: Any, x: np.ndarray, y: np.ndarray, y_scaler: Scaler) -> float:
    """The data loss (scaled target units, as the training loop computes it) of the initial weights."""
    pred = np.asarray(model(x.astype(np.float32), training=False), dtype=np.float64).reshape(y.shape)
    return float(np.mean(pointwise_loss(config.loss, y_scaler.transform(pred) - y_scaler.transform(y), np)))


def pointwise_loss(loss: str, diff: Any, ops: Any) -> Any:
    """Per-element data loss of a scaled residual; ``ops`` is ``tf.math`` or ``numpy``.

    ``mse``: diff**2; ``mae``: |diff|; ``huber``: delta 1 scaled unit.
    """
    if loss == "mse":
        return ops.square(diff)
    a = ops.abs(diff)
    if loss == "mae":
        return a
    q = ops.minimum(a, 1.0)
    return 0.5 * ops.square(q) + (a - q)


def starts_meaningful(config: ModelConfig) -> bool:
    """Whether the initial weights are a model worth keeping (epoch 0 is an early-stopping candidate).

    True for ``hybrid``: its residual network starts at exactly 0 (:func:`~calib.nn.network.zero_output`),
    so the initial model is the physics fit, and early stopping may keep it when no epoch
    improves the monitored loss (``best_epoch = 0``).
    """
    return config.family == "hybrid"


def _train_lbfgs(config: ModelConfig, model: Any, x: np.ndarray, y: np.ndarray, xd: np.ndarray | None,
                 yd: np.ndarray | None, y_scaler: Scaler, t0: float, verbose: bool,
                 progress: Callable[[int, float, float | None], None] | None,
                 monitor: tuple[np.ndarray, np.ndarray] | None = None) -> TrainResult:
    """Full-batch L-BFGS (scipy's L-BFGS-B) on TensorFlow gradients; one "epoch" = one iteration.

    Small, smooth, low-noise calibration problems are where quasi-Newton methods shine
    (scikit-learn's ``MLPRegressor(solver="lbfgs")`` likewise). The data loss is the same as
    the other optimizers' on the scaled target, plus the L1/L2 penalties of the layers;
    early stopping watches the dev loss per iteration and restores the best weights.
    ``batch_size``, ``learning_rate`` and the schedule do not apply; dropout is refused.
    """
    from scipy.optimize import minimize

    from .tf import flat_caller, tensorflow as _quiet_tf

    tf = _quiet_tf()
    if config.dropout > 0:
        raise ConfigError(f"dropout = 0 must hold for optimizer='lbfgs' (full-batch, deterministic), "
                          f"got dropout={config.dropout!r}")
    variables = list(model.trainable_variables)
    shapes = [tuple(v.shape) for v in variables]
    sizes = [int(np.prod(sh)) for sh in shapes]
    center = tf.constant(np.asarray(y_scaler.center, dtype=np.float32))
    scale = tf.constant(np.asarray(y_scaler.scale, dtype=np.float32))
    xt = tf.constant(x.astype(np.float32))
    zt = tf.constant(y_scaler.transform(y).astype(np.float32))
    xdt = None if xd is None else tf.constant(xd.astype(np.float32))
    zdt = None if yd is None else tf.constant(y_scaler.transform(yd).astype(np.float32))

    def pointwise(diff: Any) -> Any:
        return pointwise_loss(config.loss, diff, tf.math)

    def data_loss(xx: Any, zz: Any) -> Any:
        pred = (model(xx, training=False) - center) / scale
        return tf.reduce_mean(pointwise(pred - zz))

    def write(theta: Any) -> None:  # in the graph: one call sets every weight
        for v, sh, part in zip(variables, shapes, tf.split(theta, sizes)):
            v.assign(tf.reshape(part, sh))

    def assign(theta: np.ndarray) -> None:  # eager: once, for the weights kept
        off = 0
        for v, sh, n in zip(variables, shapes, sizes):
            v.assign(theta[off:off + n].reshape(sh).astype(np.float32))
            off += n

    nan = tf.constant(float("nan"))

    def objective(theta: Any) -> Any:
        """Total loss, data loss, gradient and dev data loss (NaN without dev rows) at ``theta``."""
        write(theta)
        with tf.GradientTape() as tape:
            data = data_loss(xt, zt)
            total = data + (tf.add_n(model.losses) if model.losses else 0.0)
        grads = tape.gradient(total, variables)
        dev = nan if xdt is None else data_loss(xdt, zdt)
        return total, data, tf.concat([tf.reshape(g, [-1]) for g in grads], 0), dev

    # called ~1000 times: the concrete function skips tf.function's per-call argument matching
    value_and_grad_at = flat_caller(tf.function(objective, autograph=False).get_concrete_function(
        tf.TensorSpec([sum(sizes)], tf.float32)))
    monitor_at = None
    monitor_hist: list[float] = []
    monitor_preds: list[np.ndarray] = []
    if monitor is not None and len(monitor[0]):
        xmt = tf.constant(np.asarray(monitor[0], dtype=np.float32))
        zmt = tf.constant(y_scaler.transform(np.asarray(monitor[1], dtype=np.float64)).astype(np.float32))

        def monitor_loss(theta: Any) -> Any:
            write(theta)
            pred = model(xmt, training=False)
            return tf.reduce_mean(pointwise((pred - center) / scale - zmt)), pred

        monitor_at = flat_caller(tf.function(monitor_loss, autograph=False).get_concrete_function(
            tf.TensorSpec([sum(sizes)], tf.float32)))

    # iterations: "auto" = 5000 (quasi-Newton steps do far more than SGD steps), patience 500
    max_iter = config.epochs if config.epochs is not None else LBFGS_AUTO_ITERATIONS
    patience = LBFGS_AUTO_PATIENCE if config.patience == AUTO else config.patience
    train_hist: list[float] = []
    dev_hist: list[float] = []
    state: dict[str, Any] = {"best": math.inf, "best_theta": None, "best_it": 0, "wait": 0, "last_data": math.nan,
                             "last": None}
    if patience is not None and starts_meaningful(config):
        state.update(best=initial_loss(config, model, *((xd, yd) if xd is not None else (x, y)), y_scaler),
                     best_theta=np.concatenate([v.numpy().ravel() for v in variables]).astype(np.float64))

    def fun(theta: np.ndarray) -> tuple[float, np.ndarray]:
        total, data, grad, dev = value_and_grad_at(tf.constant(theta.astype(np.float32)))
        total = float(total)
        state["last_data"] = float(data)
        state["last"] = (np.array(theta, copy=True), float(data), float(dev))
        if not math.isfinite(total):
            raise diverged_error(config, len(train_hist) + 1, total)
        return total, grad.numpy().astype(np.float64)

    def callback(intermediate_result: Any) -> None:
        theta = intermediate_result.x
        it = len(train_hist) + 1
        last = state["last"]
        if last is not None and np.array_equal(last[0], theta):  # the accepted point: evaluated last
            tl, dl = last[1], last[2]
        else:
            _, data, _, dev = value_and_grad_at(tf.constant(theta.astype(np.float32)))
            tl, dl = float(data), float(dev)
        train_hist.append(tl)
        if xdt is None:
            dl = None
        else:
            dev_hist.append(dl)
        if monitor_at is not None and it % MONITOR_EVERY == 0:  # writes theta; the next evaluation writes its own
            loss, pred = monitor_at(tf.constant(theta.astype(np.float32)))
            monitor_hist.append(float(loss))
            monitor_preds.append(pred.numpy())
        if progress is not None:
            progress(it, tl, dl)
        if verbose and (it <= 10 or it % 10 == 0):
            logger.info("iteration %s/%s: train_loss=%.6g%s", it, max_iter, tl,
                        "" if dl is None else f" dev_loss={dl:.6g}")
        if patience is None:
            return
        current = dl if dl is not None else tl
        if current < state["best"] - config.min_delta:
            state.update(best=current, best_theta=np.array(theta, copy=True), best_it=it, wait=0)
        else:
            state["wait"] += 1
            if state["wait"] >= patience:
                raise StopIteration

    theta0 = np.concatenate([v.numpy().ravel() for v in variables]).astype(np.float64)
    res = minimize(fun, theta0, jac=True, method="L-BFGS-B", callback=callback,
                   options={"maxiter": int(max_iter), "maxfun": int(max_iter) * 2, "ftol": 0.0, "gtol": 1e-10})
    epochs_run = max(len(train_hist), 1)
    if patience is not None and state["best_theta"] is not None:
        assign(state["best_theta"])
        best_epoch = int(state["best_it"])
    else:
        assign(res.x)
        best_epoch = epochs_run
    if not train_hist:
        train_hist.append(state["last_data"])
    return TrainResult(model=model, train_loss=tuple(train_hist), dev_loss=tuple(dev_hist), best_epoch=best_epoch,
                       epochs_run=epochs_run, seconds=time.perf_counter() - t0, iterations=int(res.nit),
                       final_learning_rate=float("nan"), monitor_loss=tuple(monitor_hist),
                       monitor_pred=np.stack(monitor_preds) if monitor_preds else None)


def train(
    config: ModelConfig,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_dev: np.ndarray | None = None,
    y_dev: np.ndarray | None = None,
    *,
    x_scaler: Scaler,
    y_scaler: Scaler,
    verbose: bool = False,
    progress: Callable[[int, float, float | None], None] | None = None,
    jit_compile: bool | None = None,
    x_monitor: np.ndarray | None = None,
    y_monitor: np.ndarray | None = None,
) -> TrainResult:
    """Build and train a network for ``config``.

    Parameters
    ----------
    config : ModelConfig
    x_train : ndarray of shape (n, n_inputs)
        Raw training readings in physical units (deg, degC, ...).
    y_train : ndarray of shape (n,) or (n, n_outputs)
        Reference values in the target's unit (e.g. hPa).
    x_dev, y_dev : ndarray, optional
        Dev rows for the per-epoch dev loss and early stopping; both or neither.
    x_scaler, y_scaler : Scaler
        Fitted on the training rows only; built into the model's graph.
    verbose : bool, default=False
        Log the losses after epochs 1-10, every 10th epoch and the last one, at INFO on the
        ``calib.nn.training`` logger (``epoch 3/200: train_loss=0.0123 dev_loss=0.0145``);
        the library prints nothing itself.
    progress : callable, optional
        Called after every epoch as ``progress(epoch, train_loss, dev_loss_or_None)``.
    jit_compile : bool or None, default=None
        Compile the epoch with XLA. ``None`` decides by the work: compiling costs 0.5-1.2 s
        more than tracing (once per network shape and batch layout in a process) and makes
        each step 2-4x cheaper, so XLA is used when ``epochs * batches_per_epoch`` reaches
        15000. The choice depends on this call only, so results do not depend on what ran
        earlier in the process.
    x_monitor, y_monitor : ndarray, optional
        Rows whose data loss is recorded every :data:`MONITOR_EVERY` iterations
        (:attr:`TrainResult.monitor_loss`; ``optimizer = "lbfgs"`` only, ignored otherwise).
        They drive no decision and do not change the trained weights.

    Returns
    -------
    TrainResult

    Raises
    ------
    ConfigError
        If the arrays are empty, not finite, of mismatched shapes, or disagree with the
        scalers.
    TrainingError
        If a training or dev loss becomes NaN or infinite; training stops at once and the
        message names the epoch and the likely causes.

    Notes
    -----
    The whole epoch (shuffle, every mini-batch step, the epoch's losses) is one call of a
    compiled ``tf.function``; it takes the weights, the optimizer state, the data and the
    hyper-parameters as arguments, so later folds and trials with the same network shape
    and batch layout reuse its trace. Losses are in scaled target units
    (``(y - center) / scale``), so they compare across targets and folds. Shuffling uses
    ``numpy.random.default_rng(config.seed)``; the same config, data and seed give identical
    weights and predictions. The optimizers follow the update rules of Keras 3's ``SGD``,
    ``RMSprop`` and ``Adam`` and the schedules those of ``keras.optimizers.schedules``.
    """
    from .tf import tensorflow as _quiet_tf

    tf = _quiet_tf()

    t0 = time.perf_counter()
    if not isinstance(config, ModelConfig):
        raise ConfigError(f"config must be a ModelConfig, got {type(config).__name__}")
    x, y, xd, yd = check_arrays(x_train, y_train, x_dev, y_dev)
    n, n_in, n_out = x.shape[0], x.shape[1], y.shape[1]

    model = build_model(config, n_in, n_out, x_scaler, y_scaler)
    if config.optimizer == "lbfgs":
        monitor = None
        if x_monitor is not None and y_monitor is not None:
            monitor = (as_2d(x_monitor, "x_monitor", n_in), as_2d(y_monitor, "y_monitor", n_out))
        return _train_lbfgs(config, model, x, y, xd, yd, y_scaler, t0, verbose, progress, monitor)
    dense = dense_layers(model)

    # Batch layout: full batch (padded to a multiple of PAD_ROWS) or n_batches x batch.
    if config.batch_size is None or config.batch_size >= n:
        n_batches, batch = 1, round_up(n, PAD_ROWS)
    else:
        batch = config.batch_size
        n_batches = -(-n // batch)
    n_pad = n_batches * batch
    n_dev = round_up(xd.shape[0], PAD_ROWS) if xd is not None else 0
    plan = _Plan(
        widths=tuple(config.hidden_layers) + (n_out,),
        n_inputs=n_in,
        activation=config.activation,
        loss=config.loss,
        optimizer=config.optimizer,
        lr_schedule=config.lr_schedule,
        dropout=config.dropout > 0,
        l1=config.l1 > 0,
        l2=config.l2 > 0,
        n_batches=n_batches,
        batch=batch,
        n_dev=n_dev,
        xla=False,
    )
    max_epochs, patience = config.budget(n_batches)
    if jit_compile is None:
        jit_compile = _choose_xla(plan, max_epochs * n_batches)
    plan = dataclasses.replace(plan, xla=bool(jit_compile))

    # Training state: one flat tf.Variable of all weights (copied back into the Keras
    # model at the end) and the optimizer's flat state vectors.
    theta = tf.Variable(
        np.concatenate([v.numpy().ravel() for layer in dense for v in (layer.kernel, layer.bias)]),
        dtype=tf.float32,
        trainable=False,
    )
    slots = tuple(
        tf.Variable(tf.zeros_like(theta), trainable=False) for _ in range(n_slots(config.optimizer))
    )
    step = tf.Variable(0, dtype=tf.int64, trainable=False)
    x_t = tf.constant(pad_rows(x_scaler.transform(x), n_pad))
    z_t = tf.constant(pad_rows(y_scaler.transform(y), n_pad))
    w_t = tf.constant(pad_rows(np.ones((n, 1)), n_pad))
    if xd is not None:
        xd_t = tf.constant(pad_rows(x_scaler.transform(xd), n_dev))
        zd_t = tf.constant(pad_rows(y_scaler.transform(yd), n_dev))
        wd_t = tf.constant(pad_rows(np.ones((xd.shape[0], 1)), n_dev))
    else:
        xd_t = zd_t = wd_t = tf.zeros((0, 1), tf.float32)
    hyper = tf.constant(hyper_vector(config))
    dropout_seed = int(np.random.SeedSequence((config.seed, 1)).generate_state(1)[0])
    seed_t = tf.constant(dropout_seed, dtype=tf.int64)
    epoch_fn = _epoch_fn(plan)

    rng = np.random.default_rng(config.seed)
    tail = np.arange(n, n_pad, dtype=np.int32)
    monitor_dev = xd is not None
    best = math.inf
    best_epoch = 0
    best_weights: np.ndarray | None = None
    wait = 0
    if patience is not None and starts_meaningful(config):
        best = initial_loss(config, model, *((xd, yd) if xd is not None else (x, y)), y_scaler)
        best_weights = theta.numpy()
    train_hist: list[float] = []
    dev_hist: list[float] = []
    lr_next = config.learning_rate
    epoch = 0
    for epoch in range(1, max_epochs + 1):
        perm = tf.constant(np.concatenate([rng.permutation(n).astype(np.int32), tail]))
        out = epoch_fn(theta, slots, step, x_t, z_t, w_t, perm, xd_t, zd_t, wd_t, hyper, seed_t)
        tl, dl, finite, lr_t = (v.numpy() for v in out)
        tl, dl, lr_next = float(tl), float(dl), float(lr_t)
        if not bool(finite) or not math.isfinite(tl):
            raise diverged_error(config, epoch, tl if not math.isfinite(tl) else float("nan"))
        if monitor_dev and not math.isfinite(dl):
            raise diverged_error(config, epoch, dl)
        train_hist.append(tl)
        if monitor_dev:
            dev_hist.append(dl)
        if progress is not None:
            progress(epoch, tl, dl if monitor_dev else None)
        if verbose and (epoch <= 10 or epoch % 10 == 0 or epoch == max_epochs):
            dev_txt = f" dev_loss={dl:.6g}" if monitor_dev else ""
            logger.info("epoch %s/%s: train_loss=%.6g%s", epoch, max_epochs, tl, dev_txt)
        if patience is None:
            continue
        current = dl if monitor_dev else tl
        if current < best - config.min_delta:
            best, best_epoch, wait = current, epoch, 0
            best_weights = theta.numpy()
        else:
            wait += 1
            if wait >= patience:
                break

    epochs_run = epoch
    if patience is None or best_weights is None:
        best_epoch = epochs_run
        final = theta.numpy()
    else:
        final = best_weights
    offset = 0
    for layer in dense:
        for v in (layer.kernel, layer.bias):
            size = int(np.prod(v.shape))
            v.assign(final[offset : offset + size].reshape(v.shape))
            offset += size
    return TrainResult(
        model=model,
        train_loss=tuple(train_hist),
        dev_loss=tuple(dev_hist),
        best_epoch=best_epoch,
        epochs_run=epochs_run,
        seconds=time.perf_counter() - t0,
        iterations=int(step.numpy()),
        final_learning_rate=lr_next,
    )
