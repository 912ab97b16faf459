"""The viewer's Qt-free parts: model state and events, overlay rendering, demo folder rules."""

import numpy as np
import pytest

from strokelens.app import colormaps
from strokelens.app.mismatch_view import (
    NO_CORE,
    NO_CORE_TRUTH,
    PARTIAL_CORE,
    UPDATING,
    Mark,
    Verdict,
    mismatch_view,
)
from strokelens.app.model import (
    FIXED_WINDOWS,
    Model,
    RecentList,
    Status,
    auto_window,
    prepare_case,
)
from strokelens.core.case import CHANNELS, Case
from strokelens.core.demo import demo_ready, generate_demo
from strokelens.core.errors import DataError
from strokelens.core.mismatch import mismatch
from strokelens.core.prediction import Prediction
from strokelens.core.stroke_summary import CoreKind, CoreOrigin, summarize_stroke

SHAPE = (3, 12, 10)
SPACING = (5.0, 1.0, 2.0)


class FakeRef:
    def __init__(self, key):
        self.id = self.key = key
        self.split, self.patient = "", key
        self.errors: list[str] = []


class FakeDataset(list):
    root = None


def make_case(key="c1", truth=True, seed=0) -> Case:
    rng = np.random.default_rng(seed)
    channels = {c: rng.uniform(0, 50, SHAPE).astype(np.float32) for c in CHANNELS}
    channels["CT"][:] = 35.0  # brain HU everywhere
    channels["Tmax"][:, :6, :] = 9.0  # hypoperfused upper half: 3*6*10 voxels
    channels["Tmax"][:, 6:, :] = 1.0
    mask = None
    if truth:
        mask = np.zeros(SHAPE, np.uint8)
        mask[1, 2:5, 3:6] = 1  # 9 voxels on slice 1
        mask[2, 2:3, 3:4] = 1
    affine = np.diag([-2.0, 1.0, 5.0, 1.0])
    affine[:3, 3] = (10.0, -20.0, 30.0)
    return Case(key, key, "", channels, affine, SPACING, mask)


def make_prediction(case: Case, focal_box, ce_box) -> Prediction:
    prediction = Prediction.empty(
        case.key, case.shape, case.spacing, ["f1", "f2", "c1"], ["focal", "focal", "ce"]
    )
    probabilities = np.zeros((3, *case.shape), np.float32)
    probabilities[(slice(0, 2), *focal_box)] = 0.9
    probabilities[(2, *ce_box)] = 0.8
    prediction.update(list(range(case.shape[0])), probabilities)
    return prediction


@pytest.fixture
def model():
    m = Model()
    cases = [make_case("c1"), make_case("c2", truth=False, seed=1)]
    m.set_dataset(FakeDataset(FakeRef(c.key) for c in cases), {"c1": 3})
    m.set_case(0, prepare_case(cases[0]))
    return m


def record(event):
    calls = []
    event.connect(lambda *args: calls.append(args))
    return calls


def test_prepare_case_starts_on_the_largest_lesion_slice_and_centre():
    prepared = prepare_case(make_case())
    assert prepared.start_slice == 1
    assert prepared.start_cursor == (3, 4)
    assert prepared.windows["CT"] == FIXED_WINDOWS["CT"]
    no_truth = prepare_case(make_case(truth=False))
    assert (no_truth.start_slice, no_truth.start_cursor) == (1, (6, 5))


def test_auto_window_ignores_zero_background_and_vessels():
    image = np.zeros((1, 10, 100), np.float32)
    image[0, :, :97] = 50.0
    image[0, :, 97:] = 900.0  # 3 % "vessels"
    width, level = auto_window(image)
    assert width == pytest.approx(50.0) and level == pytest.approx(25.0)


