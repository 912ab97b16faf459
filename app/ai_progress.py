"""The status-bar strip of a running "Run AI": what runs, a progress bar with ETA, and Cancel."""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QProgressBar, QToolButton, QWidget

from strokelens.app.inference import AiJob, format_eta


class AiProgress(QWidget):
    """Hidden while idle; ``cancel_requested`` when the user presses Cancel."""

    cancel_requested = Signal()

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.label = QLabel()
        self.bar = QProgressBar()
        self.bar.setRange(0, 1000)
        self.bar.setFixedWidth(180)
        self.bar.setTextVisible(True)
        self.eta = QLabel()
        self.eta.setMinimumWidth(110)
        self.cancel = QToolButton()
        self.cancel.setText("Cancel")
        self.cancel.setToolTip("Stop the AI (Esc); finished slices are kept and resumed later")
        self.cancel.clicked.connect(self.cancel_requested)
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 6, 0)
        for widget in (self.label, self.bar, self.eta, self.cancel):
            row.addWidget(widget)
        self.hide()

    def show_message(self, text: str) -> None:
        """A step before the first result (loading the ensemble): a busy bar."""
        self.label.setText(text)
        self.bar.setRange(0, 0)
        self.eta.setText("")
        self.show()

    def show_job(self, job: AiJob) -> None:
        n_done, n_all = len(job.finished), len(job.finished) + len(job.keys) + bool(job.running)
        running = f"AI: {job.running}" if job.running else "AI"
        self.label.setText(f"{running}  (case {min(n_done + 1, n_all)} of {n_all})")
        self.bar.setRange(0, 1000)
        self.bar.setValue(round(job.fraction() * 1000))
        self.bar.setFormat(f"{job.fraction():.0%}")
        self.eta.setText(format_eta(job.eta_s()))
        self.show()
