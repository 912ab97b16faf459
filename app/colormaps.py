"""Lookup tables and overlay rendering, numpy only (testable without Qt).

LUTs are ``(256, 3)`` uint8, the form pyqtgraph's ``ImageItem`` maps through without a slow path.
Overlays become ``(y, x, 4)`` uint8 RGBA slices; the view caches them per slice, so a slice
change after the first visit costs a dictionary lookup, not a render.
"""

from __future__ import annotations

import numpy as np

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


LUTS: dict[str, np.ndarray] = {"gray": gray(), "turbo": turbo(), "jet": jet(), "hot": hot()}
#: Default LUT per channel: grey CT, rainbow maps (what RAPID-like reports show).
CHANNEL_LUTS = {"CT": "gray", "CBF": "turbo", "CBV": "turbo", "MTT": "turbo", "Tmax": "turbo"}


def contour(mask: np.ndarray, width: int = 1) -> np.ndarray:
    """Border pixels of a 2D bool mask, ``width`` pixels thick inside it: the mask minus its
    erosion by the 4-neighbour cross ``width`` times, the image edge counting as outside (numpy
    only: no scipy import on the GUI thread)."""
    eroded = mask
    for _ in range(width):
        padded = np.pad(eroded, 1)
        eroded = (
            eroded
            & padded[:-2, 1:-1]  # pixel above
            & padded[2:, 1:-1]
            & padded[1:-1, :-2]
            & padded[1:-1, 2:]
        )
    return mask & ~eroded


def mask_rgba(
    mask: np.ndarray, color: tuple[int, int, int], outline: bool = False, width: int = 1
) -> np.ndarray | None:
    """RGBA of a 2D mask (voxels != 0) in ``color``, filled or outlined ``width`` pixels thick;
    None when empty."""
    drawn = np.asarray(mask) != 0
    if not drawn.any():
        return None
    if outline:
        drawn = contour(drawn, width)
    rgba = np.zeros((*drawn.shape, 4), np.uint8)
    rgba[drawn] = (*color, 255)
    return rgba


def labels_rgba(
    labels: np.ndarray,
    palette: tuple[tuple[int, int, int], ...],
    outline: bool = False,
    width: int = 1,
) -> np.ndarray | None:
    """RGBA of a 2D label image, label ``k`` in ``palette[k - 1]`` (0 and unknown labels clear),
    filled or each label outlined; None when empty."""
    labels = np.asarray(labels)
    if not labels.any():
        return None
    lut = np.zeros((256, 4), np.uint8)
    for k, color in enumerate(palette, start=1):
        lut[k] = (*color, 255)
    rgba = lut[labels.astype(np.uint8)]
    if outline:
        edge = np.zeros(labels.shape, bool)
        for k in range(1, len(palette) + 1):
            edge |= contour(labels == k, width)
        rgba[~edge] = 0
    return rgba if rgba[..., 3].any() else None


def heat_rgba(
    values: np.ndarray,
    vmax: float,
    color: tuple[int, int, int],
    lut: str = "",
    outline: bool = False,
    threshold: float = 0.5,
    width: int = 1,
) -> np.ndarray | None:
    """RGBA of a 2D map in ``[0, vmax]``: colour from ``lut`` (else ``color``), alpha growing with
    the value so low values fade out; outlined, the contour of ``values >= threshold``."""
    if outline:
        return mask_rgba(np.asarray(values) >= threshold, color, outline=True, width=width)
    scaled = np.clip(np.asarray(values, np.float32) * (255.0 / vmax), 0, 255).astype(np.uint8)
    if not scaled.any():
        return None
    rgba = np.empty((*scaled.shape, 4), np.uint8)
    rgba[..., :3] = LUTS[lut][scaled] if lut else np.asarray(color, np.uint8)
    rgba[..., 3] = scaled
    return rgba


def composite(layers: list[tuple[np.ndarray, float]]) -> np.ndarray | None:
    """Straight-alpha RGBA of ``(rgba, opacity)`` layers drawn in order, each over the ones
    before; None when nothing is drawn. One image per pane then replaces one per layer
    (pyqtgraph's ``drawImage`` per item per paint costs more than this blend). The blend runs
    only inside the bounding box of the drawn pixels, which for masks is the lesion's."""
    if not layers:
        return None
    drawn = np.zeros(layers[0][0].shape[:2], bool)
    for rgba, _ in layers:
        drawn |= rgba[..., 3] > 0
    rows, cols = np.flatnonzero(drawn.any(axis=1)), np.flatnonzero(drawn.any(axis=0))
    if rows.size == 0:
        return None
    box = (slice(rows[0], rows[-1] + 1), slice(cols[0], cols[-1] + 1))
    shape = (rows[-1] + 1 - rows[0], cols[-1] + 1 - cols[0])
    color = np.zeros((*shape, 3), np.float32)  # premultiplied by alpha
    alpha = np.zeros(shape, np.float32)
    a, keep = np.empty(shape, np.float32), np.empty(shape, np.float32)
    for rgba, opacity in layers:
        part = rgba[box]
        np.multiply(part[..., 3], np.float32(opacity / 255.0), out=a)
        np.subtract(1.0, a, out=keep)
        color *= keep[..., None]
        color += part[..., :3] * a[..., None]
        alpha *= keep
        alpha += a
    color /= np.maximum(alpha, 1e-6)[..., None]
    out = np.zeros((*drawn.shape, 4), np.uint8)
    out[box][..., :3] = color + 0.5
    out[box][..., 3] = alpha * 255.0 + 0.5
    return out
