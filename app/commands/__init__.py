"""Subcommands of the ``strokelens`` command line, one module each.

Each module defines ``HELP`` (one line), ``add_arguments(parser)`` and ``run(args) -> int``;
``strokelens.app.cli`` imports a module only when its command runs, so start-up stays fast.
"""

from __future__ import annotations

import argparse


def add_allow_external_members(parser: argparse.ArgumentParser) -> None:
    """``--allow-external-members``, for every command that loads an ensemble."""
    parser.add_argument(
        "--allow-external-members",
        action="store_true",
        help="load member weight files that lie outside the manifest's folder (refused by "
        "default, so that a manifest from elsewhere cannot read other files)",
    )
