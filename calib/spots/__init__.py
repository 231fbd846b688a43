"""Sensor spots: spot normalisation, two-point adjustment, and spot child artifacts.

- :mod:`calib.spots.normalise`: a batch network trained on phases mapped per spot through
  its own two-point check (``[adjust]`` table of the config).
- :mod:`calib.spots.reference`: the two-point reference file of ``calib adjust``.
- :mod:`calib.spots.adjust`: per-spot adjustment of a batch model (``linear``,
  ``phase_scale``, ``spot_map``).
- :mod:`calib.spots.child`: the adjusted model of one spot as an artifact of its own.

Routing readings to their spot's child at inference time is part of the one inference
path, :mod:`calib.runtime`.
"""

from __future__ import annotations

__all__ = [
    "adjust_spots",
    "compute_adjustments",
    "write_spot_artifact",
    "SpotAdjustment",
    "AdjustResult",
    "METHODS",
]


def __getattr__(name: str):
    # lazy: keep `import calib.spots.normalise` (used by the config) light
    if name in ("adjust_spots", "write_spot_artifact"):
        from . import child

        return getattr(child, name)
    if name in ("compute_adjustments", "SpotAdjustment", "AdjustResult", "METHODS"):
        from . import adjust

        return getattr(adjust, name)
    raise AttributeError(f"module 'calib.spots' has no attribute {name!r}")
