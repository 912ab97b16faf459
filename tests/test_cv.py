"""Cross-validation run: folds by patient, every (loss, fold) trained, manifest, report."""

from __future__ import annotations

import json

import pytest
from helpers import write_isles_case

from strokelens.app.cli import main
from strokelens.core.manifest import read_manifest
from strokelens.core.weights import load_weights
from strokelens.training.config import Schedule, TrainConfig
from strokelens.training.cv import run_cv
from strokelens.training.report import table1, write_report


@pytest.mark.heavy
def test_cv_run_trains_each_fold_and_loss(tmp_path):
    data = tmp_path / "data"
    for k in range(1, 6):  # five cases, four patients (P1 has two slabs)
        patient = "P1" if k <= 2 else f"P{k}"
        write_isles_case(data / "TRAINING" / f"case_{k}", (32, 32, 4), patient=patient, seed=k)
    config = TrainConfig(
        model={"arch": "pspnet", "backbone": "resnet18"},
        schedule=Schedule(batch_size=4, max_epochs=1, lr=1e-3, threads=1),
        augment=None,
        folds=2,
    )
    manifest_path = run_cv(config, data, tmp_path / "run")
    folds = json.loads((tmp_path / "run" / "folds.json").read_text())
    p1 = {"training/case_1", "training/case_2"}
    assert any(p1 <= set(f) for f in folds)
    manifest = read_manifest(manifest_path)
    assert [(m.loss, m.fold) for m in manifest.members] == [
        ("focal", 1),
        ("focal", 2),
        ("ce", 1),
        ("ce", 2),
    ]
    for m in manifest.members:
        _, _, meta = load_weights(manifest.weights_path(m), sha256=m.sha256)
        assert meta["fold"] == m.fold and meta["loss"] == m.loss
        rows = json.loads(
            (tmp_path / "run" / m.loss / f"fold_{m.fold}" / "metrics.json").read_text()
        )
        assert sorted(r["key"] for r in rows) == sorted(folds[m.fold - 1])
    assert main(["report", str(tmp_path / "run")]) == 0
    assert (tmp_path / "run" / "fig3.png").stat().st_size > 1000
    # A second call with --resume trains nothing more and gives the same manifest.
    before = manifest_path.read_text()
    run_cv(config, data, tmp_path / "run", resume=True)
    assert manifest_path.read_text() == before


def _cv_json(path, arch, values):
    runs = [
        {"loss": loss, "fold": f + 1, "dsc": v}
        for loss, vs in values.items()
        for f, v in enumerate(vs)
    ]
    path.mkdir(parents=True)
    (path / "cv.json").write_text(json.dumps({"arch": arch, "runs": runs}))


def test_table1_and_figure_from_cv_json(tmp_path):
    # The paper's Table 1 values give its reported totals.
    _cv_json(
        tmp_path / "psp",
        "pspnet-resnet50",
        {"focal": [0.64, 0.42, 0.48, 0.55, 0.58], "ce": [0.64, 0.37, 0.50, 0.54, 0.41]},
    )
    _cv_json(tmp_path / "unet", "unet2d", {"focal": [0.5] * 5, "ce": [0.4, 0.5, 0.4, 0.5, 0.4]})
    text = table1(json.loads((tmp_path / "psp" / "cv.json").read_text()) | {"run": "psp"})
    assert "| 2 | 0.42 | 0.37 |" in text
    assert "| Total | 0.53 ± 0.09 | 0.49 ± 0.11 |" in text
    md, png = write_report([tmp_path / "psp", tmp_path / "unet"], tmp_path / "out")
    assert md.read_text().count("| Total |") == 2
    assert png.read_bytes()[:4] == b"\x89PNG"
