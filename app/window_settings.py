"""What the window remembers between sessions (QSettings): the recent data sets, the overlay
style, the mouse preset, the doubt score that ranks the cases, the geometry and the docks' layout
(a first launch gets defaults; a remembered value that is none of the choices is ignored)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from PySide6.QtCore import QSettings, Qt

from strokelens.app.slice_view import ITKSNAP, STROKELENS
from strokelens.core import ranking

if TYPE_CHECKING:
    from strokelens.app.main_window import MainWindow

DEFAULT_SIZE = (1600, 960)


def setting_list(settings: QSettings, key: str) -> list[str]:
    value = settings.value(key, [])
    if isinstance(value, str):  # QSettings returns a lone string for one-element lists
        return [value]
    return [str(v) for v in value or []]


def restore(window: MainWindow) -> None:
    """The remembered overlay style, mouse preset, ranking, geometry and dock layout, else
    defaults."""
    settings = window.settings
    hidpi = window.devicePixelRatioF() >= 2  # 1-pixel contours vanish on jet-style maps there
    width = settings.value("view/contour_width", 2 if hidpi else 1)
    ct_only = settings.value("view/overlays_on_ct_only", "false")
    window.model.set_overlay_style(
        contour_width=int(width) if str(width).isdigit() else 1,
        on_ct_only=str(ct_only).lower() == "true",
    )
    preset = settings.value("view/mouse_preset", STROKELENS)
    window.set_mouse_preset(ITKSNAP if preset == ITKSNAP else STROKELENS)
    strategy = settings.value("ai/ranking", ranking.DEFAULT)
    window.doubt.set_strategy(strategy if strategy in ranking.STRATEGIES else ranking.DEFAULT)
    geometry = settings.value("window/geometry")
    if geometry is None or not window.restoreGeometry(geometry):
        window.resize(*DEFAULT_SIZE)
    state = settings.value("window/state")
    if state is None or not window.restoreState(state):
        docks = window.docks
        window.resizeDocks(
            [docks["cases"], docks["mismatch"]], [440, 330], Qt.Orientation.Horizontal
        )
        window.resizeDocks(
            [docks["mismatch"], docks["layers"], docks["curve"]],
            [430, 240, 200],
            Qt.Orientation.Vertical,
        )


def save(window: MainWindow) -> None:
    settings = window.settings
    settings.setValue("window/geometry", window.saveGeometry())
    settings.setValue("window/state", window.saveState())
    settings.setValue("recent", window.recent.paths)
    settings.setValue("view/contour_width", window.model.contour_width)
    settings.setValue("view/overlays_on_ct_only", window.model.overlays_on_ct_only)
    settings.setValue("ai/ranking", window.doubt.strategy)
    settings.sync()
