"""Lookup tables and overlay rendering, numpy only (testable without Qt).

LUTs are ``(256, 3)`` uint8, the form pyqtgraph's ``ImageItem`` maps through without a slow path.
Overlays become ``(y, x, 4)`` uint8 RGBA slices; the view caches them per slice, so a slice
change after the first visit costs a dictionary lookup, not a render.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

N = 256


def _to_lut(rgb: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(rgb * 255.0), 0, 255).astype(np.uint8)


def gray() -> np.ndarray:
    ramp = np.linspace(0.0, 1.0, N)
    return _to_lut(np.stack([ramp] * 3, axis=1))


def turbo() -> np.ndarray:
    """Google's Turbo (Mikhailov 2019), polynomial fit: a rainbow without jet's false bands."""
    x = np.linspace(0.0, 1.0, N)
    coefficients = (
        (0.13572138, 4.61539260, -42.66032258, 132.13108234, -152.94239396, 59.28637943),
        (0.09140261, 2.19418839, 4.84296658, -14.18503333, 4.27729857, 2.82956604),
        (0.10667330, 12.64194608, -60.58204836, 110.36276771, -89.90310912, 27.34824973),
    )
    return _to_lut(np.stack([np.polynomial.polynomial.polyval(x, c) for c in coefficients], 1))


def jet() -> np.ndarray:
    x = np.linspace(0.0, 1.0, N)
    return _to_lut(np.stack([1.5 - np.abs(4 * x - k) for k in (3, 2, 1)], axis=1))


def hot() -> np.ndarray:
    x = np.linspace(0.0, 1.0, N)
    return _to_lut(np.stack([3 * x, 3 * x - 1, 3 * x - 2], axis=1))


def black_floor(lut: np.ndarray) -> np.ndarray:
    """``lut`` with its lowest entry black: a map's 0 (outside the brain) and everything under
    the window then read as background instead of the rainbow's dark blue."""
    lut = lut.copy()
    lut[0] = 0
    return lut


LUTS: dict[str, np.ndarray] = {
    "gray": gray(),
    "turbo": turbo(),
    "jet": jet(),
    "hot": hot(),
    "turbo-map": black_floor(turbo()),
    "jet-map": black_floor(jet()),
}
#: Default LUT per channel: grey CT, rainbow maps on black (what RAPID-like reports show).
CHANNEL_LUTS = {
    "CT": "gray",
    "CBF": "turbo-map",
    "CBV": "turbo-map",
    "MTT": "turbo-map",
    "Tmax": "turbo-map",
}


def contour(mask: np.ndarray) -> np.ndarray:
    """Border pixels of a 2D bool mask: the mask XOR its erosion (the image edge counts as border)."""
    return mask ^ ndimage.binary_erosion(mask)


def mask_rgba(
    mask: np.ndarray, color: tuple[int, int, int], outline: bool = False
) -> np.ndarray | None:
    """RGBA of a 2D mask (voxels != 0) in ``color``, filled or outlined; None when empty."""
    drawn = np.asarray(mask) != 0
    if not drawn.any():
        return None
    if outline:
        drawn = contour(drawn)
    rgba = np.zeros((*drawn.shape, 4), np.uint8)
    rgba[drawn] = (*color, 255)
    return rgba


def heat_rgba(
    values: np.ndarray,
    vmax: float,
    color: tuple[int, int, int],
    lut: str = "",
    outline: bool = False,
    threshold: float = 0.5,
) -> np.ndarray | None:
    """RGBA of a 2D map in ``[0, vmax]``: colour from ``lut`` (else ``color``), alpha growing with
    the value so low values fade out; outlined, the contour of ``values >= threshold``."""
    if outline:
        return mask_rgba(np.asarray(values) >= threshold, color, outline=True)
    scaled = np.clip(np.asarray(values, np.float32) * (255.0 / vmax), 0, 255).astype(np.uint8)
    if not scaled.any():
        return None
    rgba = np.empty((*scaled.shape, 4), np.uint8)
    rgba[..., :3] = LUTS[lut][scaled] if lut else np.asarray(color, np.uint8)
    rgba[..., 3] = scaled
    return rgba
