"""The mismatch panel as drawn (pytest-qt, offscreen): the AI core and the threshold core side by
side from the case's StrokeSummary, no verdict without a complete AI core (nor from the ground
truth), and the numbers beside the criteria read on the side of the limits that was decided."""

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np
import pytest

from strokelens.app.mismatch_panel import MismatchPanel
from strokelens.app.mismatch_view import NO_CORE, NO_CORE_TRUTH, PARTIAL_CORE, UPDATING
from strokelens.app.model import Model, prepare_case
from strokelens.app.summary_session import SummarySession
from strokelens.app.tasks import Tasks
from strokelens.core.case import CHANNELS, Case
from strokelens.core.prediction import Prediction

SHAPE = (2, 100, 100)
SPACING = (10.0, 1.0, 1.0)  # 0.01 mL a voxel, 200 mL in all


class Ref:
    def __init__(self, key):
        self.id = self.key = key
        self.split, self.patient = "", key
        self.errors: list[str] = []


def make_case(core_voxels: int | None, hypo_voxels: int, name: str = "c1") -> Case:
    """The first ``hypo_voxels`` voxels have Tmax > 6 s, the first ``core_voxels`` are ground
    truth (None: no ground truth, a testing case)."""
    channels = {c: np.full(SHAPE, 20.0, np.float32) for c in CHANNELS}
    channels["CT"][:] = 35.0  # brain HU everywhere
    channels["Tmax"][:] = 1.0
    channels["Tmax"].reshape(-1)[:hypo_voxels] = 9.0
    mask = None
    if core_voxels is not None:
        mask = first_voxels(core_voxels)
    return Case(name, name, "", channels, np.eye(4), SPACING, mask)


def first_voxels(n: int) -> np.ndarray:
    mask = np.zeros(SHAPE, np.uint8)
    mask.reshape(-1)[:n] = 1
    return mask


def settle(loop, panel: MismatchPanel) -> None:
    loop.run_until_complete(panel.session.tasks.idle())


def panel_on(qtbot, loop, case: Case) -> MismatchPanel:
    model = Model()
    model.set_dataset([Ref(case.key)])
    panel = MismatchPanel(SummarySession(model, Tasks(loop)))
    qtbot.addWidget(panel)
    model.set_case(0, prepare_case(case))
    settle(loop, panel)
    return panel


def marks(labels) -> list[str]:
    return [label.property("mark") for label in labels]


def test_no_core_shows_no_verdict_and_says_why(qtbot, loop):
    panel = panel_on(qtbot, loop, make_case(None, 4000))
    assert panel.verdict.text() == "no verdict" and panel.reason.text() == NO_CORE
    assert not panel.reason.isHidden()
    assert marks(panel.criteria) == ["UNDECIDED"] * 3
    assert not any("✓" in label.text() or "✗" in label.text() for label in panel.criteria)
    # the threshold core's checks stay, grey: green ticks beside "no verdict" read as one
    assert all(label.property("muted") for label in panel.threshold_criteria)
    assert [panel.values[k].text() for k in ("core", "mismatch", "ratio")] == ["–"] * 3
    assert panel.values["hypo"].text() == "40.0 mL"
    assert panel.notes["core"].text() == ""
    assert "truth" not in panel.values
    ai_bar, _threshold_bar, hypo_bar = [ml for ml, _ in panel.bars.volumes]
    assert ai_bar is None and hypo_bar == pytest.approx(40.0)  # no 0 mL core bar


def test_ground_truth_is_a_reference_never_the_ai_core(qtbot, loop):
    """A training case before Run AI used to report its ground truth as the core, with a
    verdict; now the truth has its own row and there is no AI core and no verdict."""
    panel = panel_on(qtbot, loop, make_case(2000, 12000))
    assert panel.values["truth"].text() == "20.0 mL"
    assert "not the AI core" in panel.notes["truth"].text()
    assert panel.values["core"].text() == "–" and panel.verdict.text() == "no verdict"
    assert panel.reason.text() == NO_CORE_TRUTH and marks(panel.criteria) == ["UNDECIDED"] * 3
    assert panel.session.summary.ai_core_ml is None


def test_partial_core_ticks_no_criterion_until_complete(qtbot, loop):
    panel = panel_on(qtbot, loop, make_case(None, 12000))
    model, case = panel.session.model, panel.session.model.case
    probabilities = np.zeros((2, *SHAPE), np.float32)
    probabilities[:, 0, :30] = 0.9  # 30 mL on slice 0, 30 mL more on slice 1
    probabilities[:, 1, :30] = 0.9
    prediction = Prediction.empty(case.key, SHAPE, SPACING, ["f", "c"], ["focal", "ce"])
    prediction.update([0], probabilities[:, :1])
    model.set_prediction(case.key, prediction)
    assert panel.verdict.text() == "no verdict" and panel.reason.text() == UPDATING
    settle(loop, panel)
    assert panel.values["core"].text() == "≥ 30.0 mL"  # would pass "core < 70 mL" so far
    # from a partial core the mismatch volume and ratio are upper bounds
    assert panel.values["ratio"].text().startswith("≤ ")
    assert panel.values["mismatch"].text().startswith("≤ ")
    assert panel.notes["core"].text() == "from the AI ensemble (1 of 2 slices so far)"
    assert panel.values["range"].text() == "–"  # members' range: once complete
    assert panel.verdict.text() == "no verdict" and panel.reason.text() == PARTIAL_CORE
    assert marks(panel.criteria) == ["UNDECIDED"] * 3
    prediction.update([1], probabilities[:, 1:])
    model.set_prediction(case.key, prediction)
    settle(loop, panel)
    assert panel.values["core"].text() == "60.0 mL"
    assert panel.values["range"].text() == "60.0-60.0 mL"
    assert panel.notes["core"].text() == "from the AI ensemble"
    assert panel.verdict.text() == "TARGET MISMATCH" and panel.reason.isHidden()
    assert marks(panel.criteria) == ["MET"] * 3


