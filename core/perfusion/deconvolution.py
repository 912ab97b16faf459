"""Block-circulant truncated-SVD deconvolution (bSVD / oSVD, Wu et al., MRM 2003).

The tissue curve is ``c = (RHO/K_H) * A @ (f R)`` with ``A`` the AIF convolution matrix. Zero-
padding both to ``L = 2T`` and making ``A`` circulant removes the causality assumption, so a
tissue curve that arrives late (delay) just shifts the recovered residue instead of biasing it
(delay insensitivity). ``A`` uses the linear-interpolation weights ``dt (a[k-1] + 4 a[k] +
a[k+1]) / 6`` (AIF and residue linear between frames), matching the forward model in
``simulate``.

Regularisation: singular values below ``threshold * s_max`` are dropped. With ``oi_target`` set
(oSVD), each voxel gets the smallest threshold from ``OSVD_THRESHOLDS`` whose residue has an
oscillation index ``sum |r[k] - 2 r[k-1] + r[k-2]| / (L * max r)`` below the target (Wu's 0.095).
One SVD per threshold, then one matrix product over all voxels; no per-voxel loops.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from strokelens.core.perfusion.simulate import K_H, RHO

#: thresholds (fraction of the largest singular value) tried by oSVD, smallest first.
OSVD_THRESHOLDS = (0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2)
#: residue-peak indices at or beyond ``L - L // 8`` are read as tissue leading the AIF.
_LEAD_FRACTION = 8


@dataclass
class Parameters:
    """Per-voxel perfusion parameters, float32 ``(N,)`` each."""

    cbf: np.ndarray  # mL/100 g/min
    cbv: np.ndarray  # mL/100 g
    mtt: np.ndarray  # s
    tmax: np.ndarray  # s


def circulant_matrix(aif: np.ndarray, dt: float = 1.0) -> np.ndarray:
    """``(2T, 2T)`` block-circulant convolution matrix of the AIF ``(T,)`` (linear weights)."""
    a = np.asarray(aif, dtype=np.float64).ravel()
    n = 2 * a.size
    pad = np.zeros(n)
    pad[: a.size] = a
    kernel = dt * (np.roll(pad, 1) + 4.0 * pad + np.roll(pad, -1)) / 6.0
    idx = (np.arange(n)[:, None] - np.arange(n)[None, :]) % n
    return kernel[idx]


def truncated_inverse(matrix: np.ndarray, threshold: float) -> np.ndarray:
    """Pseudo-inverse keeping singular values ``>= threshold * s_max`` (truncated SVD)."""
    u, s, vt = np.linalg.svd(matrix)
    keep = s >= threshold * s[0]
    return (vt[keep].T / s[keep]) @ u[:, keep].T


def oscillation_index(r: np.ndarray) -> np.ndarray:
    """Wu's oscillation index of residues ``(L, N)``: mean absolute second difference / max."""
    second = np.abs(np.diff(r, n=2, axis=0)).sum(axis=0)
    peak = r.max(axis=0)
    return np.where(peak > 0, second / (r.shape[0] * np.where(peak > 0, peak, 1.0)), np.inf)


def residues(
    curves: np.ndarray,
    aif: np.ndarray,
    dt: float = 1.0,
    threshold: float = 0.1,
    oi_target: float | None = None,
) -> np.ndarray:
    """Scaled residues ``f R(t)`` (1/s, times ``RHO/K_H``) ``(2T, N)`` of tissue curves ``(T, N)``.

    oSVD adds singular components from the largest threshold down and keeps, per voxel, the last
    (smallest-threshold) residue whose oscillation index is within ``oi_target``: one full matrix
    product in all, plus one oscillation index per threshold.
    """
    c = np.asarray(curves, dtype=np.float32)
    n = c.shape[0]
    u, s, vt = np.linalg.svd(circulant_matrix(aif, dt))
    if oi_target is None:
        keep = s >= threshold * s[0]
        inverse = (vt[keep].T / s[keep]) @ u[:n, keep].T
        return inverse.astype(np.float32) @ c
    proj = u[:n].T.astype(np.float32) @ c  # U^T c for the zero-padded curves
    basis = (vt.T / s).astype(np.float32)
    r = np.zeros((s.size, c.shape[1]), dtype=np.float32)
    best = None
    used = 0
    for thr in sorted(OSVD_THRESHOLDS, reverse=True):
        upto = int(np.count_nonzero(s >= thr * s[0]))
        r += basis[:, used:upto] @ proj[used:upto]
        used = upto
        if best is None:
            best = r.copy()  # the most regularised: kept where no threshold is smooth enough
        else:
            ok = oscillation_index(r) <= oi_target
            best[:, ok] = r[:, ok]
    return best


def residue_onset(r: np.ndarray, dt: float = 1.0) -> np.ndarray:
    """Time (s) at which residues ``(L, N)`` first reach half their peak, on the leading edge.

    The last ``L // 8`` frames are read as negative times (circular deconvolution puts a tissue
    that leads the AIF there). Linear interpolation between frames gives sub-frame times.
    """
    length = r.shape[0]
    lead = length // _LEAD_FRACTION
    r = np.concatenate([r[length - lead :], r[: length - lead]], axis=0)
    k = np.argmax(r, axis=0)
    cols = np.arange(r.shape[1])
    half = 0.5 * r[k, cols]
    frames = np.arange(length)[:, None]
    below = (r < half) & (frames < k)
    j = np.where(below.any(axis=0), np.where(below, frames, -1).max(axis=0), 0)  # last below
    y0 = r[j, cols]
    y1 = r[np.minimum(j + 1, length - 1), cols]
    step = np.where(y1 > y0, (half - y0) / np.where(y1 > y0, y1 - y0, 1.0), 0.0)
    return (j + np.clip(step, 0.0, 1.0) - lead) * dt


def perfusion_parameters(
    curves: np.ndarray,
    aif: np.ndarray,
    dt: float = 1.0,
    threshold: float = 0.1,
    oi_target: float | None = None,
) -> Parameters:
    """CBF, CBV, MTT and Tmax of baseline-subtracted tissue curves ``(T, N)`` for an AIF ``(T,)``.

    CBF = ``K_H/RHO * max(f R) * 6000``; CBV = ``K_H/RHO * 100 * sum(c) / sum(a)``;
    MTT = ``60 CBV / CBF``; Tmax = ``residue_onset`` clipped to >= 0 (see module doc).
    """
    c = np.asarray(curves, dtype=np.float32)
    a = np.asarray(aif, dtype=np.float64).ravel()
    r = residues(c, a, dt, threshold, oi_target)
    cbf = np.clip(r.max(axis=0).astype(np.float64), 0.0, None) * (K_H / RHO) * 6000.0
    area_a = a.sum()
    if area_a <= 0:
        raise ValueError("the AIF has no positive area: no contrast arrival to deconvolve")
    cbv = np.clip((K_H / RHO) * 100.0 * c.sum(axis=0, dtype=np.float64) / area_a, 0.0, None)
    mtt = np.where(cbf > 0, 60.0 * cbv / np.where(cbf > 0, cbf, 1.0), 0.0)
    tmax = np.clip(residue_onset(r, dt), 0.0, None)
    return Parameters(*(v.astype(np.float32) for v in (cbf, cbv, mtt, tmax)))
