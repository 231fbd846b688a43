"""Versioned calibration artifacts: the store, export, ONNX assembly and the model card.

- :mod:`calib.artifact.store`: layout, semantic versions, ``SHA256SUMS``, verification, and
  :func:`~calib.artifact.store.publish` (temporary folder -> version, atomically), the one
  way an artifact version appears.
- :mod:`calib.artifact.export`: a trained model + metadata -> a new version.
- :mod:`calib.artifact.onnx`, :mod:`calib.artifact.physics_graph`: the one ONNX graph.
- :mod:`calib.artifact.card`: ``MODEL_CARD.md``.

Loading an artifact for inference is :func:`calib.load_model` (:mod:`calib.runtime`).
Importing this package never imports TensorFlow; only :func:`export_artifact` does.
"""

from __future__ import annotations

from .store import (
    INPUT_NAME,
    METADATA_FILE,
    SCHEMA_VERSION,
    SUMS_FILE,
    Artifact,
    list_artifacts,
    list_versions,
    publish,
    read_metadata,
    resolve_artifact,
    verify_artifact,
)

__all__ = [
    "SCHEMA_VERSION",
    "INPUT_NAME",
    "METADATA_FILE",
    "SUMS_FILE",
    "Artifact",
    "export_artifact",
    "describe_dataset",
    "publish",
    "verify_artifact",
    "read_metadata",
    "resolve_artifact",
    "list_versions",
    "list_artifacts",
]


def __getattr__(name: str):
    # export pulls in onnx helpers; keep `import calib.artifact` light
    if name in ("export_artifact", "describe_dataset"):
        from . import export

        return getattr(export, name)
    raise AttributeError(f"module 'calib.artifact' has no attribute {name!r}")
