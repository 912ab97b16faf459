"""Finding cases on disk and loading them.

Two layouts are read:

* ISLES 2018: ``TRAINING/`` and ``TESTING/`` (or a folder of case folders, or one case folder);
  each case holds ``SMIR.Brain.XX.O.<MOD>.<id>/`` folders with a ``.nii``/``.nii.gz`` named like
  the folder and a ``.json`` sidecar.
* Simple: one folder per case holding ``ct``, ``cbf``, ``cbv``, ``mtt``, ``tmax`` (``.nii`` or
  ``.nii.gz``), optional ``mask`` (ground truth) and optional ``4dpwi`` (4D source).

Listing a data set reads folder names and small sidecars only; voxels are read by ``load``.
Every entry with a NIfTI name counts as that file, whatever it is: a FIFO or a device named
``ct.nii`` is refused by name when the case is loaded, not skipped as if it were absent.
Problems that make a case unloadable are kept on its ``CaseRef`` (``errors``) so a listing of a
partly broken data set still works; ``load`` raises them as ``DataError``.

Policies: non-finite voxels in a map (stored so, or made by its scaling) are set to 0 and reported
in ``Case.problems``; a ground truth must hold only 0 and 1; a 4D source holding NaN/Inf is
refused when read (``nifti.load_series``); maps and mask must share shape and (within
``AFFINE_TOLERANCE_MM``) affine. Value scales come from a ``strokelens.toml`` declaration, else
the sidecars (``core.units``; a broken declaration makes the case unloadable); without a declared
CBF unit, implausible CBF values are reported (``core.plausibility``), never rescaled.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from strokelens.core import isles
from strokelens.core.case import CHANNELS, Case
from strokelens.core.errors import DataError
from strokelens.core.files import read_text
from strokelens.core.nifti import (
    frame_interval,
    is_nifti_name,
    load_series,
    load_volume,
    open_series,
    spacing_zyx,
    spatial_shape,
)
from strokelens.core.plausibility import cbf_units_problem
from strokelens.core.schema import UnitsDeclaration, load
from strokelens.core.units import find_declaration

AFFINE_TOLERANCE_MM = 1e-2
SPLITS = {"training": "training", "testing": "testing"}
SUBJECTS_CSV = "subjects.csv"

#: simple-layout file stem -> key
_SIMPLE_STEMS = {
    "ct": "CT",
    "cbf": "CBF",
    "cbv": "CBV",
    "mtt": "MTT",
    "tmax": "Tmax",
    "mask": "OT",
    "4dpwi": "4DPWI",
}


@dataclass
class CaseRef:
    """A case found on disk, before its voxels are read."""

    id: str
    split: str
    folder: Path
    layout: str  # "isles" or "simple"
    files: dict[str, Path] = field(default_factory=dict)  # CT, CBF, ..., OT, 4DPWI -> file
    patient: str = ""
    submission_id: str | None = None
    errors: list[str] = field(default_factory=list)  # fatal for loading
    problems: list[str] = field(default_factory=list)  # worth telling, not fatal
    units_file: Path | None = None  # the strokelens.toml that applies (core.units)
    declared_scales: dict[str, float] = field(default_factory=dict)  # map -> scale, from it

    @property
    def key(self) -> str:
        return f"{self.split}/{self.id}" if self.split else self.id

    @property
    def has_truth(self) -> bool:
        return "OT" in self.files


def _natural_key(name: str) -> list:
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def _nifti_stem(path: Path) -> str:
    name = path.name
    return name[: -len(".nii.gz")] if name.lower().endswith(".nii.gz") else path.stem


def _is_nifti_entry(path: Path) -> bool:
    """A NIfTI name that is not a folder (checked as a regular file when read)."""
    return is_nifti_name(path) and not path.is_dir()


def _is_simple_case_folder(folder: Path) -> bool:
    """Holds ``ct`` or, for a case whose maps are still to be computed, ``4dpwi``."""
    return any(
        _is_nifti_entry(p) and _nifti_stem(p).lower() in ("ct", "4dpwi") for p in folder.iterdir()
    )


def _is_case_folder(folder: Path) -> bool:
    return folder.is_dir() and (
        isles.is_isles_case_folder(folder) or _is_simple_case_folder(folder)
    )


def _split_of(folder: Path) -> str:
    return SPLITS.get(folder.name.lower(), "")


def _scan_isles(ref: CaseRef) -> None:
    seen: dict[str, list[Path]] = {}
    for sub in sorted(ref.folder.iterdir()):
        if not sub.is_dir():
            continue
        parsed = isles.parse_modality_folder(sub.name)
        if parsed is None:
            if sub.name.startswith("SMIR."):
                ref.problems.append(f"{sub.name}: unknown modality folder, ignored")
            continue
        key, number = parsed
        seen.setdefault(key, []).append(sub)
        if key == "MTT":
            ref.submission_id = number
    for key, folders in seen.items():
        if len(folders) > 1:
            names = ", ".join(f.name for f in folders)
            ref.errors.append(f"two folders for modality {key}: {names}")
            continue
        folder = folders[0]
        files = [p for p in folder.iterdir() if _is_nifti_entry(p)]
        named = [p for p in files if _nifti_stem(p) == folder.name]
        if len(named) == 1:
            ref.files[key] = named[0]
        elif len(files) == 1:
            ref.files[key] = files[0]
        elif not files:
            ref.errors.append(f"{folder.name}: no .nii/.nii.gz file in the folder")
        else:
            ref.errors.append(f"{folder.name}: several NIfTI files, cannot tell which to read")
    truth = ref.files.get("OT")
    if truth is not None:
        sidecar = truth.parent / f"{_nifti_stem(truth)}.json"
        if sidecar.exists():
            try:
                ref.patient = isles.patient_from_sidecar(sidecar) or ""
            except ValueError as exc:
                ref.problems.append(f"{sidecar.name}: {exc}")


def _scan_simple(ref: CaseRef) -> None:
    for p in sorted(ref.folder.iterdir()):
        if not _is_nifti_entry(p):
            continue
        key = _SIMPLE_STEMS.get(_nifti_stem(p).lower())
        if key is None:
            continue
        if key in ref.files:
            ref.errors.append(f"two files for {key}: {ref.files[key].name}, {p.name}")
        else:
            ref.files[key] = p


def _read_declaration(ref: CaseRef) -> None:
    """The units declaration that applies to the case (``core.units``); a broken one makes the
    case unloadable (its values would be shown in unknown units)."""
    path = find_declaration(ref.folder)
    if path is None:
        return
    try:
        ref.declared_scales = load(path, UnitsDeclaration, "units declaration").scales()
    except DataError as exc:
        ref.errors.append(f"{exc.path}: {exc.problem}")
        return
    ref.units_file = path


def scan_case(folder: Path, split: str = "") -> CaseRef:
    """Describe one case folder without reading voxels."""
    layout = "isles" if isles.is_isles_case_folder(folder) else "simple"
    ref = CaseRef(id=folder.name, split=split, folder=folder, layout=layout)
    (_scan_isles if layout == "isles" else _scan_simple)(ref)
    _read_declaration(ref)
    if not ref.patient:
        ref.patient = ref.id
    return ref


def _read_subjects(csv_path: Path) -> dict[str, str]:
    """``subjects.csv`` (columns ``case`` and ``patient``): case id or key -> patient id."""
    text = read_text(csv_path, "CSV file")
    try:
        rows = list(csv.DictReader(io.StringIO(text, newline="")))
    except csv.Error as exc:
        raise DataError(csv_path, f"unreadable ({exc})") from exc
    if rows and not {"case", "patient"} <= set(rows[0]):
        raise DataError(csv_path, "needs the columns 'case' and 'patient'")
    return {r["case"].strip(): r["patient"].strip() for r in rows if r.get("case")}


class Dataset:
    """The cases under a root folder (a data set, a split, or one case), listed lazily."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        if not self.root.exists():
            raise DataError(self.root, "no such file or folder")
        if not self.root.is_dir():
            raise DataError(self.root, "is a file; expected a data set or case folder")
        try:
            self.cases: list[CaseRef] = self._discover()
        except PermissionError as exc:
            raise DataError(self.root, f"cannot be read ({exc.strerror})") from exc
        if not self.cases:
            raise DataError(
                self.root,
                "no cases found (expected TRAINING/ or TESTING/, case folders with "
                "SMIR.Brain.XX.O.* folders, or case folders holding ct/cbf/cbv/mtt/tmax NIfTI files)",
            )
        self._apply_subjects()

    def _discover(self) -> list[CaseRef]:
        if _is_case_folder(self.root):
            return [scan_case(self.root, _split_of(self.root.parent))]
        split_dirs = [d for d in sorted(self.root.iterdir()) if d.is_dir() and _split_of(d)]
        containers = split_dirs or [self.root]
        refs = []
        for container in containers:
            split = _split_of(container)
            folders = sorted(
                (d for d in container.iterdir() if _is_case_folder(d)),
                key=lambda d: _natural_key(d.name),
            )
            refs.extend(scan_case(d, split) for d in folders)
        return refs

    def _apply_subjects(self) -> None:
        for csv_path in {self.root / SUBJECTS_CSV, *(r.folder.parent / SUBJECTS_CSV for r in self)}:
            if csv_path.exists():  # a FIFO or folder of that name is refused, not skipped
                mapping = _read_subjects(csv_path)
                for ref in self:
                    patient = mapping.get(ref.key) or mapping.get(ref.id)
                    if patient:
                        ref.patient = patient

    def __len__(self) -> int:
        return len(self.cases)

    def __iter__(self) -> Iterator[CaseRef]:
        return iter(self.cases)

    def __getitem__(self, index: int | str) -> CaseRef:
        if isinstance(index, int):
            return self.cases[index]
        for ref in self.cases:
            if index in (ref.key, ref.id):
                return ref
        raise KeyError(index)

    def patients(self) -> dict[str, list[CaseRef]]:
        groups: dict[str, list[CaseRef]] = {}
        for ref in self:
            groups.setdefault(ref.patient, []).append(ref)
        return groups

    def load(self, index: int | str | CaseRef) -> Case:
        ref = index if isinstance(index, CaseRef) else self[index]
        return load_ref(ref)


