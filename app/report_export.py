"""File ▸ Export report…: the current case's one-page stroke report (PDF and PNG, as
``strokelens summary`` writes it, ``core.stroke_report``) into a folder; Qt-free.

The page is made from a fresh ``StrokeSummary`` of the masks on screen, with the full origin of
its core: the ensemble's name, member count and fingerprint (its manifest read in a worker), or
who corrected and approved the correction and when (the project's audit log, after saving what
is unsaved). Everything slow runs in workers; the outcome is one status line (``status(text,
ms)``), a failure goes to the status bar and the log (``Tasks.report``), never to a dialog.
"""

from __future__ import annotations

import getpass
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from psygnal import Signal

from strokelens.app.model import Model
from strokelens.app.project_session import ProjectSession
from strokelens.app.summary_session import SummarySession
from strokelens.app.tasks import Tasks
from strokelens.core.errors import StrokeLensError
from strokelens.core.safepath import check_name, path_inside
from strokelens.core.stroke_summary import CoreKind, CoreOrigin

if TYPE_CHECKING:
    from strokelens.app.model import AiCore
    from strokelens.core.case import Case


def ensemble_origin(manifest_path: Path, allow_external_members: bool) -> CoreOrigin:
    """The origin of an ensemble's core: its name, member count and cache fingerprint (worker)."""
    from strokelens.core.manifest import read_manifest
    from strokelens.core.prediction_store import manifest_fingerprint

    manifest = read_manifest(manifest_path, allow_external_members)
    return CoreOrigin(
        CoreKind.ENSEMBLE,
        ensemble=manifest.name,
        fingerprint=manifest_fingerprint(manifest),
        members=len(manifest.members),
    )


def write_case_report(
    case, prediction, corrected, origin, measured, pdf: Path, png: Path, dataset_root: Path | None
):
    """Summarize ``case`` and write its page (worker)."""
    from strokelens.core.output import refuse_inside
    from strokelens.core.stroke_report import write_report

    if dataset_root is not None:
        refuse_inside(pdf.parent, dataset_root, "a report")
    from strokelens.core.stroke_summary import summarize_stroke

    summary = summarize_stroke(case, prediction, corrected, origin, measured)
    return write_report(summary, pdf, png)


class ReportExport:
    """Writes the report of ``model``'s current case; ``ensemble()`` is the manifest the AI
    runs (None: none chosen)."""

    status = Signal(str, int)

    def __init__(
        self,
        model: Model,
        tasks: Tasks,
        summaries: SummarySession,
        project: ProjectSession,
        ensemble: Callable[[], Path | None],
        allow_external_members: bool = False,
    ):
        self.model, self.tasks, self.summaries, self.project = model, tasks, summaries, project
        self.ensemble = ensemble
        self.allow_external_members = allow_external_members

    def file_stem(self, case: Case) -> str:
        """``<case id>_summary`` as ``strokelens summary`` names it; the split goes in front
        when another split of the data set has a case of the same id."""
        ids = [entry.ref.id for entry in self.model.entries]
        name = check_name(case.id, "case id", case.paths.get("CT", case.key))
        if ids.count(case.id) > 1 and case.split:
            name = f"{check_name(case.split, 'split', case.key)}_{name}"
        return f"{name}_summary"

    async def export(self, folder: str | Path) -> Path | None:
        """Write ``<case>_summary.pdf`` and ``.png`` into ``folder``; the PDF's path, or None
        (reported: no case, or the writing failed)."""
        case = self.model.case
        if case is None:
            self.status.emit("Open a case first: the report is the current case's.", 5000)
            return None
        try:
            stem = self.file_stem(case)
            pdf = path_inside(folder, f"{stem}.pdf")
            png = path_inside(folder, f"{stem}.png")
            self.status.emit(f"Writing the report of {case.key}…", 0)
            measured = await self.summaries.measures(case)
            core = self.model.ai_core()
            corrected = None if core is None or core.corrected is None else core.corrected.copy()
            origin = await self._origin(case, core)
            if self.model.case is not case:
                self.status.emit(f"Report of {case.key} not written: the case changed.", 8000)
                return None
            prediction = None if core is None else core.prediction
            await self.tasks.run_in_worker(
                write_case_report,
                case,
                prediction,
                corrected,
                origin,
                measured,
                pdf,
                png,
                None if self.model.dataset is None else self.model.dataset.root,
            )
        except (StrokeLensError, OSError, ValueError) as exc:
            self.status.emit("", 0)
            self.tasks.report(exc)
            return None
        self.status.emit(f"Report of {case.key} written to {pdf} (and {png.name})", 15000)
        return pdf

    async def _origin(self, case: Case, core: AiCore | None) -> CoreOrigin:
        if core is None:
            return CoreOrigin(CoreKind.NONE)
        if core.corrected is None:
            path = self.ensemble()
            if path is None:
                return CoreOrigin(CoreKind.ENSEMBLE, members=len(core.prediction.member_names))
            return await self.tasks.run_in_worker(
                ensemble_origin, path, self.allow_external_members
            )
        saved = await self.project.correction_origin(case.key)
        if saved is not None:
            return saved
        who = self.project.reviewer or getpass.getuser()
        return CoreOrigin(
            CoreKind.CORRECTED, corrected_by=who, corrected_at="not saved in a project"
        )
