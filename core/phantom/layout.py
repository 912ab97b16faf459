"""Writing phantom cases in the exact ISLES 2018 layout.

``<out>/TRAINING/case_<k>/SMIR.Brain.XX.O.<MOD>.<id>/SMIR.Brain.XX.O.<MOD>.<id>.nii`` plus a
``.json`` sidecar beside each file; ``TESTING`` cases have no ``OT``. Every file gets its own id,
numbered on from a seed-drawn start, as in the challenge data. About a third of the patients are
scanned in two stacked slabs, i.e. two cases; the patient id sits in each sidecar's
``description`` (``"SMIR phantom - <MOD> - 2018_<patient>_study1 - ..."``), where the reader looks
for it in the OT sidecar. Every case is generated from its own seeds, so one seed gives
byte-identical files whatever the number of worker processes. A data set comes from one
acquisition site (``sites``); sidecars of any site but the default name it (``"site"``).
"""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import signal
import tempfile
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np

from strokelens.core.errors import DataError
from strokelens.core.phantom.scan import PhantomScan, plan_slabs, random_patient, scan
from strokelens.core.phantom.sites import DEFAULT, Site
from strokelens.core.writer import atomic_save, volume_image

SPLITS = {"training": "TRAINING", "testing": "TESTING"}
#: modality folders of a case, in id order, with the voxel type ISLES files use
DTYPES: dict[str, type] = {
    "CT": np.int32,
    "CT_4DPWI": np.int16,
    "CT_CBF": np.uint16,
    "CT_CBV": np.uint16,
    "CT_MTT": np.float64,
    "CT_Tmax": np.float64,
    "OT": np.uint8,
}
#: stored value = physical value * scale (rounded into uint16); sidecar "scale" is the inverse
MAP_SCALE = {"CT_CBF": 10.0, "CT_CBV": 10.0}
UNITS = {
    "CT": "HU",
    "CT_4DPWI": "HU",
    "CT_CBF": "mL/100g/min",
    "CT_CBV": "mL/100g",
    "CT_MTT": "s",
    "CT_Tmax": "s",
    "OT": "label",
}
TWO_SLAB_FRACTION = 1 / 3  # of patients
PATIENT_START = {"training": 1, "testing": 501}
ID_START = {"training": (300000, 340000), "testing": (360000, 400000)}
_SPLIT_CODE = {"training": 1, "testing": 2}
#: BLAS thread counts, read by each worker at start: workers x BLAS threads must not exceed the
#: cores (OpenBLAS threads spin while waiting; see docs/phantom.md, Speed)
BLAS_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


@dataclass(frozen=True)
class CasePlan:
    """Which patient, slab and file ids one case gets."""

    number: int  # k of case_k
    patient_number: int
    n_slabs: int
    slab_index: int
    n_slices: int
    ids: dict[str, int]  # modality -> file id

    @property
    def name(self) -> str:
        return f"case_{self.number}"

    @property
    def patient_id(self) -> str:
        return f"P{self.patient_number:04d}"


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {sorted(SPLITS)}, got {split!r}")


def _rng(seed: int, split: str, *keys: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), _SPLIT_CODE[split], *keys])


def _draw(rng: np.random.Generator, weights: dict[int, float]) -> int:
    values = list(weights)
    return int(values[rng.choice(len(values), p=list(weights.values()))])


def plan_dataset(
    n_cases: int,
    seed: int,
    split: str = "training",
    slices: Sequence[int] | None = None,
    site: Site = DEFAULT,
) -> list[CasePlan]:
    """Cases, patients (one or two slabs each) and file ids of a data set.

    Slice counts follow the ``site``'s mix; ``slices`` replaces it (drawn uniformly from it; e.g.
    ``(2,)`` for fast tests).
    """
    _check_split(split)
    if slices is not None and not slices:
        raise ValueError("slices must name at least one slice count")
    choices = (
        (dict(site.slices_one), dict(site.slices_two))
        if slices is None
        else ({n: 1 / len(slices) for n in slices},) * 2
    )
    rng = _rng(seed, split, 0)
    modalities = [m for m in DTYPES if split == "training" or m != "OT"]
    next_id = int(rng.integers(*ID_START[split]))
    plans: list[CasePlan] = []
    patient = PATIENT_START[split]
    while len(plans) < n_cases:
        two = n_cases - len(plans) >= 2 and rng.random() < TWO_SLAB_FRACTION
        n_slabs = 2 if two else 1
        n_slices = _draw(rng, choices[1] if two else choices[0])
        for slab in range(n_slabs):
            ids = {m: next_id + i for i, m in enumerate(modalities)}
            next_id += len(modalities)
            plans.append(CasePlan(len(plans) + 1, patient, n_slabs, slab, n_slices, ids))
        patient += 1
    return plans


