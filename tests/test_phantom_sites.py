"""Phantom acquisition sites: each property a site changes, measured on tiny cases.

One seed is the same patient at every site, so a property is checked as a ratio or shift
against the default site's scan of that patient.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from strokelens.app.cli import main
from strokelens.core.dataset import open_dataset
from strokelens.core.phantom import SITES, Site, plan_dataset, simulate_case
from strokelens.core.phantom.layout import file_arrays
from strokelens.core.phantom.scan import random_physiology
from strokelens.core.phantom.sites import DEFAULT, site_named

SEED = 4
FRAMES = 24  # short series: fast, and the bolus (t0 <= 9 s at the default site) fits


@pytest.fixture(scope="module")
def default_case():
    return simulate_case(SEED, n_slices=2, n_frames=FRAMES)


def _frame_noise_hu(series: np.ndarray) -> float:
    """Per-voxel noise sigma from the first two frames (before the bolus: same signal)."""
    diff = series[0].astype(np.float64) - series[1].astype(np.float64)
    return float(diff.std() / np.sqrt(2.0))


def test_default_site_is_the_phantom_and_sites_are_data():
    assert SITES["default"] is DEFAULT and DEFAULT.is_default
    assert all(dataclasses.is_dataclass(s) and s.name == n for n, s in SITES.items())
    for site in SITES.values():
        for mix in (site.slices_one, site.slices_two):
            assert sum(p for _, p in mix) == pytest.approx(1.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        DEFAULT.noise_hu = (1.0, 2.0)  # type: ignore[misc]
    with pytest.raises(ValueError, match="known sites: default"):
        site_named("vendor-z")


def test_low_dose_site_has_more_noise_in_the_series(default_case):
    low = simulate_case(SEED, n_slices=2, n_frames=FRAMES, site=SITES["low-dose"])
    expected = low.noise_hu / default_case.noise_hu
    assert expected > 1.5  # the premise: the site's noise range is well above the default's
    for scan in (default_case, low):  # measured sigma is the drawn one (rounding adds ~0.3 HU)
        assert _frame_noise_hu(scan.series) == pytest.approx(scan.noise_hu, rel=0.05)
    ratio = _frame_noise_hu(low.series) / _frame_noise_hu(default_case.series)
    assert ratio == pytest.approx(expected, rel=0.05)
    np.testing.assert_array_equal(low.followup, default_case.followup)  # same patient, slab


def test_vendor_scaling_multiplies_the_stored_cbf_and_cbv_only(default_case):
    vendor = Site("test-vendor", "CBF and CBV scaling only", cbf_scale=0.7, cbv_scale=0.8)
    scaled = simulate_case(SEED, n_slices=2, n_frames=FRAMES, site=vendor)
    np.testing.assert_array_equal(scaled.series, default_case.series)
    np.testing.assert_array_equal(scaled.maps.cbf, default_case.maps.cbf * np.float32(0.7))
    np.testing.assert_array_equal(scaled.maps.cbv, default_case.maps.cbv * np.float32(0.8))
    np.testing.assert_array_equal(scaled.maps.tmax, default_case.maps.tmax)
    np.testing.assert_array_equal(scaled.truth.cbf, default_case.truth.cbf)  # physics unchanged
    ours, theirs = file_arrays(scaled), file_arrays(default_case)
    brain = theirs["CT_CBF"] > 100
    ratio = np.median(ours["CT_CBF"][brain] / theirs["CT_CBF"][brain])
    assert ratio == pytest.approx(0.7, abs=0.01)
    np.testing.assert_array_equal(ours["CT_MTT"], theirs["CT_MTT"])


def test_vendor_scaling_of_mtt_and_tmax_leaves_the_scan_and_the_other_maps(default_case):
    vendor = Site("test-package", "MTT and Tmax scaling only", mtt_scale=1.2, tmax_scale=1.3)
    scaled = simulate_case(SEED, n_slices=2, n_frames=FRAMES, site=vendor)
    np.testing.assert_array_equal(scaled.series, default_case.series)
    np.testing.assert_array_equal(scaled.maps.mtt, default_case.maps.mtt * np.float32(1.2))
    np.testing.assert_array_equal(scaled.maps.tmax, default_case.maps.tmax * np.float32(1.3))
    np.testing.assert_array_equal(scaled.maps.cbf, default_case.maps.cbf)
    np.testing.assert_array_equal(scaled.maps.cbv, default_case.maps.cbv)
    assert SITES["vendor-c"].mtt_scale == pytest.approx(
        SITES["vendor-c"].cbv_scale / SITES["vendor-c"].cbf_scale
    )  # the central volume theorem: MTT = CBV / CBF


def test_late_bolus_site_arrives_later_with_a_longer_series(default_case):
    site = SITES["late-bolus"]
    late = simulate_case(SEED, n_slices=2, site=site)  # its own frame count: a 50-60 s series
    assert site.bolus_t0_s[0] <= late.bolus.t0 <= site.bolus_t0_s[1]
    assert site.frames[0] <= late.series.shape[0] <= site.frames[1]
    assert late.bolus.pre_bolus_frames >= 6 > DEFAULT.bolus_t0_s[0]
    for scan in (default_case, late):  # the AIF the analysis found peaks where the bolus does
        b = scan.bolus
        assert np.argmax(scan.maps.aif) == pytest.approx(b.t0 + b.alpha * b.beta, abs=1.5)
    assert np.argmax(late.maps.aif) > np.argmax(default_case.maps.aif)


def test_delay_spread_follows_the_site():
    draws = {
        name: np.array(
            [
                (p.delay_left, p.delay_right)
                for p in (
                    random_physiology(np.random.default_rng(k), SITES[name]) for k in range(300)
                )
            ]
        )
        for name in ("default", "late-bolus")
    }
    assert draws["default"].max() <= 1.0 < draws["late-bolus"].max() <= 2.5
    spread = {n: np.abs(d[:, 0] - d[:, 1]).mean() for n, d in draws.items()}
    assert spread["late-bolus"] / spread["default"] == pytest.approx(2.5, rel=0.15)


def test_site_slice_mix_and_thickness_reach_the_files(tmp_path, capsys):
    site = SITES["vendor-b"]
    plans = plan_dataset(200, seed=7, site=site)
    allowed = {n for n, _ in site.slices_one} | {n for n, _ in site.slices_two}
    assert {p.n_slices for p in plans} == allowed == {2, 4, 8}
    assert {p.n_slices for p in plans if p.n_slabs == 2} <= {n for n, _ in site.slices_two}

    args = ["phantom", "--out", str(tmp_path), "--cases", "1", "--seed", "3", "--jobs", "1"]
    assert main([*args, "--slices", "2", "--site", "vendor-b"]) == 0
    assert "1 training cases" in capsys.readouterr().out
    (case,) = (open_dataset(tmp_path).load(r) for r in open_dataset(tmp_path))
    assert case.shape[0] == 2 and case.spacing[0] == pytest.approx(site.slice_mm)
    for sidecar in (tmp_path / "TRAINING" / "case_1").glob("*/*.json"):
        meta = json.loads(sidecar.read_text())
        assert meta["site"] == "vendor-b" and meta["spacing_mm"][2] == site.slice_mm


def test_cli_refuses_an_unknown_site(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["phantom", "--out", str(tmp_path), "--cases", "1", "--site", "vendor-z"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'vendor-z'" in err and "default" in err and "Traceback" not in err
