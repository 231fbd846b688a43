"""The HTTP service of ``calib serve``: an ASGI app (FastAPI) over a models folder.

Endpoints (JSON unless said otherwise; an error is ``{"error": "one line"}`` with a 4xx
status, or 500 for an artifact that fails its checks):

- ``GET /health``: liveness, calib version, number of models (never needs the token).
- ``GET /models``: every model: name, versions, latest, target, unit, features, children.
- ``GET /models/{name}`` and ``GET /models/{name}/{version}``: ``calibration.json``, versions,
  children, whether a report/card exists.
- ``GET /models/{name}/{version}/report`` (HTML) and ``.../card`` (Markdown).
- ``POST /models/{name}/predict[?version=]``: readings as JSON (``{"rows": [{feature: value,
  ...}]}`` or ``{"columns": {feature: [values]}}``) -> JSON predictions; or a file (multipart
  field ``file``, or the raw body with ``Content-Type: text/csv`` / ``application/vnd.apache.parquet``)
  -> the file with the prediction columns appended, exactly as ``calib predict`` writes it
  (``?format=json`` for JSON instead). The model, version and model id are in the response
  (JSON fields, or ``X-Calib-*`` headers).
- ``GET /``: the web page (:mod:`calib.serve.page`); ``GET /openapi.json``: the schema.

Every prediction goes through :mod:`calib.runtime` (JSON: :meth:`CalibrationModel.predict_frame`;
files: :func:`calib.predict.predict_file`), so the numbers, intervals and flags are those of
``calib predict``. Nothing is written to the models folder; an upload lives in a temporary
folder that is removed before the response is sent.
"""

from __future__ import annotations

import hmac
import math
import re
import tempfile
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..errors import ArtifactError, CalibError, ConfigError, IngestError, escape_text
from .catalog import ModelCatalog, NotFound
from .page import page_html

__all__ = ["create_app", "DEFAULT_MAX_UPLOAD_BYTES", "one_line"]

#: Largest request body accepted (bytes); larger ones get 413.
DEFAULT_MAX_UPLOAD_BYTES = 64 * 1024 * 1024
_CSV = (".csv", ".txt", ".tsv")
_PARQUET = (".parquet", ".pq")
_EXCEL = (".xlsx",)
_MEDIA = {"csv": "text/csv; charset=utf-8", "parquet": "application/vnd.apache.parquet"}
_RAW_TYPES = {"text/csv": ".csv", "text/plain": ".csv", "application/vnd.apache.parquet": ".parquet",
              "application/x-parquet": ".parquet", "application/octet-stream": None}
_SAFE = re.compile(r"[^A-Za-z0-9._-]+")


def one_line(exc: BaseException | str) -> str:
    """An error message as one line with control and bidi characters escaped."""
    return escape_text(" ".join(str(exc).split()))


def _status(exc: CalibError) -> int:
    if isinstance(exc, NotFound):
        return 404
    if isinstance(exc, IngestError):
        return 422
    if isinstance(exc, ConfigError):
        return 400
    if isinstance(exc, ArtifactError):
        return 500  # the models folder holds a broken artifact: the server's problem
    return 400


def _finite(v: Any) -> Any:
    return None if isinstance(v, float) and not math.isfinite(v) else v


class _TooLarge(Exception):
    pass


