"""The one inference path: a loaded calibration model, its spot children, and its flags.

artifact folder -> :func:`load_model` -> :class:`CalibrationModel` (ONNX Runtime only, no
TensorFlow) -> :class:`Prediction` (values, spread, flags).

Every door goes through :meth:`CalibrationModel.run`: ``calib predict`` (files,
:mod:`calib.predict`), the Python API (:meth:`~CalibrationModel.predict`,
:meth:`~CalibrationModel.predict_frame`) and any service built on them. So the same
reading gives the same number and the same flags whichever door it takes.

Spot routing
------------
A batch model can have *children*: artifacts ``models/<name>.<spot>/<version>/`` written by
``calib adjust`` (:mod:`calib.spots`), each the batch model adjusted to one sensor spot by a
two-point check, naming its parent's model id and the column that holds the spot id
(``spot_column``, e.g. ``spot_id`` or ``serial_number``). :func:`load_model` finds the
newest child of each spot. When readings carry that column (a DataFrame column, or
``spots=`` for an array), each row of a spot with a child is predicted by the child; the
``adjusted`` output says which rows were.

A batch model trained on spot-normalised phases (``calibration.json``
``spot_normalisation``, :mod:`calib.spots.normalise`) is only right for a checked spot:
its rows without a child are flagged ``out_of_range = True`` (and ``adjusted = False``) by
:meth:`~CalibrationModel.run`, :meth:`~CalibrationModel.predict_frame` and ``calib
predict``, and refused by :meth:`~CalibrationModel.predict`, which returns numbers
without flags. A number calib cannot vouch for is never returned silently.

Flags
-----
``out_of_range`` is True for a reading that calib cannot vouch for, and
``out_of_range_reason`` says why (``""`` when in domain): an input outside the range seen in
training (``temperature_degC above range``; a child's ranges for its rows), ``joint`` (far
from every calibration point although each input is in range), ``output`` (the prediction
outside the calibrated target range), or ``no spot child`` (an unadjusted reading of a
spot-normalised model). The checks are the artifact's ONNX outputs ``domain_code`` and
``domain_distance`` (:mod:`calib.trust`), so lab software running the bare graph gets the
same flags. Physically impossible readings (a phase outside 0..90 deg, a temperature outside
-5..100 degC, ...) and non-numbers are refused with an :class:`~calib.errors.IngestError`,
by every door.

Intervals
---------
``<target>_lo`` / ``<target>_hi`` bound the true value with the artifact's conformal level
(``calibration.json`` ``conformal.level``, default 95 %), fitted on grouped out-of-fold
residuals (a spot child: residuals after a two-point check); also ONNX outputs.
"""

from __future__ import annotations

import contextlib
import copy
import threading
from numbers import Integral
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Mapping

import numpy as np

from . import units as U
from .artifact.store import INPUT_NAME, ONNX_FILE, open_artifact, reading_artifact, verify_artifact
from .artifact.children import SPOT_ADJUSTMENT_KEY, children_stamp, find_children, scan_children
from .artifact.trust_graph import aux_interval_outputs, trust_outputs
from .constraints import Interval, Options, check_param
from .errors import ArtifactError, ConfigError, IngestError
from .limits import check_threads, default_workers, thread_pool
from .outputs import Prediction
from .trust import reasons
from .readings import (
    check_physical_array,
    feature_frequency,
    finite_columns,
    float32_columns,
    numeric_column,
    resolve_feature_columns,
    spot_ids,
)

if TYPE_CHECKING:  # pragma: no cover
    import pandas as pd

    from .ingest import RawTable

__all__ = [
    "CalibrationModel",
    "Prediction",
    "load_model",
    "find_children",
    "ADJUSTED_COLUMN",
    "OUT_OF_RANGE_COLUMN",
    "SPOT_ADJUSTMENT_KEY",
    "NORMALISATION_KEY",
    "CHUNK_ROWS",
    "FULL_CHUNK_ROWS",
    "REASON_COLUMN",
]

#: Rows per ONNX Runtime call: the fastest of 1,024..65,536 on calib's own graph with one thread
#: (``benchmarks/ort_chunks.py``), and bounded memory (the joint-domain distance holds rows x 256 floats).
#: Each call runs on one ONNX Runtime thread; :attr:`CalibrationModel.workers` calls run at once.
CHUNK_ROWS = 16384
#: Rows per call of the full graph (fold models, interval/domain head): as fast as 16,384 (``ort_chunks.py``
#: on a 2 x 32 artifact: 0.77 vs 0.66 M rows/s with one thread, 0.36 vs 0.37 M with two) and ~60 MB less
#: memory (ONNX Runtime's arena keeps the largest call's tensors): streamed ``calib predict`` stays small.
FULL_CHUNK_ROWS = 4096
#: Output column: the row was predicted by its spot's child artifact.
ADJUSTED_COLUMN = "adjusted"
#: Output column: calib cannot vouch for the row's number (see the module notes).
OUT_OF_RANGE_COLUMN = "out_of_range"
#: Output column: why calib cannot vouch for the row ("" when it can).
REASON_COLUMN = "out_of_range_reason"
#: Reason of an unadjusted row of a spot-normalised model.
NO_CHILD_REASON = "no spot child"
#: Output column: distance to the nearest calibration point / the out-of-fold threshold.
DISTANCE_COLUMN = "domain_distance"
#: ``calibration.json`` key of a batch model trained on spot-normalised phases.
NORMALISATION_KEY = "spot_normalisation"



