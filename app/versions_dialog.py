"""AI ▸ Model versions: every version in the registry, what it was trained on, how it measured
on its held-out cases, and which one is active. Making another one active (a promotion, or a
rollback to an earlier one) asks first.

Reading the registry and switching versions are ``retrain_runner.Retraining``'s, run in
workers. This dialog shows the rows and turns the buttons into those calls.
"""

from __future__ import annotations

from datetime import UTC, datetime

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from strokelens.app.retrain_runner import Retraining
from strokelens.core.errors import StrokeLensError
from strokelens.core.registry import ENSEMBLE, VersionInfo, promotion_check, version_number

COLUMNS = ("", "Version", "Parent", "Created", "Trained on", "Judged on", "Held-out DSC", "Advice")
ADVICE = COLUMNS.index("Advice")  # its tooltip holds the figures behind it
ACTIVE_MARK = "●"


def created(info: VersionInfo) -> str:
    """When the retrain started, to the minute, in UTC as recorded (raw when not ISO 8601)."""
    if info.record is None:
        return "—"
    try:
        at = datetime.fromisoformat(info.record.created).astimezone(UTC)
    except ValueError:
        return info.record.created
    return at.strftime("%Y-%m-%d %H:%M UTC")


def trained_on(info: VersionInfo) -> str:
    if info.record is None:
        return "bundled demo ensemble"
    sources = [c.source for c in info.record.train_cases]
    corrections, originals = sources.count("correction"), sources.count("original")
    return f"{corrections} correction(s)" + (f" + {originals} original" if originals else "")


def judged_on(info: VersionInfo) -> str:
    if info.record is None:
        return "—"
    rec = info.record
    return f"{len(rec.heldout_cases)} case(s), {len(rec.heldout_patients)} patient(s)"


def heldout_dsc(info: VersionInfo) -> str:
    """The ensemble's held-out DSC of the parent and of this version (the parent's is measured
    on this version's held-out cases, so the two compare)."""
    if info.record is None:
        return "—"
    before, after = info.record.before.get(ENSEMBLE), info.record.after.get(ENSEMBLE)
    if before is None or after is None:
        return "not measured"
    return f"{before:.3f} → {after:.3f} ({after - before:+.3f})"


def advice(info: VersionInfo) -> tuple[str, str]:
    """The worker's verdict when the version was made, and its figures in words (tooltip)."""
    if info.record is None:
        return "", "The bundled ensemble: what every version starts from"
    rec = info.record
    _ok, why = promotion_check(rec.before, rec.after, rec.members_trained)
    return ("recommended" if rec.recommend else "not recommended"), why


def details(info: VersionInfo) -> str:
    if info.record is None:
        return f"{info.name}: the bundled demo ensemble ({info.manifest})."
    rec = info.record
    config = ", ".join(f"{k} {v}" for k, v in sorted(rec.config.items()))
    return (
        f"{info.name}: fine-tuned {', '.join(rec.members_trained) or 'no member'} from "
        f"{rec.parent} in {rec.duration_s:.0f} s; {config or 'no config recorded'}. "
        f"Project: {rec.project}. Held-out patients: {', '.join(rec.heldout_patients) or '—'}."
    )


def _item(text: str, tooltip: str = "") -> QTableWidgetItem:
    item = QTableWidgetItem(text)
    item.setFlags(item.flags() & ~Qt.ItemFlag.ItemIsEditable)
    item.setToolTip(tooltip)
    return item


class VersionsDialog(QDialog):
    def __init__(self, retraining: Retraining, parent: QWidget | None = None):
        super().__init__(parent)
        self.retraining, self.tasks = retraining, retraining.tasks
        self.setWindowTitle("Model versions")
        self.setModal(False)
        self.versions: list[VersionInfo] = []
        self.confirm_box: QMessageBox | None = None

        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.verticalHeader().hide()
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.itemSelectionChanged.connect(self._show_selected)
        self.about = QLabel("Reading the registry…")
        self.about.setWordWrap(True)
        self.about.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.activate_button = QPushButton("Make active…")
        self.activate_button.setToolTip(
            "Run AI uses the selected version from then on (a promotion, or a rollback to an "
            "earlier version); the others stay in the registry"
        )
        self.activate_button.setEnabled(False)
        self.activate_button.clicked.connect(self.ask_activate)
        close = QPushButton("Close")
        close.clicked.connect(self.close)

        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.activate_button)
        buttons.addWidget(close)
        layout = QVBoxLayout(self)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.about)
        layout.addLayout(buttons)
        self.resize(1000, 360)
        retraining.activated.connect(lambda _version: self.refresh())

    def refresh(self) -> None:
        """Read the registry again (a retrain or the command line may have changed it)."""
        self.tasks.spawn(self._load())

    async def _load(self) -> None:
        try:
            versions = await self.retraining.versions()
        except StrokeLensError as exc:
            self.versions = []
            self.table.setRowCount(0)
            self.about.setText(f"The registry cannot be read: {exc}")
            self.activate_button.setEnabled(False)
            return
        self.versions = versions
        self.table.setRowCount(len(versions))
        for row, info in enumerate(versions):
            word, why = advice(info)
            cells = (
                ACTIVE_MARK if info.active else "",
                info.name,
                info.record.parent if info.record else "—",
                created(info),
                trained_on(info),
                judged_on(info),
                heldout_dsc(info),
                word,
            )
            for column, text in enumerate(cells):
                self.table.setItem(row, column, _item(text, why if column == ADVICE else ""))
        self.table.resizeColumnsToContents()
        active = next((r for r, info in enumerate(versions) if info.active), None)
        if active is not None:
            self.table.selectRow(active)
        self._show_selected()

    def selected(self) -> VersionInfo | None:
        rows = self.table.selectionModel().selectedRows()
        return self.versions[rows[0].row()] if rows else None

    def active(self) -> VersionInfo | None:
        return next((info for info in self.versions if info.active), None)

    def _show_selected(self) -> None:
        info = self.selected()
        self.about.setText("" if info is None else details(info))
        self.activate_button.setEnabled(info is not None and not info.active)

    def ask_activate(self) -> None:
        """Switching asks first, naming what it does; yes makes the version active."""
        info, active = self.selected(), self.active()
        if info is None or active is None or info.active:
            return
        back = version_number(info.name) < version_number(active.name)
        word, why = advice(info)
        measured = f" When it was made: {word} ({why})." if word else ""
        self.confirm_box = box = QMessageBox(
            QMessageBox.Icon.Question,
            "Model versions",
            f"{'Roll back to' if back else 'Promote'} {info.name}? Run AI uses it from now on "
            f"instead of {active.name}, which stays in the registry.{measured}",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            self,
        )
        yes = QMessageBox.StandardButton.Yes
        box.buttonClicked.connect(
            lambda button: (
                box.standardButton(button) == yes
                and self.tasks.spawn(self.retraining.activate(info.name))
            )
        )
        box.open()  # not exec(): never block the loop
