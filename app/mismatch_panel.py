"""Mismatch summary (RAPID-style): core, Tmax > 6 s, mismatch volume and ratio, target mismatch.

The panel draws ``app.mismatch_view.mismatch_view(model.mismatch_numbers())``, refreshed on every
``mask_changed`` and ``case_changed`` event; what it says, and when it says no verdict, is decided
there.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QPainter
from PySide6.QtWidgets import QFormLayout, QLabel, QVBoxLayout, QWidget

from strokelens.app.events import subscribe
from strokelens.app.mismatch_view import Mark, MismatchView, Row, Verdict, mismatch_view
from strokelens.app.model import Model
from strokelens.app.theme import BAD_COLOR, OK_COLOR

MUTED_COLOR = "#8a9099"
MARK_COLORS = {Mark.MET: OK_COLOR, Mark.FAILED: BAD_COLOR, Mark.UNDECIDED: MUTED_COLOR}
#: Verdict box (background, text): no verdict is drawn fainter than a negative one.
VERDICT_COLORS = {
    Verdict.TARGET: (OK_COLOR, "white"),
    Verdict.NO_TARGET: ("#555b64", "white"),
    Verdict.NONE: ("#2a2f36", MUTED_COLOR),
}


class VolumeBars(QWidget):
    """Volumes as bars on a common scale, one per (mL, colour), top to bottom; an unknown volume
    (None) leaves its place empty, without even a track that could read as 0 mL."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.volumes: list[tuple[float | None, str]] = []
        self.setMinimumHeight(40)

    def set_volumes(self, volumes: Sequence[tuple[float | None, str]]) -> None:
        self.volumes = list(volumes)
        self.update()

    def paintEvent(self, _event) -> None:  # noqa: N802 (Qt override)
        if not self.volumes:
            return
        painter = QPainter(self)
        top = max([ml for ml, _ in self.volumes if ml is not None] + [1.0])
        gap = 6
        height = (self.height() - gap * (len(self.volumes) - 1)) / len(self.volumes)
        for row, (value, color) in enumerate(self.volumes):
            if value is None:
                continue
            y = row * (height + gap)
            painter.fillRect(QRectF(0, y, self.width(), height), QColor("#23272e"))
            painter.fillRect(QRectF(0, y, self.width() * value / top, height), QColor(color))
        painter.end()


class MismatchPanel(QWidget):
    """Draws a ``MismatchView``. Public for tests: ``values`` and ``notes`` (row key -> label),
    ``verdict``, ``reason`` and ``criteria`` (one label each, its ``mark`` property the
    ``Mark``'s name)."""

    def __init__(self, model: Model, parent: QWidget | None = None):
        super().__init__(parent)
        self.model = model
        self.values: dict[str, QLabel] = {}
        self.notes: dict[str, QLabel] = {}
        self.form = QFormLayout()
        self.form.setLabelAlignment(Qt.AlignmentFlag.AlignLeft)
        self.bars = VolumeBars()
        self.verdict = QLabel()
        self.verdict.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.reason = QLabel()
        self.reason.setWordWrap(True)
        self.reason.setStyleSheet(f"color: {MUTED_COLOR};")
        self.criteria: list[QLabel] = []
        self.criteria_box = QVBoxLayout()
        self.criteria_box.setSpacing(2)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        layout.addLayout(self.form)
        layout.addWidget(self.bars)
        layout.addWidget(self.verdict)
        layout.addWidget(self.reason)
        layout.addLayout(self.criteria_box)
        layout.addStretch(1)
        subscribe(self, model.mask_changed, self.refresh)
        subscribe(self, model.case_changed, self.refresh)
        self.refresh()

    def refresh(self) -> None:
        self.show_view(mismatch_view(self.model.mismatch_numbers()))

    def show_view(self, view: MismatchView) -> None:
        self._show_rows(view.rows)
        self.bars.set_volumes([(row.ml, row.color) for row in view.rows if row.color])
        background, text = VERDICT_COLORS[view.verdict]
        self.verdict.setText(view.verdict.value)
        _restyle(
            self.verdict,
            f"background: {background}; color: {text}; font-weight: 700; padding: 6px; "
            "border-radius: 4px;",
        )
        self.reason.setText(view.reason)
        self.reason.setVisible(bool(view.reason))
        if len(self.criteria) != len(view.criteria):
            for label in self.criteria:
                label.deleteLater()
            self.criteria = [QLabel() for _ in view.criteria]
            for label in self.criteria:
                label.setTextFormat(Qt.TextFormat.PlainText)
                self.criteria_box.addWidget(label)
        for label, criterion in zip(self.criteria, view.criteria, strict=True):
            label.setText(f"{criterion.mark.value} {criterion.label}")
            label.setProperty("mark", criterion.mark.name)
            _restyle(label, f"color: {MARK_COLORS[criterion.mark]};")

    def _show_rows(self, rows: Sequence[Row]) -> None:
        """One form row per ``Row`` and a note row under it; rebuilt when the rows change."""
        if [row.key for row in rows] != list(self.values):
            while self.form.rowCount():
                self.form.removeRow(0)
            self.values.clear()
            self.notes.clear()
            for row in rows:
                swatch = f"<span style='color:{row.color}'>■</span> " if row.color else ""
                value, note = QLabel(), QLabel()
                for label in (value, note):
                    label.setTextFormat(Qt.TextFormat.PlainText)
                    label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                value.setStyleSheet("font-size: 15px; font-weight: 600;")
                note.setStyleSheet(f"color: {MUTED_COLOR};")
                title = QLabel(swatch + html.escape(row.title))
                title.setTextFormat(Qt.TextFormat.RichText)
                self.form.addRow(title, value)
                self.form.addRow("", note)
                self.values[row.key], self.notes[row.key] = value, note
        for row in rows:
            self.values[row.key].setText(row.value)
            self.notes[row.key].setText(row.note)
            self.form.setRowVisible(self.notes[row.key], bool(row.note))


def _restyle(label: QLabel, sheet: str) -> None:
    """Set a style sheet only when it changes: each set re-polishes the widget, and the panel
    refreshes on every AI update (every 100 ms while it runs)."""
    if label.styleSheet() != sheet:
        label.setStyleSheet(sheet)
