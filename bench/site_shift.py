"""Does a shifted acquisition site hurt the bundled demo ensemble? Same patients, every site.

One seed gives the same patients (head, lesion) at every phantom site, scanned differently, so
the per-patient DSC differences are paired: the site is the only change. The demo ensemble was
trained on default-site cases (seed 2018); the seed here is another, so all patients are new.
Prints per site the mean per-patient DSC (cases of one patient averaged first), its difference
to the default site and how many patients got worse.
Run: python bench/site_shift.py [--work DIR] [--cases N] [--seed S] [--sites A B ...]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from retrain_experiment import evaluate, generate, patient_means  # noqa: E402

from strokelens.core.demo import DEMO_MANIFEST  # noqa: E402
from strokelens.core.phantom import SITES, site_named  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, help="folder for the data sets (default: temporary)")
    parser.add_argument("--cases", type=int, default=12)
    parser.add_argument("--seed", type=int, default=16)
    parser.add_argument("--sites", nargs="+", default=list(SITES), choices=list(SITES))
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="site-shift-"))
    sites = ["default", *(s for s in args.sites if s != "default")]
    per_site: dict[str, dict[str, float]] = {}
    for name in sites:
        start = time.perf_counter()
        root = generate(work / name, site_named(name), args.cases, args.seed, args.jobs)
        made = time.perf_counter() - start
        dsc = evaluate(DEMO_MANIFEST, root)
        per_site[name] = patient_means(dsc)
        print(
            f"{name}: {len(dsc)} cases, {len(per_site[name])} patients, generated in {made:.0f} s,"
            f" evaluated in {time.perf_counter() - start - made:.0f} s",
            flush=True,
        )
    base = per_site["default"]
    print(f"\nseed {args.seed}, {args.cases} cases per site, demo ensemble ({DEMO_MANIFEST.name})")
    print("site        mean DSC by patient   vs default   patients worse")
    for name in sites:
        by = per_site[name]
        common = sorted(set(by) & set(base))
        delta = np.array([by[p] - base[p] for p in common])
        print(
            f"{name:<11} {np.mean(list(by.values())):.3f}                 "
            f"{delta.mean():+.3f}       {int((delta < 0).sum())} of {len(common)}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
