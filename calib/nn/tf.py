"""Import TensorFlow lazily and quietly.

TensorFlow's C++ runtime writes start-up lines to the process's stderr (file descriptor 2)
before ``TF_CPP_MIN_LOG_LEVEL`` is read ("oneDNN custom operations are on", "All log messages
before absl::InitializeLog()"). Users of the CLI should see calib's messages only, so the
first import and the first op run with fd 2 pointed at /dev/null. An import failure still
raises as usual, after fd 2 is restored.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
import threading
from types import ModuleType
from typing import Any, Callable, Iterator

__all__ = ["tensorflow", "keras", "quiet_stderr", "import_in_background", "flat_caller", "without_optional_imports"]

_LOCK = threading.RLock()
_READY = False


@contextlib.contextmanager
def quiet_stderr() -> Iterator[None]:
    """Point file descriptor 2 at /dev/null for the duration (C++ log lines included)."""
    try:
        sys.stderr.flush()
        saved = os.dup(2)
    except (OSError, ValueError):  # no real fd 2 (embedded interpreters)
        yield
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


#: Packages Keras imports with TensorFlow only to offer optional helpers calib does not use (its
#: scikit-learn wrappers, a pandas data adapter, a matplotlib image gallery), each behind a
#: ``try: import ... except ImportError``: 2 of the 4.5-6.5 s of a worker's import on 2 cores.
OPTIONAL_FOR_KERAS = ("sklearn", "pandas", "matplotlib")


class _SkipInThread:
    """A meta path finder that makes ``import name`` fail in one thread, for the names given.

    Other threads import those packages as usual meanwhile; a package already imported is not
    affected (the import system finds it in ``sys.modules`` before asking any finder).
    """

    def __init__(self, names: tuple[str, ...], thread: int) -> None:
        self.names, self.thread = frozenset(names), thread

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> None:
        if threading.get_ident() == self.thread and fullname.partition(".")[0] in self.names:
            raise ModuleNotFoundError(f"{fullname} not imported with TensorFlow (calib)", name=fullname)
        return None


@contextlib.contextmanager
def without_optional_imports(names: tuple[str, ...] = OPTIONAL_FOR_KERAS) -> Iterator[None]:
    """In the calling thread, make ``import name`` fail for the packages ``names``, for the duration.

    Around the TensorFlow import: Keras then skips its optional helpers for those packages.
    Other threads are not affected, and afterwards the packages import as usual (the process
    may still use them); Keras's helpers for them stay off.
    """
    finder = _SkipInThread(names, threading.get_ident())
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        with contextlib.suppress(ValueError):
            sys.meta_path.remove(finder)


def tensorflow(before_first_op: Callable[[ModuleType], None] | None = None, lean: bool = False) -> ModuleType:
    """Return the ``tensorflow`` module, imported with its start-up chatter silenced.

    Parameters
    ----------
    before_first_op : callable, optional
        Called with the module after the import and before the first op runs, e.g. to set
        thread counts (which TensorFlow accepts only before its runtime starts).
    lean : bool, default=False
        Import TensorFlow without Keras's optional helpers (:func:`without_optional_imports`).
    """
    global _READY
    if _READY:
        import tensorflow as tf

        return tf
    with _LOCK:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        with quiet_stderr():
            try:
                with without_optional_imports() if lean else contextlib.nullcontext():
                    import tensorflow as tf
            except ImportError as exc:
                from ..errors import missing_train_install

                raise (missing_train_install(exc) or exc) from None

            if before_first_op is not None:
                before_first_op(tf)
            tf.constant(0.0) + 0.0  # the first op logs once more
        _READY = True
        return tf


def import_in_background(then: tuple[str, ...] = (), skip: tuple[str, ...] = ()) -> threading.Thread | None:
    """Start importing ``tensorflow`` in a daemon thread; return it (None if it cannot start quietly).

    The import (seconds of module code and shared libraries) then overlaps other work; no op
    runs, so :func:`tensorflow`'s ``before_first_op`` (thread counts) still applies afterwards,
    and a later :func:`tensorflow` call waits for this import under the module's import lock.
    The import runs with file descriptor 2 untouched (the process's other threads keep their
    stderr), so it starts only where ``TF_CPP_MIN_LOG_LEVEL`` >= 2 silences TensorFlow's import.
    (A lowered thread priority does not help: the thread holds the GIL while it waits for a CPU.)

    Parameters
    ----------
    then : tuple of str
        Modules the thread imports after TensorFlow (whose later import would otherwise cost
        the caller time where it waits for it); one that fails to import is skipped.
    skip : tuple of str
        Packages of :data:`OPTIONAL_FOR_KERAS` whose Keras helpers the import leaves out
        (:func:`without_optional_imports`, in this thread only); the process imports them
        later if it needs them.
    """
    if _READY or "tensorflow" in sys.modules:
        return None
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        if int(os.environ["TF_CPP_MIN_LOG_LEVEL"]) < 2:
            return None
    except ValueError:
        return None

    def run() -> None:
        try:
            with without_optional_imports(tuple(skip)):
                importlib.import_module("tensorflow")
        except Exception:  # the caller's own tensorflow() call reports it
            return
        for name in then:
            with contextlib.suppress(Exception):
                importlib.import_module(name)

    t = threading.Thread(target=run, name="calib-import-tensorflow", daemon=True)
    t.start()
    return t


def keras() -> ModuleType:
    """Return the ``keras`` module (TensorFlow backend), imported quietly."""
    tensorflow()
    import keras as k

    return k


def flat_caller(concrete: Any) -> Callable[..., Any]:
    """A caller of ``concrete`` (a concrete function of tensor arguments) that skips its argument binding.

    ``concrete(*tensors)`` matches its arguments to the function's signature on every call
    (0.1-0.2 ms here); a full-batch optimizer calls it thousands of times for a few ms of
    arithmetic each. The caller hands the tensors and the captured variables to the same
    compiled function directly, so the outputs are the same. Not for use under a
    ``GradientTape`` (the direct call records no gradient). Where TensorFlow's internals
    differ it is ``concrete`` itself.
    """
    try:
        call = concrete._inference_function.call_preflattened
        captured = list(concrete.captured_inputs)
    except AttributeError:  # another TensorFlow: the public call
        return concrete

    def caller(*args: Any) -> Any:
        return call([*args, *captured])

    return caller
