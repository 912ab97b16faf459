"""The review project store: round trips across reopen, the workflow, the lock, import, input
fingerprints, repair on open, export (names, CSV numbers, manifest) and the CLI."""

from __future__ import annotations

import csv
import math
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from helpers import affine, write_isles_case

from strokelens.app.cli import main as cli_main
from strokelens.core.dataset import open_dataset
from strokelens.core.errors import DataError, OutputError
from strokelens.core.metrics import METRICS, case_metrics, volume_ml
from strokelens.core.mismatch import hypoperfusion_mask
from strokelens.core.prediction import Prediction
from strokelens.core.prediction_store import PredictionCache
from strokelens.core.project import schema
from strokelens.core.project.export import read_manifest
from strokelens.core.project.inputs import file_sha256
from strokelens.core.project.review import (
    Event,
    Status,
    TransitionError,
    check_transition,
    next_status,
)
from strokelens.core.project.store import (
    MASKS,
    ProjectStore,
    ReadOnlyError,
    default_project_for,
    mask_sha256,
)

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def data(tmp_path):
    """Two ISLES training cases (shape (4, 20, 24) z, y, x), the second without ground truth."""
    root = tmp_path / "data"
    write_isles_case(root / "TRAINING" / "case_1", first_id=345560)
    write_isles_case(root / "TRAINING" / "case_2", first_id=345570, truth=False, seed=5)
    return root


@pytest.fixture
def dataset(data):
    return open_dataset(data)


@pytest.fixture
def store(tmp_path, data):
    s = ProjectStore.open(tmp_path / "project", data, create=True)
    yield s
    s.close()


