"""The workstation window, headless (pytest-qt, offscreen): opening, navigating, overlays, W/L,
status bar, mismatch panel, curves, settings, screenshots."""

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import subprocess
import sys

import numpy as np
import pytest
from helpers import write_isles_case
from PySide6.QtCore import QMimeData, QPoint, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent, QImage, QMouseEvent, QWheelEvent
from PySide6.QtWidgets import QApplication, QMessageBox

from strokelens.app.main_window import MainWindow
from strokelens.app.mismatch_view import NO_CORE, NO_CORE_TRUTH
from strokelens.app.model import Model
from strokelens.app.shortcuts_dialog import MOUSE, ShortcutsDialog
from strokelens.app.window_settings import DEFAULT_SIZE
from strokelens.core import userdirs
from strokelens.core.errors import DataError
from strokelens.core.mismatch import (
    TARGET_CORE_BELOW_ML,
    TARGET_MISMATCH_ML,
    mismatch,
    shown_value,
)
from strokelens.core.prediction import Prediction

SHAPE_XYZ = (24, 20, 4)  # case arrays are (4, 20, 24)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """Three tiny ISLES cases; the second has 4 slices more and no truth, the third a 4D series."""
    root = tmp_path_factory.mktemp("isles")
    write_isles_case(root / "TRAINING" / "case_1", SHAPE_XYZ, seed=1)
    write_isles_case(root / "TRAINING" / "case_2", (24, 20, 8), truth=False, seed=2)
    write_isles_case(root / "TRAINING" / "case_3", SHAPE_XYZ, frames=12, seed=3)
    return root


def shows(item, array) -> bool:
    """The image item draws this very slice (no copy)."""
    return np.shares_memory(item.image, array) and np.array_equal(item.image, array)


def run(loop, coroutine):
    return loop.run_until_complete(coroutine)


def opened(loop, window, dataset):
    assert run(loop, window.cases.open_dataset(dataset))
    return window.model


def press(qtbot, loop, window, key, modifier=Qt.KeyboardModifier.NoModifier):
    qtbot.keyClick(window.view.graphics, key, modifier)
    run(loop, window.tasks.idle())


def send_mouse(widget, kind, point, button, buttons):
    event = QMouseEvent(
        kind, QPointF(point), widget.mapToGlobal(QPointF(point)), button, buttons,
        Qt.KeyboardModifier.NoModifier,
    )  # fmt: skip
    QApplication.sendEvent(widget, event)


def voxel_point(window, channel, y, x) -> QPoint:
    """Viewport position of voxel (y, x) in a pane."""
    graphics = window.view.graphics
    return graphics.mapFromScene(window.view.pane_scene_point(channel, y, x))


def test_open_shows_first_case_browser_and_title(loop, window, dataset, settings):
    model = opened(loop, window, dataset)
    assert [e.key for e in model.entries] == [f"training/case_{i}" for i in (1, 2, 3)]
    assert [e.n_slices for e in model.entries] == [4, 8, 4]  # from headers, before loading
    assert model.index == 0 and model.case.shape == (4, 20, 24)
    browser = window.browser
    assert browser.proxy.rowCount() == 3
    assert browser.table.isColumnHidden(2)  # one split only
    assert "case_1" in window.windowTitle()
    assert settings.value("recent") in (str(dataset), [str(dataset)])
    pane = window.view.panes[0]
    assert shows(pane.image, model.prepared.display["CT"][model.slice])
    assert tuple(pane.image.levels) == (0.0, 80.0)  # brain window W 80 L 40