def open_dataset(path: str | Path) -> Dataset:
    return Dataset(path)


def load_case(folder: str | Path) -> Case:
    """Load the single case in ``folder`` (a case folder)."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(folder, "not a case folder" if folder.exists() else "no such folder")
    if not _is_case_folder(folder) and not any(folder.iterdir()):
        raise DataError(folder, "empty folder")
    return load_ref(scan_case(folder, _split_of(folder.parent)))


def missing_map_problem(ref: CaseRef, channel: str) -> str:
    if ref.layout == "isles":
        token = "CT" if channel == "CT" else f"CT_{channel}"
        return f"missing map {channel} (no folder SMIR.Brain.XX.O.{token}.<id>)"
    return f"missing map {channel} (no file {channel.lower()}.nii or .nii.gz)"


def same_geometry(ref_path: Path, ref_shape, ref_affine, path: Path, img) -> None:
    """Refuse ``img`` (at ``path``) unless its shape and affine match the first map's."""
    shape = spatial_shape(img)
    if shape != ref_shape:
        raise DataError(path, f"shape {shape} (z, y, x) differs from {ref_path.name} {ref_shape}")
    diff = float(np.max(np.abs(img.affine - ref_affine)))
    if diff > AFFINE_TOLERANCE_MM:
        raise DataError(path, f"affine differs from {ref_path.name} by up to {diff:.3g} mm")


