"""The mask being corrected: brush strokes on an axial slice, constraint rules, undo.

Modelled on napari's Labels layer: a stroke stamps a footprint at every voxel of the line
between two mouse samples (no gaps at any mouse speed), events carry the box that changed (a
view redraws only that), and the whole stroke is one undo item holding only its changed voxels.

Constraints ("editable area" in 3D Slicer, "draw over" in ITK-SNAP) are rules read from the
case's maps, combined by AND into one bool volume: a stroke changes only voxels where it is
True. As in Slicer, the area limits erasing as well as painting, so an edit never reaches
outside what the user chose to edit; a caller that wants free erasing passes ``allowed=None``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from typing import ClassVar

import numpy as np
from psygnal import Signal

from strokelens.core.editing.history import Change, History, Region
from strokelens.core.limits import MAX_IN_PLANE
from strokelens.core.metrics import as_mask, check_spacing

#: Brush radius bounds (mm): below half a voxel the brush is one voxel anyway; 50 mm spans a
#: hemisphere.
MIN_RADIUS_MM = 0.5
MAX_RADIUS_MM = 50.0
#: Tmax thresholds (s) a rule may use: perfusion deficits are 4-10 s, maps rarely exceed 60 s.
MAX_TMAX_S = 60.0
#: CT window (HU) a rule may use: air is -1000, dense bone and metal a few thousand.
HU_LIMITS = (-2048.0, 4096.0)
#: Longest line (voxels) ``line`` draws: far beyond any image (callers clip to the image).
MAX_LINE_VOXELS = 4 * MAX_IN_PLANE


def _finite(value: object, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.number):
        raise ValueError(f"{what} must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ValueError(f"{what} must be finite, got {value}")
    return value


@dataclass(frozen=True)
class Brush:
    """A round brush of ``radius_mm`` on a slice of in-plane ``spacing_yx`` (mm)."""

    radius_mm: float
    spacing_yx: tuple[float, float]

    def __post_init__(self) -> None:
        r = _finite(self.radius_mm, "brush radius (mm)")
        if not MIN_RADIUS_MM <= r <= MAX_RADIUS_MM:
            raise ValueError(f"brush radius {r} mm is outside {MIN_RADIUS_MM}-{MAX_RADIUS_MM} mm")
        if len(self.spacing_yx) != 2:
            raise ValueError(f"spacing_yx must be (dy, dx) in mm, got {self.spacing_yx!r}")
        dy, dx = (_finite(s, "brush spacing (mm)") for s in self.spacing_yx)
        if dy <= 0 or dx <= 0:
            raise ValueError(f"brush spacing must be positive mm, got {self.spacing_yx!r}")
        half = (int(r // dy), int(r // dx))
        if max(half) > MAX_IN_PLANE:
            raise ValueError(
                f"a {r} mm brush is {2 * max(half) + 1} voxels wide at {dy} x {dx} mm "
                f"(at most {2 * MAX_IN_PLANE + 1})"
            )
        object.__setattr__(self, "radius_mm", r)
        object.__setattr__(self, "spacing_yx", (dy, dx))

    def footprint(self) -> np.ndarray:
        """Read-only 2D bool disc in mm (an ellipse in voxels), odd-sized and centred."""
        return _footprint(self.radius_mm, *self.spacing_yx)


@functools.lru_cache(maxsize=16)
def _footprint(radius_mm: float, dy: float, dx: float) -> np.ndarray:
    hy, hx = int(radius_mm // dy), int(radius_mm // dx)
    y = np.arange(-hy, hy + 1)[:, None] * dy
    x = np.arange(-hx, hx + 1)[None, :] * dx
    disc = y * y + x * x <= radius_mm * radius_mm  # holds the centre at any radius
    disc.flags.writeable = False
    return disc


def line(p0: Sequence[float], p1: Sequence[float]) -> np.ndarray:
    """Voxels ``(n, 2)`` (y, x) from ``p0`` to ``p1`` (rounded), one voxel step at most per axis.

    Integer arithmetic after rounding the ends, so consecutive points are exactly neighbours
    (a footprint stamped at each leaves no gap, however far apart two mouse samples are).
    """
    ends = []
    for p in (p0, p1):
        if len(p) != 2:
            raise ValueError(f"a line end must be (y, x), got {p!r}")
        ends.append([math.floor(_finite(v, "line coordinate") + 0.5) for v in p])
    a, b = np.asarray(ends, np.int64)
    d = b - a
    n = int(np.abs(d).max())
    if n > MAX_LINE_VOXELS:
        raise ValueError(f"line of {n} voxels from {p0} to {p1} (at most {MAX_LINE_VOXELS})")
    if n == 0:
        return a[None].astype(np.intp)
    k = np.arange(n + 1, dtype=np.int64)[:, None]
    return (a + (2 * k * d + n) // (2 * n)).astype(np.intp)


def clip_segment(
    p0: np.ndarray, p1: np.ndarray, lo: np.ndarray, hi: np.ndarray
) -> tuple[np.ndarray, np.ndarray] | None:
    """The part of segment p0-p1 inside the box [lo, hi] (Liang-Barsky), or None."""
    d = p1 - p0
    t0, t1 = 0.0, 1.0
    for axis in range(2):
        for p, q in ((-d[axis], p0[axis] - lo[axis]), (d[axis], hi[axis] - p0[axis])):
            if p == 0:
                if q < 0:
                    return None
            elif p < 0:
                t0 = max(t0, q / p)
            else:
                t1 = min(t1, q / p)
    if t0 > t1:
        return None
    return p0 + t0 * d, p0 + t1 * d


# --- constraint rules -------------------------------------------------------------------------


@dataclass(frozen=True)
class EditInputs:
    """What rules read, each ``(z, y, x)`` like the mask; None where the case lacks it."""

    ct: np.ndarray | None = None  # HU
    cbf: np.ndarray | None = None  # any scale (relative CBF does not depend on it)
    tmax: np.ndarray | None = None  # s
    brain: np.ndarray | None = None  # bool
    ai_mask: np.ndarray | None = None  # 0/1, the AI's lesion mask
    probability: np.ndarray | None = None  # AI mean probability in [0, 1]


def _bounded(
    rule: object, name: str, what: str, lo: float, hi: float, lo_open=False, hi_open=False
) -> None:
    """Check a rule's parameter against its interval and store it as a float."""
    value = _finite(getattr(rule, name), what)
    if value < lo or value > hi or (lo_open and value == lo) or (hi_open and value == hi):
        interval = f"{'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}"
        raise ValueError(f"{what} {value} is outside {interval}")
    object.__setattr__(rule, name, value)


