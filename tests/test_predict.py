"""Tests of calib.predict: batch inference on files, and artifact inspection."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from calib.errors import ConfigError, IngestError
from calib.artifact.export import describe_dataset, export_artifact
from calib.runtime import load_model
from calib.predict import inspect_artifact, predict_file

HEADER = "spot_id,phase_5000hz_deg,temperature_degC,o2_hPa,o2_umol_per_L,comment"


def _synthetic_csv(path: Path) -> Path:
    """Single-site Stern-Volmer phase at 5 kHz (deg) vs temperature (degC) -> pO2 (hPa), O2 (umol/L)."""
    rng = np.random.default_rng(3)
    lines = [HEADER]
    for spot in range(3):
        for t in (5.0, 20.0, 35.0):
            for po2 in (0.0, 50.0, 100.0, 200.0, 300.0):
                for _ in range(2):
                    theta0 = 60.0 - 0.08 * t
                    ksv = 0.03 + 0.0005 * t
                    theta = np.degrees(np.arctan(np.tan(np.radians(theta0)) / (1 + ksv * po2)))
                    lines.append(
                        f"S{spot},{theta + rng.normal(0, 0.01):.4f},{t + rng.normal(0, 0.02):.3f},"
                        f"{po2:.1f},{po2 * 1.3:.2f},spot {spot}"
                    )
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """A two-output artifact (pO2 + umol/L) with 2 fold models, loaded without TensorFlow."""
    from calib.config import DataSpec
    from calib.ingest import load_dataset
    from calib.nn import ModelConfig, train
    from calib.scaling import fit_scaler

    folder = tmp_path_factory.mktemp("predict")
    ds = load_dataset(
        _synthetic_csv(folder / "train.csv"),
        DataSpec(features=("phase_5000hz_deg", "temperature_degC"), target="o2_hPa",
                 aux_targets=("o2_umol_per_L",), group="spot_id"),
    )
    x, y = ds.x(), ds.y()
    cfg = ModelConfig(hidden_layers=(8,), epochs=5, batch_size=16, patience=None)

    def fit(rows, seed):
        return train(cfg.replace(seed=seed), x[rows], y[rows], x_scaler=fit_scaler(x[rows]),
                     y_scaler=fit_scaler(y[rows])).model

    idx = np.arange(ds.n_rows)
    final = fit(idx, 0)
    folds = [fit(idx[idx % 2 == k], k + 1) for k in range(2)]
    meta = {**describe_dataset(ds), "hyperparameters": cfg.to_dict()}
    art = export_artifact(folder / "models", "foil", model=final, fold_models=folds, metadata=meta)
    return load_model(art.path)


def _inside(model, n=5, seed=0):
    rng = np.random.default_rng(seed)
    return rng.uniform(model.lower + 0.1, model.upper - 0.1, size=(n, 2))


def _csv(path: Path, x: np.ndarray, extra: str = "") -> Path:
    rows = [f"S{i},{a:.4f},{b:.3f}{extra}" for i, (a, b) in enumerate(x)]
    path.write_text("spot,phase_5000hz_deg,temperature_degC" + (",note" if extra else "") + "\n"
                    + "\n".join(rows) + "\n")
    return path


# --------------------------------------------------------------------------- outputs
def test_passthrough_columns_untouched_and_predictions_appended(model, tmp_path):
    x = _inside(model, 4)
    text = "spot_id,code,phase_5000hz_deg,comment,temperature_degC,o2_ref\n" + "".join(
        f"  S{i} ,007,{a:.5f},hello; world {i},{b:.2f}00,\n" for i, (a, b) in enumerate(x)
    )
    src = tmp_path / "in.csv"
    src.write_text(text)
    summary = predict_file(model, src, tmp_path / "out.csv")
    out_lines = (tmp_path / "out.csv").read_text().splitlines()
    for orig, got in zip(text.splitlines(), out_lines):
        assert got.startswith(orig + ",")  # every original cell, byte for byte
    assert out_lines[0].endswith(",o2_hPa_pred,o2_umol_per_L_pred,o2_hPa_std,out_of_range,out_of_range_reason")
    cells = [ln.split(",")[-5:] for ln in out_lines[1:]]
    pred, std = model.predict(np.column_stack([np.round(x[:, 0], 5), np.round(x[:, 1], 2)]), return_std=True)
    np.testing.assert_allclose([float(c[0]) for c in cells], pred[:, 0], rtol=1e-4)
    np.testing.assert_allclose([float(c[1]) for c in cells], pred[:, 1], rtol=1e-4)
    np.testing.assert_allclose([float(c[2]) for c in cells], std, rtol=1e-4, atol=1e-4)
    assert [c[3] for c in cells] == ["False"] * 4 and [c[4] for c in cells] == [""] * 4
    assert summary["rows"] == 4 and summary["out_of_range"] == 0
    assert summary["output"] == str(tmp_path / "out.csv") and summary["version"] == "1.0.0"
    assert summary["model_id"] == model.model_id


def test_out_of_range_flags(model, tmp_path):
    lo, hi = model.lower, model.upper
    mid = (lo + hi) / 2
    x = np.array([mid, [hi[0] + 2.0, mid[1]], [mid[0], lo[1] - 1.0], lo, hi])
    src = tmp_path / "in.csv"
    src.write_text("phase_5000hz_deg,temperature_degC\n" + "".join(f"{float(a)!r},{float(b)!r}\n" for a, b in x))
    summary = predict_file(model, src, tmp_path / "out.csv")
    import pandas as pd

    out = pd.read_csv(tmp_path / "out.csv")
    assert out["out_of_range"].tolist() == [False, True, True, False, False]  # bounds inclusive
    assert summary["out_of_range"] == 2


def test_phase_in_radians_is_converted(model, tmp_path):
    x = _inside(model, 6)
    a = tmp_path / "rad.csv"
    a.write_text("phase_5000hz_rad,temperature_degC\n" + "".join(f"{float(np.radians(p))!r},{float(t)!r}\n" for p, t in x))
    import pandas as pd

    predict_file(model, a, tmp_path / "out.csv")
    got = pd.read_csv(tmp_path / "out.csv")["o2_hPa_pred"].to_numpy()
    np.testing.assert_allclose(got, model.predict(x)[:, 0], rtol=1e-4)


def test_semicolon_decimal_comma_and_crlf_are_kept(model, tmp_path):
    x = _inside(model, 3)
    raw = "id;phase_5000hz_deg;temperature_degC\r\n" + "".join(
        f"{i};{a:.4f};{b:.3f}\r\n".replace(".", ",") for i, (a, b) in enumerate(x)
    )
    src = tmp_path / "de.csv"
    src.write_bytes(raw.encode("latin-1"))
    predict_file(model, src, tmp_path / "out.csv")
    out = (tmp_path / "out.csv").read_bytes().decode("latin-1")
    lines = out.split("\r\n")
    assert lines[0] == "id;phase_5000hz_deg;temperature_degC;o2_hPa_pred;o2_umol_per_L_pred;o2_hPa_std;out_of_range;out_of_range_reason"
    first = lines[1].split(";")
    assert "," in first[3] and "." not in first[3]
    expected = model.predict(np.round(x, 4))[:, 0]
    assert float(first[3].replace(",", ".")) == pytest.approx(expected[0], rel=1e-4)
    assert out.endswith("\r\n") and "\n" not in out.replace("\r\n", "")


def test_a_point_in_a_decimal_comma_readings_file_is_refused(model, tmp_path):
    x = _inside(model, 3)
    lines = [f"{i};{a:.4f};{b:.3f}".replace(".", ",") for i, (a, b) in enumerate(x)]
    lines[1] = lines[1].rsplit(";", 1)[0] + f";{x[1, 1]:.3f}"  # row 3's temperature with a point
    src = tmp_path / "de.csv"
    src.write_text("id;phase_5000hz_deg;temperature_degC\n" + "\n".join(lines) + "\n")
    with pytest.raises(IngestError, match=r"^de\.csv row 3, column temperature_degC: '[0-9.]+' has a '\.' in a "
                                          r"file whose decimal mark is ','"):
        predict_file(model, src, tmp_path / "out.csv")
    assert not (tmp_path / "out.csv").exists()


def test_quoted_csv_is_rewritten_with_the_same_cells(model, tmp_path):
    import pandas as pd

    x = _inside(model, 2)
    src = tmp_path / "q.csv"
    src.write_text('note,phase_5000hz_deg,temperature_degC\n"a, b",%r,%r\n"line\nbreak",%r,%r\n'
                   % tuple(float(v) for v in x.ravel()))
    predict_file(model, src, tmp_path / "out.csv")
    out = pd.read_csv(tmp_path / "out.csv", dtype=str, keep_default_na=False)
    assert out["note"].tolist() == ["a, b", "line\nbreak"]
    np.testing.assert_allclose(out["o2_hPa_pred"].astype(float), model.predict(x)[:, 0], rtol=1e-4)


def test_parquet_in_and_out_keep_types(model, tmp_path):
    import pandas as pd

    x = _inside(model, 5)
    df = pd.DataFrame({"sensor": np.arange(5, dtype=np.int64), "phase_5000hz_deg": x[:, 0],
                       "temperature_degC": x[:, 1], "label": list("abcde")})
    df.to_parquet(tmp_path / "in.parquet")
    summary = predict_file(model, tmp_path / "in.parquet", tmp_path / "out.parquet")
    out = pd.read_parquet(tmp_path / "out.parquet")
    assert summary["format"] == "parquet"
    assert list(out.columns) == [*df.columns, "o2_hPa_pred", "o2_umol_per_L_pred", "o2_hPa_std", "out_of_range",
                                  "out_of_range_reason"]
    assert out["sensor"].dtype == np.int64 and out["out_of_range"].dtype == bool
    pd.testing.assert_frame_equal(out[df.columns], df)
    np.testing.assert_allclose(out["o2_hPa_pred"], model.predict(x)[:, 0], rtol=0, atol=0)


def test_csv_in_parquet_out_stores_original_text(model, tmp_path):
    import pandas as pd

    x = _inside(model, 2)
    src = _csv(tmp_path / "in.csv", x, extra=",007")
    predict_file(model, src, tmp_path / "out.parquet")
    out = pd.read_parquet(tmp_path / "out.parquet")
    assert out["note"].tolist() == ["007", "007"]
    assert out["phase_5000hz_deg"].tolist() == [f"{a:.4f}" for a in x[:, 0]]


def test_excel_input_gives_csv(model, tmp_path):
    import pandas as pd

    x = _inside(model, 3)
    pd.DataFrame({"phase_5000hz_deg": x[:, 0], "temperature_degC": x[:, 1]}).to_excel(
        tmp_path / "in.xlsx", index=False)
    predict_file(model, tmp_path / "in.xlsx", tmp_path / "out.csv")
    out = pd.read_csv(tmp_path / "out.csv")
    np.testing.assert_allclose(out["o2_hPa_pred"], model.predict(x)[:, 0], rtol=1e-5)


def test_a_named_sheet_of_a_workbook_is_read(model, tmp_path):
    """``--sheet`` / ``sheet=``: the readings on another sheet than the first; without it, the
    error names the workbook's sheets and the option; on a CSV, a one-line refusal."""
    import pandas as pd
    from click.testing import CliRunner

    from calib.cli import cli

    x = _inside(model, 3)
    path = tmp_path / "log.xlsx"
    with pd.ExcelWriter(path) as xw:
        pd.DataFrame({"operator": []}).to_excel(xw, sheet_name="Notes", index=False)
        pd.DataFrame({"phase_5000hz_deg": x[:, 0], "temperature_degC": x[:, 1]}).to_excel(
            xw, sheet_name="Data", index=False)
    predict_file(model, path, tmp_path / "out.csv", sheet="Data")
    out = pd.read_csv(tmp_path / "out.csv")
    np.testing.assert_allclose(out["o2_hPa_pred"], model.predict(x)[:, 0], rtol=1e-5)
    with pytest.raises(IngestError, match=r"the workbook's sheets: 'Notes', 'Data'; .*--sheet"):
        predict_file(model, path, tmp_path / "out2.csv")
    res = CliRunner().invoke(cli, ["predict", str(model.path), str(path), "-o", str(tmp_path / "out3.csv"),
                                   "--sheet", "Data"])
    assert res.exit_code == 0, res.output
    assert pd.read_csv(tmp_path / "out3.csv")["o2_hPa_pred"].tolist() == out["o2_hPa_pred"].tolist()
    with pytest.raises(ConfigError, match=r"^sheet 'Data' applies to an Excel file; in.csv is csv$"):
        predict_file(model, _csv(tmp_path / "in.csv", x), tmp_path / "out4.csv", sheet="Data")
    with pytest.raises(ConfigError, match=r"^sheet is a non-empty string must hold, got sheet=''$"):
        predict_file(model, path, tmp_path / "out5.csv", sheet="")


