"""``strokelens export-masks --project P --out DIR [--status approved]``: a project's corrections.

Writes the masks under ISLES submission names, ``cases.csv``, ``metrics.csv`` and
``manifest.json`` (see ``core.project.export``). The project is opened read-only, so a window
editing it meanwhile is no obstacle. Exit 1 when a case's mask could not be exported.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from strokelens.core.project.review import Status

HELP = "export a review project's corrected masks (ISLES names), per-case CSV and manifest"
_DEFAULT = (Status.CORRECTED, Status.APPROVED)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--project", required=True, help="project folder")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument(
        "--status",
        action="append",
        choices=[str(s) for s in _DEFAULT],
        help="export cases of this status (repeatable; default: corrected and approved)",
    )
    parser.add_argument(
        "--method", default="strokelens", help="method name in ISLES submission file names"
    )
    parser.add_argument(
        "--cache", help="prediction cache for the ensemble metrics (default: the user's cache)"
    )


def run(args: argparse.Namespace) -> int:
    from strokelens.core.project.store import ProjectStore
    from strokelens.core.safepath import check_name

    method = check_name(args.method, "--method", "the command line")
    statuses = tuple(Status(s) for s in args.status) if args.status else _DEFAULT
    with ProjectStore.open(args.project, writable=False) as store:
        cache = Path(args.cache) if args.cache else None
        result = store.export(args.out, statuses, method=method, cache_root=cache)
        for problem in store.problems.values():
            print(f"warning: {problem}")
    for note in result.notes:
        print(f"note: {note}")
    for key, why in result.skipped.items():
        print(f"error: {key}: {why}")
    print(
        f"exported {len(result.masks)} mask(s) of {', '.join(statuses)} cases to {result.out} "
        f"({result.cases_csv.name}, {result.metrics_csv.name}, {result.manifest.name})"
    )
    return 1 if result.skipped else 0