def test_slice_and_cursor_events_and_values(model):
    slices, cursors = record(model.slice_changed), record(model.cursor_changed)
    model.set_slice(99)
    assert model.slice == 2 and slices == [(2,)]
    model.step_slice(1)  # already at the end: no event
    assert slices == [(2,)]
    model.set_cursor((4, 7))
    values = model.cursor_values()
    assert values == {c: float(model.case.channels[c][2, 4, 7]) for c in CHANNELS}
    x_mm, y_mm, z_mm = model.cursor_mm()
    assert (x_mm, y_mm, z_mm) == (10.0 - 2 * 7, -20.0 + 4, 30.0 + 5 * 2)
    model.set_cursor((40, 7))  # off the image
    assert model.cursor is None and model.cursor_values() == {}
    assert len(cursors) == 2


def test_user_window_survives_case_change_until_reset(model):
    changed = record(model.window_changed)
    model.set_window("CBF", 100.0, 60.0)
    assert changed == [("CBF",)]
    model.set_case(1, prepare_case(make_case("c2", truth=False, seed=1)))
    assert model.windows["CBF"] == (100.0, 60.0)
    model.reset_windows()
    assert model.windows["CBF"] == model.prepared.windows["CBF"] != (100.0, 60.0)


def test_layer_settings_emit_only_on_change(model):
    changed = record(model.layer_changed)
    model.set_layer("truth", visible=False, opacity=2.0)
    model.set_layer("truth", visible=False)
    assert changed == [("truth",)]
    assert model.layers["truth"].opacity == 1.0 and not model.layers["truth"].visible


def test_prediction_seam_layers_status_and_core_volume(model):
    case = model.case
    data_events, entry_events = record(model.layer_data_changed), record(model.entry_changed)
    assert model.layer_data("focal") is None and model.ai_core() is None  # truth: no AI core
    prediction = make_prediction(case, (1, slice(0, 4), slice(0, 5)), (1, slice(0, 2), slice(0, 2)))
    growing = Prediction.empty(
        case.key, case.shape, case.spacing, ["f1", "f2", "c1"], ["focal"] * 2 + ["ce"]
    )
    growing.update([1], prediction.members[:, 1:2])  # a prediction still filling: drawn, but
    model.set_progress(case.key, 0.3)  # the case is not "predicted" until it is complete
    model.set_prediction(case.key, growing)
    entry = model.entries[0]
    assert entry.status is Status.NEW and entry.core_ml is None and entry.progress == 0.3
    assert entry.partial == (1, 3) and entry.status_text == "AI 30%"
    model.set_progress(case.key, None)
    assert entry.status_text == "partial (1 / 3 slices)"
    assert model.layer_data("focal").sum() == 20
    core = model.ai_core()
    assert core.kind is CoreKind.ENSEMBLE and core.prediction is growing and not growing.complete
    data_events.clear()
    model.set_prediction(case.key, prediction)
    assert entry.status is Status.PREDICTED and entry.progress is None and entry.partial is None
    assert entry.core_ml == pytest.approx(20 * 0.01)  # the all-member mean >= 0.5: focal box
    assert {name for (name, region) in data_events if region is None} == {
        "focal", "ce", "mean", "uncertainty", "difference"
    }  # fmt: skip
    assert entry_events[-1] == (0,)
    assert model.layer_data("focal").sum() == 20 and model.layer_data("ce").sum() == 4
    assert model.layer_data("uncertainty").max() > 0
    assert model.ai_core().kind is CoreKind.ENSEMBLE and model.ai_core().prediction is prediction
    with pytest.raises(ValueError, match="shape"):
        model.set_prediction(
            case.key, Prediction.empty(case.key, (1, 2, 2), SPACING, ["a"], ["ce"])
        )


def test_dropping_predictions_forgets_them_but_keeps_corrections(model):
    """Another ensemble became active: what the old one predicted is no longer shown or counted."""
    case = model.case
    box = (1, slice(0, 4), slice(0, 5))
    model.set_prediction(case.key, make_prediction(case, box, box))
    model.set_cached("c2", 3, 3, 1.5)  # the cache index of the old ensemble
    corrected = np.zeros(case.shape, bool)
    corrected[1, 2, 2] = True
    model.set_corrected(case.key, corrected)
    model.drop_predictions()
    entry = model.entries[0]
    assert not model.predictions and entry.status is Status.NEW and entry.core_ml is None
    assert model.layer_data("focal") is None and not model.predicted(case.key)
    assert model.ai_core().kind is CoreKind.CORRECTED  # the reviewer's work stays
    assert model.entries[1].cached  # an index entry the new ensemble's index read replaces


