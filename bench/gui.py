"""Workstation responsiveness, headless (offscreen Qt): p50 / p95 of what a reviewer feels.

- launch: process start to the main window shown (subprocess, includes the interpreter and
  imports), vs a bare PySide6 window in the same way (baseline); target <= 1.5 s;
- slice change with all seven overlay layers drawn on all five panes, repainted (overlays cached;
  and first visits, whose time includes blending the next slice in idle time), vs the same
  without overlays (baseline); target p95 <= 16 ms;
- overlay toggle (one layer on/off, repaint);
- case switch to a read-ahead neighbour and to a case not in memory (disk), vs the reader alone;
- autosave of a corrected mask: its GUI-thread cost (the snapshot and the hand-over to the
  project's thread; target <= 5 ms) and the whole save until it is on disk (target <= 100 ms);
- editing: one brush-stroke sample (radius 10 voxels, 200 samples across the slice) redrawn on
  all five panes with the four masks shown, undo / redo of such a stroke, and "remove islands",
  each with its repaint, vs a plain repaint of the slice (baseline); target p95 <= 16 ms;
- Run AI on all cases (the bundled demo ensemble) while the reviewer scrolls a slice every 16 ms:
  the gaps between scroll ticks (a frame's worth of event-loop time), vs the same scrolling with
  no AI (baseline); target: no gap over 50 ms. Also the run's time vs the engine alone.

Run: python bench/gui.py [--data DATASET] (default: a 3-case 8-slice phantom in a temp folder).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np

LAUNCH_APP = """
import time; t0 = time.perf_counter()
from strokelens.app.launch import make_app
from strokelens.app.main_window import MainWindow
from strokelens.app.model import Model
from PySide6.QtCore import QSettings
import asyncio, qasync, sys, tempfile
app = make_app(); loop = qasync.QEventLoop(app); asyncio.set_event_loop(loop)
w = MainWindow(Model(), QSettings(tempfile.mktemp(suffix='.ini'), QSettings.Format.IniFormat), loop)
w.show(); app.processEvents()
assert 'torch' not in sys.modules
print('shown')
"""
LAUNCH_BARE = """
from PySide6.QtWidgets import QApplication, QMainWindow
app = QApplication([]); w = QMainWindow(); w.resize(1600, 960); w.show(); app.processEvents()
print('shown')
"""


def percentiles(times_s: list[float]) -> str:
    ms = np.asarray(times_s) * 1e3
    return f"p50 {np.percentile(ms, 50):7.1f} ms   p95 {np.percentile(ms, 95):7.1f} ms"


def time_launch(code: str, n: int) -> list[float]:
    times = []
    for _ in range(n):
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        if "shown" not in done.stdout:
            raise RuntimeError(done.stderr)
        times.append(time.perf_counter() - start)
    return times


def fake_prediction(case):
    """Four members (2 focal, 2 CE) blurred around the ground truth: every layer has data."""
    from scipy import ndimage

    from strokelens.core.prediction import Prediction

    rng = np.random.default_rng(0)
    base = (case.mask if case.mask is not None else np.zeros(case.shape, np.uint8)).astype(
        np.float32
    )
    members = np.stack(
        [
            np.clip(ndimage.gaussian_filter(base, (0, 2 + k, 2 + k)) * 1.6, 0, 1)
            + rng.random(case.shape, dtype=np.float32) * 0.05
            for k in range(4)
        ]
    ).clip(0, 1)
    prediction = Prediction.empty(
        case.key, case.shape, case.spacing, ["f1", "f2", "c1", "c2"], ["focal"] * 2 + ["ce"] * 2
    )
    prediction.update(list(range(case.n_slices)), members)
    return prediction


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, help="data set to use (default: a temp phantom)")
    parser.add_argument("--launches", type=int, default=5)
    args = parser.parse_args()

    bare = time_launch(LAUNCH_BARE, args.launches)
    launch = time_launch(LAUNCH_APP, args.launches)
    print(f"launch to window shown      {percentiles(launch)}   (target <= 1500 ms)")
    print(f"  bare PySide6 window       {percentiles(bare)}")
    print(f"  ratio p50                 {np.median(launch) / np.median(bare):.2f}")

    with tempfile.TemporaryDirectory() as tmp:
        data = args.data
        if data is None:
            from strokelens.core.phantom import generate_dataset

            data = Path(tmp) / "phantom"
            generate_dataset(data, 3, seed=1, slices=[8], jobs=2)
        interactive(data)


def interactive(data: Path) -> None:
    import asyncio

    import qasync
    from PySide6.QtCore import QSettings

    from strokelens.app.launch import make_app
    from strokelens.app.main_window import MainWindow
    from strokelens.app.model import Model
    from strokelens.core.dataset import load_ref

    app = make_app()
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    settings = QSettings(tempfile.mktemp(suffix=".ini"), QSettings.Format.IniFormat)
    project = Path(tempfile.mkdtemp(prefix="strokelens-bench-")) / "project"
    window = MainWindow(Model(), settings, loop, project=project)
    window.resize(1600, 960)
    window.show()
    model = window.model
    loop.run_until_complete(window.cases.open_dataset(data))
    deepest = max(range(len(model.entries)), key=lambda i: model.entries[i].n_slices or 0)
    loop.run_until_complete(window.cases.show_case(deepest))  # the most slices: the most samples
    case = model.case

    def repaint() -> None:
        app.processEvents()  # handles the update requests: one paint, as the running app does

    def slice_times(passes: int) -> list[float]:
        times = []
        for z in list(range(case.n_slices)) * passes:
            start = time.perf_counter()
            model.set_slice(z if z != model.slice else (z + 1) % case.n_slices)
            repaint()
            times.append(time.perf_counter() - start)
        return times

    for name in model.layers:
        model.set_layer(name, visible=False)
    slice_times(2)
    plain = slice_times(10)
    model.set_prediction(case.key, fake_prediction(case))
    model.set_corrected(case.key, case.mask)
    for name in ("truth", "focal", "ce", "corrected"):  # the masks, as the app starts
        model.set_layer(name, visible=True)
    first_masks = slice_times(1)  # every slice drawn for the first time (no cache)
    for name in model.layers:  # + the heat maps (whole brain) and the focal-vs-CE difference
        model.set_layer(name, visible=True)
    first = slice_times(1)
    cached = slice_times(10)
    print(f"slice change, 7 layers     {percentiles(cached)}   (target p95 <= 16 ms)")
    print(f"  first visit, 7 layers    {percentiles(first)}")
    print(f"  first visit, 4 masks      {percentiles(first_masks)}")
    print(f"  no overlays (baseline)    {percentiles(plain)}")
    print(f"  ratio p95                 {np.percentile(cached, 95) / np.percentile(plain, 95):.2f}")

    editing(window, repaint, plain)
    autosave(window, loop)

    toggles = []
    for k in range(60):
        name = list(model.layers)[k % len(model.layers)]
        start = time.perf_counter()
        model.set_layer(name, visible=not model.layers[name].visible)
        repaint()
        toggles.append(time.perf_counter() - start)
    print(f"overlay toggle              {percentiles(toggles)}")

    near, cold, reader = [], [], []
    order = list(range(len(model.entries)))
    for k in range(12):
        index = order[(k + 1) % len(order)]
        loop.run_until_complete(asyncio.sleep(0.2))  # let the read-ahead finish, as a reader would
        start = time.perf_counter()
        loop.run_until_complete(window.cases.show_case(index))
        repaint()
        near.append(time.perf_counter() - start)
    for k in range(6):
        index = order[k % len(order)]
        window.cases.forget()  # nothing in memory: read from disk
        start = time.perf_counter()
        loop.run_until_complete(window.cases.show_case(index))
        repaint()
        cold.append(time.perf_counter() - start)
        start = time.perf_counter()
        load_ref(model.entries[index].ref)
        reader.append(time.perf_counter() - start)
    print(f"case switch, read ahead     {percentiles(near)}")
    print(f"case switch, from disk      {percentiles(cold)}")
    print(f"  reader alone (baseline)   {percentiles(reader)}")
    print(f"  ratio p50 (disk switch / reader) {np.median(cold) / np.median(reader):.2f}")
    during_ai(window, loop)
    window.close()


def editing(window, repaint, plain: list[float]) -> None:
    """Brush, undo / redo and island removal through the edit session, as the mouse drives it."""
    from strokelens.app.edit_session import Tool

    model, edit = window.model, window.edit
    case = model.case
    _, ny, nx = case.shape
    edit.set_tool(Tool.BRUSH)
    edit.set_radius(10 * case.spacing[2])  # 10 voxels across
    samples, undos, redos = [], [], []
    for k in range(10):
        y = ny * (0.2 + 0.06 * k)
        edit.press(y, nx * 0.1)
        for x in np.linspace(nx * 0.1, nx * 0.9, 200):
            start = time.perf_counter()
            edit.drag(y + 3 * np.sin(x / 9), x)
            repaint()
            samples.append(time.perf_counter() - start)
        edit.release()
        repaint()
    for _ in range(10):
        start = time.perf_counter()
        edit.undo()
        repaint()
        undos.append(time.perf_counter() - start)
    for _ in range(10):
        start = time.perf_counter()
        edit.redo()
        repaint()
        redos.append(time.perf_counter() - start)
    start = time.perf_counter()
    edit.remove_islands(1.0)
    repaint()
    islands = time.perf_counter() - start
    base = np.percentile(plain, 95)
    print(f"brush stroke sample, r 10   {percentiles(samples)}   (target p95 <= 16 ms)")
    print(f"undo of a 200-sample stroke {percentiles(undos)}   (target p95 <= 16 ms)")
    print(f"redo of a 200-sample stroke {percentiles(redos)}")
    print(f"remove islands ({case.n_slices} slices)   {islands * 1e3:7.1f} ms   (target <= 100 ms)")
    print(
        f"  plain slice redraw (baseline) p95 {base * 1e3:.1f} ms; ratios p95: stroke "
        f"{np.percentile(samples, 95) / base:.2f}, undo {np.percentile(undos, 95) / base:.2f}"
    )
    edit.set_tool(Tool.NAVIGATE)


def autosave(window, loop) -> None:
    """A stroke, then its save: the GUI thread's part, then the rest on the project's thread."""
    from strokelens.app.edit_session import Tool

    model, edit, project = window.model, window.edit, window.project
    loop.run_until_complete(window.tasks.idle())
    gui, whole = [], []
    for k in range(10):
        edit.set_tool(Tool.BRUSH)
        edit.press(20 + 3 * k, 20)
        edit.drag(20 + 3 * k, 60)
        edit.release()
        project.timer.stop()  # saved here, not by the timer
        start = time.perf_counter()
        project.save_now()  # the GUI thread's part: the snapshot and the hand-over
        gui.append(time.perf_counter() - start)
        loop.run_until_complete(window.tasks.idle())
        whole.append(time.perf_counter() - start)
    edit.set_tool(Tool.NAVIGATE)
    print(f"autosave, GUI thread        {percentiles(gui)}   (target p95 <= 5 ms)")
    print(f"  save until on disk        {percentiles(whole)}   (target <= 100 ms)")
    print(
        f"  {model.case.n_slices} slices; ratio p50 (GUI part / whole) "
        f"{np.median(gui) / np.median(whole):.3f}"
    )


def scroll_gaps(model, loop, until) -> list[float]:
    """Scroll one slice per 16 ms timer tick until ``until()`` is done; the gaps between ticks."""
    from PySide6.QtCore import QTimer

    gaps, last = [], [time.perf_counter()]

    def tick() -> None:
        now = time.perf_counter()
        gaps.append(now - last[0])
        last[0] = now
        model.set_slice((model.slice + 1) % model.case.n_slices)

    timer = QTimer(interval=16)
    timer.timeout.connect(tick)
    timer.start()
    try:
        loop.run_until_complete(until())
    finally:
        timer.stop()
    return gaps


def during_ai(window, loop) -> None:
    import asyncio

    from strokelens.app.inference import default_threads
    from strokelens.core.dataset import load_ref
    from strokelens.core.engine import Engine

    model = window.model
    for name in ("truth", "focal", "ce", "corrected"):
        model.set_layer(name, visible=True)
    keys = [e.key for e in model.entries]
    model.predictions.clear()
    baseline = scroll_gaps(model, loop, lambda: asyncio.sleep(3.0))
    start = time.perf_counter()
    gaps = scroll_gaps(model, loop, lambda: window.ai.run(keys))
    with_gui = time.perf_counter() - start
    engine = Engine.from_manifest(window.ai.ensemble, threads=default_threads())
    start = time.perf_counter()
    for entry in model.entries:
        engine.predict(load_ref(entry.ref))
    alone = time.perf_counter() - start
    over = sum(g > 0.050 for g in gaps)
    print(f"scroll during Run AI        {percentiles(gaps)}   max {max(gaps) * 1e3:.1f} ms")
    print(f"  ticks over 50 ms          {over} of {len(gaps)}   (target 0)")
    print(f"  scroll, no AI (baseline)  {percentiles(baseline)}   max {max(baseline) * 1e3:.1f} ms")
    print(
        f"  Run AI on {len(keys)} cases        {with_gui:.2f} s in the app (engine load included)"
        f" vs {alone:.2f} s engine alone, ratio {with_gui / alone:.2f}"
    )


if __name__ == "__main__":
    main()
