"""The spot children of a batch model in a models folder (``models/<name>.<spot>/<version>/``).

A child is an artifact written by ``calib adjust`` (:mod:`calib.spots`) whose
``calibration.json`` ``spot_adjustment`` names its parent's model id, its spot and the spot
column. :func:`find_children` lists the newest child of each spot; :func:`children_stamp`
is what changes when one appears, so a loaded model (:mod:`calib.runtime`) or a service
(:mod:`calib.serve`) re-scans only then. Reads ``calibration.json`` files only.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..errors import ArtifactError
from .store import list_versions, read_metadata, resolve_artifact

__all__ = ["SPOT_ADJUSTMENT_KEY", "children_stamp", "scan_children", "find_children"]

#: ``calibration.json`` key of a spot child (what adjusted it, for which parent and column).
SPOT_ADJUSTMENT_KEY = "spot_adjustment"


def children_stamp(vdir: Path, name: str) -> Any:
    """What changes when a child of ``name`` appears or gets a new version (mtimes of the folders)."""
    root = vdir.parent.parent
    try:
        entries = [(e.name, e.stat().st_mtime_ns) for e in os.scandir(root)
                   if e.name.startswith(f"{name}.") and e.is_dir()]
        return root.stat().st_mtime_ns, tuple(sorted(entries))
    except OSError:
        return None


def scan_children(root: Path, pname: str, pid: str, group: Any) -> dict[str, tuple[str, Path]]:
    """Spot -> (spot column, newest version folder) of the children of model id ``pid`` named
    ``pname.<spot>`` in ``root``; ``group`` is the column when a child names none."""
    if not root.is_dir():
        return {}
    found: dict[str, tuple[tuple[int, int, int], str, Path]] = {}
    prefix = f"{pname}."
    for entry in sorted(root.iterdir()):
        if not (entry.name.startswith(prefix) and entry.is_dir()):
            continue
        for version in reversed(list_versions(entry)):
            try:
                cmeta = read_metadata(entry / version)
            except ArtifactError:
                continue
            a = cmeta.get(SPOT_ADJUSTMENT_KEY)
            if not isinstance(a, dict) or (a.get("parent") or {}).get("model_id") != pid:
                continue
            key = tuple(int(v) for v in version.split("."))
            spot = str(a.get("spot_id"))
            col = str(a.get("spot_column") or group or "")
            if spot not in found or key > found[spot][0]:
                found[spot] = (key, col, entry / version)
    return {s: (c, p) for s, (_, c, p) in sorted(found.items())}


def find_children(parent: str | Path, models_dir: str | Path | None = None) -> dict[str, tuple[str, Path]]:
    """The spot children of a batch model: spot id -> (spot column, newest version folder).

    Only children whose metadata names this parent's model id count (a child of another
    version of the batch model is ignored). Reads ``calibration.json`` files only; a child
    that is unreadable is skipped here and refused when it would be used.

    Parameters
    ----------
    parent : str or Path
        The batch model's version folder (or its name folder -> latest version).
    models_dir : str or Path, optional
        Default: the parent's models folder.
    """
    vdir = resolve_artifact(parent)
    meta = read_metadata(vdir)
    root = Path(models_dir) if models_dir is not None else Path(vdir).parent.parent
    return scan_children(root, str(meta.get("name", vdir.parent.name)), str(meta["model_id"]),
                          (meta.get("data") or {}).get("group"))
