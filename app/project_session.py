"""The window's project: where the reviewer's corrections are saved, and the review workflow;
Qt-free.

Every data set opens with a project (the one given, else a default one per data set in the user's
data folder), so corrections are kept from the first stroke. Saving is autosave: at most
``AUTOSAVE_MS`` after a stroke or operation ends, at once on a case switch and on close. The GUI
thread only copies the mask (a snapshot of what was painted); the write (atomic NIfTI, then the
database, ``core.project.store``) runs on the project's own worker thread, one call at a time.

The workflow (``core.project.review``): the first edit moves a case to "in review", a saved edit to
"corrected", "approve" to "approved" with the reviewer; an approved case edited again goes back to
"corrected" (the store's audit log says so). A project another window holds opens read-only:
editing is refused and ``read_only(reason)`` says who holds it. Events: ``status(text, ms)``,
``saved_changed()`` (the title's saved / unsaved), ``read_only(reason)``, ``opened(path)``.
"""

from __future__ import annotations

import getpass
from pathlib import Path
from typing import TYPE_CHECKING

from psygnal import Signal

from strokelens.app.edit_session import EditSession
from strokelens.app.model import Model
from strokelens.app.tasks import Tasks
from strokelens.core.errors import StrokeLensError
from strokelens.core.project.review import Status

if TYPE_CHECKING:
    from strokelens.core.editing.masks import EditableMask
    from strokelens.core.project.store import ProjectStore
    from strokelens.core.stroke_summary import CoreOrigin

#: A correction is saved this long after the last stroke or operation ends.
AUTOSAVE_MS = 1500


def _open_store(path: Path | None, dataset_root: Path) -> ProjectStore:
    """The project at ``path`` (created if missing), else the data set's default one (worker)."""
    from strokelens.core.project.store import ProjectStore, default_project_for

    return ProjectStore.open(path or default_project_for(dataset_root), dataset_root, create=True)


