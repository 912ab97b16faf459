"""How much the ensemble doubts a case: scores to rank unreviewed cases for review (active learning).

Each strategy (``STRATEGIES``, name -> function, as MONAI Label names its scoring methods) maps one
complete :class:`~strokelens.core.prediction.Prediction` to a float; higher means more doubt, so
the case should be reviewed sooner. They read only what the ensemble produced (no ground truth):

- ``"uncertainty"``: the mean member standard deviation inside and around the lesion any member
  sees (``band_uncertainty``);
- ``"disagreement"``: the volume (mL) where the focal and cross-entropy ensembles' masks differ
  (``focal_ce_disagreement_ml``);
- ``"volume_spread"``: the standard deviation (mL) of the members' own lesion volumes
  (``member_volume_spread_ml``);
- ``"disagreement_fraction"`` and ``"volume_cv"``: the last two relative to the lesion's size
  (``focal_ce_disagreement_fraction``, ``member_volume_cv``), since a volume in mL grows with the
  lesion while the overlap error (1 - DSC) of a large lesion tends to be small.

An empty prediction (no member calls any voxel lesion) scores 0.0 with every strategy: the
members agree there is nothing, which is no doubt (a case they all miss is not found this way).
How well each score follows the ensemble's error on unseen phantom cases is measured by
``bench/ranking.py`` (docs/active-learning.md); ``DEFAULT`` is the one chosen from it.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from strokelens.core.comparison import CE_ONLY, FOCAL_ONLY, difference_labels
from strokelens.core.metrics import check_spacing, volume_ml
from strokelens.core.prediction import THRESHOLD, Prediction

#: How far (mm) around the lesion the uncertainty band reaches.
BAND_MM = 3.0


def ball(radius_mm: float, spacing: tuple[float, float, float]) -> np.ndarray:
    """Boolean structuring element: the voxel offsets within ``radius_mm`` in physical units
    (with 5 mm slices and a radius under 5 mm it is a disc in the slice)."""
    sp = check_spacing(spacing)
    reach = np.floor(radius_mm / sp).astype(int)
    grids = np.ogrid[tuple(slice(-r, r + 1) for r in reach)]
    return sum((g * s) ** 2 for g, s in zip(grids, sp, strict=True)) <= radius_mm**2


def lesion_band(prediction: Prediction, radius_mm: float = BAND_MM) -> np.ndarray:
    """bool ``(z, y, x)``: voxels any member calls lesion (this holds the mean's mask, whose
    voxels have a mean >= 0.5 and so at least one member >= 0.5), grown by ``radius_mm``."""
    from scipy import ndimage  # here: the viewer imports this module at start-up

    seen = (prediction.members >= THRESHOLD).any(axis=0)
    if not seen.any():
        return seen
    return ndimage.binary_dilation(seen, ball(radius_mm, prediction.spacing))


def band_uncertainty(prediction: Prediction) -> float:
    """Mean member standard deviation (0 to 0.5) in and around the lesion any member sees."""
    band = lesion_band(prediction)
    return float(prediction.uncertainty[band].mean()) if band.any() else 0.0


def _focal_ce_labels(prediction: Prediction) -> np.ndarray:
    labels = difference_labels(prediction)
    if labels is None:
        raise ValueError(f"needs focal and CE members; the sources are {prediction.sources}")
    return labels


def focal_ce_disagreement_ml(prediction: Prediction) -> float:
    """mL where only the focal or only the cross-entropy ensemble calls lesion.

    ValueError for an ensemble without both losses: the score does not exist there.
    """
    labels = _focal_ce_labels(prediction)
    return volume_ml(np.isin(labels, (FOCAL_ONLY, CE_ONLY)), prediction.spacing)


def focal_ce_disagreement_fraction(prediction: Prediction) -> float:
    """Share (0 to 1) of the voxels either ensemble calls lesion that only one of them does.

    1 - the Jaccard index of the focal and CE masks; ValueError without both losses.
    """
    labels = _focal_ce_labels(prediction)
    either = np.count_nonzero(labels)
    return np.count_nonzero(np.isin(labels, (FOCAL_ONLY, CE_ONLY))) / either if either else 0.0


def member_volume_spread_ml(prediction: Prediction) -> float:
    """Standard deviation (mL) of the members' own lesion volumes.

    The population sd, each member's mask cleaned as ``mask`` cleans the mean's: how far the
    members' core estimates lie apart.
    """
    return float(np.std(prediction.member_volumes_ml()))


def member_volume_cv(prediction: Prediction) -> float:
    """Coefficient of variation of the members' lesion volumes (sd / mean, unitless).

    As ``member_volume_spread_ml``, divided by the mean member volume.
    """
    volumes = np.asarray(prediction.member_volumes_ml())
    mean = volumes.mean()
    return float(volumes.std() / mean) if mean > 0 else 0.0


Strategy = Callable[[Prediction], float]

STRATEGIES: dict[str, Strategy] = {
    "uncertainty": band_uncertainty,
    "disagreement": focal_ce_disagreement_ml,
    "volume_spread": member_volume_spread_ml,
    "disagreement_fraction": focal_ce_disagreement_fraction,
    "volume_cv": member_volume_cv,
}
#: The strategy the workstation ranks by: the highest rank correlation with 1 - DSC of the doubt
#: scores on unseen phantom cases (docs/active-learning.md).
DEFAULT = "volume_cv"


def score(prediction: Prediction, strategy: str = DEFAULT) -> float:
    """The doubt score of a complete ``prediction`` under ``strategy``."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; choose from {sorted(STRATEGIES)}")
    if not prediction.complete:
        raise ValueError(f"{prediction.case_key}: the prediction is not complete")
    return STRATEGIES[strategy](prediction)


def describe(strategy: str) -> str:
    """The first line of the strategy's docstring (the browser's header tooltip)."""
    return (STRATEGIES[strategy].__doc__ or strategy).split("\n")[0].rstrip(".")
