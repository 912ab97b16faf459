"""The editing model: brush in mm, gap-free strokes, constraint rules, events, undo."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage

from strokelens.core.editing import masks as em
from strokelens.core.editing.history import History, Region
from strokelens.core.editing.masks import Brush, EditableMask, EditInputs
from strokelens.core.midline import fit_midline, healthy_reference, symmetry_image

SPACING = (5.0, 0.9, 0.9)


def _segment_distance(points: np.ndarray, a, b) -> np.ndarray:
    """Distance (voxels) of (y, x) points to the segment a-b."""
    a, b = np.asarray(a, float), np.asarray(b, float)
    d = b - a
    t = np.clip(((points - a) @ d) / (d @ d), 0, 1)
    return np.linalg.norm(points - (a + t[:, None] * d), axis=1)


# --- brush and line


def test_footprint_radius_is_in_mm_on_anisotropic_spacing():
    for spacing in [(0.9, 0.9), (0.9, 0.45), (0.5, 1.2)]:
        brush = Brush(10.0, spacing)
        disc = brush.footprint()
        assert disc.dtype == bool and not disc.flags.writeable
        hy, hx = disc.shape[0] // 2, disc.shape[1] // 2
        assert disc.shape == (2 * hy + 1, 2 * hx + 1)
        assert (hy, hx) == (int(10 / spacing[0]), int(10 / spacing[1]))
        assert disc[hy, hx] and disc[0, hx] and disc[hy, 0]  # reaches the radius on each axis
        assert np.array_equal(disc, disc[::-1, ::-1])
        area = math.pi * 10.0**2 / (spacing[0] * spacing[1])
        assert abs(disc.sum() - area) / area < 0.03


def test_tiny_brush_is_the_centre_voxel_and_bounds_are_checked():
    assert np.array_equal(Brush(0.5, (0.9, 0.9)).footprint(), [[True]])
    for bad in [em.MIN_RADIUS_MM - 0.01, em.MAX_RADIUS_MM + 1, math.nan, math.inf]:
        with pytest.raises(ValueError, match="radius"):
            Brush(bad, (0.9, 0.9))
    with pytest.raises(ValueError, match="spacing"):
        Brush(5, (0.0, 0.9))
    with pytest.raises(ValueError, match="voxels wide"):
        Brush(50, (0.01, 0.9))


def test_line_steps_one_voxel_at_most():
    rng = np.random.default_rng(0)
    for _ in range(200):
        p0, p1 = rng.uniform(-50, 300, 2), rng.uniform(-50, 300, 2)
        pts = em.line(p0, p1)
        steps = np.abs(np.diff(pts, axis=0)).max(axis=1)
        assert np.all(steps == 1)  # neighbours, never the same voxel twice
        assert tuple(pts[0]) == tuple(np.floor(p0 + 0.5)) and tuple(pts[-1]) == tuple(
            np.floor(p1 + 0.5)
        )
        assert _segment_distance(pts.astype(float), pts[0], pts[-1]).max() <= 0.5 + 1e-9
    assert em.line((3.2, 4.7), (3.4, 4.6)).tolist() == [[3, 5]]
    with pytest.raises(ValueError, match="finite"):
        em.line((0, 0), (math.nan, 1))
    with pytest.raises(ValueError, match="at most"):
        em.line((0, 0), (0, 1e7))


def test_a_fast_stroke_leaves_no_gap():
    mask = EditableMask(np.zeros((3, 256, 256), np.uint8), (5.0, 1.0, 1.0))
    mask.begin_stroke(1, 1, Brush(3.0, (1.0, 1.0)))
    a, b = (20.3, 15.6), (230.1, 215.2)  # a 200-voxel jump between two mouse samples
    mask.stroke_to(*a)
    mask.stroke_to(*b)
    mask.end_stroke()
    yx = np.argwhere(np.ones((256, 256), bool)).astype(float)
    dist = _segment_distance(yx, np.floor(np.array(a) + 0.5), np.floor(np.array(b) + 0.5))
    painted = mask.data[1].reshape(-1) == 1
    assert painted[dist <= 2.0].all()  # every voxel near the path is painted: no gap
    assert not painted[dist > 3.0 + 0.71].any()  # and nothing beyond the brush
    assert not mask.data[[0, 2]].any()


def test_a_fast_one_voxel_stroke_is_a_connected_path():
    mask = EditableMask(np.zeros((1, 256, 256), np.uint8), (5.0, 1.0, 1.0))
    mask.begin_stroke(0, 1, Brush(0.5, (1.0, 1.0)))
    for y, x in [(10, 10), (210, 60), (30, 250)]:  # jumps of 200+ voxels
        mask.stroke_to(y, x)
    mask.end_stroke()
    _, n = ndimage.label(mask.data[0], np.ones((3, 3)))
    assert n == 1 and mask.data.sum() == 201 + 190  # one voxel per step (max |dy|, |dx|)


def test_strokes_clip_far_off_image_samples():
    mask = EditableMask(np.zeros((1, 64, 64), np.uint8), (5.0, 1.0, 1.0))
    mask.begin_stroke(0, 1, Brush(2.0, (1.0, 1.0)))
    mask.stroke_to(-1e9, 32.0)  # mouse dragged far outside: nothing, and no huge line
    assert not mask.data.any()
    mask.stroke_to(1e9, 32.0)  # crosses the whole image
    assert mask.data[0, :, 32].all() and mask.data.sum() == 64 * 5
    mask.end_stroke()


# --- constraint rules


def _perfusion_inputs(shape=(2, 40, 40), sick_side="right") -> EditInputs:
    """A brain (the central square) whose ``sick_side`` hemisphere has low CBF, high Tmax."""
    rng = np.random.default_rng(5)
    brain = np.zeros(shape, bool)
    brain[:, 4:36, 4:36] = True
    cbf = np.where(brain, 50.0, 0.0) + rng.uniform(-1, 1, shape)
    tmax = np.where(brain, 2.0, 0.0)
    sick = np.zeros(shape, bool)
    cols = slice(24, 34) if sick_side == "right" else slice(6, 16)
    sick[:, 10:30, cols] = True
    cbf[sick] = rng.uniform(5, 30, sick.sum())
    tmax[sick] = 12.0
    ct = rng.uniform(-100, 120, shape)
    probability = rng.random(shape)
    ai_mask = (probability > 0.7).astype(np.uint8)
    return EditInputs(ct, cbf, tmax, brain, ai_mask, probability)


def test_each_rule_selects_what_it_says():
    inputs = _perfusion_inputs()
    shape = inputs.ct.shape
    cases = [
        (em.TmaxAbove(6.0), inputs.tmax > 6.0),
        (em.CtRange(0, 80), (inputs.ct >= 0) & (inputs.ct <= 80)),
        (em.InsideBrain(), inputs.brain),
        (em.InsideMask(), inputs.ai_mask == 1),
        (em.ProbabilityAbove(0.4), inputs.probability > 0.4),
    ]
    for rule, expected in cases:
        got = em.allowed([rule], inputs, shape)
        assert got.dtype == bool and np.array_equal(got, expected), rule
        assert 0 < got.sum() < got.size
    both = em.allowed([em.TmaxAbove(6.0), em.ProbabilityAbove(0.4)], inputs, shape)
    assert np.array_equal(both, (inputs.tmax > 6.0) & (inputs.probability > 0.4))
    assert em.allowed([], inputs, shape) is None


@pytest.mark.parametrize("sick_side", ["left", "right"])
@pytest.mark.parametrize("with_tmax", [True, False])
def test_relative_cbf_uses_the_healthy_hemisphere(sick_side, with_tmax):
    inputs = _perfusion_inputs(sick_side=sick_side)
    # no CT (the random one is no head): the midline is fitted on the brain mask
    inputs = EditInputs(cbf=inputs.cbf, brain=inputs.brain, tmax=inputs.tmax if with_tmax else None)
    healthy = inputs.brain.copy()
    healthy[..., 20:] = False  # the square brain's midline: between columns 19 and 20
    if sick_side == "left":
        healthy = inputs.brain & ~healthy
    reference = float(np.mean(inputs.cbf[healthy], dtype=np.float64))
    midline = fit_midline(symmetry_image(brain=inputs.brain), (1.0, 1.0, 1.0))
    assert healthy_reference(inputs.cbf, inputs.brain, midline, inputs.tmax)[0] == pytest.approx(
        reference
    )
    assert 49 < reference < 51
    got = em.allowed([em.RcbfBelow(0.3)], inputs, inputs.cbf.shape)
    assert np.array_equal(got, inputs.brain & (inputs.cbf < 0.3 * reference))
    assert 0 < got.sum() < (inputs.cbf < 30).sum()  # not the zero CBF outside the brain


def test_a_rule_without_its_input_is_a_clear_error():
    inputs = _perfusion_inputs()
    shape = inputs.ct.shape
    for rule, text in [
        (em.TmaxAbove(6), "Tmax map"),
        (em.RcbfBelow(0.3), "brain mask"),
        (em.CtRange(0, 80), "CT map"),
        (em.InsideMask(), "AI mask"),
        (em.ProbabilityAbove(0.5), "AI probabilities"),
    ]:
        missing = EditInputs(cbf=inputs.cbf)
        with pytest.raises(ValueError, match=text):
            em.allowed([rule], missing, shape)
    with pytest.raises(ValueError, match=r"Tmax map is \(2, 40\)"):
        em.allowed(
            [em.InsideBrain()], EditInputs(tmax=inputs.tmax[:, :, 0], brain=inputs.brain), shape
        )
    with pytest.raises(ValueError, match="brain mask is empty"):
        em.allowed([em.RcbfBelow(0.3)], EditInputs(cbf=inputs.cbf, brain=inputs.brain * 0), shape)
    with pytest.raises(TypeError, match="not a constraint rule"):
        em.allowed(["tmax > 6"], inputs, shape)


@pytest.mark.parametrize(
    "make",
    [
        lambda: em.TmaxAbove(-1),
        lambda: em.TmaxAbove(math.nan),
        lambda: em.TmaxAbove(em.MAX_TMAX_S + 1),
        lambda: em.RcbfBelow(0),
        lambda: em.RcbfBelow(1.5),
        lambda: em.CtRange(80, 20),
        lambda: em.CtRange(-1e6, 0),
        lambda: em.CtRange(0, math.inf),
        lambda: em.ProbabilityAbove(1.0),
        lambda: em.ProbabilityAbove("0.5"),
    ],
)
def test_rule_parameters_are_checked(make):
    with pytest.raises(ValueError):
        make()


# --- the editable mask


def _recording(mask: EditableMask) -> list[tuple[Region, np.ndarray]]:
    """Every event's region with the voxels that changed since the previous event."""
    events, previous = [], [mask.data.copy()]

    def on_changed(region: Region) -> None:
        events.append((region, previous[0] != mask.data))
        previous[0] = mask.data.copy()

    mask.changed.connect(on_changed)
    return events