def test_slice_navigation_keys_wheel_and_slider(qtbot, loop, window, dataset):
    model = opened(loop, window, dataset)
    model.set_slice(1)
    press(qtbot, loop, window, Qt.Key.Key_Up)
    assert model.slice == 2
    press(qtbot, loop, window, Qt.Key.Key_Down)
    press(qtbot, loop, window, Qt.Key.Key_Down)
    assert model.slice == 0
    press(qtbot, loop, window, Qt.Key.Key_End)
    assert model.slice == 3 and window.view.slider.value() == 3
    press(qtbot, loop, window, Qt.Key.Key_Home)
    assert model.slice == 0
    graphics = window.view.graphics
    point = QPointF(voxel_point(window, "MTT", 10, 10))
    wheel = QWheelEvent(
        point, graphics.mapToGlobal(point), QPoint(), QPoint(0, 120), Qt.MouseButton.NoButton,
        Qt.KeyboardModifier.NoModifier, Qt.ScrollPhase.NoScrollPhase, False,
    )  # fmt: skip
    QApplication.sendEvent(graphics.viewport(), wheel)
    assert model.slice == 1
    window.view.slider.setValue(2)
    assert model.slice == 2
    for pane in window.view.panes:
        assert shows(pane.image, model.prepared.display[pane.channel][2])


def test_case_navigation_follows_sorted_filtered_rows(qtbot, loop, window, dataset):
    model = opened(loop, window, dataset)
    press(qtbot, loop, window, Qt.Key.Key_PageDown)
    assert model.index == 1 and model.case.n_slices == 8
    press(qtbot, loop, window, Qt.Key.Key_Up, Qt.KeyboardModifier.ControlModifier)
    assert model.index == 0
    window.browser.table.sortByColumn(3, Qt.SortOrder.DescendingOrder)  # slices: case_2 first
    assert window.browser.visible_indices()[0] == 1
    window.browser.filter.setFocus()
    qtbot.keyClicks(window.browser.filter, "case_3")  # typed text is not taken as shortcuts
    assert window.browser.visible_indices() == [2] and model.layers["ce"].visible
    press(qtbot, loop, window, Qt.Key.Key_Down, Qt.KeyboardModifier.ControlModifier)
    assert model.index == 2
    window.browser.filter.setText("")
    row = window.browser.proxy.mapFromSource(window.browser.table_model.index(1, 0))
    window.browser.table.setCurrentIndex(row)  # clicking a row opens it
    run(loop, window.tasks.idle())
    assert model.index == 1


@pytest.fixture(scope="module")
def broken(tmp_path_factory):
    """Four cases; the Tmax files of the second and fourth are garbage (listed, unreadable)."""
    root = tmp_path_factory.mktemp("broken")
    for n in range(1, 5):
        files = write_isles_case(root / "TRAINING" / f"case_{n}", SHAPE_XYZ, seed=n)
        if n % 2 == 0:
            files["CT_Tmax"].write_bytes(b"not a NIfTI file")
    return root


def test_unreadable_cases_show_error_with_the_reason_and_are_skipped(
    qtbot, loop, settings, ensemble, broken
):
    """Read ahead (case_2; case_4 too once case_3 is shown, if its read-ahead ends first) or by
    the AI (case_4): "error", the reason in the tooltip, and next/previous case step over them;
    Run AI names the one it skipped."""
    win = MainWindow(Model(), settings, loop, ensemble=ensemble)
    qtbot.addWidget(win)
    model = opened(loop, win, broken)
    table = win.browser.table_model
    qtbot.waitUntil(lambda: model.entries[1].error is not None, timeout=10000)  # read ahead
    assert table.data(table.index(1, 4)) == "error"
    assert "SMIR.Brain.XX.O.CT_Tmax" in table.data(table.index(1, 0), Qt.ItemDataRole.ToolTipRole)
    assert table.data(table.index(1, 4), Qt.ItemDataRole.ForegroundRole).name() == "#e05555"
    win.cases.step_case(1)
    run(loop, win.tasks.idle())
    assert model.index == 2  # over case_2
    assert run(loop, win.ai.run([model.entries[3].key]))
    assert "skipped 1 unreadable: training/case_4" in win.statusBar().currentMessage()
    assert table.data(table.index(3, 4)) == "error"
    assert "CT_Tmax" in table.data(table.index(3, 0), Qt.ItemDataRole.ToolTipRole)
    win.cases.step_case(1)  # nothing readable after case_3
    win.cases.step_case(-1)
    run(loop, win.tasks.idle())
    assert model.index == 0  # over case_2 again


