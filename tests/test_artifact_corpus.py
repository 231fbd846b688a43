"""A corpus of hostile artifacts: valid checksums, hostile content (calib.artifact.schema, store, runtime).

Every case starts from the session's ``linear`` artifact (conftest ``linear_artifact``),
copied, edited, and given a *valid* ``SHA256SUMS`` again, so that only the content checks
can refuse it: the ``calibration.json`` schema, its agreement with ``model.onnx``'s stamp,
the size caps, the Keras allow-list, and unreadable files (simulated with monkeypatch,
since the tests run as root). Each refusal is one :class:`~calib.errors.ArtifactError` line
through every door: ``calib.load_model``, ``verify_artifact``, ``read_metadata`` and the CLI.
The table of classes of hostile input: benchmarks/reliability.md.
"""

from __future__ import annotations

import builtins
import errno
import json
import os
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import LINEAR_FEATURES, copy_artifact, lin_ref_rows, linear_keras, linear_metadata, rewrite_sums

from calib.artifact import schema as SC
from calib.artifact import store as S
from calib.cli import cli
from calib.errors import ArtifactError
from calib.runtime import load_model

ZERO = {LINEAR_FEATURES[0]: 58.0, LINEAR_FEATURES[1]: 20.0}  # O2 = -10 phase - T + 600 = 0 hPa


def hostile_json(art, tmp_path: Path, edit) -> Path:
    vdir = copy_artifact(art, tmp_path)
    meta = json.loads((vdir / S.METADATA_FILE).read_text())
    edit(meta)
    (vdir / S.METADATA_FILE).write_text(json.dumps(meta, indent=1))
    rewrite_sums(vdir)
    return vdir


def restamp(vdir: Path, edit) -> None:
    """Edit ``model.onnx``'s metadata properties ({key: value} -> None) and re-write SHA256SUMS."""
    import onnx

    proto = onnx.load_model_from_string((vdir / S.ONNX_FILE).read_bytes())
    props = {p.key: p.value for p in proto.metadata_props}
    edit(props)
    del proto.metadata_props[:]
    onnx.helper.set_model_props(proto, props)
    (vdir / S.ONNX_FILE).write_bytes(proto.SerializeToString())
    rewrite_sums(vdir)


def refusals(vdir: Path, *, metadata_too: bool = True) -> list[str]:
    """The message of every door that reads the artifact; each must refuse with an ArtifactError."""
    doors = [load_model, S.verify_artifact] + ([S.read_metadata] if metadata_too else [])
    out = []
    for door in doors:
        with pytest.raises(ArtifactError) as info:
            door(vdir)
        out.append(str(info.value))
    return out


def one_cli_error(args: list[str]) -> str:
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 1, res.output
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), res.stderr
    return lines[0]


def _readings(tmp_path: Path) -> Path:
    src = tmp_path / "in.csv"
    pd.DataFrame([ZERO]).to_csv(src, index=False)
    return src


def _feature(i, **change):
    return lambda m: m["features"][i].update(change)


def _drop(i, key):
    return lambda m: m["features"][i].pop(key)


def _set(key, value):
    return lambda m: m.__setitem__(key, value)


