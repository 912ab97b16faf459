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

import math
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
from threadpoolctl import threadpool_limits

from strokelens.core.limits import cpu_count
from strokelens.core.perfusion.simulate import K_H, RHO

#: thresholds (fraction of the largest singular value) tried by oSVD, smallest first.
OSVD_THRESHOLDS = (0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2)
#: the last ``L // 8`` residue samples are read as negative times (tissue leading the AIF).
_LEAD_FRACTION = 8
#: voxels per block: the block's residues (L x 8192 float32, ~3 MB at L = 90) stay in cache.
_CHUNK = 8192


@dataclass
class Parameters:
    """Per-voxel perfusion parameters, float32 ``(N,)`` each."""

    cbf: np.ndarray  # mL/100 g/min
    cbv: np.ndarray  # mL/100 g
    mtt: np.ndarray  # s
    tmax: np.ndarray  # s


def check_dt(dt: float) -> float:
    """``dt`` if it is a frame interval (positive, finite seconds), else a ValueError."""
    if not (math.isfinite(dt) and dt > 0):
        raise ValueError(f"dt (the frame interval) must be a positive number of seconds, not {dt}")
    return dt


def check_threshold(threshold: float) -> float:
    """``threshold`` if it is a truncation threshold: a fraction of the largest singular value
    in (0, 1) (0 keeps every component, noise included; 1 or more keeps none)."""
    if not 0 < threshold < 1:
        raise ValueError(f"svd_threshold must lie in (0, 1), not {threshold}")
    return threshold


def check_arguments(dt: float, threshold: float, oi_target: float | None) -> None:
    """ValueError naming the argument unless ``dt``, ``threshold`` and ``oi_target`` (None:
    bSVD) are possible."""
    check_dt(dt)
    check_threshold(threshold)
    if oi_target is not None and not (math.isfinite(oi_target) and oi_target > 0):
        raise ValueError(f"oi_target must be a positive number or None (bSVD), not {oi_target}")


def circulant_matrix(aif: np.ndarray, dt: float = 1.0) -> np.ndarray:
    """``(2T, 2T)`` block-circulant convolution matrix of the AIF ``(T,)`` (linear weights)."""
    a = np.asarray(aif, dtype=np.float64).ravel()
    n = 2 * a.size
    pad = np.zeros(n)
    pad[: a.size] = a
    kernel = dt * (np.roll(pad, 1) + 4.0 * pad + np.roll(pad, -1)) / 6.0
    idx = (np.arange(n)[:, None] - np.arange(n)[None, :]) % n
    return kernel[idx]


class _Factors:
    """SVD of the AIF's circulant matrix in float32, residue rows ordered from ``-lead`` frames."""

    def __init__(self, aif: np.ndarray, dt: float):
        n = np.asarray(aif).size
        u, s, vt = np.linalg.svd(circulant_matrix(aif, dt))
        length = s.size
        self.lead = length // _LEAD_FRACTION
        order = np.roll(np.arange(length), self.lead)  # row i -> time (i - lead) * dt
        self.proj = np.ascontiguousarray(u[:n].T, dtype=np.float32)  # U^T of zero-padded curves
        self.basis = np.ascontiguousarray((vt.T / s)[order], dtype=np.float32)
        self.s = s

    def kept(self, threshold: float) -> int:
        """Number of singular values ``>= threshold * s_max``."""
        return int(np.count_nonzero(self.s >= threshold * self.s[0]))


def oscillation_index(r: np.ndarray) -> np.ndarray:
    """Wu's oscillation index of residues ``(L, N)``: ``sum |second difference| / (L max r)``."""
    second = r[2:] - r[1:-1]
    second -= r[1:-1]
    second += r[:-2]
    np.abs(second, out=second)
    peak = r.max(axis=0)
    total = second.sum(axis=0)
    return np.where(peak > 0, total / (r.shape[0] * np.where(peak > 0, peak, 1.0)), np.inf)


