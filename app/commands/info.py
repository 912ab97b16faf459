"""``strokelens info PATH [--check] [--json]``: summary of a data set or case, and its problems.

Exit 1 when a case has an error (a file ``predict`` would refuse, or corrupt data); warnings are
listed and leave the exit at 0.
"""

from __future__ import annotations

import argparse
import json

HELP = "summarise a data set or case and check its files (cases, patients, slices, problems)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", help="data set root, split folder or case folder")
    parser.add_argument(
        "--check",
        action="store_true",
        help="read every voxel too: gzip CRC, NaN/Inf (default: every file's header)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    from strokelens.core.dataset import open_dataset
    from strokelens.core.summary import format_summary, summarize

    summary = summarize(open_dataset(args.path), check=args.check)
    print(json.dumps(summary, indent=2) if args.json else format_summary(summary))
    return 1 if summary["errors"] else 0
