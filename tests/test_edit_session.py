"""Correcting a mask through the edit session, without a window: tools, strokes and undo on the
model's corrected layer, starting points, components, constraints, per-case history."""

import numpy as np
import pytest
from test_app_model import FakeDataset, FakeRef, make_case, make_prediction

from strokelens.app.edit_session import EditSession, Tool
from strokelens.app.model import Model, prepare_case
from strokelens.core.editing.masks import Brush
from strokelens.core.stroke_summary import CoreKind


@pytest.fixture
def cases():
    return [make_case("c1"), make_case("c2", truth=False, seed=1)]


@pytest.fixture
def model(cases):
    m = Model()
    m.set_dataset(FakeDataset(FakeRef(c.key) for c in cases), {"c1": 3})
    m.set_case(0, prepare_case(cases[0]))
    m.set_slice(1)
    return m


@pytest.fixture
def edit(model):
    return EditSession(model)


def events(signal):
    seen = []
    signal.connect(lambda *args: seen.append(args))
    return seen


def test_a_brush_stroke_paints_the_corrected_layer_and_is_one_undo_item(model, edit):
    edit.start_from("empty")
    edit.set_tool(Tool.BRUSH)
    edit.set_radius(1.0)  # spacing (1, 2) mm in-plane: a dab is the voxel and its y neighbours
    data_events, mask_events = events(model.layer_data_changed), events(model.mask_changed)
    edit.press(8, 0)
    for x in np.linspace(0, 9, 4):  # 3-voxel jumps: the stroke still has no gaps
        edit.drag(8, x)
    assert mask_events == []  # the numbers wait for the end of the stroke
    edit.release()
    assert len(mask_events) == 1
    corrected = model.layer_data("corrected")
    assert corrected is edit.current().data  # the panes draw the very array being edited
    half = Brush(1.0, (1.0, 2.0)).footprint().shape[0] // 2
    expected = np.zeros(model.case.shape, np.uint8)
    expected[1, 8 - half : 8 + half + 1, :] = 1
    assert np.array_equal(corrected, expected)
    regions = [r for name, r in data_events if name == "corrected" and r is not None]
    assert regions and all(r.z0 == 1 and r.z1 == 2 for r in regions)
    assert model.ai_core().kind is CoreKind.CORRECTED and model.ai_core().corrected is corrected
    edit.undo()  # the whole stroke at once
    assert not corrected.any()
    edit.redo()
    assert np.array_equal(corrected, expected)


def test_the_first_edit_starts_from_the_complete_ai_ensemble(model, edit):
    case = model.case
    prediction = make_prediction(case, (1, slice(0, 4), slice(0, 5)), (1, slice(0, 2), slice(0, 2)))
    model.set_prediction(case.key, prediction)
    edit.set_tool(Tool.ERASER)
    edit.set_radius(0.5)
    edit.press(0, 0)
    edit.release()
    corrected = model.corrected[case.key]
    expected = prediction.mask("all").copy()
    expected[1, 0, 0] = 0
    assert np.array_equal(corrected, expected)
    edit.undo()
    assert np.array_equal(corrected, prediction.mask("all"))


def test_escape_aborts_a_stroke_without_an_undo_item(model, edit):
    edit.set_tool(Tool.BRUSH)
    edit.press(5, 5)
    edit.drag(5, 8)
    assert model.corrected[model.case.key].any()
    assert edit.abort()
    assert not model.corrected[model.case.key].any()
    assert not edit.current().can_undo and not edit.abort()


def test_start_from_sources_and_history_per_case(model, edit, cases):
    assert edit.start_from("truth")
    key = model.case.key
    assert np.array_equal(model.corrected[key], cases[0].mask)
    assert edit.has_edits()
    assert not edit.start_from("focal")  # no prediction yet: refused, nothing replaced
    assert np.array_equal(model.corrected[key], cases[0].mask)
    model.set_case(1, prepare_case(cases[1]))
    assert edit.current() is None and not edit.start_from("truth")  # case 2 has no truth
    model.set_case(0, prepare_case(cases[0]))
    edit.undo()  # case 1's history survived the switch
    assert not model.corrected[key].any()
    model.set_dataset(FakeDataset([FakeRef("c9")]))
    assert edit.masks == {}


