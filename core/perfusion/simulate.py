"""Forward model of CT perfusion: indicator-dilution tissue curves from an arterial input.

Physics (Østergaard's formulation, as used by CT/MR perfusion software)::

    C_t(t) = (RHO / K_H) * f * (C_a ⊛ R)(t - delay),   f = CBF / 6000  [mL/g/s]

``C_a`` is the arterial enhancement (HU, whole blood of a large vessel), ``R`` the residue function
(``R(0) = 1``, area ``MTT``), ``RHO`` the brain density and ``K_H`` the large-/small-vessel
hematocrit factor. ``RHO/K_H`` turns flow per gram into enhancement per mL of tissue with the
capillary hematocrit; the analysis inverts it with ``K_H/RHO``, so the central volume theorem comes
out in the usual units::

    CBV [mL/100 g] = (K_H / RHO) * 100 * ∫C_t / ∫C_a = CBF [mL/100 g/min] * MTT [s] / 60

The convolution is evaluated exactly for a piecewise-linear AIF (linear between frames, zero
before frame 0) and a continuous residue, so delays need not be whole frames: each frame's value is
the AIF samples times the residue integrated against the linear-interpolation hat, which is a
second difference of the residue's double integral (closed form for ``exp`` and ``box``).
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import toeplitz

RHO = 1.04  # brain density, g/mL
K_H = 0.73  # hematocrit factor (1 - Hct large vessel) / (1 - Hct capillary)

#: voxels per block in ``tissue_curves`` (bounds the temporary memory to ~T * 64k float64)
_CHUNK = 65536


def gamma_variate(
    t: np.ndarray, t0: float, alpha: float = 3.0, beta: float = 1.5, peak: float = 300.0
) -> np.ndarray:
    """Gamma-variate bolus ``K (t - t0)^alpha exp(-(t - t0)/beta)`` scaled so its maximum is ``peak``.

    Zero before ``t0``; the maximum is at ``t0 + alpha * beta``.
    """
    s = np.clip(np.asarray(t, dtype=np.float64) - t0, 0.0, None)
    tp = alpha * beta
    return peak * (s / tp) ** alpha * np.exp(alpha - s / beta)


def _residue_double_integral(x: np.ndarray, mtt: np.ndarray, residue: str) -> np.ndarray:
    """``R2(x) = ∫0^x ∫0^y R(u) du dy`` (zero for ``x <= 0``) for a residue of mean ``mtt``."""
    x = np.clip(x, 0.0, None)
    if residue == "exp":
        return mtt * x + mtt * mtt * np.expm1(-x / mtt)
    if residue == "box":
        return np.where(x < mtt, 0.5 * x * x, mtt * x - 0.5 * mtt * mtt)
    raise ValueError(f"unknown residue {residue!r}: use 'exp' or 'box'")


def impulse_kernels(
    n: int, mtt: np.ndarray, delay: np.ndarray, dt: float = 1.0, residue: str = "exp"
) -> np.ndarray:
    """``(n, N)`` kernels ``g_k`` (s) with ``C_t[k] = scale * sum_j C_a[j] g[k - j]``.

    ``g_k = (R2(t_k + dt - d) - 2 R2(t_k - d) + R2(t_k - dt - d)) / dt`` is the delayed residue
    convolved with the linear-interpolation hat of the AIF; ``sum_k g_k dt = MTT`` (when the
    series is long enough), so areas are exact whatever the delay.
    """
    m = np.maximum(np.asarray(mtt, dtype=np.float64), 1e-6)[None, :]
    d = np.asarray(delay, dtype=np.float64)[None, :]
    tk = (np.arange(n, dtype=np.float64) * dt)[:, None]
    r2 = _residue_double_integral
    return (
        r2(tk + dt - d, m, residue) - 2.0 * r2(tk - d, m, residue) + r2(tk - dt - d, m, residue)
    ) / dt


def tissue_curves(
    aif: np.ndarray,
    cbf,
    mtt,
    delay,
    dt: float = 1.0,
    residue: str = "exp",
) -> np.ndarray:
    """Tissue enhancement (HU) ``(T, *S)`` float32 for an AIF ``(T,)`` in HU.

    ``cbf`` (mL/100 g/min), ``mtt`` (s) and ``delay`` (s, >= 0, any fraction of a frame) broadcast
    to a common shape ``S``. Vectorised: per block of voxels one kernel table and one matrix
    product with the AIF's Toeplitz matrix.
    """
    a = np.asarray(aif, dtype=np.float64).ravel()
    n = a.size
    cbf_b, mtt_b, delay_b = np.broadcast_arrays(
        np.asarray(cbf, dtype=np.float64),
        np.asarray(mtt, dtype=np.float64),
        np.asarray(delay, dtype=np.float64),
    )
    shape = cbf_b.shape
    f, m, d = (v.ravel() for v in (cbf_b, mtt_b, delay_b))
    if np.any(d < 0):
        raise ValueError("delay must be >= 0 s (tissue cannot lead the AIF it is modelled from)")
    out = np.zeros((n, f.size), dtype=np.float32)
    conv = toeplitz(a, np.zeros(n))  # conv[k, i] = a[k - i]
    scale = (RHO / K_H) * f / 6000.0
    live = np.flatnonzero(scale != 0)
    for start in range(0, live.size, _CHUNK):
        idx = live[start : start + _CHUNK]
        g = impulse_kernels(n, m[idx], d[idx], dt, residue)
        out[:, idx] = (conv @ (g * scale[idx])).astype(np.float32)
    return out.reshape((n, *shape))


def synthetic_head(
    shape: tuple[int, int, int] = (4, 64, 64),
    n_frames: int = 45,
    noise_hu: float = 0.0,
    seed: int = 0,
    dt: float = 1.0,
) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """A minimal CT-perfusion head ``(T, z, y, x)`` HU with known maps, for tests and benchmarks.

    Scalp, skull (1000 HU), grey-matter rim (CBF 55, MTT 4 s), white matter (22, 6 s), a ventricle
    (CSF, 5 HU), a delayed low-flow lesion (15, 10 s, delay 4 s) and one artery and one vein (2x2
    voxels, through all slices). The anatomical phantom is ``strokelens.core.phantom``; this one
    only has to exercise masks, AIF/VOF selection and deconvolution. Returns the series and a dict
    of truth: ``cbf``, ``mtt``, ``delay``, ``cbv`` (2D, the same in every slice), ``tissue``,
    ``artery``, ``vein`` (2D bool) and ``aif`` (T,).
    """
    _, ny, nx = shape
    t = np.arange(n_frames, dtype=np.float64) * dt
    aif = gamma_variate(t, 8.0)
    yy, xx = np.mgrid[:ny, :nx]
    v, u = (yy - (ny - 1) / 2) / ny, (xx - (nx - 1) / 2) / nx  # -0.5..0.5
    r = np.hypot(v, u)
    base = np.full((ny, nx), -1000.0)
    base[r < 0.47] = 40.0  # scalp
    base[r < 0.44] = 1000.0  # skull
    brain = r < 0.40
    ventricle = np.hypot(v / 2, u) < 0.06
    tissue = brain & ~ventricle
    grey = tissue & (r > 0.32)
    lesion = tissue & (u > 0.08) & (v < -0.05)
    artery = (np.abs(v - 0.15) < 1.0 / ny) & (np.abs(u + 0.15) < 1.0 / nx)
    vein = (np.abs(v - 0.34) < 1.0 / ny) & (np.abs(u) < 1.0 / nx)
    tissue &= ~(artery | vein)
    base[brain] = np.where(grey, 38.0, 28.0)[brain]
    base[ventricle] = 5.0
    base[artery | vein] = 45.0
    cbf = np.where(grey, 55.0, 22.0)
    mtt = np.where(grey, 4.0, 6.0)
    delay = np.zeros((ny, nx))
    cbf[lesion], mtt[lesion], delay[lesion] = 15.0, 10.0, 4.0
    cbf[~tissue] = 0.0
    curves = tissue_curves(aif, cbf, mtt, delay, dt)
    vein_curve = gamma_variate(t, 12.0, beta=2.5, peak=200.0)
    curves[:, artery] = aif[:, None]
    curves[:, vein] = (vein_curve * aif.sum() / vein_curve.sum())[:, None]
    rng = np.random.default_rng(seed)
    series = np.empty((n_frames, *shape), dtype=np.float32)
    series[:] = (base + curves)[:, None].astype(np.float32)
    if noise_hu > 0:
        series += rng.normal(0.0, noise_hu, series.shape).astype(np.float32)
    truth = {
        "cbf": cbf,
        "mtt": np.where(tissue, mtt, 0.0),
        "delay": delay,
        "cbv": cbf * mtt / 60.0,
        "tissue": tissue,
        "artery": artery,
        "vein": vein,
        "aif": aif,
    }
    return series, truth
