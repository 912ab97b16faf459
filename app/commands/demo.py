"""``strokelens demo``: the workstation on the demo phantom (``strokelens.core.demo``)."""

from __future__ import annotations

import argparse
from pathlib import Path

from strokelens.app.commands.app import add_window_options, window_options

HELP = "open the workstation on the demo phantom data (generated on first run)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data", type=Path, help="demo data folder (default: the user's data folder)"
    )
    add_window_options(parser)


def run(args: argparse.Namespace) -> int:
    from strokelens.app.launch import run_gui
    from strokelens.core.demo import demo_folder

    return run_gui(demo_folder=args.data or demo_folder(), **window_options(args))
