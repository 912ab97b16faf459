"""``strokelens info`` cost per case: the default (every header) and ``--check`` (every voxel),
against loading the case as ``predict`` does (``load_ref``: maps and mask, no 4D source).

Run: python bench/info.py PATH (a data set, e.g. ``strokelens phantom --out /tmp/ph --cases 8
--seed 1``); prints ms per case (best of N, warm page cache) and the ratios to the load.
"""

from __future__ import annotations

import sys

from timing import best_of

from strokelens.core.dataset import load_ref, open_dataset
from strokelens.core.summary import summarize


def main() -> None:
    dataset = open_dataset(sys.argv[1])
    n = len(dataset)
    summarize(dataset, check=True)  # warm the page cache
    (t_header, _), (t_check, _) = (
        best_of(lambda c=c: summarize(dataset, check=c), 5) for c in (False, True)
    )
    t_load, _ = best_of(lambda: [load_ref(ref) for ref in dataset], 5)
    print(f"{n} cases in {dataset.root}")
    print(f"info (headers, ground truth):      {t_header / n * 1e3:8.1f} ms per case")
    print(f"info --check (every voxel):        {t_check / n * 1e3:8.1f} ms per case")
    print(f"load_ref (what predict reads):     {t_load / n * 1e3:8.1f} ms per case")
    print(f"ratios to load_ref: info {t_header / t_load:.2f}, info --check {t_check / t_load:.2f}")


if __name__ == "__main__":
    main()
