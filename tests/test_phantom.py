"""The digital CT-perfusion phantom: ISLES layout, determinism, lesion physics, reader round trip."""

from __future__ import annotations

import json
import re
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage as ndi
from scipy.stats import spearmanr

from strokelens.app.cli import main
from strokelens.core import isles
from strokelens.core.dataset import load_case, open_dataset
from strokelens.core.perfusion import analysis
from strokelens.core.phantom import generate_dataset, plan_dataset, simulate_case
from strokelens.core.phantom.layout import DTYPES, MAP_SCALE
from strokelens.core.phantom.lesion import CORE_RCBF, HYPO_DELAY_S, TERRITORIES, random_lesion

SEED = 1  # plan_dataset(3, 1) has a two-slab patient (checked below)
FOLDER = re.compile(r"^SMIR\.Brain\.XX\.O\.(\w+)\.(\d+)$")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """3 training + 2 testing cases of 2 slices (fast), in one root."""
    root = tmp_path_factory.mktemp("phantom")
    generate_dataset(root, 3, seed=SEED, split="training", slices=(2,))
    generate_dataset(root, 2, seed=SEED, split="testing", slices=(2,))
    return root


@pytest.fixture(scope="module")
def case4():
    """One 4-slice case in memory with a mid-sized lesion."""
    return simulate_case(5, n_slices=4)


def _modality_files(case_folder: Path) -> dict[str, tuple[int, Path]]:
    out = {}
    for sub in sorted(case_folder.iterdir()):
        m = FOLDER.match(sub.name)
        assert m, sub.name
        files = sorted(p.name for p in sub.iterdir())
        assert files == [f"{sub.name}.json", f"{sub.name}.nii"]
        out[m[1]] = (int(m[2]), sub / f"{sub.name}.nii")
    return out


def test_isles_layout_names_types_and_shapes(dataset):
    assert sorted(p.name for p in dataset.iterdir()) == ["TESTING", "TRAINING"]
    ids = []
    for split, n_cases in (("TRAINING", 3), ("TESTING", 2)):
        cases = sorted(p.name for p in (dataset / split).iterdir())
        assert cases == [f"case_{k}" for k in range(1, n_cases + 1)]
        for case in cases:
            files = _modality_files(dataset / split / case)
            expected = set(DTYPES) - ({"OT"} if split == "TESTING" else set())
            assert set(files) == expected
            zooms = None
            for mod, (file_id, path) in files.items():
                ids.append(file_id)
                img = nib.load(path)
                assert img.get_data_dtype() == np.dtype(DTYPES[mod]), mod
                if mod == "CT_4DPWI":
                    assert img.shape[:3] == (256, 256, 2) and 40 <= img.shape[3] <= 50
                    assert img.header.get_zooms()[3] == 1.0
                else:
                    assert img.shape == (256, 256, 2), mod
                z = img.header.get_zooms()[:3]
                zooms = zooms or z
                assert z == zooms and z[2] == 5.0 and 0.8 <= z[0] == z[1] <= 1.0
            ot = files.get("OT")
            if ot:
                assert set(np.unique(np.asarray(nib.load(ot[1]).dataobj))) <= {0, 1}
    assert len(ids) == len(set(ids)) and all(100000 <= i <= 999999 for i in ids)


def test_sidecars_and_two_slab_patients(dataset):
    plans = plan_dataset(3, SEED, slices=(2,))
    assert [p.n_slabs for p in plans] == [1, 2, 2]  # the premise of this test
    patients = []
    for plan in plans:
        files = _modality_files(dataset / "TRAINING" / plan.name)
        meta = {m: json.loads(p.with_suffix(".json").read_text()) for m, (_, p) in files.items()}
        for mod, m in meta.items():
            assert m["modality"] == mod and m["object_id"] == files[mod][0]
            assert m["description"].split(" - ")[1] == mod
            assert "site" not in m and m["spacing_mm"][2] == 5.0  # default site: as always
        assert meta["CT_CBF"]["units"] == "mL/100g/min" and meta["CT_CBF"]["scale"] == 0.1
        assert meta["CT_CBV"]["units"] == "mL/100g" and meta["CT_MTT"]["units"] == "s"
        assert meta["OT"]["lesion"]["territory"] in TERRITORIES
        patients.append(isles.patient_from_sidecar(files["OT"][1].with_suffix(".json")))
    assert patients[1] == patients[2] != patients[0]
    assert all(re.fullmatch(r"P\d{4}", p) for p in patients)


