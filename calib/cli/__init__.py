"""The ``calib`` command line: a thin layer over the library.

Options are parsed here, the dataclasses built, the library called and the result
printed. A :class:`~calib.errors.CalibError` becomes ``Error: ...`` on stderr and
exit status 1, never a traceback. Heavy imports (pandas, TensorFlow) happen inside
the commands that need them, so ``calib --help`` starts fast.

Modules
-------
- :mod:`calib.cli.options`: options shared by several commands, options -> ``Config``.
- :mod:`calib.cli.data`: ``ingest``, ``simulate``.
- :mod:`calib.cli.train`: ``validate``, ``sweep``, ``calibrate``.
- :mod:`calib.cli.artifacts`: ``predict``, ``inspect``, ``models``, ``adjust``, ``report``.
- :mod:`calib.cli.serve`: ``serve`` (the HTTP service and page, :mod:`calib.serve`).
- :mod:`calib.cli.format`: every text printed on stdout, and the ``--json`` form.
- :mod:`calib.cli.progress`: stderr: progress bars, stage messages, log lines; -v/-q.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any

import click

from ..errors import CalibError, missing_train_install
from .artifacts import adjust, inspect, models, predict, report
from .data import ingest, simulate
from .format import format_error
from .progress import show_log
from .serve import serve
from .train import calibrate, sweep, validate

__all__ = ["cli", "main"]

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ start-up chatter


class CalibGroup(click.Group):
    """Maps every CalibError to a one-line ``Error: ...`` once, for all commands."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except CalibError as exc:
            raise click.ClickException(format_error(exc)) from None  # always one line
        except ImportError as exc:  # a training command on the runtime install (no calib[train])
            err = missing_train_install(exc)
            if err is None:
                raise
            raise click.ClickException(format_error(err)) from None
        except KeyboardInterrupt:
            click.echo("Interrupted.", err=True)
            sys.exit(130)


@click.group(cls=CalibGroup, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(package_name="calib")
@click.option("-v", "--verbose", count=True, help="More detail on stderr (-v: per-epoch losses).")
@click.option("-q", "--quiet", is_flag=True, help="No progress or stage messages on stderr (errors only).")
@click.pass_context
def cli(ctx: click.Context, verbose: int, quiet: bool) -> None:
    """calib: neural-network calibration models for optical oxygen sensors.

    \b
    Pipeline: ingest -> validate (k-fold) -> sweep -> calibrate (export) -> predict.
    Progress and stage messages go to stderr (a bar on a terminal, plain lines otherwise);
    results go to stdout, as JSON with --json. Options -v/-q come before the command.
    Example:
      calib calibrate                      # the main job on the bundled data
      calib -q predict models/sim-ptp-batch readings.csv -o out.csv
    """
    ctx.obj = {"verbosity": -1 if quiet else verbose}
    if not quiet and verbose > 0:
        ctx.call_on_close(show_log(logging.INFO))


for _command in (ingest, simulate, validate, sweep, calibrate, predict, inspect, models, report, adjust, serve):
    cli.add_command(_command)


def main() -> None:
    """Console-script entry point.

    A command that ran TensorFlow (``calibrate``, ``sweep``, ``validate``, ``adjust``) ends
    through :func:`_exit_quickly`: Python's atexit handlers run, the output is flushed, and the
    process ends without tearing down TensorFlow's modules one by one (1.2-1.3 s on 2 cores,
    for nothing: the process is ending).
    """
    try:
        cli(prog_name="calib")
    except SystemExit as exc:  # click ends every command so (standalone mode)
        if "tensorflow" in sys.modules:
            _exit_quickly(exc.code)
        raise


def _exit_quickly(code: Any) -> None:
    """End the process as ``sys.exit(code)`` would, after the atexit handlers, without the
    interpreter's module teardown."""
    import atexit

    if code is not None and not isinstance(code, int):  # as sys.exit: the message on stderr, status 1
        print(code, file=sys.stderr)
        code = 1
    atexit._run_exitfuncs()  # logging's flush, weakref finalizers (temporary folders), loky's clean-up
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed pipe: nothing more can be written anyway
            pass
    os._exit(code or 0)
