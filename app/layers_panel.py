"""Overlay layers: visibility, opacity and filled/contour drawing per layer, mirrored from the model.

A layer without data for the current case (no prediction yet, no ground truth, Tmax and the
threshold core while the case is measured) is greyed out but keeps its settings, so they apply as
soon as its data arrive. The heat layers (mean probability, uncertainty) carry a colour legend
with their range, the measured layers (Tmax > 6 s, threshold core) one line saying what their
voxels are; the contour width and
"overlays on CT only" (the maps' own colours unobscured) apply to every layer.
"""

from __future__ import annotations

import html

import numpy as np
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QIcon, QImage, QPixmap
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QSlider,
    QSpinBox,
    QWidget,
)

from strokelens.app import colormaps
from strokelens.app.events import subscribe
from strokelens.app.model import MAX_CONTOUR_WIDTH, Layer, Model

STYLES = ("filled", "contour")


def swatch(color: tuple[int, int, int]) -> QIcon:
    pixmap = QPixmap(12, 12)
    pixmap.fill(QColor(*color))
    return QIcon(pixmap)


def legend(layer: Layer, width: int = 110, height: int = 10) -> QWidget:
    """The colour ramp of a heat layer, drawn as ``colormaps.heat_rgba`` draws its values, over
    the dark background, with its range in the layer's units."""
    ramp = np.tile(np.linspace(0.0, layer.vmax, width, dtype=np.float32), (height, 1))
    rgba = colormaps.heat_rgba(ramp, layer.vmax, layer.color, layer.lut)
    assert rgba is not None
    alpha = rgba[..., 3:4] / 255.0
    rgb = np.ascontiguousarray((rgba[..., :3] * alpha + 30 * (1 - alpha)).astype(np.uint8))
    image = QImage(rgb.data, width, height, 3 * width, QImage.Format.Format_RGB888).copy()
    bar = QLabel()
    bar.setPixmap(QPixmap.fromImage(image))
    box = QWidget()
    row = QHBoxLayout(box)
    row.setContentsMargins(22, 0, 0, 0)
    for widget in (QLabel("0"), bar, QLabel(f"{layer.vmax:g}")):
        row.addWidget(widget)
    row.addStretch(1)
    box.setToolTip(f"{layer.title}: 0 (transparent) to {layer.vmax:g}")
    return box


def note_legend(layer: Layer) -> QLabel:
    """A mask layer's legend line: its colour and what its voxels are (``Layer.legend``)."""
    r, g, b = layer.color
    label = QLabel(f"<span style='color: rgb({r},{g},{b})'>■</span> {html.escape(layer.legend)}")
    label.setTextFormat(Qt.TextFormat.RichText)
    label.setWordWrap(True)
    label.setContentsMargins(22, 0, 0, 0)
    label.setStyleSheet("color: #8a9099; font-size: 11px;")
    return label


class LayersPanel(QWidget):
    def __init__(self, model: Model, parent: QWidget | None = None):
        super().__init__(parent)
        self.model = model
        self.checks: dict[str, QCheckBox] = {}
        self.opacity: dict[str, QSlider] = {}
        self.style: dict[str, QComboBox] = {}
        self.legends: dict[str, QWidget] = {}  # layer name -> its legend (heat and measured)
        grid = QGridLayout(self)
        grid.setContentsMargins(6, 6, 6, 6)
        grid.setHorizontalSpacing(8)
        for column, text in enumerate(("Layer", "Opacity", "Drawing")):
            header = QLabel(text)
            header.setStyleSheet("color: #8a9099;")
            grid.addWidget(header, 0, column)
        row = 0
        for key, (name, layer) in enumerate(model.layers.items(), start=1):
            row += 1
            check = QCheckBox(f"{layer.title}")
            check.setIcon(swatch(layer.color))
            check.setToolTip(f"Show or hide (key {key})")
            check.toggled.connect(lambda on, n=name: model.set_layer(n, visible=on))
            slider = QSlider(Qt.Orientation.Horizontal)
            slider.setRange(0, 100)
            slider.setMinimumWidth(70)
            slider.valueChanged.connect(lambda v, n=name: model.set_layer(n, opacity=v / 100))
            combo = QComboBox()
            combo.addItems(STYLES)
            combo.currentIndexChanged.connect(
                lambda i, n=name: model.set_layer(n, contour=STYLES[i] == "contour")
            )
            for column, widget in enumerate((check, slider, combo)):
                grid.addWidget(widget, row, column)
            self.checks[name], self.opacity[name], self.style[name] = check, slider, combo
            self._sync(name)
            if layer.kind == "heat" or layer.legend:
                row += 1
                self.legends[name] = legend(layer) if layer.kind == "heat" else note_legend(layer)
                grid.addWidget(self.legends[name], row, 0, 1, 3)
        self.width = QSpinBox()
        self.width.setRange(1, MAX_CONTOUR_WIDTH)
        self.width.setSuffix(" px")
        self.width.setToolTip("Thickness of contour drawings, all layers")
        self.width.valueChanged.connect(lambda w: model.set_overlay_style(contour_width=w))
        self.ct_only = QCheckBox("Overlays on CT only")
        self.ct_only.setToolTip("Draw the layers on the CT pane only: the maps' colours stay clear")
        self.ct_only.toggled.connect(lambda on: model.set_overlay_style(on_ct_only=on))
        grid.addWidget(QLabel("Contour width"), row + 1, 0)
        grid.addWidget(self.width, row + 1, 1)
        grid.addWidget(self.ct_only, row + 2, 0, 1, 3)
        grid.setRowStretch(row + 3, 1)
        grid.setColumnStretch(1, 1)
        subscribe(self, model.overlay_style_changed, self._sync_style)
        self._sync_style()
        subscribe(self, model.layer_changed, self._sync)
        subscribe(self, model.case_changed, self._sync_availability)
        subscribe(self, model.layer_data_changed, self._on_layer_data)
        self._sync_availability()

    def _sync(self, name: str) -> None:
        layer = self.model.layers[name]
        widgets = (self.checks[name], self.opacity[name], self.style[name])
        for widget in widgets:
            widget.blockSignals(True)
        self.checks[name].setChecked(layer.visible)
        self.opacity[name].setValue(round(layer.opacity * 100))
        self.style[name].setCurrentIndex(1 if layer.contour else 0)
        for widget in widgets:
            widget.blockSignals(False)

    def _sync_style(self) -> None:
        for widget in (self.width, self.ct_only):
            widget.blockSignals(True)
        self.width.setValue(self.model.contour_width)
        self.ct_only.setChecked(self.model.overlays_on_ct_only)
        for widget in (self.width, self.ct_only):
            widget.blockSignals(False)

    def _on_layer_data(self, _name: str, region: object) -> None:
        """A layer's data arrived or left (a region: a paint stroke changed some voxels of data
        that is there, which changes no availability)."""
        if region is None:
            self._sync_availability()

    def _sync_availability(self) -> None:
        for name, check in self.checks.items():
            present = self.model.layer_data(name) is not None
            check.setEnabled(present)
            check.setToolTip(
                check.toolTip().split("\n")[0] + ("" if present else "\nno data for this case")
            )
