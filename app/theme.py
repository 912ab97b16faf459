"""Dark theme (Fusion style + palette) and pyqtgraph's global options, set once at start-up."""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication

BACKGROUND = "#0d0f12"
FOREGROUND = "#d4d7dd"
ACCENT = "#3d8fd6"
OK_COLOR = "#4cc76a"
WARN_COLOR = "#e5a33a"
BAD_COLOR = "#e05555"


def configure_pyqtgraph() -> None:
    """Row-major images ((y, x) arrays as they are), no OpenGL, the dark plot colours."""
    pg.setConfigOptions(
        imageAxisOrder="row-major",
        useOpenGL=False,
        antialias=False,
        background=BACKGROUND,
        foreground=FOREGROUND,
    )


def apply_dark(app: QApplication) -> None:
    app.setStyle("Fusion")
    palette = QPalette()
    roles = {
        QPalette.ColorRole.Window: "#1b1e23",
        QPalette.ColorRole.WindowText: FOREGROUND,
        QPalette.ColorRole.Base: "#14171b",
        QPalette.ColorRole.AlternateBase: "#1f2329",
        QPalette.ColorRole.ToolTipBase: "#2a2f36",
        QPalette.ColorRole.ToolTipText: FOREGROUND,
        QPalette.ColorRole.Text: FOREGROUND,
        QPalette.ColorRole.Button: "#262a31",
        QPalette.ColorRole.ButtonText: FOREGROUND,
        QPalette.ColorRole.BrightText: "#ff6b6b",
        QPalette.ColorRole.Highlight: ACCENT,
        QPalette.ColorRole.HighlightedText: "#ffffff",
        QPalette.ColorRole.Link: ACCENT,
        QPalette.ColorRole.PlaceholderText: "#7a808a",
    }
    for role, color in roles.items():
        palette.setColor(role, QColor(color))
    for role in (QPalette.ColorRole.Text, QPalette.ColorRole.ButtonText):
        palette.setColor(QPalette.ColorGroup.Disabled, role, QColor("#6a6f78"))
    app.setPalette(palette)
    app.setStyleSheet(
        "QDockWidget::title { padding: 4px; background: #23272e; }"
        "QToolTip { border: 1px solid #3a3f47; }"
    )
