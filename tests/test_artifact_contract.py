"""The ONNX input contract (calib.artifact.contract): named float32 [N] inputs, pinned opset."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import LINEAR_FEATURES, copy_artifact, lin_ref_rows, rewrite_sums

from calib.artifact.contract import ONNX_OPSET, name_inputs, unname_inputs
from calib.errors import ArtifactError, ConfigError
from calib.runtime import load_model

X = np.array([[58.0, 20.0], [50.0, 10.0], [30.0, 35.0]])  # O2 = -10 phase - T + 600: 0, 90, 265 hPa


def _session(vdir: Path):
    import onnxruntime as ort

    return ort.InferenceSession(str(vdir / "model.onnx"), providers=["CPUExecutionProvider"])


def make_legacy(vdir: Path) -> Path:
    """Turn an artifact into what calib < 0.2 wrote: one input ``readings`` [N, 2], schema 1.1."""
    import onnx

    proto = unname_inputs(onnx.load_model_from_string((vdir / "model.onnx").read_bytes()))
    props = {p.key: p.value for p in proto.metadata_props if p.key not in ("inputs", "opset", "output_meaning")}
    props["schema_version"] = "1.1"
    del proto.metadata_props[:]
    onnx.helper.set_model_props(proto, props)
    onnx.checker.check_model(proto, full_check=True)
    (vdir / "model.onnx").write_bytes(proto.SerializeToString())
    meta = json.loads((vdir / "calibration.json").read_text())
    o = meta["onnx"]
    for k in ("inputs", "input_dtype", "output_meaning"):
        o.pop(k)
    o.update(input="readings", input_shape=["N", 2])
    meta["schema_version"] = "1.1"
    (vdir / "calibration.json").write_text(json.dumps(meta))
    rewrite_sums(vdir)
    return vdir


def test_graph_takes_one_named_float32_vector_per_feature(linear_artifact):
    s = _session(linear_artifact.path)
    assert [(i.name, i.type, len(i.shape)) for i in s.get_inputs()] == [
        (f, "tensor(float)", 1) for f in LINEAR_FEATURES]
    meta = s.get_modelmeta().custom_metadata_map
    assert [i["name"] for i in json.loads(meta["inputs"])] == list(LINEAR_FEATURES)
    assert int(meta["opset"]) == ONNX_OPSET
    meaning = json.loads(meta["output_meaning"])
    assert [o.name for o in s.get_outputs()] == list(meaning) and all(meaning.values())
    feed = {f: X[:, j].astype(np.float32) for j, f in enumerate(LINEAR_FEATURES)}
    np.testing.assert_allclose(s.run(["o2_hPa"], feed)[0], [0.0, 90.0, 265.0], atol=1e-3)


@pytest.mark.parametrize(
    "feed, match",
    [
        pytest.param(lambda x: {LINEAR_FEATURES[0]: x[:, 0]}, r"Required inputs \(\['temperature_degC'\]\) are missing",
                     id="missing-name"),
        pytest.param(lambda x: {"phase_deg": x[:, 0], LINEAR_FEATURES[1]: x[:, 1]}, r"missing",
                     id="misspelt-name"),
        pytest.param(lambda x: {"readings": x}, r"missing", id="positional-matrix"),
        pytest.param(lambda x: {LINEAR_FEATURES[0]: x[:, 0], LINEAR_FEATURES[1]: x[:, 1], "readings": x[:, 0]},
                     r"Invalid input name: readings", id="extra-name"),
        pytest.param(lambda x: {LINEAR_FEATURES[0]: x[:, 0].astype(np.float64), LINEAR_FEATURES[1]: x[:, 1]},
                     r"Unexpected input data type.*tensor\(double\).*tensor\(float\)", id="float64"),
        pytest.param(lambda x: {LINEAR_FEATURES[0]: x[:, :1], LINEAR_FEATURES[1]: x[:, 1]},
                     r"Invalid rank", id="2-D"),
    ],
)
def test_bare_graph_refuses_a_wrong_feed(linear_artifact, feed, match):
    s = _session(linear_artifact.path)
    x = np.ascontiguousarray(X, dtype=np.float32)
    with pytest.raises(Exception, match=match):
        s.run(None, {k: np.ascontiguousarray(v) for k, v in feed(x).items()})


def test_a_column_swap_cannot_change_the_numbers(linear_artifact):
    """Columns in another order give the same numbers: inputs go by name, never by position."""
    m = load_model(linear_artifact.path)
    df = pd.DataFrame(X, columns=list(LINEAR_FEATURES))
    swapped = df[list(reversed(LINEAR_FEATURES))]
    np.testing.assert_allclose(m.predict(swapped), m.predict(df), rtol=0, atol=0)
    np.testing.assert_allclose(m.predict(df), [0.0, 90.0, 265.0], atol=1e-3)


def test_name_inputs_round_trip_and_clash(linear_artifact):
    import onnx

    proto = onnx.load(str(linear_artifact.path / "model.onnx"))
    bare = unname_inputs(proto)
    assert [i.name for i in bare.graph.input] == ["readings"]
    assert not any(n.name.startswith("calib_inputs/") for n in bare.graph.node)
    with pytest.raises(ConfigError, match="o2_hPa clash with tensors of the graph"):
        name_inputs(onnx.load(str(linear_artifact.path / "model.onnx")).graph and bare, ["o2_hPa", "t"])
    again = name_inputs(bare, LINEAR_FEATURES)
    assert [i.name for i in again.graph.input] == list(LINEAR_FEATURES)


def test_artifact_of_schema_1_1_still_loads_and_predicts(linear_artifact, tmp_path):
    vdir = make_legacy(copy_artifact(linear_artifact, tmp_path))
    assert [i.name for i in _session(vdir).get_inputs()] == ["readings"]
    old, new = load_model(vdir), load_model(linear_artifact.path)
    assert not old.named_inputs and new.named_inputs
    a, b = old.run(old.as_array(X)), new.run(new.as_array(X))
    np.testing.assert_array_equal(a.values, b.values)
    np.testing.assert_array_equal(a.std, b.std)
    np.testing.assert_array_equal(old.predict(X), new.predict(X))


def test_child_of_a_schema_1_1_parent_has_named_inputs(linear_artifact, tmp_path):
    from calib.spots import adjust_spots

    vdir = make_legacy(copy_artifact(linear_artifact, tmp_path))
    ref = tmp_path / "ref.csv"
    pd.DataFrame(lin_ref_rows("S1", offset=0.3, k=1.05)).to_csv(ref, index=False)
    (art,) = adjust_spots(vdir, ref, method="linear").artifacts
    child = load_model(art.path)
    assert child.named_inputs and [i.name for i in _session(art.path).get_inputs()] == list(LINEAR_FEATURES)
    assert json.loads((art.path / "calibration.json").read_text())["onnx"]["opset"] == ONNX_OPSET
    s = _session(art.path)
    bare = s.run(["o2_hPa"], {f: X[:, j].astype(np.float32) for j, f in enumerate(LINEAR_FEATURES)})[0]
    np.testing.assert_allclose(bare, load_model(vdir).predict(X, spots=["S1"] * 3), rtol=1e-5, atol=1e-4)


def test_stamp_and_calibration_json_must_agree_on_the_inputs(linear_artifact, tmp_path):
    vdir = copy_artifact(linear_artifact, tmp_path)
    meta = json.loads((vdir / "calibration.json").read_text())
    meta["onnx"]["inputs"] = list(reversed(meta["onnx"]["inputs"]))
    (vdir / "calibration.json").write_text(json.dumps(meta))
    rewrite_sums(vdir)
    with pytest.raises(ArtifactError, match="disagree on the graph inputs"):
        load_model(vdir)


# --------------------------------------------------------------------------- a second language: Node.js
NODE_DIR = Path(__file__).parent / "node"


def _node_consumer(model: Path, csv: Path, *args: str) -> dict:
    import shutil
    import subprocess

    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed (.ci/run installs it)")
    if not (NODE_DIR / "node_modules" / "onnxruntime-node").is_dir():
        pytest.skip("onnxruntime-node is not installed: cd tests/node && npm install (.ci/run does)")
    res = subprocess.run([node, str(NODE_DIR / "consumer.mjs"), str(model), str(csv), *args],
                         capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)


def test_node_consumer_matches_python(tiny_run, tmp_path):
    """onnxruntime-node reads the metadata, feeds inputs by name, and gives calib predict's numbers."""
    m = load_model(tiny_run["path"])
    df = pd.read_csv(tiny_run["csv"]).head(200)
    csv = tmp_path / "readings.csv"
    df[list(reversed(m.features))].to_csv(csv, index=False)  # any column order: inputs go by name
    got = _node_consumer(tiny_run["path"] / "model.onnx", csv)
    assert [i["name"] for i in got["inputs"]] == list(m.features)
    assert {i["dtype"] for i in got["inputs"]} == {"float32"} and got["model"]["opset"] == str(ONNX_OPSET)
    assert set(got["output_meaning"]) == set(got["outputs"]) == set(m.metadata["onnx"]["outputs"])
    ref = m.predict_frame(df[list(m.features)])
    t = m.target
    for out, col in ((t, f"{t}_pred"), (f"{t}_std", f"{t}_std"), (f"{t}_lo", f"{t}_lo"), (f"{t}_hi", f"{t}_hi"),
                     ("domain_distance", "domain_distance")):
        np.testing.assert_allclose(got["outputs"][out], ref[col], rtol=1e-5, atol=1e-5)
    assert (np.asarray(got["outputs"]["domain_code"]) != 0).tolist() == ref["out_of_range"].tolist()


def test_node_consumer_wrong_feeds_are_refused_by_onnxruntime(linear_artifact, tmp_path):
    csv = tmp_path / "readings.csv"
    pd.DataFrame(X, columns=list(LINEAR_FEATURES)).to_csv(csv, index=False)
    errors = _node_consumer(linear_artifact.path / "model.onnx", csv, "--refusals")
    assert set(errors) == {"missing", "extra", "float64", "2-D"}
    assert "input 'phase_5000hz_deg' is missing" in errors["missing"]
    assert "Unexpected input data type" in errors["float64"] and "Invalid rank" in errors["2-D"]
    # onnxruntime-node ignores a feed name the graph lacks (Python's ORT refuses it:
    # test_bare_graph_refuses_a_wrong_feed); consumer.mjs builds its feed from the metadata's inputs
    assert errors["extra"] is None