def test_side_by_side_numbers_are_the_summarys(qtbot, loop):
    """Every number of both columns is the StrokeSummary's, as the report writes it."""
    case = make_case(None, 0)
    case.channels["Tmax"][:, :, :50] = 9.0  # a hypoperfused half (100 mL) with low CBF:
    case.channels["CBF"][:, :, :50] = 2.0  # the threshold core
    panel = panel_on(qtbot, loop, case)
    panel.session.model.set_corrected(case.key, first_voxels(3000))
    settle(loop, panel)
    summary = panel.session.summary
    ai = {c.label: c for c in summary.criteria}
    tc = {c.label: c for c in summary.threshold_criteria}
    assert summary.ai_core_ml == pytest.approx(30.0) and summary.threshold_core_ml > 0
    assert panel.values["core"].text() == f"{ai['core < 70 mL'].shown} mL"
    assert panel.thresholds["core"].text() == f"{tc['core < 70 mL'].shown} mL"
    assert panel.values["mismatch"].text() == f"{ai['mismatch ≥ 15 mL'].shown} mL"
    assert panel.thresholds["mismatch"].text() == f"{tc['mismatch ≥ 15 mL'].shown} mL"
    assert panel.values["ratio"].text() == ai["ratio ≥ 1.8"].shown
    assert panel.thresholds["ratio"].text() == tc["ratio ≥ 1.8"].shown
    assert panel.verdict.text() == summary.verdict_words
    assert not any(label.property("muted") for label in panel.threshold_criteria)
    assert marks(panel.threshold_criteria) == [
        {True: "MET", False: "FAILED"}[c.passed] for c in summary.threshold_criteria
    ]


@pytest.mark.parametrize(
    ("core_voxels", "hypo_voxels", "row", "shown", "criterion", "verdict"),
    [
        (2000, 3598, "ratio", "1.799", "✗ ratio ≥ 1.8", "no target mismatch"),
        (2000, 3496, "mismatch", "14.96 mL", "✗ mismatch ≥ 15 mL", "no target mismatch"),
        (6997, 14000, "core", "69.97 mL", "✓ core < 70 mL", "TARGET MISMATCH"),
    ],
)
def test_numbers_near_a_limit_agree_with_their_criterion(
    qtbot, loop, core_voxels, hypo_voxels, row, shown, criterion, verdict
):
    panel = panel_on(qtbot, loop, make_case(None, hypo_voxels))
    panel.session.model.set_corrected("c1", first_voxels(core_voxels))
    settle(loop, panel)
    assert panel.notes["core"].text() == "from the corrected mask"
    assert panel.values[row].text() == shown
    assert criterion in [label.text() for label in panel.criteria]
    assert panel.verdict.text() == verdict and panel.reason.isHidden()


def test_panel_screenshot(qtbot, loop, screenshot):
    """docs/screenshots/mismatch-panel.png when STROKELENS_SCREENSHOTS names a folder."""
    case = make_case(1500, 0)
    case.channels["Tmax"][:, :, :50] = 9.0
    case.channels["CBF"][:, :, :50] = 2.0
    panel = panel_on(qtbot, loop, case)
    probabilities = np.zeros((2, *SHAPE), np.float32)
    probabilities[0, :, :25] = 0.9
    probabilities[1, :, :32] = 0.9
    prediction = Prediction.empty("c1", SHAPE, SPACING, ["f", "c"], ["focal", "ce"])
    prediction.update([0, 1], probabilities)
    panel.session.model.set_prediction("c1", prediction)
    settle(loop, panel)
    panel.resize(360, 560)
    panel.show()
    qtbot.waitExposed(panel)
    assert panel.grab().save(screenshot("mismatch-panel.png"))
    assert panel.values["range"].text() == "50.0-64.0 mL"


def test_paging_through_cases_measures_only_the_one_the_reviewer_stays_on(loop, monkeypatch):
    """A case passed within ``SETTLE_S`` is never measured (each would cost a half-second
    worker competing with reading the next case); the one stayed on is."""
    from strokelens.app import summary_session

    measured = []
    real = summary_session._measure
    monkeypatch.setattr(summary_session, "_measure", lambda c: measured.append(c.key) or real(c))
    cases = [make_case(None, 4000 + k, f"c{k}") for k in range(3)]
    model = Model()
    model.set_dataset([Ref(c.key) for c in cases])
    session = SummarySession(model, Tasks(loop))
    for k, case in enumerate(cases):
        model.set_case(k, prepare_case(case))
        loop.run_until_complete(session.tasks.sleep(summary_session.SETTLE_S / 4))
    loop.run_until_complete(session.tasks.sleep(summary_session.SETTLE_S * 1.5))
    loop.run_until_complete(session.tasks.idle())
    assert measured == ["c2"] and session.current and session.summary.case_key == "c2"
