"""Writing files atomically: masks, probability maps and ISLES submissions.

A file is written to a temporary name in the target folder, fsynced, then renamed over the
target, so a crash never leaves a half-written mask behind.
"""

from __future__ import annotations

import os
import re
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np

from strokelens.core.case import Case
from strokelens.core.errors import DataError


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


#: Mode of written files. The umask is process-wide, so it is read once, at import, rather
#: than set and reset around every write while other threads may create files.
_FILE_MODE = 0o666 & ~_umask()


def _nifti_suffix(path: Path) -> str:
    return ".nii.gz" if path.name.endswith(".nii.gz") else path.suffix


#: The names ``atomic_write`` gives its temporary files: ``.<target>.<mkstemp's 8 random
#: characters>.tmp<the target's suffix>``.
_TEMPORARY = re.compile(r"\.(?P<target>.+)\.[a-z0-9_]{8}\.tmp(?P<suffix>(\.[^.]+)*)", re.ASCII)


def is_temporary_name(name: str) -> bool:
    """Whether ``name`` is one ``atomic_write`` gives a temporary file (see ``_TEMPORARY``)."""
    match = _TEMPORARY.fullmatch(name)
    return match is not None and match["suffix"] == _nifti_suffix(Path(match["target"]))


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Remove the temporary files a killed ``atomic_write`` left in ``folder`` (a SIGKILL gives
    it no time to clean up); returns them. Only regular files with its names are touched, never
    a symlink's target. Call it only while no other process writes into the folder."""
    removed = []
    with os.scandir(folder) as entries:
        for entry in entries:
            if is_temporary_name(entry.name) and stat.S_ISREG(
                entry.stat(follow_symlinks=False).st_mode
            ):
                Path(entry.path).unlink(missing_ok=True)
                removed.append(Path(entry.path))
    return removed


def atomic_write(path: str | Path, write: Callable[[str], None]) -> Path:
    """Make ``path`` by ``write(temporary_path)``, fsync and rename; returns the path.

    The temporary file sits beside the target and keeps its extension (nibabel picks the format
    from it); on any failure it is removed and an existing target is left untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(
        prefix=f".{path.name}.", suffix=f".tmp{_nifti_suffix(path)}", dir=path.parent
    )
    os.close(fd)
    try:
        os.chmod(tmp, _FILE_MODE)  # mkstemp makes 0600; give the usual permissions
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return path


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    return atomic_write(path, lambda tmp: Path(tmp).write_bytes(data))


def atomic_save(img: nib.spatialimages.SpatialImage, path: str | Path) -> Path:
    """Save a nibabel image atomically (see ``atomic_write``)."""
    return atomic_write(path, img.to_filename)


def volume_image(
    data_zyx: np.ndarray, affine: np.ndarray, header=None, dtype=None
) -> nib.Nifti1Image:
    """A NIfTI image from a ``(z, y, x)`` array (transposed back to the file's ``(i, j, k)``)."""
    data = np.asarray(data_zyx)
    if dtype is not None:
        data = data.astype(dtype, copy=False)
    hdr = header.copy() if header is not None else None
    img = nib.Nifti1Image(np.ascontiguousarray(data.transpose(2, 1, 0)), affine, hdr)
    img.set_data_dtype(data.dtype)
    img.header.set_slope_inter(1.0, 0.0)
    return img


def _check_shape(case: Case, data: np.ndarray, what: str, path: Path) -> None:
    if data.shape != case.shape:
        raise DataError(path, f"{what} has shape {data.shape}, case {case.key} has {case.shape}")


def write_mask(case: Case, mask: np.ndarray, path: str | Path) -> Path:
    """Write a binary ``(z, y, x)`` mask as uint8 with the case's affine and header."""
    path = Path(path)
    _check_shape(case, mask, "mask", path)
    binary = (np.asarray(mask) > 0).astype(np.uint8)
    return atomic_save(volume_image(binary, case.affine, case.header, np.uint8), path)


def write_probability(case: Case, prob: np.ndarray, path: str | Path) -> Path:
    """Write a ``(z, y, x)`` probability map in [0, 1] as float32 with the case's geometry."""
    path = Path(path)
    _check_shape(case, prob, "probability map", path)
    return atomic_save(volume_image(prob, case.affine, case.header, np.float32), path)


def submission_name(case: Case, method: str) -> str:
    """ISLES 2018 test-submission file name ``SMIR.<method>.<id>.nii``.

    ``<id>`` is the number in the case's CT_MTT folder name.
    """
    if not case.submission_id:
        raise DataError(
            case.paths.get("MTT", case.id),
            "no CT_MTT folder number: the case is not in the ISLES layout",
        )
    return mask_file_name(case.id, case.submission_id, method)


def mask_file_name(case_id: str, submission_id: str | None, method: str) -> str:
    """A case's mask file name: ``SMIR.<method>.<id>.nii`` (an ISLES 2018 submission) when the
    case has a CT_MTT folder number, else ``<case>_mask.nii.gz``."""
    return f"SMIR.{method}.{submission_id}.nii" if submission_id else f"{case_id}_mask.nii.gz"
