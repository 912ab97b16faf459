"""Accuracy of the perfusion maps on a Kudo-style digital phantom (Kudo et al., Radiology 2013).

Each delay gets one slice; in-plane, a grid of ``cell`` x ``cell`` pixel blocks holds every
CBF x MTT pair. Curves come from ``simulate.tissue_curves`` on a 30 HU baseline, optional white
noise (``noise_hu`` per voxel and frame) is added, and the slice stack goes through
``analysis.compute_maps`` itself (baseline detection, in-plane smoothing, oSVD) with the true AIF
plus the noise of a 5-voxel average. Errors are read at the block centres, away from the
smoothing's reach into the neighbours.

Truth: CBV = CBF * MTT / 60; Tmax = the delay (the delayed residue jumps to its maximum at the
delay, and ``deconvolution.residue_onset`` estimates that time). Run
``python -m strokelens.core.perfusion.accuracy`` for the markdown table.
"""

from __future__ import annotations

import argparse

import numpy as np

from strokelens.core.perfusion.analysis import N_AIF, compute_maps
from strokelens.core.perfusion.simulate import gamma_variate, tissue_curves

GRID_CBF = (10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0)  # mL/100 g/min
GRID_MTT = (2.0, 4.0, 6.0, 8.0, 10.0, 12.0)  # s
GRID_DELAY = (0.0, 1.0, 2.0, 3.0, 4.0, 5.0)  # s
#: per-voxel noise of a low-dose CTP frame (HU) for 1 mm pixels; the maps smooth it in-plane.
REALISTIC_NOISE_HU = 8.0
BASELINE_HU = 30.0
AIF_T0 = 8.0


def phantom(
    noise_hu: float = 0.0,
    n_frames: int = 60,
    cell: int = 1,
    margin: int = 0,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """Series ``(T, delays, 6 cell, 7 cell)`` HU, the AIF given to the analysis and the truth.

    Truth maps (``cbf``, ``mtt``, ``cbv``, ``delay``) are ``(delays, 6 cell, 7 cell)``;
    ``centre`` marks the voxels at least ``margin`` pixels inside their block.
    """
    t = np.arange(n_frames, dtype=np.float64)
    aif = gamma_variate(t, AIF_T0)
    mtt_g, cbf_g = np.meshgrid(GRID_MTT, GRID_CBF, indexing="ij")
    block = np.ones((cell, cell))
    cbf = np.broadcast_to(np.kron(cbf_g, block), (len(GRID_DELAY), *np.kron(cbf_g, block).shape))
    mtt = np.broadcast_to(np.kron(mtt_g, block), cbf.shape)
    delay = np.broadcast_to(np.asarray(GRID_DELAY)[:, None, None], cbf.shape)
    series = BASELINE_HU + tissue_curves(aif, cbf, mtt, delay)
    rng = np.random.default_rng(seed)
    aif_given = aif
    if noise_hu > 0:
        series += rng.normal(0.0, noise_hu, series.shape).astype(np.float32)
        aif_given = aif + rng.normal(0.0, noise_hu / np.sqrt(N_AIF), aif.shape)
    inner = np.zeros(cell)
    inner[margin : cell - margin] = 1.0
    centre = np.broadcast_to(np.kron(np.ones(cbf_g.shape), np.outer(inner, inner)) > 0, cbf.shape)
    truth = {"cbf": cbf, "mtt": mtt, "cbv": cbf * mtt / 60.0, "delay": delay, "centre": centre}
    return series.astype(np.float32), aif_given, truth


def accuracy_table(
    noise_hu: float = 0.0,
    n_frames: int = 60,
    smooth_mm: float = 2.0,
    oi_target: float | None = 0.095,
    svd_threshold: float = 0.1,
    seed: int = 0,
    by: str = "delay",
) -> list[dict[str, float]]:
    """Median relative error of CBF, CBV, MTT and median |Tmax - delay| (s), one row per ``by``.

    ``by`` is ``"delay"`` (the Kudo layout) or ``"mtt"`` (shows where truncation bites: short
    MTTs have the sharpest residues).
    Noise-free runs use one pixel per cell and no smoothing; noisy ones 1 mm pixels smoothed with
    ``smooth_mm`` as the maps are, read 9 x 9 pixels per cell beyond the filter's reach (3 sigma).
    """
    noisy = noise_hu > 0
    margin = int(np.ceil(3.0 * smooth_mm)) if noisy else 0
    series, aif, truth = phantom(noise_hu, n_frames, 2 * margin + (9 if noisy else 1), margin, seed)
    maps = compute_maps(
        series,
        spacing=(5.0, 1.0, 1.0),
        brain_mask=np.ones(series.shape[1:], dtype=bool),
        aif=aif,
        smooth_mm=smooth_mm if noisy else 0.0,
        svd_threshold=svd_threshold,
        oi_target=oi_target,
    )
    values = {"delay": GRID_DELAY, "mtt": GRID_MTT}[by]
    rows = []
    for v in values:
        sel = truth["centre"] & (truth[by] == v)
        row = {f"{by}_s": v}
        for name in ("cbf", "cbv", "mtt"):
            row[name] = float(np.median(np.abs(getattr(maps, name)[sel] / truth[name][sel] - 1.0)))
        row["tmax"] = float(np.median(np.abs(maps.tmax[sel] - truth["delay"][sel])))
        rows.append(row)
    return rows


def markdown(tables: dict[str, list[dict[str, float]]], by: str = "delay") -> str:
    """Tables from ``accuracy_table`` (label -> rows) as one markdown table."""
    lines = [
        f"| noise | {'delay' if by == 'delay' else 'MTT'} (s) | CBF error | CBV error "
        "| MTT error | Tmax error (s) |",
        "|---|---|---|---|---|---|",
    ]
    for label, rows in tables.items():
        for r in rows:
            lines.append(
                f"| {label} | {r[f'{by}_s']:.0f} | {100 * r['cbf']:.1f} % | {100 * r['cbv']:.1f} % "
                f"| {100 * r['mtt']:.1f} % | {r['tmax']:.2f} |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Perfusion-map accuracy on the Kudo-style grid.")
    parser.add_argument("--frames", type=int, default=60, help="frames of 1 s (default 60)")
    frames = parser.parse_args(argv).frames
    noises = {"none": 0.0, f"{REALISTIC_NOISE_HU:g} HU": REALISTIC_NOISE_HU}
    for by in ("delay", "mtt"):
        tables = {k: accuracy_table(v, frames, by=by) for k, v in noises.items()}
        print(markdown(tables, by), end="\n\n")


if __name__ == "__main__":
    main()
