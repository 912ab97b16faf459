"""Fixtures shared by several test modules."""

from __future__ import annotations

import asyncio
import os
import tempfile
from pathlib import Path

import pytest
import torch

# The app and the command line log to the user's log folder, and the window keeps each data set's
# project in the user's data folder: the tests' go to throw-away ones.
os.environ["XDG_STATE_HOME"] = tempfile.mkdtemp(prefix="strokelens-tests-state-")
os.environ["XDG_DATA_HOME"] = tempfile.mkdtemp(prefix="strokelens-tests-data-")


@pytest.fixture
def one_torch_thread():
    """One torch thread for the test: small models run faster than with two fighting threads."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def screenshot(tmp_path):
    """Where a screenshot goes: the folder STROKELENS_SCREENSHOTS names (created; e.g.
    docs/screenshots: the tests never rewrite tracked files by themselves), else the test's own."""

    def path(name: str) -> str:
        folder = os.environ.get("STROKELENS_SCREENSHOTS")
        if not folder:
            return str(tmp_path / name)
        Path(folder).mkdir(parents=True, exist_ok=True)
        return str(Path(folder) / name)

    return path


@pytest.fixture(scope="session")
def loop():
    """The qasync event loop of the app's QApplication (one for the session: a second loop on
    the same application breaks the first one's teardown)."""
    import qasync

    from strokelens.app.launch import make_app

    app = make_app()
    event_loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(event_loop)
    yield event_loop
    asyncio.set_event_loop(None)
    event_loop.close()  # now, while its Qt objects live: at exit, its __del__ would find them gone


@pytest.fixture
def settings(tmp_path):
    from PySide6.QtCore import QSettings

    return QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)


@pytest.fixture
def window(qtbot, loop, settings, tmp_path_factory):
    """A shown main window with throw-away settings and project (outside the test's tmp_path,
    which tests use as a data set), and no prediction cache."""
    from strokelens.app.main_window import MainWindow
    from strokelens.app.model import Model

    project = tmp_path_factory.mktemp("project") / "project"
    win = MainWindow(Model(), settings, loop, project=project)
    qtbot.addWidget(win)
    win.resize(1500, 900)
    win.show()
    qtbot.waitExposed(win)
    win.activateWindow()
    return win


@pytest.fixture(scope="session")
def ensemble(tmp_path_factory):
    """A tiny random 4-member ensemble (2 focal, 2 CE) on disk: its manifest path."""
    from helpers import make_ensemble

    return make_ensemble(tmp_path_factory.mktemp("ensemble"))
