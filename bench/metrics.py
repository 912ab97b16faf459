"""ISLES metrics speed: StrokeLens ``case_metrics`` vs medpy on 256x256x22 lesion-like masks.

Both sides compute DSC, HD, ASSD (eq. (8): two directed ASDs), precision, recall and the volume
difference on the same uint8 masks (fixed seed, 5 x 0.9 x 0.9 mm voxels, truth lesions of
~7-290 mL, the largest an extreme, with a far-off false positive in some predictions). Prints
best-of-N times per case, the mean, the medpy/ours ratio and the largest difference between the
two results; the target is <= 50 ms per case.
Run: python bench/metrics.py [--repeats N]
"""

from __future__ import annotations

import argparse

import numpy as np
from medpy.metric import binary as mb
from scipy import ndimage
from timing import best_of

from strokelens.core.metrics import case_metrics

SHAPE = (22, 256, 256)
SPACING = (5.0, 0.9, 0.9)


def lesion_pair(rng: np.random.Generator, radius_mm: float) -> tuple[np.ndarray, np.ndarray]:
    """Truth: an irregular lesion (noisy ellipsoid) and a satellite; pred: a shifted, eroded or
    dilated copy with a ragged edge and, half of the time, a distant false-positive blob."""
    grid = (
        np.indices(SHAPE, dtype=np.float32) * np.asarray(SPACING, np.float32)[:, None, None, None]
    )
    centre = (np.asarray(SHAPE) * SPACING) * rng.uniform(0.3, 0.7, 3)
    dist = np.sqrt(
        sum(((g - c) / s) ** 2 for g, c, s in zip(grid, centre, (1.6, 1.0, 1.3), strict=True))
    )
    noise = ndimage.gaussian_filter(rng.standard_normal(SHAPE), (0.6, 4, 4)).astype(np.float32)
    noise *= radius_mm * 0.4 / noise.std()
    truth = dist + noise < radius_mm
    satellite = np.roll(truth, (0, int(radius_mm * 1.5), -int(radius_mm)), axis=(0, 1, 2))
    truth |= ndimage.binary_erosion(satellite, iterations=3)

    pred = np.roll(truth, tuple(rng.integers(-2, 3, 3)), axis=(0, 1, 2))
    grow = int(rng.integers(-1, 2))
    if grow:
        op = ndimage.binary_dilation if grow > 0 else ndimage.binary_erosion
        pred = op(pred, structure=ndimage.generate_binary_structure(3, 1))
    edge = pred ^ ndimage.binary_erosion(pred)
    pred &= ~(edge & (rng.random(SHAPE) < 0.3))
    if rng.random() < 0.5:
        z, y, x = rng.integers(0, SHAPE[0]), rng.integers(5, 40), rng.integers(5, 40)
        pred[z, y : y + 6, x : x + 6] = True
    return pred.astype(np.uint8), truth.astype(np.uint8)  # as masks are stored (Case.mask)


def medpy_metrics(pred: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    vox_ml = float(np.prod(SPACING)) / 1000
    return {
        "dsc": mb.dc(pred, truth),
        "hd": mb.hd(pred, truth, SPACING),
        "assd": 0.5 * (mb.asd(pred, truth, SPACING) + mb.asd(truth, pred, SPACING)),
        "precision": mb.precision(pred, truth),
        "recall": mb.recall(pred, truth),
        "avd_ml": abs(np.count_nonzero(pred) - np.count_nonzero(truth)) * vox_ml,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="timing runs per case (best kept)")
    args = parser.parse_args()

    rng = np.random.default_rng(2018)
    cases = [lesion_pair(rng, r) for r in (8.0, 12.0, 16.0, 22.0, 30.0)]
    ours_total = theirs_total = worst = 0.0
    print(f"{'truth mL':>9} {'pred mL':>8} {'ours ms':>8} {'medpy ms':>9} {'ratio':>6}  max |diff|")
    for pred, truth in cases:
        ours, _ = best_of(lambda p=pred, t=truth: case_metrics(p, t, SPACING), args.repeats)
        theirs, _ = best_of(lambda p=pred, t=truth: medpy_metrics(p, t), args.repeats)
        a, b = case_metrics(pred, truth, SPACING), medpy_metrics(pred, truth)
        diff = max(abs(a[k] - b[k]) for k in a)
        ours_total, theirs_total, worst = ours_total + ours, theirs_total + theirs, max(worst, ours)
        vol = np.prod(SPACING) / 1000
        print(
            f"{truth.sum() * vol:9.1f} {pred.sum() * vol:8.1f} {ours * 1e3:8.1f} "
            f"{theirs * 1e3:9.1f} {theirs / ours:6.1f}  {diff:.1e}"
        )
    n = len(cases)
    print(
        f"mean per case: ours {ours_total / n * 1e3:.1f} ms (worst {worst * 1e3:.1f} ms, target "
        f"<= 50), medpy {theirs_total / n * 1e3:.1f} ms, medpy/ours {theirs_total / ours_total:.1f}x"
    )


if __name__ == "__main__":
    main()