_INPUT_NAMES = {
    "ct": "the CT map",
    "cbf": "the CBF map",
    "tmax": "the Tmax map",
    "brain": "a brain mask",
    "ai_mask": "the AI mask",
    "probability": "the AI probabilities",
}


@dataclass(frozen=True)
class TmaxAbove:
    """Voxels whose Tmax exceeds ``seconds`` (hypoperfused)."""

    seconds: float
    needs: ClassVar[tuple[str, ...]] = ("tmax",)

    def __post_init__(self) -> None:
        _bounded(self, "seconds", "Tmax threshold (s)", 0.0, MAX_TMAX_S)

    def mask(self, inputs: EditInputs) -> np.ndarray:
        return inputs.tmax > self.seconds


@dataclass(frozen=True)
class RcbfBelow:
    """Brain voxels whose CBF is below ``fraction`` of the healthy hemisphere's mean CBF: the
    threshold core (``core.mismatch.threshold_core``, hemispheres split at the head's midline
    fitted on the CT inside the brain, or on the brain alone)."""

    fraction: float
    needs: ClassVar[tuple[str, ...]] = ("cbf", "brain")

    def __post_init__(self) -> None:
        _bounded(self, "fraction", "relative CBF fraction", 0.0, 1.0, lo_open=True)

    def mask(self, inputs: EditInputs) -> np.ndarray:
        from strokelens.core.mismatch import threshold_core

        core = threshold_core(inputs.cbf, inputs.brain, inputs.tmax, inputs.ct, self.fraction)
        return core.mask


