"""Reading NIfTI volumes defensively.

nibabel and numpy raise many different exceptions for broken files (EOFError, zlib.error,
ImageFileError, ValueError from mmap...). Every one of them is turned into a ``DataError`` that
names the file and says what is wrong, so a user sees "case_3/...CBF.nii: truncated" and never a
traceback from inside a library.
"""

from __future__ import annotations

import gzip
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel.filebasedimages import ImageFileError
from nibabel.spatialimages import HeaderDataError

from strokelens.core.errors import DataError

#: Header sizes beyond these are rejected before any voxel is read (a corrupt or hostile header
#: must not make us allocate gigabytes).
MAX_IN_PLANE = 2048
MAX_SLICES = 1024
MAX_FRAMES = 1024

_NIFTI_SUFFIXES = (".nii", ".nii.gz")

#: NIfTI time units -> seconds
_TIME_UNITS = {"sec": 1.0, "msec": 1e-3, "usec": 1e-6}
#: a frame interval in the header outside this range (s) is not trusted
_DT_RANGE = (0.1, 10.0)


def is_nifti_name(path: Path) -> bool:
    return path.name.lower().endswith(_NIFTI_SUFFIXES)


def open_image(path: str | Path) -> nib.Nifti1Image:
    """Open a NIfTI file lazily (header only) and validate the header."""
    path = Path(path)
    if not path.exists():
        raise DataError(path, "file not found")
    if path.is_dir():
        raise DataError(path, "is a folder, not a NIfTI file")
    try:
        with open(path, "rb") as f:
            first = f.read(4)
    except OSError as exc:
        raise DataError(path, f"cannot be read ({exc.strerror or exc})") from exc
    if not first:
        raise DataError(path, "empty file (0 bytes)")
    try:
        img = nib.load(path)
    except (ImageFileError, gzip.BadGzipFile, zlib.error, EOFError) as exc:
        kind = "corrupt gzip data" if path.name.lower().endswith(".gz") else "not a NIfTI file"
        raise DataError(path, f"{kind} ({exc})") from exc
    except HeaderDataError as exc:
        raise DataError(path, f"corrupt header ({exc})") from exc
    except (OSError, ValueError) as exc:
        raise DataError(path, f"cannot be read as NIfTI ({exc})") from exc
    if not isinstance(img, nib.Nifti1Image | nib.Nifti2Image):
        raise DataError(path, f"not a NIfTI-1/2 image (read as {type(img).__name__})")
    _check_header(path, img)
    return img


def _check_header(path: Path, img: nib.Nifti1Image) -> None:
    shape = img.shape
    if len(shape) < 3:
        raise DataError(path, f"has {len(shape)} dimensions {shape}; a volume needs 3")
    if any(n == 0 for n in shape):
        raise DataError(path, f"has zero voxels along an axis (shape {shape}, zero slices?)")
    limits = (MAX_IN_PLANE, MAX_IN_PLANE, MAX_SLICES, MAX_FRAMES)
    if any(n > lim for n, lim in zip(shape, limits, strict=False)) or len(shape) > 4:
        raise DataError(path, f"absurd header size {shape}: corrupt header?")
    dtype = img.get_data_dtype()
    if dtype.kind not in "biuf" or dtype.fields is not None:
        raise DataError(path, f"unsupported voxel type {dtype} (expected integers or floats)")
    zooms = np.asarray(img.header.get_zooms()[:3], dtype=float)
    if not np.all(np.isfinite(zooms)) or np.any(zooms <= 0):
        raise DataError(path, f"invalid voxel spacing {tuple(zooms)} in the header")
    if not np.all(np.isfinite(img.affine)):
        raise DataError(path, "non-finite values in the affine")
    if not path.name.lower().endswith(".gz"):
        expected = int(img.header["vox_offset"]) + int(np.prod(shape)) * dtype.itemsize
        size = path.stat().st_size
        if size < expected:
            raise DataError(path, f"truncated: {size} bytes, the header needs {expected}")


def spatial_shape(img: nib.Nifti1Image) -> tuple[int, int, int]:
    """``(z, y, x)`` shape of an image, without reading voxels."""
    i, j, k = img.shape[:3]
    return (k, j, i)


def spacing_zyx(img: nib.Nifti1Image) -> tuple[float, float, float]:
    sx, sy, sz = (float(v) for v in img.header.get_zooms()[:3])
    return (sz, sy, sx)


def read_voxels(path: Path, img: nib.Nifti1Image, dtype=np.float32) -> np.ndarray:
    """All voxels of an opened image, scaled, as ``dtype`` (None: as stored), axes reversed (``(z, y, x)`` / ``(t, z, y, x)``)."""
    try:
        raw = np.asanyarray(img.dataobj)
        # NIfTI data is Fortran-ordered on disk, so reversing the axes is a C-contiguous view.
        return np.ascontiguousarray(raw.T, dtype=dtype)
    except (EOFError, zlib.error, gzip.BadGzipFile, OSError, ValueError) as exc:
        raise DataError(path, f"truncated or corrupt voxel data ({exc})") from exc


def load_volume(path: str | Path, dtype=np.float32) -> tuple[np.ndarray, nib.Nifti1Image]:
    """A 3D volume as ``(z, y, x)``; a 4D file with one frame counts as 3D."""
    path = Path(path)
    img = open_image(path)
    if len(img.shape) == 4 and img.shape[3] != 1:
        raise DataError(path, f"is 4D (shape {img.shape}) where a 3D volume is expected")
    data = read_voxels(path, img, dtype)
    if data.ndim == 4:
        data = data[0]
    return data, img


def frame_interval(img) -> float | None:
    """Seconds between frames from a 4D NIfTI header, or None when absent or implausible."""
    zooms = img.header.get_zooms()
    unit = _TIME_UNITS.get(img.header.get_xyzt_units()[1], 1.0)
    dt = float(zooms[3]) * unit if len(zooms) > 3 else 0.0
    return dt if _DT_RANGE[0] <= dt <= _DT_RANGE[1] else None
