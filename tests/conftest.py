"""Shared fixtures: seeded Keras, quiet TensorFlow, small synthetic datasets."""

from __future__ import annotations

import os
import random

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
