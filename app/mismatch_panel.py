"""Mismatch summary (RAPID-style): the AI core and the threshold core side by side (core, the
members' range, Tmax > 6 s, mismatch volume and ratio, HIR), the criteria of each, and the
target-mismatch verdict of the AI core.

The panel draws ``app.mismatch_view.mismatch_view`` of the ``SummarySession``'s summary,
refreshed on its ``changed`` event; what it says, and when it says no verdict, is decided there.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QPainter
from PySide6.QtWidgets import QGridLayout, QLabel, QVBoxLayout, QWidget

from strokelens.app.events import subscribe
from strokelens.app.mismatch_view import (
    CORE_COLOR,
    HYPO_COLOR,
    THRESHOLD_COLOR,
    Mark,
    MismatchView,
    Row,
    Verdict,
    mismatch_view,
)
from strokelens.app.summary_session import SummarySession
from strokelens.app.theme import BAD_COLOR, OK_COLOR

MUTED_COLOR = "#8a9099"
#: Wide enough for the titles and both columns of values ("≤ 116.6 mL" beside "122.8 mL").
MIN_WIDTH_PX = 390
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
        self.setMinimumHeight(30)

    def set_volumes(self, volumes: Sequence[tuple[float | None, str]]) -> None:
        self.volumes = list(volumes)
        self.update()

    def paintEvent(self, _event) -> None:  # noqa: N802 (Qt override)
        if not self.volumes:
            return
        painter = QPainter(self)
        top = max([ml for ml, _ in self.volumes if ml is not None] + [1.0])
        gap = 4
        height = (self.height() - gap * (len(self.volumes) - 1)) / len(self.volumes)
        for row, (value, color) in enumerate(self.volumes):
            if value is None:
                continue
            y = row * (height + gap)
            painter.fillRect(QRectF(0, y, self.width(), height), QColor("#23272e"))
            painter.fillRect(QRectF(0, y, self.width() * value / top, height), QColor(color))
        painter.end()


class MismatchPanel(QWidget):
    """Draws a ``MismatchView``. Public for tests: ``values``, ``thresholds`` and ``notes`` (row
    key -> label: the AI core's value, the threshold core's, the note), ``verdict``, ``reason``,
    ``criteria`` and ``threshold_criteria`` (one label each, its ``mark`` property
    the ``Mark``'s name)."""

    def __init__(self, session: SummarySession, parent: QWidget | None = None):
        super().__init__(parent)
        self.session = session
        self.setMinimumWidth(MIN_WIDTH_PX)
        self.values: dict[str, QLabel] = {}
        self.thresholds: dict[str, QLabel] = {}
        self.notes: dict[str, QLabel] = {}
        self._row_keys: list[str] = []
        self.grid = QGridLayout()
        self.grid.setHorizontalSpacing(10)
        self.grid.setVerticalSpacing(1)
        self.grid.setColumnStretch(0, 1)
        self.bars = VolumeBars()
        self.verdict = QLabel()
        self.verdict.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.reason = QLabel()
        self.reason.setWordWrap(True)
        self.reason.setStyleSheet(f"color: {MUTED_COLOR};")
        self.criteria: list[QLabel] = []
        self.threshold_criteria: list[QLabel] = []
        self.criteria_grid = QGridLayout()
        self.criteria_grid.setVerticalSpacing(2)
        self.criteria_grid.setColumnStretch(0, 1)
        for column, text in ((0, "Target mismatch: AI core"), (1, "Threshold core")):
            self.criteria_grid.addWidget(_muted(text), 0, column)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 4, 8, 4)
        layout.addLayout(self.grid)
        layout.addWidget(self.bars)
        layout.addWidget(self.verdict)
        layout.addWidget(self.reason)
        layout.addLayout(self.criteria_grid)
        layout.addStretch(1)
        subscribe(self, session.changed, self.refresh)
        self.refresh()

    def refresh(self) -> None:
        session = self.session
        case_open = session.model.case is not None
        summary = session.summary if case_open else None
        self.show_view(mismatch_view(summary, session.current, session.truth_ml, case_open))

    def show_view(self, view: MismatchView) -> None:
        self._show_rows(view.rows)
        self.bars.set_volumes(view.bars)
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
            for label in self.criteria + self.threshold_criteria:
                label.deleteLater()
            self.criteria = [_plain() for _ in view.criteria]
            self.threshold_criteria = [_plain() for _ in view.threshold_criteria]
            for row, (a, t) in enumerate(
                zip(self.criteria, self.threshold_criteria, strict=True), 1
            ):
                self.criteria_grid.addWidget(a, row, 0)
                self.criteria_grid.addWidget(t, row, 1)
        for labels, states in (
            (self.criteria, view.criteria),
            (self.threshold_criteria, view.threshold_criteria),
        ):
            for label, criterion in zip(labels, states, strict=True):
                text = f"{criterion.mark.value} {criterion.label}"
                label.setText(text if labels is self.criteria else criterion.mark.value)
                label.setProperty("mark", criterion.mark.name)
                label.setProperty("muted", criterion.muted)
                color = MUTED_COLOR if criterion.muted else MARK_COLORS[criterion.mark]
                _restyle(label, f"color: {color};")

    def _show_rows(self, rows: Sequence[Row]) -> None:
        """A title, the AI core's and the threshold core's value (or one shared value) and a
        note line per ``Row``; rebuilt when the rows change."""
        if [row.key for row in rows] != self._row_keys:
            while self.grid.count():
                widget = self.grid.takeAt(0).widget()
                if widget is not None:
                    widget.deleteLater()
            self.values.clear()
            self.thresholds.clear()
            self.notes.clear()
            self.grid.addWidget(_muted("AI core"), 0, 1, Qt.AlignmentFlag.AlignRight)
            self.grid.addWidget(_muted("Threshold core"), 0, 2, Qt.AlignmentFlag.AlignRight)
            for n, row in enumerate(rows):
                line = 1 + 2 * n
                color = {"core": CORE_COLOR, "hypo": HYPO_COLOR}.get(row.key)
                swatch = f"<span style='color:{color}'>■</span> " if color else ""
                title = QLabel(swatch + html.escape(row.title))
                title.setTextFormat(Qt.TextFormat.RichText)
                value, threshold, note = _plain(), _plain(), _plain()
                for label in (value, threshold):
                    label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
                value.setStyleSheet("font-size: 15px; font-weight: 600;")
                threshold.setStyleSheet(
                    f"font-size: 15px; font-weight: 600; color: {THRESHOLD_COLOR};"
                )
                note.setAlignment(Qt.AlignmentFlag.AlignRight)
                note.setWordWrap(True)
                note.setStyleSheet(f"color: {MUTED_COLOR};")
                self.grid.addWidget(title, line, 0)
                if row.shared:
                    self.grid.addWidget(value, line, 1, 1, 2)
                else:
                    self.grid.addWidget(value, line, 1)
                    self.grid.addWidget(threshold, line, 2)
                self.grid.addWidget(note, line + 1, 0, 1, 3)
                self.values[row.key], self.notes[row.key] = value, note
                self.thresholds[row.key] = threshold
            self._row_keys = [row.key for row in rows]
        for row in rows:
            self.values[row.key].setText(row.value)
            self.thresholds[row.key].setText(row.threshold)
            self.notes[row.key].setText(row.note)
            self.notes[row.key].setVisible(bool(row.note))


def _plain() -> QLabel:
    label = QLabel()
    label.setTextFormat(Qt.TextFormat.PlainText)
    return label


def _muted(text: str) -> QLabel:
    label = QLabel(text)
    label.setStyleSheet(f"color: {MUTED_COLOR}; font-size: 11px;")
    return label


def _restyle(label: QLabel, sheet: str) -> None:
    """Set a style sheet only when it changes: each set re-polishes the widget, and the panel
    refreshes on every AI update (every 100 ms while it runs)."""
    if label.styleSheet() != sheet:
        label.setStyleSheet(sheet)
