"""The main window: builds the widgets, menus and docks over the Qt-free ``Model`` and connects
them to the controllers beside it.

``tasks.Tasks`` runs the background work and reports its failures, ``case_loader`` opens data
sets, cases and 4D series in workers, ``ai_session.AiSession`` runs the ensemble; the panels
subscribe to the model. The window turns menus and keys into their calls and shows their events
(status bar, progress, the one dialog for failures to act on).
"""

from __future__ import annotations

import asyncio
import importlib
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QSettings, Qt
from PySide6.QtWidgets import (
    QFileDialog,
    QLabel,
    QMainWindow,
    QMessageBox,
    QVBoxLayout,
    QWidget,
)

from strokelens.app import window_settings
from strokelens.app.ai_progress import AiProgress
from strokelens.app.ai_session import AiSession
from strokelens.app.case_browser import CaseBrowser
from strokelens.app.case_loader import CaseLoader, SeriesLoader
from strokelens.app.compare_panel import ComparePanel
from strokelens.app.curve_dock import CurvePanel
from strokelens.app.docks import add_dock, scrolled
from strokelens.app.edit_panel import EditPanel
from strokelens.app.edit_session import START_SOURCES, EditSession
from strokelens.app.layers_panel import LayersPanel
from strokelens.app.menus import Menus
from strokelens.app.mismatch_panel import MismatchPanel
from strokelens.app.model import UNITS, Model, RecentList
from strokelens.app.model_actions import ModelActions
from strokelens.app.montage_view import MontageView
from strokelens.app.project_actions import ProjectActions
from strokelens.app.project_session import ProjectSession
from strokelens.app.ranking_session import DoubtScores
from strokelens.app.report_actions import ReportActions
from strokelens.app.report_export import ReportExport
from strokelens.app.shortcuts_dialog import ShortcutsDialog
from strokelens.app.slice_view import ITKSNAP, STROKELENS, SliceView
from strokelens.app.summary_session import SummarySession
from strokelens.app.tasks import Tasks
from strokelens.core.case import CHANNELS

if TYPE_CHECKING:
    from strokelens.core.prediction_store import PredictionCache

#: The mismatch dock shows at least its numbers and verdict (the criteria may scroll).
MISMATCH_MIN_PX = 290


def format_cursor(model: Model) -> str:
    """Status-bar text: voxel index (x, y, z), scanner mm and the five channel values."""
    if model.cursor is None or model.case is None:
        return ""
    y, x = model.cursor
    mm = model.cursor_mm()
    values = model.cursor_values()
    parts = [f"{c} {_value(values[c], UNITS[c])}" for c in CHANNELS]
    position = f"({mm[0]:.1f}, {mm[1]:.1f}, {mm[2]:.1f}) mm" if mm else ""
    return f"x {x}  y {y}  z {model.slice}   {position}   " + "   ".join(parts)


def _value(value: float, unit: str) -> str:
    if unit == "s":
        return f"{value:.1f} s"
    return f"{value:.0f} HU" if unit == "HU" else f"{value:.4g}"


