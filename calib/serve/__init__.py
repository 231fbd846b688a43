"""``calib serve``: a local HTTP service and web page over a models folder.

:func:`create_app` builds the ASGI app (FastAPI; :mod:`calib.serve.app` lists the
endpoints); ``calib serve MODELS_DIR`` runs it under uvicorn, bound to 127.0.0.1 by default.
The models folder is only read (:class:`~calib.serve.catalog.ModelCatalog`); a version
published while the service runs is served from the next request on. Predictions take the
one inference path (:mod:`calib.runtime`), so they equal ``calib predict``'s. No TensorFlow
is imported: the runtime install (``pip install calib``) serves.

Examples
--------
>>> from calib.serve import create_app                              # doctest: +SKIP
>>> import uvicorn; uvicorn.run(create_app("models"), host="127.0.0.1", port=8000)  # doctest: +SKIP
"""

from __future__ import annotations

from .app import DEFAULT_MAX_UPLOAD_BYTES, create_app
from .catalog import ModelCatalog

__all__ = ["create_app", "ModelCatalog", "DEFAULT_MAX_UPLOAD_BYTES"]
