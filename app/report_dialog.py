"""File ▸ Export report…: asks for the folder the current case's report goes to."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QFileDialog, QWidget


class ReportDialog(QFileDialog):
    """A folder chooser; ``chosen(folder)`` once one is accepted (opened with ``open()``)."""

    chosen = Signal(str)

    def __init__(self, start: str, case_key: str, parent: QWidget | None = None):
        super().__init__(parent, f"Export the report of {case_key} to", start)
        self.setFileMode(QFileDialog.FileMode.Directory)
        self.setOption(QFileDialog.Option.ShowDirsOnly, True)
        self.fileSelected.connect(self.chosen.emit)
