"""One writer per project: an OS file lock, and who holds it.

``filelock`` takes ``flock`` (``LockFileEx`` on Windows) on ``project.lock``: the kernel drops it
when its holder exits, however it exits, so a crashed or SIGKILLed window never leaves a stale
lock behind. The holder records its pid, host, user and start in ``lock.json`` beside it (written
atomically); a second opener reads that file (through ``core.schema``, as any input) to say who
has the project open. A ``lock.json`` left by a killed holder is only ever read while the lock
is held by someone else, and is overwritten by the next holder.
"""

from __future__ import annotations

import getpass
import json
import os
import socket
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import filelock
from pydantic import BaseModel, Field

from strokelens.core import schema
from strokelens.core.errors import DataError
from strokelens.core.writer import atomic_write_bytes

LOCK_NAME = "project.lock"
INFO_NAME = "lock.json"


class LockInfo(BaseModel):
    """``lock.json``: who holds the project's lock."""

    model_config = schema.STRICT
    pid: Annotated[schema.Int, Field(ge=1)]
    host: Annotated[schema.Str, Field(max_length=255)]
    user: Annotated[schema.Str, Field(max_length=255)]
    since: Annotated[schema.Str, Field(max_length=64)]

    def describe(self) -> str:
        return f"pid {self.pid} on {self.host}, user {self.user}, since {self.since}"


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no name for the uid (a container)
        return f"uid {os.getuid()}" if hasattr(os, "getuid") else "unknown"


class ProjectLock:
    """The lock of the project in ``folder``; ``acquire`` never waits."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)
        self._lock = filelock.FileLock(self.folder / LOCK_NAME)

    @property
    def held(self) -> bool:
        return self._lock.is_locked

    def acquire(self) -> bool:
        """Take the lock if it is free and record this process in ``lock.json``."""
        try:
            self._lock.acquire(timeout=0)
        except filelock.Timeout:
            return False
        info = LockInfo(
            pid=os.getpid(),
            host=socket.gethostname(),
            user=_user(),
            since=datetime.now(UTC).isoformat(timespec="seconds"),
        )
        try:
            atomic_write_bytes(self.folder / INFO_NAME, json.dumps(info.model_dump()).encode())
        except BaseException:
            self._lock.release()
            raise
        return True

    def holder(self) -> str:
        """Who holds the lock, in words, for a second opener's message."""
        try:
            return schema.load(self.folder / INFO_NAME, LockInfo, "project lock info").describe()
        except DataError as exc:
            return f"another process (its lock info cannot be read: {exc.problem})"

    def release(self) -> None:
        if self._lock.is_locked:
            (self.folder / INFO_NAME).unlink(missing_ok=True)
            self._lock.release()
