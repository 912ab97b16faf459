"""``strokelens info PATH``: summary of a data set or case."""

from __future__ import annotations

import argparse
import json

HELP = "summarise a data set or case (cases, patients, slices, spacing, lesion volume, problems)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("path", help="data set root, split folder or case folder")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def run(args: argparse.Namespace) -> int:
    from strokelens.core.dataset import open_dataset
    from strokelens.core.summary import format_summary, summarize

    summary = summarize(open_dataset(args.path))
    print(json.dumps(summary, indent=2) if args.json else format_summary(summary))
    return 0
