"""Exported ensembles: no auxiliary head, fp16 storage, same predictions within fp16 rounding."""

from __future__ import annotations

import torch

from strokelens.core.manifest import Manifest, Member, read_manifest
from strokelens.core.models import build_model
from strokelens.core.preprocessing import load_scaling
from strokelens.core.weights import load_weights, save_weights
from strokelens.training.export import export_ensemble

CONFIG = {"arch": "pspnet", "backbone": "resnet18", "width": 16, "aux": True}


def test_export_drops_aux_and_halves(tmp_path):
    torch.manual_seed(0)
    members = []
    for loss in ("focal", "ce"):
        model = build_model(CONFIG)
        sha = save_weights(model, tmp_path / f"{loss}.safetensors", CONFIG, {"loss": loss})
        members.append(Member(f"{loss}-fold1", loss, 1, f"{loss}.safetensors", sha, 0.5))
    Manifest("t", members, load_scaling()).save(tmp_path / "ensemble.json")

    path = export_ensemble(tmp_path / "ensemble.json", tmp_path / "out")
    exported = read_manifest(path)
    assert [m.name for m in exported.members] == ["focal-fold1", "ce-fold1"]
    x = torch.rand(2, 5, 40, 40)
    for src, dst in zip(members, exported.members, strict=True):
        original, _, _ = load_weights(tmp_path / src.weights)
        slim, config, meta = load_weights(exported.weights_path(dst), sha256=dst.sha256)
        assert config["aux"] is False and slim.aux is None and meta["loss"] == src.loss
        assert next(slim.parameters()).dtype == torch.float32  # cast back on load
        with torch.no_grad():
            torch.testing.assert_close(slim(x), original(x), atol=2e-2, rtol=1e-2)
        size_in = (tmp_path / src.weights).stat().st_size
        assert exported.weights_path(dst).stat().st_size < 0.6 * size_in
