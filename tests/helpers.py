"""Small synthetic cases on disk for reader/writer tests (the phantom makes realistic ones)."""

from __future__ import annotations

import json
from pathlib import Path

import nibabel as nib
import numpy as np

#: ISLES dtypes per modality token
ISLES_DTYPES = {
    "CT": np.int32,
    "CT_CBF": np.uint16,
    "CT_CBV": np.uint16,
    "CT_MTT": np.float64,
    "CT_Tmax": np.float64,
    "OT": np.uint8,
}
SPACING_XYZ = (0.9, 0.9, 5.0)


def affine(spacing_xyz=SPACING_XYZ) -> np.ndarray:
    a = np.diag([*spacing_xyz, 1.0])
    a[:3, 3] = (-100.0, -110.0, 20.0)
    return a


def volume_xyz(token: str, shape_xyz, seed: int) -> np.ndarray:
    """Deterministic content; OT is a small block so lesion volumes are known."""
    rng = np.random.default_rng(seed)
    if token == "OT":
        m = np.zeros(shape_xyz, np.uint8)
        m[4:10, 5:9, : max(1, shape_xyz[2] // 2)] = 1
        return m
    return (rng.random(shape_xyz) * 50).astype(ISLES_DTYPES[token])


def save(data: np.ndarray, path: Path, aff=None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data, affine() if aff is None else aff), path)
    return path


def write_isles_case(
    case_dir: Path,
    shape_xyz=(24, 20, 4),
    first_id: int = 345560,
    prefix: str = "CT",
    ext: str = ".nii",
    truth: bool = True,
    frames: int | None = None,
    patient: str | None = None,
    seed: int = 0,
) -> dict[str, Path]:
    """A case in the exact ISLES layout; returns token -> file path."""
    tokens = ["CT", f"{prefix}_CBF", f"{prefix}_CBV", f"{prefix}_MTT", f"{prefix}_Tmax"]
    tokens += ["OT"] if truth else []
    paths = {}
    for n, token in enumerate(tokens):
        name = f"SMIR.Brain.XX.O.{token}.{first_id + n}"
        dtype_token = token if token in ("CT", "OT") else "CT_" + token.split("_", 1)[1]
        data = volume_xyz(dtype_token, shape_xyz, seed + n)
        paths[token] = save(data, case_dir / name / f"{name}{ext}")
        meta = {"modality": token}
        if token == "OT" and patient is not None:
            meta["description"] = f"SMIR phantom - OT - 2018_{patient}_study1 - case"
        (case_dir / name / f"{name}.json").write_text(json.dumps(meta))
    if frames:
        name = f"SMIR.Brain.XX.O.{prefix}_4DPWI.{first_id + 9}"
        series = np.random.default_rng(seed).normal(30, 5, (*shape_xyz, frames)).astype(np.int16)
        paths["4DPWI"] = save(series, case_dir / name / f"{name}{ext}")
    return paths


def write_simple_case(case_dir: Path, shape_xyz=(24, 20, 4), mask: bool = True, seed: int = 0):
    paths = {}
    for n, stem in enumerate(["ct", "cbf", "cbv", "mtt", "tmax"]):
        paths[stem] = save(
            volume_xyz("CT_MTT", shape_xyz, seed + n).astype(np.float32),
            case_dir / f"{stem}.nii.gz",
        )
    if mask:
        paths["mask"] = save(volume_xyz("OT", shape_xyz, seed), case_dir / "mask.nii.gz")
    return paths