@dataclass(frozen=True)
class CtRange:
    """Voxels whose CT value is within ``[lo_hu, hi_hu]`` (e.g. no bone, no CSF)."""

    lo_hu: float
    hi_hu: float
    needs: ClassVar[tuple[str, ...]] = ("ct",)

    def __post_init__(self) -> None:
        lo, hi = _finite(self.lo_hu, "CT low (HU)"), _finite(self.hi_hu, "CT high (HU)")
        if not HU_LIMITS[0] <= lo < hi <= HU_LIMITS[1]:
            raise ValueError(
                f"CT range {lo}-{hi} HU needs low < high within {HU_LIMITS[0]}-{HU_LIMITS[1]} HU"
            )
        object.__setattr__(self, "lo_hu", lo)
        object.__setattr__(self, "hi_hu", hi)

    def mask(self, inputs: EditInputs) -> np.ndarray:
        return (inputs.ct >= self.lo_hu) & (inputs.ct <= self.hi_hu)


@dataclass(frozen=True)
class InsideBrain:
    """Voxels of the brain mask."""

    needs: ClassVar[tuple[str, ...]] = ("brain",)

    def mask(self, inputs: EditInputs) -> np.ndarray:
        return inputs.brain != 0


@dataclass(frozen=True)
class InsideMask:
    """Voxels of the AI mask (corrections that only remove from it, or stay within it)."""

    needs: ClassVar[tuple[str, ...]] = ("ai_mask",)

    def mask(self, inputs: EditInputs) -> np.ndarray:
        return inputs.ai_mask != 0


@dataclass(frozen=True)
class ProbabilityAbove:
    """Voxels whose AI mean probability exceeds ``p``."""

    p: float
    needs: ClassVar[tuple[str, ...]] = ("probability",)

    def __post_init__(self) -> None:
        _bounded(self, "p", "probability threshold", 0.0, 1.0, hi_open=True)

    def mask(self, inputs: EditInputs) -> np.ndarray:
        return inputs.probability > self.p


Rule = TmaxAbove | RcbfBelow | CtRange | InsideBrain | InsideMask | ProbabilityAbove


def allowed(rules: Sequence[Rule], inputs: EditInputs, shape: tuple[int, ...]) -> np.ndarray | None:
    """Bool ``shape`` volume where all ``rules`` hold (AND); None without rules (no constraint).

    A rule whose input is None, or an input of another shape, is a ValueError naming both.
    """
    rules = tuple(rules)
    if not rules:
        return None
    shape = tuple(int(n) for n in shape)
    for f in fields(inputs):
        a = getattr(inputs, f.name)
        if a is not None and np.shape(a) != shape:
            raise ValueError(f"{_INPUT_NAMES[f.name]} is {np.shape(a)}, the mask {shape}")
    out = np.ones(shape, bool)
    for rule in rules:
        if not isinstance(rule, Rule):
            raise TypeError(f"{rule!r} is not a constraint rule")
        for name in rule.needs:
            if getattr(inputs, name) is None:
                raise ValueError(f"rule {rule} needs {_INPUT_NAMES[name]}, which this case lacks")
        out &= rule.mask(inputs)
    return out


# --- the mask ---------------------------------------------------------------------------------


@dataclass
class _Stroke:
    z: int
    value: int
    footprint: np.ndarray
    allowed: np.ndarray | None  # bool (y, x) of slice z
    before: np.ndarray  # slice z when the stroke began (for end and abort; not kept after)
    last: tuple[float, float] | None = None
    box: Region | None = None  # union of what the stroke changed


