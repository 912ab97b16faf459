"""The model registry: version names, the atomic active pointer, history, corrupt files."""

from __future__ import annotations

import json
import shutil

import pytest

from strokelens.app.ai_session import default_ensemble
from strokelens.app.cli import main
from strokelens.core.errors import DataError
from strokelens.core.registry import (
    BASE,
    CaseEntry,
    Registry,
    RegistryError,
    VersionRecord,
    check_version,
)


def _record(name: str, parent: str = BASE) -> VersionRecord:
    return VersionRecord(
        version=name,
        parent=parent,
        created="2026-01-01T00:00:00+00:00",
        duration_s=1.0,
        project="/p",
        members_trained=["focal-0"],
        train_cases=[CaseEntry(key="training/case_1", source="correction", mask_sha256="a" * 64)],
        heldout_cases=["training/case_5"],
        heldout_patients=["P3"],
        before={"ensemble": 0.5},
        after={"ensemble": 0.6},
        recommend=True,
        config={},
    )


def _version(reg: Registry, ensemble) -> str:
    """A finished version holding a copy of ``ensemble`` (the way a retrain hands one over)."""
    name = reg.allocate()
    built = reg.staging_dir(name) / "built"
    shutil.copytree(ensemble.parent, built)
    reg.finish(name, built, _record(name, reg.active()))
    reg.discard_staged(name)
    return name


def test_activate_promotes_a_newer_version_and_rolls_back_to_an_older_one(tmp_path, ensemble):
    reg = Registry(tmp_path / "models", base=ensemble)
    v2, v3 = _version(reg, ensemble), _version(reg, ensemble)
    assert reg.activate(v3) == BASE and reg.activate(v2) == v3 and reg.activate(BASE) == v2
    assert [(h.action, h.version) for h in reg.history()] == [
        ("promote", v3),
        ("rollback", v2),
        ("rollback", BASE),
    ]
    with pytest.raises(RegistryError):
        reg.activate("v0099")  # no such version: the pointer stays
    assert reg.active() == BASE


@pytest.mark.parametrize(
    "name", ["../v0002", "v2", "v0002/..", "V0002", "v0002 ", "", "demo2", "/tmp", None, 7]
)
def test_bad_version_names_are_refused_before_any_path(tmp_path, name):
    with pytest.raises(ValueError):
        check_version(name)
    reg = Registry(tmp_path / "models")
    with pytest.raises(RegistryError, match="no version name"):
        reg.promote(name)
    assert not (tmp_path / "models" / "active.json").exists()


def test_promote_rollback_and_history(tmp_path, ensemble):
    reg = Registry(tmp_path / "models", base=ensemble)
    assert reg.active() == BASE and reg.active_manifest() == ensemble
    v2 = _version(reg, ensemble)
    v3 = _version(reg, ensemble)
    assert (v2, v3) == ("v0002", "v0003") and reg.staged() == []
    assert [r.name for r in reg.list()] == [BASE, v2, v3]
    assert reg.record(v3).parent == BASE
    assert reg.promote(v3) == BASE
    assert reg.active_manifest() == tmp_path / "models" / "versions" / v3 / "ensemble.json"
    with pytest.raises(RegistryError, match="not earlier"):
        reg.rollback(v3)
    assert reg.rollback(v2) == v3
    assert reg.rollback(BASE) == v2
    assert [(h.action, h.version, h.previous) for h in reg.history()] == [
        ("promote", v3, BASE),
        ("rollback", v2, v3),
        ("rollback", BASE, v2),
    ]
    with pytest.raises(RegistryError, match="no version v0009"):
        reg.promote("v0009")
    # The pointer is one file, replaced whole: no temporary file is left beside it.
    assert sorted(p.name for p in reg.root.iterdir()) == [
        "active.json",
        "registry.lock",
        "staging",
        "versions",
    ]


def test_a_staged_version_is_never_listed_nor_promotable(tmp_path, ensemble):
    reg = Registry(tmp_path / "models", base=ensemble)
    name = reg.allocate()
    shutil.copytree(ensemble.parent, reg.staging_dir(name) / "built")  # killed before finish
    assert reg.staged() == [name] and reg.versions() == []
    with pytest.raises(RegistryError, match=f"no version {name}"):
        reg.promote(name)
    assert reg.allocate() == "v0003"  # a staged name is taken


