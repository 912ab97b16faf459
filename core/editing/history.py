"""Undo and redo of mask edits, each item holding only the voxels it changed.

A paint stroke on a 256 x 256 slice changes a few thousand voxels; storing those (their box,
which voxels in it, old and new values) instead of the slice or the volume keeps hundreds of
items in a few MiB, as napari's Labels layer does. The history is bounded in bytes: the oldest
items go first.
"""

from __future__ import annotations

import operator
from collections import deque
from dataclasses import dataclass

import numpy as np

from strokelens.core.metrics import bounding_box

#: Bytes counted per item on top of its arrays (the Python objects around them).
_ITEM_OVERHEAD = 256


@dataclass(frozen=True)
class Region:
    """A box of voxels ``[z0, z1) x [y0, y1) x [x0, x1)`` (half-open, (z, y, x) order)."""

    z0: int
    z1: int
    y0: int
    y1: int
    x0: int
    x1: int

    def __post_init__(self) -> None:
        names = ("z0", "z1", "y0", "y1", "x0", "x1")
        try:
            bounds = [operator.index(getattr(self, name)) for name in names]
        except TypeError:
            raise TypeError(f"Region bounds must be integers, got {self}") from None
        if not (
            0 <= bounds[0] < bounds[1] and 0 <= bounds[2] < bounds[3] and 0 <= bounds[4] < bounds[5]
        ):
            raise ValueError(f"Region needs 0 <= start < stop on each axis, got {bounds}")
        for name, value in zip(names, bounds, strict=True):
            object.__setattr__(self, name, value)

    @classmethod
    def of(cls, changed: np.ndarray) -> Region | None:
        """The tight box around the True voxels of a 3D bool array (None when there are none)."""
        if not changed.any():
            return None
        z, y, x = bounding_box(changed)
        return cls(z.start, z.stop, y.start, y.stop, x.start, x.stop)

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.z1 - self.z0, self.y1 - self.y0, self.x1 - self.x0)

    def slices(self) -> tuple[slice, slice, slice]:
        """Index of the box in a ``(z, y, x)`` array: ``data[region.slices()]`` is a view."""
        return (slice(self.z0, self.z1), slice(self.y0, self.y1), slice(self.x0, self.x1))

    def union(self, other: Region) -> Region:
        """The smallest region holding both."""
        return Region(
            min(self.z0, other.z0),
            max(self.z1, other.z1),
            min(self.y0, other.y0),
            max(self.y1, other.y1),
            min(self.x0, other.x0),
            max(self.x1, other.x1),
        )


@dataclass(frozen=True, eq=False)
class Change:
    """One undo item: the changed voxels' box, which voxels in it changed, old and new values.

    Which voxels: a bool mask of the box packed to bits (a 200 x 220 stroke box: 5.5 kB, where
    int32 indices of its 25 k voxels take 100 kB), written back by one boolean assignment.
    """

    region: Region
    changed: np.ndarray  # uint8, np.packbits of the box's C-order bool mask of changed voxels
    old: np.ndarray  # (n,) values before, in C order of the changed voxels
    new: np.ndarray  # (n,) values after
    label: str = ""  # what the user did ("paint", "fill holes"), for the Undo menu

    @classmethod
    def between(
        cls, before: np.ndarray, after: np.ndarray, origin: Region, label: str = ""
    ) -> Change | None:
        """The change from ``before`` to ``after`` (both the contents of ``origin``), shrunk to
        the box of the voxels that differ; None when nothing differs."""
        if before.shape != origin.shape or after.shape != origin.shape:
            raise ValueError(f"arrays {before.shape}, {after.shape} are not {origin.shape}")
        differs = before != after
        tight = Region.of(differs)
        if tight is None:
            return None
        inner = tight.slices()
        differs = differs[inner]
        region = Region(
            origin.z0 + tight.z0,
            origin.z0 + tight.z1,
            origin.y0 + tight.y0,
            origin.y0 + tight.y1,
            origin.x0 + tight.x0,
            origin.x0 + tight.x1,
        )
        return cls(
            region, np.packbits(differs), before[inner][differs], after[inner][differs], label
        )

    @property
    def nbytes(self) -> int:
        return self.changed.nbytes + self.old.nbytes + self.new.nbytes + _ITEM_OVERHEAD

    def mask(self) -> np.ndarray:
        """Bool mask (the region's shape) of the changed voxels."""
        shape = self.region.shape
        bits = np.unpackbits(self.changed, count=shape[0] * shape[1] * shape[2])
        return bits.view(bool).reshape(shape)

    def write(self, data: np.ndarray, values: np.ndarray) -> None:
        """Write ``values`` (``old`` or ``new``) to the changed voxels of ``data``."""
        data[self.region.slices()][self.mask()] = values


class History:
    """Undo and redo stacks of ``Change`` items, at most ``max_bytes`` together.

    ``push`` clears the redo stack and drops the oldest items until the bound holds again; an
    item larger than the whole bound is not kept (that edit cannot be undone; 64 MiB holds any
    change to an ISLES-sized volume several times over).
    """

    def __init__(self, max_bytes: int = 64 * 2**20):
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes <= 0:
            raise ValueError(f"max_bytes must be a positive integer, got {max_bytes!r}")
        self.max_bytes = max_bytes
        self._undo: deque[Change] = deque()
        self._redo: list[Change] = []
        self._nbytes = 0

    @property
    def nbytes(self) -> int:
        """Bytes held by both stacks."""
        return self._nbytes

    @property
    def can_undo(self) -> bool:
        return bool(self._undo)

    @property
    def can_redo(self) -> bool:
        return bool(self._redo)

    @property
    def undo_label(self) -> str | None:
        return self._undo[-1].label if self._undo else None

    @property
    def redo_label(self) -> str | None:
        return self._redo[-1].label if self._redo else None

    def __len__(self) -> int:
        return len(self._undo) + len(self._redo)

    def push(self, change: Change) -> None:
        """Record a change already written to the data; the redo stack is gone after this."""
        self._nbytes -= sum(c.nbytes for c in self._redo)
        self._redo.clear()
        self._undo.append(change)
        self._nbytes += change.nbytes
        while self._nbytes > self.max_bytes:
            self._nbytes -= self._undo.popleft().nbytes

    def clear(self) -> None:
        self._undo.clear()
        self._redo.clear()
        self._nbytes = 0

    def undo(self, data: np.ndarray) -> Region | None:
        """Put back the old values of the newest change in ``data``; its region, or None."""
        return self._move(self._undo, self._redo, data, undo=True)

    def redo(self, data: np.ndarray) -> Region | None:
        """Write the new values of the last undone change to ``data`` again; its region, or None."""
        return self._move(self._redo, self._undo, data, undo=False)

    @staticmethod
    def _move(source, target, data: np.ndarray, undo: bool) -> Region | None:
        if not source:
            return None
        change = source.pop()
        change.write(data, change.old if undo else change.new)
        target.append(change)
        return change.region
