"""Self-contained HTML reports of a calibration artifact or of a hyperparameter sweep.

artifact (``calibration.json`` + ``test_predictions.csv``) or sweep record -> one HTML file.

The file holds everything it shows: figures are PNG images drawn with matplotlib's Agg
canvas and embedded as base64 ``data:`` URIs, the style sheet is inline, and there is no
script, web font or link to anything outside the file, so it opens the same offline, in a
mail attachment or in an archive years later. Every text taken from the metadata is
HTML-escaped.

An artifact report has the sections (``<section id=...>``, in this order)
``metadata`` (ids, versions, data checksum, inputs with units and calibrated ranges),
``cv-metrics`` (k-fold metrics of the network beside the physics fit, and both on the
test part), ``diagnosis`` (bias / variance / dev-overfitting against the noise floor),
``learning-curves`` (per fold, training vs dev loss, log scale, kept epoch marked),
``parity`` and ``residuals`` (test part, coloured by group, fold-model spread as error
bars), ``leaderboard`` and ``hyperparameters`` (the sweep: score vs each searched
parameter, log x-axis for log ranges, strip plots for choices). A sweep record alone gives
only the last two.

Importing this package imports neither matplotlib nor TensorFlow. Its modules, top down:

- :mod:`calib.report.sources`: what a report is built from (artifact folder, sweep storage,
  ``leaderboard.json``), :func:`build_report`, :func:`write_report` and the export hook
  :func:`artifact_report`;
- :mod:`calib.report.page`: the sections, style sheet and layout; :func:`render_report`;
- :mod:`calib.report.markup`: escaping, number cells, tables, embedded PNG figures;
- :mod:`calib.report.figures`: the matplotlib figures, each on its own Agg canvas (never pyplot);
- :mod:`calib.report.metadata`: tolerant reading of ``calibration.json`` and sweep views.

Examples
--------
>>> write_report("models/foil-A", Path("report.html"))         # doctest: +SKIP
>>> write_report("runs/foil-A/sweep-1d41.journal", Path("sweep.html"))  # doctest: +SKIP
"""

from __future__ import annotations

from .figures import report_figures, warm_up
from .page import LEADERBOARD_ROWS, SECTION_IDS, SWEEP_SECTION_IDS, render_report
from .certificate import CERTIFICATE_FILE, render_certificate
from .sources import artifact_certificate, artifact_report, build_report, write_report

__all__ = [
    "SECTION_IDS",
    "SWEEP_SECTION_IDS",
    "LEADERBOARD_ROWS",
    "build_report",
    "write_report",
    "render_report",
    "artifact_report",
    "report_figures",
    "warm_up",
    "artifact_certificate",
    "render_certificate",
    "CERTIFICATE_FILE",
]
