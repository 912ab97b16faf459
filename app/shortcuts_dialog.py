"""Keyboard shortcuts and mouse gestures, listed from the window's own actions (never stale)."""

from __future__ import annotations

from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import QDialog, QHeaderView, QTableWidget, QTableWidgetItem, QVBoxLayout

MOUSE = (
    ("Wheel", "Next / previous slice"),
    ("Ctrl+Wheel", "Zoom"),
    ("Left drag", "Pan (Navigate); paint or erase (Brush, Eraser)"),
    ("Left click", "Paint a dab, fill (Fill), accept / reject a component (Pick)"),
    ("Middle drag", "Pan, whatever the tool"),
    ("Shift+Wheel", "Brush radius (Brush, Eraser)"),
    ("Right drag", "Window (left/right) and level (up/down) of that pane"),
    ("Hover", "Crosshair, values in the status bar, time-density curve"),
)


def shortcut_rows(actions: list[QAction]) -> list[tuple[str, str]]:
    """(keys, action text) for every action that has a shortcut, in menu order."""
    rows = []
    for action in actions:
        keys = [s.toString(QKeySequence.SequenceFormat.NativeText) for s in action.shortcuts()]
        if keys:
            rows.append((", ".join(keys), action.text().replace("&", "").rstrip(".…")))
    return rows


class ShortcutsDialog(QDialog):
    def __init__(self, actions: list[QAction], parent=None):
        super().__init__(parent)
        self.setWindowTitle("Keyboard shortcuts")
        rows = [*shortcut_rows(actions), *MOUSE]
        self.table = QTableWidget(len(rows), 2)
        self.table.setHorizontalHeaderLabels(["Keys", "Action"])
        self.table.verticalHeader().hide()
        self.table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
        for row, (keys, text) in enumerate(rows):
            self.table.setItem(row, 0, QTableWidgetItem(keys))
            self.table.setItem(row, 1, QTableWidgetItem(text))
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        header.setStretchLastSection(True)
        layout = QVBoxLayout(self)
        layout.addWidget(self.table)
        self.resize(520, 560)
