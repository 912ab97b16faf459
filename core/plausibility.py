"""Whether a case's CBF reads plausibly in mL/100g/min: the check for undeclared units.

The rule: the healthy-side CBF median, i.e. the median of physical CBF over brain voxels (where
any perfusion map is non-zero, as the viewer's off-brain rule) that are not hypoperfused
(``Tmax > 6 s`` left out) and finite, must lie in ``CBF_MEDIAN_RANGE`` (10-150 mL/100g/min).
Normal grey matter is ~50-60 and white matter ~20-25 mL/100g/min (REFERENCE.md §5), so a median
outside the range almost surely means other units or a storage scale (an integer map stored
x 10, mL/g/min). A case without such voxels is not judged. Nothing is rescaled: the finding is
a warning that points at ``strokelens.toml`` (``core.units``).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from strokelens.core.mismatch import TMAX_THRESHOLD_S
from strokelens.core.units import DECLARATION, UNITS

#: Plausible healthy-side CBF median, mL/100g/min.
CBF_MEDIAN_RANGE = (10.0, 150.0)
#: The perfusion maps (the channels that are 0 off the brain).
MAPS = ("CBF", "CBV", "MTT", "Tmax")


def brain_mask(maps: Mapping[str, np.ndarray]) -> np.ndarray:
    """Voxels where any perfusion map is non-zero (maps are 0 off the brain)."""
    return np.logical_or.reduce([maps[c] != 0 for c in MAPS])


def healthy_cbf_median(maps: Mapping[str, np.ndarray], scales: Mapping[str, float]) -> float | None:
    """Median physical CBF over non-hypoperfused brain voxels (see the module's rule); None when
    there is none. ``maps`` hold stored values, ``scales`` turn them physical."""
    cbf = maps["CBF"] * np.float32(scales.get("CBF", 1.0))
    tmax = maps["Tmax"] * np.float32(scales.get("Tmax", 1.0))
    healthy = brain_mask(maps) & ~(tmax > TMAX_THRESHOLD_S) & np.isfinite(cbf)
    return float(np.median(cbf[healthy])) if healthy.any() else None


def cbf_units_problem(maps: Mapping[str, np.ndarray], scales: Mapping[str, float]) -> str | None:
    """A warning when the healthy-side CBF median is implausible for mL/100g/min, else None."""
    median = healthy_cbf_median(maps, scales)
    low, high = CBF_MEDIAN_RANGE
    if median is None or low <= median <= high:
        return None
    unit = UNITS["CBF"]
    return (
        f"CBF values look implausible for {unit}: healthy-side median {median:.4g} (expected "
        f"{low:g}-{high:g}); other units or a storage scale (e.g. stored x 10)? Values are "
        f"shown as read; declare the unit and scale in {DECLARATION}"
    )
