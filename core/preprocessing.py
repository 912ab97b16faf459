"""Per-channel scaling of a case for the models; the ranges are configuration data (TOML)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from strokelens.core.case import CHANNELS, Case
from strokelens.core.schema import PreprocessingConfig, load
from strokelens.resources import resource_path


@dataclass(frozen=True)
class ChannelRange:
    low: float
    high: float


def load_scaling(path: str | Path | None = None) -> dict[str, ChannelRange]:
    """Channel -> clip range, from ``path`` or the packaged ``configs/preprocessing.toml``
    (its schema: ``core.schema.PreprocessingConfig``)."""
    path = Path(path) if path is not None else resource_path("configs", "preprocessing.toml")
    table = load(path, PreprocessingConfig, "preprocessing config").channels
    return {c: ChannelRange(*table[c]) for c in CHANNELS}


def normalize(case: Case, scaling: dict[str, ChannelRange] | None = None) -> np.ndarray:
    """The case as float32 ``(z, C, y, x)``, channels in ``CHANNELS`` order, each in [0, 1]."""
    scaling = scaling or load_scaling()
    out = np.empty((case.n_slices, len(CHANNELS), *case.shape[1:]), dtype=np.float32)
    for c, channel in enumerate(CHANNELS):
        r = scaling[channel]
        np.clip(case.channels[channel], r.low, r.high, out=out[:, c])
        out[:, c] -= r.low
        out[:, c] *= 1.0 / (r.high - r.low)
    return out
