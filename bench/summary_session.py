"""What a paint stroke costs the workstation's numbers, and what the montage costs its GUI thread.

A 22-slice phantom case: best-of-N seconds of ``measure_case`` (once per case: Tmax, midline,
threshold core) against a re-summary of the core with those measures kept (what each stroke
or AI update costs, in a worker), and the montage: its tiles built (worker) against their
wrapping and painting on the GUI thread (``TileGrid.set_tiles`` + a grab), which is all the
GUI thread does.
Run: QT_QPA_PLATFORM=offscreen python bench/summary_session.py [--repeats N] [--slices N]
"""

from __future__ import annotations

import argparse
import os

import numpy as np
from timing import best_of

from strokelens.core.case import Case
from strokelens.core.phantom import simulate_case
from strokelens.core.stroke_summary import CoreKind, CoreOrigin, measure_case, summarize_stroke


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--slices", type=int, default=22)
    args = parser.parse_args()
    s = simulate_case(5, n_slices=args.slices)
    m = s.maps
    channels = {"CT": s.ct.astype(np.float32), "CBF": m.cbf, "CBV": m.cbv, "MTT": m.mtt}
    case = Case("case_5", "P0005", "", channels | {"Tmax": m.tmax}, s.slab.affine, s.slab.spacing)
    origin = CoreOrigin(CoreKind.CORRECTED)
    core = s.truth.core.astype(np.uint8)
    t_measure, measured = best_of(lambda: measure_case(case), args.repeats)
    t_core, summary = best_of(
        lambda: summarize_stroke(case, None, core, origin, measured), args.repeats
    )
    print(f"{case.shape}: measure_case {t_measure:.3f} s (once per case)")
    print(f"re-summary of the core {t_core:.3f} s (per stroke); ratio {t_measure / t_core:.0f}")

    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtWidgets import QApplication

    from strokelens.app.model import Model
    from strokelens.app.montage_view import TileGrid, montage_tiles

    app = QApplication.instance() or QApplication([])
    t_tiles, tiles = best_of(lambda: montage_tiles(summary), args.repeats)
    grid = TileGrid(Model())
    grid.resize(600, 400)

    def on_gui_thread():
        grid.set_tiles(tiles)
        grid.grab()
        app.processEvents()

    t_gui, _ = best_of(on_gui_thread, args.repeats)
    print(f"montage tiles {tiles.shape}: worker {t_tiles:.3f} s, GUI thread {t_gui * 1000:.1f} ms")
    print(f"GUI thread / worker: {t_gui / t_tiles:.2f}")


if __name__ == "__main__":
    main()
