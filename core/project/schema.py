"""The project database: its tables, connection settings and migrations.

SQLite (the standard library's ``sqlite3``): one file, real transactions, ``PRAGMA
integrity_check``, and readable by any tool. Settings, and why:

- WAL journal: a commit appends to ``project.sqlite-wal``, and readers (a read-only second
  window, ``export-masks``) never block the writer nor see half a transaction.
- ``synchronous=FULL``: every commit fsyncs the WAL, so a commit that records an edit has
  reached the disk when it returns (WAL with NORMAL may lose the last commits to a power cut).
- Explicit transactions (``BEGIN IMMEDIATE`` ... ``COMMIT``), the connection in autocommit mode:
  the case row and its audit row are committed together or not at all.

Migrations: ``MIGRATIONS[n]`` takes a database from ``PRAGMA user_version`` n to n + 1, in one
transaction with the version bump. Version 1 creates the tables. A database newer than this
StrokeLens is refused, never guessed at.

The audit table is append-only: triggers abort any UPDATE or DELETE on it.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from strokelens.core.errors import DataError
from strokelens.core.project.review import Status

DB_NAME = "project.sqlite"

_STATUSES = ", ".join(f"'{s}'" for s in Status)

_V1 = f"""
CREATE TABLE meta (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
) STRICT;
CREATE TABLE cases (
    key TEXT PRIMARY KEY,
    status TEXT NOT NULL CHECK (status IN ({_STATUSES})),
    reviewer TEXT,
    created TEXT NOT NULL,
    updated TEXT NOT NULL,
    started_from TEXT,
    submission_id TEXT,
    mask_file TEXT,
    mask_sha256 TEXT,
    mask_voxels INTEGER,
    mask_ml REAL,
    inputs TEXT
) STRICT;
CREATE TABLE audit (
    id INTEGER PRIMARY KEY,
    at TEXT NOT NULL,
    who TEXT NOT NULL,
    case_key TEXT NOT NULL,
    action TEXT NOT NULL,
    status_before TEXT NOT NULL,
    status_after TEXT NOT NULL,
    voxels_changed INTEGER NOT NULL,
    ml_changed REAL NOT NULL,
    sha_before TEXT,
    sha_after TEXT,
    note TEXT NOT NULL
) STRICT;
CREATE INDEX audit_by_case ON audit (case_key, id);
CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
    BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
"""

#: ``MIGRATIONS[n]``: SQL from user_version n to n + 1.
MIGRATIONS: tuple[str, ...] = (_V1,)
VERSION = len(MIGRATIONS)
#: How long (ms) a connection waits for another one's lock (a checkpoint, a reader) before failing.
BUSY_TIMEOUT_MS = 5000


def connect(path: Path, writable: bool) -> sqlite3.Connection:
    """A connection to the database at ``path`` (created if writable), in autocommit mode."""
    if writable:
        conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    else:
        uri = f"{path.resolve().as_uri()}?mode=ro"
        conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
    with closed_on_error(conn, path):
        conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        if writable:
            mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
            if mode != "wal":
                raise DataError(path, f"cannot use a write-ahead log here (journal mode {mode})")
        conn.execute("PRAGMA synchronous = FULL")
    return conn


@contextmanager
def closed_on_error(conn: sqlite3.Connection, path: Path) -> Iterator[None]:
    """Close ``conn`` if the block fails; a database error becomes a DataError naming ``path``
    (a damaged or foreign file is input like any other)."""
    try:
        yield
    except sqlite3.DatabaseError as exc:
        conn.close()
        raise DataError(path, f"not a readable project database ({exc})") from exc
    except BaseException:
        conn.close()
        raise


def user_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def migrate(conn: sqlite3.Connection, path: Path) -> int:
    """Bring the database to ``VERSION``; returns the version it had."""
    found = user_version(conn)
    if found > VERSION:
        raise DataError(
            path, f"project database version {found}; this StrokeLens reads up to {VERSION}"
        )
    for n in range(found, VERSION):
        try:
            conn.executescript(
                f"BEGIN IMMEDIATE;\n{MIGRATIONS[n]}\nPRAGMA user_version = {n + 1};\nCOMMIT;"
            )
        except sqlite3.DatabaseError as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise DataError(
                path, f"cannot migrate the project database to version {n + 1} ({exc})"
            ) from exc
    return found


def check_version(conn: sqlite3.Connection, path: Path) -> None:
    """DataError unless the database is at ``VERSION`` (a read-only opener cannot migrate)."""
    found = user_version(conn)
    if found != VERSION:
        raise DataError(
            path,
            f"project database version {found}, this StrokeLens needs {VERSION}: open the project "
            "once for writing to migrate it",
        )


def integrity_problem(conn: sqlite3.Connection) -> str | None:
    """SQLite's ``integrity_check`` findings, or None when the database is intact."""
    rows = [r[0] for r in conn.execute("PRAGMA integrity_check").fetchall()]
    return None if rows == ["ok"] else "; ".join(rows[:5])
