"""Retrain with corrections in the window (pytest-qt, offscreen, the real worker on a tiny
2-member version): the dialog lists the approved cases per patient and refuses to start without
them; a run draws its curves while the reviewer keeps editing; cancel ends the worker; promotion
asks first, then Run AI uses the new version while the old one's cached predictions stay its own.
"""

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from pathlib import Path

import numpy as np
import pytest
from helpers import make_ensemble, write_isles_case
from PySide6.QtCore import QSettings, Qt
from PySide6.QtWidgets import QMessageBox
from test_app_project import paint
from test_app_window import SHAPE_XYZ, run

from strokelens.app.main_window import MainWindow
from strokelens.app.model import Model
from strokelens.app.retrain_dialog import RetrainDialog
from strokelens.app.retrain_runner import Retraining
from strokelens.core.dataset import load_case, open_dataset
from strokelens.core.manifest import read_manifest
from strokelens.core.prediction_store import PredictionCache, manifest_fingerprint
from strokelens.core.project.store import ProjectStore
from strokelens.core.registry import DEFAULT_RATIO, Registry, VersionRecord, now, promotion_check

#: Patient of case_1 ... case_5.
PATIENTS = "AABCD"
#: A run of the tiny version on the tiny cases ends well within this (the machine is shared).
RUN_TIMEOUT_MS = 240_000


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """Five tiny ISLES training cases of four patients (A has two), all with ground truth."""
    root = tmp_path_factory.mktemp("isles")
    for k, patient in enumerate(PATIENTS, start=1):
        folder = root / "TRAINING" / f"case_{k}"
        write_isles_case(folder, SHAPE_XYZ, 345560 + 10 * k, patient=patient, seed=k)
    return root


