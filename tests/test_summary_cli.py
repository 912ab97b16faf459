"""``strokelens summary``: one PDF/PNG page per case whose text holds the summary's numbers, a
CSV equal to ``core`` values, the core from a project's correction, else the ensemble, else none.

The PDF text is read back with the small parser in ``pdf_text.py`` (no pdftotext here)."""

from __future__ import annotations

import csv

import numpy as np
import pytest
from pdf_text import pdf_text_runs

from strokelens.app.cli import main
from strokelens.app.commands import predict
from strokelens.core import prediction_store
from strokelens.core.dataset import open_dataset
from strokelens.core.manifest import read_manifest
from strokelens.core.mismatch import shown_value
from strokelens.core.phantom import generate_dataset
from strokelens.core.prediction_store import PredictionCache, manifest_fingerprint
from strokelens.core.project.store import ProjectStore
from strokelens.core.stroke_summary import RESEARCH_LINE, CoreKind, CoreOrigin, summarize_stroke

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("phantom")
    generate_dataset(root, 2, seed=3, split="training", slices=(2,))
    return root


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    """A throw-away prediction cache (not XDG_CACHE_HOME: matplotlib keeps its font cache
    there, and rebuilding it costs ~20 s)."""
    monkeypatch.setattr(prediction_store, "default_cache_root", lambda: tmp_path / "cache")


def rows(out):
    with open(out / "summary.csv", newline="") as f:
        return {r["case"]: r for r in csv.DictReader(f)}


def test_reports_and_csv_hold_the_core_numbers(data, ensemble, tmp_path):
    out = tmp_path / "out"
    assert main(["summary", str(data), "--out", str(out), "--ensemble", str(ensemble)]) == 0
    table = rows(out)
    manifest = read_manifest(ensemble)
    fingerprint = manifest_fingerprint(manifest)
    cache = PredictionCache(prediction_store.default_cache_root())
    dataset = open_dataset(data)
    assert sorted(table) == sorted(r.key for r in dataset)
    for ref in dataset:
        case = dataset.load(ref)
        prediction = cache.get(fingerprint, case)  # the run kept its prediction
        assert prediction is not None and prediction.complete
        origin = CoreOrigin(CoreKind.ENSEMBLE, manifest.name, fingerprint, len(manifest.members))
        s = summarize_stroke(case, prediction, None, origin)
        row = table[ref.key]
        for key, value in s.row().items():
            if isinstance(value, float):
                assert float(row[key]) == pytest.approx(value, rel=1e-9), key
            elif value is None:
                assert row[key] == "", key
            else:
                assert row[key] == str(value), key
        text = "\n".join(pdf_text_runs(out / f"{ref.id}_summary.pdf"))
        assert f"Case {ref.key}" in text and f"Patient {case.patient}" in text
        assert RESEARCH_LINE in text and fingerprint in text and manifest.name in text
        assert f"{shown_value(s.ai_core_ml)} mL" in text
        assert f"{shown_value(s.threshold_core_ml)} mL" in text
        for t, v in s.hypoperfusion_ml.items():
            assert f"Tmax > {t:g} s" in text and f"{shown_value(v)} mL" in text
        assert f"{s.hir:.2f}" in text
        lo, hi = s.member_range_ml
        assert f"{lo:.1f}-{hi:.1f} mL" in text
        assert f"Verdict (AI core): {s.verdict_words}" in text
        png = (out / f"{ref.id}_summary.png").read_bytes()
        assert png.startswith(b"\x89PNG")


def test_a_projects_approved_correction_is_the_core(data, ensemble, tmp_path):
    dataset = open_dataset(data)
    ref = dataset[0]
    case = dataset.load(ref)
    fix = np.zeros(case.shape, np.uint8)
    fix[:, 100:110, 100:120] = 1
    project = tmp_path / "project"
    with ProjectStore.open(project, data, create=True) as store:
        store.save_mask(case, fix, "ann", started_from="truth")
        store.approve(case.key, "bob")
    out = tmp_path / "out"
    args = ["summary", str(data), "--out", str(out), "--ensemble", str(ensemble)]
    assert main([*args, "--project", str(project)]) == 0
    row = rows(out)[case.key]
    voxel_ml = float(np.prod(case.spacing)) / 1000
    assert float(row["ai_core_ml"]) == pytest.approx(fix.sum() * voxel_ml)
    assert row["core_source"] == "approved correction"
    assert (
        "corrected by ann at" in row["core_origin"] and "approved by bob at" in row["core_origin"]
    )
    text = "\n".join(pdf_text_runs(out / f"{ref.id}_summary.pdf"))
    assert "approved by bob" in text
    other = rows(out)[dataset[1].key]
    assert other["core_source"] == "AI ensemble"  # no correction: the ensemble's


def test_no_ensemble_means_no_core_and_no_verdict(data, tmp_path, monkeypatch):
    monkeypatch.setattr(predict, "DEMO_MANIFEST", tmp_path / "none.json")
    out = tmp_path / "out"
    assert main(["summary", str(data / "TRAINING" / "case_1"), "--out", str(out)]) == 0
    (row,) = rows(out).values()
    assert row["core_source"] == "no core" and row["ai_core_ml"] == ""
    assert row["verdict"] == "no verdict: no core"
    assert float(row["threshold_core_ml"]) > 0  # the ground truth is not taken for the core
    text = "\n".join(pdf_text_runs(out / "case_1_summary.pdf"))
    assert "no verdict: no core" in text


def test_out_is_checked_before_any_work(data, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    assert main(["summary", str(data), "--out", str(blocker)]) == 1
    assert "is a file" in capsys.readouterr().err
    inside = data / "reports"
    assert main(["summary", str(data), "--out", str(inside)]) == 1
    assert f"{inside}: lies inside the data set {data}" in capsys.readouterr().err
    assert not inside.exists()