def test_pick_accepts_an_ai_component_and_rejects_one_of_the_correction(model, edit):
    case = model.case
    focal_box = (1, slice(0, 3), slice(0, 3))
    prediction = make_prediction(case, focal_box, (1, slice(7, 9), slice(7, 9)))
    model.set_prediction(case.key, prediction)
    edit.start_from("empty")
    edit.set_tool(Tool.PICK)
    edit.press(1, 1)  # inside the focal component
    edit.release()
    corrected = model.corrected[case.key]
    expected = np.zeros(case.shape, np.uint8)
    expected[focal_box] = 1
    assert np.array_equal(corrected, expected)
    edit.press(1, 1)  # now part of the correction: rejected
    assert not corrected.any()
    edit.press(11, 9)  # nothing anywhere: nothing changes
    assert not corrected.any()


def test_pick_takes_the_focal_only_region_when_the_difference_layer_is_shown(model, edit):
    case = model.case
    prediction = make_prediction(case, (1, slice(0, 3), slice(0, 6)), (1, slice(0, 3), slice(0, 3)))
    model.set_prediction(case.key, prediction)
    model.set_layer("difference", visible=True)
    edit.start_from("empty")
    edit.set_tool(Tool.PICK)
    edit.press(1, 4)  # focal says lesion, CE does not
    corrected = model.corrected[case.key]
    expected = np.zeros(case.shape, np.uint8)
    expected[1, 0:3, 3:6] = 1  # the focal-only part alone
    assert np.array_equal(corrected, expected)
    edit.start_from("focal")  # all of it in the correction: a click rejects the focal-only part
    edit.press(1, 4)
    expected = np.zeros(case.shape, np.uint8)
    expected[1, 0:3, 0:3] = 1  # what both ensembles call lesion stays
    assert np.array_equal(corrected, expected)


def test_constraints_limit_paint_and_fill(model, edit):
    edit.start_from("empty")
    edit.set_constraint("tmax", True)  # Tmax > 6 s only in rows 0-5
    edit.set_tool(Tool.BRUSH)
    edit.set_radius(20.0)
    edit.press(6, 5)
    edit.release()
    corrected = model.corrected[model.case.key]
    assert corrected[1, :6].all() and not corrected[1, 6:].any() and not corrected[0].any()
    edit.start_from("empty")
    edit.set_tool(Tool.FILL)
    edit.press(10, 2)  # outside the constraint: no fill
    assert not corrected.any()
    edit.press(2, 2)
    assert corrected[1, :6].all() and not corrected[1, 6:].any()
    edit.set_constraint("ai", True)  # needs an AI mask this case lacks: a message, no paint
    messages = events(edit.status)
    edit.set_tool(Tool.BRUSH)
    edit.press(2, 2)
    assert "AI" in messages[-1][0] and not edit.current().stroking


def test_remove_islands_and_fill_holes_are_undoable(model, edit):
    edit.start_from("empty")
    mask = edit.current()
    ring = np.zeros(model.case.shape, np.uint8)
    ring[1, 2:7, 2:7] = 1
    ring[1, 4, 4] = 0  # a hole
    ring[2, 10, 8] = 1  # a 10 mm^3 island
    mask.apply(ring, "test")
    edit.fill_holes()
    assert model.corrected[model.case.key][1, 4, 4] == 1
    edit.remove_islands(0.05)
    assert model.corrected[model.case.key][2].sum() == 0
    edit.undo()
    edit.undo()
    assert np.array_equal(model.corrected[model.case.key], ring)


def test_brush_radius_is_bounded_and_steps(edit):
    edit.set_radius(1000)
    assert edit.radius_mm == 50.0
    edit.set_radius(4.0)
    edit.step_radius(1)
    assert edit.radius_mm == pytest.approx(5.0)
