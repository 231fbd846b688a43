"""Tests of calib.report: the self-contained HTML report of an artifact or a sweep record."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from calib.artifact import export as E

from calib import report as R
from calib.artifact import store as S
from calib.report import page as report_page
from calib.errors import ConfigError, IntegrityError

UNIT = "hPa"
HELD_OUT = ("S2", "S3")
BEST_EPOCHS = (7, 9, 5)


# --------------------------------------------------------------------------- fixtures
def _readings(path: Path) -> Path:
    """Seeded single-site Stern-Volmer readings: 4 spots x 3 temperatures x 5 O2 levels."""
    rng = np.random.default_rng(0)
    rows = []
    for spot in range(4):
        for t in (5.0, 20.0, 35.0):
            for po2 in (0.0, 50.0, 100.0, 200.0, 300.0):
                theta0 = 63.6 - 0.078 * t
                ksv = 0.031 + 0.00045 * t
                theta = np.degrees(np.arctan(np.tan(np.radians(theta0)) / (1 + ksv * po2))) + rng.normal(0, 0.01)
                rows.append(f"S{spot},{theta:.4f},{t + rng.normal(0, 0.02):.3f},{po2:.1f}")
    path.write_text("spot_id,phase_deg,temp_degC,o2_hPa\n" + "\n".join(rows) + "\n")
    return path


def _curve(n: int, best: int, seed: int) -> tuple[list[float], list[float]]:
    """Decaying train loss and a dev loss with its minimum at epoch ``best`` (1-based)."""
    e = np.arange(1, n + 1, dtype=float)
    train = 1.0 / e
    dev = 0.02 + 0.01 * (e - best) ** 2 + np.random.default_rng(seed).uniform(0, 1e-4, n)
    return train.tolist(), dev.tolist()


def _metadata(ds, sweep_res, space) -> dict:
    """Metadata shaped like calib.pipeline's, with known numbers (hPa)."""
    from calib.search import leaderboard
    from calib.validate import diagnose

    def m(mae):
        return {"mae": mae, "rmse": 1.25 * mae, "max_abs": 3 * mae, "r2": 0.99, "ela": 0.4}

    def ms(mae, std):
        return {k: {"mean": v, "std": std if k == "mae" else 0.01} for k, v in m(mae).items()}

    folds = []
    for i, best in enumerate(BEST_EPOCHS):
        tr, dv = _curve(10 + 2 * i, best, i)
        folds.append({"fold": i, "n_train": 40, "n_val": 20, "val": m(2.5), "train": m(1.0),
                      "physics_val": m(4.0), "physics_train": m(3.5), "physics_kind": "svu",
                      "train_loss": tr, "dev_loss": dv, "best_epoch": best, "seconds": 0.5})
    diag = diagnose(1.0, 2.5, 2.25, 0.2, "replicates").to_dict()
    summary = {"val": ms(2.5, 0.3), "train": ms(1.0, 0.1), "physics_val": ms(4.0, 0.5),
               "physics_train": ms(3.5, 0.4)}
    return {
        **E.describe_dataset(ds),
        "hyperparameters": {**sweep_res.best_config.to_dict(), "final_epochs": 7},
        "cv": {"target": "o2_hPa", "unit": UNIT, "group_kfold": True, "n_folds": 3, "config": {},
               "summary": summary, "folds": folds, "diagnosis": diag, "seconds": 1.5},
        "test": {**m(2.25), "tolerance": 1.0, "n": 30, "rows": 30, "std_mean": 0.5, "groups": list(HELD_OUT)},
        "physics_fit": {"kind": "svu", "params": None, "test": {**m(4.5), "tolerance": 1.0, "n": 30},
                     "cv": summary["physics_val"]},
        "noise_floor": 0.2,
        "diagnosis": diag,
        "split": {"test_fraction": 0.5, "dev_fraction": 0.2, "seed": 0, "scaling": "standard", "by_group": True,
                  "train_rows": 24, "dev_rows": 6, "test_rows": 30},
        "sweep": {"strategy": sweep_res.strategy, "trials": len(sweep_res.trials), "storage": sweep_res.storage,
                  "space": space.to_dict(), "leaderboard": json.loads(json.dumps(leaderboard(sweep_res)))},
    }


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """A real 3-trial sweep journal and an artifact exported with a tiny trained model."""
    from calib.config import DataSpec
    from calib.ingest import load_dataset
    from calib.nn import ModelConfig, train
    from calib.scaling import fit_scaler
    from calib.search import SearchSpace, run_sweep

    root = tmp_path_factory.mktemp("report")
    ds = load_dataset(_readings(root / "readings.csv"),
                      DataSpec(features=("phase_deg", "temp_degC"), target="o2_hPa", group="spot_id"))
    base = ModelConfig(hidden_layers=(4,), epochs=3, batch_size=32, patience=None, seed=0)
    space = SearchSpace.from_dict({"learning_rate": {"low": 1e-3, "high": 3e-2},
                                   "batch_size": {"low": 8, "high": 32},
                                   "activation": {"choices": ["tanh", "elu"]}})
    journal = root / "runs" / "sweep.journal"
    sweep_res = run_sweep(ds, np.arange(ds.n_rows), base, space, strategy="random", n_trials=3, folds=2,
                          storage=str(journal), seed=0, recycle_every=None)  # in this process: no worker start
    x, y = ds.x(), ds.y()
    model = train(base, x, y, x_scaler=fit_scaler(x), y_scaler=fit_scaler(y)).model
    meta = _metadata(ds, sweep_res, space)
    test = ds.frame[ds.frame["spot_id"].isin(HELD_OUT)].copy()
    offset = np.where(test["spot_id"] == "S2", 1.5, -2.0)  # known residuals (hPa)
    test["o2_hPa_pred"] = test["o2_hPa"] + offset
    test["o2_hPa_std"] = 0.5
    art = E.export_artifact(root / "models", "foil-R", model=model, metadata=meta,
                            extra_files={"test_predictions.csv": test.to_csv(index=False)}, report=R.artifact_report)
    return {"root": root, "ds": ds, "journal": journal, "sweep": sweep_res, "art": art, "model": model,
            "meta": meta, "test": test, "offset": offset}


