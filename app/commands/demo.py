"""``strokelens demo``: the workstation on the demo phantom (``strokelens.core.demo``)."""

from __future__ import annotations

import argparse
from pathlib import Path

HELP = "open the workstation on the demo phantom data (generated on first run)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data", type=Path, help="demo data folder (default: the user's data folder)"
    )
    parser.add_argument(
        "--screenshot",
        metavar="FILE.png",
        help="save a PNG of the window with the first case and exit",
    )
    parser.add_argument(
        "--ensemble", metavar="MANIFEST", help="ensemble for Run AI (default: the bundled demo)"
    )
    parser.add_argument(
        "--run-ai", action="store_true", help="run the AI on the first case at once"
    )


def run(args: argparse.Namespace) -> int:
    from strokelens.app.launch import run_gui
    from strokelens.core.demo import demo_folder

    return run_gui(
        demo_folder=args.data or demo_folder(),
        screenshot=args.screenshot,
        ensemble=args.ensemble,
        run_ai=args.run_ai,
    )
