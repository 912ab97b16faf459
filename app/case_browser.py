"""The case list: id, patient, split, slices, review status, predicted core and the ensemble's
doubt, sortable and filterable.

The status column says what is known of each case without opening it: the AI's progress,
"error" (the reason in the tooltip), "partial (n / N slices)" or the review status, cached
predictions included. The doubt column holds the ``core.ranking`` score of the case's complete
prediction (``app.ranking_session`` fills it; blank without one): "next most informative case"
is the shown, readable, unreviewed case with the highest score. Next/previous case skip the
error rows. A ``QAbstractTableModel`` over ``Model.entries`` (refreshed by the model's events)
behind a ``QSortFilterProxyModel``; sorting uses raw values (``SORT_ROLE``) so numbers sort as
numbers. Next/previous case follow the rows as shown (sorted and filtered).
"""

from __future__ import annotations

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    Qt,
    Signal,
)
from PySide6.QtGui import QColor, QFont, QFontMetrics
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QLineEdit,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from strokelens.app.model import Model, Status
from strokelens.app.theme import ACCENT, BAD_COLOR, OK_COLOR, WARN_COLOR
from strokelens.core import ranking

COLUMNS = ("Case", "Patient", "Split", "Slices", "Status", "Core (mL)", "Doubt")
DOUBT = COLUMNS.index("Doubt")
#: Review states that take a case out of "next most informative": a reviewer has settled it.
REVIEWED = frozenset({Status.CORRECTED, Status.APPROVED})
SORT_ROLE = Qt.ItemDataRole.UserRole + 1
#: The widest partial state the status column makes room for.
PARTIAL = "partial (88 / 88 slices)"
STATUS_COLORS = {
    Status.NEW: "#9aa0a8",
    Status.PREDICTED: ACCENT,
    Status.IN_REVIEW: WARN_COLOR,
    Status.CORRECTED: "#c58af0",
    Status.APPROVED: OK_COLOR,
}


class CaseTableModel(QAbstractTableModel):
    def __init__(self, model: Model):
        super().__init__()
        self.model = model
        self.strategy = ranking.DEFAULT  # the doubt column's, named in its tooltip
        self._current = -1
        model.dataset_changed.connect(self._reset)
        model.entry_changed.connect(self._row_changed)
        model.case_changed.connect(self._current_changed)

    def rowCount(self, parent=QModelIndex()) -> int:  # noqa: B008, N802 (Qt API)
        return 0 if parent.isValid() else len(self.model.entries)

    def columnCount(self, parent=QModelIndex()) -> int:  # noqa: B008, N802 (Qt API)
        return 0 if parent.isValid() else len(COLUMNS)

    def headerData(self, section, orientation, role=Qt.ItemDataRole.DisplayRole):  # noqa: N802
        if orientation != Qt.Orientation.Horizontal:
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section]
        if role == Qt.ItemDataRole.ToolTipRole and section == DOUBT:
            return (
                f"How much the ensemble doubts the case ({self.strategy}): "
                f"{ranking.describe(self.strategy)}.\nHigher: review it sooner (Ctrl+N). "
                "Blank: no complete prediction yet. AI ▸ Rank cases by: another score."
            )
        return None

    def data(self, index: QModelIndex | QPersistentModelIndex, role=Qt.ItemDataRole.DisplayRole):
        entry = self.model.entries[index.row()]
        column = index.column()
        values = (
            entry.ref.id,
            entry.ref.patient,
            entry.ref.split,
            entry.n_slices,
            entry.status_text,
            entry.core_ml,
            entry.doubt,
        )
        value = values[column]
        if role == Qt.ItemDataRole.DisplayRole:
            if value is None:
                return ""
            if column == DOUBT:
                return f"{value:.3f}"
            return f"{value:.1f}" if isinstance(value, float) else str(value)
        if role == SORT_ROLE:
            if column == 0:
                return index.row()  # data-set order is natural order (case_2 before case_10)
            if column == 4:
                return list(Status).index(entry.status)  # workflow order, not alphabetical
            return -1.0 if value is None else value
        if role == Qt.ItemDataRole.ForegroundRole and column == 4:
            if entry.error is not None:
                return QColor(BAD_COLOR)
            partial = entry.status is Status.NEW and entry.partial is not None
            return QColor(WARN_COLOR if partial else STATUS_COLORS[entry.status])
        if role == Qt.ItemDataRole.FontRole and index.row() == self._current:
            font = QFont()
            font.setBold(True)
            return font
        if role == Qt.ItemDataRole.TextAlignmentRole and column in (3, 5, DOUBT):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        if role == Qt.ItemDataRole.ToolTipRole:
            problems = [*dict.fromkeys(filter(None, [entry.error, *entry.ref.problems]))]
            return "\n".join(problems) if problems else str(entry.ref.folder)
        return None

    def set_strategy(self, strategy: str) -> None:
        self.strategy = strategy
        self.headerDataChanged.emit(Qt.Orientation.Horizontal, DOUBT, DOUBT)

    def _reset(self) -> None:
        self.beginResetModel()
        self._current = -1
        self.endResetModel()

    def _row_changed(self, row: int, roles: list[Qt.ItemDataRole] | None = None) -> None:
        self.dataChanged.emit(self.index(row, 0), self.index(row, len(COLUMNS) - 1), roles or [])

    def _current_changed(self) -> None:
        """Only the bold font moves: naming the role spares the proxy a re-sort and re-filter
        of every row (26 ms of a 35 ms case switch on 30 cases)."""
        previous, self._current = self._current, self.model.index
        for row in {previous, self._current} - {-1}:
            self._row_changed(row, [Qt.ItemDataRole.FontRole])