def blob(shape, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    mask = np.zeros(shape, np.uint8)
    z, y, x = (int(rng.integers(0, n - 2)) for n in shape)
    mask[z : z + 2, y : y + 5, x : x + 4] = 1
    return mask


def test_round_trip_across_reopen(tmp_path, data, dataset, store):
    case = dataset.load("training/case_1")
    first, second = blob(case.shape, 1), blob(case.shape, 2)
    store.set_status(case.key, Status.PREDICTED, "ann")
    store.save_mask(case, first, "ann", "save", started_from="0123456789abcdef")
    store.save_mask(case, second, "ann", "autosave", started_from="ignored after the first")
    store.approve(case.key, "bob")
    store.close()

    with ProjectStore.open(tmp_path / "project", data) as again:
        assert again.writable and again.repairs == [] and again.problems == {}
        np.testing.assert_array_equal(again.load_mask(case.key), second)
        record = again.record(case.key)
        assert record.status is Status.APPROVED and record.reviewer == "bob"
        assert record.started_from == "0123456789abcdef"
        assert record.submission_id == case.submission_id
        assert record.mask_sha256 == mask_sha256(second)
        assert record.mask_voxels == int(second.sum())
        assert record.mask_ml == pytest.approx(volume_ml(second, case.spacing))
        rows = again.audit(case.key)
        assert [(r.action, r.status_before, r.status_after) for r in rows] == [
            ("status", Status.NEW, Status.PREDICTED),
            ("save", Status.PREDICTED, Status.CORRECTED),
            ("autosave", Status.CORRECTED, Status.CORRECTED),
            ("approve", Status.CORRECTED, Status.APPROVED),
        ]
        assert rows[1].sha_before is None and rows[1].sha_after == mask_sha256(first)
        assert rows[2].sha_before == mask_sha256(first) and rows[2].sha_after == mask_sha256(second)
        assert rows[2].voxels_changed == int(np.count_nonzero(first != second))
        assert rows[2].ml_changed == pytest.approx(
            volume_ml(second, case.spacing) - volume_ml(first, case.spacing)
        )
        assert rows[3].who == "bob" and rows[1].who == "ann"
        assert again.status("training/case_2") is Status.NEW and again.load_mask("x") is None
        # one file per case: the previous version was removed after the commit
        assert [p.name for p in (again.path / MASKS).rglob("*.nii.gz")] == [
            f"{mask_sha256(second)}.nii.gz"
        ]


def test_saved_file_has_the_source_geometry(dataset, store):
    case = dataset.load("training/case_1")
    record = store.save_mask(case, blob(case.shape, 3), "ann")
    img = nib.load(store.mask_path(record))
    assert img.get_data_dtype() == np.uint8
    np.testing.assert_allclose(img.affine, case.affine)
    assert img.header.get_zooms()[:3] == pytest.approx((0.9, 0.9, 5.0))


def test_transitions_table():
    assert next_status(Status.NEW, Event.EDIT) is Status.IN_REVIEW
    assert next_status(Status.PREDICTED, Event.EDIT) is Status.IN_REVIEW
    assert next_status(Status.IN_REVIEW, Event.SAVE) is Status.CORRECTED
    assert next_status(Status.APPROVED, Event.SAVE) is Status.CORRECTED
    assert next_status(Status.CORRECTED, Event.APPROVE) is Status.APPROVED
    assert next_status(Status.NEW, Event.PREDICT) is Status.PREDICTED
    assert next_status(Status.APPROVED, Event.PREDICT) is Status.APPROVED  # never demoted
    for status in (Status.NEW, Status.PREDICTED, Status.IN_REVIEW, Status.APPROVED):
        with pytest.raises(TransitionError, match="cannot approve"):
            next_status(status, Event.APPROVE)
    with pytest.raises(TransitionError, match='from "in review" to "predicted"'):
        check_transition(Status.IN_REVIEW, Status.PREDICTED)
    with pytest.raises(TransitionError):
        check_transition(Status.NEW, Status.APPROVED)


def test_workflow_in_the_store(dataset, store):
    case = dataset.load("training/case_1")
    with pytest.raises(TransitionError, match='cannot approve a case that is "new"'):
        store.approve(case.key, "ann")
    store.set_status(case.key, next_status(store.status(case.key), Event.EDIT), "ann")
    assert store.status(case.key) is Status.IN_REVIEW
    with pytest.raises(TransitionError):
        store.set_status(case.key, Status.PREDICTED, "ann")
    with pytest.raises(TransitionError):
        store.approve(case.key, "ann")  # unsaved edits: nothing to approve yet
    store.save_mask(case, blob(case.shape, 1), "ann")
    store.approve(case.key, "bob")
    with pytest.raises(TransitionError):
        store.approve(case.key, "bob")
    reopened = store.save_mask(case, blob(case.shape, 2), "carl")
    assert reopened.status is Status.CORRECTED and reopened.reviewer == "carl"
    last = store.audit(case.key)[-1]
    assert (last.status_before, last.status_after) == (Status.APPROVED, Status.CORRECTED)
    assert "approved case edited" in last.note
    n = len(store.audit())
    assert store.set_status(case.key, Status.CORRECTED, "carl").status is Status.CORRECTED
    assert len(store.audit()) == n  # a no-op leaves no row


def test_audit_log_is_append_only(dataset, store):
    case = dataset.load("training/case_1")
    store.save_mask(case, blob(case.shape, 1), "ann")
    conn = sqlite3.connect(store.path / schema.DB_NAME)
    for sql in ("UPDATE audit SET who = 'mallory'", "DELETE FROM audit"):
        with pytest.raises(sqlite3.IntegrityError, match="append-only"):
            conn.execute(sql)
    conn.close()


def test_second_opener_is_read_only_and_says_who_holds_the_lock(tmp_path, data, dataset, store):
    case = dataset.load("training/case_1")
    with ProjectStore.open(tmp_path / "project", data) as second:
        assert not second.writable
        assert f"pid {os.getpid()}" in second.read_only_reason
        assert "user " in second.read_only_reason and " on " in second.read_only_reason
        with pytest.raises(ReadOnlyError, match="open elsewhere"):
            second.save_mask(case, blob(case.shape, 1), "bob")
        with pytest.raises(ReadOnlyError):
            second.approve(case.key, "bob")
        store.save_mask(case, blob(case.shape, 1), "ann")  # the writer goes on
        np.testing.assert_array_equal(second.load_mask(case.key), blob(case.shape, 1))
    store.close()
    with ProjectStore.open(tmp_path / "project", data) as third:
        assert third.writable  # released on close


def test_a_killed_holder_leaves_no_stale_lock(tmp_path, data, store):
    store.close()
    child = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
                import time
                from strokelens.core.project.store import ProjectStore
                store = ProjectStore.open({str(tmp_path / "project")!r})
                print(store.writable, flush=True)
                time.sleep(60)
            """),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout.readline().strip() == "True"
        with ProjectStore.open(tmp_path / "project") as blocked:
            assert f"pid {child.pid}" in blocked.read_only_reason
        child.send_signal(signal.SIGKILL)
        child.wait(10)
    finally:
        child.kill()
        child.stdout.close()
    with ProjectStore.open(tmp_path / "project", data) as after:
        assert after.writable
        assert f'"pid": {os.getpid()}' in (after.path / "lock.json").read_text()


def test_open_repairs_orphans_and_reports_missing_files(tmp_path, data, dataset, store):
    one, two = dataset.load("training/case_1"), dataset.load("training/case_2")
    kept = store.mask_path(store.save_mask(one, blob(one.shape, 1), "ann"))
    lost = store.mask_path(store.save_mask(two, blob(two.shape, 2), "ann"))
    store.close()
    orphan = kept.parent / f"{'a' * 64}.nii.gz"  # a save that crashed before its commit
    orphan.write_bytes(kept.read_bytes())
    temporary = kept.parent / f".{kept.name}.abcd1234.tmp.nii.gz"  # a write killed midway
    temporary.write_bytes(b"half")
    lost.unlink()
    with ProjectStore.open(tmp_path / "project", data) as again:
        assert not orphan.exists() and not temporary.exists() and kept.exists()
        assert len(again.repairs) == 2
        assert list(again.problems) == [two.key] and "missing" in again.problems[two.key]
        with pytest.raises(DataError, match="not found"):
            again.load_mask(two.key)
        assert again.verify().keys() == {two.key}
        np.testing.assert_array_equal(again.load_mask(one.key), blob(one.shape, 1))
        again.save_mask(two, blob(two.shape, 3), "ann")  # a new save mends it
        assert again.problems == {} and again.verify() == {}


def test_a_mask_file_that_differs_from_its_record_is_refused(dataset, store):
    case = dataset.load("training/case_1")
    path = store.mask_path(store.save_mask(case, blob(case.shape, 1), "ann"))
    img = nib.load(path)
    nib.save(nib.Nifti1Image(np.ones(img.shape, np.uint8), img.affine, img.header), path)
    with pytest.raises(DataError, match="differs from the project database"):
        store.load_mask(case.key)


def test_import_checks_geometry(tmp_path, dataset, store):
    case = dataset.load("training/case_1")
    good = blob(case.shape, 4)
    path = tmp_path / "itksnap.nii.gz"
    nib.save(nib.Nifti1Image(good.transpose(2, 1, 0).copy(), case.affine), path)
    record = store.import_mask(case, path, "ann")
    assert record.status is Status.CORRECTED and record.started_from == "import:itksnap.nii.gz"
    np.testing.assert_array_equal(store.load_mask(case.key), good)

    wrong_shape = tmp_path / "shape.nii.gz"
    nib.save(nib.Nifti1Image(np.zeros((24, 20, 5), np.uint8), case.affine), wrong_shape)
    with pytest.raises(DataError, match=r"shape \(5, 20, 24\).*\(4, 20, 24\)") as err:
        store.import_mask(case, wrong_shape, "ann")
    assert err.value.path == wrong_shape
    shifted = affine()
    shifted[0, 3] += 2.0
    wrong_affine = tmp_path / "affine.nii.gz"
    nib.save(nib.Nifti1Image(good.transpose(2, 1, 0).copy(), shifted), wrong_affine)
    with pytest.raises(DataError, match="affine differs .* by up to 2 mm"):
        store.import_mask(case, wrong_affine, "ann")
    labels = tmp_path / "labels.nii.gz"
    nib.save(nib.Nifti1Image((good * 2).transpose(2, 1, 0).copy(), case.affine), labels)
    with pytest.raises(DataError, match="values 0, 2: a 0/1 mask"):
        store.import_mask(case, labels, "ann")
    assert len(store.audit(case.key)) == 1  # the refused imports changed nothing


def test_input_changes_are_reported_and_corrections_kept(tmp_path, data, dataset, store):
    one, two = dataset.load("training/case_1"), dataset.load("training/case_2")
    store.save_mask(one, blob(one.shape, 1), "ann")
    store.save_mask(two, blob(two.shape, 2), "ann")
    assert set(store.record(one.key).inputs) == {
        Path(one.paths[k]).relative_to(data).as_posix() for k in one.paths
    }
    assert store.check_inputs() == []
    os.utime(one.paths["CT"])  # touched, same bytes: unchanged
    assert store.check_inputs() == []
    tmax = Path(one.paths["Tmax"])
    tmax.write_bytes(tmax.read_bytes()[:-8] + b"\x01" * 8)
    Path(two.paths["CBF"]).unlink()
    store.close()
    with ProjectStore.open(tmp_path / "project", data) as again:
        found = {(p.case_key, Path(p.file).name, p.problem) for p in again.check_inputs()}
        assert found == {
            (one.key, tmax.name, "changed"),
            (two.key, Path(two.paths["CBF"]).name, "missing"),
        }
        np.testing.assert_array_equal(again.load_mask(one.key), blob(one.shape, 1))


def test_project_locations(tmp_path, data, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    default = default_project_for(data)
    assert default.parent == tmp_path / "xdg" / "strokelens" / "projects"
    assert default.name.startswith("data-") and default == default_project_for(data / ".")
    assert default_project_for(tmp_path / "other" / "data") != default
    with pytest.raises(OutputError, match="inside the data set"):
        ProjectStore.open(data / "project", data, create=True)
    with pytest.raises(DataError, match="no StrokeLens project"):
        ProjectStore.open(tmp_path / "nothing")
    with ProjectStore.open(default, data, create=True):
        pass
    with pytest.raises(DataError, match="is for the data set"):
        ProjectStore.open(default, tmp_path)


def test_a_newer_database_is_refused(tmp_path, data, store):
    store.close()
    conn = sqlite3.connect(tmp_path / "project" / schema.DB_NAME)
    conn.execute(f"PRAGMA user_version = {schema.VERSION + 1}")
    conn.close()
    with pytest.raises(DataError, match="reads up to"):
        ProjectStore.open(tmp_path / "project")


def _cached_prediction(cache: PredictionCache, case, seed: int) -> Prediction:
    names, losses = ["f1", "f2", "c1", "c2"], ["focal", "focal", "ce", "ce"]
    prediction = Prediction.empty(case.key, case.shape, case.spacing, names, losses)
    rng = np.random.default_rng(seed)
    prediction.update(np.arange(case.shape[0]), rng.random((4, *case.shape)).astype(np.float32))
    cache.put("0123456789abcdef", case, prediction)
    return prediction


def test_export_names_csv_and_manifest(tmp_path, dataset, store):
    one, two = dataset.load("training/case_1"), dataset.load("training/case_2")
    cache = PredictionCache(tmp_path / "cache")
    prediction = _cached_prediction(cache, one, 7)
    masks = {one.key: blob(one.shape, 1), two.key: blob(two.shape, 2)}
    for case in (one, two):
        store.save_mask(case, masks[case.key], "ann")
    store.approve(one.key, "bob")

    result = store.export(tmp_path / "out", cache_root=cache.root)
    assert result.skipped == {} and result.notes == []
    assert {k: p.name for k, p in result.masks.items()} == {
        one.key: f"SMIR.strokelens.{one.submission_id}.nii",
        two.key: f"SMIR.strokelens.{two.submission_id}.nii",
    }
    for key, path in result.masks.items():
        img = nib.load(path)
        np.testing.assert_array_equal(np.asarray(img.dataobj).transpose(2, 1, 0), masks[key])
        np.testing.assert_allclose(img.affine, one.affine)

    rows = {r["case"]: r for r in csv.DictReader(result.cases_csv.open())}
    assert rows[one.key]["status"] == "approved" and rows[one.key]["reviewer"] == "bob"
    assert rows[two.key]["status"] == "corrected" and rows[two.key]["reviewer"] == "ann"
    for case in (one, two):
        row = rows[case.key]
        assert float(row["core_ml"]) == pytest.approx(volume_ml(masks[case.key], case.spacing))
        hypo = hypoperfusion_mask(case.channels["Tmax"], case.channels["CT"])
        assert float(row["hypoperfusion_ml"]) == pytest.approx(volume_ml(hypo, case.spacing))
        assert row["mask_sha256"] == mask_sha256(masks[case.key]) and row["problem"] == ""

    metric_rows = list(csv.DictReader(result.metrics_csv.open()))
    assert {(r["case"], r["source"]) for r in metric_rows} == {
        (one.key, s) for s in ("all", "focal", "ce")
    }
    for r in metric_rows:
        expected = case_metrics(prediction.mask(r["source"]), masks[one.key], one.spacing)
        for name in METRICS:
            value = float(r[name]) if r[name] else math.nan
            assert value == pytest.approx(expected[name], nan_ok=True)

    manifest = read_manifest(result.manifest)
    assert [c.case for c in manifest.cases] == [one.key, two.key]
    for entry in manifest.cases:
        assert entry.voxel_sha256 == mask_sha256(masks[entry.case])
        assert entry.file_sha256 == file_sha256(result.out / entry.file)

    only = store.export(tmp_path / "approved", [Status.APPROVED], cache_root=tmp_path / "none")
    assert list(only.masks) == [one.key]
    assert only.notes and "no cached predictions" in only.notes[0]
    assert len(list(csv.DictReader(only.metrics_csv.open()))) == 0


def test_export_masks_command(tmp_path, dataset, store, capsys, monkeypatch):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    case = dataset.load("training/case_1")
    store.save_mask(case, blob(case.shape, 1), "ann")  # the writer keeps the project open
    out = tmp_path / "out"
    args = ["export-masks", "--project", str(store.path), "--out", str(out)]
    args += ["--cache", str(tmp_path / "cache")]
    assert cli_main(args) == 0
    assert (out / f"SMIR.strokelens.{case.submission_id}.nii").is_file()
    assert "exported 1 mask(s)" in capsys.readouterr().out
    assert cli_main([*args[:-2], "--status", "approved", "--out", str(tmp_path / "none")]) == 0
    assert read_manifest(tmp_path / "none" / "manifest.json").cases == []
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / schema.DB_NAME).write_bytes(b"not a database at all" * 10)
    assert cli_main(["export-masks", "--project", str(bad), "--out", str(out)]) == 1
    assert "project.sqlite" in capsys.readouterr().err
