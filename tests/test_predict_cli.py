"""``strokelens predict`` writes masks and maps with the case geometry and metrics equal to
case_metrics; ``strokelens evaluate`` finds those files again and reports the same scores."""

from __future__ import annotations

import csv
import gzip
import json
import math

import nibabel as nib
import numpy as np
import pytest
import torch
from helpers import case_and_boneonly_case, relative_copy, write_isles_case, write_simple_case

from strokelens.app.cli import main
from strokelens.app.commands import predict
from strokelens.core.dataset import load_case, open_dataset
from strokelens.core.engine import Engine
from strokelens.core.metrics import METRICS, case_metrics
from strokelens.core.output import prepare_folders

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """Two training cases with truth and a testing case_1 without: ids repeat across splits."""
    root = tmp_path_factory.mktemp("isles")
    write_isles_case(root / "TRAINING" / "case_1", first_id=345560, seed=0)
    write_isles_case(root / "TRAINING" / "case_2", first_id=345570, seed=7)
    write_isles_case(root / "TESTING" / "case_1", first_id=345580, truth=False, seed=3)
    return root


def same(a, b) -> bool:
    """Equal numbers, NaN written to JSON as null counting as NaN."""
    a, b = (math.nan if v is None else v for v in (a, b))
    return (math.isnan(a) and math.isnan(b)) or a == pytest.approx(b)


@pytest.fixture(scope="module")
def predicted(ensemble, dataset, tmp_path_factory):
    out = tmp_path_factory.mktemp("out")
    threads = torch.get_num_threads()
    # One thread, as the engine the test compares with: identical sums, identical masks.
    args = ["predict", str(dataset), "--out", str(out), "--ensemble", str(ensemble), "--members"]
    assert main([*args, "--threads", "1"]) == 0
    torch.set_num_threads(threads)  # --threads is process-wide
    return out


def test_predict_writes_masks_maps_and_metrics(predicted, dataset, ensemble):
    out = predicted
    engine = Engine.from_manifest(ensemble, device="cpu")
    report = json.loads((out / "predictions.json").read_text())
    rows = {r["key"]: r for r in report["cases"]}
    assert sorted(rows) == ["testing/case_1", "training/case_1", "training/case_2"]
    for ref in open_dataset(dataset):
        case = load_case(ref.folder)
        mask_path = out / ref.split / f"SMIR.strokelens.{case.submission_id}.nii"
        assert rows[ref.key]["mask"] == f"{ref.split}/{mask_path.name}"
        img = nib.load(mask_path)
        np.testing.assert_allclose(img.affine, case.affine)
        mask = np.asarray(img.dataobj).T
        expected = engine.predict(case)
        np.testing.assert_array_equal(mask, expected.mask())
        maps = out / ref.split / "maps"
        prob = np.asarray(nib.load(maps / f"{case.id}_prob_focal.nii.gz").dataobj).T
        np.testing.assert_allclose(prob, expected.mean("focal"), atol=2e-5)
        member = nib.load(maps / f"{case.id}_member_ce-3.nii.gz")
        np.testing.assert_allclose(np.asarray(member.dataobj).T, expected.members[3], atol=2e-5)
        assert (maps / f"{case.id}_uncertainty.nii.gz").is_file()
        row = rows[ref.key]
        for source, volume in expected.volumes_ml().items():
            assert row[f"{source}_ml"] == pytest.approx(volume)
        if case.mask is None:
            assert "all_dsc" not in row and row["truth_ml"] is None
            continue
        for source in ("all", "focal", "ce"):
            scores = case_metrics(expected.mask(source), case.mask, case.spacing)
            assert all(same(row[f"{source}_{k}"], v) for k, v in scores.items()), source
    assert report["summary"]["ce"]["dsc"]["n"] == 2
    csv_lines = (out / "predictions.csv").read_text().splitlines()
    assert len(csv_lines) == 4 and "focal_dsc" in csv_lines[0]


def test_evaluate_reads_the_predictions_back(predicted, dataset, capsys):
    assert main(["evaluate", str(predicted), str(dataset)]) == 0
    printed = capsys.readouterr().out
    assert "training/case_2" in printed and "+-" in printed
    predicted_rows = {
        r["key"]: r for r in json.loads((predicted / "predictions.json").read_text())["cases"]
    }
    evaluation = json.loads((predicted / "evaluation.json").read_text())
    assert [r["key"] for r in evaluation["cases"]] == ["training/case_1", "training/case_2"]
    for row in evaluation["cases"]:
        for k in METRICS:
            assert same(row[k], predicted_rows[row["key"]][f"all_{k}"])
    assert (predicted / "evaluation.csv").read_text().count("\n") == 3


def test_evaluate_waits_for_no_predict_still_writing(predicted, dataset, capsys):
    """A predict that still writes into PRED_DIR holds its lock: evaluate refuses, writes none."""
    (predicted / "evaluation.json").unlink(missing_ok=True)
    with prepare_folders([predicted]):
        assert main(["evaluate", str(predicted), str(dataset)]) == 1
    assert "another run is writing there" in capsys.readouterr().err
    assert not (predicted / "evaluation.json").exists()
    assert main(["evaluate", str(predicted), str(dataset)]) == 0


