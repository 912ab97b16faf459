"""Connected components against direct scipy.ndimage references on random masks."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from strokelens.core.editing import components as cc

SPACING = (5.0, 0.9, 0.9)


def random_mask(seed: int, shape=(6, 48, 48), p: float = 0.45) -> np.ndarray:
    """Blobs of all sizes with holes (smoothed noise thresholded) and single-voxel specks."""
    rng = np.random.default_rng(seed)
    noise = ndimage.gaussian_filter(rng.standard_normal(shape), (0.5, 1.5, 1.5))
    return ((noise > np.quantile(noise, 1 - p)) | (rng.random(shape) < 0.01)).astype(np.uint8)


def test_label_per_slice_keeps_components_in_their_slice():
    mask = random_mask(0)
    labels, n = cc.label(mask, per_slice=True, connectivity=2)
    assert n == sum(ndimage.label(m, np.ones((3, 3)))[1] for m in mask)
    for k in range(1, n + 1):
        assert np.unique(np.nonzero(labels == k)[0]).size == 1
    labels3, n3 = cc.label(mask, connectivity=3)
    assert n3 == ndimage.label(mask, np.ones((3, 3, 3)))[1] < n
    assert np.array_equal(labels3 > 0, mask > 0)


@pytest.mark.parametrize("per_slice, connectivity", [(False, 1), (False, 3), (True, 1), (True, 2)])
def test_remove_islands_matches_a_component_by_component_reference(per_slice, connectivity):
    voxel_ml = np.prod(SPACING) / 1000
    for seed in range(3):
        mask = random_mask(seed, p=0.25)
        min_ml = 12 * voxel_ml
        if per_slice:
            structure = ndimage.generate_binary_structure(2, connectivity)
            planes = []
            for plane in mask:
                labels, n = ndimage.label(plane, structure)
                sizes = ndimage.sum_labels(np.ones_like(plane), labels, range(1, n + 1))
                big = [k + 1 for k, s in enumerate(sizes) if s * voxel_ml >= min_ml]
                planes.append(np.isin(labels, big))
            expected = np.stack(planes)
        else:
            structure = ndimage.generate_binary_structure(3, connectivity)
            labels, n = ndimage.label(mask, structure)
            sizes = ndimage.sum_labels(np.ones_like(mask), labels, range(1, n + 1))
            expected = np.isin(
                labels, [k + 1 for k, s in enumerate(sizes) if s * voxel_ml >= min_ml]
            )
        before = mask.copy()
        out = cc.remove_islands(mask, min_ml, SPACING, per_slice, connectivity)
        assert out.dtype == np.uint8 and np.array_equal(mask, before)
        assert np.array_equal(out, expected)
        assert 0 < out.sum() < mask.sum()  # the test removes some and keeps some


def test_remove_islands_checks_its_inputs():
    mask = random_mask(0)
    with pytest.raises(ValueError, match="min_ml"):
        cc.remove_islands(mask, -1, SPACING)
    with pytest.raises(ValueError, match="spacing"):
        cc.remove_islands(mask, 1, (0, 1, 1))
    with pytest.raises(ValueError, match="connectivity"):
        cc.remove_islands(mask, 1, SPACING, per_slice=True, connectivity=3)
    with pytest.raises(ValueError, match="0/1"):
        cc.remove_islands(mask * 2, 1, SPACING)
    assert np.array_equal(cc.remove_islands(mask, 0, SPACING), mask)


def _holes_reference(mask: np.ndarray, rank: int) -> np.ndarray:
    """Background components (face-connected) touching no border of the array."""
    labels, _ = ndimage.label(mask == 0, ndimage.generate_binary_structure(rank, 1))
    border = np.zeros(mask.shape, bool)
    for axis in range(rank):
        index = [slice(None)] * rank
        for end in (0, -1):
            index[axis] = end
            border[tuple(index)] = True
    outside = np.unique(labels[border])
    return (mask > 0) | ((labels > 0) & ~np.isin(labels, outside))


@pytest.mark.parametrize("seed", range(3))
def test_fill_holes_matches_a_border_connected_background_reference(seed):
    mask = random_mask(seed, p=0.6)
    per_slice = cc.fill_holes(mask)
    assert np.array_equal(per_slice, np.stack([_holes_reference(m, 2) for m in mask]))
    assert per_slice.sum() > mask.sum()  # there were holes
    whole = cc.fill_holes(mask, per_slice=False)
    assert np.array_equal(whole, _holes_reference(mask, 3))


def test_component_at_a_voxel():
    mask = random_mask(4)
    labels, _ = ndimage.label(mask)
    seed = tuple(int(v) for v in np.argwhere(mask)[7])
    assert np.array_equal(cc.component_at(mask, seed), labels == labels[seed])
    plane_labels, _ = ndimage.label(mask[seed[0]])
    flat = cc.component_at(mask, seed, per_slice=True)
    assert not flat[np.arange(mask.shape[0]) != seed[0]].any()
    assert np.array_equal(flat[seed[0]], plane_labels == plane_labels[seed[1:]])
    background = tuple(int(v) for v in np.argwhere(mask == 0)[0])
    assert cc.component_at(mask, background) is None
    for bad in [(0, 0), (0, 0, 48), (-1, 0, 0), (0.5, 0, 0)]:
        with pytest.raises(ValueError, match="seed"):
            cc.component_at(mask, bad)


def test_flood_fill_stays_inside_the_constraint():
    mask = np.zeros((3, 20, 20), np.uint8)
    allowed = np.zeros(mask.shape, bool)
    allowed[:, 2:8, 2:8] = True  # two separate allowed squares on every slice
    allowed[:, 12:18, 12:18] = True
    mask[1, 4, 4] = 1  # already painted: not the seed's value, stays as it is

    out = cc.flood_fill(mask, (1, 3, 3), allowed)
    expected = mask.copy()
    expected[1, 2:8, 2:8] = 1
    assert np.array_equal(out, expected)  # one square on one slice, the other square untouched

    everywhere = cc.flood_fill(mask, (1, 3, 3), allowed, per_slice=False)
    expected3 = mask.copy()
    expected3[:, 2:8, 2:8] = 1
    assert np.array_equal(everywhere, expected3)

    assert np.array_equal(cc.flood_fill(mask, (1, 10, 10), allowed), mask)  # seed not allowed
    unconstrained = cc.flood_fill(mask, (1, 10, 10), None)
    assert unconstrained[1].sum() == 400 and not unconstrained[[0, 2]].any()

    erased = cc.flood_fill(out, (1, 5, 5), None, value=0)
    assert not erased[1].any()
    with pytest.raises(ValueError, match="allowed"):
        cc.flood_fill(mask, (1, 3, 3), allowed[0])


def test_flood_fill_does_not_leak_through_a_diagonal_outline():
    mask = np.zeros((1, 9, 9), np.uint8)
    for i in range(9):  # an 8-connected diagonal line splits the slice for 4-connected fills
        mask[0, i, 8 - i] = 1
    out = cc.flood_fill(mask, (0, 0, 0), None)
    assert out[0, 0, 0] == 1 and out[0, 8, 8] == 0
    assert out.sum() == mask.sum() + 36