def test_status_bar_shows_the_values_under_the_cursor(loop, window, dataset):
    model = opened(loop, window, dataset)
    graphics = window.view.graphics
    send_mouse(
        graphics.viewport(), QMouseEvent.Type.MouseMove, voxel_point(window, "CBF", 7, 13),
        Qt.MouseButton.NoButton, Qt.MouseButton.NoButton,
    )  # fmt: skip
    assert model.cursor == (7, 13)
    text = window.cursor_label.text()
    z = model.slice
    case = model.case
    assert f"x 13  y 7  z {z}" in text
    assert f"CT {case.channels['CT'][z, 7, 13]:.0f} HU" in text
    assert f"CBV {case.channels['CBV'][z, 7, 13]:.4g}" in text
    assert f"Tmax {case.channels['Tmax'][z, 7, 13]:.1f} s" in text
    x_mm, y_mm, z_mm = (case.affine @ [13, 7, z, 1])[:3]
    assert f"({x_mm:.1f}, {y_mm:.1f}, {z_mm:.1f}) mm" in text
    for pane in window.view.panes:  # linked crosshair
        assert pane.crosshair[0].value() == 13.5 and pane.crosshair[1].value() == 7.5


def test_right_drag_sets_window_level_of_that_pane(loop, window, dataset):
    model = opened(loop, window, dataset)
    viewport = window.view.graphics.viewport()
    start = voxel_point(window, "CT", 10, 12)
    right = Qt.MouseButton.RightButton
    send_mouse(viewport, QMouseEvent.Type.MouseButtonPress, start, right, right)
    for dx in (10, 40, 75):
        send_mouse(viewport, QMouseEvent.Type.MouseMove, start + QPoint(dx, 0), right, right)
    send_mouse(viewport, QMouseEvent.Type.MouseButtonRelease, start + QPoint(75, 0), right, right)
    width, level = model.windows["CT"]
    assert width > 80.0 * 1.3 and level == pytest.approx(40.0)
    assert model.windows["CBF"] == model.prepared.windows["CBF"]  # other panes untouched
    ct = window.view.panes[0]
    assert tuple(ct.image.levels) == pytest.approx((40 - width / 2, 40 + width / 2))
    window.model.set_window("CT", 2000, 500)  # the bone preset
    assert tuple(ct.image.levels) == (-500, 1500)


def test_overlays_toggle_style_and_prediction_layers(qtbot, loop, window, dataset):
    model = opened(loop, window, dataset)
    view, (case, z) = window.view, (model.case, model.slice)
    items = [pane.overlay for pane in view.panes]
    assert all(item.isVisible() for item in items)
    alpha = items[0].image[..., 3]  # only the ground truth has data: its contour at 0.8 opacity
    assert set(np.unique(alpha)) == {0, 204}
    contour = alpha > 0
    assert contour.sum() < case.mask[z].sum() and not (contour & (case.mask[z] == 0)).any()
    press(qtbot, loop, window, Qt.Key.Key_C)  # all layers filled
    assert np.array_equal(items[0].image[..., 3] > 0, case.mask[z] == 1)
    press(qtbot, loop, window, Qt.Key.Key_1)
    assert not model.layers["truth"].visible and not any(i.isVisible() for i in items)
    assert not window.layers.checks["truth"].isChecked()

    assert not window.layers.checks["focal"].isEnabled()
    members = np.zeros((2, *case.shape), np.float32)
    members[0, z, 2:9, 3:12] = 0.95  # focal member: 63 voxels
    members[1, z, 2:4, 3:5] = 0.9  # cross-entropy member: 4 voxels inside
    prediction = Prediction.empty(case.key, case.shape, case.spacing, ["f", "c"], ["focal", "ce"])
    prediction.update(list(range(case.shape[0])), members)
    model.set_prediction(case.key, prediction)
    assert window.layers.checks["focal"].isEnabled()
    assert view.overlay_rgba("focal", z)[..., 3].astype(bool).sum() == 63
    drawn = items[0].image
    assert all(item.isVisible() and np.shares_memory(item.image, drawn) for item in items)
    assert tuple(drawn[8, 11]) == (235, 35, 35, 204)  # focal only, 0.8 opacity
    red, cyan = np.array([235, 35, 35]), np.array([0, 225, 235])  # CE drawn over focal:
    over = (0.8 * cyan + 0.2 * 0.8 * red) / 0.96  # straight colour of "over", alpha 0.96
    assert np.allclose(drawn[3, 4, :3], over, atol=1) and drawn[3, 4, 3] == round(0.96 * 255)
    window.layers.opacity["focal"].setValue(30)
    assert items[0].image[8, 11, 3] == round(0.3 * 255)
    window.layers.style["focal"].setCurrentIndex(1)  # contour: interior clears, border stays
    assert model.layers["focal"].contour
    assert items[0].image[5, 7, 3] == 0 and items[0].image[2, 7, 3] == round(0.3 * 255)
    window.layers.checks["uncertainty"].setChecked(True)
    heat = view.overlay_rgba("uncertainty", z)
    assert heat[3, 3, 3] > 0 and heat[0, 0, 3] == 0  # members disagree at (3, 3) only
    row = window.browser.table_model.index(0, 4)
    assert window.browser.table_model.data(row) == "predicted"


