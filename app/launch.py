"""Start the workstation: QApplication, dark theme, the qasync loop, the main window.

The window is shown before anything is read (the data set opens in a worker afterwards), and
nothing here imports torch, so the window appears within about a second (``bench/gui.py``).
``screenshot`` opens the data set, waits for its first case (and its cached predictions), saves a
PNG of the whole window and returns; it uses throw-away settings so docs and checks never touch
the user's.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

SCREENSHOT_SIZE = (1600, 960)


def make_app():
    """The QApplication (existing or new) with the theme, names and pyqtgraph options set."""
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QGuiApplication
    from PySide6.QtWidgets import QApplication

    from strokelens.app.theme import apply_dark, configure_pyqtgraph

    app = QApplication.instance()
    if app is None:
        QGuiApplication.setHighDpiScaleFactorRoundingPolicy(
            Qt.HighDpiScaleFactorRoundingPolicy.PassThrough
        )
        app = QApplication(sys.argv[:1])
    app.setOrganizationName("strokelens")
    app.setApplicationName("StrokeLens")
    app.setQuitOnLastWindowClosed(False)  # the loop ends when the window's ``closed`` is set
    configure_pyqtgraph()
    apply_dark(app)
    return app


def run_gui(
    path: str | Path | None = None,
    *,
    demo_folder: Path | None = None,
    screenshot: str | Path | None = None,
    ensemble: str | Path | None = None,
    allow_external_members: bool = False,
    run_ai: bool = False,
    project: str | Path | None = None,
) -> int:
    """Open the window on ``path`` (or the demo data in ``demo_folder``); 0 on success.

    ``ensemble``: the manifest "Run AI" uses (``allow_external_members``: as for
    ``read_manifest``); ``run_ai``: predict the first case at once (with ``screenshot``, the
    picture shows its result); ``project``: where corrections are saved (a screenshot without
    one uses a throw-away project, never the user's).
    """
    import qasync
    from PySide6.QtCore import QEvent, QSettings

    from strokelens.app.main_window import MainWindow
    from strokelens.app.model import Model
    from strokelens.core.prediction_store import PredictionCache, default_cache_root

    app = make_app()
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    scratch = tempfile.TemporaryDirectory(prefix="strokelens-") if screenshot else None
    settings = (
        QSettings(str(Path(scratch.name) / "settings.ini"), QSettings.Format.IniFormat)
        if scratch
        else QSettings()
    )
    cache = PredictionCache(default_cache_root())  # screenshots show cached predictions too
    if scratch and project is None:
        project = Path(scratch.name) / "project"
    window = MainWindow(
        Model(),
        settings,
        loop,
        ensemble=ensemble,
        prediction_cache=cache,
        allow_external_members=allow_external_members,
        project=project,
    )
    if screenshot:
        window.resize(*SCREENSHOT_SIZE)
    window.show()

    async def main() -> int:
        opened = True
        if demo_folder is not None:
            opened = await window.cases.open_demo(demo_folder)
        elif path is not None:
            opened = await window.cases.open_dataset(path)
        if opened and run_ai:
            await window.tasks.idle()
            case = window.model.case
            opened = case is not None and await window.ai.run([case.key])
        if screenshot is None:
            await window.closed
            return 0
        await window.settled()
        app.processEvents()
        saved = window.save_screenshot(screenshot)
        window.close()
        if not saved:
            print(f"could not write {screenshot}", file=sys.stderr)
        return 0 if opened and saved else 1

    try:
        with loop:
            return loop.run_until_complete(main())
    finally:
        window.deleteLater()
        app.sendPostedEvents(None, QEvent.Type.DeferredDelete)
        if scratch:
            scratch.cleanup()
