"""What ``strokelens info`` checks in a case, without loading it as ``predict`` would.

By default every file's header is read (and the ground truth's voxels, for the lesion volume):
the header's limits, voxel type, spacing and affine (``nifti.open_image``); the number of
dimensions each role needs; that maps, mask and 4D source share one shape and the maps and mask
one affine; and the file's size against the size its header implies. For a ``.nii`` that is the
file size; for a ``.nii.gz`` it is the gzip trailer's ISIZE (the last member's uncompressed size
mod 2**32), read from the last 4 bytes without decompressing: a truncated file ends inside its
deflate data, so those bytes are almost never the size. Where the trailer disagrees, the file is
read in full to tell a corrupt file from a valid one of several gzip members. This takes
milliseconds per case.

``check=True`` also reads every voxel: gzip's CRC and length checks on each compressed file,
NaN/Inf in maps and the 4D source (whatever the stored type: scaling can overflow).

Units: the value scales are resolved as loading does (``core.units``: a differing sidecar scale
is a warning) and, unless the CBF unit is declared, the four perfusion maps' voxels are read for
the plausibility check (``core.plausibility``: implausible CBF is a warning). A case with errors
is not checked for units.

Errors are what makes ``predict`` refuse a case or shows the data corrupt (NaN/Inf in a map
count as errors here although ``predict`` sets them to 0 and warns: the data are damaged);
warnings (an empty ground truth, bytes after the voxel data, what the listing noted, units) leave
the case usable.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from strokelens.core.case import CHANNELS
from strokelens.core.dataset import (
    CaseRef,
    missing_map_problem,
    same_geometry,
    truth_mask,
    units_problem,
    value_scales,
)
from strokelens.core.errors import DataError
from strokelens.core.metrics import volume_ml
from strokelens.core.nifti import (
    declared_size,
    gzip_trailer_size,
    is_gzip_name,
    load_series,
    load_volume,
    open_series,
    open_volume,
    read_voxels,
    spacing_zyx,
    spatial_shape,
)
from strokelens.core.plausibility import MAPS
from strokelens.core.safepath import check_name

#: the roles of a case's files, in the order they are checked (the first map sets the geometry)
ROLES = (*CHANNELS, "OT", "4DPWI")


@dataclass
class CaseReport:
    """What inspecting one case found."""

    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    shape: tuple[int, int, int] | None = None  # (z, y, x), of the first map that opened
    spacing: tuple[float, float, float] | None = None  # mm, (z, y, x)
    frames: int | None = None
    lesion_ml: float | None = None


@dataclass
class _Geometry:
    path: Path
    shape: tuple[int, int, int]
    affine: np.ndarray


def inspect_case(ref: CaseRef, check: bool = False) -> CaseReport:
    """Every file of ``ref`` checked (see the module's docstring); never raises DataError."""
    report = CaseReport(errors=list(ref.errors), warnings=list(ref.problems))
    try:
        check_name(ref.id, "case folder name", ref.folder)
    except DataError as exc:
        report.errors.append(exc.problem)
    if not ref.errors:  # else they say why a map is missing (a folder without a NIfTI, say)
        report.errors += [missing_map_problem(ref, c) for c in CHANNELS if c not in ref.files]
    geometry: _Geometry | None = None
    for role in ROLES:
        path = ref.files.get(role)
        if path is None:
            continue
        try:
            geometry = _inspect_file(role, path, _shown(ref, path), check, geometry, report)
        except DataError as exc:
            report.errors.append(f"{_shown(ref, exc.path)}: {exc.problem}")
    if not report.errors:
        _check_units(ref, report)
    return report


def _check_units(ref: CaseRef, report: CaseReport) -> None:
    """What loading notes about the maps' units: sidecar against declared scales, and (without
    a declared CBF unit) implausible CBF, for which the four maps' voxels are read."""
    scales = value_scales(ref, report.warnings)
    if "CBF" in ref.declared_scales:
        return
    maps = {c: load_volume(ref.files[c])[0] for c in MAPS}
    problem = units_problem(ref, maps, scales)
    if problem:
        report.warnings.append(problem)


def _shown(ref: CaseRef, path: Path) -> str:
    """A file of the case, relative to the case folder."""
    return str(path.relative_to(ref.folder)) if path.is_relative_to(ref.folder) else str(path)


def _inspect_file(
    role: str,
    path: Path,
    shown: str,
    check: bool,
    geometry: _Geometry | None,
    report: CaseReport,
) -> _Geometry | None:
    """Check one file (``shown`` in warnings); returns the case's geometry (set by the first
    map that opens)."""
    img = open_series(path) if role == "4DPWI" else open_volume(path)
    _check_size(path, shown, img, report)
    shape = spatial_shape(img)
    if role == "4DPWI":
        report.frames = int(img.shape[3])
        if geometry is not None and shape != geometry.shape:
            raise DataError(
                path, f"shape {shape} (z, y, x) differs from the maps' {geometry.shape}"
            )
    elif geometry is not None:
        same_geometry(geometry.path, geometry.shape, geometry.affine, path, img)
    elif role in CHANNELS:
        geometry = _Geometry(path, shape, img.affine)
    if report.shape is None:
        report.shape, report.spacing = shape, spacing_zyx(img)

    if role == "OT":
        mask = truth_mask(path, read_voxels(path, img, dtype=None))
        report.lesion_ml = volume_ml(mask, spacing_zyx(img))
        if not mask.any():
            report.warnings.append(f"{shown}: empty ground truth (no lesion voxel)")
    elif check:
        data = load_series(path)[0] if role == "4DPWI" else load_volume(path)[0]
        bad = data.size - int(np.count_nonzero(np.isfinite(data)))
        if bad:  # a 4D source holding NaN/Inf is refused by load_series itself
            raise DataError(path, f"{bad} non-finite voxels (NaN/Inf); predict sets them to 0")
    return geometry


def _check_size(path: Path, shown: str, img, report: CaseReport) -> None:
    """The file's stored size against its header (see the module's docstring)."""
    expected = declared_size(img)
    if not is_gzip_name(path):  # shorter than the header needs: refused by open_image
        extra = path.stat().st_size - expected
        if extra > 0:
            report.warnings.append(
                f"{shown}: {extra} bytes after the voxel data its header declares"
            )
        return
    isize = gzip_trailer_size(path)
    if isize == expected % 2**32:
        return
    try:
        read_voxels(path, img, dtype=None)  # CRC and length: corrupt, or several gzip members
    except DataError as exc:
        raise DataError(
            path,
            f"{exc.problem} (its gzip trailer gives {isize} bytes uncompressed, its header "
            f"implies {expected})",
        ) from exc