def view_of(model: Model, current: bool = True):
    """The panel's view of the current case's summary, made here as the session makes it."""
    from strokelens.app.summary_session import live_origin, summarize

    core, case = model.ai_core(), model.case
    prediction = None if core is None else core.prediction
    corrected = None if core is None else core.corrected
    summary, truth_ml = summarize(case, measure(case), prediction, corrected, live_origin(core))
    return mismatch_view(summary, current, truth_ml)


def measure(case):
    from strokelens.core.stroke_summary import measure_case

    return measure_case(case)


def test_ai_core_prefers_corrected_and_never_falls_back_to_the_truth(model):
    case = model.case
    assert case.mask is not None and model.ai_core() is None
    view = view_of(model)
    assert view.reason == NO_CORE_TRUTH and view.verdict is Verdict.NONE
    assert view.row("truth").value == "0.1 mL" and view.row("core").value == "–"
    masks = record(model.mask_changed)
    corrected = np.zeros(SHAPE, np.uint8)
    corrected[0, :5, :] = 1  # 50 voxels = 0.5 mL
    model.set_corrected(case.key, corrected)
    assert masks and model.ai_core().kind is CoreKind.CORRECTED
    view = view_of(model)
    expected = mismatch(corrected, case.channels["Tmax"], case.spacing, case.channels["CT"])
    assert view.row("core").value == f"{expected.core_ml:.1f} mL"
    assert view.row("core").note == "from the corrected mask" and view.verdict is not Verdict.NONE
    assert view_of(model, current=False).verdict is Verdict.NONE  # being remade: no verdict
    assert view_of(model, current=False).reason == UPDATING
    model.set_review(case.key, Status.APPROVED, "ann")
    assert model.ai_core().kind is CoreKind.APPROVED
    model.set_unsaved(case.key, True)  # edited since the approval
    assert model.ai_core().kind is CoreKind.CORRECTED
    model.set_corrected(case.key, None)
    assert model.ai_core() is None


def test_no_core_mask_is_no_core_and_no_verdict(model):
    """A case without ground truth before Run AI: no core volume, no ratio, nothing ticked
    (it used to read "Core 0.0 mL, ratio ∞, TARGET MISMATCH")."""
    model.set_case(1, prepare_case(make_case("c2", truth=False, seed=1)))
    assert model.ai_core() is None
    view = view_of(model)
    assert view.verdict is Verdict.NONE and view.reason == NO_CORE
    assert [c.mark for c in view.criteria] == [Mark.UNDECIDED] * 3
    assert [view.row(k).value for k in ("core", "mismatch", "ratio")] == ["–"] * 3
    assert view.row("hypo").value == "1.8 mL" and view.row("core").note == ""  # still known


def test_partial_core_decides_no_criterion(model):
    """A partial AI core is a lower bound: 0.2 mL would pass "core < 70 mL" and a ratio of 9, yet
    nothing is ticked or crossed until every slice is done."""
    case = model.case
    prediction = make_prediction(case, (1, slice(0, 4), slice(0, 5)), (1, slice(0, 2), slice(0, 2)))
    growing = Prediction.empty(
        case.key, case.shape, case.spacing, prediction.member_names, prediction.member_losses
    )
    growing.update([1], prediction.members[:, 1:2])
    model.set_prediction(case.key, growing)
    view = view_of(model)
    assert view.verdict is Verdict.NONE and view.reason == PARTIAL_CORE
    assert [c.mark for c in view.criteria] == [Mark.UNDECIDED] * 3
    assert view.row("core").value == "≥ 0.2 mL"  # a lower bound until complete
    assert view.row("core").note == "from the AI ensemble (1 of 3 slices so far)"
    model.set_prediction(case.key, prediction)
    view = view_of(model)
    assert view.verdict is Verdict.NO_TARGET and view.reason == ""  # mismatch 1.6 mL < 15
    assert [c.mark for c in view.criteria] == [Mark.MET, Mark.FAILED, Mark.MET]