def simulate_planned(
    plan: CasePlan, seed: int, split: str = "training", site: Site = DEFAULT
) -> PhantomScan:
    """The scan of one planned case (its patient and slabs are re-drawn from their seeds)."""
    _check_split(split)
    patient = random_patient(_rng(seed, split, 1, plan.patient_number), plan.patient_id, site)
    slabs = plan_slabs(
        patient,
        _rng(seed, split, 2, plan.patient_number),
        plan.n_slices,
        plan.n_slabs,
        site.slice_mm,
    )
    rng = _rng(seed, split, 3, plan.number)
    return scan(patient, slabs[plan.slab_index], rng, site=site)


def file_arrays(result: PhantomScan, split: str = "training") -> dict[str, np.ndarray]:
    """The arrays written per modality, in ISLES voxel types (``(z, y, x)``, 4D ``(t, z, y, x)``)."""
    maps = result.maps

    def scaled(name: str, value: np.ndarray) -> np.ndarray:
        stored = np.rint(np.nan_to_num(value) * MAP_SCALE[name])
        return np.clip(stored, 0, np.iinfo(np.uint16).max).astype(np.uint16)

    arrays = {
        "CT": result.ct.astype(np.int32),
        "CT_4DPWI": result.series.astype(np.int16),
        "CT_CBF": scaled("CT_CBF", maps.cbf),
        "CT_CBV": scaled("CT_CBV", maps.cbv),
        "CT_MTT": np.nan_to_num(maps.mtt).astype(np.float64),
        "CT_Tmax": np.nan_to_num(maps.tmax).astype(np.float64),
    }
    if split == "training":
        arrays["OT"] = result.followup.astype(np.uint8)
    return arrays


def folder_name(modality: str, file_id: int) -> str:
    return f"SMIR.Brain.XX.O.{modality}.{file_id}"


def _series_image(series: np.ndarray, affine: np.ndarray) -> nib.Nifti1Image:
    """4D NIfTI from ``(t, z, y, x)``: stored ``(i, j, k, t)``, 1 s per frame."""
    img = nib.Nifti1Image(np.ascontiguousarray(series.transpose(3, 2, 1, 0)), affine)
    img.set_data_dtype(series.dtype)
    img.header.set_slope_inter(1.0, 0.0)
    return img


def _atomic_json(meta: dict, path: Path) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(meta, f, indent=2, sort_keys=True)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _sidecar(plan: CasePlan, modality: str, split: str, seed: int, result: PhantomScan) -> dict:
    slab = result.slab
    study = f"2018_{plan.patient_id}_study1"
    meta = {
        "description": (
            f"SMIR phantom - {modality} - {study} - {plan.name} slab {plan.slab_index + 1}"
            f" of {plan.n_slabs}"
        ),
        "modality": modality,
        "object_id": plan.ids[modality],
        "case": plan.name,
        "split": split,
        "patient": plan.patient_id,
        "units": UNITS[modality],
        "voxel_type": np.dtype(DTYPES[modality]).name,
        "spacing_mm": [slab.pixel, slab.pixel, slab.spacing[0]],
        "generator": "strokelens phantom",
        "seed": int(seed),
    }
    if not result.site.is_default:  # default-site sidecars stay as they always were
        meta["site"] = result.site.name
    if modality in MAP_SCALE:
        meta["scale"] = 1.0 / MAP_SCALE[modality]  # physical value = stored value * scale
    if modality == "CT_4DPWI":
        meta["frame_s"] = 1.0
        meta["frames"] = int(result.series.shape[0])
    if modality == "CT":
        meta["source"] = "mean of the pre-bolus frames of CT_4DPWI"
        meta["pre_bolus_frames"] = result.bolus.pre_bolus_frames
    if modality == "OT":
        lesion = result.patient.lesion
        meta["source"] = "follow-up DWI infarct (simulated), resampled to the CT slab"
        meta["lesion"] = {
            "territory": lesion.territory,
            "side": lesion.side,
            "core_ml_whole_brain": round(lesion.core_ml, 2),
            "hypoperfused_ml_whole_brain": round(lesion.hypo_ml, 2),
        }
    return meta


