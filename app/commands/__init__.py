"""Subcommands of the ``strokelens`` command line, one module each.

Each module defines ``HELP`` (one line), ``add_arguments(parser)`` and ``run(args) -> int``;
``strokelens.app.cli`` imports a module only when its command runs, so start-up stays fast.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path


def add_allow_external_members(parser: argparse.ArgumentParser) -> None:
    """``--allow-external-members``, for every command that loads an ensemble."""
    parser.add_argument(
        "--allow-external-members",
        action="store_true",
        help="load member weight files that lie outside the manifest's folder (refused by "
        "default, so that a manifest from elsewhere cannot read other files)",
    )


def checked_number(check: Callable[[float], float]) -> Callable[[str], float]:
    """An argparse type: a number that the library's own ``check`` accepts (one rule for the
    command line and the library), else the option's error."""

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
        try:
            return check(value)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from exc

    return parse


def folder(text: str) -> Path:
    """An argparse type for a folder option: refuses an empty value, which ``Path`` would turn
    into the current folder (a script's unset variable wrote outputs into the working folder)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("empty; give a folder")
    return Path(text)
