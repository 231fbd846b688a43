"""The main job: ingest -> sweep -> refit -> test once -> export a versioned artifact.

readings + :class:`~calib.config.Config` -> :class:`CalibrationRun` (artifact path, CV and test metrics).

1. Ingest and split (:mod:`calib.ingest`); the test part is set aside.
2. Sweep hyperparameters by k-fold on the train part (:mod:`calib.search`), recorded in a
   journal under ``runs/`` so a re-run resumes instead of starting over.
3. The kept config's k-fold with its fold models (their spread is the per-reading standard
   deviation), with the physics fit on the same folds: the sweep trial's own when it ran in this
   call (:attr:`calib.search.SweepResult.validations`), else a re-validation.
4. Refit the best config on train + dev for the median best epoch of the folds (L-BFGS: the iteration
   where the folds' mean validation curve is lowest, scaled by the rows).
5. Evaluate once on the held-out test part, network and the physics fit alone.
6. Export the versioned artifact (:mod:`calib.artifact`) with its report (:mod:`calib.report`).
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Mapping

import numpy as np

from .config import CalibrateSpec, Config, SweepSpec, sweep_settings
from .constraints import check_keys, check_params
from .errors import CalibError, ConfigError

if TYPE_CHECKING:  # pragma: no cover
    from .spots.normalise import SpotReference

__all__ = ["CalibrateSettings", "CalibrationRun", "calibrate", "fit_trust", "objective_of"]

_NAME_RE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class CalibrateSettings(CalibrateSpec):
    """Options of the main job: the ``[calibrate]`` table plus sweep options given in Python or
    on the command line.

    Attributes
    ----------
    name, models_dir, runs_dir
        As :class:`calib.config.CalibrateSpec`.
    trials, strategy, jobs, storage, study, prune : optional
        Override ``[sweep]`` trials, strategy, jobs, storage, study name and pruning (``None``: the
        config's value, see :func:`calib.config.sweep_settings`); the same rules as there.

    Examples
    --------
    >>> CalibrateSettings(name="foil-7", trials=4).trials
    4
    """

    trials: int | None = None
    strategy: str | None = None
    jobs: int | None = None
    storage: str | None = None
    study: str | None = None
    prune: bool | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        check_params(_sweep_overrides(self), {k: [None, *v] for k, v in SweepSpec.rules.items()})

    @classmethod
    def from_spec(cls, spec: CalibrateSpec, **overrides: Any) -> "CalibrateSettings":
        """The ``[calibrate]`` section with options applied (``None`` keeps the section's value)."""
        base = {f.name: getattr(spec, f.name) for f in fields(CalibrateSpec)}
        return cls(**{**base, **{k: v for k, v in overrides.items() if v is not None}})

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "CalibrateSettings":
        """Build from a ``[calibrate]``-like table (its keys plus the sweep options)."""
        check_keys("calibrate", d, tuple(f.name for f in fields(cls)))
        return cls(**d)


def _sweep_overrides(settings: CalibrateSettings) -> dict[str, Any]:
    return {k: getattr(settings, k) for k in ("trials", "strategy", "jobs", "storage", "study", "prune")}


@dataclass(frozen=True)
class CalibrationRun:
    """What the main job produced."""

    artifact: Any  # calib.artifact.Artifact
    sweep: Any  # calib.search.SweepResult
    cv: Any  # calib.validate.CVResult
    test: Any  # calib.metrics.Metrics
    test_physics: Any  # Metrics or None
    physics_kind: str | None
    config: Any  # ModelConfig
    epochs: int
    test_std_mean: float | None
    tuned: bool | None = None  # chosen on the folds (False: the untuned [model] default was kept)

    def to_dict(self) -> dict[str, Any]:
        diag = self.cv.diagnosis(None if self.test is None else self.test.mae, self.tuned)
        return {
            "artifact": str(self.artifact.path),
            "name": self.artifact.name,
            "version": self.artifact.version,
            "model_id": self.artifact.metadata.get("model_id"),
            "target": self.cv.target,
            "unit": self.cv.unit,
            "hyperparameters": self.config.to_dict(),
            "epochs": self.epochs,
            "cv": self.cv.summary(),
            "test": None if self.test is None else self.test.to_dict(),
            "outputs": {"cv": self.cv.summary()["outputs"],
                        "test": (self.artifact.metadata.get("test") or {}).get("outputs"),
                        "objective": self.cv.summary()["objective"], "baseline": self.cv.baseline},
            "error_estimate": self.artifact.metadata.get("error_estimate"),
            "test_physics": None if self.test_physics is None else self.test_physics.to_dict(),
            "physics_kind": self.physics_kind,
            "test_std_mean": self.test_std_mean,
            "diagnosis": diag.to_dict(),
            "interval": ({**self.artifact.metadata["test"]["interval"],
                          "level": self.artifact.metadata["conformal"]["level"]}
                         if "interval" in (self.artifact.metadata.get("test") or {}) else None),
            "uncertainty": self.artifact.metadata.get("uncertainty"),
            "sweep": {"storage": self.sweep.storage, "strategy": self.sweep.strategy,
                      "trials": len(self.sweep.trials),
                      "best": None if self.sweep.best is None else self.sweep.best.to_dict()},
        }


def objective_of(cfg: Config, ds: Any) -> Any:
    """The :class:`calib.metrics.Objective` of ``ds``'s outputs under ``cfg``
    (``[validate] tolerance``/``aux_tolerance``, ``[sweep] objective``)."""
    return cfg.objective((ds.target.name, ds.target.unit, ds.target.source),
                         [(c.name, c.unit, c.source) for c in ds.aux_targets])


def _run_key(ds: Any, cfg: Config, ss: SweepSpec) -> str:
    blob = json.dumps({"data": ds.sha256, "features": ds.feature_names, "target": ds.target_names,
                       "group": ds.group, "model": dict(cfg.model), "sweep": ss.to_dict(),
                       "split": [cfg.split.test_fraction, cfg.split.dev_fraction, cfg.split.scaling]},
                      sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def calibrate(
    data: str | Path,
    cfg: Config,
    settings: CalibrateSettings | None = None,
    *,
    progress: Callable[[str], None] | None = None,
    sweep_progress: Callable[[int, int, float | None], None] | None = None,
    spot_reference: SpotReference | None = None,
) -> CalibrationRun:
    """Run the main job on ``data`` with config ``cfg``.

    Parameters
    ----------
    data : str or Path
        Readings file of the calibration (CSV, Parquet, Excel).
    cfg : Config
        Columns, split, validation, ``[model]`` base config and ``[sweep]`` settings: the sweep
        runs with :func:`calib.config.sweep_settings` (as ``calib sweep`` does), its ``seed``
        also seeds the folds of the re-validation and, unless ``[model] seed`` is set, the
        network; ``[split] seed`` seeds the split.
    settings : CalibrateSettings, optional
        Name, folders and sweep options; default: ``cfg.calibrate``. Without a ``storage``
        (here or in ``[sweep]``), the trial record is ``<runs_dir>/<name>/sweep-<key>.journal``,
        one per data and settings, so an interrupted main job resumes.
    progress : callable, optional
        Called with a one-line message at each stage.
    sweep_progress : callable, optional
        Passed to :func:`calib.search.run_sweep`.
    spot_reference : calib.spots.normalise.SpotReference, optional
        Train on spot-normalised phases (:mod:`calib.spots.normalise`): the batch-typical anchors are
        fitted on the train + dev spots, every spot (test spots too: that is their two-point
        check) is mapped with its own anchors, and sweep, k-fold, refit and test run on the
        mapped readings. ``calibration.json`` gets ``spot_normalisation``; the exported model
        takes mapped phases and must be adjusted per spot (``calib adjust``, method
        ``spot_map``) before use. Default: the config's ``[adjust]`` table if it has one.

    Returns
    -------
    CalibrationRun

    Raises
    ------
    IngestError, ConfigError, TrainingError, ArtifactError
    """
    settings = settings or CalibrateSettings.from_spec(cfg.calibrate)
    ss = sweep_settings(cfg, **_sweep_overrides(settings))  # the same resolution as `calib sweep`
    from .search import WarmPool, local_workers

    # the sweep's worker processes start first: their start-up (TensorFlow, Optuna) overlaps this one's
    pool = WarmPool(local_workers(ss.jobs)) if ss.jobs != 1 else None
    try:
        return _calibrate(data, cfg, settings, ss, pool, progress, sweep_progress, spot_reference)
    finally:
        if pool is not None:
            pool.close()


def _calibrate(data: str | Path, cfg: Config, settings: CalibrateSettings, ss: SweepSpec, pool: Any,
               progress: Callable[[str], None] | None, sweep_progress: Any,
               spot_reference: SpotReference | None) -> CalibrationRun:
    from .ingest import prepare
    from .spots.normalise import SpotReference
    from .search import run_sweep
    from .validate import limit_threads

    # TensorFlow on one thread here, as in the sweep's workers: the k-fold of the kept config then
    # computes what its trial computed (the thread count changes float reductions, and L-BFGS's path
    # with them), and a small network trains as fast on one thread. No effect if TF already runs.
    # With worker processes the sweep needs no TensorFlow here: it is imported in the background
    # (ingest and the sweep's start go on meanwhile) and started before the first use, after the sweep.
    if pool is None:
        limit_threads()
    else:
        from .nn.tf import import_in_background
        from .validate import one_thread_env

        one_thread_env()
        # and what its fits after the sweep import (scikit-learn's KMeans: 1.3 s), so that they
        # do not wait for it then; matplotlib comes with the report's warm-up (_warm_up_drawing)
        import_in_background(then=("sklearn.cluster", "scipy.optimize"), skip=("matplotlib",))
    say = progress or (lambda msg: None)
    base = cfg.model_config()
    base = base.replace(seed=ss.seed) if "seed" not in cfg.model else base

    # --- spot normalisation [adjust] (calib.spots.normalise): reference validated before any data is read
    if spot_reference is None and cfg.adjust is not None:
        spot_reference = cfg.adjust.reference()
    if spot_reference is not None and not isinstance(spot_reference, SpotReference):
        raise ConfigError(f"spot_reference must be a SpotReference or None, got {type(spot_reference).__name__}")
    # --- end spot normalisation

    ds, sp = prepare(data, cfg)
    name = settings.name or _NAME_RE.sub("-", Path(data).stem).strip("-.") or "calibration"
    from .artifact.store import check_models_dir

    check_models_dir(settings.models_dir, name)  # before the sweep, not after it
    key = _run_key(ds, cfg, ss)
    # --- spot normalisation: fit B0/B1 on the train + dev spots, map every spot with its own
    # anchors; the journal key includes the normalisation (same file, other inputs)
    raw_ds, norm = ds, None
    if spot_reference is not None:
        from .spots.normalise import fit_normalisation

        norm = fit_normalisation(ds, sp.train_dev, spot_reference)
        ds = norm.apply(ds)
        key = hashlib.sha256(json.dumps([key, norm.to_dict()], sort_keys=True).encode()).hexdigest()[:12]
        say(f"spot normalisation: {len(norm.mapped)} phase input(s) mapped per spot onto the anchors of "
            f"{len(norm.anchors)} calibration spots ({spot_reference.zero:g}/{spot_reference.air:g} "
            f"{ds.target.unit} at {spot_reference.temperature_degC:g} degC)")
    # --- end spot normalisation
    storage = ss.storage
    if storage is None:  # one journal per data and settings, so an interrupted main job resumes
        storage = str(Path(settings.runs_dir) / name / f"sweep-{key}.journal")
        try:
            Path(storage).parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # runs_dir a file, or a folder that cannot be made
            raise CalibError(f"{storage}: cannot create folder {Path(storage).parent} "
                             f"({exc.strerror or exc}); set [calibrate] runs_dir or $CALIB_RUNS_DIR") from None
    say(f"data: {ds.n_rows} rows, train+dev {len(sp.train_dev)}, test {len(sp.test)}"
        + (f" ({len(np.unique(ds.groups(sp.test)))} held-out {ds.group})" if ds.group and len(sp.test) else "")
        + ("" if len(sp.test) else " (test_fraction = 0: every row calibrates the final model; the error "
           "estimate is the k-fold CV)"))
    say(f"sweep: {ss.strategy}, {ss.trials} trials x {ss.folds} folds, jobs {ss.jobs}, seed {ss.seed}, "
        f"record {storage}")
    space = ss.search_space()
    ahead = _RefitAhead(ds, sp.train_dev, cfg, base, space, _FitsAhead(ds, sp.train_dev))
    objective = objective_of(cfg, ds)
    if objective.multi:
        say(f"objective over {len(objective.names)} outputs: {objective.describe()}")
    sw = run_sweep(ds, sp.train_dev, base, space, strategy=ss.strategy, n_trials=ss.trials, folds=ss.folds,
                   jobs=ss.jobs, storage=storage, study_name=ss.study, seed=ss.seed,
                   tolerance=cfg.validate.resolve_tolerance(ds.target.unit), scaling=cfg.split.scaling,
                   noise_floor=cfg.validate.noise_floor, progress=sweep_progress, objective=objective,
                   prune=ss.prune, start_with_base=True, pool=pool, spare=ahead.offer)
    pruned = sum(t.state == "PRUNED" for t in sw.trials)
    if pruned:
        say(f"sweep: {pruned} of {len(sw.trials)} trials pruned after some folds (behind the median of the "
            "finished trials; [sweep] prune)")
    if sw.best_config is None:
        reasons = "; ".join(sorted({t.reason or t.state for t in sw.trials}))[:300]
        from .errors import TrainingError

        raise TrainingError(f"every sweep trial failed ({reasons}); check the [model] and [sweep] settings")
    limit_threads()  # waits for the import in the background
    best, cv = _against_default(ds, sp, cfg, base, sw, space, ss, say, ahead.fits)
    return _finish(ds, sp, cfg, best, sw, settings, ss, name, say, space.to_dict(), norm=norm, raw_ds=raw_ds,
                   cv=cv, ahead=ahead, tuned=best is not base)


def _trained_like(sw: Any, configs: list[Any], done: list[Any], config: Any) -> Any:
    """The finished trial that trains like ``config`` and handed its k-fold back in this run
    (:attr:`calib.search.SweepResult.validations`), or None."""
    return next((t for c, t in zip(configs, done)
                 if t.number in sw.validations and c.effective() == config.effective()), None)


def _candidates(sw: Any, space: Any, base: Any) -> tuple[list[Any], list[Any], list[tuple[str, float, Any, int]]]:
    """The sweep's finished trials, their configs and their :func:`calib.search.one_se_choice` entries."""
    done = [t for t in sw.trials if t.state == "COMPLETE"]
    configs = [space.to_config(base, t.params) for t in done]
    entries = [(c.family, float(t.score), t.score_std, max(1, len(t.best_epochs))) for c, t in zip(configs, done)]
    return done, configs, entries


def _choice(sw: Any, space: Any, base: Any) -> tuple[Any, Any, Any] | None:
    """The one-standard-error choice among the sweep's finished trials, the untuned ``[model]``
    default preferred (:func:`calib.search.one_se_choice`), when the default was a trial.

    Returns ``(config, trial, kfold_trial)``: the kept config (``base`` itself when the default
    is kept), the trial whose score chose it, and the trial that trains like it and handed its
    k-fold back in this run (:func:`_trained_like`; None if none did). None when no finished
    trial trains like the default (it then needs its own k-fold).
    """
    from .search import one_se_choice

    done, configs, entries = _candidates(sw, space, base)
    same = [i for i, c in enumerate(configs) if c.effective() == base.effective()]
    if not same:
        return None
    i = same[0]
    pick = one_se_choice(entries, prefer=i)
    config = base if pick == i else configs[pick]
    return config, done[pick], _trained_like(sw, configs, done, config)


def _against_default(ds: Any, sp: Any, cfg: Config, base: Any, sw: Any, space: Any, ss: SweepSpec,
                     say: Callable[[str], None], ahead: "_FitsAhead | None" = None) -> tuple[Any, Any]:
    """The config the main job keeps: the sweep's trials and the untuned ``[model]`` default,
    under the one-standard-error rule (:func:`calib.search.one_se_choice`, default preferred).

    When a trial trains like the default (:meth:`calib.nn.ModelConfig.effective`), that trial's
    recorded score stands for the default (:func:`_choice`); else the default gets its own
    k-fold on the same folds.

    Returns ``(config, cv)``: ``cv`` is the kept config's k-fold result with its fold models
    when this run already has it (the default's own k-fold, or the sweep trial that trained it:
    :attr:`calib.search.SweepResult.validations`), so it is not validated twice; else None.
    A trial's k-fold gets its folds' physics fits from ``ahead`` (:class:`_FitsAhead`) when they were made ahead.
    """
    from .search import one_se_choice
    from .validate import cross_validate, with_physics

    def kept(config: Any, trained: Any) -> tuple[Any, Any]:
        if trained is None:
            return config, None
        say(f"kept config's fold models: trial #{trained.number}'s k-fold (not validated again)")
        tcv = sw.validations[trained.number]
        fits = None if ahead is None else ahead.folds(tcv.fold_pairs, str(tcv.config.get("physics_kind", "auto")))
        return config, with_physics(tcv, ds, sp.train_dev, fits)

    choice = _choice(sw, space, base)
    if choice is not None:  # the default was a trial (it trains alike): its recorded score competes
        config, trial, trained = choice
        if config is base and sw.best is not None and trial.number != sw.best.number:
            say(f"kept the untuned default (trial #{trial.number}): {objective_of(cfg, ds).label} "
                f"{trial.score:.4g} {ds.target.unit}, within one standard error of the best trial's "
                f"{sw.best.score:.4g}")
        return kept(config, trained)
    done, configs, entries = _candidates(sw, space, base)
    say("untuned [model] default: k-fold on the same folds (a tuned config must beat it by one standard error)")
    tol = cfg.validate.resolve_tolerance(ds.target.unit)
    dcv = cross_validate(ds, sp.train_dev, base, folds=ss.folds, jobs=ss.jobs, tolerance=tol,
                         scaling=cfg.split.scaling, seed=ss.seed, noise_floor=cfg.validate.noise_floor,
                         physics=True, keep_weights=True, objective=objective_of(cfg, ds))
    mean, std = dcv.objective_mean_std()
    entries.append((base.family, mean, std, len(dcv.folds)))
    pick = one_se_choice(entries, prefer=len(entries) - 1)
    if pick == len(entries) - 1:
        say(f"kept the untuned default: {dcv.outputs.label} {mean:.4g} {ds.target.unit}, within one standard error of the "
            f"best trial's {sw.best.score:.4g}" if sw.best is not None else "kept the untuned default")
        return base, dcv
    return kept(configs[pick], _trained_like(sw, configs, done, configs[pick]))


def _refit_args(ds: Any, cfg: Config) -> dict[str, Any]:
    """:func:`calib.nn.fit_member`'s keyword arguments for the main job's refit (here or ahead)."""
    return {"scaling": cfg.split.scaling, "feature_names": list(ds.feature_names),
            "feature_units": [c.unit for c in ds.features], "target_unit": ds.target.unit}


class _RefitAhead:
    """The main job's refit, trained ahead in a sweep worker that has no trial left while the last
    ones still run (:func:`calib.search.run_sweep`'s ``spare``).

    At that moment the one-standard-error choice among the finished trials (:func:`_choice`) is
    usually the final one; its refit (:func:`calib.nn.refit_config`, the same rows, scaling and
    seed) then runs on the otherwise idle core. :meth:`take` hands it over only when the config
    finally kept refits exactly as the one trained ahead; else the main process refits itself.
    The worker trains on one TensorFlow thread, as the main process does, so both give the same
    weights (tested). At the same moment ``fits`` (:class:`_FitsAhead`) starts the fits that
    depend on no network, and a second thread warms matplotlib up for the report
    (:func:`calib.report.warm_up`; :meth:`drawing_ready` joins it), both in the main process.
    """

    def __init__(self, ds: Any, rows: np.ndarray, cfg: Config, base: Any, space: Any,
                 fits: "_FitsAhead | None" = None) -> None:
        self.ds, self.rows, self.cfg, self.base, self.space = ds, rows, cfg, base, space
        self.fits = fits
        self.config: Any = None
        self.future: Any = None
        self.drawing: Any = None

    def offer(self, interim: Any, submit: Callable[..., Any]) -> None:
        from .nn import refit_config
        from .nn.family import fit_member_parts

        if self.drawing is None:  # the report's drawing set up on the idle core (joined before the report)
            import threading

            self.drawing = threading.Thread(target=_warm_up_drawing, name="calib-warm-up-drawing", daemon=True)
            self.drawing.start()
        if self.future is not None:
            return
        choice = _choice(interim, self.space, self.base)
        if choice is None or choice[2] is None:
            return
        config, _trial, trained = choice
        cv = interim.validations[trained.number]
        if self.fits is not None:
            self.fits.start(cv.fold_pairs, str(cv.config.get("physics_kind", "auto")), config.physics_kind)
        final_cfg, _ = refit_config(config, cv.best_epochs, len(self.rows), cv.fit_rows, cv.curve_best_epoch)
        if final_cfg.family == "physics":  # nothing to train ahead
            return
        self.config = final_cfg
        self.future = submit(fit_member_parts, final_cfg.to_dict(), self.ds.x(self.rows), self.ds.y(self.rows),
                             _refit_args(self.ds, self.cfg))

    def drawing_ready(self) -> None:
        """Wait for the report's drawing set-up (matplotlib draws in one thread at a time)."""
        if self.drawing is not None:
            self.drawing.join()

    def take(self, final_cfg: Any) -> dict[str, Any] | None:
        """The parts trained ahead (:func:`calib.nn.family.fit_member_parts`) if they are ``final_cfg``'s."""
        if self.future is None or final_cfg != self.config:
            return None
        try:
            return self.future.result()
        except Exception:  # the worker died or failed: the main process refits
            return None


def _warm_up_drawing() -> None:
    try:
        from .report import warm_up

        warm_up()
    except Exception:  # only a head start: the report draws (or reports its failure) as before
        pass


class _FitsAhead:
    """The fits the main job makes after its sweep that depend on no network, made during the
    sweep's tail in a thread of this process (which otherwise only waits for its workers): the
    classical physics fit of each fold on the fold's training rows
    (:func:`calib.validate.with_physics`), the final one on every calibration row (the
    ``physics_fit`` the test compares with), and the applicability domain's prototypes
    (:func:`calib.trust.domain_geometry`).

    :meth:`folds`, :meth:`final` and :meth:`geometry` hand them over only for the same folds
    and physics kind; a fit that failed is handed over as None, so the caller fits again and
    reports the failure as it always has. The fits are deterministic: made here or there, they
    are the same.
    """

    def __init__(self, ds: Any, rows: np.ndarray) -> None:
        self.ds, self.rows = ds, np.asarray(rows)
        self.key: Any = None
        self.thread: Any = None
        self.fold_fits: list[Any] = []
        self.final_fit: Any = None
        self.domain: Any = None

    def start(self, fold_pairs: Any, fold_kind: str, final_kind: str) -> None:
        import threading

        if self.thread is not None or not fold_pairs:
            return
        self.key = ([np.asarray(tr).copy() for tr, _va in fold_pairs], fold_kind, final_kind,
                    [np.asarray(va).copy() for _tr, va in fold_pairs])
        self.thread = threading.Thread(target=self._run, name="calib-fits-ahead", daemon=True)
        self.thread.start()

    def _fit(self, x: np.ndarray, y: np.ndarray, kind: str) -> Any:
        from .physics import fit_physics

        try:
            return fit_physics(x, y, list(self.ds.feature_names), [c.unit for c in self.ds.features],
                               self.ds.target.unit, kind=kind)
        except Exception:  # the caller fits again and reports it
            return None

    def _run(self) -> None:
        from .trust import domain_geometry

        trains, fold_kind, final_kind, vals = self.key
        x, y = self.ds.x(self.rows), self.ds.y(self.rows)[:, 0]
        self.fold_fits = [self._fit(x[tr], y[tr], fold_kind) for tr in trains]
        self.final_fit = self._fit(x, y, final_kind)
        try:
            self.domain = domain_geometry(x, list(zip(trains, vals)))
        except Exception:  # the caller makes it again and reports it
            self.domain = None

    def _same_folds(self, fold_pairs: Any) -> bool:
        return len(fold_pairs) == len(self.key[0]) and all(
            np.array_equal(np.asarray(tr), t) and np.array_equal(np.asarray(va), v)
            for (tr, va), t, v in zip(fold_pairs, self.key[0], self.key[3]))

    def _done(self) -> bool:
        if self.thread is None:
            return False
        self.thread.join()
        return True

    def folds(self, fold_pairs: Any, kind: str) -> list[Any] | None:
        """Each fold's fit (None where it failed), if made for these folds' training rows and ``kind``."""
        if not self._done() or kind != self.key[1] or not self._same_folds(fold_pairs):
            return None
        return list(self.fold_fits)

    def geometry(self, fold_pairs: Any) -> Any:
        """The domain's :class:`calib.trust.DomainGeometry` of these folds (None: other folds, or failed)."""
        if not self._done() or not self._same_folds(fold_pairs):
            return None
        return self.domain

    def final(self, kind: str) -> Any:
        """The fit on every calibration row (None: not made for ``kind``, or failed)."""
        if not self._done() or kind != self.key[2]:
            return None
        return self.final_fit


def _finish(ds: Any, sp: Any, cfg: Config, best: Any, sw: Any, settings: CalibrateSettings, ss: SweepSpec,
            name: str, say: Callable[[str], None], space: dict[str, Any],
            norm: Any = None, raw_ds: Any = None, cv: Any = None, ahead: "_RefitAhead | None" = None,
            tuned: bool | None = None) -> CalibrationRun:
    from .artifact.export import describe_dataset, export_artifact
    from .nn import fit_member, predict_member, rebuild_member, refit_config
    from .physics import PhysicsModel, fit_physics
    from .metrics import score
    from .report import artifact_certificate, artifact_report
    from .scaling import Scaler
    from .validate import cross_validate

    tol = cfg.validate.resolve_tolerance(ds.target.unit)
    if cv is None:
        if best == sw.best_config:
            say(f"best trial #{sw.best.number}: {objective_of(cfg, ds).label} {sw.best.score:.4g} {ds.target.unit}; "
                "re-validating with fold models")
        else:
            say("re-validating the kept config with fold models")
        cv = cross_validate(ds, sp.train_dev, best, folds=ss.folds, jobs=ss.jobs, tolerance=tol,
                            scaling=cfg.split.scaling, seed=ss.seed, noise_floor=cfg.validate.noise_floor,
                            physics=True, keep_weights=True, objective=objective_of(cfg, ds))
    if ds.aux_targets and cv.baseline is None:
        from .validate import single_task_baseline

        say("single-task baseline: each output by its own network of the same size, on the same folds")
        cv = replace(cv, baseline=single_task_baseline(ds, sp.train_dev, best, cv, folds=ss.folds, seed=ss.seed,
                                                       scaling=cfg.split.scaling, jobs=ss.jobs))
    rows = sp.train_dev
    x, y = ds.x(rows), ds.y(rows)
    curve = cv.curve_best_epoch
    final_cfg, epochs = refit_config(best, cv.best_epochs, len(rows), cv.fit_rows, curve)
    unscaled = refit_config(best, cv.best_epochs, len(rows), curve_epoch=curve)[1]
    by_curve = unscaled != refit_config(best, cv.best_epochs, len(rows))[1]  # refit_config took the curve
    what = (f"the folds' mean validation curve's lowest iteration {curve}" if by_curve
            else "the folds' median best iteration")
    say(f"refit {best.family} on train+dev ({len(rows)} rows)" + (f" for {epochs} epochs" if epochs else "")
        + (f" (L-BFGS: {what} x {len(rows)}/{int(np.median(cv.fit_rows))} rows)" if epochs != unscaled
           else f" (L-BFGS: {what})" if by_curve and epochs else "")
        + (" as physics (its folds kept the physics fit: best epoch 0)"
           if final_cfg.family != best.family else ""))
    parts = None if ahead is None else ahead.take(final_cfg)
    if parts is not None:  # trained ahead in an idle sweep worker: the same config, rows and seed
        say("refit: trained ahead while the sweep's last trials ran")
        final = rebuild_member(final_cfg, x.shape[1], y.shape[1], parts["weights"], Scaler.from_dict(parts["x_scaler"]),
                               Scaler.from_dict(parts["y_scaler"]),
                               None if parts["physics"] is None else PhysicsModel.from_dict(parts["physics"]))
    else:
        final = fit_member(final_cfg, x, y, **_refit_args(ds, cfg))
    has_test = len(sp.test) > 0
    x_te, y_te = ds.x(sp.test), ds.y(sp.test)
    p_te = predict_member(final, x_te) if has_test else np.zeros((0, y.shape[1]))
    test = score(y_te[:, 0], p_te[:, 0], tol) if has_test else None
    obj = cv.outputs
    test_outputs = ({n: {"unit": u, **score(y_te[:, j], p_te[:, j], obj.tolerances[j]).to_dict()}
                     for j, (n, u) in enumerate(zip(obj.names, obj.units))} if has_test else None)
    folds_m = [rebuild_member(best, x.shape[1], y.shape[1], w, Scaler.from_dict(xsd), Scaler.from_dict(ysd),
                              None if phys is None else PhysicsModel.from_dict(phys))
               for w, xsd, ysd, phys in cv.fold_weights]
    std = (np.stack([predict_member(m, x_te)[:, 0] for m in folds_m]).std(axis=0) if has_test
           else np.zeros(0))
    geometry = None if ahead is None or ahead.fits is None else ahead.fits.geometry(cv.fold_pairs)
    trust, trust_meta = fit_trust(ds, cfg, cv, x, y[:, 0], rows, norm, geometry)
    from .trust import coverage_table, evaluate

    test_cov = None
    tr_te = evaluate(trust, x_te, p_te[:, 0], y_aux=p_te[:, 1:] if p_te.shape[1] > 1 else None)
    if has_test:
        tvals = x_te[:, trust.conformal.bin_on] if trust.conformal.bin_on >= 0 else p_te[:, 0]
        test_cov = coverage_table(y_te[:, 0], tr_te["lo"], tr_te["hi"], p_te[:, 0], tvals)
        test_cov["out_of_domain"] = float(np.mean(tr_te["domain_code"] != 0))
        if "aux_lo" in tr_te:
            for j, (n, _c) in enumerate(trust.aux):
                test_outputs[n]["interval_coverage"] = float(np.mean(
                    (y_te[:, j + 1] >= tr_te["aux_lo"][:, j]) & (y_te[:, j + 1] <= tr_te["aux_hi"][:, j])))
    test_physics, bkind, bparams = None, None, None
    try:
        b = None if ahead is None or ahead.fits is None else ahead.fits.final(best.physics_kind)
        if b is None:
            b = fit_physics(x, y[:, 0], list(ds.feature_names), [c.unit for c in ds.features], ds.target.unit,
                            kind=best.physics_kind)
        bkind, bparams = b.kind, b.to_dict()
        test_physics = score(y_te[:, 0], b.predict(x_te), tol) if has_test else None
    except Exception as exc:  # the physics fit never sinks the main job
        bkind = f"failed: {type(exc).__name__}: {exc}"
    if has_test:
        say(f"test ({len(sp.test)} rows, touched once): MAE {test.mae:.4g} {ds.target.unit}"
            + ("" if test_physics is None else f", physics fit {test_physics.mae:.4g}")
            + "".join(f"; {n} MAE {test_outputs[n]['mae']:.4g} {u}" for n, u in zip(obj.names[1:], obj.units[1:])))
    else:
        say(f"no test part: the error estimate is the k-fold CV, MAE {cv.score:.4g} {ds.target.unit}")

    source = ds if raw_ds is None else raw_ds
    extras = {"cv_predictions.csv": _cv_predictions(source, ds, rows, cv, trust, x, predict_member(final, x))}
    sheet = _sheet(final, bparams, final_cfg.family)
    if sheet is not None:
        from .coefficients import sheet_csv

        extras["coefficients.csv"] = sheet_csv(sheet[0])
    if has_test:
        frame = source.frame.iloc[sp.test].copy()  # readings as measured
        frame[f"{ds.target.name}_pred"] = p_te[:, 0]
        frame[f"{ds.target.name}_std"] = std
        frame[f"{ds.target.name}_lo"] = tr_te["lo"]
        frame[f"{ds.target.name}_hi"] = tr_te["hi"]
        for j, c in enumerate(ds.aux_targets, start=1):
            frame[f"{c.name}_pred"] = p_te[:, j]
            if "aux_lo" in tr_te:
                frame[f"{c.name}_lo"] = tr_te["aux_lo"][:, j - 1]
                frame[f"{c.name}_hi"] = tr_te["aux_hi"][:, j - 1]
        buf = io.StringIO()
        frame.to_csv(buf, index=False)
        extras["test_predictions.csv"] = buf.getvalue()
    test_mae = None if test is None else test.mae
    diag = cv.diagnosis(test_mae, tuned)
    test_meta = ({**test.to_dict(), "rows": int(len(sp.test)), "std_mean": float(std.mean()),
                  "outputs": test_outputs,
                  "interval": test_cov,
                  "groups": None if ds.group is None else sorted(map(str, np.unique(ds.groups(sp.test))))}
                 if has_test else None)
    meta = {
        **describe_dataset(ds, rows=rows),
        "hyperparameters": {**best.to_dict(), "final_epochs": epochs, "final_family": final_cfg.family},
        "physics": None if final.physics is None else final.physics.to_dict(),
        "cv": cv.to_dict(test_mae, tuned),
        **trust_meta,
        "test": test_meta,
        "error_estimate": ("test" if has_test else
                           "k-fold cross-validation of the chosen config (test_fraction = 0: every row "
                           "calibrates the final model; the folds also chose the config, so the estimate is "
                           "slightly optimistic)"),
        "physics_fit": {"kind": bkind, "params": bparams,
                     "test": None if test_physics is None else test_physics.to_dict(),
                     "cv": cv.summary()["physics_val"]},
        "noise_floor": cv.noise_floor,
        "coefficients": None if sheet is None else {**sheet[0].to_dict(), "source": sheet[1]},
        "certificate": {"operator": settings.operator or None, "reference_standard": settings.reference_standard or None},
        "diagnosis": diag.to_dict(),
        # spot normalisation (calib.spots.normalise): the model's inputs are mapped phases
        **({} if norm is None else {"spot_normalisation": norm.to_dict()}),
        "split": {"test_fraction": cfg.split.test_fraction, "dev_fraction": cfg.split.dev_fraction,
                  "seed": cfg.split.seed, "scaling": cfg.split.scaling, "by_group": sp.by_group,
                  "train_rows": int(len(sp.train)), "dev_rows": int(len(sp.dev)), "test_rows": int(len(sp.test))},
        "sweep": {"strategy": sw.strategy, "trials": len(sw.trials), "storage": sw.storage,
                  "space": space, "leaderboard": _leaderboard(sw)},
    }
    if ahead is not None:
        ahead.drawing_ready()
    art = export_artifact(settings.models_dir, name, model=final.model, fold_models=[m.model for m in folds_m],
                          physics=[final.physics, *(m.physics for m in folds_m)], metadata=meta,
                          extra_files=extras, report=artifact_report, trust=trust,
                          certificate=artifact_certificate)
    say(f"exported {art.path}")
    return CalibrationRun(artifact=art, sweep=sw, cv=cv, test=test, test_physics=test_physics,
                          physics_kind=bkind, config=best, epochs=epochs,
                          test_std_mean=float(std.mean()) if has_test else None, tuned=tuned)


def _sheet(final: Any, physics_fit: Any, family: str) -> tuple[Any, str] | None:
    """The coefficient sheet (:mod:`calib.coefficients`) of the model's classical form, and what it is:
    the model itself (family physics), its classical part (hybrid), or the physics fit beside a network."""
    from .coefficients import coefficient_sheet
    from .errors import ConfigError as _CE

    if final.physics is not None:
        src = ("the model (family physics)" if family == "physics" else
               "the classical part of the hybrid model (the network adds its residual)")
        cand = final.physics.to_dict()
    elif physics_fit:
        src, cand = "the physics fit alone, beside the network (not the model)", physics_fit
    else:
        return None
    try:
        return coefficient_sheet(cand), src
    except _CE:
        return None


def _cv_predictions(source: Any, ds: Any, rows: np.ndarray, cv: Any, trust: Any, x: np.ndarray,
                    fit: np.ndarray) -> str:
    """``cv_predictions.csv``: every calibration row as measured, the exported model's value
    (``<target>_fit``), its out-of-fold prediction (by the fold model that left it out), the
    interval around that and the fold."""
    from .trust import evaluate

    frame = source.frame.iloc[rows].copy()
    oof = np.asarray(cv.oof, dtype=np.float64)
    fit = np.asarray(fit, dtype=np.float64).reshape(len(rows), -1)
    ev = evaluate(trust, x, oof)
    frame[f"{ds.target.name}_fit"] = fit[:, 0]
    frame[f"{ds.target.name}_pred"] = oof
    frame[f"{ds.target.name}_lo"] = ev["lo"]
    frame[f"{ds.target.name}_hi"] = ev["hi"]
    oof_all = None if cv.oof_all is None else np.asarray(cv.oof_all, dtype=np.float64)
    for j, c in enumerate(ds.aux_targets, start=1):
        frame[f"{c.name}_fit"] = fit[:, j]
        if oof_all is not None:
            frame[f"{c.name}_pred"] = oof_all[:, j]
    fold = np.zeros(len(rows), dtype=int)
    for k, (_tr, va) in enumerate(cv.fold_pairs):
        fold[va] = k
    frame["fold"] = fold
    buf = io.StringIO()
    frame.to_csv(buf, index=False)
    return buf.getvalue()


def fit_trust(ds: Any, cfg: Config, cv: Any, x: np.ndarray, y: np.ndarray, rows: np.ndarray,
              norm: Any = None, geometry: Any = None) -> tuple[Any, dict[str, Any]]:
    """Conformal interval, applicability domain and uncertainty budget from the re-validation.

    The residuals are the fold models' out-of-fold ones, taken where the final model is
    trained to (:attr:`calib.validate.CVResult.refit_oof`: for L-BFGS the iteration of the
    folds' mean validation curve, which the refit's length comes from).

    Returns the :class:`calib.trust.TrustSpec` of the batch model and the ``calibration.json``
    entries: ``conformal_adjusted`` (the interval a spot child gets: residuals after a
    simulated two-point check of each held-out spot; for a spot-normalised model the
    out-of-fold residuals already are) and ``uncertainty`` (the budget). ``geometry``: the
    domain's :func:`calib.trust.domain_geometry` of ``x`` and ``cv``'s folds, made ahead.
    """
    from .trust import TrustSpec, fit_conformal, fit_domain, two_point_residuals, uncertainty_budget

    names, units = list(ds.feature_names), [c.unit for c in ds.features]
    level = cfg.validate.interval_level
    # the fold models' residuals at the refit's length (L-BFGS), else at their early stop
    oof, oof_all, source = cv.refit_oof
    conf = fit_conformal(y, oof, x, units, names, level=level, source=source)
    dom = fit_domain(x, y, oof, cv.fold_pairs, units, geometry=geometry)
    meta: dict[str, Any] = {}
    if norm is not None:
        meta["conformal_adjusted"] = {**conf.to_dict(), "source": "out-of-fold on spot-normalised readings"}
    elif ds.group is not None:
        tj = conf.bin_on if conf.bin_on >= 0 and units[conf.bin_on] == "degC" else None
        ref_t = cfg.adjust.temperature_degC if cfg.adjust is not None else None
        adj, keep = two_point_residuals(y, oof, ds.groups(rows), None if tj is None else x[:, tj], ref_t,
                                        air=_air_value(ds.target.unit, 20.0 if ref_t is None else ref_t))
        if keep.sum() >= 20:
            ca = fit_conformal(y[keep], adj[keep], x[keep], units, names, level=level,
                               source=f"{source} after a simulated two-point check per held-out group")
            meta["conformal_adjusted"] = ca.to_dict()
    noise_sd = None if cv.noise_floor is None else float(cv.noise_floor) / float(np.sqrt(2 / np.pi))
    meta["uncertainty"] = uncertainty_budget(y - oof, reference=cfg.validate.reference_uncertainty,
                                             input_noise=noise_sd, drift=cfg.validate.drift_allowance)
    aux: list[tuple[str, Any]] = []
    if ds.aux_targets and oof_all is not None:  # each auxiliary target: its own out-of-fold residuals
        y_all = ds.y(rows)
        for j, c in enumerate(ds.aux_targets, start=1):
            aux.append((c.name, fit_conformal(y_all[:, j], oof_all[:, j], x, units, names, level=level,
                                              source=f"{source} residuals of {c.name}")))
    return TrustSpec(conf, dom, tuple(aux)), meta


def _air_value(unit: str, temperature_degC: float) -> float | None:
    """O2 of air at 1013.25 hPa (0.20946 of dry air) in ``unit``; None for a target that is not O2."""
    from .errors import UnitError
    from .units import convert_o2

    try:
        return float(convert_o2(0.20946 * 1013.25, "hPa", unit, temperature_degC=temperature_degC,
                                pressure_hPa=1013.25, salinity_psu=0.0))
    except (UnitError, ValueError):
        return None


def _leaderboard(sw: Any) -> list[dict[str, Any]]:
    from .search import leaderboard

    try:
        return json.loads(json.dumps(leaderboard(sw), default=str))
    except Exception:  # pragma: no cover - the leaderboard is informative only
        return []