# --------------------------------------------------------------------------- refusals
# (bad cells and missing columns in a readings file: the malformed_predict corpus, tests/test_reliability.py)


@pytest.mark.parametrize("how", [
    pytest.param("same", id="same-path"),
    pytest.param("relative", id="relative-path"),
    pytest.param("dotdot", id="path-with-dotdot"),
    pytest.param("symlink", id="symlink-to-input"),
    pytest.param("hardlink", id="hard-link-to-input"),
])
def test_output_equal_to_input_is_refused(model, tmp_path, monkeypatch, how):
    src = _csv(tmp_path / "in.csv", _inside(model, 2))
    before = src.read_bytes()
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path)
    out = {"same": src, "relative": Path("./in.csv"), "dotdot": tmp_path / "sub" / ".." / "in.csv",
           "symlink": tmp_path / "link.csv", "hardlink": tmp_path / "hard.csv"}[how]
    if how == "symlink":
        out.symlink_to(src)
    elif how == "hardlink":
        os.link(src, out)
    with pytest.raises(ConfigError, match=r"^output must differ from the input \(the input is never overwritten\)"):
        predict_file(model, src, out)
    assert src.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted({"in.csv", "sub", out.name})


def test_sidecar_onto_the_input_is_refused(model, tmp_path):
    # -o x.csv on the input x.csv.json: the provenance sidecar x.csv.json would replace the input
    src = _csv(tmp_path / "x.csv.json", _inside(model, 2))
    before = src.read_bytes()
    with pytest.raises(ConfigError, match=r"^output's provenance sidecar '.*x\.csv\.json' is the input"):
        predict_file(model, src, tmp_path / "x.csv", force=True)
    assert src.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.csv.json"]


