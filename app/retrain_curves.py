"""The live curves of a fine-tuning run: training loss and held-out DSC per epoch, one line per
member (focal reds, cross-entropy cyans, as the overlays), and each member's held-out DSC before
the run as a dotted level."""

from __future__ import annotations

import pyqtgraph as pg
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QHBoxLayout, QWidget

#: Hues by loss prefix of a member's name; others are grey.
HUES = {"focal": (0.0, 0.08), "ce": (0.47, 0.55)}


def member_colour(member: str, members: list[str]) -> pg.QtGui.QColor:
    """A member's line colour: its loss family's hue, shaded by its place in the family."""
    family = member.split("-")[0]
    kin = [m for m in members if m.split("-")[0] == family]
    low, high = HUES.get(family, (0.0, 0.0))
    t = kin.index(member) / max(len(kin) - 1, 1) if member in kin else 0.0
    colour = pg.QtGui.QColor()
    if family in HUES:
        colour.setHsvF(low + (high - low) * t, 0.85, 1.0 - 0.35 * t)
    else:
        colour.setHsvF(0.0, 0.0, 0.9 - 0.4 * t)
    return colour


class RetrainCurves(QWidget):
    """Loss (left) and held-out DSC (right) against the epoch."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.loss_plot = self._plot("training loss", None)
        self.dsc_plot = self._plot("held-out DSC", (0.0, 1.0))
        self._members: list[str] = []
        self._points: dict[str, tuple[list[int], list[float], list[int], list[float]]] = {}
        self._lines: dict[str, tuple[pg.PlotDataItem, pg.PlotDataItem]] = {}
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.loss_plot)
        layout.addWidget(self.dsc_plot)

    @staticmethod
    def _plot(title: str, y_range: tuple[float, float] | None) -> pg.PlotWidget:
        plot = pg.PlotWidget()
        item = plot.getPlotItem()
        item.setLabel("bottom", "epoch")
        item.setLabel("left", title)
        item.showGrid(x=True, y=True, alpha=0.2)
        item.setMenuEnabled(False)
        if y_range is not None:
            item.setYRange(*y_range, padding=0.02)
        return plot

    def start(self, members: list[str]) -> None:
        """A new run of ``members``: the old lines go."""
        for plot in (self.loss_plot, self.dsc_plot):
            plot.getPlotItem().clear()
            legend = plot.getPlotItem().legend
            if legend is not None:
                legend.clear()
        self.dsc_plot.getPlotItem().addLegend(offset=(-10, -10), brush=(20, 22, 26, 210))
        self._members, self._points, self._lines = list(members), {}, {}

    def _line(self, member: str) -> tuple[pg.PlotDataItem, pg.PlotDataItem]:
        if member not in self._lines:
            pen = pg.mkPen(member_colour(member, self._members), width=2)
            loss = self.loss_plot.plot(pen=pen, symbol="o", symbolSize=5, symbolBrush=pen.color())
            dsc = self.dsc_plot.plot(
                pen=pen, symbol="o", symbolSize=5, symbolBrush=pen.color(), name=member
            )
            self._lines[member] = (loss, dsc)
            self._points[member] = ([], [], [], [])
        return self._lines[member]

    def baseline(self, member: str, dsc: float | None) -> None:
        """The member's held-out DSC before the run, as a dotted level."""
        if dsc is None:
            return
        colour = member_colour(member, self._members)
        pen = pg.mkPen(colour, width=1, style=Qt.PenStyle.DotLine)
        self.dsc_plot.addItem(pg.InfiniteLine(pos=dsc, angle=0, pen=pen))

    def add_epoch(self, member: str, epoch: int, loss: float, dsc: float | None) -> None:
        loss_line, dsc_line = self._line(member)
        e_loss, v_loss, e_dsc, v_dsc = self._points[member]
        e_loss.append(epoch)
        v_loss.append(loss)
        loss_line.setData(e_loss, v_loss)
        if dsc is not None:
            e_dsc.append(epoch)
            v_dsc.append(dsc)
            dsc_line.setData(e_dsc, v_dsc)

    def points(self, member: str) -> tuple[list[int], list[float], list[int], list[float]]:
        """(epochs, losses, epochs with a DSC, DSCs) drawn for ``member`` so far."""
        return self._points.get(member, ([], [], [], []))