def test_corrupt_pointer_and_record_are_clear_errors(tmp_path, ensemble, caplog):
    reg = Registry(tmp_path / "models", base=ensemble)
    name = _version(reg, ensemble)
    reg.promote(name)
    record = reg.version_dir(name) / "version.json"
    data = json.loads(record.read_text())
    record.write_text(json.dumps({**data, "after": {"ensemble": 1.5}}))
    with pytest.raises(DataError, match=r"version\.json.*after\.ensemble"):
        reg.record(name)
    record.write_text(json.dumps({**data, "version": "v0042"}))
    with pytest.raises(DataError, match="lies in folder v0002"):
        reg.record(name)
    pointer = reg.root / "active.json"
    pointer.write_text('{"format": "strokelens-registry", "version": 1, "active": "../../etc"}')
    with pytest.raises(DataError, match=r"active\.json.*active"):
        reg.active()
    # The workstation does not fail on a broken registry: it falls back to the demo, and says so.
    from strokelens.core.demo import DEMO_MANIFEST

    assert default_ensemble(None, None, reg) == DEMO_MANIFEST
    assert "model registry" in caplog.text
    pointer.write_text(json.dumps({"format": "strokelens-registry", "version": 1, "active": name}))
    shutil.rmtree(reg.version_dir(name))
    with pytest.raises(DataError, match="names version v0002, which is missing"):
        reg.active_manifest()


def test_the_base_training_data_is_known_for_the_demo_base_only(tmp_path, ensemble, monkeypatch):
    from strokelens.core import demo

    folder = tmp_path / "demo"
    monkeypatch.setattr("strokelens.core.registry.demo_folder", lambda: folder)
    assert Registry(tmp_path / "m").base_training_data() is None  # no demo data yet
    (folder / "TRAINING").mkdir(parents=True)
    (folder / "TESTING").mkdir()
    assert Registry(tmp_path / "m").base_training_data() == folder / "TRAINING"
    assert Registry(tmp_path / "m", base=ensemble).base_training_data() is None
    assert demo.DEMO_MANIFEST.is_file()


def test_default_ensemble_follows_the_active_version(tmp_path, ensemble):
    reg = Registry(tmp_path / "models", base=ensemble)
    name = _version(reg, ensemble)
    assert default_ensemble(None, None, reg) == ensemble
    reg.promote(name)
    active = reg.active_manifest()
    assert default_ensemble(None, None, reg) == active
    # A remembered registry version gives way to the active one; another manifest does not.
    assert default_ensemble(None, str(ensemble), reg) == active
    other = tmp_path / "mine" / "ensemble.json"
    assert default_ensemble(None, str(other), reg) == other
    assert default_ensemble(other, None, reg) == other


def test_models_command(tmp_path, ensemble, capsys):
    reg = Registry(tmp_path / "models", base=ensemble)
    name = _version(reg, ensemble)
    root = ["--registry", str(reg.root)]
    staged = reg.allocate()  # a retrain started and not finished
    assert main(["models", "list", *root]) == 0
    listed = capsys.readouterr().out
    assert "v0002" in listed and f"--resume {staged}" in listed and "unfinished" in listed
    assert main(["models", "promote", name, *root]) == 0
    assert reg.active() == name
    assert capsys.readouterr().out == "active version: v0002 (was demo)\n"
    assert main(["models", "show", name, *root]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["active"] and shown["record"]["after"] == {"ensemble": 0.6}
    assert main(["models", "rollback", BASE, *root]) == 0
    assert reg.active() == BASE
    for bad in (["promote", "../x"], ["rollback", "v0002"], ["show"], ["promote", "v0077"]):
        assert main(["models", *bad, *root]) == 1
        assert "error:" in capsys.readouterr().err


def test_a_write_that_fails_leaves_the_pointer_and_versions_as_they_were(
    tmp_path, ensemble, monkeypatch
):
    reg = Registry(tmp_path / "models", base=ensemble)
    v2 = _version(reg, ensemble)
    reg.promote(v2)
    name = reg.allocate()
    built = reg.staging_dir(name) / "built"
    shutil.copytree(ensemble.parent, built)
    before = (reg.root / "active.json").read_bytes()

    def power_cut(*_args):
        raise OSError("disk gone")

    monkeypatch.setattr("strokelens.core.writer.os.replace", power_cut)
    with pytest.raises(OSError):
        reg.promote(BASE)
    with pytest.raises(OSError):  # the record cannot be written: the version never appears
        reg.finish(name, built, _record(name))
    monkeypatch.undo()
    assert (reg.root / "active.json").read_bytes() == before and reg.active() == v2
    assert reg.versions() == [v2] and reg.staged() == [name]
    assert not [p for p in reg.root.rglob(".*.tmp*")]
