"""Perfusion physics: forward model, deconvolution, AIF/brain-mask selection, maps, CLI."""

from __future__ import annotations

import json
import re

import nibabel as nib
import numpy as np
import pytest
from scipy.signal import fftconvolve

from strokelens.app.cli import main
from strokelens.core.dataset import load_case
from strokelens.core.perfusion import accuracy, deconvolution
from strokelens.core.perfusion.analysis import compute_maps, segment_brain
from strokelens.core.perfusion.simulate import (
    K_H,
    RHO,
    gamma_variate,
    synthetic_head,
    tissue_curves,
)

T = np.arange(80.0)
AIF = gamma_variate(T, 8.0)


def test_gamma_variate_peak_value_and_time():
    t = np.arange(0, 30, 0.01)
    g = gamma_variate(t, 5.0, alpha=3.0, beta=1.5, peak=250.0)
    assert g.max() == pytest.approx(250.0, rel=1e-6)
    assert t[np.argmax(g)] == pytest.approx(5.0 + 4.5, abs=0.01)
    assert np.all(g[t <= 5.0] == 0)


@pytest.mark.parametrize("residue", ["exp", "box"])
def test_central_volume_theorem_from_area_ratio(residue):
    cbf = np.array([10.0, 55.0, 70.0])
    mtt = np.array([2.0, 4.5, 9.0])
    delay = np.array([0.0, 1.3, 3.7])
    c = tissue_curves(AIF, cbf, mtt, delay, residue=residue)
    assert c.shape == (T.size, 3) and c.dtype == np.float32
    cbv = (K_H / RHO) * 100.0 * c.sum(axis=0) / AIF.sum()
    np.testing.assert_allclose(cbv, cbf * mtt / 60.0, rtol=2e-3)


def test_tissue_curve_matches_fine_grid_convolution_with_sub_frame_delay():
    fine = np.arange(0, 80, 0.005)
    aif_fine = np.interp(fine, T, AIF)
    cbf, mtt, delay = 40.0, 5.0, 2.4
    residue = np.where(fine >= delay, np.exp(-(fine - delay) / mtt), 0.0)
    reference = fftconvolve(aif_fine, residue)[: fine.size] * 0.005 * (RHO / K_H) * cbf / 6000
    sim = tissue_curves(AIF, cbf, mtt, delay)
    np.testing.assert_allclose(sim, reference[::200], atol=0.02 * sim.max())


def test_whole_frame_delay_is_a_shift_and_shape_broadcasts():
    c = tissue_curves(AIF, np.full((2, 3), 30.0), 6.0, np.array([0.0, 2.0, 3.0]))
    assert c.shape == (T.size, 2, 3)
    np.testing.assert_allclose(c[2:-1, 0, 1], c[:-3, 0, 0], atol=1e-4)
    np.testing.assert_allclose(c[3:, 1, 2], c[:-3, 1, 0], atol=1e-4)
    assert np.all(tissue_curves(AIF, 0.0, 4.0, 0.0) == 0)
    with pytest.raises(ValueError, match="delay"):
        tissue_curves(AIF, 30.0, 4.0, -1.0)


def test_deconvolution_recovers_known_residue():
    cbf, mtt = 40.0, 8.0
    c = tissue_curves(AIF, cbf, mtt, 0.0)[:, None]
    t, r = deconvolution.residues(c, AIF, oi_target=0.095)
    scaled = r[:, 0] * (K_H / RHO) * 6000.0  # f R in mL/100 g/min
    truth = cbf * np.exp(-t / mtt)
    body = (t >= 2) & (t <= 30)
    assert np.max(np.abs(scaled[body] - truth[body])) < 0.1 * cbf
    assert np.all(np.abs(scaled[t < -1]) < 0.1 * cbf)  # nothing before the arrival
    assert r[:, 0].sum() * (K_H / RHO) * 100.0 == pytest.approx(cbf * mtt / 60.0, rel=0.02)