def _bound(f: Mapping[str, Any], key: str, default: float) -> float:
    v = f.get(key)
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else default


# --------------------------------------------------------------------------- results
# --------------------------------------------------------------------------- the loaded model
class CalibrationModel:
    """A calibration artifact loaded for inference with ONNX Runtime (no TensorFlow).

    Create it with :func:`load_model`. Results equal the Keras model's to float32
    rounding (relative 1e-5).

    Attributes
    ----------
    path : Path
        The version folder.
    features : tuple of str
        Input names in model order (normalised names, canonical units).
    feature_units : tuple of str
        Unit of each input (``deg``, ``degC``, ...).
    input_names : tuple of str
        The graph's inputs: the features, one float32 [N] each (:mod:`calib.artifact.contract`);
        ``("readings",)`` for an artifact of schema 1.1 (one float32 [N, n_features] matrix).
    named_inputs : bool
        Whether the graph takes one named input per feature.
    feature_specs : tuple of dict
        The ``calibration.json`` entry of each input (name, unit, source, source_unit,
        frequency_hz, min, max).
    target, unit : str
        Primary target name and its unit (e.g. ``o2_hPa``, ``hPa``).
    targets : tuple of str
        The primary target and the auxiliary targets, in output-column order.
    version, name, model_id : str
    has_std : bool
        Whether the artifact has fold models, hence ``<target>_std``.
    lower, upper : ndarray of float64
        Range of each input seen in training (inclusive bounds).
    children : dict of str to Path
        Spot id -> version folder of the newest child of this model (empty for a child or
        when loaded with ``spots=False``); kept current while the model is loaded.
    spot_columns : tuple of str
        Columns that name a reading's spot: those recorded by the children, then the
        model's group column when it routes spots.
    requires_adjustment : bool
        Trained on spot-normalised phases: only a spot's child gives trustworthy numbers.
    is_child : bool
        This model is itself a spot child.
    """

    def __init__(self, path: Path, metadata: dict[str, Any], onnx_bytes: bytes, threads: int | None,
                 find_spots: bool = True):
        self.path = Path(path)
        self._meta = metadata
        self._onnx = onnx_bytes
        self._threads = threads
        feats = metadata["features"]
        self.feature_specs = tuple(dict(f) for f in feats)
        self.features = tuple(str(f["name"]) for f in feats)
        self.feature_units = tuple(str(f["unit"]) for f in feats)
        self.target = str(metadata["target"]["name"])
        self.unit = str(metadata["target"]["unit"])
        self.targets = (self.target, *(str(a["name"]) for a in metadata.get("aux_targets") or ()))
        self.version = str(metadata["version"])
        self.name = str(metadata.get("name", self.path.parent.name))
        self.model_id = str(metadata["model_id"])
        onnx_meta = metadata["onnx"]
        # one float32 [N] input per feature (calib.artifact.contract); schema 1.1: one matrix
        self.named_inputs = "inputs" in onnx_meta
        self.input_names = (tuple(str(n) for n in onnx_meta["inputs"]) if self.named_inputs
                            else (str(onnx_meta.get("input", INPUT_NAME)),))
        outputs = list(onnx_meta.get("outputs", [self.target]))
        self.output_name = outputs[0]
        self.std_name = f"{self.target}_std" if f"{self.target}_std" in outputs else None
        self.has_std = self.std_name is not None
        wanted = trust_outputs(self.target)
        self.trust_names = tuple(wanted) if all(n in outputs for n in wanted) else ()
        self.has_interval = bool(self.trust_names)
        # schema >= 1.3: one output [N] per auxiliary target (else the [N, n_targets] matrix)
        aux = self.targets[1:]
        self.aux_output_names = tuple(aux) if aux and all(a in outputs for a in aux) else ()
        wanted_aux = aux_interval_outputs(aux)
        self.aux_interval_names = (tuple(wanted_aux) if aux and self.trust_names
                                   and all(n in outputs for n in wanted_aux) else ())
        self.lower = np.array([_bound(f, "min", -np.inf) for f in feats], dtype=np.float64)
        self.upper = np.array([_bound(f, "max", np.inf) for f in feats], dtype=np.float64)
        self._lower32 = self.lower.astype(np.float32)
        self._upper32 = self.upper.astype(np.float32)
        self.is_child = bool(metadata.get(SPOT_ADJUSTMENT_KEY))
        self.requires_adjustment = bool(metadata.get(NORMALISATION_KEY)) and not self.is_child
        self._find_spots = bool(find_spots) and not self.is_child
        self._children: dict[str, tuple[str, Path]] = {}
        self._children_stamp: Any = None
        self._loaded_children: dict[str, CalibrationModel] = {}
        self._pinned = threading.local()  # pinned_children(): one snapshot per thread
        self._session_all = self._make_session(onnx_bytes)
        self._session_main = None if (self.has_std or self.trust_names) else self._session_all
        self._check_io()

    # ---- sessions
    def _make_session(self, data: bytes):
        import onnxruntime as ort

        so = ort.SessionOptions()
        so.log_severity_level = 3
        # one ONNX Runtime thread per call: calls on several chunks run at once instead
        # (:meth:`graph_outputs`), which scales better than splitting each small operator
        so.intra_op_num_threads = 1
        so.inter_op_num_threads = 1
        try:
            return ort.InferenceSession(data, sess_options=so, providers=["CPUExecutionProvider"])
        except Exception as exc:  # ORT raises its own exception types
            raise ArtifactError(f"{self.path / ONNX_FILE}: ONNX Runtime cannot load it ({exc})") from None

    def _check_io(self) -> None:
        s = self._session_all
        ins = s.get_inputs()
        where = f"{self.path / ONNX_FILE}"
        if [i.name for i in ins] != list(self.input_names):
            raise ArtifactError(f"{where}: expected the input(s) {list(self.input_names)}, got {[i.name for i in ins]}")
        if self.named_inputs:
            if self.input_names != self.features:
                raise ArtifactError(f"{where}: the graph's inputs {list(self.input_names)} are not the "
                                    f"features {list(self.features)} of calibration.json")
            bad = [f"{i.name} {i.type} {i.shape}" for i in ins if i.type != "tensor(float)" or len(i.shape or []) != 1]
            if bad:
                raise ArtifactError(f"{where}: expected float32 [N] inputs, got {', '.join(bad)}")
        else:
            shape = ins[0].shape or []
            width = shape[-1] if len(shape) == 2 else None
            if ins[0].type != "tensor(float)" or not isinstance(width, int):
                raise ArtifactError(
                    f"{where}: expected input {self.input_names[0]!r} float32 [N, "
                    f"{len(self.features)}], got {ins[0].type} {shape}"
                )
            if width != len(self.features):
                raise ArtifactError(
                    f"{where}: input has {width} columns but calibration.json lists "
                    f"{len(self.features)} features"
                )
        names = {o.name for o in s.get_outputs()}
        wanted = ([self.output_name, *self.aux_output_names] + ([self.std_name] if self.std_name else [])
                  + list(self.trust_names) + list(self.aux_interval_names))
        missing = [n for n in wanted if n not in names]
        if missing:
            raise ArtifactError(f"{self.path / ONNX_FILE}: missing output(s) {missing}; has {sorted(names)}")

    def _main_session(self):
        """A session computing only the final model's output (fold models pruned away).

        ONNX Runtime evaluates every node of a graph whatever outputs are requested, so
        prediction without the standard deviation runs a copy of the graph reduced to the
        final model: about (k + 1) times faster with k fold models.
        """
        if self._session_main is None:
            import onnx
            from onnx.utils import Extractor

            proto = onnx.load_model_from_string(self._onnx)
            sub = Extractor(proto).extract_model(list(self.input_names), [self.output_name, *self.aux_output_names])
            self._session_main = self._make_session(sub.SerializeToString())
        return self._session_main

    # ---- identity
    @property
    def metadata(self) -> dict[str, Any]:
        """A copy of ``calibration.json``."""
        return copy.deepcopy(self._meta)

    @property
    def onnx_bytes(self) -> bytes:
        """The bytes of ``model.onnx`` whose checksum was verified at load."""
        return self._onnx

    def _spot_children(self) -> dict[str, tuple[str, Path]]:
        """Spot -> (column, folder) of the newest children, re-scanned when the models folder changed.

        A child written after this model was loaded (``calib adjust`` while a service runs)
        is used from the next prediction on; the check costs a few ``stat`` calls.
        """
        pinned = getattr(self._pinned, "children", None)
        if pinned is not None:
            return pinned
        if not self._find_spots:
            return self._children
        stamp = children_stamp(self.path, self.name)
        if stamp != self._children_stamp:
            self._children = scan_children(self.path.parent.parent, self.name, self.model_id,
                                            (self._meta.get("data") or {}).get("group"))
            self._children_stamp = stamp
            self._loaded_children = {s: m for s, m in self._loaded_children.items()
                                     if s in self._children and self._children[s][1] == m.path}
        return self._children

    @contextlib.contextmanager
    def pinned_children(self) -> Iterator[None]:
        """Use one snapshot of the spot children for every call inside (in this thread): the chunks of
        a streamed file (:mod:`calib.predict`) all see the children the first one saw."""
        outer = getattr(self._pinned, "children", None)
        self._pinned.children = self._spot_children()
        try:
            yield
        finally:
            self._pinned.children = outer

    @property
    def children(self) -> dict[str, Path]:
        """Spot id -> version folder of the newest child of this model (empty for a child)."""
        return {s: p for s, (_, p) in self._spot_children().items()}

    @property
    def spot_columns(self) -> tuple[str, ...]:
        """Columns that name a reading's spot: the children's, then the model's group column."""
        children = self._spot_children()  # one look at the models folder
        cols: list[str] = []
        for _, (col, _) in sorted(children.items()):
            if col and col not in cols:
                cols.append(col)
        group = (self._meta.get("data") or {}).get("group")
        routes = not self.is_child and (bool(children) or self.requires_adjustment)
        if routes and isinstance(group, str) and group and group not in cols:
            cols.append(group)
        return tuple(cols)

    @property
    def routes_spots(self) -> bool:
        """Whether readings are routed to spot children (children exist, or adjustment is required)."""
        return not self.is_child and (bool(self._spot_children()) or self.requires_adjustment)

    def __repr__(self) -> str:
        return (
            f"CalibrationModel(name={self.name!r}, version={self.version!r}, target={self.target!r}, "
            f"unit={self.unit!r}, features={list(self.features)!r}, path={str(self.path)!r}"
            + (f", children={len(self._children)}" if self._children else "") + ")"
        )

    # ---- readings
    def as_array(self, X: Any) -> np.ndarray:
        """Readings as a float32 array (n, n_features) in model order and units.

        The array is column-major (Fortran order): each feature's values are contiguous, as
        the graph's named inputs take them (:mod:`calib.artifact.contract`).

        Parameters
        ----------
        X : pandas.DataFrame, mapping of column -> values, or array_like
            A DataFrame (or dict of columns) with the features by normalised name, or by
            source name / other unit suffix (converted with :mod:`calib.units`); or a 2-D
            array (one 1-D row is one reading) with the columns in :attr:`features` order,
            already in :attr:`feature_units`.

        Raises
        ------
        IngestError
            Missing feature column, wrong shape, a value that is not a real number (text,
            dates, booleans, complex numbers), not finite, or physically impossible.
        """
        n_feat = len(self.features)
        if hasattr(X, "columns") or isinstance(X, Mapping):
            columns = [str(c) for c in (X.columns if hasattr(X, "columns") else X.keys())]
            resolved = resolve_feature_columns(self.feature_specs, columns)
            first = X[resolved[0][0]]
            n = len(first)
            out = np.empty((n, n_feat), dtype=np.float32, order="F")
            for j, ((col, from_unit), spec) in enumerate(zip(resolved, self.feature_specs)):
                raw = self._real_column(X[col], col, spec)
                if raw.shape != (n,):
                    raise IngestError(f"column {col}: expected {n} values, got shape {raw.shape}")
                if from_unit is not None:
                    raw, _unit = U.to_canonical(raw, from_unit, frequency_hz=feature_frequency(spec))
                with np.errstate(over="ignore", invalid="ignore"):  # beyond float32 -> inf, refused below
                    out[:, j] = raw
            index = getattr(X, "index", None)
            names = [c for c, _ in resolved]
        else:
            arr = np.asarray(X)
            if arr.dtype.kind not in "iuf":
                if arr.dtype.kind in "OUS":
                    try:
                        arr = arr.astype(np.float64)
                    except (TypeError, ValueError):
                        raise IngestError(f"readings must be numbers, got an array of {arr.dtype}") from None
                else:
                    raise IngestError(f"readings must be real numbers, got an array of {arr.dtype}")
            if arr.ndim == 1 and arr.shape[0] == n_feat:
                arr = arr[None, :]
            if arr.ndim != 2 or arr.shape[1] != n_feat:
                raise IngestError(
                    f"readings must have shape (n, {n_feat}) with columns {', '.join(self.features)}, "
                    f"got shape {arr.shape}"
                )
            out = float32_columns(arr)  # beyond float32's range -> inf, refused below
            index, names = None, list(self.features)

        def label(i: int) -> str:
            return f"index {index[i]!r}" if index is not None else f"row {i} (0-based)"

        if not finite_columns(out):
            i, j = np.argwhere(~np.isfinite(out))[0]
            raise IngestError(
                f"{label(int(i))}, column {names[j]}: {out[i, j]} is not a finite number (or beyond float32); "
                "expected a measured value"
            )
        check_physical_array(out, self.feature_specs, names, label)
        return out

    @staticmethod
    def _real_column(values: Any, col: str, spec: Mapping[str, Any]) -> np.ndarray:
        arr = np.asarray(values)
        what = f"column {col}: expected real numbers for feature {spec['name']} ({spec['unit']})"
        if arr.dtype.kind in "iuf":
            return arr.astype(np.float64, copy=False)
        if arr.dtype.kind in "OUS":
            try:
                return arr.astype(np.float64)
            except (TypeError, ValueError):
                pass
        raise IngestError(f"{what}, got values of type {arr.dtype}")

    def readings(self, table: RawTable) -> np.ndarray:
        """Validated readings of a file, (n, n_features) float32, in the model's units and order.

        Each feature is found by normalised or source name (converted from its source unit),
        parsed strictly and checked for physical bounds exactly as ingestion does.

        Raises
        ------
        IngestError
            Missing column, a cell that is not a finite number or is physically impossible;
            the message names the file, the row and the column.
        """
        from .ingest import check_physical

        specs = self.feature_specs
        resolved = resolve_feature_columns(specs, table.columns, where=f"{table.name} row 1")
        n = len(table.frame)
        x = np.empty((n, len(specs)), dtype=np.float32, order="F")
        # parse in file column order so the first bad cell is reported left to right
        order = sorted(range(len(specs)), key=lambda j: table.columns.index(resolved[j][0]))
        for j in order:
            col, from_unit = resolved[j]
            spec = specs[j]
            raw = numeric_column(table, col)
            values = raw
            if from_unit is not None:
                values, _ = U.to_canonical(raw, from_unit, frequency_hz=feature_frequency(spec))
            check_physical(values, table, col, str(spec["unit"]), source_values=raw, source_unit=from_unit)
            x[:, j] = values
        if not np.isfinite(x).all():  # finite float64 beyond float32's range
            i, j = np.argwhere(~np.isfinite(x))[0]
            raise IngestError(
                f"{table.name} row {int(i) + table.first_row}, column {resolved[j][0]}: value beyond the float32 range; "
                "expected a measured value"
            )
        return x

    def spots_of(self, frame: Any) -> dict[str, np.ndarray]:
        """``{spot column: spot ids}`` for the spot columns of this model present in ``frame``."""
        cols = getattr(frame, "columns", None)
        if cols is None and isinstance(frame, Mapping):
            cols = list(frame.keys())
        return {c: spot_ids(frame[c]) for c in self.spot_columns if cols is not None and c in cols}

    # ---- the graph
    def predict_graph(self, x32: np.ndarray, want_std: bool = True) -> tuple[np.ndarray, np.ndarray | None]:
        """This artifact's own ONNX graph on validated readings, without spot routing.

        Parameters
        ----------
        x32 : ndarray (n, n_features) float32
            From :meth:`as_array` or :meth:`readings`.
        want_std : bool, default=True
            Also compute ``<target>_std`` (when the artifact has fold models).

        Returns
        -------
        values, std : ndarray of float32, ndarray of float32 or None
        """
        out = self.graph_outputs(x32, want_std=want_std, want_trust=False)
        return out["values"], out.get("std")

    def graph_outputs(self, x32: np.ndarray, *, want_std: bool = True, want_trust: bool = True) -> dict[str, np.ndarray]:
        """Every output of this artifact's graph on validated readings (no spot routing).

        Returns
        -------
        dict
            ``values`` (n,) or (n, n_targets); with ``want_std`` and fold models ``std``; with
            ``want_trust`` and an artifact that has them ``lo``, ``hi``, ``domain_code``
            (int32), ``domain_distance`` (see :mod:`calib.trust`) and, with auxiliary targets,
            ``aux_lo``, ``aux_hi`` (n, n_aux).
        """
        n = x32.shape[0]
        n_out = len(self.targets)
        values = np.empty((n, n_out) if n_out > 1 else (n,), dtype=np.float32)
        out: dict[str, np.ndarray] = {"values": values}
        # each requested graph output and the array (or column) its rows go to
        names = [self.output_name, *self.aux_output_names]
        dests = [values[:, j] for j in range(n_out)] if self.aux_output_names else [values]
        n_values = len(names)

        def add(name: str, dest: np.ndarray) -> None:
            names.append(name)
            dests.append(dest)

        if want_std and self.has_std:
            out["std"] = np.empty(n, dtype=np.float32)
            add(self.std_name, out["std"])
        if want_trust and self.trust_names:
            for name, key in zip(self.trust_names, ("lo", "hi", "domain_code", "domain_distance")):
                out[key] = np.empty(n, dtype=np.int32 if key == "domain_code" else np.float32)
                add(name, out[key])
            n_aux = len(self.aux_interval_names) // 2
            if n_aux:
                out["aux_lo"], out["aux_hi"] = (np.empty((n, n_aux), dtype=np.float32) for _ in range(2))
                for j in range(n_aux):
                    add(self.aux_interval_names[2 * j], out["aux_lo"][:, j])
                    add(self.aux_interval_names[2 * j + 1], out["aux_hi"][:, j])
        session = self._main_session() if len(names) == n_values else self._session_all
        step = CHUNK_ROWS if len(names) == n_values else min(CHUNK_ROWS, FULL_CHUNK_ROWS)
        # named inputs: one contiguous float32 vector per feature (no copy for as_array's
        # column-major arrays)
        cols = np.ascontiguousarray(x32.T) if self.named_inputs else None

        def run(start: int) -> None:
            stop = min(start + step, n)
            if cols is not None:
                feed = {name: cols[j, start:stop] for j, name in enumerate(self.input_names)}
            else:
                feed = {self.input_names[0]: np.ascontiguousarray(x32[start:stop])}
            for dest, r in zip(dests, session.run(names, feed)):
                dest[start:stop] = r.reshape(dest[start:stop].shape)

        starts = range(0, n, step)
        workers = self.workers
        if workers > 1 and len(starts) > 1:  # chunks at once, each on one thread (ORT releases the GIL)
            for _ in thread_pool(workers).map(run, starts):
                pass
        else:
            for start in starts:
                run(start)
        return out

    @property
    def workers(self) -> int:
        """Chunks computed at once (each by one ONNX Runtime thread): ``threads`` of
        :func:`load_model`, by default the CPUs this process may use (at most 8)."""
        return int(self._threads) if self._threads is not None else default_workers()

    def range_flags(self, x32: np.ndarray) -> np.ndarray:
        """Per row: any input outside this artifact's calibrated ranges (bounds inclusive)."""
        return ((x32 < self._lower32) | (x32 > self._upper32)).any(axis=1)

    def child(self, spot: str) -> CalibrationModel:
        """The loaded child of ``spot`` (verified on first use, then cached).

        Raises
        ------
        ArtifactError
            No child for ``spot``, or its inputs/outputs differ from this model's.
        """
        return self._load_child(spot, self._spot_children())

    def _load_child(self, spot: str, children: Mapping[str, tuple[str, Path]]) -> CalibrationModel:
        if spot not in self._loaded_children:
            if spot not in children:
                raise ArtifactError(f"{self.name} {self.version}: no spot child for spot {spot!r}")
            child = load_model(children[spot][1], threads=self._threads, spots=False)
            if child.features != self.features or child.targets != self.targets:
                raise ArtifactError(f"{child.path}: inputs/outputs differ from the batch model {self.name}")
            self._loaded_children[spot] = child
        return self._loaded_children[spot]

    # ---- the one inference path
    def run(self, x32: np.ndarray, spots: Mapping[str, Any] | Any | None = None) -> Prediction:
        """Predict validated readings, routing each row to its spot's child; the one path.

        Parameters
        ----------
        x32 : ndarray (n, n_features) float32
            From :meth:`as_array` or :meth:`readings`.
        spots : mapping of column -> ids, or array_like of ids, optional
            The spot of each row: ``{spot column: ids}`` (:meth:`spots_of`), or one id per
            row for every spot column. Ignored by a model without spot routing.

        Returns
        -------
        Prediction

        Raises
        ------
        IngestError
            ``spots`` does not have one id per row.
        """
        return self._route(x32, spots, want_std=True, want_flags=True)

    def _flags(self, x32: np.ndarray, g: Mapping[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """``out_of_range`` and its reasons from this artifact's own checks."""
        if "domain_code" in g:
            code = g["domain_code"]
        else:  # an artifact without the trust head: the per-input ranges only
            code = self.range_flags(x32).astype(np.int32)
        return code != 0, reasons(code, x32, self._lower32, self._upper32, self.features)

    def _route(self, x32: np.ndarray, spots: Any, *, want_std: bool, want_flags: bool) -> Prediction:
        # want_flags=False (predict without flags) skips the checks and intervals; routing is the same
        g = self.graph_outputs(x32, want_std=want_std, want_trust=want_flags)
        values, std = g["values"], g.get("std")
        lo, hi, dist = g.get("lo"), g.get("hi"), g.get("domain_distance")
        alo, ahi = g.get("aux_lo"), g.get("aux_hi")
        if want_flags:
            oor, why = self._flags(x32, g)
        else:
            oor, why = np.zeros(0, dtype=bool), None
        children = self._spot_children()  # one look at the models folder per call
        if self.is_child or not (children or self.requires_adjustment):
            return Prediction(values, std, oor, lo=lo, hi=hi, reason=why, distance=dist, aux_lo=alo, aux_hi=ahi)
        n = len(x32)
        by_col = self._spot_arrays(spots, n)
        adjusted = np.zeros(n, dtype=bool)
        used: dict[str, str] = {}
        for spot, (col, _path) in sorted(children.items()):
            ids = by_col.get(col, by_col.get("*"))
            if ids is None:
                continue
            rows = np.flatnonzero((ids == spot) & ~adjusted)
            if not rows.size:
                continue
            child = self._load_child(spot, children)  # the same snapshot of the children
            xr = np.asfortranarray(x32[rows])
            cg = child.graph_outputs(xr, want_std=want_std, want_trust=want_flags)
            values[rows] = cg["values"]
            if std is not None and "std" in cg:
                std[rows] = cg["std"]
            if want_flags:
                oor[rows], why[rows] = child._flags(xr, cg)
                for arr, key in ((lo, "lo"), (hi, "hi"), (dist, "domain_distance"), (alo, "aux_lo"), (ahi, "aux_hi")):
                    if arr is not None and key in cg:
                        arr[rows] = cg[key]
            adjusted[rows] = True
            used[spot] = child.version
        if self.requires_adjustment and want_flags:
            # a spot-normalised batch model on unchecked spots: not vouched for
            for i in np.flatnonzero(~adjusted):
                why[i] = NO_CHILD_REASON if not why[i] else f"{NO_CHILD_REASON} + {why[i]}"
            oor |= ~adjusted
        return Prediction(values, std, oor, adjusted, used, lo=lo, hi=hi, reason=why, distance=dist,
                          aux_lo=alo, aux_hi=ahi)

    def _spot_arrays(self, spots: Any, n: int) -> dict[str, np.ndarray]:
        if spots is None:
            return {}
        if isinstance(spots, Mapping):
            out = {str(k): spot_ids(v) for k, v in spots.items()}
        else:
            out = {"*": spot_ids(np.asarray(spots, dtype=object).reshape(-1))}
        for k, v in out.items():
            if len(v) != n:
                what = "spots" if k == "*" else f"spot column {k}"
                raise IngestError(f"{what}: expected one spot id per reading ({n}), got {len(v)}")
        return out

    # ---- public API
    def predict(self, X: Any, *, spots: Any = None, return_std: bool = False,
                return_interval: bool = False) -> np.ndarray | tuple[np.ndarray, ...]:
        """Predict the target(s) for readings.

        Parameters
        ----------
        X : pandas.DataFrame, mapping or array_like
            See :meth:`as_array`. A DataFrame or mapping that holds a spot column
            (:attr:`spot_columns`) is routed to the spots' children.
        spots : array_like of str, optional
            The spot id of each row (for an array ``X``, or to override the frame's column).
        return_std : bool, default=False
            Also return the standard deviation across the fold models (ddof=0), in
            :attr:`unit`; requires an artifact exported with fold models.
        return_interval : bool, default=False
            Also return the conformal interval ``(lo, hi)`` of the primary target
            (:attr:`has_interval`; level in ``metadata["conformal"]["level"]``).

        Returns
        -------
        ndarray of float64
            Shape (n,) for one target, (n, n_targets) with auxiliary targets, in the
            targets' units; computed in float32. With ``return_std``: ``(pred, std)``; with
            ``return_interval``: ``(pred[, std], lo, hi)``.

        Raises
        ------
        IngestError
            Missing feature, wrong shape, a non-finite or impossible reading.
        ArtifactError
            ``return_std`` with an artifact that has no fold models.
        ConfigError
            A spot-normalised model (:attr:`requires_adjustment`) and a reading without its
            spot's child: this method has no flag to return, so it refuses; use
            :meth:`predict_frame` (flags such rows) or run ``calib adjust`` for the spot.
        """
        if return_std and not self.has_std:
            raise ArtifactError(f"{self.path}: exported without fold models; no standard deviation available")
        if return_interval and not self.has_interval:
            raise ArtifactError(f"{self.path}: exported without a conformal interval (calib < 0.2); re-run calib calibrate")
        x32 = self.as_array(X)
        res = self._route(x32, self.spots_of(X) if spots is None else spots, want_std=return_std,
                          want_flags=return_interval)
        if self.requires_adjustment and res.adjusted is not None and not res.adjusted.all():
            raise ConfigError(self._unadjusted_message(res.adjusted, X if spots is None else None, spots))
        out = [res.values.astype(np.float64)]
        if return_std:
            out.append(res.std.astype(np.float64))
        if return_interval:
            out += [res.lo.astype(np.float64), res.hi.astype(np.float64)]
        return out[0] if len(out) == 1 else tuple(out)

    def _unadjusted_message(self, adjusted: np.ndarray, frame: Any, spots: Any) -> str:
        missing = (~adjusted).sum()
        if frame is not None and not self.spots_of(frame) and spots is None:
            where = f"the readings have no spot column ({' or '.join(self.spot_columns) or 'spot id'})"
        else:
            where = "their spots have no child artifact"
        return (
            f"{self.name} {self.version} was trained on spot-normalised phases and is only valid through a "
            f"spot's two-point adjustment, but {missing} of {len(adjusted)} reading(s) cannot be adjusted: "
            f"{where}; run `calib adjust` for those spots, pass spots=..., or use predict_frame (which "
            "flags such rows out_of_range)"
        )

    def out_of_range(self, X: Any, *, spots: Any = None) -> np.ndarray:
        """Per reading: the ``out_of_range`` flag of :meth:`run` (see the module notes)."""
        x32 = self.as_array(X)
        return self.run(x32, self.spots_of(X) if spots is None else spots).out_of_range

    def predict_frame(self, df: Any, *, spots: Any = None) -> pd.DataFrame:
        """``df`` with the predictions and flags appended.

        Parameters
        ----------
        df : pandas.DataFrame
            Readings (see :meth:`as_array`); other columns are kept unchanged. A spot column
            (:attr:`spot_columns`) routes its rows to the spots' children.
        spots : array_like of str, optional
            The spot id of each row, instead of the frame's spot column.

        Returns
        -------
        pandas.DataFrame
            A copy of ``df`` (same index) plus :meth:`output_columns`: ``<target>_pred``
            (and ``<aux>_pred``), ``<target>_std`` with fold models, ``<target>_lo`` /
            ``<target>_hi`` (conformal interval), ``out_of_range``, ``out_of_range_reason``,
            ``domain_distance``, and ``adjusted`` for a model with spot routing.

        Raises
        ------
        IngestError
            Missing feature, a non-finite or impossible reading, or ``df`` already has an
            output column.
        """
        import pandas as pd

        if not isinstance(df, pd.DataFrame):
            df = pd.DataFrame(np.asarray(df), columns=list(self.features))
        new = self.output_columns()
        clash = [c for c in new if c in df.columns]
        if clash:
            raise IngestError(
                f"input already has column(s) {', '.join(clash)}; rename or drop them before predicting"
            )
        x32 = self.as_array(df)
        res = self.run(x32, self.spots_of(df) if spots is None else spots)
        out = df.copy()
        for k, v in self.result_columns(res).items():
            out[k] = v
        return out

    def output_columns(self) -> list[str]:
        """Names of the columns :meth:`predict_frame` and ``calib predict`` add, in order."""
        cols = [f"{t}_pred" for t in self.targets]
        if self.has_std:
            cols.append(f"{self.target}_std")
        if self.has_interval:
            cols += [f"{self.target}_lo", f"{self.target}_hi"]
        cols += list(self.aux_interval_names)
        cols += [OUT_OF_RANGE_COLUMN, REASON_COLUMN]
        if self.has_interval:
            cols.append(DISTANCE_COLUMN)
        if self.routes_spots:
            cols.append(ADJUSTED_COLUMN)
        return cols

    def result_columns(self, res: Prediction) -> dict[str, np.ndarray]:
        """The output columns of a :class:`Prediction` (name -> float64/bool values), in order."""
        cols: dict[str, np.ndarray] = {}
        if res.values.ndim == 1:
            cols[f"{self.target}_pred"] = res.values.astype(np.float64)
        else:
            for j, t in enumerate(self.targets):
                cols[f"{t}_pred"] = res.values[:, j].astype(np.float64)
        if res.std is not None:
            cols[f"{self.target}_std"] = res.std.astype(np.float64)
        if res.lo is not None:
            cols[f"{self.target}_lo"] = res.lo.astype(np.float64)
            cols[f"{self.target}_hi"] = res.hi.astype(np.float64)
        if res.aux_lo is not None:
            for j, t in enumerate(self.targets[1:]):
                cols[f"{t}_lo"] = res.aux_lo[:, j].astype(np.float64)
                cols[f"{t}_hi"] = res.aux_hi[:, j].astype(np.float64)
        cols[OUT_OF_RANGE_COLUMN] = res.out_of_range
        cols[REASON_COLUMN] = res.reason if res.reason is not None else np.full(len(res.out_of_range), "", object)
        if res.distance is not None:
            cols[DISTANCE_COLUMN] = res.distance.astype(np.float64)
        if res.adjusted is not None:
            cols[ADJUSTED_COLUMN] = res.adjusted
        return cols

    def verify(self) -> dict[str, Any]:
        """Check the artifact on disk again (see :func:`calib.artifact.verify_artifact`).

        Raises
        ------
        IntegrityError, IncompatibleArtifactError, ArtifactError
        """
        return verify_artifact(self.path)


# --------------------------------------------------------------------------- loading
def load_model(path: str | Path, *, threads: int | None = None, spots: bool = True) -> CalibrationModel:
    """Load a calibration artifact for inference, without TensorFlow.

    Every file is checked against ``SHA256SUMS`` before anything is parsed; see
    :func:`calib.artifact.verify_artifact` for the checks. The ONNX graph is run with ONNX
    Runtime's CPU provider from the very bytes whose checksum was checked. The spot children
    of a batch model (``calib adjust``) are found in its models folder and applied by spot
    id (see :mod:`calib.runtime`); each child is verified when first used.

    Parameters
    ----------
    path : str or Path
        ``models/<name>/<version>``, or ``models/<name>`` for its latest version.
    threads : int, optional
        Threads that compute predictions (>= 1): chunks of rows run at once, each by one ONNX
        Runtime thread (:attr:`CalibrationModel.workers`); by default one per CPU this process
        may use, at most 8. The numbers do not depend on it.
    spots : bool, default=True
        Find and apply spot children. False loads the artifact alone (its own graph only);
        a spot-normalised batch model then flags or refuses every reading.

    Returns
    -------
    CalibrationModel

    Raises
    ------
    IntegrityError
        A file is missing, unlisted or modified.
    IncompatibleArtifactError
        Written with a newer schema major.
    ArtifactError
        No artifact at ``path``; a pickle or an unsafe Keras file inside; ``calibration.json``
        malformed or disagreeing with the graph's stamp (:mod:`calib.artifact.schema`);
        ``model.onnx`` over :data:`~calib.artifact.store.MAX_ONNX_BYTES`; a file that cannot be
        read (permissions, I/O) or not enough memory; ONNX Runtime cannot load the graph.
    ConfigError
        ``threads`` < 1.

    Examples
    --------
    >>> m = load_model("models/foil-A")                                # doctest: +SKIP
    >>> m.predict_frame(df)                     # routes rows by df["spot_id"]  # doctest: +SKIP
    """
    check_param("threads", threads, [Interval(Integral, 1, None), Options([None], label="None for automatic")])
    check_threads(threads)
    vdir, meta, onnx_bytes, _files = open_artifact(path)
    with reading_artifact(vdir):
        return CalibrationModel(vdir, meta, onnx_bytes, threads, find_spots=spots)
