"""Core / hypoperfusion mismatch volumes, the numbers a stroke team reads off RAPID-like software.

Definitions (REFERENCE.md §5, DEFUSE 3 / RAPID conventions):

- core volume: the infarct-core mask (whatever mask the caller trusts most), mL;
- hypoperfused volume: voxels with ``Tmax > 6 s`` inside the brain, where "brain" is the CT's
  parenchyma HU window (``BRAIN_HU``, as in the perfusion analysis: CSF below, bone above), so
  noise in ventricles or outside the head does not count;
- mismatch volume: hypoperfused volume minus core volume (a difference of volumes, as RAPID reports
  it, not a voxel set difference), floored at 0; mismatch ratio: hypoperfused / core volume
  (``inf`` for an empty core with hypoperfusion, ``nan`` when both are empty);
- target mismatch: ratio >= 1.8, mismatch >= 15 mL and core < 70 mL.

Only numpy is imported up front (the viewer imports this module at start-up); the scipy-based
helpers are imported when volumes are computed from arrays.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

TMAX_THRESHOLD_S = 6.0
#: Baseline-CT window of brain parenchyma (the perfusion analysis's ``BRAIN_HU``; a test keeps
#: the two equal without importing scipy here).
BRAIN_HU = (15.0, 80.0)
TARGET_RATIO = 1.8
TARGET_MISMATCH_ML = 15.0
TARGET_CORE_BELOW_ML = 70.0


@dataclass(frozen=True)
class Mismatch:
    """Volumes (mL) and the target-mismatch verdict of one case."""

    core_ml: float
    hypoperfused_ml: float
    mismatch_ml: float
    ratio: float
    target: bool


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
    target = (
        ratio >= TARGET_RATIO  # False for nan
        and mismatch_ml >= TARGET_MISMATCH_ML
        and core_ml < TARGET_CORE_BELOW_ML
    )
    return Mismatch(core_ml, hypoperfused_ml, mismatch_ml, ratio, bool(target))


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