def test_mismatch_panel_numbers_follow_the_ai_core_never_the_truth(loop, window, dataset):
    """A training case before Run AI: the ground truth is shown as the reference, with no core
    and no verdict from it; a correction then is the AI core, its numbers the summary's."""
    from strokelens.core.stroke_summary import CoreKind, CoreOrigin, summarize_stroke

    model = opened(loop, window, dataset)
    run(loop, window.tasks.idle())
    case = model.case
    panel = window.mismatch
    truth = mismatch(case.mask, case.channels["Tmax"], case.spacing, case.channels["CT"])
    assert panel.values["truth"].text() == f"{shown_value(truth.core_ml)} mL"
    assert panel.values["core"].text() == "–" and panel.notes["core"].text() == ""
    assert panel.verdict.text() == "no verdict" and panel.reason.text() == NO_CORE_TRUTH
    assert panel.values["hypo"].text() == f"{shown_value(truth.hypoperfused_ml)} mL"
    corrected = np.zeros(case.shape, np.uint8)
    corrected[:, :10, :] = 1
    model.set_corrected(case.key, corrected)
    run(loop, window.tasks.idle())
    expected = summarize_stroke(case, None, corrected, CoreOrigin(CoreKind.CORRECTED))
    core_text = f"{shown_value(expected.ai_core_ml, TARGET_CORE_BELOW_ML)} mL"
    assert panel.values["core"].text() == core_text
    assert panel.notes["core"].text() == "from the corrected mask"
    mismatch_text = f"{shown_value(expected.mismatch.mismatch_ml, TARGET_MISMATCH_ML)} mL"
    assert panel.values["mismatch"].text() == mismatch_text
    assert panel.verdict.text() == expected.verdict_words
    assert panel.values["truth"].text() == f"{shown_value(truth.core_ml)} mL"  # still there


def test_mismatch_panel_has_no_verdict_on_a_case_without_a_core(loop, window, dataset):
    """The reported bug: a case without ground truth, before Run AI, read "Core 0.0 mL, from the
    none, ratio ∞, TARGET MISMATCH" with all three criteria ticked."""
    model = opened(loop, window, dataset)
    assert run(loop, window.cases.show_case(1))
    run(loop, window.tasks.idle())
    assert model.case.mask is None and model.index == 1
    panel = window.mismatch
    assert panel.verdict.text() == "no verdict" and panel.reason.text() == NO_CORE
    assert panel.values["core"].text() == "–" and panel.values["ratio"].text() == "–"
    assert "truth" not in panel.values
    assert [label.property("mark") for label in panel.criteria] == ["UNDECIDED"] * 3


def test_curve_dock_loads_the_4d_series_of_the_current_case(qtbot, loop, window, dataset):
    model = opened(loop, window, dataset)
    assert model.perfusion is None and "no 4D source" in window.curve.message.text()
    run(loop, window.cases.show_case(2))
    qtbot.waitUntil(lambda: model.perfusion is not None, timeout=5000)
    series = model.perfusion
    assert series.series.shape == (12, 4, 20, 24) and series.aif.shape == (12,)
    model.set_cursor((6, 9))
    qtbot.waitUntil(lambda: "x 9  y 6" in window.curve.readout.text(), timeout=2000)
    x, y = window.curve.tissue.getData()
    z = model.slice
    assert np.allclose(y, series.series[:, z, 4:9, 7:12].mean(axis=(1, 2)))
    assert np.allclose(x, np.arange(12) * series.dt)
    run(loop, window.cases.show_case(0))
    assert model.perfusion is None  # cached for the current case only


