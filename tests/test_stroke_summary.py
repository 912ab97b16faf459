"""The stroke summary on the phantom, where the truth is known: Tmax volumes, HIR, the midline
on rotated heads, the threshold core, and the verdict rules (REFERENCE.md §5, §8)."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
from scipy import ndimage

from strokelens.core.case import Case
from strokelens.core.metrics import volume_ml
from strokelens.core.midline import fit_midline, healthy_reference, symmetry_image
from strokelens.core.mismatch import (
    TMAX_THRESHOLDS_S,
    brain_region,
    hir,
    hypoperfusion_volumes,
    threshold_core,
)
from strokelens.core.phantom import simulate_case
from strokelens.core.phantom.anatomy import Pose, _rotation, build_anatomy, mni_coordinates
from strokelens.core.prediction import Prediction
from strokelens.core.stroke_summary import CoreKind, CoreOrigin, summarize_stroke


@pytest.fixture(scope="module")
def scan():
    return simulate_case(5, n_slices=4)


def as_case(s) -> Case:
    m = s.maps
    channels = {"CT": s.ct.astype(np.float32), "CBF": m.cbf, "CBV": m.cbv, "MTT": m.mtt}
    channels["Tmax"] = m.tmax
    return Case("case_5", "P0005", "training", channels, s.slab.affine, s.slab.spacing)


def dice(a, b) -> float:
    return 2 * float((a & b).sum()) / float(a.sum() + b.sum())


def test_volumes_match_the_phantoms_regions(scan):
    truth, spacing = scan.truth, scan.slab.spacing
    # the simulated delay is the Tmax a perfect analysis finds: exact volumes, voxel for voxel
    exact = hypoperfusion_volumes(truth.delay, spacing)
    for t in TMAX_THRESHOLDS_S:
        assert exact[t] == pytest.approx(volume_ml(truth.delay > t, spacing))
    assert exact[6.0] == pytest.approx(volume_ml(truth.hypoperfused, spacing))
    assert list(exact) == [4.0, 6.0, 8.0, 10.0]
    assert exact[4.0] > exact[6.0] > exact[8.0] > exact[10.0] > 0
    # the computed maps (deconvolution, smoothing, the CT's brain window) find the same region
    found = hypoperfusion_volumes(scan.maps.tmax, spacing, scan.ct)
    assert found[6.0] == pytest.approx(exact[6.0], rel=0.2)
    hypo = (scan.maps.tmax > 6) & (scan.ct > 15) & (scan.ct < 80)
    assert dice(hypo, truth.hypoperfused) > 0.7


def test_hir_is_the_10_over_6_ratio_and_undefined_without_hypoperfusion(scan):
    volumes = hypoperfusion_volumes(scan.truth.delay, scan.slab.spacing)
    assert hir(volumes) == pytest.approx(volumes[10.0] / volumes[6.0])
    assert 0 < hir(volumes) < 1
    none = hypoperfusion_volumes(np.zeros((2, 8, 8)), (5.0, 1.0, 1.0))
    assert none[6.0] == 0 and hir(none) is None


def _true_side(mx, brain):
    return (mx > 0) & brain


@pytest.mark.parametrize("degrees", [0, 12, -20])
@pytest.mark.parametrize("source", ["ct", "brain"])
def test_midline_follows_rotated_heads(scan, degrees, source):
    """The phantom's MNI x = 0 is the true mid-sagittal plane; heads turned in-plane by
    ``degrees`` (plus the phantom's own yaw) must be split there, not at the image centre."""
    spacing = scan.slab.spacing
    mx = mni_coordinates(scan.patient.pose, scan.slab)[0]
    ct, brain = scan.ct.astype(np.float32), scan.maps.brain_mask
    if degrees:

        def rotate(a, cval):
            return ndimage.rotate(a, degrees, axes=(2, 1), reshape=False, order=1, cval=cval)

        ct, mx = rotate(ct, -1000.0), rotate(mx, 0.0)
        brain = rotate(brain.astype(np.float32), 0.0) > 0.5
    image = symmetry_image(ct if source == "ct" else None, brain)
    midline = fit_midline(image, spacing)
    d = midline.distance_mm(ct.shape)
    # the sign convention is the fit's own: compare the split, either way round
    same = ((d >= 0) == (mx > 0))[brain].mean()
    agree = max(same, 1 - same)
    far = brain & (np.abs(mx) > 3.0)
    far_agree = ((d >= 0) == (mx > 0))[far].mean()
    assert max(far_agree, 1 - far_agree) > 0.999
    assert agree > 0.985
    on_plane = brain & (np.abs(mx) < 0.5)
    assert np.median(np.abs(d[on_plane])) < 1.5  # mm, pixels are ~0.9 mm
    assert midline.symmetry > 0.95
    # the image centre column would be wrong by the head's offset and turn
    gy, gx = np.gradient(mx[0], *spacing[1:])
    true_angle = math.degrees(math.atan2(-np.median(gy), np.median(gx)))
    if abs(true_angle) > 90:
        true_angle -= math.copysign(180, true_angle)
    assert midline.angle_deg == pytest.approx(true_angle, abs=1.5)


def test_threshold_core_is_the_phantoms_core_definition(scan):
    """On relative CBF itself (CBF = 50 x the phantom's rCBF, one tissue), rCBF < 30 % of the
    healthy mean is the phantom's core, voxel for voxel up to the healthy side's own mean."""
    truth = scan.truth
    parenchyma = truth.cbf > 0
    cbf = np.where(parenchyma, 50.0 * truth.rcbf, 0.0).astype(np.float32)
    core = threshold_core(cbf, parenchyma, truth.delay, scan.ct, spacing=scan.slab.spacing)
    assert core.reference_cbf == pytest.approx(50.0, rel=0.03)  # healthy rCBF is ~1
    assert dice(core.mask, truth.core) > 0.98
    # the healthy side is the one without the lesion
    assert not (core.healthy & truth.core).any()


def test_threshold_core_on_the_computed_maps(scan):
    """The maps mix grey and white matter, which a hemisphere mean cannot tell apart (RAPID's
    rule): the core sits in the lesion, on the sick side, inside the hypoperfused region."""
    case = as_case(scan)
    brain = brain_region(case.channels, case.channels["CT"])
    core = threshold_core(
        case.channels["CBF"], brain, case.channels["Tmax"], case.channels["CT"], 0.3, case.spacing
    )
    n = core.mask.sum()
    # measured: 182 of 1104 voxels (16 %) on the healthy side, low-CBF white matter and noise
    assert n > 0 and (core.mask & core.healthy).sum() < 0.25 * n
    truth = scan.truth
    assert (core.mask & truth.hypoperfused).sum() > 0.6 * n
    assert (core.mask & truth.core).any()
    # the reference is the healthy hemisphere's mean of the map, not the image half's
    reference, healthy = healthy_reference(case.channels["CBF"], brain, core.midline, None)
    assert reference == pytest.approx(float(case.channels["CBF"][healthy].mean()), rel=1e-6)


def _prediction(case: Case, volumes: list[int], done=None) -> Prediction:
    """Members whose masks are the first ``n`` brain voxels of the lesion side, in order."""
    p = Prediction.empty(
        case.key,
        case.shape,
        case.spacing,
        [f"m{i}" for i in range(len(volumes))],
        ["focal"] * len(volumes),
    )
    members = np.zeros((len(volumes), *case.shape), np.float32)
    flat = np.flatnonzero(case.channels["Tmax"] > 6)
    for i, n in enumerate(volumes):
        members[i].flat[flat[:n]] = 0.9
    zs = np.arange(case.shape[0]) if done is None else np.asarray(done)
    p.update(zs, members[:, zs])
    return p


def test_summary_ai_core_range_and_verdict(scan):
    case = as_case(scan)
    voxel_ml = volume_ml(np.ones((1, 1, 1)), case.spacing)
    prediction = _prediction(case, [100, 200, 300])
    origin = CoreOrigin(CoreKind.ENSEMBLE, "demo", "0123456789abcdef", 3)
    s = summarize_stroke(case, prediction, None, origin)
    assert s.ai_core_ml == pytest.approx(200 * voxel_ml)  # the mean's mask: 2 of 3 members
    assert s.member_range_ml == pytest.approx((100 * voxel_ml, 300 * voxel_ml))
    assert s.mismatch.core_ml == s.ai_core_ml and s.ai_core_complete
    assert s.verdict is s.mismatch.target and all(c.passed is not None for c in s.criteria)
    assert s.hypoperfusion_ml[6.0] == s.mismatch.hypoperfused_ml
    assert s.threshold_core_ml > 0 and s.healthy_side == "left"  # the lesion is on the right
    assert scan.patient.lesion.side == "right"
    # a corrected mask is the core; the members still give the range
    corrected = scan.truth.core.astype(np.uint8)
    fixed = CoreOrigin(
        CoreKind.APPROVED,
        corrected_by="ann",
        corrected_at="t1",
        approved_by="bob",
        approved_at="t2",
    )
    c = summarize_stroke(case, prediction, corrected, fixed)
    assert c.ai_core_ml == pytest.approx(volume_ml(corrected, case.spacing))
    assert c.member_range_ml == s.member_range_ml
    assert "corrected by ann at t1, approved by bob at t2" in c.origin.words


def test_no_verdict_without_a_complete_core(scan):
    case = as_case(scan)
    origin = CoreOrigin(CoreKind.ENSEMBLE, "demo", "0123456789abcdef", 3)
    partial = summarize_stroke(case, _prediction(case, [10, 10, 10], done=[0]), None, origin)
    assert partial.verdict is None and not partial.ai_core_complete
    assert partial.slices_done == (1, case.shape[0]) and partial.member_range_ml is None
    assert all(c.passed is None for c in partial.criteria)
    none = summarize_stroke(case, None, None, CoreOrigin(CoreKind.NONE))
    assert none.verdict is None and none.ai_core_ml is None and none.mismatch is None
    assert none.verdict_words == "no verdict: no core"
    assert none.threshold_core_ml is not None  # the threshold core needs no AI
    with pytest.raises(ValueError, match="origin"):
        summarize_stroke(case, None, None, origin)
    with pytest.raises(ValueError, match="corrected mask"):
        summarize_stroke(case, None, np.zeros((1, 2, 2)), CoreOrigin(CoreKind.CORRECTED))


def test_summary_row_holds_the_numbers(scan):
    case = as_case(scan)
    s = summarize_stroke(case, None, None, CoreOrigin(CoreKind.NONE))
    row = s.row()
    assert row["tmax_gt_6s_ml"] == s.hypoperfusion_ml[6.0] and row["hir"] == s.hir
    assert row["threshold_core_ml"] == s.threshold_core_ml and row["ai_core_ml"] is None
    assert row["verdict"] == "no verdict: no core" and row["core_source"] == "no core"


@pytest.mark.parametrize(
    ("yaw", "roll", "far_agreement", "median_mm"),
    # measured: 1.0 / 0.24-0.29 mm and 0.9987 / 0.58-1.94 mm (the fit finds each slice's line
    # of best in-plane symmetry; a rolled head is cut obliquely, so that line lags the plane's
    # intersection by ~0.5 mm per slice at 4 degrees)
    [(15.0, 0.0, 0.999, 1.0), (-18.0, 4.0, 0.995, 2.5)],
)
def test_midline_of_heads_scanned_turned_and_tilted(scan, yaw, roll, far_agreement, median_mm):
    """Heads placed turned (yaw) and tilted (roll) in the scanner by the phantom itself, off the
    field of view's centre: the plane found is the template's x = 0 on every slice."""
    patient, slab = scan.patient, replace(scan.slab, n_slices=8)
    scale = np.linalg.norm(patient.pose.matrix, axis=0)
    matrix = _rotation(math.radians(5.0), math.radians(roll), math.radians(yaw)) @ np.diag(scale)
    pose = Pose(matrix, patient.pose.shift + np.array([12.0, -6.0, 0.0]))
    anatomy = build_anatomy(pose, slab, patient.tissue)
    brain = (anatomy.gm + anatomy.wm) >= 0.5
    midline = fit_midline(symmetry_image(anatomy.baseline, brain), slab.spacing)
    assert midline.angle_deg == pytest.approx(yaw, abs=1.0)
    mx = mni_coordinates(pose, slab)[0]
    d = midline.distance_mm(brain.shape)
    far = brain & (np.abs(mx) > 3.0)
    same = ((d >= 0) == (mx > 0))[far].mean()
    assert max(same, 1 - same) > far_agreement
    on_plane = brain & (np.abs(mx) < 0.5)
    for z in range(slab.n_slices):
        if on_plane[z].sum() > 20:
            assert np.median(np.abs(d[z][on_plane[z]])) < median_mm, z
