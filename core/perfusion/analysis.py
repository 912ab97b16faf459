"""Perfusion maps (CBF, CBV, MTT, Tmax) from a 4D CT-perfusion series.

Steps: brain mask on the pre-bolus image (HU window, opening, largest 3D component, in-plane hole
fill, window again so CSF and bone stay out), baseline subtraction (pre-bolus frames found on the
mean brain curve), in-plane Gaussian smoothing normalised to the mask (no CSF/bone bleeding in),
automatic AIF (early, high, narrow peaks), VOF for partial-volume scaling of the AIF area, then
``deconvolution.perfusion_parameters`` over all brain voxels at once.

Units: CBF mL/100 g/min, CBV mL/100 g, MTT s, Tmax s; 0 outside the brain.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from strokelens.core.perfusion.deconvolution import check_arguments, perfusion_parameters

#: baseline HU window of brain parenchyma: CSF (0-10 HU) below, bone and calcification above.
BRAIN_HU = (15.0, 80.0)
#: the bolus has arrived when the mean brain enhancement passes this fraction of its peak (low:
#: early-arriving tissue must not leak into the baseline; the brain mean is almost noise-free).
ARRIVAL_FRACTION = 0.02
#: voxels averaged into the AIF and the VOF.
N_AIF = 5
#: AIF candidates: this top fraction of brain voxels by peak enhancement.
AIF_PEAK_FRACTION = 0.01
#: a VOF must arrive this many frames after the AIF and hold this fraction of its area.
VOF_LAG_FRAMES = 2
VOF_MIN_AREA = 0.5
#: frames a series needs: baseline frames before the bolus, its rise, peak and wash-out (the AIF
#: search reads the last 3 frames as wash-out, the VOF peaks 2 frames after the AIF); an arterial
#: bolus passage alone lasts ~10 s, ISLES series have 43-64 frames.
MIN_FRAMES = 10
#: largest in-plane smoothing sigma (mm): the default is 2 mm; wider blurs lesions into their
#: surroundings, and the kernel's cost grows with it.
MAX_SMOOTH_MM = 20.0


@dataclass
class PerfusionMaps:
    """Perfusion maps of one scan, ``(z, y, x)`` float32 each, plus what they were computed from."""

    cbf: np.ndarray  # mL/100 g/min
    cbv: np.ndarray  # mL/100 g
    mtt: np.ndarray  # s
    tmax: np.ndarray  # s
    brain_mask: np.ndarray  # bool
    aif: np.ndarray  # (T,) HU enhancement of the AIF used (after partial-volume scaling)
    vof: np.ndarray | None  # (T,) HU enhancement of the VOF, None when no vein was found
    aif_voxels: np.ndarray  # (n, 3) z, y, x indices averaged into the AIF
    baseline: np.ndarray | None = None  # (z, y, x) HU, mean of the pre-bolus frames


def segment_brain(baseline: np.ndarray, spacing=(5.0, 1.0, 1.0)) -> np.ndarray:
    """Brain parenchyma of a pre-contrast ``(z, y, x)`` HU image, bool."""
    sy, sx = float(spacing[1]), float(spacing[2])
    image = ndimage.median_filter(baseline.astype(np.float32), size=(1, 3, 3))
    window = (image > BRAIN_HU[0]) & (image < BRAIN_HU[1])
    # ~3 mm opening cuts scalp and orbit bridges through skull gaps
    ry, rx = max(1, round(1.5 / sy)), max(1, round(1.5 / sx))
    yy, xx = np.ogrid[-ry : ry + 1, -rx : rx + 1]
    disk = ((yy * sy) ** 2 + (xx * sx) ** 2 <= 1.5**2 + 1e-6)[None]
    opened = ndimage.binary_opening(window, structure=disk)
    labels, n = ndimage.label(opened)
    if n == 0:
        return np.zeros(baseline.shape, dtype=bool)
    largest = np.argmax(np.bincount(labels.ravel())[1:]) + 1
    filled = ndimage.binary_fill_holes(labels == largest, structure=np.ones((1, 3, 3), bool))
    return filled & window


def bolus_arrival(mean_curve: np.ndarray) -> int:
    """First frame where the mean curve rises ``ARRIVAL_FRACTION`` of its peak over frame 0."""
    rise = mean_curve - mean_curve[0]
    return int(np.argmax(rise > ARRIVAL_FRACTION * rise.max())) if rise.max() > 0 else 0


def _smooth(enh: np.ndarray, mask: np.ndarray, sigma_px: tuple[float, float]) -> np.ndarray:
    """In-plane Gaussian of ``enh`` (T, z, y, x) inside ``mask``, normalised by the smoothed mask."""
    weight = ndimage.gaussian_filter(mask.astype(np.float32), (0, *sigma_px), truncate=3.0)
    weight = np.where(mask, 1.0 / np.maximum(weight, 1e-3), 0.0).astype(np.float32)
    out = np.empty_like(enh)
    for t in range(enh.shape[0]):
        ndimage.gaussian_filter(enh[t] * mask, (0, *sigma_px), output=out[t], truncate=3.0)
        out[t] *= weight
    return out


def _curve_shape(curves: np.ndarray, arrival: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Peak (HU), time to peak after arrival (frames, >= 1) and FWHM (frames) of ``(T, N)``."""
    peak = curves.max(axis=0)
    ttp = np.maximum(np.argmax(curves, axis=0) - arrival + 1, 1)
    fwhm = np.maximum(np.count_nonzero(curves >= 0.5 * peak, axis=0), 1)
    return peak, ttp, fwhm


