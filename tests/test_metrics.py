"""ISLES metrics against medpy (an independent implementation), plus the empty-mask conventions."""

import math

import numpy as np
import pytest
import torch
from medpy.metric import binary as mb
from scipy import ndimage

from strokelens.core.metrics import METRICS, case_metrics, slice_dice, summarize, volume_ml

ANISO = (5.0, 0.9, 0.9)


def _medpy(pred, truth, spacing):
    """Reference values; ASSD per eq. (8) from medpy's directed ``asd`` (see metrics docstring).

    medpy 0.5 with numpy 2 returns NaN (not its documented 1.0 / 0.0) for 0/0 ratios, so those
    are left out here and the empty-mask conventions are asserted on their own.
    """
    vox_ml = float(np.prod(spacing)) / 1000
    with np.errstate(invalid="ignore"):
        ratios = {
            "dsc": mb.dc(pred, truth),
            "precision": mb.precision(pred, truth),
            "recall": mb.recall(pred, truth),
        }
    ref = {k: v for k, v in ratios.items() if not math.isnan(v)}
    ref["avd_ml"] = abs(int(pred.sum()) - int(truth.sum())) * vox_ml
    if pred.any() and truth.any():
        ref["hd"] = mb.hd(pred, truth, spacing)
        ref["assd"] = 0.5 * (mb.asd(pred, truth, spacing) + mb.asd(truth, pred, spacing))
    return ref


def _assert_matches_medpy(pred, truth, spacing):
    got = case_metrics(pred, truth, spacing)
    assert tuple(got) == METRICS
    for key, want in _medpy(pred, truth, spacing).items():
        assert got[key] == pytest.approx(want, rel=1e-9, abs=1e-12), key
    return got


def _blobs(rng, shape, fraction, sigma=(0.7, 3.0, 3.0)):
    """Smooth random blobs covering about ``fraction`` of the volume."""
    field = ndimage.gaussian_filter(rng.standard_normal(shape), sigma)
    return field > np.quantile(field, 1 - fraction)


@pytest.mark.parametrize("seed", range(4))
@pytest.mark.parametrize("spacing", [ANISO, (1.0, 1.0, 1.0), (2.0, 0.7, 1.3)])
def test_random_blobs_match_medpy(seed, spacing):
    rng = np.random.default_rng(seed)
    truth = _blobs(rng, (8, 40, 48), 0.05)
    pred = ndimage.binary_dilation(truth, iterations=int(seed % 2)) ^ _blobs(rng, truth.shape, 0.02)
    got = _assert_matches_medpy(pred, truth, spacing)
    assert 0 < got["dsc"] < 1 and got["hd"] > 0


def test_anisotropic_spacing_is_applied_per_axis():
    truth = np.zeros((4, 10, 10), bool)
    truth[1, 5, 5] = True
    for offset, mm in (((1, 0, 0), 5.0), ((0, 1, 0), 0.9), ((0, 0, 2), 1.8)):
        pred = np.roll(truth, offset, axis=(0, 1, 2))
        got = _assert_matches_medpy(pred, truth, ANISO)
        assert got["hd"] == pytest.approx(mm) and got["assd"] == pytest.approx(mm)


def test_single_voxels():
    truth = np.zeros((3, 8, 8), bool)
    pred = truth.copy()
    truth[0, 0, 0] = True
    pred[2, 3, 4] = True
    got = _assert_matches_medpy(pred, truth, ANISO)
    assert got["hd"] == pytest.approx(math.sqrt(10**2 + 2.7**2 + 3.6**2))
    same = case_metrics(truth, truth, ANISO)
    assert same["dsc"] == 1.0 and same["hd"] == 0.0 and same["assd"] == 0.0


def test_disjoint_masks_far_apart():
    truth = np.zeros((6, 64, 64), bool)
    pred = truth.copy()
    truth[0:2, 1:6, 1:5] = True
    pred[4:6, 50:63, 40:60] = True
    got = _assert_matches_medpy(pred, truth, ANISO)
    assert got["dsc"] == 0 and got["precision"] == 0 and got["recall"] == 0


def test_masks_touching_image_borders():
    rng = np.random.default_rng(7)
    truth = np.ones((3, 20, 24), bool)  # every voxel is on the image edge or next to it
    pred = truth & ~_blobs(rng, truth.shape, 0.3)
    _assert_matches_medpy(pred, truth, ANISO)
    edge = np.zeros((5, 30, 30), bool)
    edge[:, :, :4] = True
    _assert_matches_medpy(edge, np.flip(edge, axis=2).copy(), ANISO)
    _assert_matches_medpy(edge, edge[::-1, ::-1].copy(), ANISO)


def test_two_slice_volumes():
    rng = np.random.default_rng(3)
    truth = _blobs(rng, (2, 48, 48), 0.08, sigma=(0.3, 3, 3))
    pred = _blobs(rng, (2, 48, 48), 0.08, sigma=(0.3, 3, 3)) | truth[:, ::-1]
    _assert_matches_medpy(pred, truth, ANISO)


