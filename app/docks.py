"""How a panel becomes a dock of the main window."""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QDockWidget, QMainWindow, QScrollArea, QWidget


def scrolled(widget: QWidget, min_height: int = 0) -> QScrollArea:
    """``widget`` in a scroll area at least ``min_height`` tall: a tall panel does not make the
    window taller."""
    area = QScrollArea()
    area.setMinimumHeight(min_height)
    area.setWidgetResizable(True)
    area.setFrameShape(QScrollArea.Shape.NoFrame)
    area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)  # never cut columns:
    bar = area.verticalScrollBar().sizeHint().width()  # the dock is as wide as the panel needs
    area.setMinimumWidth(widget.minimumSizeHint().width() + bar)
    area.setWidget(widget)
    return area


def add_dock(
    window: QMainWindow, title: str, widget: QWidget, area: Qt.DockWidgetArea
) -> QDockWidget:
    dock = QDockWidget(title, window)
    dock.setObjectName(f"dock-{title}")  # saveState / restoreState find it by this name
    dock.setWidget(widget)
    window.addDockWidget(area, dock)
    return dock
