"""Shared fixtures: seeded Keras, quiet TensorFlow, small synthetic datasets."""

from __future__ import annotations

import hashlib
import os
import random
import socket
import subprocess
import sys
import time

from pathlib import Path

import numpy as np
import pytest


def raw_data_dir() -> Path:
    """The real calibration data (GPL, read in place, never copied into the project).

    ``$CALIB_RAW_DATA`` if set, else ``../shared/data/raw`` beside the checkout, else the
    workplace's ``/work/shared/data/raw``; the first that exists (or the last, absent).
    """
    here = Path(__file__).resolve().parents[1]
    candidates = [Path(os.environ["CALIB_RAW_DATA"])] if os.environ.get("CALIB_RAW_DATA") else []
    candidates += [here.parent / "shared" / "data" / "raw", Path("/work/shared/data/raw")]
    return next((c for c in candidates if c.is_dir()), candidates[-1])

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@pytest.fixture(autouse=True)
def _seed_everything(request):
    """Seed Python and NumPy for every test; Keras too where a test already imported it."""
    random.seed(0)
    np.random.seed(0)
    import sys

    if "keras" in sys.modules:
        sys.modules["keras"].utils.set_random_seed(0)
    yield


@pytest.fixture(scope="session")
def small_batch(tmp_path_factory):
    """A small simulated sensor batch (6 spots) written as CSV, with its config. Returns (csv, toml)."""
    from calib.simulate import SimulationConfig, write_bundle

    folder = tmp_path_factory.mktemp("batch")
    sc = SimulationConfig(n_spots=6, replicates=2, seed=1,
                          temperature_levels_degC=(5.0, 15.0, 25.0, 35.0),
                          o2_levels_hPa=(0.0, 20.0, 50.0, 100.0, 150.0, 212.0, 300.0))
    return write_bundle(folder, sc)


#: A tiny [model]/[sweep] budget for end-to-end tests of the main job.
TINY_TRAINING = """
[model]
hidden_layers = [8]
epochs = 30
patience = "none"

[sweep]
strategy = "random"
trials = 2
folds = 2

[sweep.space]
learning_rate = { low = 1e-3, high = 1e-2 }
"""


def tiny_calibration(tmp, csv, toml):
    """Run ``calib -q calibrate --json`` with :data:`TINY_TRAINING` on ``csv``; returns (config path, run dict)."""
    import json
    from pathlib import Path

    from click.testing import CliRunner

    from calib.cli import cli

    cfg = Path(tmp) / "calib.toml"
    cfg.write_text(Path(toml).read_text().split("[model]")[0] + TINY_TRAINING)
    res = CliRunner().invoke(cli, ["-q", "calibrate", str(csv), "--config", str(cfg), "--models-dir",
                                   str(Path(tmp) / "models"), "--name", "tiny", "--json"],
                             env={"CALIB_RUNS_DIR": str(Path(tmp) / "runs")})
    assert res.exit_code == 0, res.output
    return cfg, json.loads(res.output)


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, small_batch):
    """The session's one tiny calibrated artifact: :func:`tiny_calibration` on :func:`small_batch`, once.

    Returns a dict: ``dir`` (its folder), ``csv`` (the readings), ``config`` (the calib.toml used),
    ``run`` (the ``calibrate --json`` output), ``models`` (the models folder, holding only ``tiny``)
    and ``path`` (the artifact's version folder). Shared by every module: never change it in place;
    copy it (:func:`copy_artifact`) before tampering, adjusting or exporting beside it.
    """
    csv, toml = small_batch
    tmp = tmp_path_factory.mktemp("tiny-run")
    cfg, run = tiny_calibration(tmp, csv, toml)
    return {"dir": tmp, "csv": Path(csv), "config": cfg, "run": run, "models": tmp / "models",
            "path": Path(run["artifact"])}


# --------------------------------------------------------------------------- one tiny artifact
#: Inputs of the hand-set ``linear`` batch model (:func:`linear_keras`).
LINEAR_FEATURES = ("phase_5000hz_deg", "temperature_degC")


def linear_keras(bias_scaled: float):
    """A network without hidden layers set by hand: ``O2 = -10 * (phase - (60 - 0.1 T)) + bias`` (hPa).

    With ``bias_scaled = -0.2`` exactly ``O2 = -10 phase - T + 600``; other biases shift it by
    ``100 * (bias_scaled + 0.2)`` hPa (fold models 1 hPa apart give a known ``o2_hPa_std``).
    """
    from calib.nn import ModelConfig, build_model
    from calib.scaling import Scaler

    # z_x = ((phase - 45)/10, (T - 20)/10), z_y = (O2 - 150)/100: z_y = -z1 - 0.1 z2 - 0.2
    m = build_model(ModelConfig(hidden_layers=(), activation="identity"), 2, 1,
                    Scaler("standard", (45.0, 20.0), (10.0, 10.0)), Scaler("standard", (150.0,), (100.0,)))
    m.get_layer("output_scaled").set_weights([np.array([[-1.0], [-0.1]]), np.array([bias_scaled])])
    return m


