"""ISLES 2018 / simple-layout reader: layouts, geometry, patients, and every kind of bad input."""

from __future__ import annotations

import gzip
import os
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from helpers import affine, save, volume_xyz, write_isles_case, write_simple_case

from strokelens.core.case import CHANNELS
from strokelens.core.dataset import load_case, open_dataset
from strokelens.core.errors import DataError
from strokelens.core.isles import parse_modality_folder

SHAPE = (24, 20, 4)  # x, y, z on disk


def test_anchored_modality_parsing():
    assert parse_modality_folder("SMIR.Brain.XX.O.CT.345562") == ("CT", "345562")
    assert parse_modality_folder("SMIR.Brain.XX.O.CT_CBF.345563") == ("CBF", "345563")
    assert parse_modality_folder("SMIR.Brain.XX.O.MR_Tmax.12") == ("Tmax", "12")
    assert parse_modality_folder("SMIR.Brain.XX.O.CT_4DPWI.7") == ("4DPWI", "7")
    assert parse_modality_folder("SMIR.Brain.XX.O.OT.9") == ("OT", "9")
    assert parse_modality_folder("SMIR.Brain.XX.O.CT_FOO.9") is None
    assert parse_modality_folder("xSMIR.Brain.XX.O.CT.9") is None
    assert parse_modality_folder("SMIR.Brain.XX.O.CT.9.nii") is None


def test_training_and_testing_layout(tmp_path):
    for k in (1, 2, 10):
        write_isles_case(tmp_path / "TRAINING" / f"case_{k}", patient=f"P{k % 2}", seed=k)
    write_isles_case(tmp_path / "TESTING" / "case_1", truth=False, prefix="MR", ext=".nii.gz")
    ds = open_dataset(tmp_path)
    assert [r.key for r in ds] == [
        "testing/case_1",
        "training/case_1",
        "training/case_2",
        "training/case_10",
    ]
    assert ds["training/case_1"].patient == "P1" and ds["training/case_2"].patient == "P0"
    assert ds["training/case_10"].patient == "P0"
    assert sorted(ds.patients()) == ["P0", "P1", "case_1"]  # no OT sidecar: the case id
    test_case = ds.load("testing/case_1")
    assert test_case.mask is None and test_case.split == "testing"
    assert set(test_case.channels) == set(CHANNELS)


def test_axis_order_spacing_and_values(tmp_path):
    paths = write_isles_case(tmp_path / "case_3", frames=7)
    case = load_case(tmp_path / "case_3")
    cbf_xyz = np.asarray(nib.load(paths["CT_CBF"]).dataobj)
    assert case.shape == (4, 20, 24)
    assert case.spacing == pytest.approx((5.0, 0.9, 0.9))
    np.testing.assert_array_equal(case.channels["CBF"], cbf_xyz.transpose(2, 1, 0))
    assert case.channels["CBF"].dtype == np.float32 and case.channels["CBF"].flags.c_contiguous
    assert case.mask.dtype == np.uint8
    assert case.lesion_ml() == pytest.approx(6 * 4 * 2 * 0.9 * 0.9 * 5 / 1000)
    assert case.submission_id == "345563"  # the CT_MTT folder number
    np.testing.assert_allclose(case.affine, affine())
    series = case.perfusion()
    assert series.shape == (7, 4, 20, 24)


def test_simple_layout_and_subjects_csv(tmp_path):
    write_simple_case(tmp_path / "a")
    write_simple_case(tmp_path / "b", mask=False)
    (tmp_path / "subjects.csv").write_text("case,patient\na,P9\nb,P9\n")
    ds = open_dataset(tmp_path)
    assert [r.layout for r in ds] == ["simple", "simple"]
    assert list(ds.patients()) == ["P9"]
    case = ds.load("a")
    assert case.mask is not None and case.channels["Tmax"].shape == (4, 20, 24)
    assert ds.load("b").mask is None


def test_single_case_folder_is_a_dataset(tmp_path):
    write_isles_case(tmp_path / "TRAINING" / "case_5")
    ds = open_dataset(tmp_path / "TRAINING" / "case_5")
    assert len(ds) == 1 and ds[0].key == "training/case_5"


def _case(tmp_path, **kw) -> tuple[Path, dict[str, Path]]:
    folder = tmp_path / "case_1"
    return folder, write_isles_case(folder, **kw)


def _replace(path: Path, data: np.ndarray, aff=None):
    path.unlink()
    save(data, path, aff)


