"""Reading overlays on the colour maps (pytest-qt, offscreen): contour width, overlays on CT only,
the heat layers' legends."""

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np
import pytest
from helpers import isles_cases
from test_app_window import SHAPE_XYZ, opened

from strokelens.app import colormaps


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return isles_cases(tmp_path_factory.mktemp("isles"), 1, SHAPE_XYZ)


def test_contour_width_thickens_every_contour_inward():
    mask = np.zeros((12, 12), bool)
    mask[2:10, 3:11] = True
    one, two = colormaps.contour(mask, 1), colormaps.contour(mask, 2)
    assert one.sum() == 2 * (8 + 8) - 4
    assert two.sum() == one.sum() + 2 * (6 + 6) - 4  # the next ring inside
    assert not (two & ~mask).any() and (one <= two).all()
    assert np.array_equal(colormaps.contour(mask, 10), mask)  # thicker than the mask: all of it


def test_overlay_style_applies_to_all_panes_and_layers(loop, window, dataset):
    model = opened(loop, window, dataset)
    view, z = window.view, model.slice
    truth = model.layers["truth"]
    assert truth.visible and truth.contour
    thin = view.overlay_rgba("truth", z)[..., 3] > 0
    window.layers.width.setValue(3)
    assert model.contour_width == 3
    thick = view.overlay_rgba("truth", z)[..., 3] > 0
    assert thick.sum() > thin.sum() and (thin <= thick).all()
    panes = {pane.channel: pane for pane in view.panes}
    assert all(pane.overlay.isVisible() for pane in panes.values())
    window.layers.ct_only.setChecked(True)
    assert model.overlays_on_ct_only
    assert panes["CT"].overlay.isVisible()
    assert not any(panes[c].overlay.isVisible() for c in ("CBF", "CBV", "MTT", "Tmax"))
    model.set_overlay_style(on_ct_only=False, contour_width=99)
    assert model.contour_width == 4 and panes["Tmax"].overlay.isVisible()
    assert not window.layers.ct_only.isChecked() and window.layers.width.value() == 4


def test_heat_layers_have_a_legend_with_their_range(window):
    tips = [w.toolTip() for w in window.layers.children() if hasattr(w, "toolTip")]
    assert any(t.startswith("All-member mean: 0") and "to 1" in t for t in tips)
    assert any(t.startswith("Uncertainty: 0") and "to 0.5" in t for t in tips)
