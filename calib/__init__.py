"""calib: neural-network calibration models for optical oxygen sensors.

The public Python API, kept small and stable for lab scripts. Importing ``calib``
does not import TensorFlow.
"""

from __future__ import annotations

from .config import Config, DataSpec, SplitSpec, ValidateSpec, load_config
from .errors import (
    ArtifactError,
    CalibError,
    ConfigError,
    IncompatibleArtifactError,
    IngestError,
    IntegrityError,
    TrainingError,
    UnitError,
)

__version__ = "0.1.0"

__all__ = [
    "__version__",
    "Config",
    "DataSpec",
    "SplitSpec",
    "ValidateSpec",
    "load_config",
    "load_dataset",
    "load_model",
    "split_dataset",
    "prepare",
    "CalibError",
    "IngestError",
    "ConfigError",
    "UnitError",
    "TrainingError",
    "ArtifactError",
    "IncompatibleArtifactError",
    "IntegrityError",
]


def __getattr__(name: str):
    # lazy: pandas-heavy stages load on first use
    if name in ("load_dataset", "split_dataset", "prepare"):
        from . import ingest

        return getattr(ingest, name)
    if name == "load_model":
        from .runtime import load_model

        return load_model
    raise AttributeError(f"module 'calib' has no attribute {name!r}")