def write_case(root: str | Path, plan: CasePlan, result: PhantomScan, split: str, seed: int):
    """Write one case's modality folders under ``root/case_k``; returns the case folder."""
    folder = Path(root) / plan.name
    affine = result.slab.affine
    for modality, data in file_arrays(result, split).items():
        name = folder_name(modality, plan.ids[modality])
        target = folder / name / f"{name}.nii"
        data = data.astype(DTYPES[modality], copy=False)
        img = _series_image(data, affine) if data.ndim == 4 else volume_image(data, affine)
        img.header.set_xyzt_units("mm", "sec")
        atomic_save(img, target)
        _atomic_json(_sidecar(plan, modality, split, seed, result), target.with_suffix(".json"))
    return folder


def _generate_one(root: str, plan: CasePlan, seed: int, split: str, site: Site) -> Path:
    return write_case(root, plan, simulate_planned(plan, seed, split, site), split, seed)


def generate_dataset(
    out: str | Path,
    n_cases: int,
    seed: int = 0,
    split: str = "training",
    jobs: int = 1,
    progress: Callable[[Path], None] | None = None,
    slices: Sequence[int] | None = None,
    site: Site = DEFAULT,
) -> list[Path]:
    """Write ``n_cases`` phantom cases to ``out/TRAINING`` (or ``TESTING``); returns the folders.

    Refuses a split folder that already holds files (no silent mixing of two data sets).
    ``jobs`` worker processes share the cases; the files do not depend on it. ``site`` is the
    acquisition site of every case (``sites.SITES``).
    """
    _check_split(split)
    if n_cases < 1:
        raise ValueError(f"n_cases must be >= 1, got {n_cases}")
    root = Path(out) / SPLITS[split]
    if root.exists() and any(root.iterdir()):
        raise DataError(root, "already holds files; write the phantom to an empty folder")
    root.mkdir(parents=True, exist_ok=True)
    plans = plan_dataset(n_cases, seed, split, slices, site)
    folders: list[Path] = []
    if jobs <= 1:
        for plan in plans:
            folders.append(_generate_one(str(root), plan, seed, split, site))
            if progress:
                progress(folders[-1])
        return folders
    context = multiprocessing.get_context("spawn")  # safe from GUI and threaded callers
    threads = str(max(1, (os.cpu_count() or 1) // jobs))
    with _child_environment(dict.fromkeys(BLAS_THREAD_VARIABLES, threads)):
        with ProcessPoolExecutor(jobs, context, initializer=_ignore_interrupt) as pool:
            with _interrupts_ignored():  # the workers start (spawn) during the submits
                futures = [
                    pool.submit(_generate_one, str(root), p, seed, split, site) for p in plans
                ]
            try:
                for future in futures:
                    folders.append(future.result())
                    if progress:
                        progress(folders[-1])
            except BaseException:  # Ctrl+C or a failed case: queued cases never start
                pool.shutdown(cancel_futures=True)
                raise
    return folders


def _ignore_interrupt() -> None:
    """Workers leave Ctrl+C to the parent, which stops the pool (no traceback per worker)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


@contextlib.contextmanager
def _interrupts_ignored():
    """Ctrl+C ignored while workers are spawned: a Python started with SIGINT ignored keeps it
    so, which covers a worker still importing (before ``_ignore_interrupt`` runs). Signals are
    the main thread's, so from any other thread (the app's demo) only the initializer acts."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@contextlib.contextmanager
def _child_environment(values: dict[str, str]):
    """Set environment variables while worker processes start (they copy the environment)."""
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
