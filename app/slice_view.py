"""Five linked panes (CT, CBF, CBV, MTT, Tmax) on the same slice, with overlays and a crosshair.

The panes sit side by side in one row when the view is wide enough, else on a 3 + 2 (or 2 + 2 + 1)
grid: whichever makes the panes largest for the current size (a 1-pixel contour must not vanish
in a downscaled pane).

Overlays: each layer's RGBA per slice is cached, and all visible layers are blended into one image
per slice (one ``ImageItem`` per pane instead of one per layer); the neighbouring slices' blends
are made in idle time, so scrolling finds them ready.

Mouse: wheel = slice, Ctrl+wheel = zoom, left drag = pan, right drag = window/level (right-left:
width, up-down: level), hover = cursor. All panes are linked to the first pane's ViewBox (one
master: linking every pair makes the views fight).

Orientation: pane x = array column, pane y = array row (pixel centres at +0.5), so view
coordinates are voxel indices. The affine decides the flips: anterior up (rows are flipped when
the affine's j axis points posterior) and radiological left/right (the patient's right on the
screen's left: columns are flipped when the i axis points to the patient's right, i.e. +x in RAS).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QRectF, Qt, QTimer
from PySide6.QtGui import QColor
from PySide6.QtWidgets import (
    QApplication,
    QGraphicsEllipseItem,
    QGraphicsItem,
    QGraphicsSimpleTextItem,
    QLabel,
    QLineEdit,
    QSlider,
    QStackedLayout,
    QVBoxLayout,
    QWidget,
)

from strokelens.app import colormaps
from strokelens.app.events import subscribe
from strokelens.app.level_bar import LevelBar
from strokelens.app.model import UNITS, Model
from strokelens.core.case import CHANNELS

if TYPE_CHECKING:
    from strokelens.app.edit_session import EditSession
    from strokelens.core.editing.history import Region

#: Screen pixels of right-drag that double the window width / move the level by one width.
WIDTH_DRAG_PX = 150.0
LEVEL_DRAG_PX = 300.0
CROSSHAIR_PEN = (255, 255, 120, 120)
LETTER_COLOR = (200, 205, 215)
EDGES = ("left", "right", "top", "bottom")
#: Items that seldom change are drawn once into a pixmap, then blitted on each repaint.
CACHED = QGraphicsItem.CacheMode.DeviceCoordinateCache
#: Mouse presets: StrokeLens's own (the crosshair follows the mouse, right drag = window/level)
#: and ITK-SNAP's habits (see ``PaneViewBox``).
STROKELENS, ITKSNAP = "strokelens", "itksnap"
BRUSH_PEN = (255, 255, 255, 220)
#: Height of a pane's title and colour bar, for choosing the grid.
PANE_DECORATION_PX = 70.0


class PaneViewBox(pg.ViewBox):
    """A pane's ViewBox: wheel steps slices, Ctrl+wheel zooms, right drag sets window/level; with
    an editing tool, left drag paints and a left click paints, fills or picks, Shift+wheel sizes
    the brush (middle drag still pans). The ITK-SNAP preset: left click or drag places the
    crosshair, right drag zooms, Shift+right drag sets window/level, middle drag pans."""

    def __init__(self, view: SliceView, channel: str):
        super().__init__(enableMenu=False, lockAspect=True, defaultPadding=0.0)
        self.view = view
        self.channel = channel
        self._drag_start: tuple[float, float] | None = None

    def wheelEvent(self, ev, axis=None):  # noqa: N802 (Qt override)
        modifiers = ev.modifiers()
        if modifiers & Qt.KeyboardModifier.ControlModifier:
            super().wheelEvent(ev, axis)
            return
        ev.accept()
        delta = ev.delta()
        if not delta:
            return
        edit = self.view.edit
        if modifiers & Qt.KeyboardModifier.ShiftModifier and edit is not None and edit.paints:
            edit.step_radius(1 if delta > 0 else -1)
        else:
            self.view.model.step_slice(1 if delta > 0 else -1)

    def _voxel_point(self, pos) -> tuple[float, float]:
        """Voxel coordinates (y, x) of an item position, voxel centres on integers."""
        point = self.mapToView(pos)
        return point.y() - 0.5, point.x() - 0.5

    def _pin(self, pos) -> None:
        """ITK-SNAP: the left button places the crosshair (it does not follow the mouse)."""
        point = self.mapToView(pos)
        self.view.model.set_cursor((math.floor(point.y()), math.floor(point.x())))

    def mouseClickEvent(self, ev):  # noqa: N802 (Qt override)
        edit, left = self.view.edit, ev.button() == Qt.MouseButton.LeftButton
        if left and edit is not None and edit.edits:
            ev.accept()
            edit.press(*self._voxel_point(ev.pos()))  # a click paints one dab, fills, picks
            edit.release()
            return
        if left and self.view.mouse_preset == ITKSNAP:
            ev.accept()
            self._pin(ev.pos())
            return
        super().mouseClickEvent(ev)

    def mouseDragEvent(self, ev, axis=None):  # noqa: N802 (Qt override)
        edit, button = self.view.edit, ev.button()
        itksnap = self.view.mouse_preset == ITKSNAP
        if button == Qt.MouseButton.LeftButton and edit is not None and edit.edits:
            ev.accept()  # a paint stroke (fill and pick act on clicks; their drags do nothing)
            if edit.paints:
                if ev.isStart():
                    edit.press(*self._voxel_point(ev.buttonDownPos()))
                edit.drag(*self._voxel_point(ev.pos()))
                if ev.isFinish():
                    edit.release()
            return
        if button == Qt.MouseButton.LeftButton and itksnap:
            ev.accept()
            self._pin(ev.pos())
            return
        shift = bool(ev.modifiers() & Qt.KeyboardModifier.ShiftModifier)
        if button != Qt.MouseButton.RightButton or (itksnap and not shift):
            super().mouseDragEvent(ev, axis)  # pans (left, middle) or zooms (right, ITK-SNAP)
            return
        ev.accept()
        model = self.view.model
        if ev.isStart() or self._drag_start is None:
            self._drag_start = model.windows.get(self.channel, (1.0, 0.5))
        width0, level0 = self._drag_start
        moved = ev.screenPos() - ev.buttonDownScreenPos()
        width = width0 * 2.0 ** (moved.x() / WIDTH_DRAG_PX)
        level = level0 + moved.y() / LEVEL_DRAG_PX * width0
        model.set_window(self.channel, width, level)
        if ev.isFinish():
            self._drag_start = None


@dataclass
class Pane:
    channel: str
    box: PaneViewBox
    image: pg.ImageItem
    title: pg.LabelItem
    bar: LevelBar
    crosshair: tuple[pg.InfiniteLine, pg.InfiniteLine]
    overlay: pg.ImageItem  # all visible layers composited
    brush: QGraphicsEllipseItem  # the brush outline under the cursor
    letters: dict[str, QGraphicsSimpleTextItem]  # orientation at the left/right/top/bottom edge


class SliceView(QWidget):
    """The central widget: five panes, a slice slider, and a placeholder when nothing is open."""

    def __init__(
        self, model: Model, edit: EditSession | None = None, parent: QWidget | None = None
    ):
        """``edit``: the correction tools the mouse drives (None: a viewer only)."""
        super().__init__(parent)
        self.model = model
        self.edit = edit
        self.mouse_preset = STROKELENS
        self._layer_cache: dict[tuple[str, int, bool], np.ndarray | None] = {}  # layer, z, contour
        self._composites: dict[int, np.ndarray | None] = {}  # z -> composite of _composed_state
        self._composed_state: tuple = ()
        self._overlay_shown: np.ndarray | None = None  # the composite the panes hold
        # composites of the neighbouring slices are made in idle time, one per event-loop turn
        self._warm_timer = QTimer(self, singleShot=True, interval=0)
        self._warm_timer.timeout.connect(self._warm_neighbours)

        self.graphics = pg.GraphicsLayoutWidget()
        self.graphics.ci.setSpacing(4)
        self.graphics.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.panes: list[Pane] = [self._make_pane(ch) for ch in CHANNELS]
        self.columns = 0
        self.arrange(len(self.panes))
        master = self.panes[0].box
        for pane in self.panes[1:]:
            # followers mirror the master's ranges; locking their aspect too would let each
            # widen the shared range in turn (the panes are equal cells, so none is distorted)
            pane.box.setAspectLocked(False)
            pane.box.setXLink(master)
            pane.box.setYLink(master)
        self.graphics.scene().sigMouseMoved.connect(self._on_mouse_moved)

        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.slider.valueChanged.connect(model.set_slice)
        self.slice_label = QLabel()
        self.slice_label.setMinimumWidth(150)
        bottom = QWidget()
        row = pg.QtWidgets.QHBoxLayout(bottom)
        row.setContentsMargins(8, 2, 8, 4)
        row.addWidget(self.slice_label)
        row.addWidget(self.slider, 1)

        viewer = QWidget()
        column = QVBoxLayout(viewer)
        column.setContentsMargins(0, 0, 0, 0)
        column.setSpacing(0)
        column.addWidget(self.graphics, 1)
        column.addWidget(bottom)
        self.placeholder = QLabel(
            "No data set open.\n\nFile ▸ Open data set… (Ctrl+O), or drop a folder here."
        )
        self.placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.placeholder.setStyleSheet("color: #8a9099; font-size: 15px;")
        self._stack = QStackedLayout(self)
        self._stack.addWidget(self.placeholder)
        self._stack.addWidget(viewer)

        subscribe(self, model.case_changed, self._on_case)
        subscribe(self, model.slice_changed, self._on_slice)
        subscribe(self, model.window_changed, self._on_window)
        subscribe(self, model.cursor_changed, self._on_cursor)
        subscribe(self, model.layer_changed, self._on_layer)
        subscribe(self, model.layer_data_changed, self._on_layer_data)
        subscribe(self, model.overlay_style_changed, self._on_overlay_style)
        if edit is not None:
            subscribe(self, edit.tool_changed, self._on_tool)
            subscribe(self, edit.brush_changed, lambda _r: self._show_brush())

    # -- construction --------------------------------------------------------------------------
    def _make_pane(self, channel: str) -> Pane:
        title = pg.LabelItem(channel, size="10pt")
        box = PaneViewBox(self, channel)
        image = pg.ImageItem(axisOrder="row-major")
        image.setLookupTable(colormaps.LUTS[colormaps.CHANNEL_LUTS[channel]])
        box.addItem(image)
        overlay = pg.ImageItem(axisOrder="row-major")
        overlay.setZValue(10)
        overlay.setVisible(False)
        box.addItem(overlay)
        pen = pg.mkPen(CROSSHAIR_PEN, width=1)
        crosshair = (pg.InfiniteLine(angle=90, pen=pen), pg.InfiniteLine(angle=0, pen=pen))
        for line in crosshair:
            line.setZValue(100)
            line.setVisible(False)
            box.addItem(line, ignoreBounds=True)
        brush = QGraphicsEllipseItem()
        brush.setPen(pg.mkPen(BRUSH_PEN, width=1.5, cosmetic=True))
        brush.setZValue(110)
        brush.setVisible(False)
        box.addItem(brush, ignoreBounds=True)
        letters = {}
        for edge in EDGES:
            letter = QGraphicsSimpleTextItem(box)  # in the box's own frame, not the image's
            letter.setBrush(QColor(*LETTER_COLOR))
            letter.setZValue(120)
            letter.setCacheMode(CACHED)  # text shaping on every repaint cost more than the pane
            letters[edge] = letter
        box.sigResized.connect(lambda _box, p=letters: _place_letters(box, p))
        bar = LevelBar(colormaps.LUTS[colormaps.CHANNEL_LUTS[channel]], UNITS[channel])
        return Pane(channel, box, image, title, bar, crosshair, overlay, brush, letters)

    def best_columns(self, width: float, height: float) -> int:
        """Columns (5 = one row, 3 = 3 + 2, 2 = 2 + 2 + 1) that give the largest square panes."""
        n = len(self.panes)

        def pane_size(columns: int) -> float:
            rows = -(-n // columns)
            return min(width / columns, (height - rows * PANE_DECORATION_PX) / rows)

        return max((5, 3, 2), key=pane_size)

    def arrange(self, columns: int) -> None:
        """Place the panes on a grid ``columns`` wide (title, image and colour bar per pane)."""
        if columns == self.columns:
            return
        layout = self.graphics.ci
        for pane in self.panes:
            for item in (pane.title, pane.box, pane.bar):
                if item in layout.items:
                    layout.removeItem(item)
        for i, pane in enumerate(self.panes):
            row, col = divmod(i, columns)
            layout.addItem(pane.title, row=3 * row, col=col)
            layout.addItem(pane.box, row=3 * row + 1, col=col)
            layout.addItem(pane.bar, row=3 * row + 2, col=col)
        self.columns = columns
        self.reset_view()

    def resizeEvent(self, event) -> None:  # noqa: N802 (Qt override)
        super().resizeEvent(event)
        size = self.graphics.size()
        self.arrange(self.best_columns(size.width(), size.height()))

    # -- model events --------------------------------------------------------------------------
    def _on_case(self) -> None:
        case = self.model.case
        self._layer_cache.clear()
        self._composites.clear()
        if case is None:
            if self.graphics.hasFocus():  # else hiding it hands the focus to the case table,
                self.graphics.clearFocus()  # whose focus-in picks its first row: opens a case
            self._stack.setCurrentIndex(0)
            return
        if self._stack.currentIndex() == 0:  # the viewer appears: it takes the keys (layer
            self._stack.setCurrentIndex(1)  # toggles, slices) unless the user is typing
            if not isinstance(QApplication.focusWidget(), QLineEdit):
                self.graphics.setFocus()
        flip_x = bool(case.affine[0, 0] > 0)  # i toward the patient's right: flip to radiological
        flip_y = bool(case.affine[1, 1] < 0)  # j toward posterior: flip so anterior is up
        letters = orientation_letters(case.affine, flip_x, flip_y)
        for pane in self.panes:
            pane.box.invertX(flip_x)
            pane.box.invertY(flip_y)
            for edge, item in pane.letters.items():
                item.setText(letters[edge])
            _place_letters(pane.box, pane.letters)
            self._apply_window(pane)
        self.slider.blockSignals(True)
        self.slider.setRange(0, case.n_slices - 1)
        self.slider.setValue(self.model.slice)
        self.slider.blockSignals(False)
        self.reset_view()
        self._on_slice(self.model.slice)
        self._on_cursor()

    def _on_slice(self, z: int) -> None:
        case = self.model.case
        if case is None:
            return
        display = self.model.prepared.display  # type: ignore[union-attr]
        for pane in self.panes:
            pane.image.setImage(display[pane.channel][z], autoLevels=False)
        self._draw_overlays()
        if self.slider.value() != z:
            self.slider.blockSignals(True)
            self.slider.setValue(z)
            self.slider.blockSignals(False)
        z_mm = float((case.affine @ np.array([0.0, 0.0, z, 1.0]))[2])
        self.slice_label.setText(
            f"Slice {z + 1} / {case.n_slices}   (z {z_mm:.1f} mm)   "
            "<span style='color:#8a9099'>anterior up · patient's right on the left</span>"
        )

    def _on_window(self, channel: str) -> None:
        for pane in self.panes:
            if pane.channel == channel:
                self._apply_window(pane)

    def _apply_window(self, pane: Pane) -> None:
        width, level = self.model.windows.get(pane.channel, (1.0, 0.5))
        low, high = level - width / 2.0, level + width / 2.0
        if pane.bar.levels() == (low, high):
            return  # unchanged (a new case with the same window): skip the axis re-layout
        pane.image.setLevels((low, high))
        pane.bar.setLevels((low, high))
        pane.title.setText(
            f"<b>{pane.channel}</b>&nbsp;&nbsp;<span style='color:#8a9099'>"
            f"W {_short(width)} L {_short(level)}</span>"
        )

    def _on_cursor(self) -> None:
        cursor = self.model.cursor
        self._show_brush()
        for pane in self.panes:
            vline, hline = pane.crosshair
            if cursor is None:
                vline.setVisible(False)
                hline.setVisible(False)
                continue
            vline.setPos(cursor[1] + 0.5)
            hline.setPos(cursor[0] + 0.5)
            vline.setVisible(True)
            hline.setVisible(True)

    def _on_overlay_style(self) -> None:
        self._layer_cache.clear()  # the contour width is in every cached contour
        self._composites.clear()
        self._overlay_shown = None
        self._draw_overlays()

    def _on_tool(self, _tool: str) -> None:
        edit = self.edit
        shape = Qt.CursorShape.ArrowCursor
        if edit is not None and edit.edits:
            shape = Qt.CursorShape.CrossCursor if edit.paints else Qt.CursorShape.PointingHandCursor
        self.graphics.viewport().setCursor(shape)
        self._show_brush()

    def _show_brush(self) -> None:
        """The brush outline, on every pane, around the voxel under the cursor."""
        edit, case, cursor = self.edit, self.model.case, self.model.cursor
        shown = edit is not None and edit.paints and case is not None and cursor is not None
        for pane in self.panes:
            pane.brush.setVisible(shown)
        if not shown:
            return
        ry, rx = (edit.radius_mm / s for s in case.spacing[1:])  # type: ignore[union-attr]
        y, x = cursor[0] + 0.5, cursor[1] + 0.5  # type: ignore[index]
        for pane in self.panes:
            pane.brush.setRect(QRectF(x - rx, y - ry, 2 * rx, 2 * ry))

    def _on_layer(self, _name: str) -> None:
        self._draw_overlays()

    def _on_layer_data(self, name: str, region: Region | None) -> None:
        """Drop the cached slices of ``name`` inside ``region`` (all of them when None): a
        paint stroke redraws the slice it paints, not every slice of the layer."""
        hit = [k for k in self._layer_cache if k[0] == name and _inside(k[1], region)]
        for key in hit:
            del self._layer_cache[key]
        if not self.model.layers[name].visible:  # a hidden layer's new data changes no pixel
            return
        for z in [z for z in self._composites if _inside(z, region)]:
            del self._composites[z]
        if _inside(self.model.slice, region):
            self._draw_overlays()

    # -- overlays ------------------------------------------------------------------------------
    def overlay_rgba(self, name: str, z: int) -> np.ndarray | None:
        """The RGBA of layer ``name`` on slice ``z`` (cached until its data or style changes)."""
        layer = self.model.layers[name]
        width = self.model.contour_width
        key = (name, z, layer.contour)
        if key not in self._layer_cache:
            data = self.model.layer_data(name)
            if data is None:
                rgba = None
            elif layer.kind == "labels":
                rgba = colormaps.labels_rgba(data[z], layer.palette, layer.contour, width)
            elif layer.kind == "heat":
                rgba = colormaps.heat_rgba(
                    data[z], layer.vmax, layer.color, layer.lut, layer.contour, layer.threshold,
                    width,
                )  # fmt: skip
            else:
                rgba = colormaps.mask_rgba(data[z], layer.color, layer.contour, width)
            self._layer_cache[key] = rgba
        return self._layer_cache[key]

    def composite_rgba(self, z: int) -> np.ndarray | None:
        """All visible layers of slice ``z`` in one RGBA, each with its opacity (cached per slice
        until a layer's data or display settings change)."""
        state = tuple(
            (name, layer.opacity, layer.contour)
            for name, layer in self.model.layers.items()
            if layer.visible
        )
        if state != self._composed_state:
            self._composites.clear()
            self._composed_state = state
        if z not in self._composites:
            drawn = [(self.overlay_rgba(name, z), opacity) for name, opacity, _ in state]
            self._composites[z] = colormaps.composite(
                [(rgba, opacity) for rgba, opacity in drawn if rgba is not None]
            )
        return self._composites[z]

    def _warm_neighbours(self) -> None:
        case, z = self.model.case, self.model.slice
        if case is None:
            return
        for near in (z + 1, z - 1):
            if 0 <= near < case.n_slices and near not in self._composites:
                self.composite_rgba(near)
                self._warm_timer.start()
                return

    def _draw_overlays(self) -> None:
        self._warm_timer.start()
        rgba = None if self.model.case is None else self.composite_rgba(self.model.slice)
        changed = rgba is not self._overlay_shown
        self._overlay_shown = rgba
        ct_only = self.model.overlays_on_ct_only
        for pane in self.panes:
            if rgba is None or (ct_only and pane.channel != "CT"):
                pane.overlay.setVisible(False)
                continue
            if changed or not pane.overlay.isVisible():
                pane.overlay.setImage(rgba, autoLevels=False)
            pane.overlay.setVisible(True)

    # -- interaction ---------------------------------------------------------------------------
    def _on_mouse_moved(self, scene_pos) -> None:
        editing = self.edit is not None and self.edit.edits
        if self.mouse_preset == ITKSNAP and not editing:  # the crosshair stays where it was put
            return
        for pane in self.panes:
            if pane.box.sceneBoundingRect().contains(scene_pos):
                point = pane.box.mapSceneToView(scene_pos)
                self.model.set_cursor((math.floor(point.y()), math.floor(point.x())))
                return

    def reset_view(self) -> None:
        """Fit the slice in the panes (zoom and pan back to the start)."""
        case = self.model.case
        if case is None:
            return
        _, ny, nx = case.shape
        self.panes[0].box.setRange(QRectF(0, 0, nx, ny), padding=0.0)

    def pane_scene_point(self, channel: str, y: int, x: int):
        """Scene position of voxel centre (y, x) in a pane (for tests and tools)."""
        pane = next(p for p in self.panes if p.channel == channel)
        return pane.box.mapViewToScene(pg.Point(x + 0.5, y + 0.5))


def orientation_letters(affine: np.ndarray, flip_x: bool, flip_y: bool) -> dict[str, str]:
    """The patient direction (R/L, A/P, S/I) toward each screen edge of a pane that shows voxel
    ``i`` across (inverted when ``flip_x``) and ``j`` upward (inverted when ``flip_y``)."""
    screen_left = affine[:3, 0] * (1.0 if flip_x else -1.0)
    screen_up = affine[:3, 1] * (-1.0 if flip_y else 1.0)

    def letter(direction: np.ndarray) -> str:
        axis = int(np.argmax(np.abs(direction)))
        return ("RL", "AP", "SI")[axis][0 if direction[axis] > 0 else 1]

    return {
        "left": letter(screen_left),
        "right": letter(-screen_left),
        "top": letter(screen_up),
        "bottom": letter(-screen_up),
    }


def _place_letters(box: pg.ViewBox, letters: dict[str, QGraphicsSimpleTextItem]) -> None:
    rect = box.rect()
    for edge, item in letters.items():
        size = item.boundingRect()
        x = {"left": 4.0, "right": rect.width() - size.width() - 4.0}.get(
            edge, (rect.width() - size.width()) / 2
        )
        y = {"top": 2.0, "bottom": rect.height() - size.height() - 2.0}.get(
            edge, (rect.height() - size.height()) / 2
        )
        item.setPos(x, y)


def _inside(z: int, region: Region | None) -> bool:
    return region is None or region.z0 <= z < region.z1


def _short(value: float) -> str:
    return f"{value:.0f}" if abs(value) >= 10 else f"{value:.3g}"
