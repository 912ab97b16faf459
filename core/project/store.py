"""``ProjectStore``: the one front door to a review project (see docs/project.md).

A project is a folder, never inside the data set::

    project.sqlite (+ -wal, -shm)   cases, audit log, meta (schema.py)
    project.lock, lock.json         the writer's OS lock and who holds it (lock.py)
    masks/<case>/<sha256>.nii.gz    the corrected masks, named by the sha256 of their voxels

Crash safety of ``save_mask``: (1) the mask is written under its content's name, atomically
(``core.writer``: temporary file, fsync, rename, folder fsync); (2) the case row and its audit
row are committed in one transaction, fsynced (WAL, ``synchronous=FULL``); (3) the previous
file is removed. A crash before (2) leaves the database pointing at the old file, which is still
there; after (2), at the new one. The only debris is a file no row points at (or a temporary
file), which opening the project for writing deletes. A row whose file is missing (deleted by
hand, a broken disk) cannot be repaired: it is reported in ``problems`` and by ``load_mask``.

All methods may be called from any one thread at a time (a lock serialises them), so the window
can save from a worker while the GUI thread reads statuses.
"""

from __future__ import annotations

import hashlib
import re
import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from strokelens.core import userdirs
from strokelens.core.case import Case
from strokelens.core.dataset import AFFINE_TOLERANCE_MM
from strokelens.core.errors import DataError, OutputError, StrokeLensError
from strokelens.core.metrics import as_mask, volume_ml
from strokelens.core.nifti import load_volume, spatial_shape
from strokelens.core.output import refuse_inside
from strokelens.core.project import audit, inputs, schema
from strokelens.core.project.audit import AuditEntry
from strokelens.core.project.inputs import InputProblem
from strokelens.core.project.lock import ProjectLock
from strokelens.core.project.review import Event, Status, check_transition, next_status, reopens
from strokelens.core.safepath import path_inside
from strokelens.core.writer import remove_stale_temporaries, write_mask

MASKS = "masks"
#: Longest reviewer name and action label kept (they are shown, stored and exported).
MAX_LABEL = 128
#: A stored mask's file name: the sha256 of its voxels.
_MASK_FILE = re.compile(r"[0-9a-f]{64}\.nii\.gz", re.ASCII)
_CASE_DIR = re.compile(r"[A-Za-z0-9_.-]{1,64}-[0-9a-f]{12}", re.ASCII)


class ReadOnlyError(StrokeLensError):
    """A change asked of a project opened read-only (another process holds its lock)."""


@dataclass(frozen=True)
class CaseRecord:
    """A case's row: its status, reviewer, times and its saved mask (None fields: none yet)."""

    key: str
    status: Status
    reviewer: str | None
    created: str  # ISO 8601, UTC
    updated: str
    started_from: str | None  # ensemble fingerprint, "import:<file>", "empty", ... as saved
    submission_id: str | None  # the case's CT_MTT folder number, for ISLES names on export
    mask_file: str | None  # relative to the project's masks folder
    mask_sha256: str | None  # of the mask's voxels (``mask_sha256``)
    mask_voxels: int | None
    mask_ml: float | None
    inputs: inputs.Fingerprints = field(default_factory=dict)


_COLUMNS = (
    "key, status, reviewer, created, updated, started_from, submission_id, mask_file, "
    "mask_sha256, mask_voxels, mask_ml, inputs"
)


def mask_sha256(mask: np.ndarray) -> str:
    """sha256 of a mask's voxels as uint8 0/1 in ``(z, y, x)`` C order (file format aside)."""
    return hashlib.sha256(np.ascontiguousarray(mask, dtype=np.uint8).tobytes()).hexdigest()


def _folder_name(readable: str, identity: str) -> str:
    """``<readable part>-<12 hex of sha256(identity)>``: safe as a folder name, unique by hash."""
    shown = re.sub(r"[^A-Za-z0-9_.-]+", "_", readable).strip("._")[:40] or "x"
    return f"{shown}-{hashlib.sha256(identity.encode()).hexdigest()[:12]}"


def case_folder_name(key: str) -> str:
    """The folder of a case's masks, from its key (``training/case_1``)."""
    return _folder_name(key, key)