class CaseBrowser(QWidget):
    """Filter box + table; ``case_activated(entry index)`` when the user picks a row."""

    case_activated = Signal(int)

    def __init__(self, model: Model, parent: QWidget | None = None):
        super().__init__(parent)
        self.model = model
        self._syncing = False
        self.table_model = CaseTableModel(model)
        self.proxy = QSortFilterProxyModel(self)
        self.proxy.setSourceModel(self.table_model)
        self.proxy.setSortRole(SORT_ROLE)
        self.proxy.setFilterKeyColumn(-1)
        self.proxy.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)

        self.filter = QLineEdit()
        self.filter.setPlaceholderText("Filter cases (id, patient, status)…  Ctrl+F")
        self.filter.setClearButtonEnabled(True)
        # a click or Ctrl+F only: at launch or by Tab, single-key shortcuts (1, 2, C, ...) would
        # type into it and filter the cases away
        self.filter.setFocusPolicy(Qt.FocusPolicy.ClickFocus)
        self.filter.textChanged.connect(self.proxy.setFilterFixedString)

        self.table = QTableView()
        self.table.setModel(self.proxy)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(0, Qt.SortOrder.AscendingOrder)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setAlternatingRowColors(True)
        self.table.verticalHeader().hide()
        self.table.verticalHeader().setDefaultSectionSize(22)
        # widths are set once per data set (_fit_columns): ResizeToContents would measure every
        # row on each change, 26 ms of a 35 ms case switch on 30 cases
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setSectionResizeMode(COLUMNS.index("Patient"), QHeaderView.ResizeMode.Stretch)
        self.table.selectionModel().currentRowChanged.connect(self._on_current_row)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addWidget(self.filter)
        layout.addWidget(self.table)
        model.case_changed.connect(self.select_current)
        model.dataset_changed.connect(self._show_columns)

    def _show_columns(self) -> None:
        """The split column only when the data set has more than one split; widths to fit."""
        splits = {entry.ref.split for entry in self.model.entries}
        self.table.setColumnHidden(COLUMNS.index("Split"), len(splits) < 2)
        self._fit_columns()

    def _fit_columns(self) -> None:
        """Columns as wide as their contents now, the status and core columns as wide as
        their widest value to come ("in review", "AI 100%", a partial count, "999.9")."""
        bold = QFont(self.table.font())
        bold.setBold(True)  # the current case's row is bold
        metrics = QFontMetrics(bold)
        padding = (
            2 * self.table.style().pixelMetric(self.table.style().PixelMetric.PM_HeaderMargin) + 8
        )
        widest = {
            COLUMNS.index("Status"): max(
                [metrics.horizontalAdvance(t) for t in [*map(str, Status), "AI 100%", PARTIAL]]
            ),
            COLUMNS.index("Core (mL)"): metrics.horizontalAdvance("999.9"),
            DOUBT: metrics.horizontalAdvance("99.999"),
        }
        for column in range(len(COLUMNS)):
            if COLUMNS[column] == "Patient":
                continue
            self.table.resizeColumnToContents(column)
            if column in widest:
                width = max(self.table.columnWidth(column), widest[column] + padding)
                self.table.setColumnWidth(column, width)

    def visible_indices(self) -> list[int]:
        """Entry indices in the order shown (sorted, filtered)."""
        return [
            self.proxy.mapToSource(self.proxy.index(row, 0)).row()
            for row in range(self.proxy.rowCount())
        ]

    def neighbour(self, step: int) -> int | None:
        """The entry ``step`` rows after the current case in the shown order, skipping cases
        that cannot be read (None at an end)."""
        entries, current = self.model.entries, self.model.index
        shown = [i for i in self.visible_indices() if i == current or entries[i].error is None]
        if not shown:
            return None
        if self.model.index not in shown:
            return shown[0] if step > 0 else shown[-1]
        position = shown.index(self.model.index) + step
        return shown[position] if 0 <= position < len(shown) else None

    def most_informative(self) -> int | None:
        """The shown case the ensemble doubts most (highest score; the first shown of equal
        ones), among those with a score, not reviewed (``REVIEWED``), readable and not on
        screen; None when there is none."""
        entries, current = self.model.entries, self.model.index
        candidates = [
            i
            for i in self.visible_indices()
            if i != current
            and entries[i].doubt is not None
            and entries[i].status not in REVIEWED
            and entries[i].error is None
        ]
        return max(candidates, key=lambda i: entries[i].doubt, default=None)

    def _on_current_row(self, current: QModelIndex, _previous: QModelIndex) -> None:
        if current.isValid() and not self._syncing:
            row = self.proxy.mapToSource(current).row()
            if row != self.model.index:
                self.case_activated.emit(row)

    def select_current(self) -> None:
        """Select the row of the case on screen (also after a row that failed to open)."""
        if self.model.index < 0:
            return
        proxy_index = self.proxy.mapFromSource(self.table_model.index(self.model.index, 0))
        if not proxy_index.isValid():
            return
        self._syncing = True
        try:
            self.table.setCurrentIndex(proxy_index)
        finally:
            self._syncing = False
        self.table.scrollTo(proxy_index)
