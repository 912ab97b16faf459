"""The mismatch panel as drawn (pytest-qt, offscreen): no verdict without a complete core, and the
numbers beside the criteria read on the side of the limits that was decided."""

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np
import pytest

from strokelens.app.mismatch_panel import MismatchPanel
from strokelens.app.mismatch_view import NO_CORE, PARTIAL_CORE
from strokelens.app.model import Model, prepare_case
from strokelens.core.case import CHANNELS, Case
from strokelens.core.prediction import Prediction

SHAPE = (2, 100, 100)
SPACING = (1.0, 1.0, 10.0)  # 0.01 mL a voxel, 200 mL in all


class Ref:
    def __init__(self, key):
        self.id = self.key = key
        self.split, self.patient = "", key
        self.errors: list[str] = []


def make_case(core_voxels: int | None, hypo_voxels: int) -> Case:
    """The first ``hypo_voxels`` voxels have Tmax > 6 s, the first ``core_voxels`` are ground
    truth (None: no ground truth, a testing case)."""
    channels = {c: np.full(SHAPE, 20.0, np.float32) for c in CHANNELS}
    channels["CT"][:] = 35.0  # brain HU everywhere
    channels["Tmax"][:] = 1.0
    channels["Tmax"].reshape(-1)[:hypo_voxels] = 9.0
    mask = None
    if core_voxels is not None:
        mask = np.zeros(SHAPE, np.uint8)
        mask.reshape(-1)[:core_voxels] = 1
    return Case("c1", "c1", "", channels, np.eye(4), SPACING, mask)


def panel_on(qtbot, case: Case) -> MismatchPanel:
    model = Model()
    model.set_dataset([Ref(case.key)])
    model.set_case(0, prepare_case(case))
    panel = MismatchPanel(model)
    qtbot.addWidget(panel)
    return panel


def marks(panel: MismatchPanel) -> list[str]:
    return [label.property("mark") for label in panel.criteria]


def test_no_core_shows_no_verdict_and_says_why(qtbot):
    panel = panel_on(qtbot, make_case(None, 4000))
    assert panel.verdict.text() == "no verdict" and panel.reason.text() == NO_CORE
    assert not panel.reason.isHidden()
    assert marks(panel) == ["UNDECIDED"] * 3
    assert not any("✓" in label.text() or "✗" in label.text() for label in panel.criteria)
    assert [panel.values[k].text() for k in ("core", "mismatch", "ratio")] == ["–"] * 3
    assert panel.values["hypo"].text() == "40.0 mL"
    assert panel.notes["core"].text() == ""
    assert [ml for ml, _ in panel.bars.volumes] == [None, pytest.approx(40.0)]  # no 0 mL core bar


def test_partial_core_ticks_no_criterion_until_complete(qtbot):
    panel = panel_on(qtbot, make_case(None, 12000))
    model, case = panel.model, panel.model.case
    probabilities = np.zeros((2, *SHAPE), np.float32)
    probabilities[:, 0, :30] = 0.9  # 30 mL on slice 0, 30 mL more on slice 1
    probabilities[:, 1, :30] = 0.9
    prediction = Prediction.empty(case.key, SHAPE, SPACING, ["f", "c"], ["focal", "ce"])
    prediction.update([0], probabilities[:, :1])
    model.set_prediction(case.key, prediction)
    assert panel.values["core"].text() == "≥ 30.0 mL"  # would pass "core < 70 mL" so far
    # from a partial core the mismatch volume and ratio are upper bounds
    assert panel.values["ratio"].text().startswith("≤ ")
    assert panel.values["mismatch"].text().startswith("≤ ")
    assert panel.notes["core"].text() == "from the AI ensemble (1 of 2 slices so far)"
    assert panel.verdict.text() == "no verdict" and panel.reason.text() == PARTIAL_CORE
    assert marks(panel) == ["UNDECIDED"] * 3
    prediction.update([1], probabilities[:, 1:])
    model.set_prediction(case.key, prediction)
    assert panel.values["core"].text() == "60.0 mL"
    assert panel.notes["core"].text() == "from the AI ensemble"
    assert panel.verdict.text() == "TARGET MISMATCH" and panel.reason.isHidden()
    assert marks(panel) == ["MET"] * 3


@pytest.mark.parametrize(
    ("core_voxels", "hypo_voxels", "row", "shown", "criterion", "verdict"),
    [
        (2000, 3598, "ratio", "1.799", "✗ ratio ≥ 1.8", "no target mismatch"),
        (2000, 3496, "mismatch", "14.96 mL", "✗ mismatch ≥ 15 mL", "no target mismatch"),
        (6997, 14000, "core", "69.97 mL", "✓ core < 70 mL", "TARGET MISMATCH"),
    ],
)
def test_numbers_near_a_limit_agree_with_their_criterion(
    qtbot, core_voxels, hypo_voxels, row, shown, criterion, verdict
):
    panel = panel_on(qtbot, make_case(core_voxels, hypo_voxels))
    assert panel.notes["core"].text() == "from the ground truth"
    assert panel.values[row].text() == shown
    assert criterion in [label.text() for label in panel.criteria]
    assert panel.verdict.text() == verdict and panel.reason.isHidden()