@pytest.mark.parametrize("which", ["input", "output", "sidecar"])
def test_a_loop_of_symbolic_links_is_refused_in_one_line(model, tmp_path, which):
    src = _csv(tmp_path / "in.csv", _inside(model, 2))
    (tmp_path / "a.csv").symlink_to(tmp_path / "b.csv")
    (tmp_path / "b.csv").symlink_to(tmp_path / "a.csv")
    (tmp_path / "o.csv.json").symlink_to(tmp_path / "o.csv.json")
    data, out, bad = {"input": (tmp_path / "a.csv", tmp_path / "o2.csv", "a.csv"),
                      "output": (src, tmp_path / "a.csv", "a.csv"),
                      "sidecar": (src, tmp_path / "o.csv", "o.csv.json")}[which]
    with pytest.raises(ConfigError, match=rf"^'.*{bad}': a symbolic link in a loop \(it never reaches a file\)"):
        predict_file(model, data, out)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.csv", "b.csv", "in.csv", "o.csv.json"]


def test_existing_output_column_is_refused(model, tmp_path):
    src = tmp_path / "in.csv"
    src.write_text("phase_5000hz_deg,temperature_degC,out_of_range\n30.0,20.0,x\n")
    with pytest.raises(IngestError, match="column\\(s\\) out_of_range already exist"):
        predict_file(model, src, tmp_path / "out.csv")


