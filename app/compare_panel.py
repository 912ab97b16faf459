"""Compare focal vs cross entropy: a dock showing a :class:`~strokelens.core.comparison.Comparison`.

The panel subscribes to the model like the other panels: after a mask change (a paint stroke, a
finished prediction) it recomputes, debounced and only while it is seen, in a worker, the newest
request winning. ``refresh()`` returns once the panel shows the comparison of the masks as they
are: a request made meanwhile supersedes it and is waited for, so it never ends with a stale or
an empty table.

The ensembles' table (volume, then DSC / AVD / HD per available reference), the focal/CE
agreement line and a sortable table of the members. Cells are the texts of
``comparison.format_value`` on ``comparison.as_rows``, the same rows "Copy as CSV" puts on the
clipboard at full precision. Focal red and CE cyan are the overlay colours (paper Fig. 4).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QApplication,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from strokelens.app.events import subscribe
from strokelens.app.layers_panel import swatch
from strokelens.app.model import LAYERS, Model
from strokelens.app.tasks import Tasks
from strokelens.core.comparison import (
    REFERENCE_SHORT,
    REFERENCE_TITLES,
    Column,
    Comparison,
    as_rows,
    ensemble_columns,
    format_value,
    member_columns,
    to_csv,
)

#: Swatch colour per loss: the focal and CE overlay layers' colours.
LOSS_COLORS = {layer.name: layer.color for layer in LAYERS if layer.name in ("focal", "ce")}
_MUTED = "color: #8a9099;"
#: The table is recomputed this long after the last mask change (a paint stroke, say).
COMPARE_DELAY_MS = 250


def _css(rgb: tuple[int, int, int]) -> str:
    return "rgb({},{},{})".format(*rgb)


class NumberItem(QTableWidgetItem):
    """A formatted number that sorts by its value (NaN and missing values last)."""

    def __init__(self, text: str, value: float | None):
        super().__init__(text)
        self.value = math.nan if value is None else float(value)
        self.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)

    def _key(self) -> tuple[bool, float]:
        return (math.isnan(self.value), 0.0 if math.isnan(self.value) else self.value)

    def __lt__(self, other: QTableWidgetItem) -> bool:
        if isinstance(other, NumberItem):
            return self._key() < other._key()
        return super().__lt__(other)


def _table() -> QTableWidget:
    table = QTableWidget()
    table.verticalHeader().hide()
    table.setEditTriggers(QTableWidget.EditTrigger.NoEditTriggers)
    table.setSelectionBehavior(QTableWidget.SelectionBehavior.SelectRows)
    table.setAlternatingRowColors(True)
    table.verticalHeader().setDefaultSectionSize(table.fontMetrics().height() + 6)
    table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
    return table


def _fill(table: QTableWidget, columns: list[Column], rows: list[dict]) -> None:
    """Rows as formatted cells; the ``name`` cell carries the swatch of the row's loss."""
    sorting = table.isSortingEnabled()
    table.setSortingEnabled(False)  # else rows move while they are filled
    table.clear()
    table.setColumnCount(len(columns))
    table.setRowCount(len(rows))
    table.setHorizontalHeaderLabels([c.title for c in columns])
    for r, row in enumerate(rows):
        for c, column in enumerate(columns):
            value = row.get(column.key)
            text = format_value(value, column.decimals)
            item = QTableWidgetItem(text) if column.decimals is None else NumberItem(text, value)
            if column.key == "name" and row["loss"] in LOSS_COLORS:
                item.setIcon(swatch(LOSS_COLORS[row["loss"]]))
            table.setItem(r, c, item)
    table.setSortingEnabled(sorting)
    table.setCurrentCell(-1, -1)  # no focus frame on a cell nobody picked