def _random_stroke(mask: EditableMask, rng: np.random.Generator, allowed=None) -> None:
    z = int(rng.integers(mask.shape[0]))
    brush = Brush(float(rng.uniform(0.5, 8)), mask.spacing[1:])
    mask.begin_stroke(z, int(rng.integers(2)), brush, allowed)
    for y, x in rng.uniform(-10, 74, (int(rng.integers(1, 8)), 2)):
        mask.stroke_to(y, x)


def test_events_cover_exactly_what_changed():
    rng = np.random.default_rng(7)
    mask = EditableMask(np.zeros((4, 64, 64), np.uint8), SPACING)
    events = _recording(mask)
    for _ in range(15):
        _random_stroke(mask, rng)
        mask.end_stroke() if rng.random() < 0.7 else mask.abort_stroke()
    mask.apply(np.roll(mask.data, 3, axis=2), "shift")
    mask.undo()
    mask.undo()
    mask.redo()
    assert len(events) > 20
    for region, changed in events:
        assert region == Region.of(changed)  # the tight box of the changed voxels
        assert region.z1 - region.z0 >= 1


def test_stroke_events_are_the_stamped_part_only():
    mask = EditableMask(np.zeros((2, 256, 256), np.uint8), (5.0, 1.0, 1.0))
    events = _recording(mask)
    mask.begin_stroke(0, 1, Brush(3.0, (1.0, 1.0)))
    for x in range(20, 60, 4):
        mask.stroke_to(100.0, float(x))
    mask.end_stroke()
    assert len(events) == 10
    for x, (region, _) in zip(range(20, 60, 4), events, strict=True):
        # the new end of the disc's track (7 voxels wide), not the slice
        assert (region.y0, region.y1, region.x1) == (97, 104, x + 4)
        assert region.shape[2] <= 7


