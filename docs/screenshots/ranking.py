"""Make ranking.png: the case browser sorted by the ensemble's doubt, after Run AI on some cases.

Run: python docs/screenshots/ranking.py --data DIR [--predict 8]
``DIR``: a phantom data set, e.g. the one ``python bench/ranking.py --data DIR`` leaves there;
the bundled demo ensemble runs on its first ``--predict`` cases (the others stay blank), the
table is sorted by doubt (highest first) and "Next most informative case" opens the top one.
Throw-away settings, project and prediction cache.
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
    parser.add_argument("--data", type=Path, required=True, help="phantom data set folder")
    parser.add_argument("--predict", type=int, default=8, help="cases to run the AI on")
    args = parser.parse_args()

    import qasync
    from PySide6.QtCore import QSettings, Qt

    from strokelens.app.case_browser import DOUBT
    from strokelens.app.launch import make_app
    from strokelens.app.main_window import MainWindow
    from strokelens.app.model import Model
    from strokelens.core.prediction_store import PredictionCache

    app = make_app()
    loop = qasync.QEventLoop(app)
    asyncio.set_event_loop(loop)
    with tempfile.TemporaryDirectory() as tmp:
        settings = QSettings(str(Path(tmp) / "settings.ini"), QSettings.Format.IniFormat)
        window = MainWindow(
            Model(), settings, loop, prediction_cache=PredictionCache(Path(tmp)),
            project=Path(tmp) / "project",
        )  # fmt: skip
        window.resize(1600, 960)
        window.show()

        async def shoot() -> None:
            model = window.model
            await window.cases.open_dataset(args.data)
            await window.ai.run([entry.key for entry in model.entries[: args.predict]])
            await window.tasks.idle()
            window.browser.table.sortByColumn(DOUBT, Qt.SortOrder.DescendingOrder)
            window.next_informative()
            await window.tasks.idle()
            window.resizeDocks([window.docks["cases"]], [560], Qt.Orientation.Horizontal)
            await asyncio.sleep(0.3)
            app.processEvents()
            window.docks["cases"].grab().save(str(HERE / "ranking.png"))
            window.close()

        loop.run_until_complete(shoot())
    print("wrote", HERE / "ranking.png")


if __name__ == "__main__":
    main()