def test_parameters_are_delay_insensitive_and_tmax_follows_delay():
    delays = np.array([0.0, 1.0, 4.0, 5.0, 2.5])
    c = tissue_curves(AIF, 45.0, 5.0, delays)
    p = deconvolution.perfusion_parameters(c, AIF, oi_target=0.095)
    # whole-frame delays only shift the residue (circulant); a half-frame one samples the
    # residue's jump between frames, which lowers the peak a little
    assert np.ptp(p.cbf[:4]) < 0.01 * p.cbf[0]
    assert p.cbf[4] == pytest.approx(p.cbf[0], rel=0.12)
    np.testing.assert_allclose(p.cbv, 45.0 * 5.0 / 60.0, rtol=0.02)
    np.testing.assert_allclose(p.tmax, delays, atol=0.3)
    # fixed-threshold bSVD: as delay-insensitive, more regularised (lower peak)
    b = deconvolution.perfusion_parameters(c, AIF, threshold=0.2)
    assert np.all(b.cbf < p.cbf) and np.ptp(b.cbf[:4]) < 0.01 * b.cbf[0]


def test_oscillation_index_separates_smooth_from_noisy_residues():
    t = np.arange(90.0)[:, None]
    smooth = np.exp(-t / 5.0)
    noisy = smooth + np.random.default_rng(0).normal(0, 0.2, smooth.shape)
    assert (
        deconvolution.oscillation_index(smooth)[0]
        < 0.095
        < deconvolution.oscillation_index(noisy)[0]
    )


@pytest.fixture(scope="module")
def head():
    return synthetic_head((3, 64, 64), 45)


def test_brain_mask_keeps_parenchyma_and_drops_skull_scalp_csf(head):
    series, truth = head
    mask = segment_brain(series[0], (5.0, 1.0, 1.0))
    expected = truth["tissue"] | truth["artery"] | truth["vein"]
    for z in range(mask.shape[0]):
        inter = np.count_nonzero(mask[z] & expected)
        assert 2 * inter / (mask[z].sum() + expected.sum()) > 0.97
        assert not np.any(mask[z] & (series[0, z] > 500))  # skull
    ventricle = (series[0, 0] < 10) & (series[0, 0] > 0)
    assert ventricle.any() and not np.any(mask[:, ventricle])


def test_maps_of_synthetic_head(head):
    series, truth = head
    maps = compute_maps(series, spacing=(5.0, 1.0, 1.0), smooth_mm=0.0)
    z = 1
    aif_yx = maps.aif_voxels[:, 1:]
    assert len(aif_yx) > 0 and all(truth["artery"][y, x] for y, x in aif_yx)
    assert maps.vof is not None and maps.aif.max() == pytest.approx(truth["aif"].max(), rel=0.05)
    for region, value in (("grey", 55.0), ("white", 22.0)):
        sel = (truth["cbf"] == value) & maps.brain_mask[z]
        assert np.median(maps.cbf[z][sel]) == pytest.approx(value, rel=0.15), region
    lesion = truth["delay"] > 0
    assert np.median(maps.tmax[z][lesion]) == pytest.approx(4.0, abs=0.5)
    assert np.median(maps.tmax[z][truth["cbf"] == 55.0]) < 0.5
    sel = truth["tissue"]
    assert np.median(np.abs(maps.cbv[z][sel] / truth["cbv"][sel] - 1)) < 0.05
    outside = ~maps.brain_mask
    for m in (maps.cbf, maps.cbv, maps.mtt, maps.tmax):
        assert m.dtype == np.float32 and np.all(m[outside] == 0)


def test_given_aif_and_mask_are_used_and_bad_input_rejected(head):
    series, truth = head
    mask = np.zeros(series.shape[1:], bool)
    mask[:, 20:40, 20:40] = True
    maps = compute_maps(series, brain_mask=mask, aif=truth["aif"], smooth_mm=0.0)
    assert maps.aif_voxels.shape == (0, 3) and maps.vof is None
    assert np.array_equal(maps.brain_mask, mask) and np.all(maps.cbf[~mask] == 0)
    with pytest.raises(ValueError, match="t, z, y, x"):
        compute_maps(series[0])


