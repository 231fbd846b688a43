"""Resource limits on what a user's input may ask for, each with a one-line refusal.

A hostile or careless input must never hold calib for minutes or exhaust memory; it is
refused at the boundary with a message naming the size and the limit. The limits are
generous for laboratory data and can be raised through environment variables:

=====================  ==========================  ==========================================
limit                  default                     environment variable
=====================  ==========================  ==========================================
input file size        1 GiB (after decompression) ``CALIB_MAX_INPUT_BYTES``
columns of a table     10,000                      ``CALIB_MAX_COLUMNS``
wait for a named pipe  10 s to its first byte      ``CALIB_PIPE_WAIT_S``
prediction threads     4 x CPU cores, at most 256  (none: more threads than that never help)
=====================  ==========================  ==========================================

The input size limit is on what is read *into memory*: a file that ``calib predict`` streams
(:mod:`calib.chunks`: a plain CSV or Parquet file of at least ``CALIB_STREAM_MIN_BYTES``, default
16 MiB) is read in chunks of a few MiB, its memory flat in its size, and may be larger.

This module is a lowest layer: it imports only :mod:`calib.errors`.
"""

from __future__ import annotations

import os
import threading
from numbers import Integral
from typing import Any

from .errors import ConfigError

__all__ = ["DEFAULT_MAX_INPUT_BYTES", "DEFAULT_MAX_COLUMNS", "DEFAULT_STREAM_MIN_BYTES", "max_input_bytes",
           "max_columns", "stream_min_bytes", "max_threads", "check_threads", "default_workers", "thread_pool",
           "human_bytes", "DEFAULT_PIPE_WAIT_S", "pipe_wait_s"]

#: Largest input file read into memory (bytes, after decompression), unless ``$CALIB_MAX_INPUT_BYTES``;
#: a file streamed by ``calib predict`` is not read into memory and may be larger.
DEFAULT_MAX_INPUT_BYTES = 1 << 30
#: Most columns a readings table may have, unless ``$CALIB_MAX_COLUMNS``.
DEFAULT_MAX_COLUMNS = 10_000
#: Smallest plain CSV/Parquet file ``calib predict`` streams, unless ``$CALIB_STREAM_MIN_BYTES``: the
#: whole-file path holds ~18x a file in memory, so below 16 MiB it stays under ~300 MB, the streamed
#: path's own ceiling.
DEFAULT_STREAM_MIN_BYTES = 16 << 20
#: Longest wait (seconds) for the first byte of a named pipe given as input, unless ``$CALIB_PIPE_WAIT_S``:
#: a pipe nothing writes to would otherwise hold calib forever.
DEFAULT_PIPE_WAIT_S = 10


def _env_int(var: str, default: int, low: int = 1) -> int:
    raw = os.environ.get(var, "").strip()
    if not raw:
        return default
    try:
        value = int(raw)
    except ValueError:
        what = "a positive integer" if low == 1 else f"an integer >= {low}"
        raise ConfigError(f"{var} must be {what}, got {var}={raw!r}") from None
    if value < low:
        raise ConfigError(f"{var} >= {low} must hold, got {var}={value}")
    return value


def pipe_wait_s() -> int:
    """The longest wait for a named pipe's first byte (s): ``$CALIB_PIPE_WAIT_S`` or 10."""
    return _env_int("CALIB_PIPE_WAIT_S", DEFAULT_PIPE_WAIT_S)


def max_input_bytes() -> int:
    """The largest input read into memory (bytes): ``$CALIB_MAX_INPUT_BYTES`` or 1 GiB (not a limit on a
    streamed file, :mod:`calib.chunks`)."""
    return _env_int("CALIB_MAX_INPUT_BYTES", DEFAULT_MAX_INPUT_BYTES)


def stream_min_bytes() -> int:
    """The smallest file ``calib predict`` streams (bytes): ``$CALIB_STREAM_MIN_BYTES`` or 16 MiB (0: every
    file that can be streamed is; a huge value: none)."""
    return _env_int("CALIB_STREAM_MIN_BYTES", DEFAULT_STREAM_MIN_BYTES, low=0)


def max_columns() -> int:
    """The most columns a readings table may have: ``$CALIB_MAX_COLUMNS`` or 10,000."""
    return _env_int("CALIB_MAX_COLUMNS", DEFAULT_MAX_COLUMNS)


def max_threads() -> int:
    """The most prediction threads accepted (chunks at once, one ONNX Runtime thread each): 4 per CPU
    core, at most 256."""
    return min(256, 4 * (os.cpu_count() or 1))


def default_workers() -> int:
    """Threads :func:`calib.load_model` computes with by default: the CPUs this process may use, at most 8."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # not Linux
        n = os.cpu_count() or 1
    return max(1, min(int(n), 8))


_POOLS: dict[int, Any] = {}
_POOLS_LOCK = threading.Lock()


def thread_pool(workers: int) -> Any:
    """The process's pool of ``workers`` threads (one per size, made on first use, shared by every
    caller: :meth:`calib.runtime.CalibrationModel.graph_outputs` runs its chunks on it, and
    concurrent callers queue their chunks behind each other)."""
    from concurrent.futures import ThreadPoolExecutor

    with _POOLS_LOCK:
        pool = _POOLS.get(workers)
        if pool is None:
            pool = _POOLS[workers] = ThreadPoolExecutor(workers, thread_name_prefix="calib-onnx")
        return pool


def check_threads(threads: int | None) -> int | None:
    """Return ``threads`` if it is None or an integer within 1..:func:`max_threads` (inclusive).

    Raises
    ------
    ConfigError
        Not an integer, below 1, or above :func:`max_threads` (``--threads 100000`` would
        make ONNX Runtime start 100,000 threads and never answer).
    """
    if threads is None:
        return None
    hi = max_threads()
    if isinstance(threads, bool) or not isinstance(threads, Integral) or not 1 <= threads <= hi:
        raise ConfigError(f"threads within 1..{hi} (4 per CPU core, at most 256) must hold, "
                          f"got threads={threads!r}")
    return int(threads)


def human_bytes(n: int) -> str:
    """``1536`` -> ``'1.5 KiB'``: a size for messages."""
    size = float(n)
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{int(size)} bytes" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} GiB"  # pragma: no cover
