"""Start the workstation: QApplication, dark theme, the qasync loop, the main window.

The window is shown before anything is read (the data set opens in a worker afterwards), and
nothing here imports torch, so the window appears within about a second (``bench/gui.py``).
``screenshot`` opens the data set, waits for its first case, saves a PNG of the whole window and
returns; it uses throw-away settings so docs and checks never touch the user's.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

SCREENSHOT_SIZE = (1600, 960)


def guard_singleton_refcounts() -> None:
    """Make ``None``, ``True`` and ``False`` effectively immortal under PySide6 6.12.0 on Python
    before 3.12.

    PySide6 6.12.0 returns these singletons from C++ without taking a reference (every
    ``QLabel.setText``, ``setVisible``, ``Signal.emit``, ... drops one), which is harmless where
    they are immortal (Python >= 3.12) but on 3.11 deallocates ``None`` or ``True`` after a few
    thousand calls, i.e. seconds of use, and aborts ("none_dealloc" / "bool_dealloc").
    6.11.3 is fine. Elsewhere this adds 2**40 references, which no session can use up.
    """
    import ctypes

    import PySide6

    if sys.version_info >= (3, 12) or PySide6.__version__ != "6.12.0":
        return
    for value in (None, True, False):
        ctypes.c_ssize_t.from_address(id(value)).value += 1 << 40  # ob_refcnt, first field


def make_app():
    """The QApplication (existing or new) with the theme, names and pyqtgraph options set."""
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QGuiApplication
    from PySide6.QtWidgets import QApplication

    from strokelens.app.theme import apply_dark, configure_pyqtgraph

    guard_singleton_refcounts()
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
) -> int:
    """Open the window on ``path`` (or the demo data in ``demo_folder``); 0 on success."""
    import qasync
    from PySide6.QtCore import QEvent, QSettings

    from strokelens.app.main_window import MainWindow
    from strokelens.app.model import Model

    app = make_app()
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    scratch = tempfile.TemporaryDirectory(prefix="strokelens-") if screenshot else None
    settings = (
        QSettings(str(Path(scratch.name) / "settings.ini"), QSettings.Format.IniFormat)
        if scratch
        else QSettings()
    )
    window = MainWindow(Model(), settings, loop)
    if screenshot:
        window.resize(*SCREENSHOT_SIZE)
    window.show()

    async def main() -> int:
        opened = True
        if demo_folder is not None:
            opened = await window.open_demo(demo_folder)
        elif path is not None:
            opened = await window.open_dataset(path)
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
