"""A command's output folders, checked before any work is done.

A read-only folder, a full disk or an ``--out`` that names a file used to surface as a raw
OSError after the whole inference. ``prepare_folders`` finds each of them first, with one
message naming the folder: it creates the folders, writes, fsyncs and removes a probe file in
each (a read-only file system, a folder without write permission and a full disk fail there;
ext4 may report ENOSPC only at fsync), and compares the free space with the caller's estimate of
what it will write.

It holds a lock on the output folder (``LOCK_NAME`` inside it) for as long as the command
writes: a second run into the same folder is refused with one line, not interleaved with the
first (their masks and ``predictions.csv`` would mix, and its clean-up would remove the first
run's temporary files while they are written). Only under that lock does it remove the temporary
files a killed run left (``writer.remove_stale_temporaries``). The lock is an OS file lock
(``filelock``, flock on Linux), so a killed run's lock ends with its process and never needs
removing by hand.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

import filelock

from strokelens.core.errors import OutputError
from strokelens.core.writer import remove_stale_temporaries

#: Bytes of the probe file: more than a file-system block, so a disk with a few blocks left
#: counts as full.
PROBE_BYTES = 1 << 16
_FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}
#: The lock file in an output folder (left in place: the lock is the OS's, not the file's).
LOCK_NAME = ".strokelens.lock"


def _mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"


def _why(exc: OSError) -> str:
    if exc.errno in _FULL:
        return f"cannot be written: the disk is full ({exc.strerror})"
    return f"cannot be written ({exc.strerror or exc})"


def write_error(exc: OSError, folder: Path) -> OutputError:
    """``exc``, raised writing a file into ``folder``, as an OutputError naming the folder of
    the file it names (a temporary file's name would tell the user nothing) and saying why."""
    if exc.filename:
        folder = Path(os.fsdecode(exc.filename)).parent
    return OutputError(folder, _why(exc))


def _probe(folder: Path) -> None:
    """Write, fsync and remove a file in ``folder`` (unnamed where the system allows)."""
    try:
        with tempfile.TemporaryFile(dir=folder, prefix=".strokelens-probe.") as f:
            f.write(b"\0" * PROBE_BYTES)
            f.flush()
            os.fsync(f.fileno())
    except OSError as exc:
        raise OutputError(folder, _why(exc)) from exc


def refuse_inside(folder: Path, dataset_root: Path, what: str = "the outputs") -> None:
    """A command never writes into its input data set (the next read would find its files
    among the cases, and a clean-up there would touch the user's data): OutputError when
    ``folder`` is ``dataset_root`` or lies inside it (symbolic links resolved)."""
    if folder.resolve().is_relative_to(dataset_root.resolve()):
        raise OutputError(
            folder, f"lies inside the data set {dataset_root}; {what} must go outside it"
        )


@contextlib.contextmanager
def prepare_folders(
    folders: Sequence[Path], needed_bytes: int = 0, dataset_root: Path | None = None
) -> Iterator[list[Path]]:
    """Make ``folders`` (the first holds the others, or is the only one) ready to write about
    ``needed_bytes`` into and hold the first one's lock for the block; yields the stale
    temporary files removed. Raises OutputError, also when another run holds the lock or when
    a folder lies inside ``dataset_root`` (the command's input)."""
    if dataset_root is not None:
        refuse_inside(folders[0], dataset_root)
    for folder in folders:
        if folder.exists() and not folder.is_dir():
            raise OutputError(folder, "is a file, not a folder; give a folder for the outputs")
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise OutputError(folder, f"cannot be created ({exc.strerror or exc})") from exc
        _probe(folder)
    with _locked(folders[0]):
        free = shutil.disk_usage(folders[0]).free
        if free < needed_bytes:
            raise OutputError(
                folders[0],
                f"not enough free space: {_mib(free)} free, the outputs take about "
                f"{_mib(needed_bytes)}",
            )
        removed = []
        for folder in folders:
            try:
                removed += remove_stale_temporaries(folder)
            except OSError as exc:
                raise OutputError(folder, f"cannot be cleaned ({exc.strerror or exc})") from exc
        yield removed


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    """``folder``'s lock held for the block; OutputError at once when another process holds it."""
    lock = filelock.FileLock(folder / LOCK_NAME, timeout=0)
    try:
        lock.acquire()
    except filelock.Timeout:
        raise OutputError(
            folder,
            "another run is writing there (it holds the folder's lock); wait for it to end or "
            "give another --out",
        ) from None
    except OSError as exc:
        raise OutputError(folder / LOCK_NAME, f"cannot be locked ({exc.strerror or exc})") from exc
    try:
        yield
    finally:
        lock.release()
