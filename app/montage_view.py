"""Every slice of the case at a glance, as on RAPID's summary and the report's page: CT (0-80 HU)
with the AI core filled pink, Tmax > 6 s green and the threshold core's outline yellow; a click
on a tile goes to that slice.

The picture is the report's own (``core.stroke_report.montage`` of the ``SummarySession``'s
summary), cut back into tiles and shrunk to at most ``TILE_PX`` in a worker; the GUI thread only
wraps the finished tiles in ``QImage``s and paints them, so a large case never blocks it. The
tiles are made again when the summary changes, while the montage is on screen (else once it is
shown), one build at a time.
"""

from __future__ import annotations

import math

import numpy as np
from PySide6.QtCore import QRect, QSize, Qt
from PySide6.QtGui import QColor, QImage, QPainter, QPen
from PySide6.QtWidgets import QLabel, QScrollArea, QSizePolicy, QVBoxLayout, QWidget

from strokelens.app.events import subscribe
from strokelens.app.model import Model
from strokelens.app.summary_session import SummarySession
from strokelens.app.tasks import Tasks

#: Longest side of a tile as built (the dock shows them at most this large).
TILE_PX = 192
#: The width a tile is aimed at when choosing the columns.
TARGET_TILE_PX = 120
GAP_PX = 3
CURRENT_PEN = (255, 235, 60)
LEGEND = (
    "<span style='color:#e0508a'>■</span> AI core ({core}) "
    "&nbsp;<span style='color:#3fbf6f'>■</span> Tmax &gt; 6 s "
    "&nbsp;<span style='color:#ffd54f'>□</span> threshold core (outline)"
)


def montage_tiles(summary, tile_px: int = TILE_PX) -> np.ndarray:
    """uint8 ``(z, h, w, 3)``: the report's montage of ``summary``, one tile per slice, each
    shrunk (nearest voxel) so that its longer side is at most ``tile_px`` (worker)."""
    from strokelens.core.stroke_report import montage

    page, columns, _corner = montage(summary)
    n = summary.layers.ct.shape[0]
    rows = math.ceil(n / columns)
    h, w = page.shape[0] // rows, page.shape[1] // columns
    scale = min(1.0, tile_px / max(h, w))
    ys = np.linspace(0, h - 1, max(1, round(h * scale))).round().astype(int)
    xs = np.linspace(0, w - 1, max(1, round(w * scale))).round().astype(int)
    tiles = np.empty((n, len(ys), len(xs), 3), np.uint8)
    for z in range(n):
        r, c = divmod(z, columns)
        tile = page[r * h : (r + 1) * h, c * w : (c + 1) * w][np.ix_(ys, xs)]
        tiles[z] = np.clip(tile * 255 + 0.5, 0, 255).astype(np.uint8)
    return tiles


