"""Time-density curve under the cursor and the arterial input function (AIF).

The curve under the cursor (absolute HU, mean of a 5 x 5 patch, left axis, fixed to the brain's
range per case) and the AIF (enhancement over baseline, right axis:
arterial peaks are ten times the tissue's) share the time axis. The 4D series is loaded by the
main window in a worker when this dock is shown; the model keeps it for the current case only.
"""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from strokelens.app.events import subscribe
from strokelens.app.model import Model

TISSUE_PEN = ("#ffd24a", 2)
AIF_PEN = ("#ff5a5a", 2)


class CurvePanel(QWidget):
    def __init__(self, model: Model, parent: QWidget | None = None):
        super().__init__(parent)
        self.model = model
        self.message = QLabel()
        self.message.setStyleSheet("color: #8a9099; padding: 2px 6px;")
        self.message.setWordWrap(True)
        self.readout = QLabel()
        self.readout.setStyleSheet("padding: 0px 6px;")
        self._update_pending = False
        self.plot = pg.PlotWidget()
        item = self.plot.getPlotItem()
        item.setLabel("bottom", "time", units="s")
        item.setLabel("left", "tissue", units="HU")
        item.showGrid(x=True, y=True, alpha=0.2)
        item.setMenuEnabled(False)
        legend = item.addLegend(offset=(-10, 10), brush=(20, 22, 26, 210))
        self.tissue = item.plot(
            pen=pg.mkPen(TISSUE_PEN[0], width=TISSUE_PEN[1]), name="cursor (5×5 mean)"
        )
        self.aif_box = pg.ViewBox(enableMenu=False)
        item.showAxis("right")
        item.scene().addItem(self.aif_box)
        item.getAxis("right").linkToView(self.aif_box)
        item.getAxis("right").setLabel("AIF enhancement", units="HU")
        self.aif_box.setXLink(item)
        self.aif = pg.PlotDataItem(pen=pg.mkPen(AIF_PEN[0], width=AIF_PEN[1]))
        self.aif_box.addItem(self.aif)
        legend.addItem(self.aif, "AIF")
        item.vb.sigResized.connect(self._sync_geometry)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.message)
        layout.addWidget(self.readout)
        layout.addWidget(self.plot, 1)
        subscribe(self, model.perfusion_changed, self._on_perfusion)
        subscribe(self, model.cursor_changed, self._schedule)
        subscribe(self, model.slice_changed, lambda _z: self._schedule())
        subscribe(self, model.case_changed, self._on_perfusion)

    def _sync_geometry(self) -> None:
        self.aif_box.setGeometry(self.plot.getPlotItem().vb.sceneBoundingRect())

    def set_message(self, text: str) -> None:
        self.message.setText(text)

    def _on_perfusion(self) -> None:
        series = self.model.perfusion
        if series is None:
            self.aif.setData([], [])
            self.tissue.setData([], [])
            self.readout.clear()
            return
        self.aif.setData(series.times, series.aif)
        item = self.plot.getPlotItem()
        item.setXRange(0.0, float(series.times[-1]), padding=0.02)
        # a fixed tissue range: re-scaling the axes on every cursor move costs more than the
        # whole image repaint; the plot's "A" button auto-scales on demand
        item.setYRange(*series.tissue_hu, padding=0.05)
        self.set_message(
            f"{series.series.shape[0]} frames, {series.dt:g} s apart; AIF from "
            f"{len(series.aif_voxels)} voxels. Move the cursor over the images."
        )
        self.update_curve()

    def _schedule(self) -> None:
        """Redraw once per event-loop turn, however many cursor/slice events came in it."""
        if not self._update_pending:
            self._update_pending = True
            QTimer.singleShot(0, self, self.update_curve)  # cancelled if the dock is deleted

    def showEvent(self, event) -> None:  # noqa: N802 (Qt override)
        super().showEvent(event)
        self.update_curve()

    def update_curve(self) -> None:
        self._update_pending = False
        curve = self.model.curve_at_cursor()
        series = self.model.perfusion
        if curve is None or series is None or not self.isVisible():
            return
        self.tissue.setData(series.times, curve)
        y, x = self.model.cursor  # type: ignore[misc]
        tmax = self.model.cursor_values().get("Tmax", 0.0)
        self.readout.setText(f"cursor x {x}  y {y}  z {self.model.slice}    Tmax {tmax:.1f} s")
