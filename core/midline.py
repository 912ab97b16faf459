"""The head's midline (mid-sagittal plane) and the two hemispheres it separates.

Relative CBF needs the healthy hemisphere, and the image centre or the brain's centroid column
is not the midline: heads lie turned (yaw) and tilted (roll) in the scanner, and a slab or the
field of view can sit off the head's centre. The mid-sagittal plane is found as the plane of
best mirror symmetry of the head, in mm (anisotropic pixels reflect correctly):

- the image (CT clipped to ``SYMMETRY_HU``: air, brain texture and the skull's ring, or a brain
  mask) is resampled, per trial angle, onto a grid of ``GRID_MM`` whose columns run across the
  trial axis (search over ``±MAX_ANGLE_DEG`` around the image's y axis, coarse then fine);
- for a column axis, mirroring is ``j -> s - j``, so the self-convolution of each grid row,
  ``C(s) = sum_j g[j] g[s - j]`` (one FFT per row), scores every mirror position at once; its
  maximum over ``s`` divided by the energy ``sum g^2`` is 1 exactly for a symmetric image;
- the angle common to all slices (a plane's in-plane direction does not change with z) is the
  one of best total score; each slice then gets its own offset, and with three or more slices
  the offsets are fitted as a line in z (a plane: roll moves the line across the slices), once
  more without slices that miss it by more than ``OUTLIER_MM``.

A lesion breaks the symmetry only locally, so it lowers the score, not the position of its
maximum. The healthy hemisphere is the side of lower mean Tmax (or, without Tmax, higher mean
CBF): means, because a lesion smaller than half a hemisphere moves them.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from strokelens.core.metrics import check_spacing

#: CT window of the symmetry image (HU): air and CSF low, bone saturated, brain in between.
SYMMETRY_HU = (0.0, 100.0)
#: Grid step (mm) of the symmetry search: a head is ~150 mm wide, 2 mm places the plane to
#: well under a pixel after the sub-step peak fit.
GRID_MM = 2.0
#: Largest head turn (degrees from the image's y axis) searched: positioning keeps heads
#: within a few degrees; 30 also refuses the diagonals of a square mask.
MAX_ANGLE_DEG = 30.0
COARSE_STEP_DEG = 2.0
FINE_STEP_DEG = 0.25
#: Slices whose offset misses the fitted plane by more than this (mm) are left out of the fit.
OUTLIER_MM = 3.0
#: Slices the angle search reads (the ones holding most of the head); the offsets use all.
ANGLE_SLICES = 8


@dataclass(frozen=True)
class Midline:
    """The mid-sagittal plane as one in-plane line per slice.

    Points ``p`` (mm, ``(y, x)`` = voxel index times spacing) with
    ``(p - centre_mm) . normal = offsets_mm[z]`` lie on slice ``z``'s line; ``normal`` is
    ``(-sin a, cos a)`` for ``angle_deg`` = a, the line's turn from the image's y axis (0:
    along the columns), so the positive side is towards higher x at small angles.
    ``symmetry`` (0-1) is the mirror score at the fit: 1 for a perfectly symmetric head.
    """

    angle_deg: float
    centre_mm: tuple[float, float]
    offsets_mm: tuple[float, ...]
    spacing_yx: tuple[float, float]
    symmetry: float

    @property
    def normal(self) -> np.ndarray:
        a = math.radians(self.angle_deg)
        return np.array([-math.sin(a), math.cos(a)])

    def distance_mm(self, shape: Sequence[int]) -> np.ndarray:
        """Signed distance (mm, float32 ``shape`` = (z, y, x)) of each voxel from the plane."""
        z, h, w = (int(n) for n in shape)
        if z != len(self.offsets_mm):
            raise ValueError(f"the midline has {len(self.offsets_mm)} slices, the volume {z}")
        ny, nx = self.normal
        dy, dx = self.spacing_yx
        cy, cx = self.centre_mm
        row = (np.arange(h) * dy - cy) * ny
        col = (np.arange(w) * dx - cx) * nx
        plane = row[:, None] + col[None, :]
        offsets = np.asarray(self.offsets_mm)[:, None, None]
        return (plane[None] - offsets).astype(np.float32)

    def sides(self, shape: Sequence[int]) -> tuple[np.ndarray, np.ndarray]:
        """Bool ``(negative, positive)`` side of every voxel (a voxel on the plane: positive)."""
        positive = self.distance_mm(shape) >= 0
        return ~positive, positive

    def segment(self, z: int, shape: Sequence[int]) -> tuple[tuple[float, float], ...]:
        """Two (y, x) voxel points of slice ``z``'s line spanning the image (for drawing)."""
        h, w = int(shape[-2]), int(shape[-1])
        dy, dx = self.spacing_yx
        a = math.radians(self.angle_deg)
        along = np.array([math.cos(a), math.sin(a)])
        foot = np.array(self.centre_mm) + self.offsets_mm[z] * self.normal
        reach = math.hypot(h * dy, w * dx)
        ends = [foot + t * reach * along for t in (-1.0, 1.0)]
        return tuple((float(p[0] / dy), float(p[1] / dx)) for p in ends)