def _residues(c: np.ndarray, f: _Factors, threshold: float, oi_target: float | None) -> np.ndarray:
    proj = f.proj @ c
    if oi_target is None:
        k = f.kept(threshold)
        return f.basis[:, :k] @ proj[:k]
    r = np.zeros((f.basis.shape[0], c.shape[1]), dtype=np.float32)
    best = None
    used = 0
    # components added from the largest threshold down; per voxel the last residue within the
    # oscillation target wins, i.e. the smallest threshold (Wu's oSVD, without per-voxel loops)
    for thr in sorted(OSVD_THRESHOLDS, reverse=True):
        upto = f.kept(thr)
        r += f.basis[:, used:upto] @ proj[used:upto]
        used = upto
        if best is None:
            best = r.copy()  # most regularised: kept where no threshold is smooth enough
        else:
            ok = oscillation_index(r) <= oi_target
            np.copyto(best, r, where=ok[None, :])
    return best


def residues(
    curves: np.ndarray,
    aif: np.ndarray,
    dt: float = 1.0,
    threshold: float = 0.1,
    oi_target: float | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Times (s) ``(2T,)`` and residues ``f R(t)`` (1/s, times ``RHO/K_H``) ``(2T, N)``.

    The residues of tissue curves ``(T, N)``; times start at ``-(2T // 8) dt`` (a tissue curve that
    leads the AIF has its residue there). ``oi_target`` None: bSVD at ``threshold``.
    """
    check_arguments(dt, threshold, oi_target)
    f = _Factors(aif, dt)
    r = _residues(np.asarray(curves, dtype=np.float32), f, threshold, oi_target)
    return (np.arange(r.shape[0]) - f.lead) * dt, r


def residue_onset(r: np.ndarray, dt: float = 1.0, lead: int = 0) -> np.ndarray:
    """Time (s) at which residues ``(L, N)`` first reach half their peak, on the leading edge.

    Row ``i`` of ``r`` is time ``(i - lead) dt``; linear interpolation gives sub-frame times.
    """
    length = r.shape[0]
    k = np.argmax(r, axis=0)
    cols = np.arange(r.shape[1])
    half = r[k, cols] * 0.5
    frames = np.arange(length, dtype=np.int32)[:, None]
    below = np.where((r < half) & (frames < k), frames, -1).max(axis=0)  # last frame below half
    j = np.maximum(below, 0)
    y0 = r[j, cols]
    y1 = r[np.minimum(j + 1, length - 1), cols]
    rising = (below >= 0) & (y1 > y0)
    step = np.where(rising, (half - y0) / np.where(rising, y1 - y0, 1.0), 0.0)
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
    check_arguments(dt, threshold, oi_target)
    c = np.asarray(curves, dtype=np.float32)
    a = np.asarray(aif, dtype=np.float64).ravel()
    area_a = a.sum()
    if area_a <= 0:
        raise ValueError("the AIF has no positive area: no contrast arrival to deconvolve")
    f = _Factors(a, dt)
    peak = np.empty(c.shape[1], dtype=np.float64)
    onset = np.empty(c.shape[1], dtype=np.float64)

    def run(start: int) -> None:
        block = slice(start, start + _CHUNK)
        r = _residues(np.ascontiguousarray(c[:, block]), f, threshold, oi_target)
        peak[block] = r.max(axis=0)
        onset[block] = residue_onset(r, dt, f.lead)

    # small matrix products: one BLAS thread per block, blocks spread over the cores (multi-
    # threaded BLAS on 90 x 8192 blocks spins and slows down many-fold on a busy machine)
    with threadpool_limits(1, user_api="blas"), ThreadPoolExecutor(cpu_count()) as pool:
        list(pool.map(run, range(0, c.shape[1], _CHUNK)))
    cbf = np.clip(peak, 0.0, None) * (K_H / RHO) * 6000.0
    cbv = np.clip((K_H / RHO) * 100.0 * c.sum(axis=0, dtype=np.float64) / area_a, 0.0, None)
    mtt = np.where(cbf > 0, 60.0 * cbv / np.where(cbf > 0, cbf, 1.0), 0.0)
    tmax = np.clip(onset, 0.0, None)
    return Parameters(*(v.astype(np.float32) for v in (cbf, cbv, mtt, tmax)))