class TileGrid(QWidget):
    """The tiles on a grid as wide as the widget; ``tile_rect(z)`` and ``tile_at(point)`` map
    between slices and places (public for tests and tools)."""

    def __init__(self, model: Model, parent: QWidget | None = None):
        super().__init__(parent)
        self.model = model
        self.images: list[QImage] = []
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self.setCursor(Qt.CursorShape.PointingHandCursor)

    def set_tiles(self, tiles: np.ndarray | None) -> None:
        self.images = []
        if tiles is not None:
            n, h, w, _ = tiles.shape
            for z in range(n):
                rgb = np.ascontiguousarray(tiles[z])
                image = QImage(rgb.data, w, h, 3 * w, QImage.Format.Format_RGB888)
                self.images.append(image.copy())  # owns its pixels
        self.updateGeometry()
        self._fit_height()
        self.update()

    def _layout(self, width: int) -> tuple[int, float, float]:
        """Columns, tile width and tile height (screen pixels) for ``width``."""
        if not self.images:
            return 1, 0.0, 0.0
        columns = max(1, min(len(self.images), (width + GAP_PX) // (TARGET_TILE_PX + GAP_PX)))
        tile_w = (width - GAP_PX * (columns - 1)) / columns
        first = self.images[0]
        return columns, tile_w, tile_w * first.height() / max(first.width(), 1)

    def _fit_height(self) -> None:
        columns, _w, tile_h = self._layout(self.width())
        rows = math.ceil(len(self.images) / columns)
        self.setMinimumHeight(math.ceil(rows * (tile_h + GAP_PX)))

    def resizeEvent(self, event) -> None:  # noqa: N802 (Qt override)
        super().resizeEvent(event)
        self._fit_height()

    def sizeHint(self) -> QSize:  # noqa: N802 (Qt override)
        return QSize(3 * TARGET_TILE_PX, 2 * TARGET_TILE_PX)

    def tile_rect(self, z: int) -> QRect:
        columns, tile_w, tile_h = self._layout(self.width())
        r, c = divmod(z, columns)
        return QRect(
            round(c * (tile_w + GAP_PX)), round(r * (tile_h + GAP_PX)), int(tile_w), int(tile_h)
        )

    def tile_at(self, x: float, y: float) -> int | None:
        for z in range(len(self.images)):
            if self.tile_rect(z).contains(int(x), int(y)):
                return z
        return None

    def mousePressEvent(self, event) -> None:  # noqa: N802 (Qt override)
        if event.button() != Qt.MouseButton.LeftButton:
            super().mousePressEvent(event)
            return
        z = self.tile_at(event.position().x(), event.position().y())
        if z is not None:
            self.model.set_slice(z)
        event.accept()

    def paintEvent(self, _event) -> None:  # noqa: N802 (Qt override)
        if not self.images:
            return
        painter = QPainter(self)
        painter.setPen(QColor(255, 255, 255))
        current = self.model.slice
        for z, image in enumerate(self.images):
            rect = self.tile_rect(z)
            painter.drawImage(rect, image)
            painter.setPen(QColor(255, 255, 255))
            painter.drawText(rect.adjusted(4, 2, 0, 0), Qt.AlignmentFlag.AlignLeft, str(z + 1))
            if z == current:
                painter.setPen(QPen(QColor(*CURRENT_PEN), 2))
                painter.drawRect(rect.adjusted(1, 1, -1, -1))
        painter.end()


class MontageView(QWidget):
    """The montage dock: a legend line, the tiles (scrolling) and a line saying what is missing."""

    def __init__(
        self, model: Model, session: SummarySession, tasks: Tasks, parent: QWidget | None = None
    ):
        super().__init__(parent)
        self.model, self.session, self.tasks = model, session, tasks
        self.legend = QLabel()
        self.legend.setTextFormat(Qt.TextFormat.RichText)
        self.legend.setWordWrap(True)
        self.message = QLabel()
        self.message.setStyleSheet("color: #8a9099;")
        self.message.setWordWrap(True)
        self.grid = TileGrid(model)
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setWidget(self.grid)
        scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        scroll.setMinimumHeight(40)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(self.legend)
        layout.addWidget(scroll, 1)
        layout.addWidget(self.message)
        self._shown_summary = None  # the summary the tiles are of
        self._building = False
        subscribe(self, session.changed, self.want)
        subscribe(self, model.case_changed, self._on_case)
        subscribe(self, model.slice_changed, lambda _z: self.grid.update())
        self._on_case()

    def tile_count(self) -> int:
        return len(self.grid.images)

    def _on_case(self) -> None:
        if self._shown_summary is not None:
            case = self.model.case
            if case is None or self._shown_summary.case_key != case.key:
                self._shown_summary = None
                self.grid.set_tiles(None)
        self._say()
        self.want()

    def _say(self) -> None:
        summary = self._shown_summary
        core = "none yet" if summary is None or summary.ai_core_ml is None else summary.origin.kind
        self.legend.setText(LEGEND.format(core=core))
        if self.model.case is None:
            self.message.setText("No case open.")
        elif summary is None:
            self.message.setText("Measuring the case…")
        elif summary.ai_core_ml is None:
            self.message.setText("No AI core yet (Run AI, Ctrl+R): Tmax and threshold core only.")
        else:
            self.message.setText("Click a slice to show it.")

    def showEvent(self, event) -> None:  # noqa: N802 (Qt override)
        super().showEvent(event)
        self.want()

    def want(self) -> None:
        """Build the tiles of the session's summary when they are out of date and on screen."""
        summary = self.session.summary
        if summary is None or summary is self._shown_summary or self._building:
            return
        if self.isVisible():
            self.tasks.spawn(self._build(summary))

    async def _build(self, summary) -> None:
        self._building = True
        try:
            tiles = await self.tasks.run_in_worker(montage_tiles, summary)
        finally:
            self._building = False
        case = self.model.case
        if case is not None and case.key == summary.case_key:
            self._shown_summary = summary
            self.grid.set_tiles(tiles)
            self._say()
        self.want()  # a newer summary came meanwhile
