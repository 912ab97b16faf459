"""The window's project actions and what it shows of the project: the read-only banner, saved /
unsaved in the title, approve (asking the reviewer's name once), new / open project, import and
export. The work is ``ProjectSession``'s; this only turns menus into its calls.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtWidgets import QFileDialog, QLabel

from strokelens.app.project_session import ProjectSession
from strokelens.app.reviewer_dialog import ReviewerDialog

if TYPE_CHECKING:
    from strokelens.app.main_window import MainWindow

BANNER_STYLE = "background: #6b2d1f; color: #ffe3d6; padding: 6px; font-weight: bold;"


class ProjectActions:
    def __init__(self, window: MainWindow, project: ProjectSession):
        self.window, self.project = window, project
        self.banner = QLabel()
        self.banner.setStyleSheet(BANNER_STYLE)
        self.banner.setWordWrap(True)
        self.banner.hide()
        self.reviewer_dialog: ReviewerDialog | None = None
        project.read_only.connect(self._show_read_only)
        project.opened.connect(self._opened)
        project.saved_changed.connect(window.show_title)
        project.status.connect(window.show_status)

    def _show_read_only(self, reason: str) -> None:
        self.banner.setText(f"Read-only: {reason}. Editing is off in this window.")
        self.banner.show()

    def _opened(self, _path: str) -> None:
        if self.project.store is not None and self.project.store.writable:
            self.banner.hide()
        self.window.show_title()

    def title_suffix(self) -> str:
        """ " — unsaved" / " — saved" / " — read-only" for the window title."""
        store = self.project.store
        if store is None:
            return ""
        if not store.writable:
            return " — read-only"
        return " — unsaved •" if self.project.unsaved() else " — saved"

    def approve(self) -> None:
        """Approve the case on screen; the reviewer's name is asked once, then remembered."""
        if self.project.reviewer:
            self.window.tasks.spawn(self.project.approve())
            return
        self.reviewer_dialog = dialog = ReviewerDialog(self.window)
        dialog.chosen.connect(self._reviewer_chosen)
        dialog.open()  # not exec(): never block the loop

    def _reviewer_chosen(self, name: str) -> None:
        self.project.reviewer = name
        self.window.settings.setValue("review/reviewer", name)
        self.window.tasks.spawn(self.project.approve())

    def choose_project(self) -> None:
        """File ▸ New or open project: a folder (a new one is created there)."""
        if self.window.model.dataset is None:
            self.window.show_status("Open a data set first: a project belongs to one.", 5000)
            return
        path = QFileDialog.getExistingDirectory(
            self.window, "New or open project", str(Path.home())
        )
        if path:
            self.window.tasks.spawn(self.project.open(path))

    def choose_import(self) -> None:
        path, _ = QFileDialog.getOpenFileName(
            self.window, "Import a mask for this case", str(Path.home()), "NIfTI (*.nii *.nii.gz)"
        )
        if path:
            self.window.tasks.spawn(self.project.import_mask(path))

    def choose_export(self) -> None:
        path = QFileDialog.getExistingDirectory(
            self.window, "Export corrected masks to", str(Path.home())
        )
        if path:
            self.window.tasks.spawn(self.project.export(path))