def default_project_for(dataset_root: str | Path) -> Path:
    """The project used when none is given: ``projects/<folder name>-<hash of the resolved
    root>`` in the user's data folder, one per data set; no part of the path is taken as is."""
    root = Path(dataset_root).resolve()
    return userdirs.data_dir() / "projects" / _folder_name(root.name, str(root))


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def _label(value: str, what: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{what} must be a non-empty name")
    value = value.strip()
    if len(value) > MAX_LABEL or not value.isprintable():
        raise ValueError(f"{what} must be printable and at most {MAX_LABEL} characters")
    return value


class ProjectStore:
    """An open project; use ``ProjectStore.open``. Close it (or use ``with``) to release it."""

    def __init__(
        self, path: Path, conn: sqlite3.Connection, lock: ProjectLock, read_only_reason: str | None
    ):
        self.path = path
        self._conn = conn
        self._lock = lock
        self._mutex = threading.RLock()
        #: None when writable; else why not (who holds the lock), for the window's banner.
        self.read_only_reason = read_only_reason
        self.dataset_root = Path(self._meta("dataset_root"))
        self.created = self._meta("created")
        #: What opening repaired (orphan and temporary files removed), in words.
        self.repairs: list[str] = []
        #: Per case, what cannot be repaired (a mask file missing), in words.
        self.problems: dict[str, str] = {}
        self._last: tuple[str, str, np.ndarray] | None = None  # key, sha, mask of the last save

    # --- opening and closing

    @classmethod
    def open(
        cls,
        path: str | Path,
        dataset_root: str | Path | None = None,
        *,
        create: bool = False,
        writable: bool = True,
    ) -> ProjectStore:
        """Open the project at ``path`` (``create``: make it for ``dataset_root`` if absent).

        Writable when ``writable`` and no other process holds the lock, else read-only with
        ``read_only_reason`` naming the holder. ``dataset_root``, when given, must be the one
        the project was made for. Raises DataError for what is not a usable project.
        """
        path = Path(path)
        db = path / schema.DB_NAME
        if not db.exists():
            if not create:
                raise DataError(path, "no StrokeLens project here (project.sqlite is missing)")
            if dataset_root is None:
                raise ValueError("a new project needs the data set root it is for")
            refuse_inside(path, Path(dataset_root), "a project")
            try:
                (path / MASKS).mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise OutputError(path, f"cannot be created ({exc.strerror or exc})") from exc
        lock = ProjectLock(path)
        reason = None
        if writable and not lock.acquire():
            reason = f"the project is open elsewhere ({lock.holder()}): opened read-only"
        elif not writable:
            reason = "opened read-only on request"
        try:
            store = cls._connect(path, db, lock, reason, dataset_root)
        except BaseException:
            lock.release()
            raise
        return store

    @classmethod
    def _connect(cls, path, db, lock, reason, dataset_root) -> ProjectStore:
        writable = reason is None
        if not writable and not db.exists():
            raise DataError(path, "the project is being created by another process; try again")
        conn = schema.connect(db, writable)
        with schema.closed_on_error(conn, db):
            if writable:
                schema.migrate(conn, db)
                with _transaction(conn):
                    if dataset_root is not None:
                        root = str(Path(dataset_root).resolve())
                        conn.execute(
                            "INSERT OR IGNORE INTO meta VALUES ('dataset_root', ?)", (root,)
                        )
                    conn.execute("INSERT OR IGNORE INTO meta VALUES ('created', ?)", (_now(),))
            else:
                schema.check_version(conn, db)
            store = cls(path, conn, lock, reason)
        try:
            if dataset_root is not None and Path(dataset_root).resolve() != store.dataset_root:
                raise DataError(
                    path,
                    f"this project is for the data set {store.dataset_root}, not {dataset_root}",
                )
            refuse_inside(path, store.dataset_root, "a project")
            store._scan(repair=writable)
        except BaseException:
            store.close()
            raise
        return store

    @property
    def writable(self) -> bool:
        return self.read_only_reason is None

    def close(self) -> None:
        with self._mutex:
            self._conn.close()
            self._lock.release()

    def __enter__(self) -> ProjectStore:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _meta(self, key: str) -> str:
        row = self._conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        if row is None:
            raise DataError(self.path / schema.DB_NAME, f"project meta {key!r} is missing")
        return row[0]

    # --- reading

    def cases(self) -> list[CaseRecord]:
        """Every case the project knows (a case without a row is "new"), by key."""
        with self._mutex:
            rows = self._conn.execute(f"SELECT {_COLUMNS} FROM cases ORDER BY key").fetchall()
        return [self._from_row(r) for r in rows]

    def record(self, case_key: str) -> CaseRecord | None:
        with self._mutex:
            row = self._conn.execute(
                f"SELECT {_COLUMNS} FROM cases WHERE key = ?", (case_key,)
            ).fetchone()
        return None if row is None else self._from_row(row)

    def status(self, case_key: str) -> Status:
        record = self.record(case_key)
        return Status.NEW if record is None else record.status

    def audit(self, case_key: str | None = None) -> list[AuditEntry]:
        """The audit rows (of one case), oldest first."""
        with self._mutex:
            return audit.read(self._conn, case_key)

    def mask_path(self, record: CaseRecord) -> Path | None:
        """Where ``record``'s mask lies, checked to be a name the store makes."""
        if record.mask_file is None:
            return None
        parts = record.mask_file.split("/")
        if (
            len(parts) != 2
            or not _CASE_DIR.fullmatch(parts[0])
            or not _MASK_FILE.fullmatch(parts[1])
        ):
            raise DataError(
                self.path / schema.DB_NAME,
                f"case {record.key}: bad mask file name {record.mask_file!r}",
            )
        return path_inside(self.path / MASKS, *parts)

    def load_mask(self, case_key: str) -> np.ndarray | None:
        """The saved mask, uint8 ``(z, y, x)``, checked against its recorded sha256; None if
        the case has none. DataError when the file is missing or differs from the record."""
        record = self.record(case_key)
        if record is None or record.mask_file is None:
            return None
        return self._read_mask(record)

    def _read_mask(self, record: CaseRecord) -> np.ndarray:
        path = self.mask_path(record)
        values, _ = load_volume(path, dtype=None)
        try:
            mask = as_mask(values, "mask").astype(np.uint8)
        except ValueError:
            raise DataError(path, "the stored mask holds values other than 0 and 1") from None
        if mask_sha256(mask) != record.mask_sha256:
            raise DataError(
                path, f"differs from the project database's record of case {record.key}"
            )
        return mask

    def verify(self) -> dict[str, str]:
        """Read every saved mask and compare it with its row (sha256, voxels); the problems
        per case (empty: database and files agree). Slow (reads every mask): for tests and a
        "check project" action, not for every open."""
        found = {}
        for record in self.cases():
            if record.mask_file is None:
                continue
            try:
                mask = self._read_mask(record)
            except DataError as exc:
                found[record.key] = str(exc)
                continue
            if int(np.count_nonzero(mask)) != record.mask_voxels:
                found[record.key] = (
                    f"{record.mask_voxels} voxels recorded, {np.count_nonzero(mask)} in the file"
                )
        return found

    def check_inputs(self, case_keys: Iterable[str] | None = None) -> list[InputProblem]:
        """Input files of corrected cases that changed or went missing since their first save."""
        wanted = None if case_keys is None else set(case_keys)
        found = []
        for record in self.cases():
            if wanted is None or record.key in wanted:
                found += inputs.check(record.key, record.inputs, self.dataset_root)
        return found

    # --- changing

    def save_mask(
        self,
        case: Case,
        mask: np.ndarray,
        reviewer: str,
        action: str = "save",
        started_from: str | None = None,
    ) -> CaseRecord:
        """Save ``mask`` (bool or 0/1, the case's shape) as the case's correction: the case
        becomes "corrected" (an approved one is reopened, and the audit row says so).

        ``action`` labels the audit row ("save", "autosave", "import ..."); ``started_from`` is
        recorded on the case's first save (the ensemble fingerprint the correction started
        from, or "empty", "truth", ...) and kept after. Crash-safe (see the module docstring).
        """
        reviewer, action = _label(reviewer, "reviewer"), _label(action, "action")
        if np.shape(mask) != case.shape:
            raise ValueError(f"mask has shape {np.shape(mask)}, case {case.key} has {case.shape}")
        new = as_mask(mask, "mask").astype(np.uint8)
        sha = mask_sha256(new)
        voxels = int(np.count_nonzero(new))
        ml = volume_ml(new, case.spacing)
        with self._mutex:
            self._require_writable()
            record = self.record(case.key)
            before = Status.NEW if record is None else record.status
            after = next_status(before, Event.SAVE)
            old = self._previous_mask(record)
            changed = voxels if old is None else int(np.count_nonzero(old != new))
            folder = case_folder_name(case.key)
            name = f"{folder}/{sha}.nii.gz"
            path = path_inside(self.path / MASKS, folder, f"{sha}.nii.gz")
            if not (record is not None and record.mask_file == name and path.exists()):
                write_mask(case, new, path)
            now = _now()
            ml_before = (record.mask_ml or 0.0) if record is not None else 0.0
            prints = record.inputs if record is not None and record.inputs else None
            if prints is None:
                prints = inputs.fingerprint(
                    [case.paths[k] for k in sorted(case.paths) if k != "4DPWI"], self.dataset_root
                )
            note = "approved case edited: back to corrected" if reopens(before, after) else ""
            with _transaction(self._conn):
                self._conn.execute(
                    f"INSERT INTO cases ({_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (key) DO UPDATE SET status = excluded.status, "
                    "reviewer = excluded.reviewer, updated = excluded.updated, "
                    "started_from = coalesce(cases.started_from, excluded.started_from), "
                    "submission_id = excluded.submission_id, mask_file = excluded.mask_file, "
                    "mask_sha256 = excluded.mask_sha256, mask_voxels = excluded.mask_voxels, "
                    "mask_ml = excluded.mask_ml, inputs = excluded.inputs",
                    (
                        case.key,
                        after,
                        reviewer,
                        now,
                        now,
                        started_from,
                        case.submission_id,
                        name,
                        sha,
                        voxels,
                        ml,
                        inputs.to_json(prints),
                    ),
                )
                audit.append(
                    self._conn,
                    AuditEntry(
                        at=now,
                        who=reviewer,
                        case_key=case.key,
                        action=action,
                        status_before=before,
                        status_after=after,
                        voxels_changed=changed,
                        ml_changed=ml - ml_before,
                        sha_before=record.mask_sha256 if record else None,
                        sha_after=sha,
                        note=note,
                    ),
                )
            if record is not None and record.mask_file not in (None, name):
                old_path = self.mask_path(record)
                old_path.unlink(missing_ok=True)
            self.problems.pop(case.key, None)
            self._last = (case.key, sha, new)
            return self.record(case.key)

    def _previous_mask(self, record: CaseRecord | None) -> np.ndarray | None:
        """The mask saved before (from memory after a save of the same case), None if none
        or unreadable (the change then counts against an empty mask)."""
        if record is None or record.mask_file is None:
            return None
        if self._last is not None and self._last[:2] == (record.key, record.mask_sha256):
            return self._last[2]
        try:
            return self._read_mask(record)
        except DataError:
            return None

    def approve(self, case_key: str, reviewer: str) -> CaseRecord:
        """Mark a corrected case approved by ``reviewer``; TransitionError for other statuses."""
        return self._change_status(case_key, Event.APPROVE, reviewer, "approve")

    def set_status(self, case_key: str, status: Status, who: str) -> CaseRecord:
        """Move a case to ``status`` if the workflow allows it from its current one (e.g.
        "in review" at the first edit, "predicted"); a no-op when it is already there."""
        return self._change_status(case_key, Status(status), who, "status")

    def _change_status(self, case_key: str, target: Event | Status, who: str, action: str):
        who = _label(who, "reviewer")
        with self._mutex:
            self._require_writable()
            record = self.record(case_key)
            before = Status.NEW if record is None else record.status
            if isinstance(target, Event):
                after = next_status(before, target)
            else:
                after = check_transition(before, target)
                if after is before:
                    return record or self._insert_new(case_key)
            now = _now()
            sha = record.mask_sha256 if record else None
            reviewer = who if target is Event.APPROVE else (record.reviewer if record else None)
            with _transaction(self._conn):
                if record is None:
                    self._conn.execute(
                        "INSERT INTO cases (key, status, reviewer, created, updated) "
                        "VALUES (?, ?, ?, ?, ?)",
                        (case_key, after, reviewer, now, now),
                    )
                else:
                    self._conn.execute(
                        "UPDATE cases SET status = ?, reviewer = ?, updated = ? WHERE key = ?",
                        (after, reviewer, now, case_key),
                    )
                note = "approved case reopened" if reopens(before, after) else ""
                audit.append(
                    self._conn,
                    AuditEntry(now, who, case_key, action, before, after, 0, 0.0, sha, sha, note),
                )
            return self.record(case_key)

    def _insert_new(self, case_key: str) -> CaseRecord:
        now = _now()
        with _transaction(self._conn):
            self._conn.execute(
                "INSERT INTO cases (key, status, created, updated) VALUES (?, ?, ?, ?)",
                (case_key, Status.NEW, now, now),
            )
        return self.record(case_key)

    def import_mask(self, case: Case, path: str | Path, reviewer: str) -> CaseRecord:
        """A mask made elsewhere (ITK-SNAP, Slicer: NIfTI, 0/1) as the case's correction.

        Refused with a DataError naming the file and the reason unless it has the case's
        shape and affine (within ``AFFINE_TOLERANCE_MM``) and holds only 0 and 1.
        """
        path = Path(path)
        values, img = load_volume(path, dtype=None)
        shape = spatial_shape(img)
        if shape != case.shape:
            raise DataError(
                path, f"shape {shape} (z, y, x) differs from case {case.key}'s {case.shape}"
            )
        diff = float(np.max(np.abs(img.affine - case.affine)))
        if diff > AFFINE_TOLERANCE_MM:
            raise DataError(
                path,
                f"affine differs from case {case.key}'s by up to {diff:.3g} mm (another "
                f"orientation, origin or spacing; at most {AFFINE_TOLERANCE_MM} mm allowed)",
            )
        try:
            mask = as_mask(values, "mask")
        except ValueError:
            found = np.unique(values)[:8]
            raise DataError(
                path, f"holds values {', '.join(f'{v:g}' for v in found)}: a 0/1 mask is expected"
            ) from None
        return self.save_mask(
            case, mask, reviewer, f"import {path.name}"[:MAX_LABEL], f"import:{path.name}"
        )

    def export(
        self,
        out: str | Path,
        statuses: Sequence[Status] = (Status.CORRECTED, Status.APPROVED),
        **options,
    ):
        """Write the masks of cases in ``statuses`` for submission (see ``export.export``)."""
        from strokelens.core.project.export import export

        return export(self, Path(out), statuses, **options)

    # --- internals

    def _require_writable(self) -> None:
        if self.read_only_reason is not None:
            raise ReadOnlyError(f"{self.path}: {self.read_only_reason}")

    def _from_row(self, row: tuple) -> CaseRecord:
        *head, prints = row
        source = f"{self.path / schema.DB_NAME} (case {row[0]})"
        return CaseRecord(
            *head[:1],
            Status(head[1]),
            *head[2:],
            inputs=inputs.from_json(prints, source) if prints else {},
        )

    def _scan(self, repair: bool) -> None:
        """Find rows whose mask is missing; when writable, delete files no row points at."""
        referenced = set()
        for record in self.cases():
            if record.mask_file is None:
                continue
            referenced.add(record.mask_file)
            path = self.mask_path(record)
            if not path.is_file():
                self.problems[record.key] = f"its saved mask {path} is missing"
        masks = self.path / MASKS
        if not repair or not masks.is_dir():
            return
        for folder in sorted(p for p in masks.iterdir() if p.is_dir() and not p.is_symlink()):
            for p in remove_stale_temporaries(folder):
                self.repairs.append(f"removed the unfinished write {p.name} in {folder.name}")
            for p in sorted(folder.iterdir()):
                name = f"{folder.name}/{p.name}"
                if name not in referenced and _MASK_FILE.fullmatch(p.name) and p.is_file():
                    p.unlink()
                    self.repairs.append(f"removed the unreferenced mask {name}")


@contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[None]:
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
