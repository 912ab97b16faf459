"""Does the ensemble's doubt point at its errors? Each ``core.ranking`` strategy on unseen cases.

Generates labelled phantom cases with a seed the demo ensemble never saw (the demo data is seed
2018, ``core.demo.DEMO_SEED``, which is refused), runs the ensemble on each (``core.engine``),
and computes every strategy's score and the ensemble's DSC (``case_metrics`` of the "all" mask
against the ground truth). Prints per case, then for each strategy the Spearman rank correlation
of score and 1 - DSC with its two-sided p-value and n, and the mean DSC of the quarter of cases
it ranks highest against the mean over all cases (what reviewing those first would find). The
baseline, from the same run: minus the predicted core volume (mL) as the score (smallest
core first), the ranking lesion size alone gives, without any doubt measure.

Run: python bench/ranking.py [--cases 20] [--seed 31] [--slices 4] [--data DIR] [--ensemble M]
(``--data``: generate the phantom there, or reuse the one there, and keep the predictions in a
prediction cache beside it, ``DIR-predictions``, so a rerun scores without predicting again;
default: a temporary folder.)
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from strokelens.core import ranking
from strokelens.core.dataset import load_ref, open_dataset
from strokelens.core.demo import DEMO_MANIFEST, DEMO_SEED
from strokelens.core.engine import Engine
from strokelens.core.errors import StrokeLensError
from strokelens.core.metrics import case_metrics, volume_ml
from strokelens.core.phantom import generate_dataset
from strokelens.core.prediction_store import PredictionCache, manifest_fingerprint

BASELINE = "-core_ml"


def bounded_int(low: int, high: int):
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is not within {low}-{high}")
        return value

    return parse


def arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", type=bounded_int(4, 200), default=20)
    parser.add_argument("--seed", type=bounded_int(0, 2**31 - 1), default=31)
    parser.add_argument("--slices", type=int, nargs="+", choices=(2, 4, 8, 16, 22), default=[4])
    parser.add_argument("--data", type=Path, help="phantom folder (made if missing or empty)")
    parser.add_argument("--ensemble", type=Path, default=DEMO_MANIFEST)
    parser.add_argument("--threads", type=bounded_int(1, 256), default=2)
    args = parser.parse_args(argv)
    if args.seed == DEMO_SEED:
        parser.error(f"seed {DEMO_SEED} made the demo ensemble's training data: not unseen")
    return args


def phantom(folder: Path, cases: int, seed: int, slices: list[int]) -> Path:
    """The labelled phantom in ``folder``: generated when ``folder`` has no cases yet."""
    if not (folder / "TRAINING").is_dir():
        start = time.perf_counter()
        generate_dataset(folder, cases, seed=seed, split="training", slices=slices)
        print(
            f"generated {cases} phantom cases (seed {seed}) in {time.perf_counter() - start:.0f} s"
        )
    return folder


def measure(data: Path, engine: Engine, cache: PredictionCache) -> list[dict[str, float | str]]:
    """Per case: each strategy's score, the core volume and the ensemble's DSC."""
    rows, fingerprint = [], manifest_fingerprint(engine.manifest)
    for ref in open_dataset(data):
        case = load_ref(ref)
        if case.mask is None:
            continue
        prediction = cache.get(fingerprint, case)
        if prediction is None:
            prediction = engine.predict(case)
            cache.put(fingerprint, case, prediction)
        row: dict[str, float | str] = {"case": case.key}
        row |= {name: ranking.score(prediction, name) for name in ranking.STRATEGIES}
        row[BASELINE] = -volume_ml(prediction.mask("all"), case.spacing)
        row["dsc"] = case_metrics(prediction.mask("all"), case.mask, case.spacing)["dsc"]
        rows.append(row)
        scores = "  ".join(f"{k} {row[k]:.4g}" for k in [*ranking.STRATEGIES, BASELINE])
        print(f"{case.key:22s} DSC {row['dsc']:.3f}  {scores}", flush=True)
    return rows


def report(rows: list[dict[str, float | str]]) -> None:
    error = 1.0 - np.array([r["dsc"] for r in rows], float)
    dsc = 1.0 - error
    top = max(1, len(rows) // 4)
    print(f"\nn = {len(rows)} cases, DSC {dsc.mean():.3f} ± {dsc.std(ddof=1):.3f} (mean ± sd)")
    print(f"{'score':24s} {'Spearman rho':>12s} {'p':>8s}   mean DSC of the top {top} by score")
    for name in [*ranking.STRATEGIES, BASELINE]:
        score = np.array([r[name] for r in rows], float)
        rho, p = spearmanr(score, error)
        first = np.argsort(-score, kind="stable")[:top]
        label = f"{name} (baseline)" if name == BASELINE else name
        print(f"{label:24s} {rho:12.3f} {p:8.3f}   {dsc[first].mean():.3f} (all: {dsc.mean():.3f})")


def main(argv: list[str] | None = None) -> int:
    args = arguments(argv)
    with tempfile.TemporaryDirectory(prefix="strokelens-ranking-") as tmp:
        try:
            data = phantom(args.data or Path(tmp) / "data", args.cases, args.seed, args.slices)
            cache = PredictionCache(data.with_name(data.name + "-predictions"))
            engine = Engine.from_manifest(args.ensemble, threads=args.threads)
            start = time.perf_counter()
            rows = measure(data, engine, cache)
        except StrokeLensError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 1
        print(f"scored {len(rows)} cases in {time.perf_counter() - start:.0f} s")
    if len(rows) < 3:
        print("error: fewer than 3 labelled cases: no rank correlation", file=sys.stderr)
        return 1
    report(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
