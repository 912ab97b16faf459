"""Corrections saved from the window (pytest-qt, offscreen): autosave, case switch and close save,
the review workflow, the reviewer asked once, a second window read-only, a reopen that finds all
of it again."""

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np
import pytest
from helpers import isles_cases
from PySide6.QtCore import QSettings
from test_app_window import SHAPE_XYZ, opened, run

from strokelens.app.edit_session import Tool
from strokelens.app.main_window import MainWindow
from strokelens.app.model import Model
from strokelens.app.project_session import AUTOSAVE_MS
from strokelens.app.reviewer_dialog import ReviewerDialog
from strokelens.core.project.review import Status
from strokelens.core.project.store import ProjectStore


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return isles_cases(tmp_path_factory.mktemp("isles"), 2, SHAPE_XYZ)


def new_window(qtbot, loop, tmp_path, name="settings.ini"):
    settings = QSettings(str(tmp_path / name), QSettings.Format.IniFormat)
    win = MainWindow(Model(), settings, loop, project=tmp_path / "project")
    qtbot.addWidget(win)
    win.show()
    return win


def paint(window, y=5, x=5):
    edit = window.edit
    edit.set_tool(Tool.BRUSH)
    edit.set_radius(2.0)
    edit.press(y, x)
    edit.drag(y, x + 6)
    edit.release()


def saved(tmp_path, key):
    with ProjectStore.open(tmp_path / "project", writable=False) as store:
        return store.load_mask(key), store.record(key), store.audit(key)


def test_a_stroke_is_autosaved_and_the_workflow_follows(qtbot, loop, tmp_path, dataset):
    window = new_window(qtbot, loop, tmp_path)
    model = opened(loop, window, dataset)
    run(loop, window.tasks.idle())
    assert window.project.store is not None and window.project.store.writable
    key = model.case.key
    paint(window)
    assert model.entries[0].status is Status.IN_REVIEW  # the first edit
    assert window.windowTitle().endswith("unsaved •")
    table = window.browser.table_model
    assert table.data(table.index(0, 4)) == "in review • unsaved"
    qtbot.waitUntil(lambda: window.windowTitle().endswith("— saved"), timeout=AUTOSAVE_MS + 3000)
    mask, record, audit = saved(tmp_path, key)
    assert np.array_equal(mask, model.corrected[key])
    assert record.status is Status.CORRECTED and model.entries[0].status is Status.CORRECTED
    assert [entry.action for entry in audit] == ["autosave"]
    assert table.data(table.index(0, 4)) == "corrected"  # saved: no mark


def test_switching_case_saves_at_once_and_a_reopen_finds_it(qtbot, loop, tmp_path, dataset):
    window = new_window(qtbot, loop, tmp_path)
    model = opened(loop, window, dataset)
    run(loop, window.tasks.idle())
    key = model.case.key
    paint(window)
    expected = model.corrected[key].copy()
    run(loop, window.cases.show_case(1))
    run(loop, window.tasks.idle())  # no autosave delay: the case left is saved on the switch
    assert np.array_equal(saved(tmp_path, key)[0], expected)
    paint(window, 8, 3)  # on case 2, and the window closes before its autosave
    second = model.corrected[model.case.key].copy()
    window.close()
    again = new_window(qtbot, loop, tmp_path, "again.ini")
    model = opened(loop, again, dataset)
    run(loop, again.tasks.idle())
    assert np.array_equal(model.corrected[key], expected)  # the correction, not the AI's start
    assert model.entries[1].status is Status.CORRECTED
    assert np.array_equal(saved(tmp_path, model.entries[1].key)[0], second)  # saved on close


def test_approve_asks_the_reviewer_once_and_an_edit_reopens(qtbot, loop, tmp_path, dataset):
    window = new_window(qtbot, loop, tmp_path)
    model = opened(loop, window, dataset)
    run(loop, window.tasks.idle())
    key = model.case.key
    paint(window)
    window.project_actions.approve()
    dialog = window.findChild(ReviewerDialog)
    assert dialog is not None and dialog.isVisible()
    dialog.name.setText("Dr Test")
    dialog._accept()
    run(loop, window.tasks.idle())
    assert model.entries[0].status is Status.APPROVED and model.entries[0].reviewer == "Dr Test"
    assert window.settings.value("review/reviewer") == "Dr Test"
    paint(window, 10, 2)  # an approved case edited: back to corrected, and the audit says so
    window.project.save_now()
    run(loop, window.tasks.idle())
    _, record, audit = saved(tmp_path, key)
    assert record.status is Status.CORRECTED
    assert any("approved case edited" in entry.note for entry in audit)
    window.project_actions.approve()  # the name is remembered: no dialog this time
    run(loop, window.tasks.idle())
    assert model.entries[0].status is Status.APPROVED


def test_a_second_window_on_the_project_is_read_only(qtbot, loop, tmp_path, dataset):
    first = new_window(qtbot, loop, tmp_path)
    opened(loop, first, dataset)
    run(loop, first.tasks.idle())
    second = new_window(qtbot, loop, tmp_path, "second.ini")
    model = opened(loop, second, dataset)
    run(loop, second.tasks.idle())
    banner = second.project_actions.banner
    assert banner.isVisible() and "Read-only" in banner.text() and str(os.getpid()) in banner.text()
    assert second.windowTitle().endswith("read-only")
    paint(second)
    assert model.corrected.get(model.case.key) is None  # editing refused, nothing painted
    assert "Editing is off" in second.statusBar().currentMessage()
    assert first.project.store.writable
