"""The bytes of an input file: read exactly once, size-capped, decompressed, decoded.

:func:`read_input` reads a readings file once (a named pipe works too: it is read to its
end once, never reopened), refusing folders, devices and sockets and anything over
:func:`calib.limits.max_input_bytes`. :func:`decompress` opens ``.gz``, ``.bz2``, ``.xz``
and single-file ``.zip`` archives, recognised by suffix or by their magic bytes (a gzip
file named ``.csv`` is read as what it is); the decompressed size is capped the same way,
so a small archive cannot expand into gigabytes. :func:`decode_text` tells UTF-8 (with or
without BOM), UTF-16/UTF-32 (with BOM, or UTF-16 without BOM), cp1252 (what Excel and
Windows lab software write) and latin-1 apart.

Every refusal is an :class:`~calib.errors.IngestError` naming the file.
"""

from __future__ import annotations

import bz2
import codecs
import gzip
import io
import lzma
import os
import stat
import zipfile
import zlib
from pathlib import Path
from typing import Any

from .errors import IngestError
from .limits import human_bytes, max_input_bytes, pipe_wait_s

__all__ = ["COMPRESSIONS", "ASCII_COMPATIBLE", "read_input", "decompress", "decode_text", "file_kind",
           "sniff_compression"]

#: suffix -> compression name, as pandas' ``compression="infer"`` knows them.
COMPRESSIONS = {".gz": "gzip", ".bz2": "bz2", ".xz": "xz", ".zip": "zip"}
#: Encodings in which ASCII text is the same bytes (new ASCII cells may be appended to a line).
ASCII_COMPATIBLE = ("utf-8", "utf-8-sig", "cp1252", "latin-1")

_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISSOCK, "a socket"), (stat.S_ISLNK, "a symbolic link"))


def file_kind(mode: int) -> str | None:
    """``'a folder'``, ``'a character device'``, ... for a non-regular ``st_mode``; None for a regular file."""
    if stat.S_ISREG(mode):
        return None
    return next((what for test, what in _KINDS if test(mode)), "not a regular file")


def _too_big(name: str, size: str, limit: int) -> IngestError:
    return IngestError(f"{name}: {size} is over the input size limit of {human_bytes(limit)}; split the file "
                       "or raise the limit with the environment variable CALIB_MAX_INPUT_BYTES")


def _open_bytes(p: Path, mode: int) -> Any:
    """``open(p, "rb")``; a named pipe waits at most :func:`calib.limits.pipe_wait_s` for its first byte.

    Opening a FIFO for reading blocks until some process opens it for writing, so a pipe nothing
    writes to would hold calib forever. It is opened non-blocking instead and polled: data (or a
    writer's end of file) within the wait is read as from a file; nothing is a one-line error.
    """
    if not stat.S_ISFIFO(mode):
        return open(p, "rb")
    import select

    wait = pipe_wait_s()
    fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK)
    try:
        poller = select.poll()
        poller.register(fd, select.POLLIN | select.POLLHUP)
        if not poller.poll(wait * 1000):
            raise IngestError(f"{p}: a named pipe (FIFO) that nothing wrote to within {wait} s; expected CSV, "
                              "Parquet or Excel data (a longer wait: CALIB_PIPE_WAIT_S)")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_input(path: str | Path, expected: str = "a CSV, Parquet or Excel file") -> bytes:
    """Read a file's bytes exactly once, within the input size limit.

    Parameters
    ----------
    path : str or Path
        A regular file, or a named pipe (read to its end once). A symbolic link is followed.
    expected : str, default="a CSV, Parquet or Excel file"
        What the file should be, for the message that refuses a folder or a device.

    Returns
    -------
    bytes

    Raises
    ------
    IngestError
        Not found, a folder, a device or socket, not readable (permission), or over
        :func:`calib.limits.max_input_bytes` (its size and the limit named).
    """
    p = Path(path)
    limit = max_input_bytes()
    try:
        st = os.stat(p)
    except FileNotFoundError:
        raise IngestError(f"{p}: file not found") from None
    except OSError as exc:
        raise IngestError(f"{p}: cannot read ({exc.strerror or exc})") from None
    kind = file_kind(st.st_mode)
    if kind == "a folder":
        raise IngestError(f"{p}: is a folder; expected {expected}")
    if kind is not None and not stat.S_ISFIFO(st.st_mode):
        raise IngestError(f"{p}: is {kind}, not a regular file; expected {expected}")
    if stat.S_ISREG(st.st_mode) and st.st_size > limit:
        raise _too_big(p.name, human_bytes(st.st_size), limit)
    try:
        with _open_bytes(p, st.st_mode) as fh:
            data = fh.read(limit + 1)
    except MemoryError:
        raise _too_big(p.name, "the file", limit) from None
    except OSError as exc:
        raise IngestError(f"{p}: cannot read ({exc.strerror or exc})") from None
    if len(data) > limit:
        raise _too_big(p.name, f"more than {human_bytes(limit)}", limit)
    return data