class MainWindow(QMainWindow):
    def __init__(
        self,
        model: Model | None = None,
        settings: QSettings | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
        ensemble: str | Path | None = None,
        prediction_cache: PredictionCache | None = None,
        allow_external_members: bool = False,
        project: str | Path | None = None,
    ):
        """``ensemble``: the manifest "Run AI" uses (default: the last one chosen, else the
        bundled demo ensemble); ``prediction_cache``: where finished predictions are kept and
        found again (None: not kept); ``allow_external_members``: the user's leave (a command
        line option) to load member weights outside a manifest's folder; ``project``: where
        corrections are saved (default: the data set's own project in the user's data folder)."""
        super().__init__()
        self.model = model = model or Model()
        self.settings = settings or QSettings()
        self.tasks = Tasks(loop or asyncio.get_event_loop())
        self.error_box: QMessageBox | None = None  # the one dialog for failures to act on
        self.quit_box: QMessageBox | None = None  # "quit while the AI runs?"
        self._quitting = False
        self.recent = RecentList(window_settings.setting_list(self.settings, "recent"))
        self.closed = self.tasks.loop.create_future()

        self.setWindowTitle("StrokeLens")
        self.setAcceptDrops(True)
        self.edit = EditSession(model)
        reviewer = self.settings.value("review/reviewer")
        self.project = ProjectSession(model, self.edit, self.tasks, str(reviewer or "") or None)
        self.project.want(project)
        self.project_actions = ProjectActions(self, self.project)
        self.view = SliceView(model, self.edit)
        central = QWidget()
        column = QVBoxLayout(central)
        column.setContentsMargins(0, 0, 0, 0)
        column.setSpacing(0)
        column.addWidget(self.project_actions.banner)
        column.addWidget(self.view, 1)
        self.setCentralWidget(central)
        self.browser = CaseBrowser(model)
        self.layers = LayersPanel(model)
        self.summaries = SummarySession(model, self.tasks)
        self.mismatch = MismatchPanel(self.summaries)
        self.montage = MontageView(model, self.summaries, self.tasks)
        self.curve = CurvePanel(model)
        remembered = self.settings.value("ai/ensemble")
        self.ai = AiSession(
            model,
            self.tasks,
            None if ensemble is None else Path(ensemble),
            prediction_cache,
            allow_external_members,
        )
        if ensemble is None:
            self.ai.find_ensemble(str(remembered) if remembered else None)
        self.doubt = DoubtScores(model, self.tasks, self.ai)
        self.doubt.strategy_changed.connect(self.browser.table_model.set_strategy)
        self.compare = ComparePanel(model, self.tasks, self.ai.pending)
        self.report = ReportActions(
            self,
            ReportExport(
                model, self.tasks, self.summaries, self.project, lambda: self.ai.ensemble,
                allow_external_members,
            ),
        )  # fmt: skip
        self.models = ModelActions(self)  # AI ▸ Retrain, AI ▸ Model versions
        self.cases = CaseLoader(
            model, self.tasks, self.browser.neighbour, self.browser.visible_indices
        )
        right = Qt.DockWidgetArea.RightDockWidgetArea
        self.docks = {
            "cases": add_dock(self, "Cases", self.browser, Qt.DockWidgetArea.LeftDockWidgetArea),
            "mismatch": add_dock(self, "Mismatch", scrolled(self.mismatch, MISMATCH_MIN_PX), right),
            "layers": add_dock(self, "Layers", scrolled(self.layers), right),
            "curve": add_dock(self, "Time-density curve", self.curve, right),
            "compare": add_dock(self, "Focal vs CE", self.compare, right),
            "montage": add_dock(self, "Montage", self.montage, right),
        }
        self.tabifyDockWidget(self.docks["curve"], self.docks["compare"])
        self.tabifyDockWidget(self.docks["compare"], self.docks["montage"])
        self.docks["curve"].raise_()
        self.series = SeriesLoader(model, self.tasks, self.docks["curve"].isVisible)
        self.cursor_label = QLabel()
        self.ai_progress = AiProgress()
        self.statusBar().addPermanentWidget(self.ai_progress)
        self.statusBar().addPermanentWidget(self.cursor_label)
        self.menus = Menus(self)
        self.editor = EditPanel(self.edit, self.menus.named)
        self.docks["edit"] = add_dock(self, "Edit", scrolled(self.editor), right)
        self.tabifyDockWidget(self.docks["layers"], self.docks["edit"])
        self.docks["layers"].raise_()
        self._fill_recent()
        self._connect()
        window_settings.restore(self)

    def _connect(self) -> None:
        model = self.model
        self.tasks.failed.connect(self.show_error)
        self.browser.case_activated.connect(lambda i: self.tasks.spawn(self.cases.show_case(i)))
        self.browser.filter.returnPressed.connect(self.view.graphics.setFocus)
        self.cases.status.connect(self.show_status)
        self.cases.opened.connect(self._remember_dataset)
        self.cases.opened.connect(lambda _path: self.tasks.spawn(self.project.open()))
        self.cases.refused.connect(self.browser.select_current)
        self.series.message.connect(self.curve.set_message)
        self.docks["curve"].visibilityChanged.connect(lambda _on: self.series.want())
        self.ai.status.connect(self.show_status)
        self.ai.progress.connect(
            lambda job: self.ai_progress.hide() if job is None else self.ai_progress.show_job(job)
        )
        self.ai.progress_text.connect(self.ai_progress.show_message)
        self.ai.ensemble_changed.connect(lambda p: self.settings.setValue("ai/ensemble", str(p)))
        self.ai_progress.cancel_requested.connect(self.ai.cancel)
        self.edit.status.connect(self.show_status)
        self.editor.start_requested.connect(self.start_correction)
        model.cursor_changed.connect(self._show_cursor)
        model.slice_changed.connect(lambda _z: self._show_cursor())
        model.case_changed.connect(self._on_case)

    # -- construction --------------------------------------------------------------------------
    def _fill_recent(self) -> None:
        self.menus.recent.clear()
        for path in self.recent.paths:
            action = self.menus.recent.addAction(path)
            action.triggered.connect(
                lambda _c=False, p=path: self.tasks.spawn(self.cases.open_dataset(p))
            )
        self.menus.recent.setEnabled(bool(self.recent.paths))

    def closeEvent(self, event) -> None:  # noqa: N802 (Qt override)
        if self.ai.cases_left() and not self._quitting:
            event.ignore()
            self._ask_quit()
            return
        window_settings.save(self)
        self.project.close_now()  # what is unsaved is saved before anything else stops
        self.series.closed = True  # the docks hide as the window goes: no series to read
        self.ai.close()
        self.models.close()
        for timer in (self.compare.timer, self.series.timer):
            timer.stop()
        self.tasks.close()
        if not self.closed.done():
            self.closed.set_result(True)
        super().closeEvent(event)

    def _ask_quit(self) -> None:
        """Quitting while the AI runs asks first; yes stops the AI, which keeps the running
        case's finished slices in the cache, then closes."""
        if self.quit_box is not None and self.quit_box.isVisible():
            self.quit_box.raise_()
            return
        self.quit_box = box = QMessageBox(
            QMessageBox.Icon.Question,
            "StrokeLens",
            f"The AI is running on {self.ai.cases_left()} case(s). Quit anyway?",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
            self,
        )
        yes = QMessageBox.StandardButton.Yes
        box.buttonClicked.connect(
            lambda button: box.standardButton(button) == yes and self.tasks.spawn(self._quit())
        )
        box.open()  # not exec(): never block the loop

    async def _quit(self) -> None:
        self._quitting = True
        self.statusBar().showMessage("Stopping the AI and keeping its finished slices…")
        await self.ai.stop()
        self.close()

    # -- what the controllers say ----------------------------------------------------------------
    def show_title(self) -> None:
        """Data set, case and patient, and whether the correction is saved."""
        case, dataset = self.model.case, self.model.dataset
        title = "StrokeLens" + (f" — {dataset.root.name}" if dataset else "")
        if case is not None:
            title += f" — {case.key} (patient {case.patient})"
        self.setWindowTitle(title + self.project_actions.title_suffix())

    def show_status(self, text: str, ms: int) -> None:
        if text:
            self.statusBar().showMessage(text, ms)
        else:
            self.statusBar().clearMessage()

    def show_error(self, exc: BaseException, act: bool) -> None:
        """In the status bar (``Tasks`` has logged it); a dialog only for a failure the user must
        ``act`` on, and at most one open: a later failure replaces its text, so a burst of
        background errors never stacks dialogs."""
        self.statusBar().showMessage(f"Error: {exc}", 15000)
        if not act:
            return
        if self.error_box is not None and self.error_box.isVisible():
            self.error_box.setText(str(exc))
            return
        self.error_box = QMessageBox(QMessageBox.Icon.Warning, "StrokeLens", str(exc), parent=self)
        self.error_box.open()  # not exec(): never block the loop

    def _remember_dataset(self, path: str) -> None:
        self.recent.add(path)
        self.settings.setValue("recent", self.recent.paths)
        self._fill_recent()

    def _on_case(self) -> None:
        case = self.model.case
        self.show_title()
        if case is None:
            return
        if case.problems:
            self.statusBar().showMessage("; ".join(case.problems), 10000)
        if not case.has_perfusion:
            self.curve.set_message("This case has no 4D source (CT_4DPWI): no curves.")
        if "scipy.ndimage" not in sys.modules:  # the editing tools' first fill must not wait
            self.tasks.run_in_worker(importlib.import_module, "strokelens.core.editing.components")

    async def settled(self, timeout_s: float = 20.0) -> None:
        """Wait for the tasks and the 4D series on screen (screenshots: what a reviewer sees
        after a moment)."""
        await self.tasks.idle()
        await self.series.settled(timeout_s)

    # -- menu actions ------------------------------------------------------------------------------
    def choose_dataset(self) -> None:
        start = self.recent.paths[0] if self.recent.paths else str(Path.home())
        path = QFileDialog.getExistingDirectory(self, "Open data set", start)
        if path:
            self.tasks.spawn(self.cases.open_dataset(path))

    def choose_ensemble(self) -> None:
        ensemble = self.ai.ensemble
        start = str(ensemble.parent) if ensemble else str(Path.home())
        path, _ = QFileDialog.getOpenFileName(
            self, "Choose ensemble manifest", start, "Ensemble manifest (*.json)"
        )
        if path:
            self.ai.set_ensemble(path)

    def run_ai_case(self) -> None:
        if self.model.case is not None:
            self.tasks.spawn(self.ai.run([self.model.case.key]))

    def run_ai_all(self) -> None:
        keys = [self.model.entries[i].key for i in self.browser.visible_indices()]
        self.tasks.spawn(self.ai.run(keys))

    def next_informative(self) -> None:
        """Ctrl+N: the shown unreviewed case the ensemble doubts most (case browser's doubt)."""
        index = self.browser.most_informative()
        if index is None:
            self.show_status(
                "No other unreviewed case has a doubt score: run the AI on the cases first.", 8000
            )
        else:
            self.tasks.spawn(self.cases.show_case(index))

    def set_mouse_preset(self, preset: str) -> None:
        """StrokeLens's mouse and keys, or ITK-SNAP's (``slice_view``); remembered."""
        self.view.mouse_preset = preset
        self.menus.set_mouse_preset(preset)
        self.settings.setValue("view/mouse_preset", preset)

    def toggle_mouse_preset(self) -> None:
        self.set_mouse_preset(STROKELENS if self.view.mouse_preset == ITKSNAP else ITKSNAP)

    def escape(self) -> None:
        """Esc: abort the paint stroke in progress, else stop the AI."""
        if not self.edit.abort():
            self.ai.cancel()

    def start_correction(self, source: str) -> None:
        """Start the correction over from ``source``, asking first when edits would be lost."""
        if not self.edit.has_edits():
            self.edit.start_from(source)
            return
        box = QMessageBox(
            QMessageBox.Icon.Question,
            "StrokeLens",
            f"Replace the correction of this case by the {START_SOURCES[source].lower()} mask? "
            "(Edit ▸ Undo brings it back.)",
            QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
            self,
        )
        yes = QMessageBox.StandardButton.Yes
        box.buttonClicked.connect(
            lambda button: box.standardButton(button) == yes and self.edit.start_from(source)
        )
        box.open()  # not exec(): never block the loop

    def show_compare(self) -> None:
        """Bring the compare dock forward (it shares its place with the curve dock)."""
        dock = self.docks["compare"]
        dock.show()
        dock.raise_()

    # -- small actions -------------------------------------------------------------------------
    def _show_cursor(self) -> None:
        self.cursor_label.setText(format_cursor(self.model))

    def focus_filter(self) -> None:
        self.docks["cases"].show()
        self.browser.filter.setFocus()
        self.browser.filter.selectAll()

    def toggle_contours(self) -> None:
        contour = not any(layer.contour for layer in self.model.layers.values())
        for name in self.model.layers:
            self.model.set_layer(name, contour=contour)

    def change_opacity(self, delta: float) -> None:
        for name, layer in self.model.layers.items():
            self.model.set_layer(name, opacity=layer.opacity + delta)

    def show_shortcuts(self) -> None:
        ShortcutsDialog(self.menus.in_order, self).open()

    def save_screenshot(self, path: str | Path) -> bool:
        """PNG (or any Qt image format by suffix) of the whole window."""
        return bool(self.grab().save(str(path)))

    def choose_screenshot(self) -> None:
        path, _ = QFileDialog.getSaveFileName(
            self, "Save screenshot", "strokelens.png", "PNG (*.png)"
        )
        if path:
            self.save_screenshot(path)

    # -- drag and drop -------------------------------------------------------------------------
    @staticmethod
    def _dropped_folder(mime) -> str | None:
        for url in mime.urls() if mime.hasUrls() else []:
            if url.isLocalFile() and Path(url.toLocalFile()).is_dir():
                return url.toLocalFile()
        return None

    def dragEnterEvent(self, event) -> None:  # noqa: N802 (Qt override)
        if self._dropped_folder(event.mimeData()):
            event.acceptProposedAction()

    def dropEvent(self, event) -> None:  # noqa: N802 (Qt override)
        folder = self._dropped_folder(event.mimeData())
        if folder:
            event.acceptProposedAction()
            self.tasks.spawn(self.cases.open_dataset(folder))