def _sections(html_text: str) -> list[str]:
    return re.findall(r'<section id="([^"]+)"><h2>', html_text)


def _imgs(html_text: str) -> list[str]:
    return re.findall(r"<img [^>]*>", html_text)


def test_import_loads_neither_matplotlib_nor_tensorflow():
    code = ("import sys, calib.report; "
            "bad = [m for m in ('matplotlib', 'tensorflow', 'keras') if m in sys.modules]; assert not bad, bad")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


# --------------------------------------------------------------------------- artifact report
def test_export_writes_report_covered_by_checksums(built):
    art = built["art"]
    html_text = (art.path / "report.html").read_text(encoding="utf-8")
    assert _sections(html_text) == list(R.SECTION_IDS)
    sums = dict(line.split("  ", 1)[::-1] for line in (art.path / "SHA256SUMS").read_text().splitlines())
    assert "report.html" in sums and "test_predictions.csv" in sums
    assert S.verify_artifact(art.path)["ok"]
    assert "`report.html`" in (art.path / "MODEL_CARD.md").read_text()
    # the report was drawn from the final metadata: version and model id are in it
    assert f"foil-R {art.version}" in html_text and art.metadata["model_id"] in html_text
    # 1 learning-curve + 1 parity + 1 residual figure + one per swept parameter (3)
    imgs = _imgs(html_text)
    assert len(imgs) == 6
    for tag in imgs:
        data = re.search(r'src="data:image/png;base64,([^"]+)"', tag).group(1)
        assert base64.b64decode(data)[:8] == b"\x89PNG\r\n\x1a\n"
    # self-contained: nothing to fetch, no script
    low = html_text.lower()
    for bad in ("<script", "<link", "@import", "url(", 'src="http', "href=\"http", "//fonts"):
        assert bad not in low, bad


