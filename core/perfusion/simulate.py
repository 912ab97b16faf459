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