def symmetry_image(ct: np.ndarray | None = None, brain: np.ndarray | None = None) -> np.ndarray:
    """What the midline is fitted on: the CT clipped to ``SYMMETRY_HU`` inside the brain mask
    (sulci and ventricles; on the phantom this placed the plane best), else either alone."""
    if ct is None and brain is None:
        raise ValueError("the midline needs a CT or a brain mask")
    if ct is None:
        return (np.asarray(brain) != 0).astype(np.float32)
    image = np.clip(np.asarray(ct, np.float32), *SYMMETRY_HU)
    return image if brain is None else np.where(np.asarray(brain) != 0, image, np.float32(0))


def _grid(image: np.ndarray, spacing_yx, centre, half: int, angle_deg: float) -> np.ndarray:
    """``image`` resampled to ``(z, rows along the trial axis, columns across it)``."""
    a = math.radians(angle_deg)
    along, across = np.array([math.cos(a), math.sin(a)]), np.array([-math.sin(a), math.cos(a)])
    u = (np.arange(2 * half + 1) - half) * GRID_MM
    pts = np.asarray(centre)[:, None, None] + along[:, None, None] * u[None, :, None]
    pts = pts + across[:, None, None] * u[None, None, :]
    y, x = pts[0] / spacing_yx[0], pts[1] / spacing_yx[1]
    n = image.shape[0]
    zz = np.broadcast_to(np.arange(n, dtype=np.float64)[:, None, None], (n, *y.shape))
    coords = np.stack([zz, np.broadcast_to(y, zz.shape), np.broadcast_to(x, zz.shape)])
    return ndimage.map_coordinates(image, coords, order=1, mode="constant", cval=0.0)


