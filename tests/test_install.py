"""The runtime install: ``pip install calib`` without the ``train`` extra predicts, with no TensorFlow."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import LINEAR_FEATURES

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_fresh_runtime_venv_predicts_without_tensorflow(linear_artifact, small_batch, tmp_path):
    """A new venv, ``pip install`` of calib (no extras): predict/serve work, training says what to install."""
    src = tmp_path / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    shutil.copytree(ROOT / "calib", src / "calib", ignore=shutil.ignore_patterns("__pycache__"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py, calib = venv / "bin" / "python", venv / "bin" / "calib"
    pip = subprocess.run([str(py), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", str(src)],
                         capture_output=True, text=True, timeout=600)
    assert pip.returncode == 0, pip.stderr[-2000:]
    probe = subprocess.run([str(py), "-c", "import importlib.util as u; print([m for m in ('tensorflow', 'keras', "
                            "'tf2onnx', 'optuna', 'sklearn', 'scipy') if u.find_spec(m)])"],
                           capture_output=True, text=True, check=True)
    assert probe.stdout.strip() == "[]"  # none of the training stack is installed
    readings = tmp_path / "readings.csv"
    x = np.array([[58.0, 20.0], [50.0, 10.0], [30.0, 35.0]])
    pd.DataFrame(x, columns=list(LINEAR_FEATURES)).to_csv(readings, index=False)
    out = tmp_path / "out.csv"
    res = subprocess.run([str(calib), "predict", str(linear_artifact.path), str(readings), "-o", str(out)],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    np.testing.assert_allclose(pd.read_csv(out)["o2_hPa_pred"], [0.0, 90.0, 265.0], atol=1e-3)
    for args in (["inspect", str(linear_artifact.path), "--verify"], ["models", str(linear_artifact.path.parents[1])],
                 ["serve", "--help"]):
        res = subprocess.run([str(calib), *args], capture_output=True, text=True, timeout=120)
        assert res.returncode == 0, (args, res.stderr)
    api = subprocess.run([str(py), "-c", "import sys, calib, calib.serve; m = calib.load_model(sys.argv[1]); "
                          "print(m.predict([[58.0, 20.0]])[0]); assert 'tensorflow' not in sys.modules",
                          str(linear_artifact.path)], capture_output=True, text=True, timeout=120)
    assert api.returncode == 0, api.stderr
    assert abs(float(api.stdout)) < 1e-3
    csv, toml = small_batch
    train = subprocess.run([str(calib), "validate", str(csv), "--config", str(toml)], capture_output=True, text=True,
                           timeout=120)
    assert train.returncode == 1
    assert re.fullmatch(r"Error: this needs the training install, which is missing here \(no module '(tensorflow|keras|"
                        r"sklearn|scipy|optuna|joblib)'\): pip install 'calib\[train\]'", train.stderr.strip()), train.stderr
