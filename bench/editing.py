"""Mask editing speed on a 22 x 256 x 256 mask (5 x 0.9 x 0.9 mm): strokes, undo, islands.

- Stroke: a 10-voxel-radius brush (9 mm) along 200 mouse samples ~7 voxels apart, with a slot
  connected to ``changed`` as a view would be; p95 ms per ``stroke_to`` against the bare stamps
  of one sample in plain numpy (an OR of the footprint at each voxel of the line from the last
  sample, lines precomputed; no clipping, change box, event or undo record).
- Undo and redo of that stroke: p95 ms against copying one slice.
- Remove islands (3D, 6-connected, < 0.1 mL) on an AI-like mask (lesions and speckle): best-of-N
  ms against one plain ``scipy.ndimage.label`` of the same mask; the target is <= 100 ms.
Run: python bench/editing.py [--repeats N]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy import ndimage
from timing import best_of

from strokelens.core.editing.components import remove_islands
from strokelens.core.editing.masks import Brush, EditableMask, line

SHAPE = (22, 256, 256)
SPACING = (5.0, 0.9, 0.9)
RADIUS_MM = 9.0  # 10 voxels at 0.9 mm


def samples(n: int = 200) -> np.ndarray:
    """A looping mouse path (y, x) over the slice, ~7 voxels between samples."""
    t = np.linspace(0, 2 * np.pi, n)
    return np.stack([128 + 90 * np.sin(2 * t), 128 + 100 * np.sin(3 * t + 0.5)], axis=1)


def p95_ms(times: list[float]) -> float:
    return float(np.percentile(times, 95)) * 1e3


def bench_stroke(repeats: int) -> tuple[EditableMask, int]:
    mask = EditableMask(np.zeros(SHAPE, np.uint8), SPACING)
    seen = []
    mask.changed.connect(seen.append)
    brush = Brush(RADIUS_MM, SPACING[1:])
    path, z = samples(), SHAPE[0] // 2
    steps = np.abs(np.diff(path, axis=0)).max(axis=1)
    ours = []
    for _ in range(repeats):
        mask.begin_stroke(z, 1, brush)
        for y, x in path:
            t0 = time.perf_counter()
            mask.stroke_to(y, x)
            ours.append(time.perf_counter() - t0)
        mask.end_stroke()
        mask.undo()
    mask.begin_stroke(z, 1, brush)  # leave one stroke on the mask for the undo figures
    for y, x in path:
        mask.stroke_to(y, x)
    mask.end_stroke()

    plain, canvas, disc = [], np.zeros(SHAPE[1:], bool), brush.footprint()
    h = disc.shape[0] // 2
    centres = [line(a, b)[1:] for a, b in zip(path[:-1], path[1:], strict=True)]
    for _ in range(repeats):
        canvas[:] = False
        for points in centres:
            t0 = time.perf_counter()
            for y, x in points:
                canvas[y - h : y + h + 1, x - h : x + h + 1] |= disc
            plain.append(time.perf_counter() - t0)
    changed = int(np.count_nonzero(mask.data))
    print(
        f"stroke, r=10 voxels, {len(path)} samples ({steps.mean():.1f} voxels apart, max "
        f"{steps.max():.1f}), {changed} voxels painted, {len(seen)} events:"
    )
    print(
        f"  stroke_to p95 {p95_ms(ours):.3f} ms (median {np.median(ours) * 1e3:.3f}), bare "
        f"numpy stamps p95 {p95_ms(plain):.3f} ms, ratio {p95_ms(ours) / p95_ms(plain):.1f}x"
    )
    return mask, changed


def bench_undo(mask: EditableMask, repeats: int) -> None:
    undo, redo, copy = [], [], []
    z = SHAPE[0] // 2
    for _ in range(repeats):
        t0 = time.perf_counter()
        mask.undo()
        t1 = time.perf_counter()
        mask.redo()
        t2 = time.perf_counter()
        mask.data[z].copy()
        t3 = time.perf_counter()
        undo.append(t1 - t0)
        redo.append(t2 - t1)
        copy.append(t3 - t2)
    base = p95_ms(copy)
    print(
        f"undo of the stroke p95 {p95_ms(undo):.3f} ms, redo p95 {p95_ms(redo):.3f} ms; copying "
        f"one slice p95 {base:.3f} ms; ratios {p95_ms(undo) / base:.1f}x, "
        f"{p95_ms(redo) / base:.1f}x; undo item {mask.history.nbytes} bytes"
    )


def ai_like_mask(rng: np.random.Generator) -> np.ndarray:
    """Lesion blobs of ~1-40 mL and scattered false-positive specks, as a thresholded AI output."""
    noise = ndimage.gaussian_filter(rng.standard_normal(SHAPE), (0.7, 6, 6))
    lesions = noise > np.quantile(noise, 0.97)
    specks = ndimage.gaussian_filter(rng.standard_normal(SHAPE), (0.3, 1, 1)) > 2.3
    return (lesions | specks).astype(np.uint8)


def bench_islands(repeats: int) -> None:
    mask = ai_like_mask(np.random.default_rng(17))
    ours, kept = best_of(lambda: remove_islands(mask, 0.1, SPACING), repeats)
    plain, (_, n) = best_of(lambda: ndimage.label(mask), repeats)
    per_slice, _ = best_of(lambda: remove_islands(mask, 0.1, SPACING, per_slice=True), repeats)
    vox = np.prod(SPACING) / 1e3
    print(
        f"remove islands < 0.1 mL, 22 slices, {n} components, {mask.sum() * vox:.1f} -> "
        f"{kept.sum() * vox:.1f} mL: {ours * 1e3:.1f} ms (target <= 100; per slice "
        f"{per_slice * 1e3:.1f} ms), plain ndimage.label {plain * 1e3:.1f} ms, "
        f"ratio {ours / plain:.2f}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=10, help="strokes / undo pairs / runs")
    args = parser.parse_args()
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    mask, _ = bench_stroke(args.repeats)
    bench_undo(mask, max(args.repeats, 50))
    bench_islands(args.repeats)


if __name__ == "__main__":
    main()
