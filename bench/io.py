"""Reader overhead: one 22-slice case (five maps) through StrokeLens vs plain nibabel loads.

Prints both times (best of N, warm page cache) and the overhead ratio; the target is <= 1.3.
Run: python bench/io.py
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import nibabel as nib
import numpy as np
from timing import best_of

from strokelens.core.dataset import load_case

ISLES_MAPS = {"CT": np.int32, "CT_CBF": np.uint16, "CT_CBV": np.uint16}
ISLES_MAPS |= {"CT_MTT": np.float64, "CT_Tmax": np.float64}


def write_case(folder: Path) -> list[Path]:
    rng = np.random.default_rng(0)
    affine = np.diag([0.9, 0.9, 5.0, 1.0])
    paths = []
    for n, (token, dtype) in enumerate(ISLES_MAPS.items()):
        name = f"SMIR.Brain.XX.O.{token}.{345560 + n}"
        path = folder / name / f"{name}.nii"
        path.parent.mkdir(parents=True)
        nib.save(nib.Nifti1Image((rng.random((256, 256, 22)) * 90).astype(dtype), affine), path)
        paths.append(path)
    return paths


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "case_1"
        paths = write_case(folder)

        def plain():
            return [nib.load(p).get_fdata(dtype=np.float32) for p in paths]

        def reader():
            return load_case(folder)

        plain(), reader()  # warm the page cache
        (t_plain, _), (t_reader, _) = best_of(plain, 15), best_of(reader, 15)
    print(f"plain nibabel get_fdata(float32), 5 maps 256x256x22: {t_plain * 1e3:.1f} ms")
    print(f"StrokeLens load_case (checks, float32, (z,y,x)):       {t_reader * 1e3:.1f} ms")
    print(f"reader overhead ratio: {t_reader / t_plain:.2f} (target <= 1.3)")


if __name__ == "__main__":
    main()
