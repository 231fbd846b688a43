"""``calib serve``: the HTTP service and web page over a models folder (:mod:`calib.serve`)."""

from __future__ import annotations

from pathlib import Path

import click

from ..errors import ConfigError
from .format import format_serving
from .options import PATH


@click.command()
@click.argument("models_dir", required=False, default=Path("models"), type=PATH)
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind; 0.0.0.0 opens the service to the network (use --token then).")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535), help="TCP port.")
@click.option("--token", envvar="CALIB_SERVE_TOKEN", default=None,
              help="Require 'Authorization: Bearer TOKEN' on every endpoint but /health and the page "
                   "(or set CALIB_SERVE_TOKEN).")
@click.option("--max-upload-mb", default=64.0, show_default=True, type=click.FloatRange(min=0, min_open=True),
              help="Largest request body (readings file or JSON), MiB; larger gets 413.")
@click.option("--threads", default=None, type=click.IntRange(min=1),
              help="Threads computing each model's predictions (chunks at once; default: one per CPU, at most 8).")
def serve(models_dir: Path, host: str, port: int, token: str | None, max_upload_mb: float,
          threads: int | None) -> None:
    """Serve the models of MODELS_DIR over HTTP, with a web page (default: models/).

    \b
    GET  /                          the page: models, versions, reports, drop a file -> predictions
    GET  /health                    liveness
    GET  /models                    names, versions, spot children
    GET  /models/NAME[/VERSION]     metadata (calibration.json), report at .../VERSION/report
    POST /models/NAME/predict       JSON rows, or a CSV/Parquet/Excel file -> predictions
    GET  /openapi.json              the API schema
    The folder is only read; a version published while serving appears without restart.
    Predictions equal calib predict's (same runtime path). Stop with Ctrl+C.
    Example:
      calib serve models/ --port 8000
      curl -F file=@readings.csv http://127.0.0.1:8000/models/sim-ptp-batch/predict -o out.csv
    """
    import uvicorn

    from ..serve import create_app

    if not models_dir.is_dir():
        raise ConfigError(f"models folder {str(models_dir)!r} does not exist or is not a folder")
    app = create_app(models_dir, token=token, max_upload_bytes=int(max_upload_mb * 1024 * 1024), threads=threads)
    click.echo(format_serving(models_dir, host, port, token is not None), err=True)
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
