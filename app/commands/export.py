"""``strokelens export MANIFEST --out DIR``: an inference-only (optionally fp16) copy of an ensemble."""

from __future__ import annotations

import argparse

HELP = "export a trained ensemble for deployment (no auxiliary heads, fp16 weights)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("manifest", help="ensemble.json written by 'strokelens cv'")
    parser.add_argument("--out", required=True, help="folder for the exported ensemble")
    parser.add_argument("--fp32", action="store_true", help="keep float32 weights")


def run(args: argparse.Namespace) -> int:
    from strokelens.training.export import export_ensemble

    path = export_ensemble(args.manifest, args.out, half=not args.fp32)
    print(f"exported ensemble: {path}")
    return 0
