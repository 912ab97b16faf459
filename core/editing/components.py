"""Connected components of a ``(z, y, x)`` mask: islands, holes, flood fill, the component at a voxel.

Each works in 3D or per axial slice (``per_slice``): 5 mm slices make a 3D neighbour a
different tissue layer, so hole filling and flood fill default to the slice the user is
looking at, and island removal to whole 3D lesions. ``connectivity`` is scipy's: 1 joins voxels
sharing a face, 2 an edge, 3 (3D only) a corner. Results are new uint8 0/1 arrays (as masks are
stored); the input is never changed.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from strokelens.core.metrics import as_mask, check_spacing


def _structure(per_slice: bool, connectivity: int) -> np.ndarray:
    """scipy's neighbourhood as a 3D structure; per slice, only the middle plane is set."""
    rank = 2 if per_slice else 3
    if isinstance(connectivity, bool) or connectivity not in range(1, rank + 1):
        what = "per slice" if per_slice else "in 3D"
        raise ValueError(f"connectivity {connectivity!r} {what} must be 1..{rank}")
    if not per_slice:
        return ndimage.generate_binary_structure(3, connectivity)
    structure = np.zeros((3, 3, 3), bool)
    structure[1] = ndimage.generate_binary_structure(2, connectivity)
    return structure


def _check_mask(mask: np.ndarray) -> np.ndarray:
    """A bool view/copy of a (z, y, x) bool or 0/1 mask."""
    if np.ndim(mask) != 3:
        raise ValueError(f"need a (z, y, x) mask, got shape {np.shape(mask)}")
    return as_mask(mask, "mask")


def _check_seed(seed_zyx: Sequence[int], shape: tuple[int, ...]) -> tuple[int, int, int]:
    seed = tuple(seed_zyx)
    if len(seed) != 3 or not all(
        isinstance(s, int | np.integer) and not isinstance(s, bool) and 0 <= s < n
        for s, n in zip(seed, shape, strict=True)
    ):
        raise ValueError(f"seed {seed_zyx!r} is not a (z, y, x) voxel of a {shape} mask")
    return tuple(int(s) for s in seed)  # type: ignore[return-value]


def label(
    mask: np.ndarray, per_slice: bool = False, connectivity: int = 1
) -> tuple[np.ndarray, int]:
    """Components of the non-zero voxels: int32 labels (0 = background) and their number.

    Per slice, labels are still unique across the volume (a component never spans slices).
    """
    labels, n = ndimage.label(
        _check_mask(mask), structure=_structure(per_slice, connectivity), output=np.int32
    )
    return labels, int(n)


def check_min_ml(min_ml: float) -> float:
    """``min_ml`` as a float; ValueError unless a finite volume >= 0 (NaN or a negative one would
    silently keep every component)."""
    min_ml = float(min_ml)
    if not np.isfinite(min_ml) or min_ml < 0:
        raise ValueError(f"min_ml must be a finite volume >= 0, got {min_ml}")
    return min_ml


def remove_islands(
    mask: np.ndarray,
    min_ml: float,
    spacing: Sequence[float],
    per_slice: bool = False,
    connectivity: int = 1,
) -> np.ndarray:
    """The mask without its components smaller than ``min_ml`` (mL; spacing in mm, (z, y, x))."""
    min_ml = check_min_ml(min_ml)
    sp = check_spacing(spacing)
    binary = _check_mask(mask)
    if min_ml == 0 or not binary.any():
        return binary.astype(np.uint8)
    labels, n = label(binary, per_slice, connectivity)
    sizes = np.bincount(labels.ravel(), minlength=n + 1) * np.prod(sp) / 1e3
    keep = sizes >= min_ml
    keep[0] = False
    return keep[labels].astype(np.uint8)


def fill_holes(mask: np.ndarray, per_slice: bool = True) -> np.ndarray:
    """The mask with its holes (background not connected to the border) filled.

    The background connects through faces (connectivity 1), so a hole enclosed by a
    diagonal-step outline is filled, as a drawn outline is meant.
    """
    binary = _check_mask(mask)
    if not per_slice:
        return ndimage.binary_fill_holes(binary).astype(np.uint8)
    out = np.empty(binary.shape, np.uint8)
    for z, plane in enumerate(binary):
        out[z] = ndimage.binary_fill_holes(plane)
    return out


def _component(
    region: np.ndarray, seed: tuple[int, int, int], per_slice: bool, connectivity: int
) -> np.ndarray:
    """Bool mask of the component of ``region`` (bool, True at ``seed``) holding ``seed``."""
    structure = _structure(per_slice, connectivity)
    out = np.zeros(region.shape, bool)
    if per_slice:
        z = seed[0]
        labels, _ = ndimage.label(region[z], structure=structure[1])
        out[z] = labels == labels[seed[1:]]
    else:
        labels, _ = ndimage.label(region, structure=structure)
        out[...] = labels == labels[seed]
    return out


def flood_fill(
    mask: np.ndarray,
    seed_zyx: Sequence[int],
    allowed: np.ndarray | None,
    per_slice: bool = True,
    value: int = 1,
    connectivity: int = 1,
) -> np.ndarray:
    """Paint bucket: set ``value`` on the connected region of voxels that are ``allowed`` (None:
    everywhere) and hold the seed's value. A seed outside ``allowed``, or one already holding
    ``value``, changes nothing."""
    if value not in (0, 1):
        raise ValueError(f"flood fill value must be 0 or 1, got {value!r}")
    binary = _check_mask(mask)
    seed = _check_seed(seed_zyx, binary.shape)
    region = binary == binary[seed]
    if allowed is not None:
        if allowed.shape != binary.shape or allowed.dtype != bool:
            raise ValueError(
                f"allowed must be bool {binary.shape}, got {allowed.dtype} {allowed.shape}"
            )
        region &= allowed
    out = binary.astype(np.uint8)
    if region[seed] and binary[seed] != value:
        out[_component(region, seed, per_slice, connectivity)] = value
    return out


def component_at(
    mask: np.ndarray, seed_zyx: Sequence[int], per_slice: bool = False, connectivity: int = 1
) -> np.ndarray | None:
    """Bool mask of the component holding ``seed_zyx`` (None when that voxel is background)."""
    binary = _check_mask(mask)
    seed = _check_seed(seed_zyx, binary.shape)
    if not binary[seed]:
        return None
    return _component(binary, seed, per_slice, connectivity)