def _mirror_scores(grid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per slice, ``C(s)`` for every mirror position ``s`` (``(z, 2m)``) and the energy."""
    m = grid.shape[-1]
    spectrum = np.fft.rfft(grid, n=2 * m, axis=-1)
    conv = np.fft.irfft(spectrum * spectrum, n=2 * m, axis=-1).sum(axis=1)
    return conv, (grid.astype(np.float64) ** 2).sum(axis=(1, 2))


def _angle_score(grid: np.ndarray) -> float:
    conv, energy = _mirror_scores(grid)
    return float(conv.max(axis=1).sum() / max(energy.sum(), 1e-12))


def _peak(values: np.ndarray) -> float:
    """Index of the maximum, refined by a parabola through it and its neighbours."""
    k = int(np.argmax(values))
    if 0 < k < len(values) - 1:
        a, b, c = values[k - 1], values[k], values[k + 1]
        denom = a - 2 * b + c
        if denom < 0:
            return k + 0.5 * (a - c) / denom
    return float(k)


def fit_midline(
    image: np.ndarray, spacing: Sequence[float], max_angle_deg: float = MAX_ANGLE_DEG
) -> Midline:
    """The mid-sagittal plane of a ``(z, y, x)`` head image (see the module docstring).

    ``image``: non-negative, 0 outside the head (``symmetry_image``). ValueError when it is
    empty.
    """
    image = np.asarray(image, np.float32)
    if image.ndim != 3:
        raise ValueError(f"the midline needs a (z, y, x) volume, got shape {image.shape}")
    spacing_yx = tuple(float(s) for s in check_spacing(spacing)[1:])
    if not np.isfinite(image).all() or (image < 0).any():
        raise ValueError("the midline's image must be finite and non-negative")
    if not image.any():
        raise ValueError("the midline needs a head: the image is empty")
    dy, dx = spacing_yx
    # smoothed to the grid step: the search grid reads it without aliasing
    sigma = (0.0, GRID_MM / (2 * dy), GRID_MM / (2 * dx))
    smooth = ndimage.gaussian_filter(image, sigma, mode="constant")
    ys, xs = np.nonzero(image.any(axis=0))
    weights = image.sum(axis=0)[ys, xs]
    centre = (
        float(np.average(ys, weights=weights) * dy),
        float(np.average(xs, weights=weights) * dx),
    )
    reach = np.hypot(ys * dy - centre[0], xs * dx - centre[1]).max()
    half = int(math.ceil(reach / GRID_MM)) + 2

    per_slice = image.sum(axis=(1, 2))
    chosen = np.sort(np.argsort(per_slice)[::-1][: min(ANGLE_SLICES, len(per_slice))])
    search = smooth[chosen]

    def best(angles: np.ndarray) -> float:
        scores = [_angle_score(_grid(search, spacing_yx, centre, half, a)) for a in angles]
        return float(angles[int(np.argmax(scores))])

    coarse = best(np.arange(-max_angle_deg, max_angle_deg + 1e-9, COARSE_STEP_DEG))
    fine = np.arange(coarse - COARSE_STEP_DEG, coarse + COARSE_STEP_DEG + 1e-9, FINE_STEP_DEG)
    angle = best(fine[np.abs(fine) <= max_angle_deg + 1e-9])

    conv, energy = _mirror_scores(_grid(smooth, spacing_yx, centre, half, angle))
    # column j sits at (j - half) * GRID_MM across the axis; mirror position s at s / 2
    offsets = np.array([(_peak(c) / 2 - half) * GRID_MM for c in conv])
    held = energy > 0
    symmetry = float(conv.max(axis=1)[held].sum() / energy[held].sum())
    offsets = _plane_fit(offsets, energy)
    return Midline(angle, centre, tuple(float(o) for o in offsets), spacing_yx, symmetry)


def _plane_fit(offsets: np.ndarray, energy: np.ndarray) -> np.ndarray:
    """Per-slice offsets as a weighted line in z (3+ slices with head), outliers refitted out;
    slices without head take the line's (or the others' mean) value."""
    z = np.arange(len(offsets), dtype=np.float64)
    use = energy > 0
    if use.sum() < 3:
        fill = np.average(offsets[use], weights=energy[use])
        return np.where(use, offsets, fill)
    for _ in range(2):
        coef = np.polyfit(z[use], offsets[use], 1, w=np.sqrt(energy[use]))
        line = np.polyval(coef, z)
        keep = use & (np.abs(offsets - line) <= OUTLIER_MM)
        if keep.sum() < 3 or keep.sum() == use.sum():
            break
        use = keep
    return line


def healthy_hemisphere(
    brain: np.ndarray,
    midline: Midline,
    cbf: np.ndarray,
    tmax: np.ndarray | None = None,
) -> np.ndarray:
    """Bool mask of the healthy hemisphere's brain voxels: the side of lower mean Tmax, or
    without Tmax the side of higher mean CBF. ValueError when a side holds no brain."""
    brain = np.asarray(brain) != 0
    negative, positive = midline.sides(brain.shape)
    a, b = brain & negative, brain & positive
    if not a.any() or not b.any():
        raise ValueError("relative CBF needs brain voxels on both sides of the midline")
    if tmax is not None:
        return a if tmax[a].mean() <= tmax[b].mean() else b
    return a if cbf[a].mean() >= cbf[b].mean() else b


def healthy_reference(
    cbf: np.ndarray, brain: np.ndarray, midline: Midline, tmax: np.ndarray | None = None
) -> tuple[float, np.ndarray]:
    """The reference of relative CBF (RAPID's): the mean CBF of the healthy hemisphere's brain,
    and that hemisphere's bool mask. ValueError when there is no reference."""
    healthy = healthy_hemisphere(brain, midline, cbf, tmax)
    reference = float(np.mean(cbf[healthy], dtype=np.float64))
    if not math.isfinite(reference) or reference <= 0:
        raise ValueError(f"the healthy hemisphere's mean CBF is {reference}: no reference")
    return reference, healthy
