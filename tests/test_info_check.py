"""``strokelens info`` reports what is broken: every file's header by default, every voxel with
``--check``; an error names the case and the file and makes the exit 1, a warning is listed.

Each row breaks one file of one case in a two-case data set and runs the real command line; the
other case must stay clean, so a message is the broken file's and not a general complaint.
"""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from helpers import affine, save, set_scaling, write_isles_case

from strokelens.app.cli import main

MAP = "CT_CBF"  # the map most rows break (uint16 in the ISLES layout)


def cut(path: Path, keep: float = 0.6) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])


def gzip_it(path: Path) -> Path:
    """``path`` (a .nii) replaced by a .nii.gz of it; returns the new path."""
    target = path.with_name(path.name + ".gz")
    target.write_bytes(gzip.compress(path.read_bytes()))
    path.unlink()
    return target


def resave(path: Path, data: np.ndarray, aff=None) -> None:
    save(data, path, aff)


def flip_a_deflate_byte(path: Path) -> None:
    """A .nii.gz with one byte in its deflate data changed: its trailer still gives the right
    size, so only reading it all (its CRC) finds it."""
    p = gzip_it(path)
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 0xFF
    p.write_bytes(bytes(data))


def write_members(path: Path) -> None:
    """A valid .nii.gz of two gzip members (its trailer gives only the second one's size)."""
    raw = path.read_bytes()
    path.with_name(path.name + ".gz").write_bytes(
        gzip.compress(raw[:1000]) + gzip.compress(raw[1000:])
    )
    path.unlink()


Break = Callable[[dict[str, Path]], None]

#: what is done to a case's files, the words of the expected error, and whether only --check
#: finds it (True: the default mode passes it; None: --check finds it)
ERRORS: dict[str, tuple[Break, str, bool]] = {
    "truncated .nii": (lambda f: cut(f[MAP]), "truncated", False),
    "truncated .nii.gz": (lambda f: cut(gzip_it(f[MAP])), "its gzip trailer gives", False),
    "gzip of the header only": (
        lambda f: cut(gzip_it(f[MAP]), 0.02),
        "truncated or corrupt",
        False,
    ),
    "not a NIfTI": (lambda f: f[MAP].write_text("hello, I am a map"), "not a NIfTI", False),
    "empty file": (lambda f: f[MAP].write_bytes(b""), "empty file (0 bytes)", False),
    "another shape": (
        lambda f: resave(f[MAP], np.zeros((24, 20, 5), np.uint16)),
        "shape (5, 20, 24) (z, y, x) differs from",
        False,
    ),
    "another affine": (
        lambda f: resave(f[MAP], np.zeros((24, 20, 4), np.uint16), affine((0.9, 0.9, 6.0))),
        "affine differs from",
        False,
    ),
    "a 4D map": (
        lambda f: resave(f[MAP], np.zeros((24, 20, 4, 3), np.uint16)),
        "is 4D (shape (24, 20, 4, 3)) where a 3D volume is expected",
        False,
    ),
    "a 2D map": (lambda f: resave(f[MAP], np.zeros((24, 20), np.uint16)), "needs 3", False),
    "absurd header size": (
        lambda f: _set_dim(f[MAP], (3, 4096, 20, 4)),
        "absurd header size",
        False,
    ),
    "complex voxels": (
        lambda f: resave(f[MAP], np.zeros((24, 20, 4), np.complex64)),
        "unsupported voxel type",
        False,
    ),
    "NaN spacing": (lambda f: _set_pixdim(f[MAP], float("nan")), "invalid voxel spacing", False),
    # nibabel would set a zero to 1 mm and a negative spacing to its absolute value
    "zero spacing": (
        lambda f: _set_pixdim(f[MAP], 0.0),
        "invalid voxel spacing (0, 0.9, 5)",
        False,
    ),
    "negative spacing": (
        lambda f: _set_pixdim(f[MAP], -0.9),
        "invalid voxel spacing (-0.9, 0.9, 5)",
        False,
    ),
    "3D source": (
        lambda f: resave(f["4DPWI"], np.zeros((24, 20, 4), np.int16)),
        "the perfusion source must be 4D",
        False,
    ),
    "source of another shape": (
        lambda f: resave(f["4DPWI"], np.zeros((24, 20, 3, 5), np.int16)),
        "differs from the maps' (4, 20, 24)",
        False,
    ),
    "mask value 2": (
        lambda f: resave(f["OT"], np.full((24, 20, 4), 2, np.uint8)),
        "ground truth must hold only 0 and 1, found 2",
        False,
    ),
    "missing map": (
        lambda f: [p.unlink() for p in f["CT_Tmax"].parent.iterdir()],
        "SMIR.Brain.XX.O.CT_Tmax.345574: no .nii/.nii.gz file in the folder",
        False,
    ),
    # a file this small is decompressed whole to read its header, so either mode may find it
    "flipped gzip byte": (lambda f: flip_a_deflate_byte(f[MAP]), "corrupt gzip data", None),
    "NaN in a map": (
        lambda f: resave(f["CT_MTT"], np.full((24, 20, 4), np.nan)),
        "1920 non-finite voxels (NaN/Inf)",
        True,
    ),
    "scaling overflows to Inf": (
        lambda f: set_scaling(f[MAP], 1e38, 0.0),
        "non-finite voxels (NaN/Inf)",
        True,
    ),
    "NaN in the 4D source": (
        lambda f: resave(f["4DPWI"], np.full((24, 20, 4, 5), np.nan, np.float32)),
        "non-finite voxels (NaN/Inf) in the 4D source",
        True,
    ),
}