def select_aif(smoothed: np.ndarray, arrival: int) -> np.ndarray:
    """Indices of the ``N_AIF`` most arterial brain curves ``(T, N)``, best first.

    Candidates are the top ``AIF_PEAK_FRACTION`` by peak of the smoothed curves that wash out
    (last frames below half the peak); score = peak / (time to peak * FWHM).
    """
    peak, ttp, fwhm = _curve_shape(smoothed, arrival)
    cut = np.quantile(peak, 1.0 - AIF_PEAK_FRACTION)
    washout = smoothed[-3:].mean(axis=0) < 0.5 * peak
    candidates = np.flatnonzero((peak >= cut) & washout & (peak > 0))
    if candidates.size == 0:
        candidates = np.flatnonzero(peak >= cut)
    score = peak[candidates] / (ttp[candidates] * fwhm[candidates])
    return candidates[np.argsort(score)[::-1][:N_AIF]]


def select_vof(smoothed: np.ndarray, aif_peak_frame: int) -> np.ndarray:
    """Indices of the ``N_AIF`` largest-area curves peaking ``VOF_LAG_FRAMES`` after the AIF."""
    late = np.flatnonzero(np.argmax(smoothed, axis=0) >= aif_peak_frame + VOF_LAG_FRAMES)
    area = smoothed[:, late].sum(axis=0)
    return late[np.argsort(area)[::-1][:N_AIF]]


@dataclass
class ArterialInput:
    """What the analysis finds before deconvolving: brain, bolus arrival, AIF (and VOF)."""

    brain_mask: np.ndarray  # bool (z, y, x)
    baseline: np.ndarray  # mean of the pre-bolus frames (z, y, x), HU
    arrival: int  # first frame of the bolus in the brain
    aif: np.ndarray  # (T,) HU enhancement, VOF-scaled where a vein was found
    vof: np.ndarray | None
    aif_voxels: np.ndarray  # (n, 3) z, y, x


def _enhancement(series: np.ndarray, spacing, brain_mask) -> tuple[np.ndarray, np.ndarray, int]:
    """``(brain mask, baseline, arrival frame)`` of a ``(T, z, y, x)`` series."""
    mask0 = (
        segment_brain(series[0], spacing) if brain_mask is None else np.asarray(brain_mask, bool)
    )
    if not mask0.any():
        raise ValueError("no brain voxel in the HU window of the first frame")
    arrival = bolus_arrival(series[:, mask0].mean(axis=1))
    base = series[: max(1, arrival)].mean(axis=0)
    mask = segment_brain(base, spacing) if brain_mask is None else mask0
    if not mask.any():
        raise ValueError("no brain voxel in the HU window of the baseline")
    return mask, base, arrival


def _arterial_input(
    enh: np.ndarray, curves: np.ndarray, idx: tuple[np.ndarray, ...], arrival: int
) -> tuple[np.ndarray, np.ndarray | None, np.ndarray]:
    """``(aif, vof, aif_voxels)``: voxels chosen on the smoothed ``curves`` (T, N) of ``idx``."""
    # AIF/VOF curves from the unsmoothed enhancement: smoothing would dilute a small vessel
    best = select_aif(curves, arrival)
    aif_voxels = np.stack([i[best] for i in idx], axis=1)
    aif = enh[(slice(None), *aif_voxels.T)].mean(axis=1)
    vof = None
    veins = select_vof(curves, int(np.argmax(aif)))
    if veins.size:
        vof = enh[(slice(None), *(i[veins] for i in idx))].mean(axis=1)
        if vof.sum() < VOF_MIN_AREA * aif.sum():
            vof = None  # late tissue, not a vein: no vein in the field of view
    if vof is not None and vof.sum() > aif.sum():
        aif = aif * (vof.sum() / aif.sum())  # partial volume: venous and arterial areas match
    return aif.astype(np.float32), vof, aif_voxels


