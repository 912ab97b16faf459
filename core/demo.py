"""The demo: a phantom data set generated on first use, and the bundled demo ensemble.

The demo data set (24 training + 6 testing phantom cases, seed 2018) lives in the user's data
folder (``userdirs.data_dir() / "demo"``: ``~/.local/share/strokelens/demo`` on Linux). It is
written to ``demo.partial`` and renamed when complete, so an interrupted first run is redone
rather than opened half-made. A non-empty folder that is not a complete demo is never touched.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

from strokelens.core import userdirs
from strokelens.core.errors import DataError
from strokelens.resources import resource_path

DEMO_TRAINING = 24
DEMO_TESTING = 6
DEMO_CASES = DEMO_TRAINING + DEMO_TESTING
DEMO_SEED = 2018

#: The bundled demo ensemble (``strokelens export`` of a cross-validation run on the demo data).
DEMO_MANIFEST = resource_path("demo", "ensemble.json")


def demo_folder() -> Path:
    return userdirs.data_dir() / "demo"


def demo_ready(folder: Path) -> bool:
    return (folder / "TRAINING").is_dir() and (folder / "TESTING").is_dir()


def generate_demo(folder: Path, progress: Callable[[Path], None] | None = None) -> Path:
    """Write the demo data set into ``folder``, which must be missing or empty (never deleted)."""
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


def ensure_demo(folder: Path | None = None, progress: Callable[[Path], None] | None = None) -> Path:
    """The demo data folder, generated first if it is not there yet."""
    folder = folder or demo_folder()
    return folder if demo_ready(folder) else generate_demo(folder, progress)