def test_undo_redo_are_bit_exact_after_random_edits():
    rng = np.random.default_rng(11)
    mask = EditableMask((rng.random((5, 64, 64)) < 0.1).astype(np.uint8), SPACING)
    allowed = rng.random(mask.shape) < 0.6
    states = [mask.data.copy()]
    for i in range(40):
        if i % 10 == 9:
            mask.apply(rng.random(mask.shape) < 0.05, "noise")
        else:
            _random_stroke(mask, rng, allowed if i % 3 == 0 else None)
            if mask.end_stroke() is None:
                continue
        states.append(mask.data.copy())
    assert len(states) > 30
    for state in reversed(states[:-1]):
        assert mask.undo() is not None
        assert np.array_equal(mask.data, state)
    assert mask.undo() is None and not mask.can_undo
    for state in states[1:]:
        assert mask.redo() is not None
        assert np.array_equal(mask.data, state)
    assert not mask.can_redo


def test_constraint_limits_paint_and_erase():
    rng = np.random.default_rng(3)
    start = (rng.random((2, 64, 64)) < 0.5).astype(np.uint8)
    allowed = rng.random(start.shape) < 0.5
    for value in (1, 0):
        mask = EditableMask(start.copy(), SPACING)
        mask.begin_stroke(1, value, Brush(20.0, SPACING[1:]), allowed)
        mask.stroke_to(32, 10)
        mask.stroke_to(32, 50)
        mask.end_stroke()
        changed = mask.data != start
        assert changed.any() and not changed[~allowed].any()
        assert (mask.data[changed] == value).all()