def truth_mask(path: Path, values: np.ndarray) -> np.ndarray:
    """A ground truth's voxels (as stored) as a uint8 mask, refused unless they are all 0 or 1."""
    if values.dtype.kind == "f" and not np.isfinite(values).all():
        raise DataError(path, "ground truth holds NaN/Inf values")
    if (
        values.max(initial=0) > 1
        or values.min(initial=0) < 0
        or (values.dtype.kind == "f" and np.any((values != 0) & (values != 1)))
    ):
        found = np.unique(values)
        shown = ", ".join(f"{v:g}" for v in found[:8]) + (" ..." if found.size > 8 else "")
        raise DataError(path, f"ground truth must hold only 0 and 1, found {shown}")
    return values.astype(np.uint8)


def _sidecar_scale(path: Path, problems: list[str], fallback: str) -> float | None:
    """The ``scale`` of the sidecar beside map ``path``, None when absent, not given or unreadable
    (then a problem ending in ``fallback`` is noted)."""
    sidecar = path.parent / f"{_nifti_stem(path)}.json"
    if not sidecar.exists():
        return None
    try:
        return isles.value_scale_from_sidecar(sidecar)
    except ValueError as exc:
        problems.append(f"{sidecar.name}: {exc}; {fallback}")
        return None


def value_scales(ref: CaseRef, problems: list[str]) -> dict[str, float]:
    """Each channel's scale (stored -> physical value) other than 1: declared, else from its
    sidecar (``core.units``); a sidecar scale that differs from the declared one is noted."""
    scales = {}
    for channel in CHANNELS:
        declared = ref.declared_scales.get(channel)
        fallback = "values shown as stored" if declared is None else "the declared scale is used"
        sidecar = _sidecar_scale(ref.files[channel], problems, fallback)
        scale = sidecar if declared is None else declared
        if declared is not None and sidecar is not None and not math.isclose(sidecar, declared):
            problems.append(
                f"{channel}: scale {declared:g} from {ref.units_file} used; its sidecar gives "
                f"{sidecar:g}"
            )
        if scale is not None and scale != 1.0:
            scales[channel] = scale
    return scales


