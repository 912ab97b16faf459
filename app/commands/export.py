"""``strokelens export MANIFEST --out DIR``: an inference-only (optionally fp16) copy of an ensemble."""

from __future__ import annotations

import argparse

from strokelens.app.commands import add_allow_external_members, folder

HELP = "export a trained ensemble for deployment (no auxiliary heads, fp16 weights)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("manifest", help="ensemble.json written by 'strokelens cv'")
    parser.add_argument(
        "--out", type=folder, required=True, help="folder for the exported ensemble"
    )
    parser.add_argument("--fp32", action="store_true", help="keep float32 weights")
    add_allow_external_members(parser)


def run(args: argparse.Namespace) -> int:
    from strokelens.training.export import export_ensemble

    path = export_ensemble(
        args.manifest,
        args.out,
        half=not args.fp32,
        allow_external_members=args.allow_external_members,
    )
    print(f"exported ensemble: {path}")
    return 0
