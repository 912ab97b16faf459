"""The main window: view/controller over the Qt-free ``Model``.

Everything slow (listing a data set, reading a case, the 4D series, the demo phantom) runs in a
thread pool through the asyncio loop (qasync in the app); results come back to the GUI thread,
where the model is updated and its events redraw the views. A newer case request supersedes an
older one still loading (generation counter), and the cases around the current one are read
ahead, so stepping through a data set rarely waits for the disk.

"Run AI" hands cases to an ``AiRunner`` (``inference``: the ensemble in its own process) and
draws what comes back, at most every ``AI_REFRESH_MS``; the compare dock is recomputed by
``compare_session.CompareSession``.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
import traceback
from collections import OrderedDict
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtCore import QSettings, Qt, QTimer
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QDockWidget,
    QFileDialog,
    QLabel,
    QMainWindow,
    QMenu,
    QMessageBox,
    QWidget,
)

from strokelens.app.ai_progress import AiProgress
from strokelens.app.case_browser import CaseBrowser
from strokelens.app.compare_panel import ComparePanel
from strokelens.app.compare_session import CompareSession
from strokelens.app.curve_dock import CurvePanel
from strokelens.app.inference import AiJob, AiRunner
from strokelens.app.layers_panel import LayersPanel
from strokelens.app.mismatch_panel import MismatchPanel
from strokelens.app.model import (
    CT_PRESETS,
    UNITS,
    Model,
    PreparedCase,
    RecentList,
    load_perfusion,
    prepare_case,
)
from strokelens.app.shortcuts_dialog import ShortcutsDialog
from strokelens.app.slice_view import SliceView
from strokelens.core import userdirs
from strokelens.core.case import CHANNELS
from strokelens.core.errors import DataError, StrokeLensError

if TYPE_CHECKING:
    from strokelens.core.prediction_store import PredictionCache

#: Cases kept in memory (the current one, the ones read ahead, a few recent).
CACHED_CASES = 4
DEFAULT_SIZE = (1600, 960)
#: The 4D series of a case is read once the case has been on screen this long.
SERIES_DELAY_MS = 300
#: While the AI runs, finished slices are drawn (and progress shown) at most this often.
AI_REFRESH_MS = 100
#: The AI does the slice on screen next once the reviewer has stayed on it this long.
PRIORITY_DELAY_MS = 150


def scan_dataset(path: str | Path):
    """The data set under ``path`` and each case's slice count from its CT header (worker)."""
    from strokelens.core.dataset import open_dataset
    from strokelens.core.nifti import open_image, spatial_shape

    dataset = open_dataset(path)
    slices = {}
    for ref in dataset:
        if "CT" in ref.files:
            try:
                slices[ref.key] = spatial_shape(open_image(ref.files["CT"]))[0]
            except DataError:
                pass  # the case shows its error when opened
    return dataset, slices


def read_case(ref) -> PreparedCase:
    """Load and prepare one case (worker)."""
    from strokelens.core.dataset import load_ref

    return prepare_case(load_ref(ref))


def _ensemble_info(path: Path, allow_external_members: bool) -> tuple[int, str]:
    """Member count and cache fingerprint of an ensemble manifest (worker)."""
    from strokelens.core.manifest import read_manifest
    from strokelens.core.prediction_store import manifest_fingerprint

    manifest = read_manifest(path, allow_external_members)
    return len(manifest.members), manifest_fingerprint(manifest)


