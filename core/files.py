"""Opening the files a user gives: regular files only, text files of a bounded size.

A path given as a NIfTI, a manifest, a sidecar, a config or ``subjects.csv`` may name a FIFO
(opening it waits for a writer forever), a device (``/dev/zero`` reads forever), a socket or a
folder. Each is refused with a ``DataError`` before a byte is read: the path's ``stat`` must be a
regular file, and so must the open descriptor's ``fstat`` (the file checked is the file read,
even if the path is swapped in between); the open itself does not block (``O_NONBLOCK``, which
regular files ignore). Libraries that open files by name (h5py, safetensors) get the same check
through ``check_regular``.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import BinaryIO

from strokelens.core.errors import DataError
from strokelens.core.limits import MAX_TEXT_BYTES

_KINDS = {
    stat.S_IFDIR: "a folder",
    stat.S_IFIFO: "a FIFO (named pipe)",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
}
_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)


def _refuse_unless_regular(path: Path, mode: int) -> None:
    if not stat.S_ISREG(mode):
        kind = _KINDS.get(stat.S_IFMT(mode), "a special file")
        raise DataError(path, f"is {kind}, not a regular file")


def _os_error(path: Path, exc: OSError, what: str) -> DataError:
    if isinstance(exc, FileNotFoundError):
        return DataError(path, f"{what} not found")
    return DataError(path, f"cannot be read ({exc.strerror or exc})")


def check_regular(path: str | Path, what: str = "file") -> os.stat_result:
    """``path``'s stat (symlinks followed) when it is a regular file, else a DataError saying
    what it is (``what`` names the file's role in messages: "ensemble manifest", ...)."""
    path = Path(path)
    try:
        st = path.stat()
    except OSError as exc:
        raise _os_error(path, exc, what) from exc
    _refuse_unless_regular(path, st.st_mode)
    return st


def open_regular(path: str | Path, what: str = "file") -> BinaryIO:
    """``path`` opened for binary reading, refused unless it is a regular file (see above)."""
    path = Path(path)
    check_regular(path, what)  # a device is not even opened (opening one can act on it)
    try:
        fd = os.open(path, _FLAGS)
    except OSError as exc:
        raise _os_error(path, exc, what) from exc
    try:
        _refuse_unless_regular(path, os.fstat(fd).st_mode)
    except BaseException:
        os.close(fd)
        raise
    # not closed here if fdopen fails: by then its file object may own (and have closed) the
    # descriptor, and a second close raised EBADF over what fdopen was interrupted by (a
    # cancelling signal)
    return os.fdopen(fd, "rb")


def read_text(path: str | Path, what: str = "file", max_bytes: int = MAX_TEXT_BYTES) -> str:
    """A regular UTF-8 text file's content, refused when larger than ``max_bytes``."""
    path = Path(path)
    with open_regular(path, what) as f:
        try:
            data = f.read(max_bytes + 1)
        except OSError as exc:
            raise _os_error(path, exc, what) from exc
    if len(data) > max_bytes:
        raise DataError(path, f"{what} of more than {max_bytes} bytes; refused")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(path, f"{what} is not UTF-8 text ({exc})") from exc
