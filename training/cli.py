"""Training's own command line: ``python -m strokelens.training cv|finetune ...``, the entry
point ``torchrun`` launches once per process (DDP), without the app; ``strokelens cv`` and
``strokelens finetune`` are these commands.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys

from strokelens.core.commandline import run_guarded
from strokelens.training import finetune_cli

HELP = "train every fold for each loss of a config; writes RUN/ensemble.json"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, help="TOML file, or a packaged name: paper, cpu")
    parser.add_argument("--data", required=True, help="data set with ground truth (ISLES layout)")
    parser.add_argument("--out", required=True, help="run folder")
    parser.add_argument("--loss", action="append", help="only this loss (repeatable)")
    parser.add_argument(
        "--fold", type=int, action="append", help="only this fold, from 1 (repeatable)"
    )
    parser.add_argument("--resume", action="store_true", help="continue a killed run")
    parser.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: CUDA when available)")


def run(args: argparse.Namespace) -> int:
    """Per-patient k-fold cross-validation for each loss (DDP under ``torchrun``)."""
    from strokelens.training.config import load_config
    from strokelens.training.cv import run_cv
    from strokelens.training.distributed import init_from_env, is_main, shutdown

    config = load_config(args.config)
    init_from_env()
    try:
        manifest = run_cv(
            config,
            args.data,
            args.out,
            losses=args.loss,
            only_folds=args.fold,
            resume=args.resume,
            progress=sys.stderr.isatty(),
            device=args.device,
        )
    finally:
        shutdown()
    if is_main():
        print(f"ensemble manifest: {manifest}")
    return 0


def main(argv: list[str] | None = None) -> int:
    multiprocessing.freeze_support()
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = argparse.ArgumentParser(prog="python -m strokelens.training")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    add_arguments(sub.add_parser("cv", help=HELP))
    finetune_cli.add_arguments(sub.add_parser("finetune", help=finetune_cli.HELP))
    args = parser.parse_args(argv)
    command = finetune_cli.run if args.command == "finetune" else run
    return run_guarded(f"strokelens {args.command}", argv, lambda: command(args))