# --------------------------------------------------------------------------- 1. the schema
SCHEMA_CASES = [
    pytest.param(_set("features", "phase_5000hz_deg"), "features: expected a list, got the string 'phase_5000hz_deg'",
                 id="features-not-a-list"),
    pytest.param(_set("features", []), "features: expected a non-empty list, got an empty list", id="features-empty"),
    pytest.param(lambda m: m["features"].__setitem__(1, 3),
                 "features[1]: expected an object with name and unit, got the number 3", id="feature-not-an-object"),
    pytest.param(_drop(1, "unit"), "features[1].unit: missing (expected a string)", id="feature-without-unit"),
    pytest.param(_feature(1, unit=None), "features[1].unit: expected a non-empty string, got null", id="feature-unit-null"),
    pytest.param(_feature(1, unit="furlong"), "features[1].unit: unknown unit 'furlong' (known: deg, rad, ",
                 id="feature-unit-unknown"),
    pytest.param(_feature(0, name=5), "features[0].name: expected a non-empty string, got the number 5",
                 id="feature-name-number"),
    pytest.param(_feature(0, min="low"), "features[0].min: expected a finite number or null, got the string 'low'",
                 id="feature-min-string"),
    pytest.param(_feature(0, max=True), "features[0].max: expected a finite number or null, got true", id="feature-max-bool"),
    pytest.param(_feature(0, min=70.0), "features[0]: min <= max must hold, got min=70.0, max=65.0", id="feature-min-above-max"),
    pytest.param(_feature(0, frequency_hz="5k"), "features[0].frequency_hz: expected a finite number or null, got the string '5k'",
                 id="feature-frequency-string"),
    pytest.param(lambda m: m["features"].__setitem__(1, dict(m["features"][0])),
                 "features[1].name: 'phase_5000hz_deg' is listed twice", id="feature-twice"),
    pytest.param(_set("target", None), "target: expected an object, got null", id="target-null"),
    pytest.param(lambda m: m.pop("target"), "target: missing (expected an object)", id="target-missing"),
    pytest.param(lambda m: m["target"].update(unit=1), "target.unit: expected a non-empty string, got the number 1",
                 id="target-unit-number"),
    pytest.param(_set("aux_targets", {"name": "x", "unit": "degC"}), "aux_targets: expected a list, got an object",
                 id="aux-targets-object"),
    pytest.param(_set("aux_targets", [{"name": "t"}]), "aux_targets[0].unit: missing (expected a string)",
                 id="aux-target-without-unit"),
    pytest.param(_set("onnx", []), "onnx: expected an object, got an empty list", id="onnx-list"),
    pytest.param(lambda m: m["onnx"].update(outputs="o2_hPa"), "onnx.outputs: expected a list, got the string 'o2_hPa'",
                 id="onnx-outputs-string"),
    pytest.param(lambda m: m["onnx"]["outputs"].__setitem__(1, None),
                 "onnx.outputs[1]: expected a non-empty string, got null", id="onnx-output-null"),
    pytest.param(lambda m: m["onnx"]["outputs"].reverse(),
                 "onnx.outputs[0]: expected the target 'o2_hPa', got 'o2_hPa_std'", id="onnx-outputs-not-target-first"),
    pytest.param(lambda m: m["onnx"].update(file="../other.onnx"),
                 "onnx.file: expected 'model.onnx', got the string '../other.onnx'", id="onnx-file"),
    pytest.param(_set("version", 1), "version: expected a non-empty string, got the number 1", id="version-number"),
    pytest.param(_set("version", "1.2.0"), "version: says '1.2.0' but the folder is '1.0.0'; refused (renamed folder?)",
                 id="version-not-the-folder"),
    pytest.param(_set("model_id", None), "model_id: expected a non-empty string, got null", id="model-id-null"),
    pytest.param(_set("name", ["lin"]), "name: expected a non-empty string, got a list of 1", id="name-list"),
    pytest.param(_set("data", ["batch.csv"]), "data: expected an object, got a list of 1", id="data-list"),
    pytest.param(lambda m: m["data"].update(group=7), "data.group: expected a non-empty string, got the number 7",
                 id="data-group-number"),
    pytest.param(_set("hyperparameters", "adam"), "hyperparameters: expected an object, got the string 'adam'",
                 id="hyperparameters-string"),
]


@pytest.mark.parametrize("edit, message", SCHEMA_CASES)
def test_malformed_calibration_json_is_one_line_naming_the_key(linear_artifact, tmp_path, edit, message):
    vdir = hostile_json(linear_artifact, tmp_path, edit)
    for text in refusals(vdir):
        assert text.startswith(f"{vdir / 'calibration.json'}: {message}"), text
        assert "\n" not in text


def test_malformed_calibration_json_through_the_cli(linear_artifact, tmp_path):
    vdir = hostile_json(linear_artifact, tmp_path, _drop(1, "unit"))
    want = f"Error: {vdir / 'calibration.json'}: features[1].unit: missing (expected a string)"
    assert one_cli_error(["predict", str(vdir), str(_readings(tmp_path)), "-o", str(tmp_path / "out.csv")]) == want
    assert one_cli_error(["inspect", str(vdir)]) == want
    assert not (tmp_path / "out.csv").exists()


@pytest.mark.parametrize("version, match", [
    pytest.param("0.9", "schema_version 0.9 is unknown", id="major-0"),
    pytest.param(1.1, r"schema_version must be a 'major.minor' string, got 1.1", id="number"),
])
def test_unknown_schema_version_is_refused(linear_artifact, tmp_path, version, match):
    vdir = hostile_json(linear_artifact, tmp_path, _set("schema_version", version))
    for text in refusals(vdir):
        assert match in text


