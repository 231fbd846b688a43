"""calib serve: the HTTP API against a running server on 127.0.0.1 (uvicorn), with httpx."""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from conftest import LINEAR_FEATURES, Server, lin_ref_rows, linear_keras, linear_metadata

from calib.cli import cli
from calib.runtime import load_model

httpx = pytest.importorskip("httpx")
ROOT = Path(__file__).resolve().parents[1]
X = np.array([[58.0, 20.0], [50.0, 10.0], [30.0, 35.0], [64.0, 39.0]])


def tree(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``folder`` with its size and modification time."""
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns) for p in folder.rglob("*")}


@pytest.fixture(scope="module")
def models(tmp_path_factory, linear_artifact, tiny_run):
    """A models folder: ``lin`` (hand-set, 2 fold models), its spot child ``lin.S1``, and ``tiny`` (trained, with report)."""
    from calib.spots import adjust_spots

    root = tmp_path_factory.mktemp("serve") / "models"
    shutil.copytree(linear_artifact.path, root / "lin" / linear_artifact.version)
    shutil.copytree(tiny_run["path"], root / "tiny" / tiny_run["path"].name)
    ref = root.parent / "ref.csv"
    pd.DataFrame(lin_ref_rows("S1", offset=0.3, k=1.05)).to_csv(ref, index=False)
    adjust_spots(root / "lin", ref, method="linear")
    return root


@pytest.fixture(scope="module")
def server(models, tmp_path_factory):
    s = Server(models, tmp_path_factory.mktemp("serve-tmp"))
    yield s
    s.stop()


@pytest.fixture()
def readings(tmp_path) -> Path:
    path = tmp_path / "readings.csv"
    df = pd.DataFrame(X, columns=list(LINEAR_FEATURES))
    df.insert(0, "spot_id", ["S1", "S2", "S1", "S9"])
    df["note"] = ["a", "b", "c", "d"]
    df.to_csv(path, index=False)
    return path


def cli_predict(model: Path, data: Path, out: Path, *extra: str) -> bytes:
    res = CliRunner().invoke(cli, ["-q", "predict", str(model), str(data), "-o", str(out), *extra])
    assert res.exit_code == 0, res.output
    return out.read_bytes()


# --------------------------------------------------------------------------- read endpoints
def test_health_openapi_and_page(server):
    h = httpx.get(server.url + "/health").json()
    assert h["status"] == "ok" and h["models"] == 3 and h["token_required"] is False
    spec = httpx.get(server.url + "/openapi.json").json()
    assert {"/health", "/models", "/models/{name}", "/models/{name}/{version}", "/models/{name}/{version}/report",
            "/models/{name}/{version}/card", "/models/{name}/predict"} <= set(spec["paths"])
    body = spec["paths"]["/models/{name}/predict"]["post"]["requestBody"]["content"]
    assert {"application/json", "multipart/form-data", "text/csv"} <= set(body)
    page = httpx.get(server.url + "/")
    assert page.status_code == 200 and "<title>calib models</title>" in page.text
    assert "http" not in page.text.split("<script>")[1].replace("http://127.0.0.1", "")  # nothing from elsewhere


def test_models_lists_names_versions_and_children(server, linear_artifact):
    got = {m["name"]: m for m in httpx.get(server.url + "/models").json()["models"]}
    assert set(got) == {"lin", "lin.S1", "tiny"}
    assert got["lin"]["versions"] == ["1.0.0"] and got["lin"]["latest"] == "1.0.0"
    child = got["lin"]["children"]["S1"]
    assert {k: child[k] for k in ("name", "version", "spot_column")} == {
        "name": "lin.S1", "version": "1.0.0", "spot_column": "spot_id"}
    assert got["lin.S1"]["parent"] == {"name": "lin", "version": "1.0.0", "spot_id": "S1"}
    # the check's dates: when it was checked and when the next check is due (calib.spots.history)
    assert child["due"] > child["checked"] and child["overdue"] is False and got["lin.S1"]["due"] == child["due"]
    assert got["tiny"]["target"] == "o2_hPa" and got["lin"]["features"] == list(LINEAR_FEATURES)


def test_model_detail_report_and_card(server, linear_artifact):
    latest = httpx.get(server.url + "/models/lin").json()
    pinned = httpx.get(server.url + "/models/lin/1.0.0").json()
    assert latest == pinned
    assert latest["metadata"]["model_id"] == load_model(linear_artifact.path).model_id
    assert latest["metadata"]["onnx"]["inputs"] == list(LINEAR_FEATURES) and "S1" in latest["children"]
    tiny = httpx.get(server.url + "/models/tiny").json()
    assert tiny["has_report"] is True
    rep = httpx.get(f"{server.url}/models/tiny/{tiny['version']}/report")
    assert rep.status_code == 200 and rep.headers["content-type"].startswith("text/html")
    assert rep.headers["content-security-policy"] == "sandbox allow-scripts" and "<html" in rep.text.lower()
    card = httpx.get(server.url + "/models/lin/1.0.0/card")
    assert card.status_code == 200 and "## Intended use" in card.text
    assert tiny["has_certificate"] is True
    cert = httpx.get(f"{server.url}/models/tiny/{tiny['version']}/certificate")
    assert cert.status_code == 200 and "Calibration certificate" in cert.text and "@media print" in cert.text
    child_cert = httpx.get(server.url + "/models/lin.S1/1.0.0/certificate")
    assert child_cert.status_code == 200 and "spot <b>S1</b>" in child_cert.text


@pytest.mark.parametrize("path, message", [
    pytest.param("/models/nope", "no model named 'nope' in", id="name"),
    pytest.param("/models/lin/9.9.9", "model 'lin' has no version '9.9.9' (versions: 1.0.0)", id="version"),
    pytest.param("/models/..%2F..%2Fetc", "Not Found", id="traversal"),
    pytest.param("/models/.hidden", "no model named '.hidden'", id="dot-name"),
    pytest.param("/models/lin/1.0.0/report", "model 'lin' 1.0.0 has no report.html", id="no-report"),
])
def test_unknown_model_is_404_with_one_line(server, path, message):
    r = httpx.get(server.url + path)
    assert r.status_code == 404 and set(r.json()) == {"error"} and message in r.json()["error"]
    assert "\n" not in r.json()["error"]


# --------------------------------------------------------------------------- predictions
def test_json_rows_give_the_numbers_and_flags_of_calib_predict(server, models, readings, tmp_path):
    df = pd.read_csv(readings)
    expected = pd.read_csv(io.BytesIO(cli_predict(models / "lin", readings, tmp_path / "out.csv")))
    rows = json.loads(df.to_json(orient="records"))
    got = httpx.post(server.url + "/models/lin/predict", json={"rows": rows}).json()
    m = load_model(models / "lin")
    assert (got["model"], got["version"], got["model_id"]) == ("lin", "1.0.0", m.model_id)
    assert got["columns"] == m.output_columns() and got["rows"] == 4
    res = pd.DataFrame(got["predictions"])
    for c in m.output_columns():
        if res[c].dtype.kind == "f":
            np.testing.assert_allclose(res[c], expected[c], rtol=1e-6, atol=1e-6)
        else:
            assert res[c].tolist() == expected[c].fillna("" if c.endswith("reason") else False).tolist(), c
    assert res["adjusted"].tolist() == [True, False, True, False]  # S1 rows through the child
    by_col = httpx.post(server.url + "/models/lin/predict", json={"columns": df.to_dict(orient="list")}).json()
    assert by_col["predictions"] == got["predictions"]


def test_csv_and_parquet_uploads_equal_calib_predict(server, models, readings, tmp_path):
    expected = cli_predict(models / "lin", readings, tmp_path / "out.csv")
    r = httpx.post(server.url + "/models/lin/predict", files={"file": ("readings.csv", readings.read_bytes())})
    assert r.status_code == 200 and r.content == expected  # byte for byte
    assert r.headers["x-calib-model"] == "lin" and r.headers["x-calib-version"] == "1.0.0"
    assert r.headers["x-calib-rows"] == "4" and 'filename="readings_predictions.csv"' in r.headers["content-disposition"]
    raw = httpx.post(server.url + "/models/lin/predict", content=readings.read_bytes(),
                     headers={"content-type": "text/csv"})
    assert raw.content == expected
    pq_in = tmp_path / "readings.parquet"
    pd.read_csv(readings).to_parquet(pq_in)
    expected_pq = pd.read_parquet(io.BytesIO(cli_predict(models / "lin", pq_in, tmp_path / "out.parquet")))
    r = httpx.post(server.url + "/models/lin/predict", files={"file": ("readings.parquet", pq_in.read_bytes())})
    pd.testing.assert_frame_equal(pd.read_parquet(io.BytesIO(r.content)), expected_pq)
    js = httpx.post(server.url + "/models/lin/predict?format=json",
                    files={"file": ("readings.csv", readings.read_bytes())}).json()
    np.testing.assert_allclose([p["o2_hPa_pred"] for p in js["predictions"]], expected_pq["o2_hPa_pred"], rtol=1e-6)


def test_an_excel_upload_with_a_named_sheet_equals_calib_predict(server, models, readings, tmp_path):
    """``?sheet=`` is ``calib predict --sheet``: the readings from a named worksheet, the same bytes."""
    book = tmp_path / "log.xlsx"
    with pd.ExcelWriter(book) as xw:
        pd.DataFrame({"operator": ["A. N. Other"]}).to_excel(xw, sheet_name="Notes", index=False)
        pd.read_csv(readings).to_excel(xw, sheet_name="Data", index=False)
    expected = cli_predict(models / "lin", book, tmp_path / "out.csv", "--sheet", "Data")
    r = httpx.post(server.url + "/models/lin/predict?sheet=Data", files={"file": ("log.xlsx", book.read_bytes())})
    assert r.status_code == 200 and r.content == expected
    r = httpx.post(server.url + "/models/lin/predict?sheet=data", files={"file": ("log.xlsx", book.read_bytes())})
    assert r.status_code == 422 and "no sheet 'data'; the workbook's sheets: 'Notes', 'Data'" in r.json()["error"]


@pytest.mark.parametrize("send, status, message", [
    pytest.param(lambda: {"files": {"file": ("r.csv", b"phase_5000hz_deg,temperature_degC\n50,n/a\n")}}, 422,
                 "r.csv row 2, column temperature_degC: 'n/a' is not a number", id="text-cell"),
    pytest.param(lambda: {"files": {"file": ("r.csv", b"phase_5000hz_deg,temp\n50,20\n")}}, 422,
                 "missing column 'temperature_degC'", id="missing-column"),
    pytest.param(lambda: {"files": {"file": ("r.csv", b"phase_5000hz_deg,temperature_degC\n120,20\n")}}, 422,
                 "phase_5000hz_deg", id="impossible-phase"),
    pytest.param(lambda: {"files": {"file": ("r.exe", b"MZ")}}, 400, "upload a .csv, .parquet or .xlsx file", id="suffix"),
    pytest.param(lambda: {"files": {"file": ("r.csv", b"")}}, 422, "the upload is empty", id="empty"),
    pytest.param(lambda: {"files": {"file": ("r.parquet", b"not parquet at all")}}, 422, "r.parquet", id="bad-parquet"),
    pytest.param(lambda: {"content": b"{rows: ", "headers": {"content-type": "application/json"}}, 400,
                 "the request body is not valid JSON", id="bad-json"),
    pytest.param(lambda: {"json": {"rows": []}}, 400, '"rows" must be a non-empty list', id="no-rows"),
    pytest.param(lambda: {"json": {"rows": [{"phase_5000hz_deg": "x", "temperature_degC": 20}]}}, 422,
                 "column phase_5000hz_deg: expected real numbers", id="json-text"),
    pytest.param(lambda: {"content": b"<xml/>", "headers": {"content-type": "application/xml"}}, 415,
                 "send application/json", id="content-type"),
    pytest.param(lambda: {"content": b"x" * (2 * 1024 * 1024), "headers": {"content-type": "text/csv"}}, 413,
                 "request body over the limit", id="too-large"),
])
def test_bad_uploads_are_one_line_4xx_and_write_nothing(small_server, models, send, status, message):
    before = tree(models)
    r = httpx.post(small_server.url + "/models/lin/predict", **send())
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"} and message in body["error"] and "\n" not in body["error"]
    assert tree(models) == before
    assert list(small_server.tmp.glob("calib-serve-*")) == []  # the upload's temporary folder is gone


@pytest.fixture(scope="module")
def small_server(models, tmp_path_factory):
    """A server with a 1 MiB request limit."""
    s = Server(models, tmp_path_factory.mktemp("small-tmp"), "--max-upload-mb", "1")
    yield s
    s.stop()


def test_token_is_required_when_set(models, tmp_path):
    s = Server(models, tmp_path / "t", "--token", "s3cret")
    try:
        assert httpx.get(s.url + "/health").status_code == 200
        assert httpx.get(s.url + "/").status_code == 200
        r = httpx.get(s.url + "/models")
        assert r.status_code == 401 and r.json() == {"error": "missing or wrong token: send 'Authorization: Bearer <token>'"}
        assert httpx.get(s.url + "/models", headers={"Authorization": "Bearer wrong"}).status_code == 401
        assert httpx.get(s.url + "/models", headers={"Authorization": "Bearer s3cret"}).status_code == 200
        assert httpx.post(s.url + "/models/lin/predict", json={"rows": [{"phase_5000hz_deg": 58, "temperature_degC": 20}]},
                          headers={"X-Calib-Token": "s3cret"}).json()["predictions"][0]["o2_hPa_pred"] == pytest.approx(0, abs=1e-3)
    finally:
        s.stop()


def test_new_version_appears_without_restart(models, tmp_path):
    from calib.artifact.export import export_artifact

    root = tmp_path / "models"
    shutil.copytree(models / "lin", root / "lin")
    s = Server(root, tmp_path / "t")
    try:
        one = {"rows": [{"phase_5000hz_deg": 58.0, "temperature_degC": 20.0}]}
        assert httpx.post(s.url + "/models/lin/predict", json=one).json()["version"] == "1.0.0"
        art = export_artifact(root, "lin", model=linear_keras(0.8), metadata=linear_metadata(100))  # +100 hPa
        assert art.version == "1.1.0"
        assert httpx.get(s.url + "/models").json()["models"][0]["versions"] == ["1.0.0", "1.1.0"]
        got = httpx.post(s.url + "/models/lin/predict", json=one).json()
        assert got["version"] == "1.1.0" and got["predictions"][0]["o2_hPa_pred"] == pytest.approx(100.0, abs=1e-3)
        old = httpx.post(s.url + "/models/lin/predict?version=1.0.0", json=one).json()
        assert old["version"] == "1.0.0" and old["predictions"][0]["o2_hPa_pred"] == pytest.approx(0.0, abs=1e-3)
    finally:
        s.stop()


def test_parallel_clients_bounded_load(server):
    """8 clients x 25 single-row requests on 127.0.0.1: no error; p95 latency recorded."""
    body = {"rows": [{"phase_5000hz_deg": 50.0, "temperature_degC": 10.0}]}

    def client(_: int) -> list[float]:
        out = []
        with httpx.Client(base_url=server.url, timeout=30) as c:
            for _ in range(25):
                t = time.perf_counter()
                r = c.post("/models/lin/predict", json=body)
                out.append(time.perf_counter() - t)
                assert r.status_code == 200 and r.json()["predictions"][0]["o2_hPa_pred"] == pytest.approx(90.0, abs=1e-3)
        return out

    t0 = time.perf_counter()
    with ThreadPoolExecutor(8) as pool:
        lat = sorted(x for chunk in pool.map(client, range(8)) for x in chunk)
    wall = time.perf_counter() - t0
    p95 = lat[int(0.95 * len(lat)) - 1]
    print(f"\ncalib serve: 8 clients x 25 requests, {len(lat) / wall:.0f} requests/s, p50 {lat[len(lat) // 2] * 1e3:.1f} ms, "
          f"p95 {p95 * 1e3:.1f} ms")
    assert len(lat) == 200 and p95 < 5.0


def test_serve_never_imports_tensorflow():
    code = "import sys, calib.serve, calib.cli.serve; sys.exit(int(any(m in sys.modules for m in ('tensorflow', 'keras'))))"
    assert subprocess.run([sys.executable, "-c", code], env={**os.environ, "PYTHONPATH": str(ROOT)}).returncode == 0


def test_serve_cli_refuses_a_missing_folder(tmp_path):
    res = CliRunner().invoke(cli, ["serve", str(tmp_path / "nope")])
    assert res.exit_code == 1
    assert res.output.strip() == f"Error: models folder '{tmp_path / 'nope'}' does not exist or is not a folder"


# --------------------------------------------------------------------------- the page, in headless Chromium
def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.slow
def test_page_lists_models_shows_report_and_turns_a_dropped_file_into_predictions(server, models, readings, tmp_path):
    """Playwright drives Debian's Chromium: models and children listed, the report framed, a file
    dropped on the drop zone comes back as the predictions ``calib predict`` writes."""
    sync_api = pytest.importorskip("playwright.sync_api")
    exe = _chromium()
    if exe is None:
        pytest.skip("chromium is not installed (.ci/run installs it)")
    expected = cli_predict(models / "lin", readings, tmp_path / "expected.csv")
    shots = Path(os.environ.get("CALIB_SCREENSHOTS", tmp_path))
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=exe, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900}, accept_downloads=True)
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.goto(server.url + "/")
            page.wait_for_selector('tr.model[data-name="tiny"]')
            assert page.locator('tr.child[data-name="lin.S1"]').inner_text().startswith("↳ spot S1")
            page.click('tr.model[data-name="tiny"]')
            page.wait_for_selector("iframe#report")
            assert page.frame_locator("iframe#report").locator("body").inner_text(timeout=15000).strip()
            page.screenshot(path=str(shots / "serve_page_report.png"))
            page.click('tr.model[data-name="lin"]')
            # the detail is fetched asynchronously: the previous model's drop zone is still there until then
            page.wait_for_function("() => (document.querySelector('#detail-title') || {}).innerText?.startsWith('lin')",
                                   timeout=15000)
            page.wait_for_selector("#drop")
            assert page.locator("#detail-title").inner_text().startswith("lin")
            dropped = page.evaluate_handle(
                "(text) => { const dt = new DataTransfer(); "
                "dt.items.add(new File([text], 'readings.csv', {type: 'text/csv'})); return dt; }",
                readings.read_text())
            page.dispatch_event("#drop", "drop", {"dataTransfer": dropped})
            page.wait_for_selector("#download")
            assert "4 rows predicted with lin 1.0.0" in page.locator("#result").inner_text()
            with page.expect_download() as dl:
                page.click("#download")
            got = tmp_path / "downloaded.csv"
            dl.value.save_as(got)
            assert got.read_bytes() == expected
            page.screenshot(path=str(shots / "serve_page.png"), full_page=False)
            page.set_input_files("#file", files=[{"name": "bad.csv", "mimeType": "text/csv",
                                                  "buffer": b"phase_5000hz_deg,temperature_degC\n50,n/a\n"}])
            page.wait_for_selector("#upload-error")
            assert "bad.csv row 2, column temperature_degC: 'n/a' is not a number" in page.inner_text("#upload-error")
            assert errors == []
        finally:
            browser.close()
