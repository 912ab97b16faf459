"""Overlay layers: visibility, opacity and filled/contour drawing per layer, mirrored from the model.

A layer without data for the current case (no prediction yet, no ground truth) is greyed out
but keeps its settings, so they apply as soon as its data arrive.
"""

from __future__ import annotations

from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QIcon, QPixmap
from PySide6.QtWidgets import QCheckBox, QComboBox, QGridLayout, QLabel, QSlider, QWidget

from strokelens.app.events import subscribe
from strokelens.app.model import Model

STYLES = ("filled", "contour")


def swatch(color: tuple[int, int, int]) -> QIcon:
    pixmap = QPixmap(12, 12)
    pixmap.fill(QColor(*color))
    return QIcon(pixmap)


class LayersPanel(QWidget):
    def __init__(self, model: Model, parent: QWidget | None = None):
        super().__init__(parent)
        self.model = model
        self.checks: dict[str, QCheckBox] = {}
        self.opacity: dict[str, QSlider] = {}
        self.style: dict[str, QComboBox] = {}
        grid = QGridLayout(self)
        grid.setContentsMargins(6, 6, 6, 6)
        grid.setHorizontalSpacing(8)
        for column, text in enumerate(("Layer", "Opacity", "Drawing")):
            header = QLabel(text)
            header.setStyleSheet("color: #8a9099;")
            grid.addWidget(header, 0, column)
        for row, (name, layer) in enumerate(model.layers.items(), start=1):
            check = QCheckBox(f"{layer.title}")
            check.setIcon(swatch(layer.color))
            check.setToolTip(f"Show or hide (key {row})")
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
        grid.setRowStretch(len(model.layers) + 1, 1)
        grid.setColumnStretch(1, 1)
        subscribe(self, model.layer_changed, self._sync)
        subscribe(self, model.case_changed, self._sync_availability)
        subscribe(self, model.layer_data_changed, lambda _name: self._sync_availability())
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

    def _sync_availability(self) -> None:
        for name, check in self.checks.items():
            present = self.model.layer_data(name) is not None
            check.setEnabled(present)
            check.setToolTip(
                check.toolTip().split("\n")[0] + ("" if present else "\nno data for this case")
            )
