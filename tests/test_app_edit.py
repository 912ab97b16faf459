"""Correcting a mask in the window (pytest-qt, offscreen): a drag on a pane paints the shared mask
that every pane shows, undo restores it bit for bit, keys pick tools and sizes, Esc aborts."""

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import gc

import numpy as np
import pytest
from helpers import isles_cases
from PySide6.QtCore import Qt
from PySide6.QtGui import QMouseEvent
from PySide6.QtWidgets import QMessageBox
from test_app_window import SHAPE_XYZ, opened, send_mouse, voxel_point

from strokelens.app.edit_session import Tool
from strokelens.app.layers_panel import LayersPanel
from strokelens.core.editing.history import Region

LEFT = Qt.MouseButton.LeftButton


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return isles_cases(tmp_path_factory.mktemp("isles"), 2, SHAPE_XYZ)


def drag(qtbot, window, channel, points, button=LEFT):
    """Press at the first voxel (y, x), move through the others, release at the last (moves
    spaced past pyqtgraph's rate limit, which drops moves closer than 10 ms)."""
    viewport = window.view.graphics.viewport()
    at = [voxel_point(window, channel, y, x) for y, x in points]
    send_mouse(viewport, QMouseEvent.Type.MouseButtonPress, at[0], button, button)
    for point in at[1:]:
        qtbot.wait(15)
        send_mouse(viewport, QMouseEvent.Type.MouseMove, point, button, button)
    send_mouse(viewport, QMouseEvent.Type.MouseButtonRelease, at[-1], button, button)


def test_a_drag_on_a_pane_paints_the_shared_mask_and_undo_restores_it(qtbot, loop, window, dataset):
    model = opened(loop, window, dataset)
    qtbot.keyClick(window.view.graphics, Qt.Key.Key_B)  # the brush
    assert window.edit.tool is Tool.BRUSH
    assert window.menus.named["brush"].isChecked()
    window.edit.set_radius(0.5)  # one voxel: the painted voxels are the path itself
    window.edit.start_from("empty")
    z, before = model.slice, model.corrected[model.case.key].copy()
    drag(qtbot, window, "CBF", [(5, 4), (5, 18)])  # a fast horizontal drag: one move event
    corrected = model.corrected[model.case.key]
    painted = np.argwhere(corrected != before)
    assert {tuple(p) for p in painted} >= {(z, 5, x) for x in range(4, 19)}  # no gaps
    assert set(painted[:, 0]) == {z} and set(painted[:, 1]) <= {4, 5, 6}
    for pane_channel in ("CT", "Tmax"):  # every pane draws the one composite overlay
        pane = next(p for p in window.view.panes if p.channel == pane_channel)
        assert pane.overlay.isVisible()
        assert pane.overlay.image[5, 10, 3] > 0  # painted: opaque in the overlay
    assert "undo" in window.editor.state.text()
    qtbot.keyClick(window.view.graphics, Qt.Key.Key_Z, Qt.KeyboardModifier.ControlModifier)
    assert np.array_equal(corrected, before)
    qtbot.keyClick(
        window.view.graphics,
        Qt.Key.Key_Z,
        Qt.KeyboardModifier.ControlModifier | Qt.KeyboardModifier.ShiftModifier,
    )
    assert (corrected != before).sum() == len(painted)


def test_keys_size_the_brush_and_navigate_gives_the_mouse_back(qtbot, loop, window, dataset):
    model = opened(loop, window, dataset)
    graphics = window.view.graphics
    qtbot.keyClick(graphics, Qt.Key.Key_E)
    assert window.edit.tool is Tool.ERASER
    radius = window.edit.radius_mm
    qtbot.keyClick(graphics, Qt.Key.Key_BracketRight)
    assert window.edit.radius_mm > radius and window.editor.radius.value() == pytest.approx(
        window.edit.radius_mm, abs=0.05
    )
    model.set_cursor((6, 6))
    brush = window.view.panes[0].brush
    assert brush.isVisible()
    assert brush.rect().width() / 2 == pytest.approx(window.edit.radius_mm / model.case.spacing[2])
    qtbot.keyClick(graphics, Qt.Key.Key_N)
    assert window.edit.tool is Tool.NAVIGATE and not brush.isVisible()
    before = model.corrected.get(model.case.key)
    drag(qtbot, window, "CT", [(5, 4), (5, 12)])  # navigating: a left drag pans, paints nothing
    assert model.corrected.get(model.case.key) is before


def test_escape_aborts_the_stroke_in_progress(qtbot, loop, window, dataset):
    model = opened(loop, window, dataset)
    edit = window.edit
    edit.set_tool(Tool.BRUSH)
    edit.start_from("empty")
    edit.press(5, 5)
    edit.drag(5, 9)
    assert model.corrected[model.case.key].any()
    window.escape()
    assert not model.corrected[model.case.key].any() and not edit.current().can_redo


def test_replacing_edits_asks_first(qtbot, loop, window, dataset):
    model = opened(loop, window, dataset)
    window.edit.start_from("empty")
    window.start_correction("truth")  # nothing to lose yet: no question
    assert window.findChild(QMessageBox) is None
    window.edit.start_from("empty")
    window.start_correction("truth")  # edits exist: a question, nothing replaced yet
    box = window.findChild(QMessageBox)
    assert box.isVisible() and "Replace the correction" in box.text()
    assert not model.corrected[model.case.key].any()
    box.button(QMessageBox.StandardButton.Yes).click()
    assert np.array_equal(model.corrected[model.case.key], model.case.mask)


def test_a_region_change_redraws_only_its_slices(loop, window, dataset):
    model = opened(loop, window, dataset)
    window.edit.start_from("truth")
    view = window.view
    z = model.slice
    other = (z + 1) % model.case.n_slices
    kept, redrawn = view.overlay_rgba("corrected", other), view.overlay_rgba("corrected", z)
    model.corrected_edited(model.case.key, Region(z, z + 1, 0, 1, 0, 1))
    assert view.overlay_rgba("corrected", other) is kept
    assert view.overlay_rgba("corrected", z) is not redrawn


def test_events_do_not_keep_a_closed_panel_alive(qtbot, loop, window, dataset):
    model = opened(loop, window, dataset)
    slots = len(model.layer_changed)
    panel = LayersPanel(model)
    assert len(model.layer_changed) > slots
    panel.deleteLater()
    del panel
    qtbot.wait(10)  # the deferred delete
    gc.collect()
    model.set_layer("truth", visible=False)  # would raise on a deleted widget's slot
    assert len(model.layer_changed) == slots