def test_geometry_recent_and_drop(qtbot, loop, dataset, settings, window):
    window.docks["curve"].hide()
    window.close()
    again = MainWindow(Model(), settings, loop)
    qtbot.addWidget(again)
    again.show()
    # the offscreen screen (800 x 600) clamps a restored geometry, so check that one was
    # restored (not the default size) and that the dock layout came back
    assert (again.width(), again.height()) != DEFAULT_SIZE
    assert again.docks["cases"].isVisible() and not again.docks["curve"].isVisible()
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(dataset / "TRAINING"))])
    drop = QDropEvent(
        QPointF(50, 50), Qt.DropAction.CopyAction, mime, Qt.MouseButton.LeftButton,
        Qt.KeyboardModifier.NoModifier,
    )  # fmt: skip
    again.dropEvent(drop)
    run(loop, again.tasks.idle())
    assert again.model.dataset is not None and again.model.dataset.root.name == "TRAINING"
    assert again.recent.paths[0] == str(dataset / "TRAINING")
    assert [a.text() for a in again.menus.recent.actions()][0] == str(dataset / "TRAINING")


def test_bad_folder_reports_an_error_and_keeps_running(loop, window, tmp_path):
    assert not run(loop, window.cases.open_dataset(tmp_path))
    assert "no cases found" in window.statusBar().currentMessage()
    assert window.model.dataset is None


def test_shortcuts_dialog_lists_the_window_actions(window):
    window.show_shortcuts()
    dialog = window.findChildren(ShortcutsDialog)[-1]
    table = dialog.table
    rows = [(table.item(r, 0).text(), table.item(r, 1).text()) for r in range(table.rowCount())]
    assert ("PgDown, Ctrl+Down", "Next case") in rows and ("Ctrl+O", "Open data set") in rows
    assert ("Alt+1", "CT Brain (W 80 L 40)") in rows
    assert any(keys == "Right drag" and "level" in text for keys, text in rows)
    shortcut_actions = [a for a in window.menus.in_order if a.shortcuts()]
    assert len(rows) == len(shortcut_actions) + len(MOUSE)


def test_screenshot_command_writes_a_png_without_importing_torch(dataset, tmp_path):
    png = tmp_path / "shot.png"
    code = (
        "import sys, argparse\n"
        "from strokelens.app.commands import app\n"
        "parser = argparse.ArgumentParser(); app.add_arguments(parser)\n"
        f"status = app.run(parser.parse_args([{str(dataset)!r}, '--screenshot', {str(png)!r}]))\n"
        "assert 'torch' not in sys.modules, 'the app imported torch'\n"
        "sys.exit(status)\n"
    )
    env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr.decode()
    image = QImage(str(png))
    assert (image.width(), image.height()) == (1600, 960)


def test_demo_is_generated_in_a_worker_then_opened(loop, window, tmp_path, monkeypatch):
    from strokelens.core import demo

    made = []

    def fake_generate(folder, progress=None):  # the phantom takes minutes; its tests cover it
        for split in ("TRAINING", "TESTING"):
            write_isles_case(folder / split / "case_1", SHAPE_XYZ, truth=split == "TRAINING")
            progress(folder / split / "case_1")
        made.append(folder)
        return folder

    monkeypatch.setattr(demo, "generate_demo", fake_generate)
    monkeypatch.setattr(demo, "DEMO_CASES", 2)
    folder = tmp_path / "demo"
    assert run(loop, window.cases.open_demo(folder))
    assert made == [folder] and len(window.model.entries) == 2
    assert not window.browser.table.isColumnHidden(2)  # training and testing: split shown
    assert run(loop, window.cases.open_demo(folder)) and made == [folder]  # present: not made again
    monkeypatch.undo()
    foreign = tmp_path / "mine"
    (foreign / "notes").mkdir(parents=True)
    assert not run(loop, window.cases.open_demo(foreign))  # a user's folder is refused, not emptied
    assert "no complete demo" in window.statusBar().currentMessage()
    assert (foreign / "notes").is_dir()


