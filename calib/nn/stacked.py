"""Train K networks of one shape at once: :func:`train_stacked`, the k folds of a trial in one call.

The k fold models of a trial (or several trials of the same network shape) differ in their
rows, seeds and hyper-parameters, not in their graph. :func:`train_stacked` stacks their flat
weight vectors into one ``(K, P)`` tensor and runs the compiled epoch of
:mod:`calib.nn.training` on all of them together: batched matmuls over a leading *model* axis,
each model with its own rows (padded with zero-weight rows to a common count), its own seeded
shuffling permutation, its own optimizer state, step counter and learning rate, its own early
stopping and best weights. A model whose epoch has fewer mini-batches than another's, or that
has stopped, takes no step (its update is masked), so each model follows exactly the sequence
of updates :func:`~calib.nn.training.train` gives it alone: the same numbers to float
tolerance (the batched kernels may round differently), for the same seeds.

One stacked step costs less than K single steps (one call, one loop, batched kernels), but
it is not free: for the bundled 2 x 64 network on two CPU cores a step is bound by its
arithmetic, and a model that has stopped is masked, not removed, so it is still computed until
the last model stops. ``benchmarks/stacked_folds.py`` measures a 5-fold trial stacked against
one fold and against the folds one by one (``benchmarks/stacked_folds.md``).

``optimizer = "lbfgs"`` stacks differently: scipy's L-BFGS-B is a sequential Python loop per
problem, so the K problems run as K independent minimisers in lockstep, each in its own
thread, and every round of their objective evaluations is one batched TensorFlow call for all
K (:func:`_train_lbfgs_stacked`). Each problem keeps its own line searches, convergence and
early stopping, so its iterates are those of a separate run, to float tolerance.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ConfigError
from ..scaling import Scaler
from .config import AUTO, LBFGS_AUTO_ITERATIONS, LBFGS_AUTO_PATIENCE, ModelConfig
from .network import build_model, dense_layers, tf_activation
from .optimizers import H_DROPOUT, H_L1, H_L2, hyper_vector, n_slots, tf_learning_rate, tf_updates
from .training import (
    PAD_ROWS,
    XLA_MIN_STEPS,
    TrainResult,
    check_arrays,
    diverged_error,
    initial_loss,
    pad_rows,
    pointwise_loss,
    round_up,
    starts_meaningful,
)

__all__ = ["stack_key", "train_stacked"]

logger = logging.getLogger("calib.nn.training")

#: Compiled stacked epoch functions kept (least recently used dropped).
_CACHE_SIZE = 4
_CACHE: OrderedDict[Any, Any] = OrderedDict()
_CACHE_LOCK = threading.Lock()


def stack_key(config: ModelConfig) -> tuple[Any, ...]:
    """What configs trained together by :func:`train_stacked` must share.

    The network shape, the loss, the optimizer and its schedule, which penalties and dropout
    are on (their values may differ) and the batch size. The seed, the learning rate and the
    other numeric hyper-parameters, the epochs, the patience and the family (``mlp`` or
    ``hybrid``: only the targets and the initial output layer differ) may differ per model.
    """
    return (config.hidden_layers, config.activation, config.loss, config.optimizer, config.lr_schedule,
            config.dropout > 0, config.l1 > 0, config.l2 > 0, config.batch_size)


@dataclass(frozen=True)
class _StackPlan:
    """Everything that shapes the traced stacked epoch graph (hashable cache key)."""

    widths: tuple[int, ...]  # hidden widths + n_outputs
    n_inputs: int
    activation: str
    loss: str
    optimizer: str
    lr_schedule: str
    dropout: bool
    l1: bool
    l2: bool
    n_models: int
    n_batches: int  # the most any model takes per epoch
    batch: int
    n_dev: int  # padded dev rows, 0 without dev data
    xla: bool


def _shapes(widths: Sequence[int], n_inputs: int) -> list[tuple[int, ...]]:
    """(kernel, bias) shapes of every Dense layer, in the order of the flat weight vector."""
    shapes: list[tuple[int, ...]] = []
    fan_in = n_inputs
    for width in widths:
        shapes += [(fan_in, width), (width,)]
        fan_in = width
    return shapes


def _build_epoch_fn(plan: _StackPlan):
    """Trace-once ``epoch(theta, slots, steps, x, z, w, perm, active, xd, zd, wd, hyper, seeds)``.

    ``theta`` (K, P) holds every model's flat weights, ``slots`` its optimizer states,
    ``steps`` (K,) int64 its step counters. ``x``/``z``/``w`` are (K, n_batches * batch, .)
    rows padded with weight 0, ``perm`` (K, n_batches * batch) each model's permutation of its
    real rows followed by its padding rows, ``active`` (K, n_batches) whether model k takes
    mini-batch i (a model with fewer batches, or one that has stopped, does not). ``hyper``
    is (K, 11), ``seeds`` (K,) the dropout seeds. Returns per model ``(train_loss, dev_loss,
    finite, next_learning_rate)``.
    """
    from .tf import tensorflow as _quiet_tf

    tf = _quiet_tf()

    activation = tf_activation(plan.activation)
    n_models, nb, bs, d, k = plan.n_models, plan.n_batches, plan.batch, plan.n_inputs, plan.widths[-1]
    n_layers = len(plan.widths)
    shapes = _shapes(plan.widths, plan.n_inputs)
    sizes = [int(np.prod(s)) for s in shapes]
    kernel_mask = np.concatenate(
        [np.full(size, 1.0 if len(s) == 2 else 0.0, np.float32) for s, size in zip(shapes, sizes)]
    )

    def forward(theta, x, training, hyper, seeds, t):
        parts = tf.split(theta, sizes, axis=1)
        h = x
        for i in range(n_layers):
            kernel = tf.reshape(parts[2 * i], (n_models,) + shapes[2 * i])
            h = tf.matmul(h, kernel) + parts[2 * i + 1][:, None, :]
            if i < n_layers - 1:
                h = activation(h)
                if training and plan.dropout:
                    # model j's mask is the one train() draws for it alone: same seed, same shape
                    u = tf.stack([tf.random.stateless_uniform(tf.shape(h)[1:],
                                                              seed=tf.stack([seeds[j], t[j] * 64 + i]))
                                  for j in range(n_models)])
                    rate = hyper[H_DROPOUT]
                    h = tf.where(u >= rate[:, None], h / (1.0 - rate[:, None]), tf.zeros_like(h))
        return h

    def data_loss(pred, z, w):
        # per model; max(., 1) only guards an all-padding batch (masked anyway), any real one has >= 1 row
        total = tf.reduce_sum(w * pointwise_loss(plan.loss, pred - z, tf.math), axis=[1, 2])
        return total / (tf.maximum(tf.reduce_sum(w, axis=[1, 2]), 1.0) * float(k))

    def penalty(theta, hyper):
        mask = tf.constant(kernel_mask)
        total = tf.zeros((n_models,), tf.float32)
        if plan.l1:
            total += hyper[H_L1][:, 0] * tf.reduce_sum(mask * tf.abs(theta), axis=1)
        if plan.l2:
            total += hyper[H_L2][:, 0] * tf.reduce_sum(mask * tf.square(theta), axis=1)
        return total

    def epoch(theta, slots, steps, x, z, w, perm, active, xd, zd, wd, hyper, seeds):
        hyper_cols = tf.transpose(hyper)[:, :, None]  # hyper_cols[H_*]: (K, 1) per-model columns
        xs = tf.transpose(tf.reshape(tf.gather(x, perm, batch_dims=1), (n_models, nb, bs, d)), (1, 0, 2, 3))
        zs = tf.transpose(tf.reshape(tf.gather(z, perm, batch_dims=1), (n_models, nb, bs, k)), (1, 0, 2, 3))
        ws = tf.transpose(tf.reshape(tf.gather(w, perm, batch_dims=1), (n_models, nb, bs, 1)), (1, 0, 2, 3))
        act = tf.transpose(active)  # (nb, K)

        def cond(i, *_):
            return i < nb

        def body(i, th, sl, t, total, finite):
            xb, zb, wb, on = xs[i], zs[i], ws[i], act[i]
            with tf.GradientTape() as tape:
                tape.watch(th)
                pred = forward(th, xb, True, hyper_cols, seeds, t)
                data = data_loss(pred, zb, wb)
                objective = data + penalty(th, hyper_cols) if plan.l1 or plan.l2 else data
                total_objective = tf.reduce_sum(objective)  # the models' gradients are independent
            grad = tape.gradient(total_objective, th)
            new_th, new_sl = tf_updates(plan, th, sl, grad, tf.cast(t, tf.float32)[:, None], hyper_cols)
            keep = on[:, None]
            th = tf.where(keep, new_th, th)
            sl = tuple(tf.where(keep, a, b) for a, b in zip(new_sl, sl))
            t = t + tf.cast(on, tf.int64)
            total += tf.where(on, data * tf.reduce_sum(wb, axis=[1, 2]), 0.0)
            finite = tf.logical_and(finite, tf.logical_or(tf.logical_not(on), tf.math.is_finite(data)))
            return i + 1, th, sl, t, total, finite

        _, th, sl, t, total, finite = tf.while_loop(
            cond, body,
            (tf.constant(0), theta.read_value(), tuple(s.read_value() for s in slots), steps.read_value(),
             tf.zeros((n_models,), tf.float32), tf.ones((n_models,), tf.bool)),
        )
        theta.assign(th)
        for var, value in zip(slots, sl):
            var.assign(value)
        steps.assign(t)
        train_loss = total / tf.reduce_sum(w, axis=[1, 2])
        if plan.n_dev:
            dev_loss = data_loss(forward(th, xd, False, hyper_cols, seeds, t), zd, wd)
        else:
            dev_loss = tf.fill((n_models,), float("nan"))
        lr_next = tf.reshape(tf_learning_rate(plan, tf.cast(t, tf.float32)[:, None], hyper_cols), (n_models,))
        return train_loss, dev_loss, finite, lr_next

    return tf.function(epoch, jit_compile=plan.xla, autograph=False)


def _epoch_fn(plan: _StackPlan):
    with _CACHE_LOCK:
        fn = _CACHE.get(plan)
        if fn is None:
            fn = _build_epoch_fn(plan)
            _CACHE[plan] = fn
            while len(_CACHE) > _CACHE_SIZE:
                _CACHE.popitem(last=False)
        else:
            _CACHE.move_to_end(plan)
        return fn


def _flat_weights(model: Any) -> np.ndarray:
    return np.concatenate([v.numpy().ravel() for layer in dense_layers(model) for v in (layer.kernel, layer.bias)])


def _load_flat(model: Any, flat: np.ndarray) -> None:
    offset = 0
    for layer in dense_layers(model):
        for v in (layer.kernel, layer.bias):
            size = int(np.prod(v.shape))
            v.assign(flat[offset:offset + size].reshape(v.shape))
            offset += size


def _configs(config: ModelConfig | Sequence[ModelConfig], n: int) -> list[ModelConfig]:
    configs = [config] * n if isinstance(config, ModelConfig) else list(config)
    if len(configs) != n:
        raise ConfigError(f"configs must be one ModelConfig or one per problem, got {len(configs)} for {n} problems")
    for c in configs:
        if not isinstance(c, ModelConfig):
            raise ConfigError(f"config must be a ModelConfig, got {type(c).__name__}")
    if len({stack_key(c) for c in configs}) > 1:
        raise ConfigError("configs trained together must share their shape (calib.nn.stacked.stack_key): "
                          "hidden_layers, activation, loss, optimizer, lr_schedule, batch_size and which of "
                          "dropout, l1, l2 are on")
    return configs


def _stacked_data(tf: Any, configs: Sequence[ModelConfig], arrays: Sequence[Any], x_scalers: Sequence[Any],
                  y_scalers: Sequence[Any], rows: Sequence[int], n_pad: int, n_dev: int) -> tuple[Any, ...]:
    """The K problems as padded [K, rows, ...] tensors (scaled; zero-weight padding rows), and their
    hyper-parameter vectors: ``(x, z, w, x_dev, z_dev, w_dev, hyper)``."""
    x_t = tf.constant(np.stack([pad_rows(xs.transform(a[0]), n_pad) for xs, a in zip(x_scalers, arrays)]))
    z_t = tf.constant(np.stack([pad_rows(ys.transform(a[1]), n_pad) for ys, a in zip(y_scalers, arrays)]))
    w_t = tf.constant(np.stack([pad_rows(np.ones((n, 1)), n_pad) for n in rows]))
    if n_dev:
        xd_t = tf.constant(np.stack([pad_rows(xs.transform(a[2]), n_dev) for xs, a in zip(x_scalers, arrays)]))
        zd_t = tf.constant(np.stack([pad_rows(ys.transform(a[3]), n_dev) for ys, a in zip(y_scalers, arrays)]))
        wd_t = tf.constant(np.stack([pad_rows(np.ones((a[2].shape[0], 1)), n_dev) for a in arrays]))
    else:
        xd_t = zd_t = wd_t = tf.zeros((len(arrays), 0, 1), tf.float32)
    hyper = tf.constant(np.stack([hyper_vector(c) for c in configs]))
    return x_t, z_t, w_t, xd_t, zd_t, wd_t, hyper


def train_stacked(
    config: ModelConfig | Sequence[ModelConfig],
    problems: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]],
    *,
    x_scalers: Sequence[Scaler],
    y_scalers: Sequence[Scaler],
    verbose: bool = False,
    jit_compile: bool | None = None,
) -> list[TrainResult]:
    """Train K networks of one shape together; each as :func:`~calib.nn.training.train` trains it alone.

    Parameters
    ----------
    config : ModelConfig or sequence of ModelConfig
        One config for every problem (the folds of a trial), or one per problem sharing
        :func:`stack_key` (trials of one shape: seeds, learning rates, penalties, epochs and
        patience may differ).
    problems : sequence of (x_train, y_train, x_dev, y_dev)
        Each model's raw training rows and targets, and its dev rows for early stopping
        (``None, None`` for none; all problems or none have dev rows). Row counts may differ.
    x_scalers, y_scalers : sequence of Scaler
        One per problem, fitted on its training rows.
    verbose : bool, default=False
        Log each model's losses as :func:`train` does, tagged with its 1-based index
        (``epoch 3/200: train_loss=0.0123 dev_loss=0.0145 (model 2)``), at INFO on the
        ``calib.nn.training`` logger.
    jit_compile : bool or None, default=None
        XLA; ``None`` chooses as :func:`train` does for the largest of the K runs.

    Returns
    -------
    list of TrainResult
        In the order of ``problems``; each ``model`` is an ordinary :func:`build_model`
        network holding that problem's best weights. ``seconds`` is the wall time of the
        whole call divided by K (the models share it).

    Raises
    ------
    ConfigError
        Configs of different shapes, or bad arrays (as :func:`train`).
    TrainingError
        If any model's loss becomes NaN or infinite (the message names the epoch).

    Notes
    -----
    Each model draws its initial weights from its config's seed (the same as alone), its
    per-epoch permutation from ``numpy.random.default_rng(config.seed)``, pads its last
    mini-batch with zero-weight rows, and stops after ``patience`` epochs without
    improvement; a stopped model takes no further step while the others go on.
    """
    from .tf import tensorflow as _quiet_tf

    tf = _quiet_tf()

    t0 = time.perf_counter()
    if not problems:
        raise ConfigError("problems must hold at least one (x_train, y_train, x_dev, y_dev), got none")
    n_models = len(problems)
    configs = _configs(config, n_models)
    if len(x_scalers) != n_models or len(y_scalers) != n_models:
        raise ConfigError(f"x_scalers and y_scalers must have one scaler per problem ({n_models}), "
                          f"got {len(x_scalers)} and {len(y_scalers)}")
    arrays = [check_arrays(*p) for p in problems]
    n_in, n_out = arrays[0][0].shape[1], arrays[0][1].shape[1]
    if any(a[0].shape[1] != n_in or a[1].shape[1] != n_out for a in arrays):
        raise ConfigError("problems trained together must have the same input and target columns")
    has_dev = {a[2] is not None for a in arrays}
    if len(has_dev) > 1:
        raise ConfigError("problems trained together must all have dev rows or none")
    models = [build_model(c, n_in, n_out, xs, ys) for c, xs, ys in zip(configs, x_scalers, y_scalers)]
    if configs[0].optimizer == "lbfgs":
        return _train_lbfgs_stacked(configs, models, arrays, x_scalers, y_scalers, t0, verbose, jit_compile)

    rows = [a[0].shape[0] for a in arrays]
    bsize = configs[0].batch_size
    if bsize is None or all(bsize >= n for n in rows):
        # full batch: one step per epoch over each model's rows; the padding only evens the shapes
        per_model = [1] * n_models
        batch = max(round_up(n, PAD_ROWS) for n in rows)
    else:
        # a model with bsize >= its rows takes one full-batch step, which fits in one batch of bsize
        per_model = [1 if bsize >= n else -(-n // bsize) for n in rows]
        batch = bsize
    nb = max(per_model)
    n_pad = nb * batch
    n_dev = max(round_up(a[2].shape[0], PAD_ROWS) for a in arrays) if has_dev == {True} else 0
    budgets = [c.budget(b) for c, b in zip(configs, per_model)]
    if jit_compile is None:
        jit_compile = any(e * b >= XLA_MIN_STEPS for (e, _), b in zip(budgets, per_model))
    c0 = configs[0]
    plan = _StackPlan(widths=tuple(c0.hidden_layers) + (n_out,), n_inputs=n_in, activation=c0.activation,
                      loss=c0.loss, optimizer=c0.optimizer, lr_schedule=c0.lr_schedule, dropout=c0.dropout > 0,
                      l1=c0.l1 > 0, l2=c0.l2 > 0, n_models=n_models, n_batches=nb, batch=batch, n_dev=n_dev,
                      xla=bool(jit_compile))

    theta = tf.Variable(np.stack([_flat_weights(m) for m in models]), dtype=tf.float32, trainable=False)
    slots = tuple(tf.Variable(tf.zeros_like(theta), trainable=False) for _ in range(n_slots(c0.optimizer)))
    steps = tf.Variable(np.zeros(n_models, np.int64), trainable=False)
    x_t, z_t, w_t, xd_t, zd_t, wd_t, hyper = _stacked_data(tf, configs, arrays, x_scalers, y_scalers, rows,
                                                            n_pad, n_dev)
    seeds = tf.constant([int(np.random.SeedSequence((c.seed, 1)).generate_state(1)[0]) for c in configs],
                        dtype=tf.int64)
    epoch_fn = _epoch_fn(plan)

    rngs = [np.random.default_rng(c.seed) for c in configs]
    tails = [np.arange(n, n_pad, dtype=np.int32) for n in rows]
    idle = np.arange(n_pad, dtype=np.int32)
    running = [True] * n_models
    best = [math.inf] * n_models
    best_epoch = [0] * n_models
    best_weights: list[np.ndarray | None] = [None] * n_models
    wait = [0] * n_models
    epochs_run = [0] * n_models
    train_hist: list[list[float]] = [[] for _ in range(n_models)]
    dev_hist: list[list[float]] = [[] for _ in range(n_models)]
    for j, (c, m, a, ys) in enumerate(zip(configs, models, arrays, y_scalers)):
        if budgets[j][1] is not None and starts_meaningful(c):
            best[j] = initial_loss(c, m, *((a[2], a[3]) if n_dev else (a[0], a[1])), ys)
            best_weights[j] = _flat_weights(m)
    lr_next = np.array([c.learning_rate for c in configs], dtype=np.float64)
    batch_index = np.arange(nb)
    epoch = 0
    while any(running):
        epoch += 1
        perm = np.stack([np.concatenate([rngs[j].permutation(rows[j]).astype(np.int32), tails[j]])
                         if running[j] else idle for j in range(n_models)])
        active = np.stack([(batch_index < per_model[j]) & running[j] for j in range(n_models)])
        out = epoch_fn(theta, slots, steps, x_t, z_t, w_t, tf.constant(perm), tf.constant(active),
                       xd_t, zd_t, wd_t, hyper, seeds)
        tl_all, dl_all, finite_all, lr_all = (v.numpy() for v in out)
        current_theta: np.ndarray | None = None
        for j in range(n_models):
            if not running[j]:
                continue
            tl, dl = float(tl_all[j]), float(dl_all[j])
            lr_next[j] = float(lr_all[j])
            if not bool(finite_all[j]) or not math.isfinite(tl):
                raise diverged_error(configs[j], epoch, tl if not math.isfinite(tl) else float("nan"))
            if n_dev and not math.isfinite(dl):
                raise diverged_error(configs[j], epoch, dl)
            train_hist[j].append(tl)
            if n_dev:
                dev_hist[j].append(dl)
            max_epochs, patience = budgets[j]
            if verbose and (epoch <= 10 or epoch % 10 == 0 or epoch == max_epochs):
                dev_txt = f" dev_loss={dl:.6g}" if n_dev else ""
                logger.info("epoch %s/%s: train_loss=%.6g%s (model %s)", epoch, max_epochs, tl, dev_txt, j + 1)
            epochs_run[j] = epoch
            if patience is not None:
                monitored = dl if n_dev else tl
                if monitored < best[j] - configs[j].min_delta:
                    if current_theta is None:
                        current_theta = theta.numpy()
                    best[j], best_epoch[j], wait[j] = monitored, epoch, 0
                    best_weights[j] = current_theta[j].copy()
                else:
                    wait[j] += 1
                    if wait[j] >= patience:
                        running[j] = False
            if epoch >= max_epochs:
                running[j] = False

    final_theta = theta.numpy()
    final_steps = steps.numpy()
    seconds = (time.perf_counter() - t0) / n_models
    results = []
    for j, m in enumerate(models):
        if budgets[j][1] is None or best_weights[j] is None:
            best_epoch[j] = epochs_run[j]
            flat = final_theta[j]
        else:
            flat = best_weights[j]
        _load_flat(m, flat)
        results.append(TrainResult(model=m, train_loss=tuple(train_hist[j]), dev_loss=tuple(dev_hist[j]),
                                   best_epoch=best_epoch[j], epochs_run=epochs_run[j], seconds=seconds,
                                   iterations=int(final_steps[j]), final_learning_rate=float(lr_next[j])))
    return results


def _build_objective_fn(plan: _StackPlan):
    """Trace-once ``objective(theta, x, z, w, xd, zd, wd, hyper)`` of K full-batch problems.

    K is the leading dimension of the arguments (any number up to ``plan.n_models``: the
    problems still running).

    Per model: the data loss on its training rows plus its L1/L2 penalties (what
    :func:`~calib.nn.training.train`'s L-BFGS minimises), the data loss alone, the dev data
    loss at the same weights (NaN without dev rows) and the gradient of the first, (K, P).
    """
    from .tf import tensorflow as _quiet_tf

    tf = _quiet_tf()

    activation = tf_activation(plan.activation)
    k = plan.widths[-1]
    shapes = _shapes(plan.widths, plan.n_inputs)
    sizes = [int(np.prod(s)) for s in shapes]
    kernel_mask = np.concatenate(
        [np.full(size, 1.0 if len(s) == 2 else 0.0, np.float32) for s, size in zip(shapes, sizes)]
    )

    def forward(theta, x):
        parts = tf.split(theta, sizes, axis=1)
        h = x
        for i in range(len(plan.widths)):
            h = tf.matmul(h, tf.reshape(parts[2 * i], (-1,) + shapes[2 * i])) + parts[2 * i + 1][:, None, :]
            if i < len(plan.widths) - 1:
                h = activation(h)
        return h

    def data_loss(pred, z, w):
        total = tf.reduce_sum(w * pointwise_loss(plan.loss, pred - z, tf.math), axis=[1, 2])
        return total / (tf.maximum(tf.reduce_sum(w, axis=[1, 2]), 1.0) * float(k))

    def objective(theta, x, z, w, xd, zd, wd, hyper):
        with tf.GradientTape() as tape:
            tape.watch(theta)
            data = data_loss(forward(theta, x), z, w)
            total = data
            mask = tf.constant(kernel_mask)
            if plan.l1:
                total += hyper[:, H_L1] * tf.reduce_sum(mask * tf.abs(theta), axis=1)
            if plan.l2:
                total += hyper[:, H_L2] * tf.reduce_sum(mask * tf.square(theta), axis=1)
            summed = tf.reduce_sum(total)  # the models' gradients are independent
        grad = tape.gradient(summed, theta)
        dev = data_loss(forward(theta, xd), zd, wd) if plan.n_dev else tf.fill(tf.shape(theta)[:1], float("nan"))
        return total, data, dev, grad

    return tf.function(objective, jit_compile=plan.xla, autograph=False)


class _Lockstep:
    """K threads each ask for their model's objective; every round is one batched call for the askers.

    A thread's request waits until every thread still running has asked (or left); the last
    to arrive evaluates the stack of the models that asked (``evaluate(theta, rows)``), the
    others wake with their rows of the answer. Threads that finished leave the rounds, so a
    round costs what the models still running cost.
    """

    def __init__(self, n_models: int, evaluate: Callable[[np.ndarray, list[int]], tuple[np.ndarray, ...]],
                 theta0: np.ndarray):
        self._cond = threading.Condition()
        self._evaluate = evaluate
        self._theta = np.array(theta0, dtype=np.float32)
        self._live = set(range(n_models))
        self._pending: set[int] = set()
        self._answers: dict[int, tuple[Any, ...]] = {}
        self._error: BaseException | None = None

    def ask(self, j: int, theta: np.ndarray) -> tuple[Any, ...]:
        with self._cond:
            self._theta[j] = theta
            self._pending.add(j)
            self._run_if_complete()
            while j not in self._answers and self._error is None:
                self._cond.wait()
            if self._error is not None:
                raise self._error
            return self._answers.pop(j)

    def leave(self, j: int) -> None:
        with self._cond:
            self._live.discard(j)
            self._run_if_complete()

    def _run_if_complete(self) -> None:
        if not self._pending or not self._pending >= self._live:
            return
        rows = sorted(self._pending)
        try:
            out = self._evaluate(self._theta[rows], rows)
        except BaseException as exc:  # pragma: no cover - a TF failure reaches every waiting thread
            self._error = exc
        else:
            for pos, i in enumerate(rows):
                self._answers[i] = tuple(o[pos] for o in out)
        self._pending = set()
        self._cond.notify_all()


def _train_lbfgs_stacked(configs: list[ModelConfig], models: list[Any], arrays: list[Any],
                         x_scalers: Sequence[Scaler], y_scalers: Sequence[Scaler], t0: float, verbose: bool,
                         jit_compile: bool | None) -> list[TrainResult]:
    """Full-batch L-BFGS of K problems: K scipy minimisers in lockstep threads, one TF call per round.

    Each problem runs its own ``scipy.optimize.minimize(method="L-BFGS-B")`` with the options,
    the early stopping on the dev loss and the restoring of the best weights of
    :func:`~calib.nn.training.train`'s L-BFGS, so its iterates are those of a separate run to
    float tolerance (the objective is computed by batched kernels, not by the Keras model).
    """
    from scipy.optimize import minimize

    from .tf import tensorflow as _quiet_tf

    tf = _quiet_tf()
    for c in configs:
        if c.dropout > 0:
            raise ConfigError(f"dropout = 0 must hold for optimizer='lbfgs' (full-batch, deterministic), "
                              f"got dropout={c.dropout!r}")
    n_models = len(configs)
    n_in, n_out = arrays[0][0].shape[1], arrays[0][1].shape[1]
    rows = [a[0].shape[0] for a in arrays]
    n_pad = max(round_up(n, PAD_ROWS) for n in rows)
    has_dev = arrays[0][2] is not None
    n_dev = max(round_up(a[2].shape[0], PAD_ROWS) for a in arrays) if has_dev else 0
    c0 = configs[0]
    plan = _StackPlan(widths=tuple(c0.hidden_layers) + (n_out,), n_inputs=n_in, activation=c0.activation,
                      loss=c0.loss, optimizer="lbfgs", lr_schedule=c0.lr_schedule, dropout=False, l1=c0.l1 > 0,
                      l2=c0.l2 > 0, n_models=n_models, n_batches=1, batch=n_pad, n_dev=n_dev,
                      xla=bool(jit_compile))
    with _CACHE_LOCK:
        fn = _CACHE.get(plan)
        if fn is None:
            fn = _CACHE[plan] = _build_objective_fn(plan)
        _CACHE.move_to_end(plan)
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    x_t, z_t, w_t, xd_t, zd_t, wd_t, hyper = _stacked_data(tf, configs, arrays, x_scalers, y_scalers, rows,
                                                            n_pad, n_dev)

    data = (x_t, z_t, w_t, xd_t, zd_t, wd_t, hyper)
    n_params = sum(int(np.prod(sh)) for sh in _shapes(plan.widths, plan.n_inputs))
    # called ~1000 times: the concrete function skips tf.function's per-call argument matching;
    # the leading (model) dimension is free, so a round evaluates the models still running only
    concrete = fn.get_concrete_function(tf.TensorSpec([None, n_params], tf.float32),
                                        *(tf.TensorSpec([None, *t.shape[1:]], t.dtype) for t in data))

    def evaluate(theta: np.ndarray, rows: list[int]) -> tuple[np.ndarray, ...]:
        part = data if len(rows) == n_models else tuple(tf.gather(t, rows) for t in data)
        return tuple(v.numpy() for v in concrete(tf.constant(theta), *part))

    theta0 = np.stack([_flat_weights(m) for m in models]).astype(np.float64)
    lockstep = _Lockstep(n_models, evaluate, theta0)
    outcomes: list[dict[str, Any]] = [{} for _ in range(n_models)]

    def solve(j: int) -> None:
        config, a = configs[j], arrays[j]
        max_iter = config.epochs if config.epochs is not None else LBFGS_AUTO_ITERATIONS
        patience = LBFGS_AUTO_PATIENCE if config.patience == AUTO else config.patience
        train_hist: list[float] = []
        dev_hist: list[float] = []
        state: dict[str, Any] = {"best": math.inf, "best_theta": None, "best_it": 0, "wait": 0,
                                 "last_data": math.nan, "last": None}
        if patience is not None and starts_meaningful(config):
            state.update(best=initial_loss(config, models[j], *((a[2], a[3]) if has_dev else (a[0], a[1])),
                                           y_scalers[j]),
                         best_theta=theta0[j].copy())

        def fun(theta: np.ndarray) -> tuple[float, np.ndarray]:
            total, data, dev, grad = lockstep.ask(j, theta)
            total = float(total)
            state["last_data"] = float(data)
            state["last"] = (np.array(theta, copy=True), float(data), float(dev))
            if not math.isfinite(total):
                raise diverged_error(config, len(train_hist) + 1, total)
            return total, grad.astype(np.float64)

        def callback(intermediate_result: Any) -> None:
            theta = intermediate_result.x
            it = len(train_hist) + 1
            last = state["last"]
            if last is not None and np.array_equal(last[0], theta):
                tl, dl = last[1], last[2]
            else:  # not the last evaluated point: evaluate it (one more round)
                _, data, dev, _ = lockstep.ask(j, theta)
                tl, dl = float(data), float(dev)
            train_hist.append(tl)
            if has_dev:
                dev_hist.append(dl)
            if verbose and (it <= 10 or it % 10 == 0):
                logger.info("iteration %s/%s: train_loss=%.6g%s (model %s)", it, max_iter, tl,
                            f" dev_loss={dl:.6g}" if has_dev else "", j + 1)
            if patience is None:
                return
            current = dl if has_dev else tl
            if current < state["best"] - config.min_delta:
                state.update(best=current, best_theta=np.array(theta, copy=True), best_it=it, wait=0)
            else:
                state["wait"] += 1
                if state["wait"] >= patience:
                    raise StopIteration

        try:
            res = minimize(fun, theta0[j], jac=True, method="L-BFGS-B", callback=callback,
                           options={"maxiter": int(max_iter), "maxfun": int(max_iter) * 2, "ftol": 0.0,
                                    "gtol": 1e-10})
            epochs_run = max(len(train_hist), 1)
            if patience is not None and state["best_theta"] is not None:
                final, best_epoch = state["best_theta"], int(state["best_it"])
            else:
                final, best_epoch = res.x, epochs_run
            if not train_hist:
                train_hist.append(state["last_data"])
            outcomes[j].update(final=final, train_loss=tuple(train_hist), dev_loss=tuple(dev_hist),
                               best_epoch=best_epoch, epochs_run=epochs_run, iterations=int(res.nit))
        except BaseException as exc:
            outcomes[j]["error"] = exc
        finally:
            lockstep.leave(j)

    threads = [threading.Thread(target=solve, args=(j,), name=f"calib-lbfgs-{j}", daemon=True)
               for j in range(n_models)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for o in outcomes:
        if "error" in o:
            raise o["error"]
    seconds = (time.perf_counter() - t0) / n_models
    results = []
    for m, o in zip(models, outcomes):
        _load_flat(m, np.asarray(o["final"], dtype=np.float32))
        results.append(TrainResult(model=m, train_loss=o["train_loss"], dev_loss=o["dev_loss"],
                                   best_epoch=o["best_epoch"], epochs_run=o["epochs_run"], seconds=seconds,
                                   iterations=o["iterations"], final_learning_rate=float("nan")))
    return results