class ProjectSession:
    """The project of ``model``'s data set, saving what ``edit`` corrects."""

    status = Signal(str, int)
    saved_changed = Signal()
    read_only = Signal(str)
    opened = Signal(str)

    def __init__(self, model: Model, edit: EditSession, tasks: Tasks, reviewer: str | None = None):
        self.model, self.edit, self.tasks = model, edit, tasks
        self.reviewer = reviewer  # asked for at the first approval, then remembered
        self.store: ProjectStore | None = None
        self._pool = tasks.pool("project")
        self._wanted: Path | None = None  # the project asked for (--project, File ▸ Open)
        self.timer = tasks.timer(AUTOSAVE_MS, self.save_now)
        self._saving: dict[str, int] = {}  # case key -> mask version being written
        edit.history_changed.connect(self._edited)
        model.case_changed.connect(self._case_changed)

    def _case_changed(self) -> None:
        """The case just left is saved at once; the one shown gets its saved correction."""
        self.save_now()
        if self.store is not None and self.model.case is not None:
            self.tasks.spawn(self.load_correction())

    # -- opening -------------------------------------------------------------------------------
    def want(self, path: str | Path | None) -> None:
        """Use the project at ``path`` for the next data set opened (``--project``)."""
        self._wanted = None if path is None else Path(path).expanduser().resolve()

    def _run(self, function, *args):
        return self.tasks.loop.run_in_executor(self._pool, function, *args)

    async def open(self, path: str | Path | None = None) -> bool:
        """Open the project for the model's data set: ``path``, else the one asked for before,
        else the data set's default; False when it cannot be opened (reported)."""
        dataset = self.model.dataset
        if dataset is None:
            return False
        if path is not None:
            self.want(path)
        await self.close()
        try:
            store = await self._run(_open_store, self._wanted, Path(dataset.root))
        except StrokeLensError as exc:
            self.tasks.report(exc, act=True)
            return False
        self.store = store
        self.edit.read_only = None if store.writable else store.read_only_reason
        records = await self._run(store.cases)
        listed = {entry.key for entry in self.model.entries}
        for record in records:
            if record.key in listed:
                self.model.set_review(record.key, record.status, record.reviewer)
        if not store.writable:
            self.read_only.emit(store.read_only_reason or "read-only")
        for key, problem in store.problems.items():
            self.status.emit(f"Project: {key}: {problem}", 10000)
        self.opened.emit(str(store.path))
        if self.model.case is not None:
            await self.load_correction()
        return True

    async def load_correction(self) -> None:
        """The saved correction of the case on screen, handed to the edit session (which keeps
        it, with its undo history, from then on)."""
        case, store = self.model.case, self.store
        if case is None or store is None or case.key in self.edit.masks:
            return
        self.edit.loading.add(case.key)
        try:
            mask = await self._run(store.load_mask, case.key)
        except StrokeLensError as exc:
            self.tasks.report(exc)
            return
        finally:
            self.edit.loading.discard(case.key)
        if mask is not None and self.model.case is case and case.key not in self.edit.masks:
            self.edit.adopt(case.key, mask)

    async def close(self) -> None:
        """Save what is unsaved and release the project (its lock)."""
        store, self.store = self.store, None
        if store is None:
            return
        await self._flush(store)
        await self._run(store.close)

    def close_now(self) -> None:
        """The window is closing: finish the write in flight, save what is still unsaved (on
        this thread: nothing else runs any more), release the project."""
        self.timer.stop()
        self._pool.shutdown(wait=True)
        store, self.store = self.store, None
        if store is None:
            return
        reviewer = self.reviewer or getpass.getuser()
        for key, mask in self.edit.masks.items():
            case = self.edit.cases.get(key)
            if mask.dirty and store.writable and case is not None:
                try:
                    store.save_mask(
                        case, mask.data, reviewer, "save on close", self.edit.started_from(key)
                    )
                    mask.mark_saved()
                except StrokeLensError as exc:
                    self.tasks.report(exc)
        store.close()

    # -- saving --------------------------------------------------------------------------------
    def unsaved(self) -> bool:
        return any(mask.dirty for mask in self.edit.masks.values())

    def _edited(self) -> None:
        """An edit ended: the case is in review, and saved soon."""
        case = self.model.case
        mask = self.edit.current()
        if case is None or mask is None or not mask.dirty or self.store is None:
            return
        entry = self.model.entries[self.model.index]
        if entry.status in (Status.NEW, Status.PREDICTED):
            self.model.set_review(case.key, Status.IN_REVIEW, entry.reviewer)
        self.model.set_unsaved(case.key, True)
        self.saved_changed.emit()
        self.timer.start()

    def save_now(self) -> None:
        """Save every dirty correction now: the GUI thread snapshots the masks (a copy), the
        project's thread writes them, in order."""
        self.timer.stop()
        store = self.store
        if store is not None and store.writable:
            for key, snapshot in self._snapshots():
                self.tasks.spawn(self._write(store, key, *snapshot))

    async def _flush(self, store: ProjectStore) -> None:
        """Save every dirty correction and wait until it is on disk."""
        for key, snapshot in self._snapshots():
            await self._write(store, key, *snapshot)

    def _snapshots(self):
        """(key, (mask, version, copy)) of the corrections not saved and not being saved."""
        for key, mask in list(self.edit.masks.items()):
            if mask.dirty and self._saving.get(key) != mask.version and key in self.edit.cases:
                self._saving[key] = mask.version
                yield key, (mask, mask.version, mask.data.copy())

    async def _write(
        self, store: ProjectStore, key: str, mask: EditableMask, version: int, snapshot
    ) -> None:
        if not store.writable:
            return
        entry = self.model.entries[self.model.index_of(key)]
        reviewer = self.reviewer or getpass.getuser()
        try:
            record = await self._run(
                store.save_mask,
                self.edit.cases[key],
                snapshot,
                reviewer,
                "autosave",
                self.edit.started_from(key),
            )
        except StrokeLensError as exc:
            self.tasks.report(exc, act=True)  # the reviewer must know the work is not saved
            return
        finally:
            if self._saving.get(key) == version:
                del self._saving[key]
        mask.mark_saved(version)
        self.model.set_review(key, record.status, record.reviewer or entry.reviewer)
        self.model.set_unsaved(key, mask.dirty)
        self.saved_changed.emit()

    # -- approving -----------------------------------------------------------------------------
    async def approve(self) -> bool:
        """Approve the case on screen as ``reviewer`` (saving its correction first); False
        when it has no saved correction or the project is read-only."""
        case, store = self.model.case, self.store
        if case is None or store is None or not self.reviewer:
            return False
        if not store.writable:
            self.status.emit(f"Not approved: {store.read_only_reason}", 8000)
            return False
        await self._flush(store)
        try:
            record = await self._run(store.approve, case.key, self.reviewer)
        except StrokeLensError as exc:
            self.status.emit(f"Not approved: {exc}", 8000)
            return False
        self.model.set_review(case.key, record.status, record.reviewer)
        self.status.emit(f"{case.key} approved by {self.reviewer}.", 5000)
        return True

    async def correction_origin(self, key: str) -> CoreOrigin | None:
        """Who corrected (and approved) the saved correction of ``key`` and when, from the
        project's audit log, once what is unsaved is saved; None when the project holds none."""
        store = self.store
        if store is None:
            return None
        await self._flush(store)

        def read() -> CoreOrigin | None:
            from strokelens.core.stroke_summary import correction_origin

            record = store.record(key)
            if record is None or record.mask_file is None:
                return None
            return correction_origin(record, store.audit(key))

        return await self._run(read)

    # -- import and export ---------------------------------------------------------------------
    async def import_mask(self, path: str | Path) -> bool:
        """A mask made elsewhere (ITK-SNAP, Slicer; the case's geometry) as the correction of the
        case on screen; refused with the reason otherwise."""
        case, store = self.model.case, self.store
        if case is None or store is None:
            return False
        reviewer = self.reviewer or getpass.getuser()
        try:
            record = await self._run(store.import_mask, case, Path(path), reviewer)
            mask = await self._run(store.load_mask, case.key)
        except StrokeLensError as exc:
            self.tasks.report(exc, act=True)
            return False
        self.edit.adopt(case.key, mask, replace=True)
        self.model.set_review(case.key, record.status, record.reviewer)
        self.status.emit(f"Imported {Path(path).name} as the correction of {case.key}.", 5000)
        return True

    async def export(self, out: str | Path) -> bool:
        """Corrected and approved masks with ISLES names, the per-case CSV and the manifest."""
        store = self.store
        if store is None:
            return False
        await self._flush(store)
        try:
            result = await self._run(store.export, Path(out))
        except StrokeLensError as exc:
            self.tasks.report(exc, act=True)
            return False
        skipped = (
            f"; {len(result.skipped)} skipped: {', '.join(result.skipped)}"
            if result.skipped
            else ""
        )
        self.status.emit(f"Exported {len(result.masks)} mask(s) to {out}{skipped}", 10000)
        return True