def _set_dim(path: Path, dims: tuple[int, ...]) -> None:
    with open(path, "r+b") as f:
        f.seek(40)  # dim[0..]
        f.write(np.array(dims, "<i2").tobytes())


def _set_pixdim(path: Path, value: float) -> None:
    with open(path, "r+b") as f:
        f.seek(80)  # pixdim[1]
        f.write(np.array([value], "<f4").tobytes())


def data_set(root: Path) -> dict[str, Path]:
    """Two training cases with a 4D source; returns case_2's files (the one to break)."""
    write_isles_case(root / "TRAINING" / "case_1", frames=5)
    return write_isles_case(root / "TRAINING" / "case_2", first_id=345570, frames=5, seed=3)


def info(root: Path, capsys, *extra: str) -> tuple[int, dict]:
    code = main(["info", str(root), "--json", *extra])
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return code, json.loads(captured.out)


@pytest.mark.parametrize("name", ERRORS)
def test_broken_file_is_an_error_naming_the_file(name, tmp_path, capsys):
    change, words, needs_check = ERRORS[name]
    files = data_set(tmp_path)
    change(files)
    code, summary = info(tmp_path, capsys)
    if needs_check:  # the headers are sound: only reading every voxel finds it
        assert code == 0 and summary["errors"] == []
    if needs_check is not False:
        code, summary = info(tmp_path, capsys, "--check")
    assert code == 1
    rows = {c["key"]: c for c in summary["cases"]}
    assert rows["training/case_1"]["errors"] == []
    (error,) = rows["training/case_2"]["errors"]
    assert words in error
    assert error.startswith("SMIR.Brain.XX.O."), error  # the file, relative to the case
    assert summary["errors"] == [f"training/case_2: {error}"]


def test_text_output_lists_errors_and_exits_1(tmp_path, capsys):
    files = data_set(tmp_path)
    cut(files[MAP])
    assert main(["info", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "1 error(s):" in out and "training/case_2: SMIR.Brain.XX.O.CT_CBF" in out
    assert "no problems found" not in out


def test_clean_gzip_data_set_passes_both_modes(tmp_path, capsys):
    files = data_set(tmp_path)
    for path in files.values():
        gzip_it(path)
    for extra in ((), ("--check",)):
        code, summary = info(tmp_path, capsys, *extra)
        assert code == 0 and summary["errors"] == summary["warnings"] == []
        assert summary["checked"] == ("all voxels" if extra else "headers")


def test_several_gzip_members_are_read_in_full_and_pass(tmp_path, capsys):
    files = data_set(tmp_path)
    write_members(files["CT"])
    code, summary = info(tmp_path, capsys)
    assert code == 0 and summary["errors"] == []


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda f: resave(f["OT"], np.zeros((24, 20, 4), np.uint8)), "empty ground truth"),
        (lambda f: f[MAP].write_bytes(f[MAP].read_bytes() + b"\0" * 7), "7 bytes after"),
    ],
    ids=["empty mask", "trailing bytes"],
)
def test_warnings_are_listed_and_leave_exit_0(change, words, tmp_path, capsys):
    files = data_set(tmp_path)
    change(files)
    code, summary = info(tmp_path, capsys)
    assert code == 0 and summary["errors"] == []
    (warning,) = summary["warnings"]
    assert warning.startswith("training/case_2: SMIR.Brain.XX.O.") and words in warning


def test_case_folder_that_is_no_file_name_is_an_error(tmp_path, capsys):
    data_set(tmp_path)
    os.rename(tmp_path / "TRAINING" / "case_2", tmp_path / "TRAINING" / "case 2")
    code, summary = info(tmp_path, capsys)
    assert code == 1
    assert summary["errors"] == [
        "training/case 2: case folder name 'case 2' cannot be part of a file name: "
        "use letters, digits, '_', '-' and '.' (starting with a letter, digit or '_', "
        "no '..', not ending in '.')"
    ]


def test_nibabel_reads_what_info_passes(tmp_path, capsys):
    """The clean data set's files are what nibabel reads too (the checks are not vacuous)."""
    files = data_set(tmp_path)
    code, summary = info(tmp_path, capsys, "--check")
    assert code == 0
    assert nib.load(files["4DPWI"]).shape == (24, 20, 4, 5)
    assert summary["cases"][1]["frames"] == 5 and summary["cases"][1]["shape"] == [4, 20, 24]
