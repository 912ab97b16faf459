"""The editing dock: tools, brush size, constraints, where a correction starts from, clean-up.

It draws an ``EditSession`` and turns its widgets into the session's calls; the tools and undo /
redo are the window's actions (the same ones as in the Edit menu and the toolbar, with their
shortcuts), so this panel only shows them as buttons.
"""

from __future__ import annotations

from PySide6.QtCore import Signal
from PySide6.QtGui import QAction
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from strokelens.app.edit_session import (
    CONSTRAINTS,
    DEFAULT_ISLAND_ML,
    START_SOURCES,
    EditSession,
)
from strokelens.app.events import subscribe
from strokelens.core.editing.masks import MAX_RADIUS_MM, MIN_RADIUS_MM

_MUTED = "color: #8a9099;"


class EditPanel(QWidget):
    """``start_requested(source)``: the reviewer asked to start the correction over from a
    source (the window asks first when there are edits to lose)."""

    start_requested = Signal(str)

    def __init__(self, edit: EditSession, actions: dict[str, QAction], parent=None):
        super().__init__(parent)
        self.edit = edit
        tools = QGridLayout()
        for n, name in enumerate(("navigate", "brush", "eraser", "fill", "pick", "undo", "redo")):
            button = QToolButton()
            button.setDefaultAction(actions[name])
            tools.addWidget(button, n // 5, n % 5)

        self.radius = QDoubleSpinBox()
        self.radius.setRange(MIN_RADIUS_MM, MAX_RADIUS_MM)
        self.radius.setDecimals(1)
        self.radius.setSuffix(" mm")
        self.radius.setToolTip("Brush radius: [ and ], or Shift+wheel on a pane")
        self.radius.setValue(edit.radius_mm)
        self.radius.valueChanged.connect(edit.set_radius)
        form = QFormLayout()
        form.addRow("Brush radius", self.radius)

        constraints = QGroupBox("Paint and erase only where")
        column = QVBoxLayout(constraints)
        self.constraints: dict[str, QCheckBox] = {}
        for name, (_rule, label) in CONSTRAINTS.items():
            box = QCheckBox(label)
            box.toggled.connect(lambda on, n=name: edit.set_constraint(n, on))
            column.addWidget(box)
            self.constraints[name] = box

        self.source = QComboBox()
        for key, label in START_SOURCES.items():
            self.source.addItem(label, key)
        start = QPushButton("Start over")
        start.setToolTip("Replace the correction by this mask (one undo step)")
        start.clicked.connect(lambda: self.start_requested.emit(self.source.currentData()))
        start_row = QHBoxLayout()
        start_row.addWidget(self.source, 1)
        start_row.addWidget(start)
        form.addRow("Correction from", start_row)

        self.island_ml = QDoubleSpinBox()
        self.island_ml.setRange(0.0, 100.0)
        self.island_ml.setDecimals(2)
        self.island_ml.setSingleStep(0.05)
        self.island_ml.setSuffix(" mL")
        self.island_ml.setValue(DEFAULT_ISLAND_ML)
        islands = QPushButton("Remove islands below")
        islands.clicked.connect(lambda: edit.remove_islands(self.island_ml.value()))
        holes = QPushButton("Fill holes")
        holes.clicked.connect(edit.fill_holes)
        clean = QHBoxLayout()
        clean.addWidget(islands)
        clean.addWidget(self.island_ml)
        clean.addWidget(holes)

        self.state = QLabel()
        self.state.setStyleSheet(_MUTED)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addLayout(tools)
        layout.addLayout(form)
        layout.addWidget(constraints)
        layout.addLayout(clean)
        layout.addWidget(self.state)
        layout.addStretch(1)

        subscribe(self, edit.brush_changed, self._show_radius)
        subscribe(self, edit.history_changed, self._show_state)
        subscribe(self, edit.model.case_changed, self._show_state)
        self._show_state()

    def _show_radius(self, radius_mm: float) -> None:
        if self.radius.value() != radius_mm:
            self.radius.blockSignals(True)
            self.radius.setValue(radius_mm)
            self.radius.blockSignals(False)

    def _show_state(self) -> None:
        mask = self.edit.current()
        if mask is None:
            text = "No correction on this case yet: the first edit starts one."
        else:
            undo = mask.history.undo_label
            text = f"{len(mask.history)} edit(s) to undo" + (f"; last: {undo}" if undo else "")
        self.state.setText(text)
