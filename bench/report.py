"""Stroke report speed: one case's summary and its one-page PDF + PNG.

A 22-slice phantom case (the most slices an ISLES slab has): best-of-N seconds of
``summarize_stroke`` (volumes, midline, threshold core) and of ``write_report`` (page as PDF and
PNG), against the same run's baseline: the montage image alone drawn on an empty page and
saved as PNG. Target: <= 1 s per report.
Run: python bench/report.py [--repeats N]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from timing import best_of

from strokelens.core.case import Case
from strokelens.core.phantom import simulate_case
from strokelens.core.stroke_report import PAGE_IN, PNG_DPI, montage, write_report
from strokelens.core.stroke_summary import CoreKind, CoreOrigin, summarize_stroke


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--slices", type=int, default=22)
    args = parser.parse_args()
    s = simulate_case(5, n_slices=args.slices)
    m = s.maps
    channels = {"CT": s.ct.astype(np.float32), "CBF": m.cbf, "CBV": m.cbv, "MTT": m.mtt}
    case = Case("case_5", "P0005", "", channels | {"Tmax": m.tmax}, s.slab.affine, s.slab.spacing)
    origin = CoreOrigin(CoreKind.CORRECTED, corrected_by="bench", corrected_at="now")
    core = s.truth.core.astype(np.uint8)
    t_sum, summary = best_of(lambda: summarize_stroke(case, None, core, origin), args.repeats)
    with tempfile.TemporaryDirectory() as tmp:
        pdf, png = Path(tmp) / "r.pdf", Path(tmp) / "r.png"
        write_report(summary, pdf, png)  # warm-up: matplotlib's imports and font cache
        t_report, _ = best_of(lambda: write_report(summary, pdf, png), args.repeats)

        def baseline() -> None:
            from matplotlib.figure import Figure

            fig = Figure(figsize=PAGE_IN)
            ax = fig.add_axes((0.03, 0.47, 0.94, 0.46))
            ax.imshow(montage(summary)[0], interpolation="nearest")
            ax.set_axis_off()
            fig.savefig(Path(tmp) / "b.png", dpi=PNG_DPI)

        t_base, _ = best_of(baseline, args.repeats)
    print(f"case: {args.slices} slices, {case.shape}")
    print(f"summarize_stroke: {t_sum:.3f} s")
    print(f"write_report (PDF + PNG): {t_report:.3f} s  (target <= 1 s)")
    print(f"baseline, montage alone as PNG: {t_base:.3f} s  ratio {t_report / t_base:.2f}")


if __name__ == "__main__":
    main()