class ComparePanel(QWidget):
    """The comparison of ``model``'s case on screen; ``ai_pending(key)`` says whether the AI
    still has that case to do."""

    def __init__(
        self,
        model: Model,
        tasks: Tasks,
        ai_pending: Callable[[str], bool],
        parent: QWidget | None = None,
    ):
        super().__init__(parent)
        self.model, self.tasks, self._ai_pending = model, tasks, ai_pending
        self._task: asyncio.Task | None = None
        self._requests = 0
        self.timer = tasks.timer(COMPARE_DELAY_MS, self._request)
        self.comparison: Comparison | None = None
        self.message = QLabel()
        self.message.setWordWrap(True)
        self.message.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.message.setStyleSheet(_MUTED + " padding: 6px;")
        self.title = QLabel()
        self.title.setStyleSheet(_MUTED)
        self.ensembles = _table()
        self.ensembles.setVerticalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.agreement = QLabel()
        self.agreement.setTextFormat(Qt.TextFormat.RichText)
        self.agreement.setWordWrap(True)
        self.members = _table()
        self.members.setSortingEnabled(True)
        self.members.horizontalHeader().setSortIndicator(-1, Qt.SortOrder.AscendingOrder)
        self.copy_button = QPushButton("Copy as CSV")
        self.copy_button.setToolTip("All numbers of this case, full precision, to the clipboard")
        self.copy_button.clicked.connect(self.copy_csv)

        self.content = QWidget()
        content = QVBoxLayout(self.content)
        content.setContentsMargins(0, 0, 0, 0)
        content.addWidget(self.title)
        content.addWidget(self.ensembles)
        content.addWidget(self.agreement)
        content.addWidget(self.members, 1)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.copy_button)
        content.addLayout(buttons)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(6, 6, 6, 6)
        layout.addWidget(self.message)
        layout.addWidget(self.content, 1)
        self.set_message("No comparison yet")
        subscribe(self, model.mask_changed, self.want)

    # -- requests ------------------------------------------------------------------------------
    def want(self) -> None:
        """A mask changed: recompute soon, if the panel is seen."""
        if self.isVisible():
            self.timer.start()

    def showEvent(self, event) -> None:  # noqa: N802 (Qt override): its tab came forward
        super().showEvent(event)
        self.want()

    async def refresh(self) -> None:
        """Recompute now and return once the panel shows the current masks' comparison."""
        task = self._request()
        while True:
            await asyncio.wait([task])  # errors are reported by spawn, once
            if task is self._task:
                return
            task = self._task

    def _request(self) -> asyncio.Task:
        self.timer.stop()  # this request covers the pending mask change
        self._requests += 1
        self._task = self.tasks.spawn(self._compare_case_on_screen(self._requests))
        return self._task

    async def _compare_case_on_screen(self, request: int) -> None:
        from strokelens.core.comparison import compare_case

        case = self.model.case
        if case is None:
            self.set_message("No case open.")
            return
        prediction = self.model.predictions.get(case.key)
        if prediction is None or not prediction.complete:
            self.set_message(
                f"{case.key}: the AI is running; the comparison follows when it is done."
                if self._ai_pending(case.key)
                else f"{case.key}: no AI prediction yet. AI ▸ Run AI on this case (Ctrl+R)."
            )
            return
        corrected = self.model.corrected.get(case.key)
        comparison = await self.tasks.run_in_worker(compare_case, prediction, case.mask, corrected)
        if request == self._requests:  # else a newer request shows its own
            self.show_comparison(comparison)

    # -- drawing -------------------------------------------------------------------------------
    def set_message(self, text: str) -> None:
        """Show ``text`` instead of the tables (no prediction, still computing, ...)."""
        self.comparison = None
        self.message.setText(text)
        self.message.show()
        self.content.hide()

    def show_comparison(self, comparison: Comparison) -> None:
        self.comparison = comparison
        refs = comparison.references
        rows = as_rows(comparison)
        legend = ", ".join(f"{REFERENCE_SHORT[r]} = {REFERENCE_TITLES[r]}" for r in refs)
        self.title.setText(
            f"{comparison.case_key} · {legend or 'no ground truth or corrected mask'}"
        )
        _fill(self.ensembles, ensemble_columns(refs), [r for r in rows if r["kind"] == "ensemble"])
        self._fit_height(self.ensembles)
        _fill(self.members, member_columns(refs), [r for r in rows if r["kind"] == "member"])
        self.agreement.setText(self._agreement_text(comparison))
        self.message.hide()
        self.content.show()

    @staticmethod
    def _agreement_text(comparison: Comparison) -> str:
        a = comparison.agreement
        if a is None:
            return f"<span style='{_MUTED}'>No focal and CE members to compare</span>"

        def part(color: str | None, label: str, ml: float) -> str:
            dot = f"<span style='color:{_css(LOSS_COLORS[color])}'>■</span> " if color else ""
            return f"{dot}{label} <b>{format_value(ml, 1)} mL</b>"

        return " · ".join(
            (
                part(None, "Agree", a.agree_ml),
                part("focal", "focal only", a.focal_only_ml),
                part("ce", "CE only", a.ce_only_ml),
                f"focal vs CE DSC <b>{format_value(a.dsc, 3)}</b>",
            )
        )

    @staticmethod
    def _fit_height(table: QTableWidget) -> None:
        """No inner scrolling for the few ensemble rows: as tall as its rows."""
        height = table.horizontalHeader().sizeHint().height() + 2 * table.frameWidth()
        height += sum(table.rowHeight(r) for r in range(table.rowCount()))
        table.setFixedHeight(height + table.horizontalScrollBar().sizeHint().height())

    def copy_csv(self) -> None:
        if self.comparison is not None:
            QApplication.clipboard().setText(to_csv(self.comparison))