def test_accuracy_targets_noise_free():
    for row in accuracy.accuracy_table(0.0):
        assert row["cbv"] < 0.05 and row["cbf"] < 0.15 and row["mtt"] < 0.15, row
        assert row["tmax"] < 1.0, row


def _write_isles_source(case_dir, series_tzyx, truth_zyx=None, dt=1.0):
    aff = np.diag([0.9, 0.9, 5.0, 1.0])
    aff[:3, 3] = (-20.0, -30.0, 10.0)
    name = "SMIR.Brain.XX.O.CT_4DPWI.345569"
    img = nib.Nifti1Image(np.ascontiguousarray(series_tzyx.T).astype(np.int16), aff)
    img.header.set_zooms((0.9, 0.9, 5.0, dt))
    img.header.set_xyzt_units("mm", "sec")
    (case_dir / name).mkdir(parents=True)
    nib.save(img, case_dir / name / f"{name}.nii")
    if truth_zyx is not None:
        ot = "SMIR.Brain.XX.O.OT.345570"
        (case_dir / ot).mkdir()
        nib.save(nib.Nifti1Image(truth_zyx.T.astype(np.uint8), aff), case_dir / ot / f"{ot}.nii")
    return aff


def test_cli_writes_loadable_maps_beside_the_data(tmp_path, head, capsys):
    series, truth = head
    lesion = np.zeros(series.shape[1:], np.uint8)
    lesion[:, 10:14, 40:44] = 1
    aff = _write_isles_source(tmp_path / "data" / "TRAINING" / "case_1", series, lesion, dt=1.0)
    assert main(["perfusion", str(tmp_path / "data"), "--smooth-mm", "0"]) == 0
    out = tmp_path / "data-maps" / "training" / "case_1"
    case = load_case(out)
    np.testing.assert_allclose(case.affine, aff)
    assert case.spacing == pytest.approx((5.0, 0.9, 0.9))
    assert np.array_equal(case.mask, lesion)
    cbf = case.channels["CBF"][1]
    assert np.median(cbf[truth["cbf"] == 55.0]) > 2 * np.median(cbf[truth["cbf"] == 22.0])
    assert np.median(case.channels["CT"][1][truth["cbf"] == 55.0]) == pytest.approx(38, abs=2)
    info = json.loads((out / "perfusion.json").read_text())
    assert info["dt_s"] == 1.0 and info["frames"] == series.shape[0]
    # a second run leaves finished cases alone
    assert main(["perfusion", str(tmp_path / "data")]) == 0
    assert "already" in capsys.readouterr().out


def test_cli_reports_cases_without_or_with_broken_source(tmp_path, capsys):
    case = tmp_path / "d" / "case_1"
    _write_isles_source(case, np.full((20, 2, 8, 8), 30.0))  # flat: no bolus, no brain curve
    assert main(["perfusion", str(tmp_path / "d"), "--out", str(tmp_path / "o")]) == 1
    assert "case_1: error" in capsys.readouterr().err
    inside = tmp_path / "d" / "maps"
    assert main(["perfusion", str(tmp_path / "d"), "--out", str(inside)]) == 1
    assert "lies inside the data set" in capsys.readouterr().err and not inside.exists()
    simple = tmp_path / "s" / "case_2"
    simple.mkdir(parents=True)
    nib.save(nib.Nifti1Image(np.zeros((8, 8, 2), np.float32), np.eye(4)), simple / "ct.nii")
    assert main(["perfusion", str(tmp_path / "s")]) == 1
    assert "no case has a 4D perfusion source" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("zoom", "unit", "expected"),
    [(1.5, "sec", 1.5), (1500.0, "msec", 1.5), (0.0, "sec", None), (60.0, "sec", None)],
)
def test_frame_interval_from_4d_header(zoom, unit, expected):
    from strokelens.core.nifti import frame_interval

    img = nib.Nifti1Image(np.zeros((4, 4, 2, 3), np.int16), np.eye(4))
    img.header.set_zooms((1.0, 1.0, 5.0, zoom))
    img.header.set_xyzt_units("mm", unit)
    assert frame_interval(img) == (pytest.approx(expected) if expected else None)


