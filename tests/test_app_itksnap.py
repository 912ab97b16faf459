"""ITK-SNAP habits (a preference) and orientation letters (pytest-qt, offscreen)."""

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np
import pytest
from helpers import isles_cases
from PySide6.QtCore import QPoint, Qt
from PySide6.QtGui import QMouseEvent
from test_app_window import SHAPE_XYZ, opened, send_mouse, voxel_point

from strokelens.app.slice_view import ITKSNAP, STROKELENS, orientation_letters

NONE = Qt.MouseButton.NoButton
LEFT, RIGHT = Qt.MouseButton.LeftButton, Qt.MouseButton.RightButton


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return isles_cases(tmp_path_factory.mktemp("isles"), 2, SHAPE_XYZ)


def test_letters_follow_the_affine_and_the_display_flips():
    ras = np.diag([1.0, 1.0, 1.0, 1.0])  # i toward the right, j toward anterior
    assert orientation_letters(ras, flip_x=True, flip_y=False) == {
        "left": "R", "right": "L", "top": "A", "bottom": "P"
    }  # fmt: skip
    lps = np.diag([-1.0, -1.0, 1.0, 1.0])  # i toward the left, j toward posterior
    assert orientation_letters(lps, flip_x=False, flip_y=True)["left"] == "R"
    assert orientation_letters(lps, flip_x=False, flip_y=True)["top"] == "A"
    assert orientation_letters(ras, flip_x=False, flip_y=False)["left"] == "L"  # not flipped


def test_panes_show_orientation_letters(loop, window, dataset):
    opened(loop, window, dataset)
    for pane in window.view.panes:
        texts = {edge: item.text() for edge, item in pane.letters.items()}
        assert texts == {"left": "R", "right": "L", "top": "A", "bottom": "P"}
        left, right = pane.letters["left"].pos(), pane.letters["right"].pos()
        assert left.x() < right.x()


def test_itksnap_preset_pins_the_crosshair_zooms_and_pages_slices(qtbot, loop, window, dataset):
    model = opened(loop, window, dataset)
    viewport = window.view.graphics.viewport()
    window.set_mouse_preset(ITKSNAP)
    assert window.menus.named["itksnap"].isChecked()
    here = voxel_point(window, "CT", 6, 7)
    send_mouse(viewport, QMouseEvent.Type.MouseButtonPress, here, LEFT, LEFT)
    send_mouse(viewport, QMouseEvent.Type.MouseButtonRelease, here, LEFT, NONE)
    assert model.cursor == (6, 7)
    send_mouse(viewport, QMouseEvent.Type.MouseMove, voxel_point(window, "CT", 12, 3), NONE, NONE)
    assert model.cursor == (6, 7)  # pinned: hovering does not move it
    box = window.view.panes[0].box
    before = box.viewRange()[0][1] - box.viewRange()[0][0]
    window_level = model.windows["CT"]
    send_mouse(viewport, QMouseEvent.Type.MouseButtonPress, here, RIGHT, RIGHT)
    for dy in (12, 30, 60):
        qtbot.wait(15)
        send_mouse(viewport, QMouseEvent.Type.MouseMove, here + QPoint(0, dy), RIGHT, RIGHT)
    send_mouse(viewport, QMouseEvent.Type.MouseButtonRelease, here + QPoint(0, 60), RIGHT, NONE)
    after = box.viewRange()[0][1] - box.viewRange()[0][0]
    assert after != pytest.approx(before) and model.windows["CT"] == window_level  # zoom, no W/L
    z = model.slice
    qtbot.keyClick(window.view.graphics, Qt.Key.Key_PageUp)
    assert model.slice == z + 1 and model.case.key == model.entries[0].key
    qtbot.keyClick(window.view.graphics, Qt.Key.Key_PageDown, Qt.KeyboardModifier.ControlModifier)
    qtbot.waitUntil(lambda: model.case.key == model.entries[1].key, timeout=5000)
    window.set_mouse_preset(STROKELENS)  # back: the crosshair follows the mouse again
    send_mouse(viewport, QMouseEvent.Type.MouseMove, voxel_point(window, "CT", 3, 4), NONE, NONE)
    assert model.cursor == (3, 4)
    assert window.settings.value("view/mouse_preset") == STROKELENS