class EditableMask:
    """The one uint8 0/1 ``(z, y, x)`` mask being corrected, edited in place, with undo.

    ``changed`` emits the ``Region`` that changed after every edit, undo and redo (during a
    stroke, the voxels one ``stroke_to`` painted). ``version`` counts changes; ``dirty`` says
    whether there are changes since ``mark_saved`` (undoing back to the saved state still
    counts as a change). ``history`` is this mask's own (pass one to choose its byte bound;
    sharing one between masks would undo into the wrong array).
    """

    changed = Signal(object)

    def __init__(
        self,
        data: np.ndarray,
        spacing: tuple[float, float, float],
        history: History | None = None,
    ):
        if not isinstance(data, np.ndarray) or data.ndim != 3 or data.dtype != np.uint8:
            raise ValueError(f"the mask must be a uint8 (z, y, x) array, got {_describe(data)}")
        as_mask(data, "the mask")  # 0/1 only
        if not data.flags.writeable:
            raise ValueError("the mask array is read-only")
        self.data = data
        self.spacing = tuple(float(s) for s in check_spacing(spacing))
        self.history = History() if history is None else history
        self.version = 0
        self._saved_version = 0
        self._stroke: _Stroke | None = None

    @property
    def shape(self) -> tuple[int, int, int]:
        return self.data.shape  # type: ignore[return-value]

    @property
    def can_undo(self) -> bool:
        return self._stroke is None and self.history.can_undo

    @property
    def can_redo(self) -> bool:
        return self._stroke is None and self.history.can_redo

    @property
    def dirty(self) -> bool:
        return self.version != self._saved_version

    @property
    def stroking(self) -> bool:
        return self._stroke is not None

    def mark_saved(self, version: int | None = None) -> None:
        """The data as it was at ``version`` (default: now) is what is on disk; a save that
        copied the mask at some version marks that one, so edits made meanwhile stay dirty."""
        self._saved_version = self.version if version is None else int(version)

    def _changed(self, region: Region) -> None:
        self.version += 1
        self.changed.emit(region)

    def _idle(self, what: str) -> None:
        if self._stroke is not None:
            raise RuntimeError(f"cannot {what} during a stroke; end or abort it first")

    # --- strokes

    def begin_stroke(
        self, z: int, value: int, brush: Brush, allowed: np.ndarray | None = None
    ) -> None:
        """Start painting (``value`` 1) or erasing (0) on slice ``z``, only where ``allowed``."""
        self._idle("begin a stroke")
        if isinstance(z, bool) or not isinstance(z, int | np.integer) or not 0 <= z < self.shape[0]:
            raise ValueError(f"slice {z!r} is not in 0..{self.shape[0] - 1}")
        if value not in (0, 1) or isinstance(value, bool):
            raise ValueError(f"stroke value must be 0 (erase) or 1 (paint), got {value!r}")
        if not np.allclose(brush.spacing_yx, self.spacing[1:], rtol=1e-6, atol=0):
            raise ValueError(
                f"brush spacing {brush.spacing_yx} is not the mask's {self.spacing[1:]}"
            )
        if allowed is not None and (
            not isinstance(allowed, np.ndarray)
            or allowed.shape != self.shape
            or allowed.dtype != bool
        ):
            raise ValueError(f"allowed must be bool {self.shape}, got {_describe(allowed)}")
        z = int(z)
        self._stroke = _Stroke(
            z=z,
            value=int(value),
            footprint=brush.footprint(),
            allowed=None if allowed is None else allowed[z],
            before=self.data[z].copy(),
        )

    def stroke_to(self, y: float, x: float) -> None:
        """Stamp the brush on every voxel of the line from the last sample to ``(y, x)``."""
        s = self._stroke
        if s is None:
            raise RuntimeError("stroke_to needs begin_stroke first")
        point = (_finite(y, "stroke y"), _finite(x, "stroke x"))
        start, s.last = s.last, point
        height, width = self.shape[1:]
        hy, hx = s.footprint.shape[0] // 2, s.footprint.shape[1] // 2
        pad = np.array([hy + 1.0, hx + 1.0])
        lo, hi = -pad, np.array([height - 1.0, width - 1.0]) + pad
        clipped = clip_segment(np.array(start or point), np.array(point), lo, hi)
        if clipped is None:
            return
        centres = line(*clipped)
        # a canvas over the centres' box grown by the footprint: every stamp is a plain OR
        top, left = centres.min(axis=0) - (hy, hx)
        bottom, right = centres.max(axis=0) + (hy + 1, hx + 1)
        canvas = np.zeros((bottom - top, right - left), bool)
        fh, fw = s.footprint.shape
        for cy, cx in centres - (top + hy, left + hx):
            canvas[cy : cy + fh, cx : cx + fw] |= s.footprint
        y0, y1 = max(top, 0), min(bottom, height)
        x0, x1 = max(left, 0), min(right, width)
        if y0 >= y1 or x0 >= x1:
            return
        paint = canvas[y0 - top : y1 - top, x0 - left : x1 - left]
        window = self.data[s.z, y0:y1, x0:x1]
        paint &= window != s.value
        if s.allowed is not None:
            paint &= s.allowed[y0:y1, x0:x1]
        tight = Region.of(paint[None])
        if tight is None:
            return
        window[paint] = s.value
        region = Region(s.z, s.z + 1, y0 + tight.y0, y0 + tight.y1, x0 + tight.x0, x0 + tight.x1)
        s.box = region if s.box is None else s.box.union(region)
        self._changed(region)

    def _finish(self, what: str) -> _Stroke:
        """The stroke, which is over after this."""
        if self._stroke is None:
            raise RuntimeError(f"{what} without a stroke")
        stroke, self._stroke = self._stroke, None
        return stroke

    def end_stroke(self) -> Region | None:
        """Finish the stroke as one undo item; the region it changed, or None if nothing."""
        s = self._finish("end_stroke")
        if s.box is None:
            return None
        box, before = s.box.slices(), s.before[None, s.box.y0 : s.box.y1, s.box.x0 : s.box.x1]
        label = "paint" if s.value else "erase"
        # a stroke only ever sets its one value, so every voxel it changed still differs
        change = Change.between(before, self.data[box], s.box, label)
        self.history.push(change)
        return change.region

    def abort_stroke(self) -> Region | None:
        """Put back every voxel the stroke changed; no undo item. The region restored, or None."""
        s = self._finish("abort_stroke")
        if s.box is None:
            return None
        box, before = s.box.slices(), s.before[None, s.box.y0 : s.box.y1, s.box.x0 : s.box.x1]
        self.data[box] = before
        self._changed(s.box)
        return s.box

    # --- whole-mask edits and undo

    def apply(self, new: np.ndarray, label: str) -> Region | None:
        """Replace the mask by ``new`` (bool or 0/1, same shape) as one undo item ``label``.

        For fill, island removal, component accept/reject, "start from AI/GT/empty": only the
        voxels that differ are stored. Returns the region that changed, or None.
        """
        self._idle("apply an edit")
        if np.shape(new) != self.shape:
            raise ValueError(f"new mask is {np.shape(new)}, the mask {self.shape}")
        new = as_mask(new, "new mask")
        region = Region.of(self.data != new)
        if region is None:
            return None
        box = region.slices()
        change = Change.between(self.data[box], new[box].astype(np.uint8), region, label)
        self.data[box] = new[box]
        self.history.push(change)
        self._changed(region)
        return region

    def undo(self) -> Region | None:
        """Undo the newest edit; the region it restored, or None with nothing to undo."""
        return self._step(self.history.undo, "undo")

    def redo(self) -> Region | None:
        """Redo the last undone edit; the region it changed, or None with nothing to redo."""
        return self._step(self.history.redo, "redo")

    def _step(self, step: Callable[[np.ndarray], Region | None], what: str) -> Region | None:
        self._idle(what)
        region = step(self.data)
        if region is not None:
            self._changed(region)
        return region


def _describe(a: object) -> str:
    if isinstance(a, np.ndarray):
        return f"{a.dtype} {a.shape}"
    return type(a).__name__