def test_plan_mixes_slab_counts_like_isles():
    plans = plan_dataset(300, seed=7)
    patients = {p.patient_number: p.n_slabs for p in plans}
    two = sum(n == 2 for n in patients.values()) / len(patients)
    assert 0.2 < two < 0.45  # ISLES: 31 of 63 patients gave 94 cases
    assert {p.n_slices for p in plans} == {2, 4, 8, 16, 22}
    ids = [i for p in plans for i in p.ids.values()]
    assert len(ids) == len(set(ids)) == 300 * len(DTYPES)
    for a, b in zip(plans, plans[1:], strict=False):
        if a.patient_number == b.patient_number:  # slabs of one patient: consecutive, alike
            assert (a.slab_index, b.slab_index, a.n_slices) == (0, 1, b.n_slices)
    testing = plan_dataset(5, seed=7, split="testing")
    assert all("OT" not in p.ids for p in testing)
    assert not {p.patient_id for p in testing} & {p.patient_id for p in plans}


def test_loads_through_the_reader(dataset):
    ds = open_dataset(dataset)
    assert len(ds) == 5
    training = [r for r in ds if r.split == "training"]
    assert [len(v) for v in ds.patients().values() if v[0].split == "training"] == [1, 2]
    assert all(r.has_truth for r in training) and not any(
        r.has_truth for r in ds if r not in training
    )
    case = ds.load(training[1])
    files = _modality_files(dataset / "TRAINING" / "case_2")
    img = nib.load(files["CT_CBF"][1])
    assert case.shape == (2, 256, 256) and case.mask is not None and case.mask.any()
    assert case.spacing == pytest.approx((5.0, *img.header.get_zooms()[1::-1]))
    assert case.submission_id == str(files["CT_MTT"][0])
    # the reader's (z, y, x) arrays are the files' (i, j, k) transposed, unscaled
    np.testing.assert_array_equal(case.channels["CBF"], np.asarray(img.dataobj).T)
    series = case.perfusion()
    assert series.shape[1:] == (2, 256, 256)
    np.testing.assert_array_equal(
        case.channels["CT"], load_case(case.paths["CT"].parents[1]).channels["CT"]
    )
    pre = json.loads(files["CT"][1].with_suffix(".json").read_text())["pre_bolus_frames"]
    np.testing.assert_array_equal(case.channels["CT"], np.rint(series[:pre].mean(axis=0)))


def test_maps_in_files_are_the_analysis_of_the_stored_series(dataset):
    # The contract: the stored maps are compute_maps of the stored series with the stored spacing
    # and frame interval, so on the machine that wrote them a re-analysis is bit for bit the same
    # (same code, float32, same BLAS). Across machines BLAS kernels may round differently.
    case = load_case(dataset / "TRAINING" / "case_1")
    maps = analysis.compute_maps(case.perfusion(), dt=case.frame_interval_s, spacing=case.spacing)
    cbf = np.clip(np.rint(maps.cbf * MAP_SCALE["CT_CBF"]), 0, 65535)
    np.testing.assert_array_equal(case.channels["CBF"], cbf)
    np.testing.assert_array_equal(case.channels["Tmax"], maps.tmax)


def test_lesion_core_lies_in_the_hypoperfused_region(case4):
    truth, maps = case4.truth, case4.maps
    assert truth.core.sum() > 200 and truth.hypoperfused.sum() > truth.core.sum()
    assert not (truth.core & ~truth.hypoperfused).any()
    assert (truth.rcbf[truth.core] < CORE_RCBF).all() and (
        truth.delay[truth.hypoperfused] > 6
    ).all()
    ot = case4.followup > 0
    assert (ot & truth.hypoperfused).sum() >= 0.9 * ot.sum()
    assert 0 < int((ot.sum(axis=(1, 2)) > 0).sum())
    # what the analysis finds: late residues in the core, healthy tissue on time, low flow
    brain = maps.brain_mask
    par = (case4.anatomy.gm + case4.anatomy.wm > 0.5) & brain
    healthy = par & ~truth.hypoperfused
    core = truth.core & brain
    assert np.median(maps.tmax[core]) > HYPO_DELAY_S > 2 > np.median(maps.tmax[healthy])
    assert np.median(maps.cbf[core]) < 0.8 * np.median(maps.cbf[healthy])


def test_follow_up_mask_is_close_to_not_identical_with_the_core(case4):
    core, ot = case4.truth.core, case4.followup > 0
    dice = 2 * (core & ot).sum() / (core.sum() + ot.sum())
    assert 0.6 < dice < 0.98
    assert case4.followup.dtype == np.uint8 and set(np.unique(case4.followup)) <= {0, 1}