def check_smooth_mm(smooth_mm: float) -> float:
    """``smooth_mm`` if it is a smoothing sigma in mm (0 to ``MAX_SMOOTH_MM``), else ValueError."""
    if not 0 <= smooth_mm <= MAX_SMOOTH_MM:
        raise ValueError(f"smooth_mm must lie in 0..{MAX_SMOOTH_MM:g} mm, not {smooth_mm}")
    return smooth_mm


def _checked_series(series: np.ndarray, smooth_mm: float, spacing) -> np.ndarray:
    """``series`` as float32, refused (ValueError) unless it is a finite ``(t, z, y, x)`` series
    of at least ``MIN_FRAMES`` frames that ``smooth_mm`` at ``spacing`` fits (a kernel wider
    than the image smooths nothing and costs hours)."""
    series = np.asarray(series, dtype=np.float32)
    if series.ndim != 4:
        raise ValueError(f"series must be (t, z, y, x), got shape {series.shape}")
    if series.shape[0] < MIN_FRAMES:
        raise ValueError(
            f"{series.shape[0]} frames: deconvolution needs at least {MIN_FRAMES} (baseline, "
            "bolus and wash-out)"
        )
    check_smooth_mm(smooth_mm)
    extent_mm = min(n * float(s) for n, s in zip(series.shape[2:], spacing[1:], strict=True))
    if 3 * smooth_mm > extent_mm:
        raise ValueError(f"smooth_mm {smooth_mm} spans more than the image ({extent_mm:g} mm)")
    if not np.isfinite(series).all():
        raise ValueError("the series holds NaN/Inf values")
    return series


def _smoothed_brain_curves(enh, mask, spacing, smooth_mm):
    sigma_px = (smooth_mm / float(spacing[1]), smooth_mm / float(spacing[2]))
    smoothed = _smooth(enh, mask, sigma_px) if smooth_mm > 0 else enh
    idx = np.nonzero(mask)
    return smoothed[(slice(None), *idx)], idx


def find_aif(
    series: np.ndarray, spacing=(5.0, 1.0, 1.0), smooth_mm: float = 2.0, brain_mask=None
) -> ArterialInput:
    """The brain mask, baseline and AIF that ``compute_maps`` uses, without deconvolving."""
    series = _checked_series(series, smooth_mm, spacing)
    mask, base, arrival = _enhancement(series, spacing, brain_mask)
    enh = series - base
    curves, idx = _smoothed_brain_curves(enh, mask, spacing, smooth_mm)
    aif, vof, voxels = _arterial_input(enh, curves, idx, arrival)
    return ArterialInput(mask, base, arrival, aif, vof, voxels)


def compute_maps(
    series: np.ndarray,
    dt: float = 1.0,
    spacing=(5.0, 1.0, 1.0),
    brain_mask: np.ndarray | None = None,
    aif: np.ndarray | None = None,
    smooth_mm: float = 2.0,
    svd_threshold: float = 0.1,
    oi_target: float | None = 0.095,
) -> PerfusionMaps:
    """CBF/CBV/MTT/Tmax maps of a ``(T, z, y, x)`` HU series.

    ``smooth_mm`` is the in-plane Gaussian sigma (mm; 0 = none). ``oi_target`` selects oSVD
    (per-voxel threshold, Wu's oscillation index 0.095); ``None`` gives bSVD with the fixed
    ``svd_threshold`` (fraction of the largest singular value). A given ``aif`` (``(T,)`` HU
    enhancement) is used as is, without VOF scaling. Impossible arguments (a frame interval
    <= 0, a negative smoothing, a threshold outside (0, 1), too few frames, NaN) raise a
    ValueError naming the argument, before any work.
    """
    series = _checked_series(series, smooth_mm, spacing)
    check_arguments(dt, svd_threshold, oi_target)
    mask, base, arrival = _enhancement(series, spacing, brain_mask)
    enh = series - base
    curves, idx = _smoothed_brain_curves(enh, mask, spacing, smooth_mm)
    if aif is None:
        aif, vof, aif_voxels = _arterial_input(enh, curves, idx, arrival)
    else:
        aif, vof = np.asarray(aif, dtype=np.float32), None
        aif_voxels = np.zeros((0, 3), dtype=np.int64)
    params = perfusion_parameters(curves, aif, dt, svd_threshold, oi_target)
    maps = {}
    for name in ("cbf", "cbv", "mtt", "tmax"):
        m = np.zeros(mask.shape, dtype=np.float32)
        m[idx] = getattr(params, name)
        maps[name] = m
    return PerfusionMaps(
        **maps, brain_mask=mask, aif=aif, vof=vof, aif_voxels=aif_voxels, baseline=base
    )
