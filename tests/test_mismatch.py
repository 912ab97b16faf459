"""Core / Tmax > 6 s mismatch volumes and the target-mismatch rule (REFERENCE.md §5)."""

import math

import numpy as np
import pytest

from strokelens.core import mismatch as mismatch_module
from strokelens.core.mismatch import (
    hypoperfusion_mask,
    mismatch,
    mismatch_from_volumes,
    shown_value,
)
from strokelens.core.perfusion import analysis

SPACING = (5.0, 1.0, 2.0)  # 10 mm^3 per voxel = 0.01 mL


def test_hypoperfusion_needs_tmax_over_6_and_brain_ct():
    tmax = np.array([[[5.9, 6.0, 6.1, 9.0, 9.0, 9.0]]], np.float32)
    ct = np.array([[[30, 30, 30, 30, 5, 300]]], np.float32)  # CSF and bone last
    assert hypoperfusion_mask(tmax).tolist() == [[[False, False, True, True, True, True]]]
    assert hypoperfusion_mask(tmax, ct).tolist() == [[[False, False, True, True, False, False]]]
    with pytest.raises(ValueError, match="shape"):
        hypoperfusion_mask(tmax, ct[..., :3])


def test_volumes_and_ratio_from_masks():
    tmax = np.zeros((2, 40, 50), np.float32)
    tmax[:, :30, :] = 8.0  # 2*30*50 = 3000 voxels = 30 mL
    ct = np.full(tmax.shape, 35.0, np.float32)
    core = np.zeros(tmax.shape, np.uint8)
    core[0, :10, :50] = 1  # 500 voxels = 5 mL
    m = mismatch(core, tmax, SPACING, ct)
    assert m.core_ml == pytest.approx(5.0)
    assert m.hypoperfused_ml == pytest.approx(30.0)
    assert m.mismatch_ml == pytest.approx(25.0)
    assert m.ratio == pytest.approx(6.0)
    assert m.target


@pytest.mark.parametrize(
    ("core", "hypo", "target"),
    [
        (10.0, 18.0, False),  # ratio 1.8 but mismatch 8 mL < 15
        (20.0, 36.0, True),  # ratio 1.8, mismatch 16 mL: both limits are inclusive
        (20.0, 35.0, False),  # ratio 1.75 < 1.8
        (70.0, 200.0, False),  # core must be below 70 mL
        (69.9, 200.0, True),
        (0.0, 15.0, True),  # empty core: infinite ratio
        (0.0, 0.0, False),
    ],
)
def test_target_mismatch_rule(core, hypo, target):
    assert mismatch_from_volumes(core, hypo).target is target


def test_empty_core_ratio_and_negative_mismatch():
    assert math.isinf(mismatch_from_volumes(0.0, 5.0).ratio)
    assert math.isnan(mismatch_from_volumes(0.0, 0.0).ratio)
    larger_core = mismatch_from_volumes(40.0, 30.0)
    assert larger_core.mismatch_ml == 0.0 and larger_core.ratio == pytest.approx(0.75)
    no_core = mismatch(None, np.full((1, 2, 2), 7.0), SPACING)
    assert no_core.core_ml == 0.0 and no_core.hypoperfused_ml == pytest.approx(0.04)


def test_brain_window_is_the_perfusion_analysis_one():
    assert mismatch_module.BRAIN_HU == analysis.BRAIN_HU


@pytest.mark.parametrize(
    ("value", "limit", "text"),
    [
        (1.799, 1.8, "1.799"),  # one decimal would read 1.8, i.e. at the limit it fails
        (1.79, 1.8, "1.79"),
        (14.96, 15.0, "14.96"),
        (69.97, 70.0, "69.97"),
        (69.94, 70.0, "69.9"),  # one decimal is below the limit already
        (1.7999, 1.8, "1.799"),  # past MAX_DECIMALS: truncated, never rounded onto the limit
        (math.nextafter(1.8, 0.0), 1.8, "1.799"),
        (1.8, 1.8, "1.8"),
        (70.04, 70.0, "70.0"),  # at or above a limit, rounding cannot cross it
        (12.345, None, "12.3"),
        (math.inf, 1.8, "∞"),
        (math.nan, 1.8, "–"),
    ],
)
def test_shown_value_reads_on_the_decided_side_of_the_limit(value, limit, text):
    assert shown_value(value, limit) == text
    if limit is not None and math.isfinite(value):
        assert (float(text) < limit) == (value < limit)
