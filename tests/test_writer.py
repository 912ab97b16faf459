"""Atomic NIfTI writing of masks and probabilities with the source case's geometry."""

from __future__ import annotations

import nibabel as nib
import numpy as np
import pytest
from helpers import write_isles_case, write_simple_case

from strokelens.core import writer
from strokelens.core.dataset import load_case
from strokelens.core.errors import DataError


@pytest.fixture
def case(tmp_path):
    write_isles_case(tmp_path / "case_1")
    return load_case(tmp_path / "case_1")


def test_mask_round_trip_keeps_geometry(case, tmp_path):
    mask = np.zeros(case.shape, bool)
    mask[1, 3:7, 2:5] = True
    out = writer.write_mask(case, mask, tmp_path / "out" / "mask.nii.gz")
    img = nib.load(out)
    assert img.get_data_dtype() == np.uint8
    np.testing.assert_allclose(img.affine, case.affine)
    assert img.header.get_zooms() == pytest.approx((0.9, 0.9, 5.0))
    np.testing.assert_array_equal(np.asarray(img.dataobj).transpose(2, 1, 0), mask)
    assert [p.name for p in out.parent.iterdir()] == ["mask.nii.gz"]  # no temporary left


def test_probability_round_trip(case, tmp_path):
    prob = np.random.default_rng(0).random(case.shape).astype(np.float32)
    out = writer.write_probability(case, prob, tmp_path / "p.nii")
    back = np.asarray(nib.load(out).dataobj).transpose(2, 1, 0)
    np.testing.assert_array_equal(back, prob)


def test_failed_write_keeps_the_previous_file(case, tmp_path, monkeypatch):
    target = tmp_path / "mask.nii"
    writer.write_mask(case, np.ones(case.shape), target)
    before = target.read_bytes()

    def boom(self, filename):
        with open(filename, "wb") as f:
            f.write(b"half")
        raise OSError("disk full")

    monkeypatch.setattr(nib.Nifti1Image, "to_filename", boom)
    with pytest.raises(OSError, match="disk full"):
        writer.write_mask(case, np.zeros(case.shape), target)
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_shape_mismatch_is_a_data_error(case, tmp_path):
    with pytest.raises(DataError, match="shape"):
        writer.write_mask(case, np.zeros((1, 2, 3)), tmp_path / "m.nii")


def test_submission_name(case, tmp_path):
    assert writer.submission_name(case, "pspfocal") == "SMIR.pspfocal.345563.nii"
    write_simple_case(tmp_path / "s")
    with pytest.raises(DataError, match="CT_MTT"):
        writer.submission_name(load_case(tmp_path / "s"), "x")


def test_written_files_get_the_usual_permissions(case, tmp_path):
    import os

    umask = os.umask(0)
    os.umask(umask)
    out = writer.write_mask(case, np.zeros(case.shape), tmp_path / "m.nii.gz")
    assert out.stat().st_mode & 0o777 == 0o666 & ~umask