@pytest.fixture
def registry(tmp_path, monkeypatch):
    """The user's registry (in a throw-away data folder, which the worker inherits) with a
    tiny 2-member version active."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    registry = Registry()
    built = make_ensemble(tmp_path / "built", losses=("focal", "ce")).parent
    name = registry.allocate()
    record = VersionRecord(
        version=name, parent="demo", created=now(), duration_s=0.0, project="-",
        members_trained=[], train_cases=[], heldout_cases=[], heldout_patients=[],
        before={}, after={}, recommend=True, config={},
    )  # fmt: skip
    registry.finish(name, built, record)
    registry.discard_staged(name)
    registry.promote(name)
    return registry


def approve(project: Path, dataset: Path, keys: list[str]) -> None:
    """Corrections of ``keys`` (their truth and a corner) saved and approved in the project."""
    refs = {ref.key: ref for ref in open_dataset(dataset)}
    with ProjectStore.open(project, dataset, create=True) as store:
        for key in keys:
            case = load_case(refs[key].folder)
            mask = case.mask.copy()
            mask[:, :3, :3] = 1
            store.save_mask(case, mask, "Dr Test", "test", "empty")
            store.approve(key, "Dr Test")


def new_window(qtbot, loop, tmp_path, cache=None):
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    window = MainWindow(
        Model(), settings, loop, project=tmp_path / "project", prediction_cache=cache
    )
    qtbot.addWidget(window)
    window.resize(1500, 900)
    window.show()
    return window


def open_dialog(loop, window, dataset) -> RetrainDialog:
    assert run(loop, window.cases.open_dataset(dataset))
    run(loop, window.tasks.idle())
    action = next(a for a in window.menus.in_order if a.text() == "&Retrain with corrections…")
    action.trigger()
    run(loop, window.tasks.idle())
    dialog = window.models.retrain_dialog
    assert dialog is not None and dialog.isVisible() and not dialog.isModal()
    return dialog


def rows(dialog) -> dict[str, tuple[str, str, bool]]:
    table = dialog.patients
    return {
        table.item(r, 0).text(): (
            table.item(r, 3).text(),
            table.item(r, 2).text(),
            table.item(r, 1).checkState() == Qt.CheckState.Checked,
        )
        for r in range(table.rowCount())
    }


def test_the_dialog_lists_approved_cases_per_patient_and_needs_one(
    qtbot, loop, tmp_path, dataset, registry
):
    window = new_window(qtbot, loop, tmp_path)
    dialog = open_dialog(loop, window, dataset)
    assert not dialog.start_button.isEnabled()  # nothing approved: nothing to start
    assert "No approved corrections" in dialog.why_not.text()
    assert [dialog.members.item(i).text() for i in range(2)] == ["focal-0", "ce-1"]
    dialog.close()

    paint(window)  # a correction of case_1 (patient A), approved in the window
    window.project.reviewer = "Dr Test"
    window.project_actions.approve()
    run(loop, window.tasks.idle())
    window.models.show_retrain()
    run(loop, window.tasks.idle())
    listed = rows(dialog)
    assert listed["A"] == ("1: training/case_1", "2", False)  # trains on it
    assert listed["B"][:2] == ("—", "1")
    # one approved patient: another one (with ground truth) judges, never trained on
    assert [p for p, row in listed.items() if row[2]] == ["B"]
    assert "training/case_3" in dialog.split.text()
    assert dialog.start_button.isEnabled() and not dialog.why_not.text()
    for i in range(2):
        dialog.members.item(i).setCheckState(Qt.CheckState.Unchecked)
    assert not dialog.start_button.isEnabled() and "member" in dialog.why_not.text()
    dialog.members.item(0).setCheckState(Qt.CheckState.Checked)
    assert dialog.start_button.isEnabled()
    # relative maps need the reference site's data: the originals from the parent's training
    assert dialog.originals.currentData() is None and not dialog.relative.isEnabled()
    assert not dialog.relative.isChecked()  # a greyed tick would say it applies
    assert dialog.spec().relative is False and dialog.spec().ratio == DEFAULT_RATIO
    dialog.originals.insertItem(0, "the active version's training data", tmp_path / "site-a")
    dialog.originals.setCurrentIndex(0)
    assert dialog.relative.isEnabled() and dialog.relative.isChecked()
    assert dialog.spec().relative and dialog.spec().originals_from == tmp_path / "site-a"
    dialog.ratio.setValue(0)  # corrections only: nothing mixed in, no reference site
    assert not dialog.relative.isEnabled() and not dialog.originals.isEnabled()
    assert dialog.spec().relative is False and dialog.spec().ratio is None
    assert not dialog.relative.isChecked()
    dialog.ratio.setValue(DEFAULT_RATIO)
    assert dialog.relative.isChecked()  # the default comes back with the reference data
    dialog.relative.click()  # the reviewer's choice outlives a detour
    dialog.ratio.setValue(0)
    dialog.ratio.setValue(DEFAULT_RATIO)
    assert not dialog.relative.isChecked() and dialog.spec().relative is False
    dialog.set_heldout("A", True)  # holding out the only approved patient leaves nothing
    assert not dialog.start_button.isEnabled() and "Every approved case" in dialog.why_not.text()
    assert dialog.spec() is None
    assert not dialog.retraining.runner.running  # approving never starts a run


@pytest.mark.heavy
def test_a_run_draws_curves_and_promotion_asks_then_run_ai_uses_it(
    qtbot, loop, tmp_path, dataset, registry, screenshot
):
    approve(
        tmp_path / "project", dataset, ["training/case_1", "training/case_2", "training/case_3"]
    )
    cache = PredictionCache(tmp_path / "cache")
    window = new_window(qtbot, loop, tmp_path, cache)
    old = run(loop, window.ai.ready())
    assert old == registry.active_manifest()  # Run AI follows the registry
    dialog = open_dialog(loop, window, dataset)
    assert rows(dialog)["A"][0] == "2: training/case_1, training/case_2"
    dialog.set_heldout("A", False)
    dialog.set_heldout("B", False)
    dialog.set_heldout("D", True)  # judged by patient D's ground truth
    dialog.budget.setValue(1)
    spec = dialog.spec()
    assert spec.heldout == ("training/case_5",) and spec.epochs == 1
    assert dialog.grab().save(screenshot("retrain-setup.png"))

    assert run(loop, window.ai.run(["training/case_4"]))  # a prediction of the old version
    run(loop, window.tasks.idle())
    dialog.start_button.click()
    qtbot.waitUntil(lambda: dialog.retraining.runner.running, timeout=5000)
    model = window.model
    run(loop, window.cases.show_case(1))  # the reviewer keeps working meanwhile
    qtbot.waitUntil(lambda: "training/case_2" in window.edit.masks)  # its approved correction
    approved = model.corrected["training/case_2"].copy()
    paint(window, 12, 12)
    assert not np.array_equal(model.corrected["training/case_2"], approved)
    assert dialog.retraining.runner.running
    qtbot.waitUntil(lambda: not dialog.retraining.runner.running, timeout=RUN_TIMEOUT_MS)
    run(loop, window.tasks.idle())
    for member in ("focal-0", "ce-1"):
        epochs, losses, _, dscs = dialog.curves.points(member)
        assert epochs == [1] and len(dscs) == 1 and np.isfinite(losses[0])
    table = dialog.results
    assert [table.item(r, 0).text() for r in range(table.rowCount())] == [
        "ensemble", "focal-0", "ce-1",
    ]  # fmt: skip
    version = dialog.version
    record = registry.record(version)
    assert table.item(0, 2).text() == f"{record.after['ensemble']:.3f}"
    recommended = dialog.verdict.text().startswith("Recommended")
    assert recommended is promotion_check(record.before, record.after, ["focal-0", "ce-1"])[0]
    assert dialog.promote_button.isEnabled() and version in registry.versions()
    assert dialog.grab().save(screenshot("retrain.png"))

    assert registry.active() != version  # nothing is promoted without asking
    dialog.promote_button.click()
    box = dialog.confirm_box
    assert box is not None and box.isVisible() and version in box.text()
    advised = QMessageBox.StandardButton.Yes if recommended else QMessageBox.StandardButton.No
    assert box.defaultButton() is box.button(advised)  # Enter follows the advice
    assert box.icon() == (QMessageBox.Icon.Question if recommended else QMessageBox.Icon.Warning)
    box.button(QMessageBox.StandardButton.No).click()
    run(loop, window.tasks.idle())
    assert registry.active() != version and window.ai.ensemble == old
    dialog.promote_button.click()
    dialog.confirm_box.button(QMessageBox.StandardButton.Yes).click()
    run(loop, window.tasks.idle())
    assert registry.active() == version
    new = registry.active_manifest()
    assert window.ai.ensemble == new and window.settings.value("ai/ensemble") == str(new)
    assert not dialog.promote_button.isEnabled()
    # the old version's prediction of case 4 is not passed off as the new one's
    assert "training/case_4" not in model.predictions and not model.predicted("training/case_4")

    assert run(loop, window.ai.run(["training/case_3"]))  # Run AI now uses the new version
    run(loop, window.tasks.idle())
    refs = [entry.ref for entry in model.entries]
    old_fp, new_fp = (manifest_fingerprint(read_manifest(m)) for m in (old, new))
    # (the engine process finishes the cache file's write after it answers)
    qtbot.waitUntil(lambda: set(cache.index(new_fp, refs)) == {"training/case_3"}, timeout=20_000)
    assert set(cache.index(old_fp, refs)) == {"training/case_4"}  # still the old version's
    # a rollback made elsewhere (AI > Model versions) offers the run's version again
    assert run(loop, dialog.retraining.activate(registry.history()[-1].previous))
    assert registry.active() != version and window.ai.ensemble == old
    assert dialog.promote_button.isEnabled() and version in dialog.promote_button.text()


@pytest.mark.heavy
def test_cancel_ends_the_worker_and_leaves_the_window_usable(
    qtbot, loop, tmp_path, dataset, registry
):
    approve(tmp_path / "project", dataset, ["training/case_1", "training/case_3"])
    window = new_window(qtbot, loop, tmp_path)
    dialog = open_dialog(loop, window, dataset)
    runner = dialog.retraining.runner
    starts = []
    runner.event.connect(lambda event: starts.append(event) if event.event == "start" else None)
    # Three epochs of one member: long enough that the cancel lands mid-run even when the
    # window is slow to hear of the start, short enough for the resume.
    dialog.budget.setValue(3)
    dialog.members.item(1).setCheckState(Qt.CheckState.Unchecked)
    assert dialog.spec().members == ("focal-0",)
    dialog.start_button.click()
    qtbot.waitUntil(lambda: bool(starts), timeout=RUN_TIMEOUT_MS)
    assert starts[0].members == ["focal-0"]
    pid = runner.pid
    assert dialog.cancel_button.isEnabled() and not dialog.patients.isEnabled()
    dialog.cancel_button.click()
    qtbot.waitUntil(lambda: not runner.running, timeout=30_000)
    run(loop, window.tasks.idle())  # the dialog's run ends too
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # ended (and reaped)
    version = starts[0].version
    assert dialog.progress.text().startswith("Cancelled") and version in dialog.progress.text()
    assert version in registry.staged()  # resumable
    assert dialog.start_button.isEnabled() and dialog.patients.isEnabled()
    assert dialog.resume_button.isEnabled()
    run(loop, window.cases.show_case(4))  # the window goes on as before
    run(loop, window.tasks.idle())
    paint(window)
    assert window.model.case.key == "training/case_5" and window.edit.has_edits()
    # as after a restart of the app: a new dialog finds the staged version in the registry
    retraining = Retraining(window.model, window.project, window.ai, window.tasks)
    again = RetrainDialog(retraining, window)
    qtbot.addWidget(again)
    again.refresh()
    run(loop, window.tasks.idle())
    assert again.resume_button.isEnabled() and again.resume_button.text() == f"Resume {version}"
    assert "not finished" in again.progress.text()
    retraining.runner.event.connect(
        lambda event: starts.append(event) if event.event == "start" else None
    )
    again.resume_button.click()  # the cancelled version goes on, with its own settings
    qtbot.waitUntil(lambda: retraining.runner.running, timeout=5000)
    qtbot.waitUntil(lambda: not retraining.runner.running, timeout=RUN_TIMEOUT_MS)
    run(loop, window.tasks.idle())
    assert [s.version for s in starts] == [version, version]
    assert version in registry.versions() and again.promote_button.isEnabled()
    assert version not in registry.staged()
    retraining.close()
