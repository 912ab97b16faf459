"""The append-only audit log: one row for every saved edit, import, approval and status change.

Rows are appended inside the caller's transaction (with the case row they describe), so the log
and the cases never disagree; the database refuses to change or delete a row (see ``schema``).
"""

from __future__ import annotations

import sqlite3
from dataclasses import astuple, dataclass, fields, replace

from strokelens.core.project.review import Status


@dataclass(frozen=True)
class AuditEntry:
    """Who did what to which case, when, and what it changed in the mask."""

    at: str  # ISO 8601, UTC
    who: str
    case_key: str
    action: str  # "save", "import", "approve", "status" or the caller's edit label
    status_before: Status
    status_after: Status
    voxels_changed: int  # voxels that differ between the masks before and after
    ml_changed: float  # volume after minus before (mL)
    sha_before: str | None  # sha256 of the mask's voxels, None without a mask
    sha_after: str | None
    note: str = ""
    id: int | None = None  # assigned by the database


_COLUMNS = [f.name for f in fields(AuditEntry) if f.name != "id"]


def append(conn: sqlite3.Connection, entry: AuditEntry) -> None:
    """Add ``entry`` (inside the caller's transaction)."""
    values = astuple(entry)[: len(_COLUMNS)]
    marks = ", ".join("?" for _ in _COLUMNS)
    conn.execute(f"INSERT INTO audit ({', '.join(_COLUMNS)}) VALUES ({marks})", values)


def read(conn: sqlite3.Connection, case_key: str | None = None) -> list[AuditEntry]:
    """All rows (of ``case_key``), oldest first."""
    query = f"SELECT {', '.join(_COLUMNS)}, id FROM audit"
    args: tuple = ()
    if case_key is not None:
        query += " WHERE case_key = ?"
        args = (case_key,)
    rows = conn.execute(query + " ORDER BY id", args).fetchall()
    out = []
    for row in rows:
        entry = AuditEntry(*row)
        out.append(
            replace(
                entry,
                status_before=Status(entry.status_before),
                status_after=Status(entry.status_after),
            )
        )
    return out