def _truncate(p):
    p.write_bytes(p.read_bytes()[:500])


def _not_nifti(p):
    p.write_text("this is a text file, not an image\n" * 20)


def _corrupt_gzip(p):
    p.unlink()
    gz = p.with_name(p.name + ".gz")
    gz.write_bytes(b"\x1f\x8b\x08\x00" + os.urandom(400))


def _truncated_gzip(p):
    p.unlink()
    gz = p.with_name(p.name + ".gz")
    full = gzip.compress(nib.Nifti1Image(volume_xyz("CT_CBF", SHAPE, 1), affine()).to_bytes())
    gz.write_bytes(full[: len(full) // 2])


def _four_d(p):
    _replace(p, np.zeros((*SHAPE, 3), np.uint16))


def _shape_differs(p):
    _replace(p, np.zeros((24, 20, 5), np.uint16))


def _affine_differs(p):
    a = affine()
    a[0, 3] += 3.0
    _replace(p, volume_xyz("CT_CBF", SHAPE, 1), a)


def _missing_map(p):
    shutil.rmtree(p.parent)


def _two_folders(p):
    shutil.copytree(p.parent, p.parent.with_name("SMIR.Brain.XX.O.CT_CBF.999999"))


def _bad_mask_values(p):
    _replace(p, volume_xyz("OT", SHAPE, 0) * 255)


def _nan_mask(p):
    m = volume_xyz("OT", SHAPE, 0).astype(np.float32)
    m[0, 0, 0] = np.nan
    _replace(p, m)


def _zero_slices(p):
    _replace(p, np.zeros((24, 20, 0), np.uint16))


def _absurd_header(p):
    img = nib.load(p)
    hdr = img.header.copy()
    hdr.set_data_shape((30000, 30000, 9000))
    p.write_bytes(hdr.binaryblock + b"\x00" * 4 + b"\x01" * 100)


def _unreadable(p):
    p.unlink()
    if os.geteuid() == 0:  # root reads anything chmod allows; /proc/self/mem fails with EIO
        p.symlink_to("/proc/self/mem")
    else:
        save(volume_xyz("CT_CBF", SHAPE, 1), p)
        p.chmod(0)


def _empty_file(p):
    p.write_bytes(b"")


def _corrupt_header(p):
    # The header announces an extension that the file does not hold.
    hdr = nib.Nifti1Image(volume_xyz("CT_CBF", SHAPE, 1), affine()).header
    p.write_bytes(hdr.binaryblock + b"\x01\x00\x00\x00" + b"\xff" * 12)


def _complex_voxels(p):
    _replace(p, np.zeros(SHAPE, np.complex64))


def _several_files(p):
    p.rename(p.with_name("a.nii"))
    save(volume_xyz("CT_CBF", SHAPE, 1), p.with_name("b.nii"))


def _mask_shape(p):
    _replace(p, np.zeros((24, 21, 4), np.uint8))


# (kind, modality whose file is broken, breaker, expected words, path in the error must end with)
BAD_INPUTS = [
    ("truncated file", "CT_CBF", _truncate, "truncated", ".nii"),
    ("not a NIfTI", "CT_CBF", _not_nifti, "not a NIfTI", ".nii"),
    ("corrupt gzip", "CT_CBF", _corrupt_gzip, "corrupt", ".nii.gz"),
    ("truncated gzip", "CT_CBF", _truncated_gzip, "truncated or corrupt", ".nii.gz"),
    ("4D where 3D expected", "CT_CBF", _four_d, "is 4D", ".nii"),
    ("channel shapes differ", "CT_CBF", _shape_differs, "differs from", ".nii"),
    ("affines differ", "CT_CBF", _affine_differs, "affine differs", ".nii"),
    ("missing map", "CT_CBV", _missing_map, "missing map CBV", "case_1"),
    ("two folders for one modality", "CT_CBF", _two_folders, "two folders for modality", "case_1"),
    ("mask values not 0/1", "OT", _bad_mask_values, "only 0 and 1, found 0, 255", ".nii"),
    ("NaN in the mask", "OT", _nan_mask, "NaN", ".nii"),
    ("zero slices", "CT_CBF", _zero_slices, "zero voxels", ".nii"),
    ("absurd header size", "CT_CBF", _absurd_header, "absurd header size", ".nii"),
    ("unreadable file", "CT_CBF", _unreadable, "cannot be read", ".nii"),
    ("empty file", "CT_CBF", _empty_file, "empty file", ".nii"),
    ("corrupt header extension", "CT_CBF", _corrupt_header, "corrupt header", ".nii"),
    ("complex voxels", "CT_CBF", _complex_voxels, "unsupported voxel type", ".nii"),
    ("several NIfTI files", "CT_CBF", _several_files, "several NIfTI files", "case_1"),
    ("mask shape differs", "OT", _mask_shape, "differs from", ".nii"),
]


@pytest.mark.parametrize(
    "modality,breaker,words,path_end", [b[1:] for b in BAD_INPUTS], ids=[b[0] for b in BAD_INPUTS]
)
def test_bad_input_names_file_and_problem(tmp_path, modality, breaker, words, path_end):
    folder, paths = _case(tmp_path)
    breaker(paths[modality])
    with pytest.raises(DataError) as info:
        load_case(folder)
    message = str(info.value)
    assert words in message
    assert str(info.value.path).endswith(path_end)
    if path_end != "case_1":
        assert modality in info.value.path.name


def test_only_4d_source_and_no_maps(tmp_path):
    folder, paths = _case(tmp_path, frames=5, truth=False)
    for token, p in paths.items():
        if token != "4DPWI":
            shutil.rmtree(p.parent)
    with pytest.raises(DataError, match="only the 4D perfusion source"):
        load_case(folder)


def test_4d_source_with_other_shape(tmp_path):
    folder, paths = _case(tmp_path, frames=5)
    _replace(paths["4DPWI"], np.zeros((24, 20, 3, 5), np.int16))
    with pytest.raises(DataError, match="differs from the maps") as info:
        load_case(folder)
    assert "4DPWI" in info.value.path.name


@pytest.mark.parametrize("make", ["empty", "missing", "file"])
def test_unusable_roots(tmp_path, make):
    root = tmp_path / "data"
    if make == "empty":
        root.mkdir()
    elif make == "file":
        root.write_text("x")
    with pytest.raises(DataError) as info:
        open_dataset(root)
    assert info.value.path == root
    if make == "empty":
        with pytest.raises(DataError, match="empty folder"):
            load_case(root)


def test_nonfinite_voxels_are_zeroed_and_reported(tmp_path):
    folder, paths = _case(tmp_path)
    data = volume_xyz("CT_MTT", SHAPE, 3)
    data[1, 2, 3] = np.nan
    data[0, 0, 0] = np.inf
    _replace(paths["CT_MTT"], data)
    case = load_case(folder)
    assert np.isfinite(case.channels["MTT"]).all()
    assert case.channels["MTT"][3, 2, 1] == 0.0
    assert any("2 non-finite voxels" in p and "CT_MTT" in p for p in case.problems)


def test_broken_sidecar_is_a_problem_not_an_error(tmp_path):
    folder, paths = _case(tmp_path, patient="P1")
    paths["OT"].with_suffix(".json").write_text("{not json")
    ds = open_dataset(folder)
    assert ds[0].patient == "case_1"
    assert any("unreadable sidecar" in p for p in ds[0].problems)
    assert ds.load(0).mask is not None


def test_sidecar_scale_is_kept_and_a_bad_one_is_reported(tmp_path):
    folder, paths = _case(tmp_path)
    paths["CT_CBF"].with_suffix(".json").write_text('{"scale": 0.1}')
    paths["CT_CBV"].with_suffix(".json").write_text('{"scale": "ten"}')
    stored = np.asarray(nib.load(paths["CT_CBF"]).dataobj)
    case = load_case(folder)
    assert case.value_scales == {"CBF": 0.1}
    # the channel keeps the stored values (the models' input); the scale is for display
    assert np.array_equal(case.channels["CBF"], stored.T.astype(np.float32))
    assert any(
        "CT_CBV" in p and "scale: Input should be a valid number" in p for p in case.problems
    )


def test_listing_survives_a_broken_case(tmp_path):
    write_isles_case(tmp_path / "case_1")
    _, paths = _case(tmp_path / "x")
    shutil.rmtree(paths["CT_CBV"].parent)
    (tmp_path / "x" / "case_1").rename(tmp_path / "case_2")
    ds = open_dataset(tmp_path)
    assert len(ds) == 2
    ds.load("case_1")
    with pytest.raises(DataError, match="missing map CBV"):
        ds.load("case_2")