@pytest.mark.parametrize(
    ("core_voxels", "hypo_voxels", "row", "shown", "marks"),
    [
        (2000, 3598, "ratio", "1.799", "✗✓✓"),  # 1.8 at one decimal, beside "✗ ratio ≥ 1.8"
        (2000, 3496, "mismatch", "14.96 mL", "✗✗✓"),
        (6997, 14000, "core", "69.97 mL", "✓✓✓"),  # "70.0 mL" beside "✓ core < 70 mL"
        (2000, 3600, "ratio", "1.8", "✓✓✓"),  # at the limit: passes, one decimal
        (7004, 20000, "core", "70.0 mL", "✓✓✗"),  # rounded down onto the limit: fails there
    ],
)
def test_numbers_read_on_the_side_of_the_limit_that_was_decided(
    core_voxels, hypo_voxels, row, shown, marks
):
    shape, spacing = (2, 100, 100), (10.0, 1.0, 1.0)  # 0.01 mL a voxel
    channels = {c: np.full(shape, 20.0, np.float32) for c in CHANNELS}
    channels["CT"][:] = 35.0
    channels["Tmax"][:] = 1.0
    channels["Tmax"].reshape(-1)[:hypo_voxels] = 9.0
    case = Case("c1", "c1", "", channels, np.eye(4), spacing)
    core = np.zeros(shape, np.uint8)
    core.reshape(-1)[:core_voxels] = 1
    summary = summarize_stroke(case, None, core, CoreOrigin(CoreKind.CORRECTED))
    view = mismatch_view(summary)
    assert view.row(row).value == shown
    assert "".join(c.mark for c in view.criteria) == marks
    assert view.verdict is (Verdict.TARGET if marks == "✓✓✓" else Verdict.NO_TARGET)


def test_mask_rgba_filled_contour_and_empty():
    mask = np.zeros((7, 7), np.uint8)
    mask[1:6, 1:6] = 1
    filled = colormaps.mask_rgba(mask, (255, 150, 0))
    assert (filled[..., 3] > 0).sum() == 25 and tuple(filled[3, 3]) == (255, 150, 0, 255)
    outline = colormaps.mask_rgba(mask, (255, 150, 0), outline=True)
    assert (outline[..., 3] > 0).sum() == 16 and outline[3, 3, 3] == 0
    assert colormaps.mask_rgba(np.zeros((4, 4)), (1, 2, 3)) is None


def test_contour_is_the_mask_minus_its_cross_erosion():
    from scipy import ndimage

    rng = np.random.default_rng(3)
    mask = ndimage.binary_opening(rng.random((40, 30)) > 0.4)
    mask[0, :] = True  # touching the image edge: border there
    expected = mask ^ ndimage.binary_erosion(mask)
    assert np.array_equal(colormaps.contour(mask), expected)


def test_heat_rgba_alpha_grows_with_value():
    values = np.array([[0.0, 0.25, 0.5]], np.float32)
    rgba = colormaps.heat_rgba(values, 0.5, (255, 255, 255), lut="hot")
    assert rgba[0, :, 3].tolist() == [0, 127, 255]
    assert tuple(rgba[0, 2, :3]) == tuple(colormaps.LUTS["hot"][255])
    outline = colormaps.heat_rgba(values, 0.5, (9, 9, 9), outline=True, threshold=0.25)
    assert outline[0, :, 3].tolist() == [0, 255, 255]


def test_composite_blends_layers_over_each_other_with_opacity():
    bottom = np.zeros((6, 8, 4), np.uint8)
    bottom[1:4, 1:5] = (200, 0, 0, 255)
    top = np.zeros((6, 8, 4), np.uint8)
    top[3:5, 4:7] = (0, 0, 100, 128)
    out = colormaps.composite([(bottom, 1.0), (top, 0.5)])
    assert tuple(out[1, 1]) == (200, 0, 0, 255) and tuple(out[4, 6]) == (0, 0, 100, 64)
    a = 128 / 255 * 0.5  # top over bottom where both are drawn
    assert tuple(out[3, 4]) == (round(200 * (1 - a)), 0, round(100 * a), 255)
    assert not out[0].any() and not out[:, 7].any()  # outside both layers
    assert colormaps.composite([]) is None
    assert colormaps.composite([(np.zeros((3, 3, 4), np.uint8), 1.0)]) is None


