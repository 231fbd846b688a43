"""The models folder as a service sees it: names, versions, children, loaded models. Read-only.

:class:`ModelCatalog` never writes to the models folder. It lists it on every call (a few
``scandir``/``stat`` calls), so a version published while the service runs (``calib
calibrate``, ``calib adjust``: :func:`calib.artifact.store.publish` renames a finished folder
into place) is seen by the next request without a restart. Loaded models
(:func:`calib.runtime.load_model`, checksums verified) are kept in a small cache keyed by the
version folder and its modification time; a version folder is never changed once published.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

from ..artifact.children import SPOT_ADJUSTMENT_KEY, scan_children
from ..artifact.store import (
    CARD_FILE,
    REPORT_FILE,
    check_name,
    list_artifacts,
    list_versions,
    read_metadata,
)
from ..errors import ArtifactError, ConfigError
from ..runtime import CalibrationModel, load_model

#: A version's printable certificate (:mod:`calib.report.certificate`).
CERTIFICATE_FILE = "certificate.html"

__all__ = ["ModelCatalog", "NotFound"]


class NotFound(ArtifactError):
    """No model (or version) of that name in the models folder."""


class ModelCatalog:
    """Read-only view of a models folder, with a cache of loaded models.

    Parameters
    ----------
    models_dir : str or Path
        The folder of artifacts (``models/<name>/<version>/``).
    cache_size : int, default=8
        Loaded models kept (least recently used dropped).
    threads : int, optional
        Threads computing each model's predictions (:func:`calib.load_model`).
    """

    def __init__(self, models_dir: str | Path, *, cache_size: int = 8, threads: int | None = None):
        self.root = Path(models_dir)
        if not self.root.is_dir():
            raise ConfigError(f"models folder {str(self.root)!r} does not exist or is not a folder")
        self._cache: OrderedDict[tuple[str, int], CalibrationModel] = OrderedDict()
        self._meta: dict[str, dict[str, Any]] = {}
        self._size = int(cache_size)
        self._threads = threads
        self._lock = threading.Lock()

    # ---- lookup
    def version_dir(self, name: str, version: str | None = None) -> Path:
        """``models/<name>/<version>`` (latest when ``version`` is None).

        Raises
        ------
        NotFound
            An invalid name, an unknown name or version.
        """
        try:
            check_name(name)
        except ConfigError:
            raise NotFound(f"no model named {name!r} in {self.root}") from None
        versions = list_versions(self.root / name)
        if not versions:
            raise NotFound(f"no model named {name!r} in {self.root}")
        if version is None:
            return self.root / name / versions[-1]
        if version not in versions:
            raise NotFound(f"model {name!r} has no version {version!r} (versions: {', '.join(versions)})")
        return self.root / name / version

    def metadata(self, vdir: Path) -> dict[str, Any]:
        """``calibration.json`` of a version folder (parsed once; versions never change)."""
        key = str(vdir)
        meta = self._meta.get(key)
        if meta is None:
            meta = read_metadata(vdir)
            self._meta[key] = meta
        return meta

    def model(self, name: str, version: str | None = None) -> CalibrationModel:
        """The loaded model (verified at first load, then cached); its children are found live."""
        vdir = self.version_dir(name, version)
        key = (str(vdir), vdir.stat().st_mtime_ns)
        with self._lock:
            m = self._cache.get(key)
            if m is not None:
                self._cache.move_to_end(key)
                return m
        m = load_model(vdir, threads=self._threads)
        with self._lock:
            self._cache[key] = m
            while len(self._cache) > self._size:
                self._cache.popitem(last=False)
        return m

    # ---- listing
    def children(self, name: str, meta: dict[str, Any]) -> dict[str, dict[str, str]]:
        """Spot -> ``{name, version, spot_column}`` of the newest children of this version."""
        found = scan_children(self.root, name, str(meta["model_id"]), (meta.get("data") or {}).get("group"))
        out = {}
        for s, (col, p) in found.items():
            entry = {"name": p.parent.name, "version": p.name, "spot_column": col}
            try:
                entry.update(_due(self.metadata(p)))
            except ArtifactError:
                pass
            out[s] = entry
        return out

    def summary(self, name: str, versions: list[str]) -> dict[str, Any]:
        vdir = self.root / name / versions[-1]
        try:
            meta = self.metadata(vdir)
        except ArtifactError as exc:
            return {"name": name, "versions": versions, "latest": versions[-1], "error": str(exc)}
        adj = meta.get(SPOT_ADJUSTMENT_KEY)
        return {
            "name": name,
            "versions": versions,
            "latest": versions[-1],
            "target": meta["target"]["name"],
            "unit": meta["target"]["unit"],
            "features": [f["name"] for f in meta["features"]],
            "created_utc": meta.get("created_utc"),
            "parent": ({"name": adj["parent"]["name"], "version": adj["parent"]["version"],
                        "spot_id": adj.get("spot_id")} if isinstance(adj, dict) else None),
            **(_due(meta) if isinstance(adj, dict) else {}),
            "children": {} if isinstance(adj, dict) else self.children(name, meta),
        }

    def list(self) -> list[dict[str, Any]]:
        """Every model: name, versions (oldest first), latest, target, unit, features, children."""
        return [self.summary(n, v) for n, v in list_artifacts(self.root).items()]

    def describe(self, name: str, version: str | None = None) -> dict[str, Any]:
        """One version: its ``calibration.json``, the versions of its name, its children, its files."""
        vdir = self.version_dir(name, version)
        meta = self.metadata(vdir)
        return {
            "name": name,
            "version": vdir.name,
            "versions": list_versions(self.root / name),
            "model_id": meta["model_id"],
            "has_report": (vdir / REPORT_FILE).is_file(),
            "has_card": (vdir / CARD_FILE).is_file(),
            "has_certificate": (vdir / CERTIFICATE_FILE).is_file(),
            "children": {} if meta.get(SPOT_ADJUSTMENT_KEY) else self.children(name, meta),
            "metadata": meta,
        }

    def file(self, name: str, version: str, filename: str) -> bytes:
        """``report.html``, ``certificate.html`` or ``MODEL_CARD.md`` of a version."""
        if filename not in (REPORT_FILE, CARD_FILE, CERTIFICATE_FILE):  # pragma: no cover - the app asks for these only
            raise NotFound(f"no file {filename!r}")
        path = self.version_dir(name, version) / filename
        if not path.is_file():
            raise NotFound(f"model {name!r} {version} has no {filename}")
        return path.read_bytes()


def _due(meta: dict[str, Any]) -> dict[str, Any]:
    """A spot child's last check date, next due date and whether it is overdue (now, UTC)."""
    from datetime import datetime, timezone

    chk = (meta.get(SPOT_ADJUSTMENT_KEY) or {}).get("check")
    if not isinstance(chk, dict) or not chk.get("due"):
        return {}
    try:
        due = datetime.fromisoformat(str(chk["due"]).replace("Z", "+00:00"))
    except ValueError:
        return {}
    return {"checked": chk.get("date"), "due": chk["due"], "overdue": datetime.now(timezone.utc) > due}
