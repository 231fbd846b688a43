"""What a report is built from: an artifact folder, a sweep storage or ``leaderboard.json``.

:func:`build_report` finds out what ``source`` is, reads it and renders it
(:mod:`calib.report.page`); :func:`write_report` writes the result atomically without ever
writing into an artifact or over the source; :func:`artifact_report` is the ``report`` hook of
:func:`calib.artifact.export_artifact`.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Mapping, Sequence

from ..artifact.store import REPORT_FILE
from ..errors import ArtifactError, CalibError, ConfigError
from . import page

__all__ = ["build_report", "write_report", "artifact_report", "artifact_certificate"]

_PRED_FILE = "test_predictions.csv"
_CV_FILE = "cv_predictions.csv"


def _failed(trials: Sequence[Any]) -> list[str]:
    out = []
    for t in trials:
        state = t.get("state") if isinstance(t, Mapping) else getattr(t, "state", None)
        reason = t.get("reason") if isinstance(t, Mapping) else getattr(t, "reason", None)
        number = t.get("number") if isinstance(t, Mapping) else getattr(t, "number", None)
        if state == "FAIL":
            out.append(f"#{number} {str(reason or '').splitlines()[0][:80] if reason else 'failed'}")
    return out


def _sweep_from_storage(spec: str, study_name: str | None) -> tuple[dict[str, Any], str]:
    """Sweep view (leaderboard, space, ...) of a journal file or database URL, and its unit."""
    from .. import search as S

    storage = S.storage_spec(spec)
    with S.quiet_optuna():
        if study_name is None:
            import optuna

            names = optuna.get_all_study_names(storage=S.open_storage(storage))
            if not names:
                raise ConfigError(f"storage {S.mask_url(storage)} holds no study")
            study_name = "calib" if "calib" in names or len(names) != 1 else names[0]
            if study_name not in names:
                raise ConfigError(f"storage {S.mask_url(storage)} holds several studies ({', '.join(sorted(names))}); "
                                  "name one with study_name")
        result = S.load_result(storage, study_name)
        space = dict(S.open_study(storage, study_name).user_attrs.get("space") or {})
    view = {"strategy": result.strategy, "study_name": result.study_name, "storage": result.storage,
            "trials": len(result.trials), "space": space, "leaderboard": S.leaderboard(result),
            "failed": _failed(result.trials)}
    return view, result.unit


def _sweep_from_json(path: Path, study_name: str | None) -> tuple[dict[str, Any], str]:
    """Sweep view of ``leaderboard.json``; the space comes from the journal beside it when it exists."""
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ConfigError(f"{path}: not a readable leaderboard.json ({exc})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("leaderboard"), list):
        raise ConfigError(f"{path}: expected a JSON object with a 'leaderboard' list (written by calib sweep)")
    space = doc.get("space") if isinstance(doc.get("space"), Mapping) else None
    storage = doc.get("storage")
    if space is None and isinstance(storage, str) and "://" not in storage and Path(storage).is_file():
        try:
            space = _sweep_from_storage(storage, study_name or doc.get("study_name"))[0]["space"]
        except CalibError:
            space = None
    trials = doc.get("trials") if isinstance(doc.get("trials"), list) else []
    view = {"strategy": doc.get("strategy"), "study_name": doc.get("study_name"), "storage": storage,
            "trials": len(trials) if trials else len(doc["leaderboard"]), "space": space or {},
            "leaderboard": doc["leaderboard"], "failed": _failed(trials)}
    return view, str(doc.get("unit") or "")


def _classify(source: str | os.PathLike[str]) -> tuple[str, Any]:
    """``("artifact", version folder)``, ``("storage", spec)`` or ``("json", leaderboard.json)``."""
    from ..artifact.store import METADATA_FILE, REQUIRED_FILES, SUMS_FILE, list_versions, resolve_artifact

    if not isinstance(source, (str, os.PathLike)) or not os.fspath(source).strip():
        raise ConfigError(f"source must be an artifact folder, a sweep journal, a database URL or a folder "
                          f"holding leaderboard.json, got source={source!r}")
    s = os.fspath(source).strip()
    if "://" in s:
        return "storage", s
    p = Path(s)
    if not p.exists():
        raise ConfigError(f"source {s} does not exist (give an artifact folder, a sweep journal, a database URL "
                          "or a folder holding leaderboard.json)")
    if p.is_file():
        if p.name in (*REQUIRED_FILES, SUMS_FILE, _PRED_FILE, REPORT_FILE) and (
                (p.parent / SUMS_FILE).exists() or (p.parent / METADATA_FILE).exists()):
            return "artifact", resolve_artifact(p.parent)
        if p.name.endswith(".json"):
            return "json", p
        return "storage", str(p)
    if not p.is_dir():
        raise ConfigError(f"source {s} is neither a file nor a folder (a device, pipe or socket); give an artifact "
                          "folder, a sweep journal, a database URL or a folder holding leaderboard.json")
    if (p / SUMS_FILE).exists() or (p / METADATA_FILE).exists() or list_versions(p):
        return "artifact", resolve_artifact(p)
    if (p / "leaderboard.json").is_file():
        return "json", p / "leaderboard.json"
    journals = sorted(p.glob("*.journal"))
    if len(journals) == 1:
        return "storage", str(journals[0])
    raise ConfigError(f"source {s} is a folder without an artifact, a leaderboard.json or a single *.journal")


def build_report(source: str | os.PathLike[str], *, study_name: str | None = None) -> str:
    """The HTML report of an artifact or of a sweep record.

    Parameters
    ----------
    source : str or path
        An artifact version folder ``models/<name>/<version>``, a name folder
        ``models/<name>`` (its latest version), a sweep journal file, a database URL
        (``sqlite:///runs/sweep.db``) or a folder holding ``leaderboard.json`` (or one
        ``*.journal``).
    study_name : str, optional
        Study inside a sweep storage; default ``calib``, or the only study there.

    Returns
    -------
    str
        A complete, self-contained HTML document: every section of :data:`SECTION_IDS` for an
        artifact, the sections of :data:`SWEEP_SECTION_IDS` for a sweep record.

    Raises
    ------
    IntegrityError
        An artifact file does not match ``SHA256SUMS`` (a report of a modified artifact is refused).
    ArtifactError
        The artifact is malformed, or its ``test_predictions.csv`` cannot be read.
    ConfigError
        ``source`` does not exist or is no artifact or sweep record; the storage holds no such study.
    """
    kind, where = _classify(source)
    if kind == "artifact":
        from ..artifact.store import read_metadata, verify_artifact

        verify_artifact(where)
        meta = read_metadata(where)
        frames = []
        for name in (_PRED_FILE, _CV_FILE):
            pred = Path(where) / name
            frame = None
            if pred.is_file():
                import pandas as pd

                try:
                    frame = pd.read_csv(pred)
                except (OSError, ValueError, UnicodeDecodeError) as exc:
                    raise ArtifactError(f"{pred}: cannot read the predictions ({exc})") from None
            frames.append(frame)
        return page.render_report(meta, frames[0], frames[1])
    if kind == "json":
        view, unit = _sweep_from_json(where, study_name)
    else:
        view, unit = _sweep_from_storage(where, study_name)
    return page.render_sweep(view, unit)


def _source_files(source: str | os.PathLike[str]) -> tuple[list[Path], Path | None]:
    """Files a report is read from, and the artifact folder (must not be written into)."""
    try:
        kind, where = _classify(source)
    except CalibError:
        return [], None
    if kind == "artifact":
        return [], Path(where)
    if kind == "json":
        return [Path(where)], None
    spec = str(where)
    if "://" in spec:
        tail = spec.split("://", 1)[1]
        return ([Path(tail[1:])] if spec.lower().startswith("sqlite") and tail.startswith("/") else []), None
    return [Path(spec)], None


def write_report(source: str | os.PathLike[str], output: str | os.PathLike[str], *,
                 study_name: str | None = None, force: bool = False) -> Path:
    """Write the report of ``source`` to ``output`` atomically.

    Parameters
    ----------
    source : str or path
        As for :func:`build_report`.
    output : str or path
        The HTML file to write; its folder is created if missing. An existing file is
        replaced, with ``force`` only, in one step (a crash leaves the old file or the new
        one, never half of one). See :func:`calib.fsutil.check_output_path`.
    study_name : str, optional
        As for :func:`build_report`.
    force : bool, default=False
        Replace an existing ``output`` (``--force``).

    Returns
    -------
    Path
        ``output``.

    Raises
    ------
    ConfigError
        ``output`` exists (without ``force``), is a link, device or pipe, is the source
        itself, lies inside an artifact folder (it would break the
        artifact's ``SHA256SUMS``) or is a folder; and as :func:`build_report`.
    CalibError
        The file cannot be written.
    """
    from ..fsutil import atomic_write, check_output_path

    out = Path(output)
    if out.is_dir():
        raise ConfigError(f"output must be a file path, got output={str(out)!r} (a folder)")
    files, art = _source_files(source)
    target = out.resolve()
    for f in files:
        if f.resolve() == target:
            raise ConfigError(f"output must not overwrite the source, got output={str(out)!r}")
    parent = target.parent
    if (art is not None and (art.resolve() == parent or art.resolve() in parent.parents)) or (
            (parent / "SHA256SUMS").is_file()):
        raise ConfigError(f"output must not be inside an artifact folder (it would break its SHA256SUMS), "
                          f"got output={str(out)!r}")
    check_output_path(out, force=force)
    text = build_report(source, study_name=study_name)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise CalibError(f"{out}: cannot create folder {out.parent} ({exc.strerror or exc})") from None
    def write(p: Path) -> None:
        p.write_text(text, encoding="utf-8")
        os.chmod(p, 0o644)  # a report is for sharing; the temporary file starts private (0600)

    return atomic_write(out, write, overwrite=force)


def artifact_report(meta: dict[str, Any], extras: Mapping[str, bytes]) -> bytes:
    """``report.html`` of an artifact being exported (the ``report`` hook of
    :func:`calib.artifact.export_artifact`): :func:`calib.report.page.render_report` of the
    final metadata and of ``extras["test_predictions.csv"]`` when given; a short page saying
    why if the report cannot be drawn (the report is informative only: it never sinks the
    export).

    ``render_report`` is looked up on :mod:`calib.report.page` at each call, so patching
    ``calib.report.page.render_report`` reaches this hook, :func:`build_report` and
    :func:`write_report`."""
    try:
        import io

        import pandas as pd

        frames = [pd.read_csv(io.BytesIO(extras[n])) if n in extras else None for n in (_PRED_FILE, _CV_FILE)]
        return page.render_report(meta, frames[0], frames[1]).encode("utf-8")
    except Exception as exc:  # the report is informative only: it never sinks the export
        import html

        why = html.escape(f"{type(exc).__name__}: {exc}"[:2000])
        name = html.escape(f"{meta.get('name')} {meta.get('version')}")
        return (
            '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>Calibration report: {name}</title></head><body>"
            f"<h1>Calibration report: {name}</h1><p>The report could not be drawn: {why}</p>"
            f"<p>The metrics are in calibration.json; run <code>calib report</code> on this artifact "
            "to try again.</p></body></html>\n"
        ).encode("utf-8")


def artifact_certificate(meta: dict[str, Any], extras: Mapping[str, bytes]) -> bytes:
    """``certificate.html`` of an artifact being exported (the ``certificate`` hook of
    :func:`calib.artifact.export_artifact`, :mod:`calib.report.certificate`)."""
    import io

    import pandas as pd

    from .certificate import render_certificate

    frame = pd.read_csv(io.BytesIO(extras[_CV_FILE])) if _CV_FILE in extras else None
    return render_certificate(meta, frame).encode("utf-8")
