"""Core / hypoperfusion mismatch volumes, the numbers a stroke team reads off RAPID-like software.

Definitions (REFERENCE.md §5, DEFUSE 3 / RAPID conventions):

- core volume: the infarct-core mask (whatever mask the caller trusts most), mL;
- hypoperfused volume: voxels with ``Tmax > 6 s`` inside the brain, where "brain" is the CT's
  parenchyma HU window (``BRAIN_HU``, as in the perfusion analysis: CSF below, bone above), so
  noise in ventricles or outside the head does not count;
- mismatch volume: hypoperfused volume minus core volume (a difference of volumes, as RAPID reports
  it, not a voxel set difference), floored at 0; mismatch ratio: hypoperfused / core volume
  (``inf`` for an empty core with hypoperfusion, ``nan`` when both are empty);
- target mismatch: ratio >= 1.8, mismatch >= 15 mL and core < 70 mL (``TARGET_CRITERIA``), decided
  on the exact values; ``shown_value`` writes a number so that it reads on the same side of a
  limit as the decision;
- hypoperfusion volumes at ``TMAX_THRESHOLDS_S`` (4, 6, 8, 10 s, RAPID's table) and the
  hypoperfusion intensity ratio HIR = vol(Tmax > 10 s) / vol(Tmax > 6 s) (None when nothing is
  above 6 s; a high HIR, ~0.4-0.5 and up, goes with poor collaterals);
- the threshold core: brain voxels with CBF below ``CORE_RCBF`` (30 %) of the healthy
  hemisphere's mean CBF, the hemispheres split at the head's midline (``core.midline``); the
  brain is where a perfusion map is non-zero and the CT is in ``BRAIN_HU``.

Only numpy is imported up front (the viewer imports this module at start-up); the scipy-based
helpers are imported when volumes are computed from arrays.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from strokelens.core.midline import Midline

TMAX_THRESHOLD_S = 6.0
#: Thresholds (s) of the hypoperfusion volumes table; HIR divides the last by ``TMAX_THRESHOLD_S``.
TMAX_THRESHOLDS_S = (4.0, 6.0, 8.0, 10.0)
HIR_THRESHOLD_S = 10.0
#: Core: CBF below this fraction of the healthy hemisphere's mean (REFERENCE.md §8).
CORE_RCBF = 0.3
#: Baseline-CT window of brain parenchyma (the perfusion analysis's ``BRAIN_HU``; a test keeps
#: the two equal without importing scipy here).
BRAIN_HU = (15.0, 80.0)
TARGET_RATIO = 1.8
TARGET_MISMATCH_ML = 15.0
TARGET_CORE_BELOW_ML = 70.0
#: Most decimals ``shown_value`` writes; past them it truncates toward the value's side.
MAX_DECIMALS = 3


@dataclass(frozen=True)
class Mismatch:
    """Volumes (mL) of one case and their mismatch."""

    core_ml: float
    hypoperfused_ml: float
    mismatch_ml: float
    ratio: float

    @property
    def target(self) -> bool:
        """Target mismatch: every one of ``TARGET_CRITERIA`` passes."""
        return all(criterion.passes(self) for criterion in TARGET_CRITERIA)


@dataclass(frozen=True)
class Criterion:
    """One limit of the target-mismatch rule: the ``Mismatch`` attribute ``field`` is at least
    ``limit`` (``at_least``) or below it; ``label`` is how a reader sees the rule."""

    field: str
    limit: float
    at_least: bool
    label: str

    def value(self, result: Mismatch) -> float:
        return getattr(result, self.field)

    def passes(self, result: Mismatch) -> bool:
        value = self.value(result)
        return value >= self.limit if self.at_least else value < self.limit  # nan fails both


TARGET_CRITERIA: tuple[Criterion, ...] = (
    Criterion("ratio", TARGET_RATIO, True, f"ratio ≥ {TARGET_RATIO:g}"),
    Criterion("mismatch_ml", TARGET_MISMATCH_ML, True, f"mismatch ≥ {TARGET_MISMATCH_ML:g} mL"),
    Criterion("core_ml", TARGET_CORE_BELOW_ML, False, f"core < {TARGET_CORE_BELOW_ML:g} mL"),
)


def shown_value(value: float, limit: float | None = None, decimals: int = 1) -> str:
    """``value`` with ``decimals`` decimals, or with as many more as it takes (up to
    ``MAX_DECIMALS``) to read on the same side of ``limit`` as the exact value.

    The criteria decide on exact values (as DEFUSE 3 and RAPID do); rounding the decision instead
    would move the published limits. Rounding never carries a value at or above a limit below it
    (rounding is monotone and the limits have few decimals), but it does carry a value just
    below a limit onto it: 1.799 would read "1.8" beside "✗ ratio ≥ 1.8", and 69.97 mL "70.0"
    beside "✓ core < 70 mL". So such a value gets more decimals ("1.799", "69.97"); one closer
    than ``MAX_DECIMALS`` allow is truncated ("1.7999" reads "1.799"), never rounded up onto the
    limit. One rule serves all three criteria, because each one's boundary is "below the limit or
    not". ``nan`` (no ratio: both volumes empty) reads "–", ``inf`` (empty core) "∞".
    """
    if math.isnan(value):
        return "–"
    if math.isinf(value):
        return "∞"
    if limit is None or value >= limit:
        return f"{value:.{decimals}f}"
    for places in range(decimals, MAX_DECIMALS + 1):
        text = f"{value:.{places}f}"
        if float(text) < limit:
            return text
    return str(Decimal(value).quantize(Decimal(1).scaleb(-MAX_DECIMALS), rounding=ROUND_FLOOR))


def hypoperfusion_mask(
    tmax: np.ndarray,
    ct: np.ndarray | None = None,
    threshold_s: float = TMAX_THRESHOLD_S,
    brain_hu: tuple[float, float] = BRAIN_HU,
) -> np.ndarray:
    """bool ``(z, y, x)``: ``Tmax > threshold_s`` and, with a CT, CT inside ``brain_hu``."""
    mask = np.asarray(tmax) > threshold_s
    if ct is not None:
        ct = np.asarray(ct)
        if ct.shape != mask.shape:
            raise ValueError(f"CT shape {ct.shape} differs from Tmax shape {mask.shape}")
        mask &= (ct > brain_hu[0]) & (ct < brain_hu[1])
    return mask


def mismatch_from_volumes(core_ml: float, hypoperfused_ml: float) -> Mismatch:
    """Mismatch volume, ratio and target flag from the two volumes (mL)."""
    mismatch_ml = max(hypoperfused_ml - core_ml, 0.0)
    if core_ml > 0:
        ratio = hypoperfused_ml / core_ml
    else:
        ratio = math.inf if hypoperfused_ml > 0 else math.nan
    return Mismatch(core_ml, hypoperfused_ml, mismatch_ml, ratio)


def mismatch(
    core: np.ndarray | None,
    tmax: np.ndarray,
    spacing: Sequence[float],
    ct: np.ndarray | None = None,
) -> Mismatch:
    """Core and ``Tmax > 6 s`` volumes of a case and their mismatch (no core mask: core = 0)."""
    from strokelens.core.metrics import volume_ml

    hypo = hypoperfusion_mask(tmax, ct)
    core_ml = 0.0 if core is None else volume_ml(core, spacing)
    return mismatch_from_volumes(core_ml, volume_ml(hypo, spacing))


def hypoperfusion_volumes(
    tmax: np.ndarray,
    spacing: Sequence[float],
    ct: np.ndarray | None = None,
    thresholds_s: Sequence[float] = TMAX_THRESHOLDS_S,
) -> dict[float, float]:
    """Volume (mL) of ``hypoperfusion_mask`` at each threshold (s)."""
    from strokelens.core.metrics import volume_ml

    return {float(t): volume_ml(hypoperfusion_mask(tmax, ct, t), spacing) for t in thresholds_s}


def hir(volumes: dict[float, float]) -> float | None:
    """HIR = vol(Tmax > 10 s) / vol(Tmax > 6 s) from ``hypoperfusion_volumes``; None when the
    denominator is 0 (no hypoperfusion: undefined, not 0)."""
    denominator = volumes[TMAX_THRESHOLD_S]
    return volumes[HIR_THRESHOLD_S] / denominator if denominator > 0 else None


def brain_region(maps: dict[str, np.ndarray], ct: np.ndarray | None = None) -> np.ndarray:
    """Brain voxels: a perfusion map is non-zero (maps are 0 off the brain) and, with a CT, the
    CT is in ``BRAIN_HU`` (no CSF or bone, where CBF is low without an infarct)."""
    from strokelens.core.plausibility import brain_mask

    brain = brain_mask(maps)
    if ct is not None:
        brain &= (ct > BRAIN_HU[0]) & (ct < BRAIN_HU[1])
    return brain


@dataclass(frozen=True)
class ThresholdCore:
    """The rCBF < ``fraction`` core, with what it was measured against."""

    mask: np.ndarray  # bool (z, y, x)
    reference_cbf: float  # mean CBF of the healthy hemisphere (the map's units)
    healthy: np.ndarray  # bool (z, y, x): the healthy hemisphere's brain voxels
    midline: Midline  # (its module imports scipy: imported for type checkers only)
    fraction: float


def threshold_core(
    cbf: np.ndarray,
    brain: np.ndarray,
    tmax: np.ndarray | None = None,
    ct: np.ndarray | None = None,
    fraction: float = CORE_RCBF,
    spacing: Sequence[float] = (1.0, 1.0, 1.0),
) -> ThresholdCore:
    """Brain voxels with CBF < ``fraction`` x the healthy hemisphere's mean CBF.

    The midline is fitted on ``midline.symmetry_image(ct, brain)`` in mm of ``spacing`` (unit
    spacing is right for square pixels). ValueError when there is no reference (empty brain,
    a side without brain, a non-positive mean).
    """
    from strokelens.core.midline import fit_midline, healthy_reference, symmetry_image

    brain = np.asarray(brain) != 0
    if not brain.any():
        raise ValueError("relative CBF needs a reference, and the brain mask is empty")
    midline = fit_midline(symmetry_image(ct, brain), spacing)
    reference, healthy = healthy_reference(cbf, brain, midline, tmax)
    mask = brain & (np.asarray(cbf) < fraction * reference)
    return ThresholdCore(mask, reference, healthy, midline, fraction)