def test_abort_restores_exactly_and_leaves_no_undo_item():
    rng = np.random.default_rng(4)
    mask = EditableMask((rng.random((3, 64, 64)) < 0.3).astype(np.uint8), SPACING)
    _random_stroke(mask, rng)
    mask.end_stroke()
    before, items, version = mask.data.copy(), len(mask.history), mask.version
    mask.begin_stroke(1, 1, Brush(6.0, SPACING[1:]))
    for y, x in [(5, 5), (40, 60), (60, 10)]:
        mask.stroke_to(y, x)
    assert not np.array_equal(mask.data, before)
    assert mask.abort_stroke() is not None
    assert np.array_equal(mask.data, before)
    assert len(mask.history) == items and mask.version > version
    mask.undo()  # undoes the stroke before the aborted one
    assert not mask.can_undo


def test_apply_stores_only_the_changed_voxels_and_counts_versions():
    mask = EditableMask(np.zeros((22, 256, 256), np.uint8), SPACING)
    assert not mask.dirty and mask.version == 0
    new = mask.data.copy()
    new[3, 10:14, 20:25] = 1
    assert mask.apply(new, "fill") == Region(3, 4, 10, 14, 20, 25)
    assert mask.history.nbytes < 1000 and mask.history.undo_label == "fill"
    assert mask.dirty and mask.version == 1
    mask.mark_saved()
    assert not mask.dirty
    assert mask.apply(new, "again") is None and mask.version == 1
    mask.undo()
    assert mask.dirty and not mask.data.any() and mask.version == 2
    with pytest.raises(ValueError, match="0/1"):
        mask.apply(new * 3, "bad")
    with pytest.raises(ValueError, match="new mask is"):
        mask.apply(new[0], "bad")


def test_misuse_is_a_clear_error():
    with pytest.raises(ValueError, match="uint8"):
        EditableMask(np.zeros((2, 8, 8), np.float32), SPACING)
    with pytest.raises(ValueError, match="0/1"):
        EditableMask(np.full((2, 8, 8), 2, np.uint8), SPACING)
    with pytest.raises(ValueError, match="spacing"):
        EditableMask(np.zeros((2, 8, 8), np.uint8), (5.0, 0.9))
    mask = EditableMask(np.zeros((2, 8, 8), np.uint8), SPACING, History(max_bytes=4096))
    brush = Brush(2.0, SPACING[1:])
    with pytest.raises(RuntimeError, match="begin_stroke"):
        mask.stroke_to(1, 1)
    with pytest.raises(ValueError, match="slice"):
        mask.begin_stroke(2, 1, brush)
    with pytest.raises(ValueError, match="value"):
        mask.begin_stroke(0, 2, brush)
    with pytest.raises(ValueError, match="brush spacing"):
        mask.begin_stroke(0, 1, Brush(2.0, (1.0, 1.0)))
    with pytest.raises(ValueError, match="allowed"):
        mask.begin_stroke(0, 1, brush, np.ones((8, 8), bool))
    mask.begin_stroke(0, 1, brush)
    for call in (mask.undo, mask.redo, lambda: mask.apply(mask.data, "x")):
        with pytest.raises(RuntimeError, match="during a stroke"):
            call()
    assert not mask.can_undo and mask.end_stroke() is None
