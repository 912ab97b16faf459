"""Make the workstation screenshots in this folder from the demo phantom and the demo ensemble.

Run: python docs/screenshots/make.py [--data DEMO_FOLDER] [--case training/case_1]
(the demo data are generated first if missing; throw-away settings and prediction cache).

- main.png: a training case after "Run AI": ground truth orange, focal red, CE cyan contours,
  the stroke-team numbers and the time-density curve;
- compare.png: the same case with the focal-vs-CE difference layer (agree white, focal only red,
  CE only cyan) and the compare dock.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

HERE = Path(__file__).parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, help="demo data folder (default: the user's)")
    parser.add_argument("--case", default="training/case_1", help="case key to show")
    args = parser.parse_args()

    import qasync
    from PySide6.QtCore import QSettings

    from strokelens.app.launch import SCREENSHOT_SIZE, make_app
    from strokelens.app.main_window import MainWindow
    from strokelens.app.model import Model
    from strokelens.core.demo import demo_folder, ensure_demo
    from strokelens.core.prediction_store import PredictionCache

    data = ensure_demo(args.data or demo_folder())
    app = make_app()
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    with tempfile.TemporaryDirectory() as tmp:
        settings = QSettings(str(Path(tmp) / "settings.ini"), QSettings.Format.IniFormat)
        window = MainWindow(Model(), settings, loop, prediction_cache=PredictionCache(Path(tmp)))
        window.resize(*SCREENSHOT_SIZE)
        window.show()

        async def shoot() -> None:
            model = window.model
            await window.open_dataset(data)
            await window.show_case(model.index_of(args.case))
            await window.run_ai([args.case])
            await window.settled()
            app.processEvents()
            window.save_screenshot(HERE / "main.png")
            model.set_layer("truth", visible=False)
            for name in ("focal", "ce"):
                model.set_layer(name, visible=False)
            model.set_layer("difference", visible=True)
            window.docks["compare"].raise_()
            await window.update_compare()
            await asyncio.sleep(0.3)
            app.processEvents()
            window.save_screenshot(HERE / "compare.png")
            window.close()

        loop.run_until_complete(shoot())
    print(f"wrote {HERE / 'main.png'} and {HERE / 'compare.png'}")


if __name__ == "__main__":
    main()
