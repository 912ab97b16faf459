"""``strokelens app [PATH]``: the review workstation (PySide6) on a data set."""

from __future__ import annotations

import argparse

from strokelens.app.commands import add_allow_external_members

HELP = "open the review workstation on a data set (ISLES or simple layout)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", nargs="?", help="data set root, split folder or case folder")
    add_window_options(parser)


def add_window_options(parser: argparse.ArgumentParser) -> None:
    """Options of every command that opens the window (``app``, ``demo``)."""
    parser.add_argument(
        "--screenshot",
        metavar="FILE.png",
        help="show the first case, save a PNG of the window and exit",
    )
    parser.add_argument(
        "--ensemble", metavar="MANIFEST", help="ensemble for Run AI (default: the bundled demo)"
    )
    add_allow_external_members(parser)
    parser.add_argument(
        "--run-ai", action="store_true", help="run the AI on the first case at once"
    )
    parser.add_argument(
        "--project",
        metavar="FOLDER",
        help="project where corrections are saved (created if missing; default: one per data "
        "set in the user's data folder)",
    )


def window_options(args: argparse.Namespace) -> dict:
    """``run_gui`` keywords from the options of ``add_window_options``."""
    return {
        "screenshot": args.screenshot,
        "ensemble": args.ensemble,
        "allow_external_members": args.allow_external_members,
        "run_ai": args.run_ai,
        "project": args.project,
    }


def run(args: argparse.Namespace) -> int:
    from strokelens.app.launch import run_gui

    if args.screenshot and not args.path:
        print("strokelens app: error: --screenshot needs a PATH to open")
        return 2
    return run_gui(args.path, **window_options(args))