def units_problem(
    ref: CaseRef, maps: dict[str, np.ndarray], scales: dict[str, float]
) -> str | None:
    """The implausible-CBF warning (``core.plausibility``) unless the case's CBF unit is
    declared; ``maps`` hold stored values."""
    return None if "CBF" in ref.declared_scales else cbf_units_problem(maps, scales)


def load_ref(ref: CaseRef) -> Case:
    """Read a listed case's voxels, checking everything the policies above require."""
    if ref.errors:
        raise DataError(ref.folder, "; ".join(ref.errors))
    present = [c for c in CHANNELS if c in ref.files]
    if not present:
        if "4DPWI" in ref.files:
            raise DataError(
                ref.folder,
                "only the 4D perfusion source (CT_4DPWI) and no maps: compute CBF, CBV, MTT and "
                "Tmax first with 'strokelens perfusion'",
            )
        raise DataError(ref.folder, "no maps found (empty case folder?)")
    for channel in CHANNELS:
        if channel not in ref.files:
            raise DataError(ref.folder, missing_map_problem(ref, channel))

    problems = list(ref.problems)
    channels: dict[str, np.ndarray] = {}
    first = ref.files[CHANNELS[0]]
    header = shape = affine = spacing = None
    for channel in CHANNELS:
        path = ref.files[channel]
        data, img = load_volume(path)
        if header is None:
            header, shape, affine, spacing = img.header, data.shape, img.affine, spacing_zyx(img)
        else:
            same_geometry(first, shape, affine, path, img)
        bad = ~np.isfinite(data)  # whatever the stored type: scaling can overflow
        if bad.any():
            data[bad] = 0.0
            problems.append(f"{path.name}: {int(bad.sum())} non-finite voxels (NaN/Inf) set to 0")
        channels[channel] = data
    scales = value_scales(ref, problems)
    implausible = units_problem(ref, channels, scales)
    if implausible:
        problems.append(implausible)

    mask = None
    if "OT" in ref.files:
        path = ref.files["OT"]
        values, img = load_volume(path, dtype=None)
        same_geometry(first, shape, affine, path, img)
        mask = truth_mask(path, values)

    loader, dt = None, None
    if "4DPWI" in ref.files:
        path = ref.files["4DPWI"]
        img = open_series(path)
        if spatial_shape(img) != shape:
            raise DataError(
                path, f"shape {spatial_shape(img)} (z, y, x) differs from the maps' {shape}"
            )

        dt = frame_interval(img)

        def loader(path=path):
            return load_series(path)[0]

    return Case(
        id=ref.id,
        patient=ref.patient,
        split=ref.split,
        channels=channels,
        affine=np.asarray(affine, dtype=np.float64),
        spacing=spacing,
        mask=mask,
        paths=dict(ref.files),
        header=header,
        problems=problems,
        submission_id=ref.submission_id,
        frame_interval_s=dt,
        value_scales=scales,
        _perfusion_loader=loader,
    )