def test_empty_mask_conventions():
    empty = np.zeros((2, 8, 8), bool)
    lesion = empty.copy()
    lesion[1, 2:4, 2:5] = True
    vol = 6 * 5 * 0.9 * 0.9 / 1000

    both = case_metrics(empty, empty, ANISO)
    assert both["dsc"] == 1.0 and both["avd_ml"] == 0.0
    assert both["precision"] == 0.0 and both["recall"] == 0.0
    assert math.isnan(both["hd"]) and math.isnan(both["assd"])

    missed = case_metrics(empty, lesion, ANISO)
    assert missed["dsc"] == 0.0 and missed["precision"] == 0.0 and missed["recall"] == 0.0
    assert missed["avd_ml"] == pytest.approx(vol)
    assert math.isnan(missed["hd"]) and math.isnan(missed["assd"])

    false_alarm = case_metrics(lesion, empty, ANISO)
    assert false_alarm["dsc"] == 0.0 and false_alarm["recall"] == 0.0
    assert math.isnan(false_alarm["hd"])
    for pred, truth in ((empty, empty), (empty, lesion), (lesion, empty)):
        _assert_matches_medpy(pred, truth, ANISO)  # where medpy defines them


def test_symmetry_and_integer_masks():
    rng = np.random.default_rng(11)
    a, b = _blobs(rng, (5, 32, 32), 0.1), _blobs(rng, (5, 32, 32), 0.1)
    ab, ba = case_metrics(a, b, ANISO), case_metrics(b.astype(np.uint8), a.astype(np.int64), ANISO)
    for key in ("dsc", "hd", "assd", "avd_ml"):
        assert ab[key] == pytest.approx(ba[key])
    assert ab["precision"] == pytest.approx(ba["recall"])


def test_bad_input_is_named():
    m = np.zeros((2, 4, 4), bool)
    with pytest.raises(ValueError, match="shape"):
        case_metrics(m, np.zeros((2, 4, 5), bool), ANISO)
    with pytest.raises(ValueError, match="3D"):
        case_metrics(m[0], m[0], ANISO)
    for spacing in ((0.0, 1.0, 1.0), (-5.0, 0.9, 0.9), (1.0, 1.0), (1.0, float("nan"), 1.0)):
        with pytest.raises(ValueError, match="spacing"):
            case_metrics(m, m, spacing)
    with pytest.raises(ValueError, match="pred"):
        case_metrics(np.full((2, 4, 4), 0.7), m, ANISO)  # probabilities, not a mask
    with pytest.raises(ValueError, match="spacing"):
        volume_ml(m, (0.0, 1.0, 1.0))


def test_volume_ml():
    m = np.zeros((3, 10, 10), np.uint8)
    m[0, :5, :4] = 1
    m[2, 9, 9] = 1
    assert volume_ml(m, ANISO) == pytest.approx(21 * 5 * 0.81 / 1000)


def test_slice_dice_numpy_and_torch():
    pred = np.zeros((3, 4, 4), np.uint8)
    truth = np.zeros((3, 4, 4), np.uint8)
    pred[0, :2] = 1  # 8 voxels
    truth[0, :1] = 1  # 4 voxels, all inside pred -> 2*4/12
    truth[1, 0, 0] = 1  # missed entirely; slice 2 empty in both
    res = slice_dice(pred, truth)
    np.testing.assert_allclose(res.per_slice, [8 / 12, 0.0, 1.0])
    assert (res.intersection, res.total) == (4, 13)
    assert res.dice == pytest.approx(8 / 13)
    tres = slice_dice(torch.from_numpy(pred).bool()[:, None], torch.from_numpy(truth)[:, None])
    np.testing.assert_allclose(tres.per_slice, res.per_slice)
    assert tres.dice == pytest.approx(res.dice) and tres.total == res.total
    empty = slice_dice(np.zeros((2, 3, 3)), np.zeros((2, 3, 3)))
    assert empty.dice == 1.0 and list(empty.per_slice) == [1.0, 1.0]
    with pytest.raises(ValueError, match="shape"):
        slice_dice(pred, truth[:2])


def test_slice_dice_counts_accumulate_to_the_global_dice():
    rng = np.random.default_rng(5)
    pred, truth = rng.random((10, 16, 16)) < 0.3, rng.random((10, 16, 16)) < 0.3
    whole = slice_dice(pred, truth)
    parts = [slice_dice(pred[i : i + 4], truth[i : i + 4]) for i in (0, 4, 8)]
    inter, total = sum(p.intersection for p in parts), sum(p.total for p in parts)
    assert 2 * inter / total == pytest.approx(whole.dice)
    assert whole.dice == pytest.approx(mb.dc(pred, truth))
    for i in range(10):
        assert whole.per_slice[i] == pytest.approx(mb.dc(pred[i], truth[i]))


def test_summarize_ignores_nan_and_counts():
    rows = [
        {"dsc": 0.5, "hd": 10.0, "case": "a"},
        {"dsc": 0.7, "hd": math.nan, "case": "b"},
        {"dsc": 0.9, "hd": 20.0, "case": "c"},
    ]
    s = summarize(rows, keys=("dsc", "hd"))
    assert s["dsc"]["mean"] == pytest.approx(0.7) and s["dsc"]["n"] == 3
    assert s["dsc"]["sd"] == pytest.approx(0.2)  # sample SD
    assert s["hd"] == pytest.approx({"mean": 15.0, "sd": math.sqrt(50), "n": 2})
    one = summarize([{"hd": 3.0}, {"hd": math.nan}], keys=("hd",))["hd"]
    assert one["mean"] == 3.0 and one["n"] == 1 and math.isnan(one["sd"])
    with pytest.raises(ValueError, match="'assd'"):
        summarize(rows, keys=("assd",))


def test_summarize_case_metrics_rows():
    rng = np.random.default_rng(9)
    truth = _blobs(rng, (3, 24, 24), 0.1)
    rows = [case_metrics(truth, truth, ANISO), case_metrics(np.zeros_like(truth), truth, ANISO)]
    s = summarize(rows)
    assert set(s) == set(METRICS)
    assert s["dsc"]["mean"] == pytest.approx(0.5) and s["hd"]["n"] == 1