def test_excel_output_is_refused(model, tmp_path):
    src = _csv(tmp_path / "in.csv", _inside(model, 2))
    with pytest.raises(ConfigError, match="output must be .csv or .parquet"):
        predict_file(model, src, tmp_path / "out.xlsx")


def test_bad_separator_option(model, tmp_path):
    src = _csv(tmp_path / "in.csv", _inside(model, 2))
    with pytest.raises(ConfigError, match="sep must be one of"):
        predict_file(model, src, tmp_path / "out.csv", sep=":")


# --------------------------------------------------------------------------- predict_frame / inspect
def test_predict_frame_with_aux_target(model):
    import pandas as pd

    x = _inside(model, 3)
    df = pd.DataFrame({"phase_5000hz_deg": x[:, 0], "temperature_degC": x[:, 1]})
    out = model.predict_frame(df)
    assert list(out.columns[2:]) == ["o2_hPa_pred", "o2_umol_per_L_pred", "o2_hPa_std", "out_of_range",
                                  "out_of_range_reason"]
    pred = model.predict(x)
    assert pred.shape == (3, 2)
    np.testing.assert_array_equal(out["o2_umol_per_L_pred"], pred[:, 1])
    # the two outputs were trained on umol/L = 1.3 * hPa: the network learned the ratio roughly
    assert np.corrcoef(pred[:, 0], pred[:, 1])[0, 1] > 0.9


def test_inspect_artifact(model, tmp_path):
    info = inspect_artifact(model.path.parent)
    assert info["version"] == "1.0.0" and info["verification"] is None
    assert [f["name"] for f in info["features"]] == ["phase_5000hz_deg", "temperature_degC"]
    assert info["features"][0]["frequency_hz"] == 5000.0
    assert info["outputs"] == ["o2_hPa", "o2_umol_per_L", "o2_hPa_std"] and info["has_std"]  # one output per target
    ok = inspect_artifact(model.path, verify=True)
    assert ok["verification"]["ok"] is True  # its text: tests/test_cli_format.py
    assert (ok["name"], ok["version"]) == ("foil", "1.0.0") and ok["features"][0]["unit"] == "deg"

    bad = tmp_path / "foil" / "1.0.0"
    shutil.copytree(model.path, bad)
    with open(bad / "MODEL_CARD.md", "a") as fh:
        fh.write("edited\n")
    info = inspect_artifact(bad, verify=True)
    assert info["verification"]["ok"] is False and info["verification"]["kind"] == "IntegrityError"
    assert "checksum mismatch for MODEL_CARD.md" in info["verification"]["error"]
