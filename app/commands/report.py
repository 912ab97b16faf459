"""``strokelens report RUN [RUN ...]``: Table 1 and a Fig. 3-style chart from CV runs."""

from __future__ import annotations

import argparse

from strokelens.app.commands import folder

HELP = "write the paper's Table 1 (per-fold DSC) and Fig. 3 bar chart from cross-validation runs"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("runs", nargs="+", help="run folders written by 'strokelens cv'")
    parser.add_argument(
        "--out", type=folder, help="folder for report.md and fig3.png (default: the first run)"
    )


def run(args: argparse.Namespace) -> int:
    from strokelens.training.report import write_report

    md, png = write_report(args.runs, args.out or args.runs[0])
    print(md.read_text())
    print(f"written: {md}, {png}")
    return 0