def test_unknown_keys_and_more_outputs_are_allowed(linear_artifact, tmp_path):
    """Forward compatibility: newer minor schemas add top-level keys, outputs and graph properties."""
    extra = {"conformal": {"alpha": 0.1, "q": 1.5}, "domain": {"kind": "mahalanobis"}, "uncertainty": None}
    vdir = hostile_json(linear_artifact, tmp_path, lambda m: m.update(extra))
    restamp(vdir, lambda p: p.update(domain="{}", conformal_q="1.5"))
    m = load_model(vdir)
    assert m.predict(pd.DataFrame([ZERO]))[0] == pytest.approx(0.0, abs=1e-3)
    assert S.verify_artifact(vdir)["ok"] and S.read_metadata(vdir)["conformal"]["q"] == 1.5
    meta = json.loads((vdir / "calibration.json").read_text())
    meta["onnx"]["outputs"] += ["o2_hPa_lo", "o2_hPa_hi", "domain_code", "domain_distance"]
    SC.check_metadata(meta, "calibration.json", "1.0.0")  # outputs beyond [target, target_std]


def test_a_spot_child_with_its_own_ranges_loads(linear_artifact, tmp_path):
    parent = copy_artifact(linear_artifact, tmp_path)
    ref = tmp_path / "ref.csv"
    pd.DataFrame(lin_ref_rows("A", 0.3, 1.05)).to_csv(ref, index=False)
    res = CliRunner().invoke(cli, ["adjust", str(parent), "--reference", str(ref), "--method", "phase_scale", "--json"])
    assert res.exit_code == 0, res.output
    child = parent.parent.parent / "lin.A" / "1.0.0"
    cmeta = S.read_metadata(child)
    assert cmeta["spot_adjustment"] and cmeta["features"][0]["min"] != linear_artifact.metadata["features"][0]["min"]
    assert load_model(child).is_child and S.verify_artifact(child)["ok"]
    assert list(load_model(parent).children) == ["A"]


# --------------------------------------------------------------------------- 2. calibration.json vs model.onnx
def test_swapped_features_are_refused_naming_both_orders(linear_artifact, tmp_path, monkeypatch):
    vdir = hostile_json(linear_artifact, tmp_path, lambda m: m["features"].reverse())
    for text in refusals(vdir, metadata_too=False):
        assert text == (
            f"{vdir}: calibration.json and model.onnx disagree on the features (name and unit, in input order): "
            "calibration.json has [temperature_degC (degC), phase_5000hz_deg (deg)], model.onnx was exported with "
            "[phase_5000hz_deg (deg), temperature_degC (degC)]; the files do not belong together (edited by hand?); "
            "refused"
        )
    one_cli_error(["predict", str(vdir), str(_readings(tmp_path)), "-o", str(tmp_path / "out.csv")])
    # without the stamp check the named graph inputs still refuse it (schema 1.1's one matrix
    # input gave a 0 hPa reading hundreds of hPa off, unflagged)
    import calib.artifact.store as S

    monkeypatch.setattr(S, "check_onnx_stamp", lambda *a: None)  # the one way in (open_artifact)
    with pytest.raises(ArtifactError, match=r"the graph's inputs \['phase_5000hz_deg', 'temperature_degC'\] "
                       r"are not the features \['temperature_degC', 'phase_5000hz_deg'\]"):
        load_model(vdir)


@pytest.mark.parametrize("edit, what", [
    pytest.param(lambda m: m["target"].update(unit="kPa"),
                 "the target unit: calibration.json has 'kPa', model.onnx was exported with 'hPa'", id="target-unit"),
    pytest.param(lambda m: m["features"][1].update(unit="K"),
                 "the features (name and unit, in input order): calibration.json has [phase_5000hz_deg (deg), "
                 "temperature_degC (K)]", id="feature-unit"),
    pytest.param(_set("model_id", "0" * 8), "the model_id: calibration.json has '00000000'", id="model-id"),
    pytest.param(_set("name", "other"), "the name: calibration.json has 'other', model.onnx was exported with 'lin'",
                 id="name"),
])
def test_metadata_that_disagrees_with_the_graph_stamp_is_refused(linear_artifact, tmp_path, edit, what):
    vdir = hostile_json(linear_artifact, tmp_path, edit)
    for text in refusals(vdir, metadata_too=False):
        assert text.startswith(f"{vdir}: calibration.json and model.onnx disagree on {what}"), text


