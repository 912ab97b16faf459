"""Stroke-team summary (RAPID-style): core, Tmax > 6 s, mismatch volume and ratio, target mismatch.

The core comes from the best mask the model has (corrected > ensemble > ground truth; the panel
says which). Numbers follow ``core.mismatch`` and refresh on every ``mask_changed`` event.
"""

from __future__ import annotations

import math

from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QPainter
from PySide6.QtWidgets import QFormLayout, QLabel, QVBoxLayout, QWidget

from strokelens.app.model import Model
from strokelens.app.theme import BAD_COLOR, OK_COLOR
from strokelens.core.mismatch import (
    TARGET_CORE_BELOW_ML,
    TARGET_MISMATCH_ML,
    TARGET_RATIO,
    Mismatch,
)

CORE_COLOR = "#e0508a"
HYPO_COLOR = "#3fbf6f"


def format_ratio(ratio: float) -> str:
    if math.isnan(ratio):
        return "–"
    return "∞" if math.isinf(ratio) else f"{ratio:.1f}"


class VolumeBars(QWidget):
    """Core and Tmax > 6 s volumes as two bars on a common scale."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.core_ml = self.hypo_ml = 0.0
        self.setMinimumHeight(40)

    def set_volumes(self, core_ml: float, hypo_ml: float) -> None:
        self.core_ml, self.hypo_ml = core_ml, hypo_ml
        self.update()

    def paintEvent(self, _event) -> None:  # noqa: N802 (Qt override)
        painter = QPainter(self)
        top = max(self.core_ml, self.hypo_ml, 1.0)
        height = (self.height() - 6) / 2
        for row, (value, color) in enumerate(
            ((self.core_ml, CORE_COLOR), (self.hypo_ml, HYPO_COLOR))
        ):
            y = row * (height + 6)
            painter.fillRect(QRectF(0, y, self.width(), height), QColor("#23272e"))
            painter.fillRect(QRectF(0, y, self.width() * value / top, height), QColor(color))
        painter.end()


class StrokePanel(QWidget):
    def __init__(self, model: Model, parent: QWidget | None = None):
        super().__init__(parent)
        self.model = model
        self.core = QLabel()
        self.core_source = QLabel()
        self.core_source.setStyleSheet("color: #8a9099;")
        self.hypo = QLabel()
        self.mismatch = QLabel()
        self.ratio = QLabel()
        for label in (self.core, self.hypo, self.mismatch, self.ratio):
            label.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            label.setStyleSheet("font-size: 15px; font-weight: 600;")
        self.bars = VolumeBars()
        self.verdict = QLabel()
        self.verdict.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.criteria = QLabel()
        self.criteria.setTextFormat(Qt.TextFormat.RichText)

        form = QFormLayout()
        form.setLabelAlignment(Qt.AlignmentFlag.AlignLeft)
        core_title = QLabel(f"<span style='color:{CORE_COLOR}'>■</span> Core")
        hypo_title = QLabel(f"<span style='color:{HYPO_COLOR}'>■</span> Tmax &gt; 6 s")
        form.addRow(core_title, self.core)
        form.addRow("", self.core_source)
        form.addRow(hypo_title, self.hypo)
        form.addRow("Mismatch volume", self.mismatch)
        form.addRow("Mismatch ratio", self.ratio)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        layout.addLayout(form)
        layout.addWidget(self.bars)
        layout.addWidget(self.verdict)
        layout.addWidget(self.criteria)
        layout.addStretch(1)
        model.mask_changed.connect(self.refresh)
        model.case_changed.connect(self.refresh)
        self.refresh()

    def refresh(self) -> None:
        numbers = self.model.stroke_numbers()
        if numbers is None:
            for label in (self.core, self.hypo, self.mismatch, self.ratio, self.core_source):
                label.setText("–")
            self.bars.set_volumes(0.0, 0.0)
            self.verdict.setText("")
            self.criteria.setText("")
            return
        result, source, final = numbers
        self.core.setText(f"{result.core_ml:.1f} mL")
        self.core_source.setText(f"from the {source}")
        self.hypo.setText(f"{result.hypoperfused_ml:.1f} mL")
        self.mismatch.setText(f"{result.mismatch_ml:.1f} mL")
        self.ratio.setText(format_ratio(result.ratio))
        self.bars.set_volumes(result.core_ml, result.hypoperfused_ml)
        self._show_verdict(result, final)

    def _show_verdict(self, result: Mismatch, final: bool) -> None:
        """The target-mismatch verdict; none while the core mask is still being predicted
        (a partial core would read as a small core, i.e. a false "target mismatch")."""
        color = OK_COLOR if result.target and final else "#555b64"
        text = "TARGET MISMATCH" if result.target else "no target mismatch"
        if not final:
            text = "core not complete: no verdict"
        self.verdict.setText(text)
        self.verdict.setStyleSheet(
            f"background: {color}; color: white; font-weight: 700; padding: 6px; "
            "border-radius: 4px;"
        )
        checks = (
            (result.ratio >= TARGET_RATIO, f"ratio ≥ {TARGET_RATIO:g}"),
            (result.mismatch_ml >= TARGET_MISMATCH_ML, f"mismatch ≥ {TARGET_MISMATCH_ML:g} mL"),
            (result.core_ml < TARGET_CORE_BELOW_ML, f"core &lt; {TARGET_CORE_BELOW_ML:g} mL"),
        )
        self.criteria.setText(
            "<br>".join(
                f"<span style='color:{OK_COLOR if ok else BAD_COLOR}'>{'✓' if ok else '✗'}</span>"
                f" {text}"
                for ok, text in checks
            )
        )
