"""Tests of calib.provenance: a predictions file traced back to the artifact that made it."""

from __future__ import annotations

import hashlib
import json

import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import LINEAR_FEATURES, copy_artifact, lin_phase, lin_ref_rows

from calib.cli import cli
from calib.errors import IngestError
from calib.provenance import PROVENANCE_KEY, read_provenance, sidecar_path


def _sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _invoke(*args: str):
    return CliRunner().invoke(cli, list(args))


@pytest.fixture
def checked(linear_artifact, tmp_path):
    """A copy of the linear batch model with a child for spot A, and readings of spots A and C."""
    parent = copy_artifact(linear_artifact, tmp_path)
    ref = tmp_path / "ref.csv"
    pd.DataFrame(lin_ref_rows("A", 0.3, 1.05)).to_csv(ref, index=False)
    res = _invoke("adjust", str(parent), "--reference", str(ref), "--json")
    assert res.exit_code == 0, res.output
    child = json.loads(res.output)["spots"][0]
    readings = tmp_path / "readings.csv"
    pd.DataFrame({"spot_id": ["A", "C"], LINEAR_FEATURES[0]: [float(lin_phase(100.0, 20.0, 0.3, 1.05)), 50.0],
                  LINEAR_FEATURES[1]: [20.0, 20.0]}).to_csv(readings, index=False)
    return parent, child, readings


@pytest.mark.parametrize("suffix", [pytest.param(".csv", id="csv-sidecar"), pytest.param(".parquet", id="parquet-metadata")])
def test_a_predictions_file_traces_back_to_its_artifact(checked, tmp_path, suffix):
    parent, child, readings = checked
    out = tmp_path / f"predictions{suffix}"
    res = _invoke("predict", str(parent), str(readings), "-o", str(out))
    assert res.exit_code == 0, res.output
    doc = read_provenance(out)
    meta = json.loads((parent / "calibration.json").read_text())
    art = doc["artifact"]
    assert (art["name"], art["version"], art["model_id"]) == ("lin", parent.name, meta["model_id"])
    assert art["onnx_sha256"] == _sha(parent / "model.onnx")
    assert art["sha256sums_sha256"] == _sha(parent / "SHA256SUMS")
    # the rows of spot A were predicted by its child: traced to that artifact too
    a = doc["spot_models"]["A"]
    assert (a["name"], a["version"], a["model_id"]) == (child["name"], child["version"], child["model_id"])
    assert a["onnx_sha256"] == _sha(tmp_path / "models" / child["name"] / child["version"] / "model.onnx")
    assert doc["input"] == {"file": "readings.csv", "sha256": _sha(readings), "rows": 2}
    assert "o2_hPa_pred" in doc["columns_added"]
    if suffix == ".csv":
        assert res.output.rstrip().endswith(f"(provenance: {sidecar_path(out)})")
        assert json.loads(sidecar_path(out).read_text())["output"]["sha256"] == _sha(out)
    else:
        import pyarrow.parquet as pq

        assert PROVENANCE_KEY.encode() in pq.read_schema(out).metadata
        assert not sidecar_path(out).exists()


def test_an_existing_sidecar_is_replaced_only_with_force_and_a_stale_one_is_recognised(checked, tmp_path):
    parent, _, readings = checked
    out = tmp_path / "predictions.csv"
    sidecar_path(out).write_text("{}")
    res = _invoke("predict", str(parent), str(readings), "-o", str(out))
    assert res.exit_code == 1
    assert res.output.strip() == f"Error: provenance sidecar {sidecar_path(out)} already exists; use --force to overwrite"
    assert not out.exists() and sidecar_path(out).read_text() == "{}"  # nothing written
    assert _invoke("predict", str(parent), str(readings), "-o", str(out), "--force").exit_code == 0
    assert read_provenance(out)["artifact"]["name"] == "lin"
    out.write_text(out.read_text() + "edited,,,\n")  # the CSV changed after calib predict wrote it
    with pytest.raises(IngestError, match=r"^predictions\.csv\.json: records SHA-256 \w+ but predictions\.csv has \w+; "
                                          r"the sidecar does not belong to this file"):
        read_provenance(out)
    with pytest.raises(IngestError, match=r"^readings\.csv: no provenance sidecar readings\.csv\.json"):
        read_provenance(readings)