def linear_metadata(rows: int, phase_range=(25.0, 65.0), t_range=(0.0, 40.0), group: str | None = "spot_id") -> dict:
    """Metadata of the ``linear`` batch model (calibrated ranges, grouped by ``group``)."""
    return {
        "features": [
            {"name": LINEAR_FEATURES[0], "unit": "deg", "frequency_hz": 5000.0, "min": phase_range[0],
             "max": phase_range[1]},
            {"name": LINEAR_FEATURES[1], "unit": "degC", "min": t_range[0], "max": t_range[1]},
        ],
        "target": {"name": "o2_hPa", "unit": "hPa", "min": 0.0, "max": 300.0},
        "hyperparameters": {"seed": 0},
        "data": {"file": "batch.csv", "sha256": "0" * 64, "rows": rows, "group": group},
    }


def lin_phase(po2, t, offset=0.0, k=1.0):
    """Phase (deg) of a spot of the ``linear`` batch with phase offset and Ksv scale ``k``."""
    return 60.0 - 0.1 * np.asarray(t) - k * np.asarray(po2) / 10.0 + offset


def lin_ref_rows(spot: str, offset: float, k: float, t: float = 20.0, air: float = 212.0,
                 spot_column: str = "spot_id") -> list[dict]:
    """Two-point reference rows (zero and air, twice each) of one spot of the ``linear`` batch."""
    return [{spot_column: spot, LINEAR_FEATURES[0]: round(float(lin_phase(p, t, offset, k)), 6),
             LINEAR_FEATURES[1]: t, "o2_hPa": p} for p in (0.0, 0.0, air, air)]


@pytest.fixture(scope="session")
def linear_artifact(tmp_path_factory):
    """The tiny batch artifact every runtime/spot test shares: the hand-set linear model + 2 fold models."""
    from calib.artifact.export import export_artifact

    models = tmp_path_factory.mktemp("linear-models")
    return export_artifact(models, "lin", model=linear_keras(-0.2),
                           fold_models=[linear_keras(-0.19), linear_keras(-0.21)], metadata=linear_metadata(100))


def onnx_feed(session, x) -> dict:
    """A bare ONNX Runtime feed: column j of ``x`` to the graph's j-th named input (float32 [N])."""
    x = np.asarray(x, dtype=np.float32)
    return {i.name: np.ascontiguousarray(x[:, j]) for j, i in enumerate(session.get_inputs())}


def rewrite_sums(vdir: Path, fake: dict[str, str] | None = None) -> None:
    """A valid SHA256SUMS for the folder as it is now (``fake``: {file: digest} listed instead)."""
    lines = []
    for p in sorted(vdir.rglob("*")):
        if p.is_file() and p.name != "SHA256SUMS":
            rel = p.relative_to(vdir).as_posix()
            digest = (fake or {}).get(rel) or hashlib.sha256(p.read_bytes()).hexdigest()
            lines.append(f"{digest}  {rel}\n")
    (vdir / "SHA256SUMS").write_text("".join(lines))


def copy_artifact(art, tmp_path: Path, name: str | None = None) -> Path:
    """A copy of an artifact version in ``tmp_path/models`` (its children go beside it)."""
    import shutil

    dst = tmp_path / "models" / (name or art.name) / art.version
    shutil.copytree(art.path, dst)
    return dst


def tiny_with_s01_child(tiny_run: dict, tmp_path: Path) -> tuple[Path, Path]:
    """A copy of ``tiny_run``'s artifact with a spot child for S01 (``calib adjust`` on S01's two-point
    check: its 0 and 212 hPa rows at 25 degC). Returns ``(parent_dir, child_dir)``."""
    import json
    import shutil

    import pandas as pd
    from click.testing import CliRunner

    from calib.cli import cli
    from calib.runtime import load_model

    parent_dir = tmp_path / "models" / "tiny" / tiny_run["path"].name
    shutil.copytree(tiny_run["path"], parent_dir)
    feats = list(load_model(parent_dir).features)
    data = pd.read_csv(tiny_run["csv"])
    s1 = data[data.spot_id == "S01"]
    ref = s1[(s1.temperature_degC.round() == 25) & s1.o2_hPa.isin([0.0, 212.0])]
    ref[["spot_id", *feats, "o2_hPa"]].to_csv(tmp_path / "ref.csv", index=False)
    res = CliRunner().invoke(cli, ["adjust", str(parent_dir), "--reference", str(tmp_path / "ref.csv"),
                                   "--spot", "S01", "--json"])
    assert res.exit_code == 0, res.output
    return parent_dir, Path(json.loads(res.output)["spots"][0]["artifact"])


# --------------------------------------------------------------------------- calib serve
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """``calib serve`` in a subprocess on 127.0.0.1 (stopped by :meth:`stop`)."""

    def __init__(self, models: Path, tmp: Path, *args: str):
        import httpx

        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.tmp = tmp
        tmp.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "TMPDIR": str(tmp)}
        self.proc = subprocess.Popen([sys.executable, "-m", "calib.cli", "serve", str(models), "--port", str(self.port),
                                      *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.2)
            if self.proc.poll() is not None:
                raise RuntimeError(self.proc.stderr.read())
        self.stop()
        raise RuntimeError("calib serve did not start within 60 s")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:  # pragma: no cover
            self.proc.kill()