def test_maps_are_computed_not_copied(case4):
    truth, maps, anat = case4.truth, case4.maps, case4.anatomy
    par = (anat.gm + anat.wm > 0.5) & maps.brain_mask
    rel = np.abs(maps.cbf[par] - truth.cbf[par]) / np.maximum(truth.cbf[par], 1.0)
    assert np.median(rel) > 0.05  # noise, smoothing and deconvolution leave their marks
    # ...but track the truth (ranks: vessel voxels are huge outliers of CBF)
    assert spearmanr(maps.cbf[par], truth.cbf[par])[0] > 0.3
    # the AIF was found at (in or beside) arteries of the anatomy, not in tissue or veins
    near_artery = ndi.maximum_filter(anat.artery, size=(1, 3, 3))[tuple(maps.aif_voxels.T)]
    assert len(near_artery) and (near_artery > 0.05).all()


def test_anatomy_attenuation(case4):
    anat, ct = case4.anatomy, case4.ct.astype(float)
    fractions = anat.gm + anat.wm + anat.csf + anat.bone + anat.scalp + anat.artery + anat.vein
    assert fractions.max() <= 1.0 + 1e-4
    hu = case4.patient.tissue  # a voxel of 90 % grey matter holds some CSF
    assert np.median(ct[anat.gm > 0.9]) == pytest.approx(hu.hu_gm - 2, abs=2)
    assert np.median(ct[anat.wm > 0.9]) == pytest.approx(hu.hu_wm, abs=1.5)
    assert np.median(ct[anat.csf > 0.9]) < 15
    assert np.median(ct[anat.bone > 0.9]) > 600
    assert np.median(ct[fractions < 0.01]) < -950  # air
    assert case4.ct.dtype == np.int32 and case4.series.dtype == np.int16


def test_lesion_draws_and_profiles():
    rng = np.random.default_rng(3)
    lesions = [random_lesion(rng) for _ in range(8)]
    assert {les.side for les in lesions} == {"left", "right"}
    for les in lesions:
        assert les.territory in TERRITORIES and 0 < les.core_ml < les.hypo_ml
        assert 0 < les.t_hypo < les.t_core
        s = np.linspace(0.0, 1.0, 200, dtype=np.float32)
        rcbf, rcbv, delay = les.modifiers(s)
        assert (np.diff(rcbf) <= 1e-6).all() and (np.diff(delay) >= -1e-6).all()
        r_core, _, _ = les.modifiers(np.float32([les.t_core]))
        _, _, d_hypo = les.modifiers(np.float32([les.t_hypo]))
        assert r_core[0] == pytest.approx(CORE_RCBF, abs=1e-3)
        assert d_hypo[0] == pytest.approx(HYPO_DELAY_S, abs=1e-3)
        assert rcbf[0] == pytest.approx(1.0) and rcbv[-1] < 0.6


def test_cli_writes_and_refuses_a_used_folder(tmp_path, capsys):
    args = ["phantom", "--out", str(tmp_path), "--cases", "1", "--seed", "3"]
    assert main([*args, "--slices", "2", "--jobs", "1"]) == 0
    assert "1 training cases" in capsys.readouterr().out
    assert len(list((tmp_path / "TRAINING" / "case_1").iterdir())) == len(DTYPES)
    assert main([*args, "--slices", "2"]) == 1
    assert "already holds files" in capsys.readouterr().err
    (tmp_path / "file").write_text("")
    assert main(["phantom", "--out", str(tmp_path / "file"), "--cases", "1"]) == 1
    assert "Not a directory" in capsys.readouterr().err
    with pytest.raises(ValueError, match="split"):
        generate_dataset(tmp_path / "other", 1, split="validation")


@pytest.mark.heavy
def test_same_seed_same_bytes_whatever_the_workers(dataset, tmp_path):
    generate_dataset(tmp_path, 3, seed=SEED, split="training", slices=(2,), jobs=2)
    ours = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*") if p.is_file())
    theirs = sorted(
        p.relative_to(dataset) for p in (dataset / "TRAINING").rglob("*") if p.is_file()
    )
    assert ours == theirs
    for rel in ours:
        assert (tmp_path / rel).read_bytes() == (dataset / rel).read_bytes(), rel
    assert not np.array_equal(simulate_case(SEED, 2).ct, simulate_case(SEED + 1, 2).ct)