def test_graph_without_stamp_skips_the_cross_check_but_not_the_input_width(linear_artifact, tmp_path):
    vdir = copy_artifact(linear_artifact, tmp_path)
    restamp(vdir, lambda p: p.clear())
    assert SC.onnx_metadata_props((vdir / "model.onnx").read_bytes(), "model.onnx") == {}
    assert load_model(vdir).predict(pd.DataFrame([ZERO]))[0] == pytest.approx(0.0, abs=1e-3)
    meta = json.loads((vdir / "calibration.json").read_text())
    meta["features"].append({"name": "pressure_hPa", "unit": "hPa", "min": 900.0, "max": 1100.0})
    (vdir / "calibration.json").write_text(json.dumps(meta))
    rewrite_sums(vdir)
    with pytest.raises(ArtifactError, match=r"the graph's inputs \['phase_5000hz_deg', 'temperature_degC'\] are "
                       r"not the features \['phase_5000hz_deg', 'temperature_degC', 'pressure_hPa'\]"):
        load_model(vdir)


def test_stamp_is_read_without_parsing_the_graph(linear_artifact):
    import onnx

    data = (linear_artifact.path / "model.onnx").read_bytes()
    props = SC.onnx_metadata_props(data, "model.onnx")
    assert props == {p.key: p.value for p in onnx.load_model_from_string(data).metadata_props}
    assert json.loads(props["features"])[0]["name"] == LINEAR_FEATURES[0]


@pytest.mark.parametrize("blob", [
    pytest.param(b"\xff" * 16, id="endless-varint"),
    pytest.param(b"\x72\xff\x01abc", id="length-past-the-end"),
    pytest.param(b"\x0b\x00", id="group-wire-type"),
])
def test_malformed_onnx_bytes_are_refused(linear_artifact, tmp_path, blob):
    vdir = copy_artifact(linear_artifact, tmp_path)
    (vdir / "model.onnx").write_bytes(blob)
    rewrite_sums(vdir)
    for text in refusals(vdir, metadata_too=False):
        assert text == f"{vdir / 'model.onnx'}: not an ONNX model (malformed protobuf)"


# --------------------------------------------------------------------------- 3. unreadable files, no memory
def _deny(monkeypatch, name: str, exc: BaseException) -> None:
    """Reading any file called ``name`` raises ``exc`` (PermissionError as for chmod 000, or MemoryError)."""
    real_read, real_open = Path.read_bytes, builtins.open

    def read_bytes(self):
        if self.name == name:
            raise exc
        return real_read(self)

    def fake_open(file, *a, **k):
        if isinstance(file, (str, os.PathLike)) and Path(file).name == name:
            raise exc
        return real_open(file, *a, **k)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    monkeypatch.setattr(builtins, "open", fake_open)


@pytest.mark.parametrize("name", ["calibration.json", "model.onnx", "SHA256SUMS", "model.keras"])
def test_unreadable_file_is_one_artifact_error(linear_artifact, tmp_path, monkeypatch, name):
    vdir = copy_artifact(linear_artifact, tmp_path)
    src = _readings(tmp_path)
    _deny(monkeypatch, name, PermissionError(errno.EACCES, "Permission denied", str(vdir / name)))
    want = f"{vdir / name}: cannot read the artifact (Permission denied)"
    for text in refusals(vdir, metadata_too=name == "calibration.json"):
        assert text == want
    assert one_cli_error(["predict", str(vdir), str(src), "-o", str(tmp_path / "out.csv")]) == f"Error: {want}"
    res = CliRunner().invoke(cli, ["inspect", str(vdir), "--verify"])
    assert res.exit_code == 1 and len(res.stderr.splitlines()) == 1 and want in res.stderr, res.stderr


def test_out_of_memory_while_loading_is_one_artifact_error(linear_artifact, tmp_path, monkeypatch):
    vdir = copy_artifact(linear_artifact, tmp_path)
    _deny(monkeypatch, "model.onnx", MemoryError())
    for text in refusals(vdir, metadata_too=False):
        assert text == f"{vdir}: not enough memory to load the artifact"


# --------------------------------------------------------------------------- 4. size caps
def _spy_reads(monkeypatch, name: str) -> None:
    """Reading ``name`` fails the test (AssertionError is no OSError: nothing turns it into a refusal)."""
    _deny(monkeypatch, name, AssertionError(f"{name} was read"))


