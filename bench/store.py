"""Saving a corrected mask in the project store vs writing the same NIfTI alone.

A 22-slice 256 x 256 case; the mask alternates between two corrections, so every save writes a
new file, commits the case and audit rows (fsynced WAL) and removes the previous file. The
baseline is ``core.writer.write_mask`` of the same mask to a plain path (temporary file, fsync,
rename, folder fsync), in the same run. Target: a save <= 100 ms. The first save of a case also
fingerprints its input files (sha256 of every map), shown on its own.
Run: python bench/store.py
"""

from __future__ import annotations

import statistics
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np

from strokelens.core.dataset import load_case
from strokelens.core.project.store import ProjectStore
from strokelens.core.writer import write_mask

SHAPE_XYZ = (256, 256, 22)
RUNS = 30


def make_case(folder: Path) -> None:
    """A simple-layout case: five float32 maps of noise, 0.9 x 0.9 x 5 mm."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    for stem in ("ct", "cbf", "cbv", "mtt", "tmax"):
        data = (rng.random(SHAPE_XYZ) * 50).astype(np.float32)
        nib.save(nib.Nifti1Image(data, np.diag([0.9, 0.9, 5.0, 1.0])), folder / f"{stem}.nii")


def timed(fn, n: int) -> list[float]:
    out = []
    for i in range(n):
        t0 = time.perf_counter()
        fn(i)
        out.append(time.perf_counter() - t0)
    return out


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "data"
        make_case(root / "case_1")
        case = load_case(root / "case_1")
        masks = []
        for seed in (1, 2):
            mask = np.zeros(case.shape, np.uint8)
            z, y, x = np.random.default_rng(seed).integers(0, 100, 3)
            mask[z % 15 : z % 15 + 6, y : y + 60, x : x + 50] = 1
            masks.append(mask)
        with ProjectStore.open(Path(tmp) / "project", root, create=True) as store:
            t0 = time.perf_counter()
            store.save_mask(case, masks[0], "bench")
            first = time.perf_counter() - t0
            saves = timed(lambda i: store.save_mask(case, masks[(i + 1) % 2], "bench"), RUNS)
        plain = timed(lambda i: write_mask(case, masks[i % 2], Path(tmp) / "plain.nii.gz"), RUNS)
    for name, times in (("write_mask alone (baseline)", plain), ("ProjectStore.save_mask", saves)):
        print(
            f"{name:28s} best {min(times) * 1e3:6.1f} ms, median {statistics.median(times) * 1e3:6.1f} ms"
        )
    print(f"first save of the case (with input fingerprints): {first * 1e3:.1f} ms")
    ratio = statistics.median(saves) / statistics.median(plain)
    print(
        f"save / write ratio (medians): {ratio:.2f}; save median "
        f"{statistics.median(saves) * 1e3:.1f} ms (target <= 100 ms)"
    )


if __name__ == "__main__":
    main()