def sniff_compression(data: bytes) -> str | None:
    """``"gzip"``, ``"bz2"``, ``"xz"`` or ``"zip"`` (also an Excel workbook) from a file's first bytes, else None."""
    if data[:2] == b"\x1f\x8b":
        return "gzip"
    if data[:3] == b"BZh" and data[3:4].isdigit() and data[4:10] == b"1AY&SY":
        return "bz2"
    if data[:6] == b"\xfd7zXZ\x00":
        return "xz"
    if data[:4] == b"PK\x03\x04":
        return "zip"
    return None


def _is_workbook(zf: zipfile.ZipFile) -> bool:
    return any(n.startswith("xl/") or n == "[Content_Types].xml" for n in zf.namelist())


def decompress(data: bytes, name: str) -> tuple[bytes, str | None, str]:
    """Decompress ``data`` when its suffix or its magic bytes say it is compressed.

    Parameters
    ----------
    data : bytes
        The file's bytes.
    name : str
        The file's name (its suffixes, e.g. ``readings.csv.gz``, are looked at).

    Returns
    -------
    (bytes, compression or None, suffix)
        The content, ``"gzip"``/``"bz2"``/``"xz"``/``"zip"`` or None, and the suffix of the
        content (``.csv`` for ``readings.csv.gz``; a gzip file named ``readings.csv`` is ``.csv``).

    Raises
    ------
    IngestError
        A corrupt archive, a zip holding not exactly one file, content over the size limit.
    """
    suffixes = [s.lower() for s in Path(name).suffixes]
    by_name = COMPRESSIONS.get(suffixes[-1]) if suffixes else None
    inner = (suffixes[-2] if len(suffixes) > 1 else "") if by_name else (suffixes[-1] if suffixes else "")
    found = sniff_compression(data)
    if found == "zip" and by_name is None:
        with _open_zip(data, name) as zf:
            if _is_workbook(zf):
                return data, None, inner  # an Excel workbook (itself a zip): the reader decides
    kind = found if found is not None else by_name
    if kind is None:
        return data, None, inner
    if by_name is not None and found != by_name:
        raise IngestError(f"{name}: not {'a' if by_name != 'xz' else 'an'} {by_name} file although named so "
                          f"(it starts with {data[:8]!r})")
    limit = max_input_bytes()
    try:
        if kind == "zip":
            out = _unzip(data, name, limit)
        else:
            opener = {"gzip": gzip.GzipFile, "bz2": bz2.BZ2File, "xz": lzma.LZMAFile}[kind]
            with opener(fileobj=io.BytesIO(data)) if kind == "gzip" else opener(io.BytesIO(data)) as fh:
                out = fh.read(limit + 1)
    except (OSError, EOFError, zlib.error, lzma.LZMAError, ValueError) as exc:
        raise IngestError(f"{name}: not a readable {kind} file ({exc})") from None
    except MemoryError:
        raise _too_big(name, "its decompressed content", limit) from None
    if len(out) > limit:
        raise _too_big(name, f"decompressed, more than {human_bytes(limit)}", limit)
    return out, kind, inner


def _open_zip(data: bytes, name: str) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise IngestError(f"{name}: not a readable zip file ({exc})") from None


def _unzip(data: bytes, name: str, limit: int) -> bytes:
    with _open_zip(data, name) as zf:
        files = [i for i in zf.infolist() if not i.is_dir() and not i.filename.startswith("__MACOSX/")]
        if len(files) != 1:
            shown = ", ".join(i.filename for i in files[:5]) + (" ..." if len(files) > 5 else "")
            raise IngestError(f"{name}: a zip archive must hold exactly one file, it holds {len(files)}"
                              + (f" ({shown})" if files else ""))
        with zf.open(files[0]) as fh:
            return fh.read(limit + 1)


def decode_text(data: bytes, name: str) -> tuple[str, str]:
    """Decode a text file: ``(text, encoding)``.

    UTF-32 and UTF-16 by their BOM (UTF-16 also without BOM, from its zero bytes), UTF-8
    with or without BOM, else cp1252 (Excel and Windows lab software), else latin-1 (every
    byte decodes).

    Raises
    ------
    IngestError
        Invalid UTF-16/UTF-32 after its BOM, or zero bytes in what is not UTF-16 (a binary file).
    """
    boms = ((codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"), (codecs.BOM_UTF8, "utf-8-sig"),
            (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"))
    enc = next((e for bom, e in boms if data.startswith(bom)), None)
    if enc is None and b"\x00" in data[:4096]:
        sample = data[:4096]
        even, odd = sample[0::2].count(0), sample[1::2].count(0)
        half = len(sample) // 2
        if odd > half // 2 and even == 0:
            enc = "utf-16-le"
        elif even > half // 2 and odd == 0:
            enc = "utf-16-be"
        else:
            ext = Path(name).suffix.lower()
            raise IngestError(f"{name}: binary file with a {ext or 'missing'} extension; expected .csv text, "
                              "or name it .parquet / .xlsx")
    if enc is not None:
        try:
            return data.decode(enc), enc
        except UnicodeDecodeError as exc:
            raise IngestError(f"{name}: not valid {enc.upper().replace('-SIG', '')} text "
                              f"({exc.reason} at byte {exc.start})") from None
    for enc in ("utf-8", "cp1252"):
        try:
            return data.decode(enc), enc
        except UnicodeDecodeError:
            continue
    return data.decode("latin-1"), "latin-1"
