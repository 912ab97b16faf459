"""Per-channel scaling of a case for the models; the ranges are configuration data (TOML).

A range may also carry a ``reference``: the channel is then first scaled per case so that its
median over the case's brain becomes the reference (relative maps, as RAPID reads CBF relative to
healthy tissue). Vendors' perfusion packages scale absolute CBF and CBV differently; relative
values agree across them, so a model version fine-tuned for a new site can use them
(``training.retrain``, docs/retrain.md). The lesion is a small part of the brain, so the median
is the healthy tissue's.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from strokelens.core.case import CHANNELS, Case
from strokelens.core.dataset import CaseRef, load_ref
from strokelens.core.errors import DataError
from strokelens.core.schema import PreprocessingConfig, load
from strokelens.resources import resource_path

#: The channels a relative version scales per case: vendors scale absolute CBF and CBV.
RELATIVE_CHANNELS = ("CBF", "CBV")
#: CT values (HU) counted as brain parenchyma for a relative channel's median.
BRAIN_HU = (10.0, 60.0)
#: Fewest brain voxels for a relative scaling.
MIN_BRAIN_VOXELS = 500
#: A case's brain median may differ from the reference by a factor within these bounds: a vendor's
#: scale times the patient's own spread (vendor-c, stored 0.5x: factors 1.1-3.8 over 40 cases, the
#: highest with a large hypoperfused territory); a decimal unit slip (10x) or a broken map falls
#: outside, and no factor makes those right.
FACTOR_BOUNDS = (0.125, 8.0)


@dataclass(frozen=True)
class ChannelRange:
    low: float
    high: float
    reference: float | None = None  # per-case brain median the channel is scaled to; None: as is


def identity(scaling: dict[str, ChannelRange]) -> dict[str, dict[str, float]]:
    """``scaling`` as plain data for fingerprints; a range without a reference reads as it did
    before references existed, so caches of absolute ensembles stay valid."""
    return {k: {f: v for f, v in asdict(r).items() if v is not None} for k, r in scaling.items()}


def brain_median(case: Case, channel: str) -> float | None:
    """Median of ``channel`` over the brain (CT within ``BRAIN_HU``); None with too few voxels."""
    ct = case.channels["CT"]
    brain = (ct >= BRAIN_HU[0]) & (ct <= BRAIN_HU[1])
    if int(brain.sum()) < MIN_BRAIN_VOXELS:
        return None
    return float(np.median(case.channels[channel][brain]))


def relative_factor(case: Case, channel: str, reference: float) -> float:
    """What ``channel`` of ``case`` is multiplied by so that its brain median becomes
    ``reference``. DataError (naming the map) where no factor can be trusted: too little brain,
    a median not above 0, or a factor outside ``FACTOR_BOUNDS``. A relative version then makes no
    prediction of the case rather than one from inputs unlike any it was trained on."""
    where = case.paths.get(channel, Path(case.key))
    median = brain_median(case, channel)
    if median is None:
        low, high = BRAIN_HU
        raise DataError(
            where,
            f"{channel} cannot be read relative to the brain (this model version needs it): fewer "
            f"than {MIN_BRAIN_VOXELS} brain voxels (CT {low:g}-{high:g} HU)",
        )
    factor = reference / median if median > 0 else float("inf")
    if not FACTOR_BOUNDS[0] <= factor <= FACTOR_BOUNDS[1]:
        raise DataError(
            where,
            f"{channel} brain median {median:.4g} against the reference site's {reference:.4g}: "
            f"this model version reads scales within a factor {FACTOR_BOUNDS[1]:g} of it "
            "(other units, or a broken map?)",
        )
    return factor


def load_scaling(path: str | Path | None = None) -> dict[str, ChannelRange]:
    """Channel -> clip range, from ``path`` or the packaged ``configs/preprocessing.toml``
    (its schema: ``core.schema.PreprocessingConfig``)."""
    path = Path(path) if path is not None else resource_path("configs", "preprocessing.toml")
    table = load(path, PreprocessingConfig, "preprocessing config").channels
    return {c: ChannelRange(*table[c]) for c in CHANNELS}


def reference_medians(cases: Iterable[CaseRef]) -> dict[str, float]:
    """``RELATIVE_CHANNELS`` -> the median over ``cases`` (a data set: the reference site) of
    each case's brain median; ValueError when no case has enough brain."""
    found: dict[str, list[float]] = {c: [] for c in RELATIVE_CHANNELS}
    for ref in cases:
        if ref.errors:
            continue
        case = load_ref(ref)
        for channel in RELATIVE_CHANNELS:
            median = brain_median(case, channel)
            if median is not None and median > 0:
                found[channel].append(median)
    if not all(found.values()):
        raise ValueError(f"no case with {MIN_BRAIN_VOXELS}+ brain voxels for reference medians")
    return {c: float(np.median(v)) for c, v in found.items()}


def normalize(case: Case, scaling: dict[str, ChannelRange] | None = None) -> np.ndarray:
    """The case as float32 ``(z, C, y, x)``, channels in ``CHANNELS`` order, each in [0, 1]
    (a relative channel scaled by ``relative_factor`` first: DataError where it cannot be)."""
    scaling = scaling or load_scaling()
    out = np.empty((case.n_slices, len(CHANNELS), *case.shape[1:]), dtype=np.float32)
    for c, channel in enumerate(CHANNELS):
        r = scaling[channel]
        values = case.channels[channel]
        if r.reference is not None:
            values = values * np.float32(relative_factor(case, channel, r.reference))
        np.clip(values, r.low, r.high, out=out[:, c])
        out[:, c] -= r.low
        out[:, c] *= 1.0 / (r.high - r.low)
    return out