#: (option, value, words of the refusal): physically impossible perfusion options
BAD_OPTIONS = [
    ("--dt", "0", "dt (the frame interval) must be a positive number of seconds"),
    ("--dt", "-1.5", "dt (the frame interval) must be a positive number of seconds"),
    ("--dt", "nan", "dt (the frame interval) must be a positive number of seconds"),
    ("--dt", "inf", "dt (the frame interval) must be a positive number of seconds"),
    ("--dt", "one", "not a number: 'one'"),
    ("--smooth-mm", "-1", "smooth_mm must lie in 0..20 mm"),
    ("--smooth-mm", "1e9", "smooth_mm must lie in 0..20 mm"),
    ("--bsvd", "0", "svd_threshold must lie in (0, 1)"),
    ("--bsvd", "1", "svd_threshold must lie in (0, 1)"),
    ("--bsvd", "-0.1", "svd_threshold must lie in (0, 1)"),
    ("--bsvd", "2", "svd_threshold must lie in (0, 1)"),
]


@pytest.mark.parametrize(("option", "value", "words"), BAD_OPTIONS)
def test_cli_refuses_impossible_options_naming_them(tmp_path, head, option, value, words, capsys):
    _write_isles_source(tmp_path / "data" / "case_1", head[0])
    argv = ["perfusion", str(tmp_path / "data"), "--out", str(tmp_path / "out"), option, value]
    with pytest.raises(SystemExit) as info:
        main(argv)
    assert info.value.code == 2
    assert f"argument {option}: {words}" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


#: compute_maps keyword -> (value, words): the library's own checks, before any work
BAD_ARGUMENTS = [
    ({"dt": 0.0}, "dt (the frame interval) must be a positive"),
    ({"dt": -1.0}, "dt (the frame interval) must be a positive"),
    ({"smooth_mm": -0.5}, "smooth_mm must lie in 0..20"),
    ({"smooth_mm": 10.0, "spacing": (5.0, 0.1, 0.1)}, "spans more than the image"),
    ({"svd_threshold": 0.0, "oi_target": None}, "svd_threshold must lie in (0, 1)"),
    ({"svd_threshold": 1.0, "oi_target": None}, "svd_threshold must lie in (0, 1)"),
    ({"oi_target": -0.1}, "oi_target must be a positive number"),
    ({"series": "short"}, "5 frames: deconvolution needs at least 10"),
    ({"series": "nan"}, "the series holds NaN/Inf values"),
]


@pytest.mark.parametrize(("change", "words"), BAD_ARGUMENTS, ids=[w for _, w in BAD_ARGUMENTS])
def test_compute_maps_refuses_impossible_arguments(head, change, words):
    series = head[0]
    if change.get("series") == "short":
        series = series[:5]
    elif change.get("series") == "nan":
        series = series.copy()
        series[7, 1, 30, 30] = np.nan
    kwargs = {"spacing": (5.0, 1.0, 1.0)} | {k: v for k, v in change.items() if k != "series"}
    with pytest.raises(ValueError, match=re.escape(words)):
        compute_maps(series, **kwargs)


def test_cli_refuses_a_series_too_short_to_deconvolve(tmp_path, head, capsys):
    _write_isles_source(tmp_path / "data" / "case_1", head[0][:6])
    assert main(["perfusion", str(tmp_path / "data")]) == 1
    err = capsys.readouterr().err
    assert "4DPWI" in err and "6 frames: deconvolution needs at least 10" in err
