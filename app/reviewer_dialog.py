"""Asks the reviewer's name once (the first approval); the window remembers it."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QDialog, QDialogButtonBox, QLabel, QLineEdit, QVBoxLayout

#: The store's reviewer labels are at most this long.
MAX_NAME = 64


class ReviewerDialog(QDialog):
    """``chosen(name)`` once a non-empty name is accepted."""

    chosen = Signal(str)

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setWindowTitle("Reviewer")
        self.name = QLineEdit()
        self.name.setMaxLength(MAX_NAME)
        self.name.setPlaceholderText("e.g. Dr A. Smith")
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Ok | QDialogButtonBox.StandardButton.Cancel
        )
        buttons.accepted.connect(self._accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(QLabel("Who approves? (asked once, recorded with every approval)"))
        layout.addWidget(self.name)
        layout.addWidget(buttons)

    def _accept(self) -> None:
        name = self.name.text().strip()
        if name:
            self.accept()
            self.chosen.emit(name)