def test_evaluate_asks_for_a_method_when_two_match(predicted, dataset, tmp_path, capsys):
    pred = tmp_path / "pred"
    for path in (predicted / "training").glob("SMIR.*.nii"):
        for method in ("a", "b"):
            target = pred / path.name.replace("strokelens", method)
            target.parent.mkdir(exist_ok=True)
            target.write_bytes(path.read_bytes())
    assert main(["evaluate", str(pred), str(dataset / "TRAINING")]) == 1
    assert "several predictions" in capsys.readouterr().err
    assert main(["evaluate", str(pred), str(dataset / "TRAINING"), "--method", "b"]) == 0


def test_simple_case_mask_name_and_missing_ensemble(ensemble, tmp_path, monkeypatch, capsys):
    write_simple_case(tmp_path / "patient7")
    out = tmp_path / "out"
    args = ["predict", str(tmp_path / "patient7"), "--out", str(out)]
    monkeypatch.setattr(predict, "DEMO_MANIFEST", tmp_path / "no-demo.json")
    assert main(args) == 1
    assert "--ensemble" in capsys.readouterr().err
    assert main([*args, "--ensemble", str(ensemble), "--threads", "0"]) == 2
    assert "threads must be >= 1" in capsys.readouterr().err
    assert main([*args, "--ensemble", str(ensemble), "--threads", "1"]) == 0
    assert (out / "patient7_mask.nii.gz").is_file()
    assert not list(out.glob("SMIR.*"))


def test_case_problems_are_printed_and_written_per_case(ensemble, tmp_path, capsys):
    """NaN voxels in a map are set to 0 and the case is predicted; the user is told, in the
    terminal and in predictions.json / .csv, for that case only."""
    write_simple_case(tmp_path / "data" / "clean", shape_xyz=(16, 12, 2))
    paths = write_simple_case(tmp_path / "data" / "holes", shape_xyz=(16, 12, 2), seed=1)
    img = nib.load(paths["mtt"])
    values = np.asarray(img.dataobj, dtype=np.float32)
    values[2, 3, 1] = values[5, 5, 0] = np.nan
    nib.save(nib.Nifti1Image(values, img.affine), paths["mtt"])
    out = tmp_path / "out"
    argv = ["predict", str(tmp_path / "data"), "--out", str(out), "--ensemble", str(ensemble)]
    assert main([*argv, "--threads", "1"]) == 0
    problem = "mtt.nii.gz: 2 non-finite voxels (NaN/Inf) set to 0"
    assert f"holes: warning: {problem}" in capsys.readouterr().err
    rows = {r["key"]: r for r in json.loads((out / "predictions.json").read_text())["cases"]}
    assert rows["holes"]["problems"] == [problem] and rows["clean"]["problems"] == []
    with open(out / "predictions.csv", newline="") as f:
        table = {r["key"]: r for r in csv.DictReader(f)}
    assert table["holes"]["problems"] == problem and table["clean"]["problems"] == ""


def test_corrupt_gzip_case_is_failed_not_predicted(ensemble, tmp_path, capsys):
    """The reported symptom: a .nii.gz whose CRC fails was read and predicted."""
    paths = write_simple_case(tmp_path / "data" / "case_1", shape_xyz=(16, 12, 2))
    raw = gzip.decompress(paths["cbf"].read_bytes())
    corrupt = bytearray(gzip.compress(raw, compresslevel=0))
    corrupt[len(corrupt) // 2] ^= 0x10  # a voxel byte of the stored deflate block
    paths["cbf"].write_bytes(corrupt)
    out = tmp_path / "out"
    argv = ["predict", str(tmp_path / "data"), "--out", str(out), "--ensemble", str(ensemble)]
    assert main([*argv, "--threads", "1"]) == 1
    assert f"{paths['cbf']}: corrupt gzip data (CRC check failed" in capsys.readouterr().err
    report = json.loads((out / "predictions.json").read_text())
    assert report["cases"] == [] and "CRC check failed" in report["failed"][0]["error"]
    assert not list(out.glob("*.nii*"))


def test_a_relative_version_skips_a_case_it_cannot_scale(ensemble, tmp_path, capsys):
    """A version reading CBF/CBV relative to the brain predicts no case without enough brain
    (here all bone): that case fails with its map named, the others are predicted."""
    bone = case_and_boneonly_case(tmp_path / "data")
    path = relative_copy(ensemble, "relative-skip.json")
    out = tmp_path / "out"
    try:
        argv = ["predict", str(tmp_path / "data"), "--out", str(out), "--ensemble", str(path)]
        assert main([*argv, "--threads", "1"]) == 1
    finally:
        path.unlink()
    err = capsys.readouterr().err
    assert f"training/case_2: skipped: {bone['CT_CBF']}: CBF cannot be read relative" in err
    assert "fewer than 500 brain voxels" in err
    assert "Traceback" not in err
    report = json.loads((out / "predictions.json").read_text())
    assert [r["key"] for r in report["cases"]] == ["training/case_1"]
    assert report["failed"][0]["key"] == "training/case_2"
