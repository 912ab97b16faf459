"""AI ▸ Model versions in the window (pytest-qt, offscreen): the registry's versions with what
they were trained on and measured, promotion and rollback asked first, and Run AI following."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest
from helpers import make_ensemble
from PySide6.QtCore import QSettings
from PySide6.QtWidgets import QMessageBox

from strokelens.app.main_window import MainWindow
from strokelens.app.model import Model
from strokelens.app.versions_dialog import ACTIVE_MARK, COLUMNS, VersionsDialog
from strokelens.core.registry import BASE, CaseEntry, Registry, VersionRecord, now


def run(loop, coroutine):
    return loop.run_until_complete(coroutine)


def add_version(registry: Registry, tmp_path, before: float, after: float) -> str:
    """A finished version trained on 2 corrections and 1 original case, judged on 2 cases."""
    built = make_ensemble(tmp_path / f"built-{before}-{after}", losses=("focal", "ce")).parent
    name = registry.allocate()
    sha = "0" * 64
    record = VersionRecord(
        version=name, parent=registry.active(), created=now(), duration_s=12.0, project="/p",
        members_trained=["focal-0"],
        train_cases=[
            CaseEntry(key="training/case_1", source="correction", mask_sha256=sha),
            CaseEntry(key="training/case_2", source="correction", mask_sha256=sha),
            CaseEntry(key="original:training/case_9", source="original"),
        ],
        heldout_cases=["training/case_3", "training/case_4"], heldout_patients=["C"],
        before={"ensemble": before, "focal-0": before}, after={"ensemble": after, "focal-0": after},
        recommend=after >= before, config={"epochs": 6, "lr": 2e-6},
    )  # fmt: skip
    registry.finish(name, built, record)
    registry.discard_staged(name)
    return name


@pytest.fixture
def registry(tmp_path, monkeypatch):
    """The user's registry (throw-away data folder): the demo base, v0002 (better, active) and
    v0003 (worse, never promoted)."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    registry = Registry()
    registry.promote(add_version(registry, tmp_path, 0.70, 0.74))
    add_version(registry, tmp_path, 0.74, 0.71)
    return registry


def cells(dialog: VersionsDialog) -> dict[str, dict[str, str]]:
    table = dialog.table
    return {
        table.item(r, 1).text(): {c: table.item(r, i).text() for i, c in enumerate(COLUMNS)}
        for r in range(table.rowCount())
    }


def select(dialog: VersionsDialog, name: str) -> None:
    dialog.table.selectRow(next(r for r, v in enumerate(dialog.versions) if v.name == name))


def answer(loop, window, dialog: VersionsDialog, button: QMessageBox.StandardButton) -> str:
    """Press Make active, answer the question with ``button``; the question's text."""
    dialog.activate_button.click()
    box = dialog.confirm_box
    assert box is not None and box.isVisible()
    text = box.text()
    box.button(button).click()
    run(loop, window.tasks.idle())
    return text


def test_versions_list_and_switching_asks_then_run_ai_follows(
    qtbot, loop, tmp_path, registry, screenshot
):
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    window = MainWindow(Model(), settings, loop, project=tmp_path / "project")
    qtbot.addWidget(window)
    window.show()
    assert run(loop, window.ai.ready()) == registry.manifest_path("v0002")
    action = next(a for a in window.menus.in_order if a.text() == "Model &versions…")
    action.trigger()
    run(loop, window.tasks.idle())
    dialog = window.models.versions_dialog
    assert dialog is not None and dialog.isVisible() and not dialog.isModal()

    rows = cells(dialog)
    assert list(rows) == [BASE, "v0002", "v0003"]
    assert [r[""] for r in rows.values()] == ["", ACTIVE_MARK, ""]
    assert rows["v0002"]["Held-out DSC"] == "0.700 → 0.740 (+0.040)"
    assert rows["v0003"]["Held-out DSC"] == "0.740 → 0.710 (-0.030)"
    assert rows["v0003"]["Advice"] == "not recommended" and rows["v0002"]["Advice"] == "recommended"
    assert rows["v0002"]["Trained on"] == "2 correction(s) + 1 original"
    assert rows["v0002"]["Judged on"] == "2 case(s), 1 patient(s)"
    assert rows["v0003"]["Parent"] == "v0002" and rows["v0003"]["Created"].endswith(" UTC")
    # the active version is selected: nothing to switch to
    assert dialog.selected().name == "v0002" and not dialog.activate_button.isEnabled()
    assert "focal-0" in dialog.about.text() and "epochs 6" in dialog.about.text()
    dialog.resize(1000, 300)
    assert dialog.grab().save(screenshot("model-versions.png"))

    select(dialog, "v0003")
    assert dialog.activate_button.isEnabled()
    text = answer(loop, window, dialog, QMessageBox.StandardButton.No)
    assert text.startswith("Promote v0003?") and "not recommended" in text
    assert registry.active() == "v0002"  # no: nothing changed
    select(dialog, "v0003")
    answer(loop, window, dialog, QMessageBox.StandardButton.Yes)
    assert registry.active() == "v0003" and window.ai.ensemble == registry.manifest_path("v0003")
    assert cells(dialog)["v0003"][""] == ACTIVE_MARK  # read again after the switch

    select(dialog, BASE)
    text = answer(loop, window, dialog, QMessageBox.StandardButton.Yes)
    assert text.startswith(f"Roll back to {BASE}?") and "instead of v0003" in text
    assert registry.active() == BASE and window.ai.ensemble == registry.active_manifest()
    assert [(h.action, h.version) for h in registry.history()][-2:] == [
        ("promote", "v0003"),
        ("rollback", BASE),
    ]
    assert cells(dialog)[BASE][""] == ACTIVE_MARK


def test_an_unreadable_registry_is_said_not_raised(qtbot, loop, tmp_path, registry):
    """A record broken on disk: the dialog says which and offers no switch."""
    (registry.version_dir("v0003") / "version.json").write_text("{not json")
    settings = QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)
    window = MainWindow(Model(), settings, loop, project=tmp_path / "project")
    qtbot.addWidget(window)
    window.models.show_versions()
    run(loop, window.tasks.idle())
    dialog = window.models.versions_dialog
    assert "cannot be read" in dialog.about.text() and "version.json" in dialog.about.text()
    assert dialog.table.rowCount() == 0 and not dialog.activate_button.isEnabled()