def _complete(prediction) -> bool:
    return prediction is not None and prediction.complete


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
    ):
        """``ensemble``: the manifest "Run AI" uses (default: the last one chosen, else the
        bundled demo ensemble); ``prediction_cache``: where finished predictions are kept and
        found again (None: not kept); ``allow_external_members``: the user's leave (a command
        line option) to load member weights outside a manifest's folder."""
        super().__init__()
        self.model = model or Model()
        self.settings = settings or QSettings()
        self._loop = loop or asyncio.get_event_loop()
        self.ensemble = self._default_ensemble(ensemble)
        self.prediction_cache = prediction_cache
        self.allow_external_members = allow_external_members
        self._runner: AiRunner | None = None
        self._ensemble_info: tuple[int, str] | None = None  # (members, fingerprint)
        self.job: AiJob | None = None
        self._partials: dict = {}  # case key -> partial prediction of a stopped run
        self._pending: dict = {}  # case key -> prediction with slices not drawn yet
        self._ai_timer = QTimer(self, singleShot=True, interval=AI_REFRESH_MS)
        self._ai_timer.timeout.connect(self._flush_ai)
        self._series_timer = QTimer(self, singleShot=True, interval=SERIES_DELAY_MS)
        self._series_timer.timeout.connect(self._start_perfusion)
        self._priority_timer = QTimer(self, singleShot=True, interval=PRIORITY_DELAY_MS)
        self._priority_timer.timeout.connect(self._ai_priority_slice)
        self._executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="strokelens")
        # the 4D series has its own thread, so a slow series never delays the next case
        self._series_executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="series")
        self._tasks: set[asyncio.Task] = set()
        self.error_box: QMessageBox | None = None  # the one dialog for failures to act on
        self._cases: OrderedDict[str, asyncio.Future] = OrderedDict()
        self._generation = 0
        self._perfusion_loading: str | None = None
        self.recent = RecentList([str(p) for p in self._setting_list("recent")])
        self.closed = self._loop.create_future()

        self.setWindowTitle("StrokeLens")
        self.setAcceptDrops(True)
        self.view = SliceView(self.model)
        self.setCentralWidget(self.view)
        self.browser = CaseBrowser(self.model)
        self.browser.case_activated.connect(lambda i: self.spawn(self.show_case(i)))
        self.browser.filter.returnPressed.connect(self.view.graphics.setFocus)
        self.layers = LayersPanel(self.model)
        self.mismatch = MismatchPanel(self.model)
        self.curve = CurvePanel(self.model)
        self.compare = ComparePanel()
        self.docks = {
            "cases": self._dock("Cases", self.browser, Qt.DockWidgetArea.LeftDockWidgetArea),
            "mismatch": self._dock(
                "Mismatch", self.mismatch, Qt.DockWidgetArea.RightDockWidgetArea
            ),
            "layers": self._dock("Layers", self.layers, Qt.DockWidgetArea.RightDockWidgetArea),
            "curve": self._dock(
                "Time-density curve", self.curve, Qt.DockWidgetArea.RightDockWidgetArea
            ),
            "compare": self._dock(
                "Focal vs CE", self.compare, Qt.DockWidgetArea.RightDockWidgetArea
            ),
        }
        self.tabifyDockWidget(self.docks["curve"], self.docks["compare"])
        self.docks["curve"].raise_()
        self.docks["curve"].visibilityChanged.connect(lambda _on: self._want_perfusion())
        self.comparison = CompareSession(
            self.model,
            self.compare,
            self.docks["compare"],
            self.spawn,
            self.run_in_worker,
            self._ai_pending,
        )
        self.cursor_label = QLabel()
        self.ai_progress = AiProgress()
        self.ai_progress.cancel_requested.connect(self.cancel_ai)
        self.statusBar().addPermanentWidget(self.ai_progress)
        self.statusBar().addPermanentWidget(self.cursor_label)
        self.actions_in_order: list[QAction] = []
        self._make_menus()

        self.model.cursor_changed.connect(self._show_cursor)
        self.model.slice_changed.connect(lambda _z: self._show_cursor())
        self.model.case_changed.connect(self._on_case)
        self.model.slice_changed.connect(self._ai_follow_slice)
        self.model.case_changed.connect(self._ai_follow_case)
        self._restore()

    # -- construction --------------------------------------------------------------------------
    def _dock(self, title: str, widget: QWidget, area: Qt.DockWidgetArea) -> QDockWidget:
        dock = QDockWidget(title, self)
        dock.setObjectName(f"dock-{title}")
        dock.setWidget(widget)
        self.addDockWidget(area, dock)
        return dock

    def _action(
        self,
        menu: QMenu,
        text: str,
        slot: Callable[[], Any],
        keys: tuple[str | QKeySequence.StandardKey, ...] = (),
        checkable: bool = False,
    ) -> QAction:
        action = QAction(text, self)
        action.setShortcuts([QKeySequence(k) for k in keys])
        action.setShortcutContext(Qt.ShortcutContext.WindowShortcut)
        action.setCheckable(checkable)
        action.triggered.connect(lambda _checked=False: slot())
        menu.addAction(action)
        self.addAction(action)  # shortcuts work with the menu bar hidden too
        self.actions_in_order.append(action)
        return action

    def _make_menus(self) -> None:
        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        self._action(file_menu, "&Open data set…", self.choose_dataset, ("Ctrl+O",))
        self.recent_menu = file_menu.addMenu("Open &recent")
        self._fill_recent()
        self._action(file_menu, "Save &screenshot…", self.choose_screenshot, ("Ctrl+Shift+S",))
        file_menu.addSeparator()
        self._action(file_menu, "&Quit", self.close, ("Ctrl+Q",))

        case_menu = bar.addMenu("&Case")
        self._action(case_menu, "&Next case", lambda: self.step_case(1), ("PgDown", "Ctrl+Down"))
        self._action(case_menu, "&Previous case", lambda: self.step_case(-1), ("PgUp", "Ctrl+Up"))
        self._action(case_menu, "&Filter cases", self._focus_filter, ("Ctrl+F",))

        view_menu = bar.addMenu("&View")
        model = self.model
        self._action(view_menu, "Next slice", lambda: model.step_slice(1), ("Up",))
        self._action(view_menu, "Previous slice", lambda: model.step_slice(-1), ("Down",))
        self._action(view_menu, "First slice", lambda: model.set_slice(0), ("Home",))
        self._action(view_menu, "Last slice", lambda: model.set_slice(10**6), ("End",))
        view_menu.addSeparator()
        self._action(view_menu, "&Reset zoom and pan", self.view.reset_view, ("R",))
        self._action(view_menu, "Reset &window/level", model.reset_windows, ("W",))
        presets = view_menu.addMenu("CT window presets")
        for n, (name, (width, level)) in enumerate(CT_PRESETS.items(), start=1):
            self._action(
                presets,
                f"CT {name} (W {width:g} L {level:g})",
                lambda w=width, c=level: model.set_window("CT", w, c),
                (f"Alt+{n}",),
            )
        view_menu.addSeparator()
        for dock in self.docks.values():
            view_menu.addAction(dock.toggleViewAction())

        layer_menu = bar.addMenu("&Layers")
        for n, (name, layer) in enumerate(model.layers.items(), start=1):
            self._action(
                layer_menu,
                f"Toggle {layer.title.lower()}",
                lambda n=name: model.set_layer(n, visible=not model.layers[n].visible),
                (str(n),),
            )
        layer_menu.addSeparator()
        self._action(layer_menu, "Filled / contour (all layers)", self.toggle_contours, ("C",))
        self._action(layer_menu, "More opaque", lambda: self.change_opacity(0.1), ("=", "+"))
        self._action(layer_menu, "More transparent", lambda: self.change_opacity(-0.1), ("-",))

        ai_menu = bar.addMenu("&AI")
        self._action(ai_menu, "Run AI on this &case", self.run_ai_case, ("Ctrl+R",))
        self._action(ai_menu, "Run AI on &all cases", self.run_ai_all, ("Ctrl+Shift+R",))
        self._action(ai_menu, "&Stop the AI", self.cancel_ai, ("Esc",))
        ai_menu.addSeparator()
        self._action(ai_menu, "Compare &focal vs CE", self.show_compare, ("Ctrl+E",))
        self._action(ai_menu, "Choose &ensemble…", self.choose_ensemble)

        help_menu = bar.addMenu("&Help")
        self._action(help_menu, "&Keyboard shortcuts", self.show_shortcuts, ("F1", "Ctrl+/"))

    # -- settings ------------------------------------------------------------------------------
    def _setting_list(self, key: str) -> list[str]:
        value = self.settings.value(key, [])
        if isinstance(value, str):  # QSettings returns a lone string for one-element lists
            return [value]
        return list(value or [])

    def _restore(self) -> None:
        geometry = self.settings.value("window/geometry")
        if geometry is None or not self.restoreGeometry(geometry):
            self.resize(*DEFAULT_SIZE)
        state = self.settings.value("window/state")
        if state is None or not self.restoreState(state):
            docks = self.docks
            self.resizeDocks(
                [docks["cases"], docks["mismatch"]], [440, 330], Qt.Orientation.Horizontal
            )
            self.resizeDocks(
                [docks["mismatch"], docks["layers"], docks["curve"]],
                [300, 230, 300],
                Qt.Orientation.Vertical,
            )

    def _fill_recent(self) -> None:
        self.recent_menu.clear()
        for path in self.recent.paths:
            action = self.recent_menu.addAction(path)
            action.triggered.connect(lambda _c=False, p=path: self.spawn(self.open_dataset(p)))
        self.recent_menu.setEnabled(bool(self.recent.paths))

    def closeEvent(self, event) -> None:  # noqa: N802 (Qt override)
        self.settings.setValue("window/geometry", self.saveGeometry())
        self.settings.setValue("window/state", self.saveState())
        self.settings.setValue("recent", self.recent.paths)
        self.settings.sync()
        if self.job is not None:
            self.job.stop()
        timers = (self._ai_timer, self._priority_timer, self.comparison.timer, self._series_timer)
        for timer in timers:
            timer.stop()
        for task in list(self._tasks):
            task.cancel()
        for executor in (self._executor, self._series_executor):
            executor.shutdown(wait=False, cancel_futures=True)
        if self._runner is not None:
            self._runner.close()
        if not self.closed.done():
            self.closed.set_result(True)
        super().closeEvent(event)

    # -- tasks ---------------------------------------------------------------------------------
    def spawn(self, coroutine: Coroutine[Any, Any, Any]) -> asyncio.Task:
        """Run a coroutine on the loop; its failure is reported, never silently dropped."""
        task = self._loop.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if task.cancelled() or task.exception() is None:
            return
        exc = task.exception()
        self.report_error(exc)
        if not isinstance(exc, StrokeLensError):
            sys.excepthook(type(exc), exc, exc.__traceback__)

    async def idle(self) -> None:
        """Wait until every task started so far has finished (tests, screenshots)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def settled(self, timeout_s: float = 20.0) -> None:
        """Wait for the tasks and, when the curve dock shows a case with a 4D source, its series
        (screenshots: what a reviewer sees after a moment)."""
        await self.idle()
        case = self.model.case
        if case is None or not case.has_perfusion or not self.docks["curve"].isVisible():
            return
        deadline = self._loop.time() + timeout_s
        while self.model.perfusion is None and self._loop.time() < deadline:
            await asyncio.sleep(0.05)
            await self.idle()

    def run_in_worker(self, function: Callable[..., Any], *args: Any) -> asyncio.Future:
        return self._loop.run_in_executor(self._executor, function, *args)

    def report_error(self, exc: BaseException, act: bool = False) -> None:
        """Status bar and ``app.log`` (written in a worker); a dialog only for a failure the user
        must ``act`` on, and at most one open: a later failure replaces its text, so a burst of
        background errors never stacks dialogs."""
        self.statusBar().showMessage(f"Error: {exc}", 15000)
        detail = str(exc)
        if not isinstance(exc, StrokeLensError):  # a bug: the traceback is for the report
            detail = "".join(traceback.format_exception(exc))
        with contextlib.suppress(RuntimeError):  # the window is closing: no workers left
            self._executor.submit(userdirs.append_log, "app.log", detail)
        if not act:
            return
        if self.error_box is not None and self.error_box.isVisible():
            self.error_box.setText(str(exc))
            return
        self.error_box = QMessageBox(QMessageBox.Icon.Warning, "StrokeLens", str(exc), parent=self)
        self.error_box.open()  # not exec(): never block the loop

    # -- data set and cases --------------------------------------------------------------------
    def choose_dataset(self) -> None:
        start = self.recent.paths[0] if self.recent.paths else str(Path.home())
        path = QFileDialog.getExistingDirectory(self, "Open data set", start)
        if path:
            self.spawn(self.open_dataset(path))

    async def open_dataset(self, path: str | Path) -> bool:
        """List the data set in a worker, then show its first case; False if it cannot be read."""
        path = str(Path(path).expanduser().resolve())
        self.statusBar().showMessage(f"Opening {path}…")
        try:
            dataset, slices = await self.run_in_worker(scan_dataset, path)
        except DataError as exc:
            self.report_error(exc, act=True)
            return False
        self._cases.clear()
        self._generation += 1
        self.model.set_dataset(dataset, slices)
        self.recent.add(path)
        self.settings.setValue("recent", self.recent.paths)
        self._fill_recent()
        self.statusBar().showMessage(f"{len(dataset)} cases in {path}", 5000)
        shown = self.browser.visible_indices()
        return await self.show_case(shown[0]) if shown else True

    def _case_future(self, index: int) -> asyncio.Future:
        """The (possibly still running) load of entry ``index``; kept in a small LRU."""
        entry = self.model.entries[index]
        future = self._cases.get(entry.key)
        if future is None or (future.done() and future.exception() is not None):
            future = self.run_in_worker(read_case, entry.ref)
            future.add_done_callback(lambda f: f.cancelled() or f.exception())  # mark retrieved
            self._cases[entry.key] = future
        self._cases.move_to_end(entry.key)
        while len(self._cases) > CACHED_CASES:  # the current case and read-aheads are newest
            self._cases.popitem(last=False)
        return future

    async def show_case(self, index: int) -> bool:
        """Show entry ``index``; a later request wins over this one if it is still loading."""
        self._generation += 1
        generation = self._generation
        entry = self.model.entries[index]
        future = self._case_future(index)
        if not future.done():
            self.statusBar().showMessage(f"Loading {entry.key}…")
        try:
            prepared = await future
        except DataError as exc:
            if generation == self._generation:
                self.report_error(exc)
                self.browser.select_current()
            return False
        if generation != self._generation:
            return False
        self.model.set_case(index, prepared)
        self.statusBar().clearMessage()
        if entry.key not in self.model.predictions:
            self.spawn(self._load_cached_prediction(prepared.case))
        for step in (1, -1):  # read ahead while the reviewer looks at this one
            neighbour = self.browser.neighbour(step)
            if neighbour is not None:
                self._case_future(neighbour)
        return True

    def step_case(self, step: int) -> None:
        index = self.browser.neighbour(step)
        if index is not None:
            self.spawn(self.show_case(index))

    def _on_case(self) -> None:
        case = self.model.case
        dataset = self.model.dataset
        if case is None:
            self.setWindowTitle("StrokeLens" + (f" — {dataset.root.name}" if dataset else ""))
            return
        name = dataset.root.name if dataset else ""
        self.setWindowTitle(f"StrokeLens — {name} — {case.key} (patient {case.patient})")
        if case.problems:
            self.statusBar().showMessage("; ".join(case.problems), 10000)
        if not case.has_perfusion:
            self.curve.set_message("This case has no 4D source (CT_4DPWI): no curves.")
        self._want_perfusion()

    # -- 4D series -----------------------------------------------------------------------------
    def _want_perfusion(self) -> None:
        """Read the series once the reviewer stays on a case (not while paging through): the
        timer restarts on every case change."""
        case = self.model.case
        if case is not None and case.has_perfusion:
            self._series_timer.start()

    def _start_perfusion(self) -> None:
        case = self.model.case
        if (
            case is not None
            and case.has_perfusion
            and self.docks["curve"].isVisible()
            and self.model.perfusion is None
            and self._perfusion_loading != case.key
        ):
            self.spawn(self._load_perfusion(case))

    async def _load_perfusion(self, case) -> None:
        self._perfusion_loading = case.key
        self.curve.set_message(f"Reading the 4D series of {case.key}…")
        try:
            series = await self._loop.run_in_executor(self._series_executor, load_perfusion, case)
        except (DataError, ValueError, OSError) as exc:
            self.curve.set_message(f"4D series unusable: {exc}")
            return
        finally:
            if self._perfusion_loading == case.key:
                self._perfusion_loading = None
        self.model.set_perfusion(series)  # dropped by the model if the case changed meanwhile

    # -- AI ------------------------------------------------------------------------------------
    def _default_ensemble(self, given: str | Path | None) -> Path | None:
        from strokelens.core.demo import DEMO_MANIFEST

        if given is not None:
            return Path(given)
        chosen = self.settings.value("ai/ensemble")
        if chosen:
            return Path(str(chosen))
        return DEMO_MANIFEST if DEMO_MANIFEST.is_file() else None

    def choose_ensemble(self) -> None:
        start = str(self.ensemble.parent) if self.ensemble else str(Path.home())
        path, _ = QFileDialog.getOpenFileName(
            self, "Choose ensemble manifest", start, "Ensemble manifest (*.json)"
        )
        if path:
            self.set_ensemble(path)

    def set_ensemble(self, path: str | Path) -> bool:
        """Use another ensemble from the next run on; refused (False) while the AI runs."""
        if self.job is not None:
            self.statusBar().showMessage("Stop the AI (Esc) before choosing another ensemble.")
            return False
        if self._runner is not None:
            self._runner.close()
        self.ensemble, self._runner, self._ensemble_info = Path(path), None, None
        self._partials.clear()
        self.settings.setValue("ai/ensemble", str(self.ensemble))
        self.statusBar().showMessage(f"Ensemble: {self.ensemble}", 5000)
        return True

    async def _ensemble(self) -> tuple[int, str]:
        """Members and fingerprint of the current ensemble (its manifest read in a worker)."""
        if self._ensemble_info is None:
            if self.ensemble is None:
                raise StrokeLensError(
                    "No ensemble to run: choose a manifest with AI ▸ Choose ensemble…"
                )
            path = self.ensemble
            self._ensemble_info = await self.run_in_worker(
                _ensemble_info, path, self.allow_external_members
            )
        return self._ensemble_info

    async def _load_cached_prediction(self, case) -> None:
        if self.prediction_cache is None or self.ensemble is None:
            return
        try:
            _, fingerprint = await self._ensemble()
        except StrokeLensError:
            return  # no usable ensemble: "Run AI" will say why
        prediction = await self.run_in_worker(self.prediction_cache.get, fingerprint, case)
        if prediction is not None and case.key not in self.model.predictions:
            self.model.set_prediction(case.key, prediction)

    async def run_ai_first(self) -> bool:
        """Predict the case on screen and wait for it (``--run-ai``)."""
        case = self.model.case
        return case is not None and await self.run_ai([case.key])

    def run_ai_case(self) -> None:
        if self.model.case is not None:
            self.spawn(self.run_ai([self.model.case.key]))

    def run_ai_all(self) -> None:
        keys = [self.model.entries[i].key for i in self.browser.visible_indices()]
        self.spawn(self.run_ai(keys))

    def cancel_ai(self) -> None:
        if self.job is not None:
            self.job.stop()
            self.ai_progress.show_message("Stopping the AI…")

    async def run_ai(self, keys: list[str]) -> bool:
        """Predict the cases ``keys`` (those without a finished prediction) in the background.

        The case on screen goes first, and its slice on screen first; results are drawn as
        they arrive. A call while a run is going adds its cases to that run. False when the
        ensemble cannot be used.
        """
        model = self.model
        keys = [k for k in keys if not _complete(model.predictions.get(k))]
        if not keys:
            self.statusBar().showMessage("The AI has already predicted these cases.", 5000)
            return True
        try:
            members, _ = await self._ensemble()
        except StrokeLensError as exc:
            self.report_error(exc, act=True)
            return False
        work = {k: members * (model.entries[model.index_of(k)].n_slices or 1) for k in keys}
        if self.job is not None and not self.job.stopped:
            self.job.add(keys, work)
            self.ai_progress.show_job(self.job)
            return True
        if self._runner is None:
            cache = self.prediction_cache
            self._runner = AiRunner(
                self._loop,
                self.ensemble,  # type: ignore[arg-type]
                cache_root=None if cache is None else cache.root,
                allow_external_members=self.allow_external_members,
            )
        runner = self._runner
        job = self.job = AiJob([], {}, partials=self._partials)
        job.add(keys, work)
        if model.case is not None:
            job.prefer(model.case.key)
        self.ai_progress.show_message(f"Loading the ensemble {self.ensemble.name}…")
        try:
            await runner.load()
            await runner.run(
                job,
                self._ai_ref,
                self._ai_priority,
                self._on_ai_slice,
                self._on_ai_progress,
                self._on_ai_case_done,
                self._on_ai_case_error,
            )
        except StrokeLensError as exc:
            self.report_error(exc, act=True)
            return False
        finally:
            self._flush_ai()
            for key in [*job.keys, *filter(None, [job.running])]:
                model.set_progress(key, None)
            if self.job is job:  # else a newer run (started after a stop) owns the progress
                self.job = None
                self.ai_progress.hide()
        summary = job.summary(time.perf_counter() - job.started)
        self.statusBar().showMessage(summary, 15000 if job.skipped else 8000)
        return True

    def _ai_ref(self, key: str):
        return self.model.entries[self.model.index_of(key)].ref

    def _ai_priority(self, key: str) -> int | None:
        case = self.model.case
        return self.model.slice if case is not None and case.key == key else None

    def _ai_follow_slice(self, _z: int) -> None:
        if self.job is not None:
            self._priority_timer.start()

    def _ai_priority_slice(self) -> None:
        """The reviewer stays on a slice the AI has not done yet: do it next. (Only once the
        reviewer stays: each request discards the member-batch running, so following every
        slice of a scroll would keep the AI restarting.)"""
        job, case, z = self.job, self.model.case, self.model.slice
        if job is None or case is None or job.running != case.key:
            return
        prediction = self._pending.get(case.key) or self.model.predictions.get(case.key)
        if prediction is None or not prediction.done[z]:
            job.request_priority(z)

    def _ai_follow_case(self) -> None:
        """The reviewer opened a case still queued: it goes next."""
        if self.job is not None and self.model.case is not None:
            self.job.prefer(self.model.case.key)

    def _on_ai_slice(self, key: str, _z: int, prediction) -> None:
        self._pending[key] = prediction
        if not self._ai_timer.isActive():
            self._ai_timer.start()

    def _on_ai_progress(self, done: int, _total: int) -> None:
        if self.job is not None:
            self.job.set_case_progress(done)
            if not self._ai_timer.isActive():
                self._ai_timer.start()

    def _flush_ai(self) -> None:
        """Draw the slices that arrived since the last flush and show the progress."""
        pending, self._pending = self._pending, {}
        for key, prediction in pending.items():
            self.model.set_prediction(key, prediction)
        job = self.job
        if job is not None and job.running is not None:
            work = job.work[job.running]
            self.model.set_progress(job.running, min(job.case_work / work, 1.0))
            self.ai_progress.show_job(job)

    def _on_ai_case_done(self, key: str, prediction) -> None:
        """A finished case (the AI process has written it to the prediction cache)."""
        self._pending.pop(key, None)
        self.model.set_prediction(key, prediction)
        if self.job is not None:
            self.ai_progress.show_job(self.job)

    def _on_ai_case_error(self, key: str, exc: Exception) -> None:
        self.model.set_progress(key, None)
        self.statusBar().showMessage(f"AI skipped {key}: {exc}", 10000)

    # -- compare focal vs CE --------------------------------------------------------------------
    def show_compare(self) -> None:
        """Bring the compare dock forward (it shares its place with the curve dock)."""
        dock = self.docks["compare"]
        dock.show()
        dock.raise_()

    def _ai_pending(self, key: str) -> bool:
        return self.job is not None and key in (self.job.running, *self.job.keys)

    # -- demo ----------------------------------------------------------------------------------
    async def open_demo(self, folder: Path) -> bool:
        """Open the demo data set, generating it first (in a worker, with progress) if missing."""
        from strokelens.core import demo

        if not demo.demo_ready(folder):
            done = 0

            def progress(_path: Path) -> None:
                self._loop.call_soon_threadsafe(step)

            def step() -> None:
                nonlocal done
                done += 1
                self.statusBar().showMessage(
                    f"Generating the demo data set in {folder}: {done} / {demo.DEMO_CASES} cases…"
                )

            self.statusBar().showMessage(f"Generating the demo data set in {folder}…")
            try:
                await self.run_in_worker(demo.generate_demo, folder, progress)
            except DataError as exc:
                self.report_error(exc, act=True)
                return False
        return await self.open_dataset(folder)

    # -- small actions -------------------------------------------------------------------------
    def _show_cursor(self) -> None:
        self.cursor_label.setText(format_cursor(self.model))

    def _focus_filter(self) -> None:
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
        ShortcutsDialog(self.actions_in_order, self).open()

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
            self.spawn(self.open_dataset(folder))
