"""Make the workstation screenshots in this folder from the demo phantom and the demo ensemble.

Run: python docs/screenshots/make.py [--data DEMO_FOLDER] [--case training/case_1]
[--testing-case testing/case_1] (the demo data are generated first if missing; throw-away
settings and prediction cache).

- panel-no-core.png: the mismatch panel on a testing case (no ground truth) before "Run AI": no
  core, so no verdict and no criterion decided;
- main.png: a training case after "Run AI": ground truth orange, focal red, CE cyan contours,
  the mismatch numbers and the time-density curve;
- compare.png: the same case with the focal-vs-CE difference layer (agree white, focal only red,
  CE only cyan) and the compare dock;
- editing.png: a correction in progress on that case: started from the focal ensemble, one
  focal-only region rejected and a brush stroke added (green), the brush outline under the cursor
  on every pane, the edit dock and the compare dock following the correction;
- mismatch-panel.png: the mismatch panel on that case after "Run AI": the AI core beside the
  threshold core (rCBF < 30 %), the members' range, the ground truth as a reference;
- montage.png: the montage dock (floated, larger) on that case: every slice with the AI core
  pink, Tmax > 6 s green and the threshold core's outline yellow;
- panel-partial.png: the mismatch panel on that case with only the slices the AI does first (the
  one on screen and its nearest neighbours, ``PARTIAL_SLICES``), as while it runs;
- worklist.png: the case list over a copy of four demo cases (``worklist_dataset``): one
  predicted, one whose Run AI was stopped after its first slice ("partial"), one whose Tmax file
  is garbage ("error", found reading ahead) and the one on screen.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import tempfile
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

HERE = Path(__file__).parent
#: Slices done in panel-partial.png.
PARTIAL_SLICES = 5


def worklist_dataset(data: Path, folder: Path) -> Path:
    """The first four training cases of ``data`` copied into ``folder`` (without their 4D
    series), the third with a Tmax file that cannot be read."""
    for n in range(1, 5):
        target = folder / "TRAINING" / f"case_{n}"
        shutil.copytree(
            data / "TRAINING" / f"case_{n}", target, ignore=shutil.ignore_patterns("*4DPWI*")
        )
        if n == 3:
            for tmax in target.glob("*CT_Tmax*/*.nii*"):
                tmax.write_bytes(b"not a NIfTI file")
    return folder


async def wait_for(condition, timeout_s: float = 30.0) -> None:
    for _ in range(int(timeout_s / 0.05)):
        if condition():
            return
        await asyncio.sleep(0.05)
    raise TimeoutError("the worklist did not reach the state to show")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, help="demo data folder (default: the user's)")
    parser.add_argument("--case", default="training/case_1", help="case key to show")
    parser.add_argument(
        "--testing-case", default="testing/case_1", help="case without ground truth to show"
    )
    args = parser.parse_args()

    import qasync
    from PySide6.QtCore import QSettings

    from strokelens.app.launch import SCREENSHOT_SIZE, make_app
    from strokelens.app.main_window import MainWindow
    from strokelens.app.model import Model
    from strokelens.core.demo import demo_folder, ensure_demo
    from strokelens.core.prediction import Prediction
    from strokelens.core.prediction_store import PredictionCache

    data = ensure_demo(args.data or demo_folder())
    app = make_app()
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    with tempfile.TemporaryDirectory() as tmp:
        settings = QSettings(str(Path(tmp) / "settings.ini"), QSettings.Format.IniFormat)
        window = MainWindow(
            Model(), settings, loop, prediction_cache=PredictionCache(Path(tmp)),
            project=Path(tmp) / "project",
        )  # fmt: skip
        window.resize(*SCREENSHOT_SIZE)
        window.show()

        async def shoot() -> None:
            model = window.model
            await window.cases.open_dataset(data)
            await window.cases.show_case(model.index_of(args.testing_case))
            await window.tasks.idle()
            await asyncio.sleep(0.3)  # layout, without re-entering the loop's tasks
            window.mismatch.grab().save(str(HERE / "panel-no-core.png"))
            await window.cases.show_case(model.index_of(args.case))
            await window.ai.run([args.case])
            await window.settled()
            await asyncio.sleep(0.05)  # the loop paints (processEvents here re-enters tasks)
            window.save_screenshot(HERE / "main.png")
            window.mismatch.grab().save(str(HERE / "mismatch-panel.png"))
            await montage_shot(window, app)
            model.set_layer("truth", visible=False)
            for name in ("focal", "ce"):
                model.set_layer(name, visible=False)
            model.set_layer("difference", visible=True)
            window.docks["compare"].raise_()
            await window.compare.refresh()
            await asyncio.sleep(0.3)
            await asyncio.sleep(0.05)  # the loop paints (processEvents here re-enters tasks)
            window.save_screenshot(HERE / "compare.png")
            full = model.predictions[args.case]
            partial = Prediction.empty(
                args.case, full.shape, full.spacing, full.member_names, full.member_losses,
                full.min_component_ml,
            )  # fmt: skip
            first = sorted(range(full.shape[0]), key=lambda z: abs(z - model.slice))
            partial.update(first[:PARTIAL_SLICES], full.members[:, first[:PARTIAL_SLICES]])
            model.set_prediction(args.case, partial)
            await window.tasks.idle()
            await asyncio.sleep(0.3)
            window.mismatch.grab().save(str(HERE / "panel-partial.png"))
            model.set_prediction(args.case, full)  # the correction below starts from it
            await window.tasks.idle()
            await correction_in_progress(window, app)

            await window.cases.open_dataset(worklist_dataset(data, Path(tmp) / "worklist"))
            keys = [entry.key for entry in model.entries]
            await window.ai.run([keys[0]])  # predicted
            await window.cases.show_case(1)
            stop = window.ai.slice_received.connect(lambda _key, _z: window.ai.cancel())
            await window.ai.run([keys[1]])  # partial: stopped on its first slice
            window.ai.slice_received.disconnect(stop)
            await window.cases.show_case(3)  # reads case_3 ahead: error
            await wait_for(lambda: model.entries[2].error is not None)
            await window.tasks.idle()
            await asyncio.sleep(0.3)
            await asyncio.sleep(0.05)  # the loop paints (processEvents here re-enters tasks)
            window.docks["cases"].grab().save(str(HERE / "worklist.png"))
            window.close()

        loop.run_until_complete(shoot())
    names = (
        "panel-no-core.png", "main.png", "mismatch-panel.png", "montage.png", "compare.png",
        "editing.png", "panel-partial.png", "worklist.png",
    )  # fmt: skip
    print("wrote", ", ".join(str(HERE / name) for name in names))


async def montage_shot(window, app) -> None:
    """montage.png: the montage dock floated to a readable size, then docked again."""
    dock = window.docks["montage"]
    dock.setFloating(True)
    dock.resize(900, 520)
    dock.show()
    dock.raise_()
    await wait_for(lambda: window.montage.tile_count() > 0)
    await asyncio.sleep(0.3)
    await asyncio.sleep(0.05)  # the loop paints (processEvents here re-enters tasks)
    dock.grab().save(str(HERE / "montage.png"))
    dock.setFloating(False)
    window.docks["curve"].raise_()


async def correction_in_progress(window, app) -> None:
    """editing.png: start from the focal ensemble, reject a focal-only region, add a stroke."""
    import numpy as np

    from strokelens.app.edit_session import Tool
    from strokelens.core.comparison import FOCAL_ONLY

    model, edit = window.model, window.edit
    model.set_layer("difference", visible=False)
    model.set_layer("focal", visible=True)
    edit.start_from("focal")  # then the focal-only region under the click is rejected
    labels = model.layer_data("difference")
    focal_only = np.argwhere(labels[model.slice] == FOCAL_ONLY) if labels is not None else []
    if len(focal_only):
        y, x = focal_only[len(focal_only) // 2]
        edit.set_tool(Tool.PICK)
        model.set_layer("difference", visible=True)
        edit.pick((model.slice, int(y), int(x)))
        model.set_layer("difference", visible=False)
    core = np.argwhere(model.corrected[model.case.key][model.slice])
    y, x = core.mean(axis=0) if len(core) else np.array(model.case.shape[1:]) / 2
    edit.set_tool(Tool.BRUSH)
    edit.set_radius(3.0)
    edit.press(y + 12, x - 10)
    for step in np.linspace(0, 1, 30):
        edit.drag(y + 12 + 4 * np.sin(step * 3), x - 10 + 20 * step)
    edit.release()
    model.set_cursor((int(y + 18), int(x + 4)))
    window.docks["edit"].raise_()
    window.docks["compare"].raise_()
    await window.compare.refresh()
    await asyncio.sleep(0.3)
    await asyncio.sleep(0.05)  # the loop paints (processEvents here re-enters tasks)
    window.save_screenshot(HERE / "editing.png")
    edit.set_tool(Tool.NAVIGATE)


if __name__ == "__main__":
    main()
