"""Launch time of the frozen app vs from source (offscreen), best of ``--runs``.

``python packaging/launch_time.py --demo DIR [--bundle dist/strokelens/strokelens]``

Per launcher, the seconds from starting ``strokelens demo --data DIR --screenshot F`` to F being
written: the window shown with the demo data's first case drawn (``--screenshot`` waits for it),
an upper bound of the time until the window appears. The process's exit is not counted. Baseline:
the same command from source, in this run.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def seconds_to_screenshot(command: list[str]) -> float:
    """Start ``command`` with ``--screenshot F``; the seconds until F is written."""
    with tempfile.TemporaryDirectory() as scratch:
        shot = Path(scratch) / "window.png"
        env = {**os.environ, "QT_QPA_PLATFORM": "offscreen"}
        start = time.perf_counter()
        process = subprocess.Popen(
            [*command, "--screenshot", str(shot)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        while not shot.exists() and process.poll() is None:
            time.sleep(0.01)
        elapsed = time.perf_counter() - start
        process.wait(60)
        if not shot.exists():
            raise SystemExit(f"{' '.join(command)}: no screenshot (exit {process.returncode})")
        return elapsed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, default=REPO / "dist" / "strokelens" / "strokelens")
    parser.add_argument("--demo", type=Path, required=True, help="demo data folder (ready)")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    launchers = {
        "frozen": [str(args.bundle)],
        "source": [sys.executable, "-m", "strokelens.app.cli"],
    }
    tail = ["demo", "--data", str(args.demo)]
    best = {
        name: min(seconds_to_screenshot([*launcher, *tail]) for _ in range(args.runs))
        for name, launcher in launchers.items()
    }
    print(
        f"launch to first case drawn: frozen {best['frozen']:.2f} s, source {best['source']:.2f} s,"
        f" ratio {best['frozen'] / best['source']:.2f} (best of {args.runs})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