def test_luts_are_256_uint8():
    for name, lut in colormaps.LUTS.items():
        assert lut.shape == (256, 3) and lut.dtype == np.uint8, name


def test_maps_are_drawn_transparent_outside_the_brain_only():
    case = make_case()
    for channel in CHANNELS[1:]:
        case.channels[channel][0, 0, :4] = 0.0  # outside: every map 0
    case.channels["Tmax"][0, 1, 1] = 0.0  # Tmax 0 s in the brain: a value, not background
    display = prepare_case(case).display
    assert display["CT"] is case.channels["CT"]
    assert np.isnan(display["CBF"][0, 0, :4]).all() and np.isnan(display["Tmax"][0, 0, 3])
    assert display["Tmax"][0, 1, 1] == 0.0
    assert np.array_equal(display["MTT"][1:], case.channels["MTT"][1:])


def test_display_and_cursor_values_are_in_physical_units():
    case = make_case()
    case.value_scales = {"CBF": 0.1}
    prepared = prepare_case(case)
    z, y, x = 1, 3, 4
    assert prepared.display["CBF"][z, y, x] == pytest.approx(case.channels["CBF"][z, y, x] * 0.1)
    assert prepared.display["CBV"][z, y, x] == case.channels["CBV"][z, y, x]
    top, _ = prepared.windows["CBF"]
    assert top == pytest.approx(auto_window(case.channels["CBF"])[0] * 0.1, rel=1e-5)
    m = Model()
    m.set_dataset(FakeDataset([FakeRef(case.key)]))
    m.set_case(0, prepared)
    m.set_slice(z)
    m.set_cursor((y, x))
    assert m.cursor_values()["CBF"] == pytest.approx(case.channels["CBF"][z, y, x] * 0.1)


def test_recent_list_is_unique_and_bounded():
    recent = RecentList(limit=3)
    for path in ("a", "b", "c", "a", "d"):
        recent.add(path)
    assert recent.paths == ["d", "a", "c"]


def test_demo_never_touches_a_foreign_folder(tmp_path):
    folder = tmp_path / "demo"
    folder.mkdir()
    (folder / "mine.txt").write_text("user data")
    with pytest.raises(DataError, match="no complete demo"):
        generate_demo(folder)
    assert (folder / "mine.txt").exists() and not demo_ready(folder)
    (folder / "TRAINING").mkdir()
    (folder / "TESTING").mkdir()
    assert demo_ready(folder)


def test_cache_index_and_errors_mark_entries_without_loading(model):
    """The worklist's states before a visit: cached complete ("predicted", its core, and
    ``predicted`` for Run AI), cached partial, nothing (a stale entry), and errors."""
    other = model.entries[1]
    model.set_cached(other.key, 3, 3, 1.5)
    assert other.status_text == "predicted" and other.core_ml == 1.5
    assert model.predicted(other.key) and other.key not in model.predictions
    model.set_cached(other.key, 1, 3)
    assert other.status_text == "partial (1 / 3 slices)" and not model.predicted(other.key)
    assert other.core_ml is None
    model.set_cached(other.key)
    assert other.status_text == "new" and other.partial is None
    model.set_error(other.key, "c2: no such file")
    assert other.status_text == "error" and other.error == "c2: no such file"
    model.set_error(other.key, None)
    assert other.status_text == "new"
    events = record(model.entry_changed)
    shown = model.entries[0]
    box = (1, slice(0, 4), slice(0, 5))
    model.set_prediction(shown.key, make_prediction(model.case, box, box))
    model.set_cached(shown.key, 1, 3)  # the loaded prediction knows better
    assert shown.status is Status.PREDICTED and model.predicted(shown.key) and len(events) == 1
