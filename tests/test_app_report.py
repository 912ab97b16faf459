"""What the stroke team reads, in the workstation (pytest-qt, offscreen), on a phantom case: the
Tmax > 6 s and threshold-core layers, the montage dock, and File ▸ Export report…"""

import html
import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np
import pytest
from pdf_text import pdf_text_runs
from PySide6.QtCore import Qt

from strokelens.core.mismatch import shown_value
from strokelens.core.stroke_summary import CoreKind, CoreOrigin, measure_case, summarize_stroke


@pytest.fixture(scope="module")
def phantom(tmp_path_factory):
    """One 2-slice phantom training case (its ground truth is known)."""
    from strokelens.core.phantom import generate_dataset

    root = tmp_path_factory.mktemp("phantom")
    generate_dataset(root, 1, seed=3, split="training", slices=(2,))
    return root


def opened(loop, window, root):
    assert loop.run_until_complete(window.cases.open_dataset(root))
    loop.run_until_complete(window.tasks.idle())
    return window.model


def test_measured_layers_are_the_summarys_masks(loop, window, phantom):
    model = opened(loop, window, phantom)
    case = model.case
    measured = measure_case(case)
    summary = summarize_stroke(case, origin=CoreOrigin(CoreKind.NONE))
    tmax6, rcbf30 = model.layer_data("tmax6"), model.layer_data("rcbf30")
    assert np.array_equal(tmax6, measured.hypoperfused) and tmax6.any()
    assert np.array_equal(tmax6, summary.layers.hypoperfused)
    assert np.array_equal(rcbf30, measured.threshold.mask) and rcbf30.any()
    assert np.array_equal(rcbf30, summary.layers.threshold_core)
    panel = window.layers
    for name, words in (("tmax6", "Tmax > 6 s"), ("rcbf30", "30 %")):
        legend = html.unescape(panel.legends[name].text())
        assert words in legend and model.layers[name].legend in legend
        assert panel.checks[name].isEnabled()
        assert not model.layers[name].visible  # off until asked for
        panel.checks[name].setChecked(True)
        assert model.layers[name].visible
    drawn = window.view.overlay_rgba("tmax6", model.slice)
    assert np.array_equal(drawn[..., 3] > 0, tmax6[model.slice])  # filled where the mask is


def test_montage_has_a_tile_per_slice_and_a_click_goes_there(
    qtbot, loop, window, phantom, screenshot
):
    model = opened(loop, window, phantom)
    dock = window.docks["montage"]
    dock.show()
    dock.raise_()
    qtbot.waitUntil(window.montage.isVisible, timeout=2000)
    loop.run_until_complete(window.tasks.idle())
    montage = window.montage
    assert montage.tile_count() == model.case.n_slices == 2
    other = 1 - model.slice
    rect = montage.grid.tile_rect(other)
    qtbot.mouseClick(montage.grid, Qt.MouseButton.LeftButton, pos=rect.center())
    assert model.slice == other
    assert "Tmax" in montage.legend.text() and "none yet" in montage.legend.text()
    assert montage.grab().save(screenshot("montage-test.png"))


def test_export_report_writes_the_pdf_of_the_case(loop, window, phantom, tmp_path):
    model = opened(loop, window, phantom)
    case = model.case
    assert window.edit.start_from("truth")  # a correction, saved to the project
    window.report.write(str(tmp_path))
    loop.run_until_complete(window.tasks.idle())
    pdf, png = tmp_path / f"{case.id}_summary.pdf", tmp_path / f"{case.id}_summary.png"
    assert pdf.is_file() and png.is_file()
    assert str(pdf) in window.statusBar().currentMessage()
    text = "\n".join(pdf_text_runs(pdf))
    assert f"Case {case.key}" in text
    summary = summarize_stroke(case, None, case.mask, CoreOrigin(CoreKind.CORRECTED))
    for volume in summary.hypoperfusion_ml.values():
        assert f"{shown_value(volume)} mL" in text
    assert f"{shown_value(summary.ai_core_ml)} mL" in text
    assert "Core from: corrected mask: corrected by" in text  # the project audit's save


def test_export_failure_goes_to_the_status_bar(loop, window, phantom, tmp_path):
    opened(loop, window, phantom)
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    window.report.write(str(blocked))
    loop.run_until_complete(window.tasks.idle())
    assert window.statusBar().currentMessage().startswith("Error:")
    assert window.error_box is None  # no dialog for it
    inside = phantom / "reports"  # never into the data set the case is read from
    window.report.write(str(inside))
    loop.run_until_complete(window.tasks.idle())
    assert "lies inside the data set" in window.statusBar().currentMessage()
    assert not inside.exists()


def test_another_data_set_with_the_same_case_keys_is_measured_anew(loop, window, phantom, tmp_path):
    from helpers import isles_cases

    model = opened(loop, window, phantom)
    first = model.layer_data("tmax6")
    other = opened(loop, window, isles_cases(tmp_path, 1))
    assert other.case.key == "training/case_1"  # as the phantom's
    fresh = measure_case(other.case).hypoperfused
    assert other.layer_data("tmax6").shape == fresh.shape != first.shape
    assert np.array_equal(other.layer_data("tmax6"), fresh)
    assert window.summaries.summary.layers.ct.shape == other.case.shape
