"""A pane's colour legend: the colour map as a strip over its display range, with a unit axis.

pyqtgraph's ``ColorBarItem`` draws the same, but it is a whole ``PlotItem`` (four axes, a view
box, their menus) built for dragging levels; the five panes only show their window, and five of
those cost a tenth of a second at launch. This is the strip and the axis, nothing more.
"""

from __future__ import annotations

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QImage, QPainter, QPen
from PySide6.QtWidgets import QGraphicsLinearLayout, QSizePolicy

FRAME_COLOR = QColor(150, 150, 150)


class _Strip(pg.GraphicsWidget):
    """The colour map stretched over the widget's rectangle, framed."""

    def __init__(self, lut: np.ndarray, height: float):
        super().__init__()
        rgb = np.ascontiguousarray(np.asarray(lut, dtype=np.uint8)[None, :, :3])
        self._image = QImage(
            rgb.data, rgb.shape[1], 1, 3 * rgb.shape[1], QImage.Format.Format_RGB888
        )
        self._image = self._image.copy()  # own the pixels: the array may go
        self.setFixedHeight(height)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)

    def paint(self, painter: QPainter, *_args) -> None:
        rect = self.rect()
        painter.drawImage(rect, self._image, QRectF(self._image.rect()))
        painter.setPen(QPen(FRAME_COLOR, 0))
        painter.setBrush(Qt.BrushStyle.NoBrush)
        painter.drawRect(rect)


class LevelBar(pg.GraphicsWidget):
    """A horizontal legend: ``lut`` (N x 3 or 4 uint8) from ``levels()[0]`` to ``levels()[1]``,
    ticks and ``label`` below."""

    def __init__(self, lut: np.ndarray, label: str, height: float = 8.0):
        super().__init__()
        self.strip = _Strip(lut, height)
        self.axis = pg.AxisItem("bottom")
        self.axis.setLabel(label)
        layout = QGraphicsLinearLayout(Qt.Orientation.Vertical)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addItem(self.strip)
        layout.addItem(self.axis)
        self.setLayout(layout)
        self._levels = (0.0, 1.0)
        self.axis.setRange(*self._levels)

    def levels(self) -> tuple[float, float]:
        return self._levels

    def setLevels(self, levels: tuple[float, float]) -> None:  # noqa: N802 (ColorBarItem's name)
        self._levels = (float(levels[0]), float(levels[1]))
        self.axis.setRange(*self._levels)