def test_a_broken_case_is_reported_and_the_shown_case_stays(loop, window, tmp_path):
    write_isles_case(tmp_path / "case_1", SHAPE_XYZ, seed=1)
    paths = write_isles_case(tmp_path / "case_2", SHAPE_XYZ, seed=2)
    paths["CT_CBF"].write_bytes(paths["CT_CBF"].read_bytes()[:400])  # truncated
    model = opened(loop, window, tmp_path)
    assert not run(loop, window.cases.show_case(1))
    assert model.index == 0 and "truncated" in window.statusBar().currentMessage()
    current = window.browser.table.currentIndex()
    assert window.browser.proxy.mapToSource(current).row() == 0


def test_bare_strokelens_opens_the_workstation(monkeypatch):
    from strokelens.app.cli import main

    calls = []
    monkeypatch.setattr("strokelens.app.launch.run_gui", lambda *a, **k: calls.append((a, k)))
    assert main([]) == 0
    options = {"screenshot": None, "ensemble": None, "allow_external_members": False}
    assert calls == [((None,), {**options, "run_ai": False, "project": None})]


def test_background_failures_never_stack_dialogs_and_go_to_the_log(qtbot, loop, window, tmp_path):
    def open_boxes():
        return [box for box in window.findChildren(QMessageBox) if box.isVisible()]

    async def fail(n):
        raise DataError(tmp_path / f"file{n}", "broken")

    for n in range(5):  # e.g. five cases failing in the background at once
        window.tasks.spawn(fail(n))
    loop.run_until_complete(window.tasks.idle())
    assert open_boxes() == []
    assert window.statusBar().currentMessage().endswith("file4: broken")
    log = userdirs.log_dir() / "app.log"
    qtbot.waitUntil(lambda: log.is_file() and log.read_text().count("broken") >= 5)
    # failures the user must act on (a data set that cannot be opened): one dialog, the latest
    for name in ("missing-1", "missing-2"):
        assert not loop.run_until_complete(window.cases.open_dataset(tmp_path / name))
    (box,) = open_boxes()
    assert "missing-2" in box.text()


def test_keys_go_to_the_viewer_at_launch_not_the_case_filter(qtbot, loop, window, dataset):
    assert run(loop, window.cases.open_dataset(dataset))
    window.activateWindow()
    qtbot.waitUntil(lambda: QApplication.focusWidget() is not None)
    focused, model = QApplication.focusWidget(), window.model
    assert focused is window.view.graphics
    visible = model.layers["truth"].visible
    qtbot.keyClicks(focused, "12")  # layer toggles, as a reviewer presses them first thing
    assert window.browser.filter.text() == ""
    assert model.layers["truth"].visible is not visible
    assert len(window.browser.visible_indices()) == len(model.entries)


def test_a_new_data_set_clears_the_cursor_readout_and_the_compare_dock(
    qtbot, loop, window, dataset, tmp_path
):
    model = window.model
    assert run(loop, window.cases.open_dataset(dataset))
    case = model.case
    prediction = Prediction.empty(case.key, case.shape, case.spacing, ["f", "c"], ["focal", "ce"])
    prediction.update(range(case.shape[0]), np.full((2, *case.shape), 0.9, np.float32))
    model.set_prediction(case.key, prediction)
    window.show_compare()
    loop.run_until_complete(window.compare.refresh())
    assert window.compare.comparison is not None
    model.set_cursor((2, 3))
    assert window.cursor_label.text() != ""
    other = tmp_path / "other"  # its only case cannot be read: nothing is shown
    write_isles_case(other / "case_9", SHAPE_XYZ, seed=9)
    next(other.rglob("*CBF*.nii*")).write_bytes(b"not a NIfTI")
    assert not run(loop, window.cases.open_dataset(other))
    assert model.case is None
    assert window.cursor_label.text() == ""
    compare = window.compare
    qtbot.waitUntil(lambda: compare.comparison is None, timeout=3000)
    assert compare.message.text() == "No case open."
