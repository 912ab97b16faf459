"""Ensemble manifests round trip and reject broken files with the file named."""

from __future__ import annotations

import json

import pytest

from strokelens.core.errors import DataError
from strokelens.core.manifest import Manifest, Member, read_manifest
from strokelens.core.preprocessing import load_scaling


def _manifest(tmp_path) -> Manifest:
    members = []
    for loss in ("focal", "ce"):
        for fold in (1, 2):
            rel = f"{loss}/fold_{fold}/best.safetensors"
            (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
            (tmp_path / rel).write_bytes(b"x")
            members.append(Member(f"{loss}-fold{fold}", loss, fold, rel, "ab" * 32, 0.5))
    return Manifest("test", members, load_scaling(), meta={"data": "phantom"})


def test_round_trip(tmp_path):
    m = _manifest(tmp_path)
    m.save(tmp_path / "ensemble.json")
    back = read_manifest(tmp_path / "ensemble.json")
    assert back == m and back.meta == {"data": "phantom"}
    assert [x.name for x in back.by_loss("ce")] == ["ce-fold1", "ce-fold2"]
    assert back.weights_path(back.members[0]) == tmp_path / "focal/fold_1/best.safetensors"


@pytest.mark.parametrize(
    "edit,words",
    [
        (
            lambda d: d.update(format="other"),
            "format: Input should be 'strokelens-ensemble', not \"other\"",
        ),
        (lambda d: d.update(version=99), "version: version 99; this StrokeLens reads version 1"),
        (lambda d: d.update(members=[]), "members: List should have at least 1 item"),
        (
            lambda d: d["members"][0].update(weights="gone.safetensors"),
            "gone.safetensors not found",
        ),
        (lambda d: d["members"][0].pop("sha256"), "members\\[0\\].sha256: required, missing"),
    ],
)
def test_broken_manifests(tmp_path, edit, words):
    path = _manifest(tmp_path).save(tmp_path / "ensemble.json")
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))
    with pytest.raises(DataError, match=words) as info:
        read_manifest(path)
    assert info.value.path == path


def test_missing_and_garbage(tmp_path):
    with pytest.raises(DataError, match="not found"):
        read_manifest(tmp_path / "none.json")
    (tmp_path / "g.json").write_text("{")
    with pytest.raises(DataError, match="not a readable"):
        read_manifest(tmp_path / "g.json")
