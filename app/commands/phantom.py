"""``strokelens phantom``: write a digital CT-perfusion data set in the ISLES 2018 layout."""

from __future__ import annotations

import argparse
import os
import sys
import time

from strokelens.app.commands import folder
from strokelens.core.phantom.sites import SITES

SITE_NAMES = tuple(SITES)

HELP = "write a simulated CT-perfusion data set (ISLES 2018 layout) for tests and demos"


def count(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out", type=folder, required=True, help="data set root (TRAINING/ or TESTING/ go in)"
    )
    parser.add_argument("--cases", type=count, default=24, help="number of cases (default 24)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (same seed, same files)")
    parser.add_argument(
        "--split", choices=("training", "testing"), default="training",
        help="training cases have a ground truth (OT), testing cases do not",
    )  # fmt: skip
    parser.add_argument(
        "--slices", type=int, nargs="+", choices=(2, 4, 8, 16, 22), metavar="N",
        help="slice counts to draw from (default: the site's mix; default site: the ISLES mix "
        "of 2, 4, 8, 16 and 22)",
    )  # fmt: skip
    parser.add_argument(
        "--site", choices=SITE_NAMES, default="default",
        help="acquisition site (scanner, dose, bolus, vendor software, slices; docs/phantom.md): "
        + ", ".join(SITE_NAMES),
    )  # fmt: skip
    parser.add_argument(
        "--jobs", type=count, default=min(2, os.cpu_count() or 1),
        help="worker processes (default: 2 or the CPU count if lower); files do not depend on it",
    )  # fmt: skip


def run(args: argparse.Namespace) -> int:
    from strokelens.core.phantom import generate_dataset, site_named

    start = time.perf_counter()
    try:
        folders = generate_dataset(
            args.out,
            args.cases,
            seed=args.seed,
            split=args.split,
            jobs=args.jobs,
            progress=lambda folder: print(f"wrote {folder}", flush=True),
            slices=args.slices,
            site=site_named(args.site),
        )
    except OSError as exc:  # disk full, no permission, a file where a folder should go
        print(f"strokelens phantom: error: {exc}", file=sys.stderr)
        return 1
    elapsed = time.perf_counter() - start
    print(f"{len(folders)} {args.split} cases in {elapsed:.1f} s")
    return 0