def test_build_report_equals_the_exported_one(built):
    """Rendering is deterministic: the report of the artifact folder is the one export wrote."""
    assert R.build_report(built["art"].path.parent) == (built["art"].path / "report.html").read_text("utf-8")


def test_the_drawing_warm_up_changes_no_report(built, tmp_path):
    """The main job warms matplotlib up in a thread while it waits for its refit (fonts, text
    layout); a report drawn after the warm-up, in a fresh process, is the one export wrote."""
    out = tmp_path / "report.html"
    code = ("import sys; from pathlib import Path; from calib.report import warm_up, build_report; "
            "warm_up(); Path(sys.argv[2]).write_text(build_report(sys.argv[1]), 'utf-8')")
    done = subprocess.run([sys.executable, "-c", code, str(built["art"].path.parent), str(out)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert out.read_text("utf-8") == (built["art"].path / "report.html").read_text("utf-8")


def test_metrics_table_and_diagnosis_show_known_numbers(built):
    html_text = R.render_report(built["art"].metadata, built["test"])
    metrics = re.search(r'<section id="cv-metrics">.*?</section>', html_text, re.S).group(0)
    row = re.search(r"<tr><td>MAE \(hPa\)</td>(.*?)</tr>", metrics).group(1)
    assert re.findall(r'<td class="n">([^<]*)</td>', row) == [
        "2.5 \u00b1 0.3", "4 \u00b1 0.5", "2.25", "4.5", "1 \u00b1 0.1"]
    assert "physics fit (svu)" in metrics and "<b>0.5\u00d7</b>" in metrics
    assert "RMSE (hPa)" in metrics and "within \u00b11 hPa (%)" in metrics
    diag = re.search(r'<section id="diagnosis">.*?</section>', html_text, re.S).group(0)
    assert "<b>high variance</b>" in diag  # diagnose(1.0, 2.5, 2.25, 0.2): variance 1.5 > bias 0.8
    cells = dict(re.findall(r"<tr><td>([^<]+)</td><td class=\"n\">([^<]+)</td>", diag))
    assert cells["avoidable bias"] == "0.8" and cells["variance"] == "1.5" and cells["dev overfitting"] == "-0.25"
    meta = re.search(r'<section id="metadata">.*?</section>', html_text, re.S).group(0)
    assert built["ds"].sha256 in meta and "temp_degC" in meta and "degC" in meta
    lo = float(built["ds"].frame["phase_deg"].min())
    assert f"{lo:.4g}" in meta  # the calibrated range of the phase input


def test_learning_curves_log_scale_with_kept_epoch(built):
    figs = R.report_figures(built["meta"])
    axes = [ax for ax in figs["learning-curves"].axes if ax.get_visible()]
    assert len(axes) == 3
    for ax, best in zip(axes, BEST_EPOCHS):
        assert ax.get_yscale() == "log"
        vlines = [ln for ln in ax.get_lines() if len(set(ln.get_xdata())) == 1]
        assert [float(ln.get_xdata()[0]) for ln in vlines] == [best]


def test_parity_and_residuals_show_the_test_rows(built):
    figs = R.report_figures(built["meta"], built["test"])
    (ax,) = figs["parity"].axes
    one_to_one = [ln for ln in ax.get_lines() if list(ln.get_xdata()) == list(ln.get_ydata())
                  and len(ln.get_xdata()) == 2]
    assert len(one_to_one) == 1
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["1:1", "spot_id S2", "spot_id S3"]
    res_axes = figs["residuals"].axes
    assert [a.get_xlabel() for a in res_axes] == ["reference o2_hPa (hPa)", "temp_degC (°C)"]
    for a in res_axes:
        bars = [c for c in a.containers]
        assert len(bars) == 2  # one error-bar series per held-out spot
        got = np.concatenate([c.lines[0].get_ydata() for c in bars])
        np.testing.assert_allclose(np.sort(got), np.sort(built["offset"]), atol=1e-9)


def test_hyperparameter_axes_follow_the_space(built):
    figs = R.report_figures(built["meta"])
    lr = figs["hyperparameters/learning_rate"].axes[0]
    bs = figs["hyperparameters/batch_size"].axes[0]
    act = figs["hyperparameters/activation"].axes[0]
    assert (lr.get_xscale(), bs.get_xscale(), act.get_xscale()) == ("log", "linear", "linear")
    assert lr.get_xlim()[0] < 1e-3 and lr.get_xlim()[1] > 3e-2  # the whole searched range
    assert [t.get_text() for t in act.get_xticklabels()] == ["tanh", "elu"]
    html_text = R.render_report(built["meta"])
    assert 'data-param="learning_rate" data-xscale="log"' in html_text
    assert 'data-param="batch_size" data-xscale="linear"' in html_text
    assert 'data-param="activation" data-xscale="categorical"' in html_text


def test_sparse_metadata_gives_every_section_with_notes():
    meta = {"features": [{"name": "phase_deg", "unit": "deg", "min": 10.0, "max": 60.0}],
            "target": {"name": "o2_hPa", "unit": "hPa", "min": 0.0, "max": 300.0}, "data": {"file": "r.csv"}}
    html_text = R.render_report(meta, None)
    assert _sections(html_text) == list(R.SECTION_IDS)
    assert _imgs(html_text) == []
    assert "No test predictions in this artifact" in html_text and "records no sweep" in html_text


def test_text_from_the_metadata_is_escaped(built):
    evil = '<script>alert("x")</script>'
    meta = json.loads(json.dumps(built["meta"]))
    meta["data"]["file"] = evil
    meta["physics_fit"]["kind"] = evil
    meta["diagnosis"]["verdict"] = evil
    meta["hyperparameters"]["activation"] = evil
    meta["sweep"]["leaderboard"][0]["params"]["activation"] = evil
    meta["features"][0]["source"] = evil
    html_text = R.render_report(meta, built["test"])
    assert "<script" not in html_text
    assert html_text.count("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;") >= 6


# --------------------------------------------------------------------------- sweep-only report
def test_sweep_report_from_journal(built):
    from calib.search import leaderboard, load_result

    html_text = R.build_report(built["journal"])
    assert _sections(html_text) == list(R.SWEEP_SECTION_IDS)
    rows = leaderboard(load_result(built["journal"]))
    assert len(rows) == 3
    board = re.search(r'<section id="leaderboard">.*?</section>', html_text, re.S).group(0)
    listed = re.findall(r'<tr(?: class="best")?><td class="n">(\d+)</td><td class="n">(\d+)</td>', board)
    assert listed == [(str(r["rank"]), str(r["number"])) for r in rows]
    assert len(_imgs(html_text)) == 3 and 'data-param="learning_rate" data-xscale="log"' in html_text


def test_sweep_report_from_leaderboard_folder(built, tmp_path):
    from calib.search import write_leaderboard

    _, json_path = write_leaderboard(built["sweep"], tmp_path / "board")
    html_text = R.build_report(json_path.parent)
    assert _sections(html_text) == list(R.SWEEP_SECTION_IDS)
    assert "CV MAE (hPa)" in html_text  # leaderboard.json knows the unit
    # the space comes from the journal named in leaderboard.json: learning_rate is a log range
    assert 'data-param="learning_rate" data-xscale="log"' in html_text


# --------------------------------------------------------------------------- writing
def test_write_report_is_atomic(built, tmp_path, monkeypatch):
    out = tmp_path / "out" / "report.html"
    assert R.write_report(built["art"].path, out) == out
    first = out.read_text(encoding="utf-8")
    assert _sections(first) == list(R.SECTION_IDS)

    def boom(*a, **k):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(report_page, "render_report", boom)  # where build_report looks it up
    with pytest.raises(RuntimeError, match="disk on fire"):
        R.write_report(built["art"].path, out, force=True)
    assert out.read_text(encoding="utf-8") == first
    assert sorted(p.name for p in out.parent.iterdir()) == ["report.html"]  # no temp file left


@pytest.mark.parametrize("where, match", [
    pytest.param("journal", "output must not overwrite the source", id="source-itself"),
    pytest.param("artifact", "output must not be inside an artifact folder", id="inside-artifact"),
    pytest.param("folder", "output must be a file path", id="folder"),
])
def test_write_report_refusals(built, tmp_path, where, match):
    if where == "journal":
        source, out = built["journal"], built["journal"]
    elif where == "artifact":
        source, out = built["art"].path, built["art"].path / "report2.html"
    else:
        source, out = built["art"].path, tmp_path
    before = built["journal"].stat().st_size
    with pytest.raises(ConfigError, match=match):
        R.write_report(source, out)
    assert built["journal"].stat().st_size == before
    assert not (built["art"].path / "report2.html").exists()


def test_modified_artifact_is_refused(built, tmp_path):
    dst = tmp_path / "models" / "foil-R" / built["art"].version
    shutil.copytree(built["art"].path, dst)
    csv = dst / "test_predictions.csv"
    csv.write_text(csv.read_text().replace("S3", "S9"))
    with pytest.raises(IntegrityError, match="checksum mismatch for test_predictions.csv"):
        R.build_report(dst)


def test_missing_source(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        R.build_report(tmp_path / "nope")


def test_a_readings_file_or_a_device_as_source_is_one_error(tmp_path):
    """`calib report data.csv` read the CSV as a sweep journal (a traceback, and its last row cut
    when it had no final newline); `calib report /dev/zero` called it a folder."""
    data = tmp_path / "data.csv"
    data.write_bytes(b"spot_id,o2_hPa\nS1,0.0\nS1,212.5")
    with pytest.raises(ConfigError, match="data.csv: not a sweep journal"):
        R.build_report(data)
    assert data.read_bytes() == b"spot_id,o2_hPa\nS1,0.0\nS1,212.5"
    with pytest.raises(ConfigError, match=r"^source /dev/zero is neither a file nor a folder"):
        R.build_report("/dev/zero")


# --------------------------------------------------------------------------- export hook
def test_export_report_off_and_failure(built, tmp_path, monkeypatch):
    meta = {k: v for k, v in built["meta"].items()}
    off = E.export_artifact(tmp_path, "foil-off", model=built["model"], metadata=meta, report=None)
    assert not (off.path / "report.html").exists() and S.verify_artifact(off.path)["ok"]

    def boom(*a, **k):
        raise ValueError("no <fonts> here")

    monkeypatch.setattr(report_page, "render_report", boom)  # where artifact_report looks it up
    bad = E.export_artifact(tmp_path, "foil-bad", model=built["model"], metadata=meta, report=R.artifact_report)
    text = (bad.path / "report.html").read_text(encoding="utf-8")
    assert "could not be drawn: ValueError: no &lt;fonts&gt; here" in text
    assert S.verify_artifact(bad.path)["ok"]


# --------------------------------------------------------------------------- real browser
def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    return "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None


_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
          "--disable-background-networking", "--disable-component-update", "--disable-sync",
          "--disable-dev-shm-usage", "--hide-scrollbars"]
_PROBE = ("<script>window.addEventListener('load',function(){var b=0;for(var i of document.images)"
          "{if(!i.complete||i.naturalWidth===0)b++;}document.title='broken-images:'+b;});</script>")


@pytest.mark.slow
def test_report_renders_in_headless_chromium(built, tmp_path):
    exe = _chromium()
    if exe is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is not installed; CI needs it: apt-get install -y chromium")
        pytest.skip("chromium not installed (apt-get install -y chromium); the browser check runs in CI")
    html_text = (built["art"].path / "report.html").read_text(encoding="utf-8")
    page = tmp_path / "page.html"
    page.write_text(html_text.replace("</body>", _PROBE + "</body>"), encoding="utf-8")
    env = {**os.environ, "HOME": str(tmp_path)}
    common = [exe, *_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"]
    dom = subprocess.run([*common, "--virtual-time-budget=10000", "--dump-dom", page.as_uri()],
                         capture_output=True, text=True, timeout=90, env=env)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert "<title>broken-images:0</title>" in dom.stdout
    assert _sections(dom.stdout) == list(R.SECTION_IDS)
    assert len(_imgs(dom.stdout)) == len(_imgs(html_text)) == 6

    shot = tmp_path / "shot.png"
    run = subprocess.run([*common, f"--screenshot={shot}", "--window-size=1280,4000", page.as_uri()],
                         capture_output=True, text=True, timeout=90, env=env)
    assert run.returncode == 0 and shot.is_file(), run.stderr[-2000:]
    from PIL import Image

    with Image.open(shot) as im:
        px = np.asarray(im.convert("RGB"))
    assert px.shape == (4000, 1280, 3)
    np.testing.assert_array_equal(px[20, 640], [0x1D, 0x2B, 0x45])  # the styled header (inline CSS)
    body = px[400:]
    assert len(np.unique(body.reshape(-1, 3), axis=0)) > 200  # figures and text, not a blank page
    assert (body.std(axis=(0, 1)) > 10).all()


def test_log_scaled_parameters_match_the_search_default():
    """The report keeps its own copy (it must not import the sweep machinery); the two must agree."""
    from calib.report import metadata
    from calib.search import LOG_BY_DEFAULT

    assert set(metadata._LOG_NAMES) == set(LOG_BY_DEFAULT)


def test_a_schema_1_0_artifact_names_the_physics_fit_baseline_and_still_reports_it(built):
    """Artifacts written before schema 1.1 call the physics fit alone `baseline` (and `baseline_val`)."""
    old = json.loads(json.dumps(built["meta"]).replace('"physics_fit"', '"baseline"').replace('"physics_val"',
                                                                                               '"baseline_val"'))
    metrics = re.search(r'<section id="cv-metrics">.*?</section>', R.render_report(old), re.S).group(0)
    row = re.search(r"<tr><td>MAE \(hPa\)</td>(.*?)</tr>", metrics).group(1)
    assert re.findall(r'<td class="n">([^<]*)</td>', row)[1:4] == ["4 \u00b1 0.5", "2.25", "4.5"]


def test_learning_curves_drop_minor_ticks_only_where_decades_are_labelled():
    """A loss curve over two decades or more gets a labelled tick per decade and no minor ticks
    (they cost half the report's drawing time); a narrower one keeps matplotlib's minor ticks,
    which then carry its only labels."""
    from matplotlib.ticker import NullLocator

    from calib.report.figures import report_figures

    def axes(train, dev):
        meta = {"target": {"unit": "hPa"}, "cv": {"folds": [{"fold": 0, "train_loss": train, "dev_loss": dev,
                                                             "best_epoch": 2}]}}
        fig = report_figures(meta)["learning-curves"]
        return fig.axes[0]

    wide = axes([1.0, 0.1, 0.01, 0.005], [1.2, 0.2, 0.02, 0.03])
    assert isinstance(wide.yaxis.get_minor_locator(), NullLocator)
    narrow = axes([0.5, 0.4, 0.35, 0.3], [0.6, 0.5, 0.45, 0.44])
    assert not isinstance(narrow.yaxis.get_minor_locator(), NullLocator)
    narrow.figure.canvas.draw()
    labels = [t.get_text() for t in narrow.yaxis.get_ticklabels(minor=True) + narrow.yaxis.get_ticklabels()]
    assert any(labels)