def test_huge_onnx_is_refused_by_size_before_a_byte_is_read(linear_artifact, tmp_path, monkeypatch):
    vdir = copy_artifact(linear_artifact, tmp_path)
    os.truncate(vdir / "model.onnx", 1536 << 20)  # a sparse 1.5 GiB file: no disk, no memory
    rewrite_sums(vdir, fake={"model.onnx": "0" * 64})
    src = _readings(tmp_path)
    _spy_reads(monkeypatch, "model.onnx")
    want = f"{vdir / 'model.onnx'}: 1536.0 MiB, more than the 256.0 MiB calib loads (MAX_ONNX_BYTES); refused"
    for text in refusals(vdir, metadata_too=False):
        assert text == want
    assert one_cli_error(["predict", str(vdir), str(src), "-o", str(tmp_path / "out.csv")]) == f"Error: {want}"


def test_huge_calibration_json_is_refused_by_size(linear_artifact, tmp_path, monkeypatch):
    vdir = copy_artifact(linear_artifact, tmp_path)
    os.truncate(vdir / "calibration.json", S.MAX_JSON_BYTES + 1)
    rewrite_sums(vdir, fake={"calibration.json": "0" * 64})
    _spy_reads(monkeypatch, "calibration.json")
    for text in refusals(vdir):
        assert text.startswith(f"{vdir / 'calibration.json'}: ") and ("MAX_JSON_BYTES" in text or "too large" in text)


def test_publish_refuses_a_graph_over_the_cap(tmp_path, monkeypatch):
    from calib.artifact.export import export_artifact

    monkeypatch.setattr(S, "MAX_ONNX_BYTES", 1000)
    with pytest.raises(ArtifactError, match=r"^cannot publish 'lin': its model.onnx is .* MiB, more than the 0.0 MiB"):
        export_artifact(tmp_path, "lin", model=linear_keras(-0.2), metadata=linear_metadata(100))
    assert S.list_versions(tmp_path / "lin") == []


# --------------------------------------------------------------------------- 6. the Keras allow-list
def _edit_keras(vdir: Path, edit) -> None:
    src = vdir / "model.keras"
    with zipfile.ZipFile(src) as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    config = json.loads(members["config.json"])
    dense = config["config"]["layers"][2]
    assert dense["class_name"] == "Dense"
    edit(dense)
    members["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(src, "w") as zf:
        for n, b in members.items():
            zf.writestr(n, b)
    rewrite_sums(vdir)


@pytest.mark.parametrize("edit, message", [
    pytest.param(lambda d: d.update(class_name="TorchModuleWrapper"),
                 "names the class 'TorchModuleWrapper' of module 'keras.layers', not one calib allows", id="class-outside"),
    pytest.param(lambda d: d.update(module="keras.src.legacy.layers"),
                 "names the class 'Dense' of module 'keras.src.legacy.layers', not one calib allows",
                 id="allowed-class-other-keras-module"),
    pytest.param(lambda d: d.update(module="mypkg.layers"), "refers to module 'mypkg.layers', which is not part of Keras",
                 id="allowed-class-foreign-module"),
    pytest.param(lambda d: d.update(module=None, class_name="TorchModuleWrapper"),
                 "names the class 'TorchModuleWrapper' without a module", id="class-without-module"),
    pytest.param(lambda d: d.update(registered_name="Evil"), "names 'Dense' registered as 'Evil'", id="registered-as-other"),
    pytest.param(lambda d: d.update(registered_name="mypkg>Dense"), "is the registered custom object 'mypkg>Dense'",
                 id="registered-custom"),
])
def test_keras_classes_outside_the_allow_list_are_refused(linear_artifact, tmp_path, edit, message):
    vdir = copy_artifact(linear_artifact, tmp_path)
    _edit_keras(vdir, edit)
    for text in refusals(vdir, metadata_too=False):
        assert text.startswith(f"{vdir / 'model.keras'}: config/layers[2] {message}"), text


def test_every_class_calib_writes_is_allowed(linear_artifact):
    S.check_keras_file(linear_artifact.path / "model.keras")
    assert {"Dense", "Normalization", "InputLayer", "Dropout"} <= S.KERAS_ALLOWED["keras.layers"]
    assert np.all([isinstance(v, frozenset) for v in S.KERAS_ALLOWED.values()])
