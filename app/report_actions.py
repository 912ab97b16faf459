"""The window's File ▸ Export report…: the folder dialog (remembering the last folder), then
``ReportExport`` in the background; its status line goes to the window's status bar."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from strokelens.app.report_dialog import ReportDialog
from strokelens.app.report_export import ReportExport

if TYPE_CHECKING:
    from strokelens.app.main_window import MainWindow

FOLDER_SETTING = "report/folder"


class ReportActions:
    def __init__(self, window: MainWindow, export: ReportExport):
        self.window, self.export = window, export
        self.dialog: ReportDialog | None = None
        export.status.connect(window.show_status)

    def choose(self) -> None:
        case = self.window.model.case
        if case is None:
            self.window.show_status("Open a case first: the report is the current case's.", 5000)
            return
        start = str(self.window.settings.value(FOLDER_SETTING) or Path.home())
        self.dialog = ReportDialog(start, case.key, self.window)
        self.dialog.chosen.connect(self.write)
        self.dialog.open()  # not exec(): never block the loop

    def write(self, folder: str) -> None:
        """Write the current case's report into ``folder`` (remembered for the next time)."""
        self.window.settings.setValue(FOLDER_SETTING, folder)
        self.window.tasks.spawn(self.export.export(folder))
