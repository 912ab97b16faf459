"""One CT-perfusion case in memory.

Axis order (everywhere in StrokeLens): arrays are ``(z, y, x)`` = (slice, row, column), i.e. the
NIfTI voxel array ``(i, j, k)`` transposed to ``(k, j, i)`` so that one axial slice is a
C-contiguous 2D array (what per-slice models and image views want). ``spacing`` is in mm in the
same ``(z, y, x)`` order. The 4D perfusion source is ``(t, z, y, x)``. The affine stays the NIfTI
one (voxel ``(i, j, k)`` -> scanner mm); writers transpose back, so files keep their geometry.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

#: The five input channels, in the order models receive them.
CHANNELS: tuple[str, ...] = ("CT", "CBF", "CBV", "MTT", "Tmax")


@dataclass
class Case:
    """Channels, optional ground truth and geometry of one scan (slab)."""

    id: str
    patient: str
    split: str  # "training", "testing" or "" (unknown)
    channels: dict[str, np.ndarray]  # CHANNELS -> float32 (z, y, x)
    affine: np.ndarray  # 4x4 NIfTI affine of the maps
    spacing: tuple[float, float, float]  # mm, (z, y, x)
    mask: np.ndarray | None = None  # uint8 (z, y, x), values 0/1
    paths: dict[str, Path] = field(default_factory=dict)  # channel / "OT" / "4DPWI" -> file
    header: object | None = None  # nibabel header of the CT map, the template for written files
    problems: list[str] = field(default_factory=list)  # non-fatal findings (e.g. NaN replaced)
    submission_id: str | None = None  # number in the CT_MTT folder name (ISLES submissions)
    frame_interval_s: float | None = None  # of the 4D source, from its header (None: not given)
    #: physical value = stored value x scale, for maps whose ``strokelens.toml`` or sidecar gives
    #: a scale (``core.units``; the phantom stores CBF and CBV x 10 in uint16); the channels keep
    #: the stored values, which the models were trained on, and viewers multiply for display
    value_scales: dict[str, float] = field(default_factory=dict)
    _perfusion_loader: Callable[[], np.ndarray] | None = field(default=None, repr=False)

    @property
    def key(self) -> str:
        """Unique within a data set: ``training/case_1`` (or the id when the split is unknown)."""
        return f"{self.split}/{self.id}" if self.split else self.id

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.channels[CHANNELS[0]].shape  # type: ignore[return-value]

    @property
    def n_slices(self) -> int:
        return self.shape[0]

    @property
    def has_perfusion(self) -> bool:
        return self._perfusion_loader is not None

    def perfusion(self) -> np.ndarray:
        """The 4D source series as float32 ``(t, z, y, x)`` in HU, read from disk on each call."""
        if self._perfusion_loader is None:
            raise FileNotFoundError(f"case {self.key} has no CT_4DPWI source")
        return self._perfusion_loader()

    def physical(self, channel: str) -> np.ndarray:
        """A channel in physical units: its stored values times its value scale, if any."""
        scale = self.value_scales.get(channel)
        data = self.channels[channel]
        return data if scale is None else data * np.float32(scale)

    def lesion_ml(self) -> float | None:
        """Ground-truth lesion volume in mL, or None without a ground truth."""
        if self.mask is None:
            return None
        from strokelens.core.metrics import volume_ml  # scipy: not at the window's start-up

        return volume_ml(self.mask, self.spacing)
