"""``strokelens demo``: the workstation on the demo phantom, generated on first run.

The demo data set (24 training + 6 testing phantom cases, seed 2018) lives in the user's data
folder (``<GenericDataLocation>/strokelens/demo``, e.g. ``~/.local/share/strokelens/demo``). It is
written to ``demo.partial`` and renamed when complete, so an interrupted first run is redone
rather than opened half-made. A non-empty folder that is not a complete demo is never touched.
"""

from __future__ import annotations

import argparse
import os
import shutil
from collections.abc import Callable
from pathlib import Path

HELP = "open the workstation on the demo phantom data (generated on first run)"

DEMO_TRAINING = 24
DEMO_TESTING = 6
DEMO_CASES = DEMO_TRAINING + DEMO_TESTING
DEMO_SEED = 2018


def demo_folder() -> Path:
    from PySide6.QtCore import QStandardPaths

    root = QStandardPaths.writableLocation(QStandardPaths.StandardLocation.GenericDataLocation)
    return Path(root or Path.home() / ".local" / "share") / "strokelens" / "demo"


def demo_ready(folder: Path) -> bool:
    return (folder / "TRAINING").is_dir() and (folder / "TESTING").is_dir()


def generate_demo(folder: Path, progress: Callable[[Path], None] | None = None) -> Path:
    """Write the demo data set into ``folder``, which must be missing or empty (never deleted)."""
    from strokelens.core.errors import DataError
    from strokelens.core.phantom import generate_dataset

    if folder.exists() and any(folder.iterdir()):
        raise DataError(
            folder, "holds files but no complete demo data set; empty it or pick another"
        )
    partial = folder.with_name(folder.name + ".partial")
    if partial.exists():
        shutil.rmtree(partial)  # our own leftover of an interrupted run
    jobs = min(2, os.cpu_count() or 1)
    for split, n in (("training", DEMO_TRAINING), ("testing", DEMO_TESTING)):
        generate_dataset(partial, n, seed=DEMO_SEED, split=split, jobs=jobs, progress=progress)
    if folder.exists():
        folder.rmdir()
    partial.rename(folder)
    return folder


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data", type=Path, help="demo data folder (default: the user's data folder)"
    )
    parser.add_argument(
        "--screenshot",
        metavar="FILE.png",
        help="save a PNG of the window with the first case and exit",
    )


def run(args: argparse.Namespace) -> int:
    from strokelens.app.launch import run_gui

    return run_gui(demo_folder=args.data or demo_folder(), screenshot=args.screenshot)