class _LimitBody:
    """ASGI middleware: a body over ``limit`` bytes gets 413 before any handler reads it."""

    def __init__(self, app: Any, limit: int = DEFAULT_MAX_UPLOAD_BYTES):
        self.app, self.limit = app, int(limit)

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        try:
            declared = int(headers.get(b"content-length", b"0") or 0)
        except ValueError:
            declared = 0
        if declared > self.limit:
            return await self._refuse(send)
        seen = 0
        started = False

        async def counted() -> dict:
            nonlocal seen
            msg = await receive()
            seen += len(msg.get("body", b""))
            if seen > self.limit:
                raise _TooLarge()
            return msg

        async def tracked(msg: dict) -> None:
            nonlocal started
            started = started or msg["type"] == "http.response.start"
            await send(msg)

        try:
            await self.app(scope, counted, tracked)
        except _TooLarge:
            if not started:
                await self._refuse(send)

    async def _refuse(self, send: Any) -> None:
        import json

        body = json.dumps({"error": f"request body over the limit of {self.limit} bytes (--max-upload-mb)"}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


def _frame_from_json(body: Any) -> Any:
    import pandas as pd

    if not isinstance(body, dict) or len([k for k in ("rows", "columns") if k in body]) != 1:
        raise ConfigError('the JSON body must be {"rows": [{feature: value, ...}, ...]} or '
                          '{"columns": {feature: [values]}}')
    if "rows" in body:
        rows = body["rows"]
        if not isinstance(rows, list) or not rows or not all(isinstance(r, dict) for r in rows):
            raise ConfigError('"rows" must be a non-empty list of objects {feature: value}')
        return pd.DataFrame.from_records(rows)
    cols = body["columns"]
    if not isinstance(cols, dict) or not cols or not all(isinstance(v, list) for v in cols.values()):
        raise ConfigError('"columns" must be an object {feature: [values]}')
    if len({len(v) for v in cols.values()}) != 1 or not next(iter(cols.values())):
        raise ConfigError('"columns" must hold lists of one same, non-zero length')
    return pd.DataFrame(cols)


def _prediction_json(model: Any, frame: Any, summary: dict[str, Any] | None = None) -> dict[str, Any]:
    """The output columns of a predicted frame as JSON rows, with the model's identity."""
    cols = model.output_columns()
    lists = [[_finite(v) for v in frame[c].tolist()] for c in cols]
    rows = [dict(zip(cols, vals)) for vals in zip(*lists)]
    return {
        "model": model.name,
        "version": model.version,
        "model_id": model.model_id,
        "target": model.target,
        "unit": model.unit,
        "rows": len(rows),
        "out_of_range": int(frame["out_of_range"].sum()),
        "columns": cols,
        "predictions": rows,
        **({"adjusted": summary["adjusted"], "spot_models": summary["spot_models"]}
           if summary and "adjusted" in summary else {}),
    }


def create_app(models_dir: str | Path, *, token: str | None = None,
               max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES, threads: int | None = None,
               work_dir: str | Path | None = None) -> Any:
    """The ASGI app of ``calib serve`` (run it with uvicorn; see :mod:`calib.serve`).

    Parameters
    ----------
    models_dir : str or Path
        The models folder; read only.
    token : str, optional
        When given, every endpoint but ``/health`` and the page needs ``Authorization: Bearer
        <token>`` (or ``X-Calib-Token: <token>``); otherwise 401.
    max_upload_bytes : int, default=64 MiB
        Largest request body; larger gets 413 before it is read.
    threads : int, optional
        Threads computing each loaded model's predictions (:func:`calib.load_model`).
    work_dir : str or Path, optional
        Where uploads are spooled (a temporary folder per request, removed before the
        response); default the system's temporary folder. Never inside the models folder.

    Returns
    -------
    fastapi.FastAPI

    Raises
    ------
    ConfigError
        The models folder does not exist, ``max_upload_bytes`` < 1, an empty token, or
        ``work_dir`` inside the models folder.
    """
    from .. import __version__
    from ..predict import predict_file

    catalog = ModelCatalog(models_dir, threads=threads)
    if not isinstance(max_upload_bytes, int) or max_upload_bytes < 1:
        raise ConfigError(f"max_upload_bytes >= 1 must hold, got max_upload_bytes={max_upload_bytes!r}")
    if token is not None and not str(token).strip():
        raise ConfigError("token must be a non-empty string (or None for no token)")
    work = Path(work_dir) if work_dir is not None else Path(tempfile.gettempdir())
    if work.resolve().is_relative_to(catalog.root.resolve()):
        raise ConfigError(f"work_dir {str(work)!r} must be outside the models folder (it is read only)")

    app = FastAPI(
        title="calib serve",
        version=__version__,
        description="Predictions of calib's calibration models (ONNX Runtime; the same numbers, intervals "
                    "and flags as `calib predict`). Errors are {\"error\": \"one line\"}.",
        docs_url=None, redoc_url=None,  # no pages that load scripts from elsewhere
    )
    app.state.catalog = catalog

    def err(status: int, message: Any, headers: dict[str, str] | None = None) -> JSONResponse:
        return JSONResponse({"error": one_line(message)}, status_code=status, headers=headers)

    @app.exception_handler(CalibError)
    async def _calib_error(request: Request, exc: CalibError) -> JSONResponse:
        return err(_status(exc), exc)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return err(exc.status_code, exc.detail, getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return err(422, f"{where}: {first.get('msg', 'invalid request')}")

    @app.middleware("http")
    async def _auth(request: Request, call_next: Any) -> Any:
        if token is not None and request.url.path not in ("/", "/health", "/openapi.json"):
            given = request.headers.get("x-calib-token") or ""
            auth = request.headers.get("authorization") or ""
            if auth.lower().startswith("bearer "):
                given = auth[7:].strip()
            if not hmac.compare_digest(given.encode(), str(token).encode()):
                return err(401, "missing or wrong token: send 'Authorization: Bearer <token>'",
                           {"WWW-Authenticate": "Bearer"})
        return await call_next(request)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def page() -> HTMLResponse:
        return HTMLResponse(page_html(), headers={"Content-Security-Policy":
                                                  "default-src 'self'; script-src 'unsafe-inline'; "
                                                  "style-src 'unsafe-inline'; img-src 'self' data:; "
                                                  "frame-src 'self'"})

    @app.get("/health", summary="Liveness")
    async def health() -> dict[str, Any]:
        return {"status": "ok", "calib_version": __version__, "models": len(await run_in_threadpool(catalog.list)),
                "token_required": token is not None, "max_upload_bytes": max_upload_bytes}

    @app.get("/models", summary="Every model: names, versions, children")
    async def models() -> dict[str, Any]:
        return {"models_dir": str(catalog.root), "models": await run_in_threadpool(catalog.list)}

    @app.get("/models/{name}", summary="The latest version of a model: metadata, versions, children")
    async def model_latest(name: str) -> dict[str, Any]:
        return await run_in_threadpool(catalog.describe, name, None)

    @app.get("/models/{name}/{version}", summary="One version of a model: metadata, versions, children")
    async def model_version(name: str, version: str) -> dict[str, Any]:
        return await run_in_threadpool(catalog.describe, name, version)

    @app.get("/models/{name}/{version}/report", response_class=HTMLResponse, summary="The artifact's report.html")
    async def report(name: str, version: str) -> Response:
        data = await run_in_threadpool(catalog.file, name, version, "report.html")
        # the report is shown in a frame of the page: it gets no access to the page's origin
        return Response(data, media_type="text/html; charset=utf-8",
                        headers={"Content-Security-Policy": "sandbox allow-scripts"})

    @app.get("/models/{name}/{version}/certificate", response_class=HTMLResponse,
             summary="The artifact's printable calibration certificate (certificate.html)")
    async def certificate(name: str, version: str) -> Response:
        data = await run_in_threadpool(catalog.file, name, version, "certificate.html")
        return Response(data, media_type="text/html; charset=utf-8",
                        headers={"Content-Security-Policy": "sandbox allow-scripts"})

    @app.get("/models/{name}/{version}/card", response_class=PlainTextResponse, summary="The artifact's MODEL_CARD.md")
    async def card(name: str, version: str) -> Response:
        data = await run_in_threadpool(catalog.file, name, version, "MODEL_CARD.md")
        return Response(data, media_type="text/markdown; charset=utf-8")

    def predict_json(name: str, version: str | None, body: Any) -> dict[str, Any]:
        model = catalog.model(name, version)
        frame = model.predict_frame(_frame_from_json(body))
        return _prediction_json(model, frame)

    def predict_upload(name: str, version: str | None, data: bytes, filename: str, fmt: str | None,
                       sheet: str | None = None) -> Any:
        import pyarrow.parquet as pq

        model = catalog.model(name, version)
        suffix = Path(filename).suffix.lower()
        if suffix not in (*_CSV, *_PARQUET, *_EXCEL):
            raise ConfigError(f"upload a .csv, .parquet or .xlsx file, got {filename!r}")
        if not data:
            raise IngestError(f"{filename}: the upload is empty")
        fmt = fmt or ("parquet" if suffix in _PARQUET else "csv")
        stem = _SAFE.sub("_", Path(filename).stem)[:80] or "readings"
        with tempfile.TemporaryDirectory(prefix="calib-serve-", dir=work) as tmp:
            src = Path(tmp) / f"{stem}{suffix}"
            src.write_bytes(data)
            out = Path(tmp) / f"{stem}_predictions.{'csv' if fmt == 'csv' else 'parquet'}"
            summary = predict_file(model, src, out, sheet=sheet)
            if fmt == "json":
                frame = pq.read_table(out, columns=model.output_columns()).to_pandas()
                return _prediction_json(model, frame, summary)
            content = out.read_bytes()
        headers = {
            "Content-Disposition": f'attachment; filename="{out.name}"',
            "X-Calib-Model": model.name, "X-Calib-Version": model.version, "X-Calib-Model-Id": model.model_id,
            "X-Calib-Rows": str(summary["rows"]), "X-Calib-Out-Of-Range": str(summary["out_of_range"]),
        }
        return Response(content, media_type=_MEDIA[fmt], headers=headers)

    predict_body = {
        "requestBody": {"required": True, "content": {
            "application/json": {"schema": {"oneOf": [
                {"type": "object", "required": ["rows"], "properties": {"rows": {
                    "type": "array", "items": {"type": "object", "additionalProperties": {}}}}},
                {"type": "object", "required": ["columns"], "properties": {"columns": {
                    "type": "object", "additionalProperties": {"type": "array", "items": {}}}}},
            ]}},
            "multipart/form-data": {"schema": {"type": "object", "required": ["file"], "properties": {
                "file": {"type": "string", "format": "binary"}}}},
            "text/csv": {"schema": {"type": "string"}},
            "application/vnd.apache.parquet": {"schema": {"type": "string", "format": "binary"}},
        }},
    }

    @app.post("/models/{name}/predict", summary="Predict readings (JSON rows, or a CSV/Parquet/Excel file)",
              openapi_extra=predict_body)
    async def predict(name: str, request: Request, version: str | None = None, format: str | None = None,
                      sheet: str | None = None) -> Any:
        if format not in (None, "json", "csv", "parquet"):
            raise ConfigError(f"format must be json, csv or parquet, got format={format!r}")
        ctype = (request.headers.get("content-type") or "").split(";")[0].strip().lower()
        if ctype == "application/json":
            try:
                body = await request.json()
            except ValueError:
                raise ConfigError("the request body is not valid JSON") from None
            return await run_in_threadpool(predict_json, name, version, body)
        if ctype == "multipart/form-data":
            form = await request.form(max_files=1, max_fields=8)
            upload = form.get("file")
            if upload is None or isinstance(upload, str):
                raise ConfigError("multipart upload without a file field named 'file'")
            data = await upload.read()
            filename = upload.filename or "readings.csv"
        elif ctype in _RAW_TYPES:
            data = await request.body()
            suffix = _RAW_TYPES[ctype] or (".parquet" if data[:4] == b"PAR1" else ".csv")
            filename = request.query_params.get("filename") or f"readings{suffix}"
        else:
            return err(415, f"send application/json, multipart/form-data (field 'file'), text/csv or "
                            f"application/vnd.apache.parquet, got {ctype or 'no content type'!r}")
        return await run_in_threadpool(predict_upload, name, version, data, filename, format, sheet)

    @app.exception_handler(_TooLarge)
    async def _too_large(request: Request, exc: _TooLarge) -> JSONResponse:  # a chunked body over the limit
        return err(413, f"request body over the limit of {max_upload_bytes} bytes (--max-upload-mb)")

    app.add_middleware(_LimitBody, limit=max_upload_bytes)
    return app
