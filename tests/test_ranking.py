"""Doubt scores (core.ranking) on synthetic predictions whose answers are worked out by hand."""

import math

import numpy as np
import pytest

from strokelens.core import ranking
from strokelens.core.prediction import Prediction


def prediction(members, spacing=(5.0, 1.0, 1.0), losses=None, min_component_ml=0.0):
    """A complete prediction of member probabilities ``(M, z, y, x)``."""
    members = np.asarray(members, np.float32)
    losses = losses or ["focal"] * len(members)
    p = Prediction.empty(
        "case_1",
        members.shape[1:],
        spacing,
        [f"m{i}" for i in range(len(members))],
        losses,
        min_component_ml,
    )
    p.update(range(members.shape[1]), members)
    return p


def test_uncertainty_is_the_mean_member_sd_over_the_lesion_and_a_3_mm_disc_around_it():
    a, b = np.zeros((2, 3, 20, 20), np.float32)
    a[1, 10, 10] = 1.0  # one member sees one voxel: member sd 0.5 there, 0 in the rest of the band
    b[:, 0:3, 0:3] = 0.4  # far away and below 0.5 (no member sees lesion): sd 0.2, outside the band
    p = prediction([a, b])
    # lattice points with dy^2 + dx^2 <= 3^2 (1 mm pixels): 29; 5 mm slices are out of reach
    assert ranking.lesion_band(p).sum() == 29
    assert ranking.band_uncertainty(p) == pytest.approx(0.5 / 29)
    # a 5 mm band reaches the slices above and below (the voxel straight on), and 81 in-plane
    band = ranking.lesion_band(p, 5.0)
    assert band.sum() == 81 + 2 and band[0, 10, 10] and band[2, 10, 10]


def test_uncertainty_is_zero_where_all_members_agree_on_the_lesion():
    a = np.zeros((1, 12, 12), np.float32)
    a[0, 4:8, 4:8] = 0.9
    assert ranking.band_uncertainty(prediction([a, a, a])) == pytest.approx(0.0, abs=1e-6)
    assert ranking.band_uncertainty(prediction([a, a, a * 0])) > 0.05


def test_disagreement_is_the_focal_only_plus_ce_only_volume():
    focal, ce = np.zeros((2, 2, 10, 10), np.float32)
    focal[:, 0:4, 0:5] = 0.8  # 40 voxels
    ce[:, 2:6, 0:5] = 0.8  # 40 voxels, 20 of them shared
    p = prediction([focal, focal, ce, ce], (5.0, 0.5, 0.5), ["focal", "focal", "ce", "ce"])
    assert ranking.focal_ce_disagreement_ml(p) == pytest.approx(40 * 1.25 / 1000)
    assert ranking.focal_ce_disagreement_fraction(p) == pytest.approx(40 / 60)  # of the union
    same = prediction([focal, focal, focal, focal], losses=["focal", "focal", "ce", "ce"])
    assert ranking.focal_ce_disagreement_ml(same) == 0.0
    assert ranking.focal_ce_disagreement_fraction(same) == 0.0
    one_sided = prediction([focal, focal, ce * 0, ce * 0], losses=["focal", "focal", "ce", "ce"])
    assert ranking.focal_ce_disagreement_fraction(one_sided) == 1.0
    for strategy in (ranking.focal_ce_disagreement_ml, ranking.focal_ce_disagreement_fraction):
        with pytest.raises(ValueError, match="focal and CE"):
            strategy(prediction([focal, ce]))  # focal members only


def test_volume_spread_is_the_sd_of_the_member_volumes_after_cleaning():
    members = np.zeros((3, 1, 10, 10), np.float32)
    members[0, 0, 0, 0] = 1.0  # 1 voxel = 1 mL with 10 mm voxels
    members[1, 0, 0, 0:2] = 1.0  # 2 mL
    members[2, 0, 0:2, 0:3] = 1.0  # 6 mL
    spacing = (10.0, 10.0, 10.0)
    assert ranking.member_volume_spread_ml(prediction(members, spacing)) == pytest.approx(
        math.sqrt(((1 - 3) ** 2 + (2 - 3) ** 2 + (6 - 3) ** 2) / 3)
    )
    assert ranking.member_volume_cv(prediction(members, spacing)) == pytest.approx(
        math.sqrt(14 / 3) / 3
    )
    assert ranking.member_volume_cv(prediction(members, (5.0, 1.0, 1.0))) == pytest.approx(
        math.sqrt(14 / 3) / 3
    )  # unitless: the same with other voxels
    members[2, 0, 9, 9] = 1.0  # an island of 1 mL, dropped by a 1.5 mL component filter
    cleaned = prediction(members, spacing, min_component_ml=1.5)  # member 0's 1 mL goes too
    assert ranking.member_volume_spread_ml(cleaned) == pytest.approx(np.std([0.0, 2.0, 6.0]))


def test_an_empty_prediction_scores_zero_with_every_strategy():
    low = np.full((2, 10, 10), 0.1, np.float32)
    high = np.full((2, 10, 10), 0.4, np.float32)  # the members differ, but none sees lesion
    p = prediction([low, high, low, high], losses=["focal", "focal", "ce", "ce"])
    assert p.uncertainty.max() > 0.1
    for name in ranking.STRATEGIES:
        assert ranking.score(p, name) == 0.0


def test_score_refuses_partial_predictions_and_unknown_strategies():
    a = np.zeros((1, 2, 6, 6), np.float32)
    p = Prediction.empty("case_1", (2, 6, 6), (5.0, 1.0, 1.0), ["m0"], ["focal"])
    p.update([0], a[:, :1])
    with pytest.raises(ValueError, match="not complete"):
        ranking.score(p)
    with pytest.raises(ValueError, match="unknown strategy"):
        ranking.score(prediction(a), "entropy")
    assert ranking.DEFAULT in ranking.STRATEGIES
    assert all(ranking.describe(name) for name in ranking.STRATEGIES)
