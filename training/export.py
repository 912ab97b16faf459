"""Export a cross-validation ensemble for deployment: inference-only members, optionally fp16.

Exported members drop the auxiliary head (a training aid) and may store float16 tensors (half
the size; loading casts back to float32). The bundled demo ensemble is made this way. Member
files are named after the members, so each path is made with ``core.safepath.path_inside``.
The output folder is checked and locked as ``predict``'s is (``core.output.prepare_folders``),
and an export that would overwrite its own input (``--out`` the source ensemble's folder, where
the manifest and member names coincide) is refused before anything is written.
"""

from __future__ import annotations

from pathlib import Path

import torch

from strokelens.core.errors import OutputError
from strokelens.core.manifest import Manifest, Member, read_manifest
from strokelens.core.models import build_model
from strokelens.core.output import prepare_folders
from strokelens.core.safepath import path_inside
from strokelens.core.weights import load_weights, save_weights

#: meta keys that hold a path (``training.cv`` writes ``config`` and ``data``)
PATH_KEYS = ("config", "data", "exported_from")


def portable_meta(meta: dict, cwd: Path | None = None) -> dict:
    """``meta`` with each absolute path under ``PATH_KEYS`` made relative to ``cwd`` (default:
    the current folder) when inside it, else cut to its name: no builder's folder layout ships."""
    cwd = (cwd or Path.cwd()).resolve()
    out = dict(meta)
    for key in PATH_KEYS:
        value = out.get(key)
        if isinstance(value, str) and Path(value).is_absolute():
            path = Path(value)
            out[key] = path.relative_to(cwd).as_posix() if path.is_relative_to(cwd) else path.name
    return out


def export_ensemble(
    manifest_path: str | Path,
    out: str | Path,
    half: bool = True,
    allow_external_members: bool = False,
) -> Path:
    """Write ``out/ensemble.json`` and ``out/<member>.safetensors``; returns the manifest path.

    ``allow_external_members``: as for ``read_manifest``.
    """
    source = read_manifest(manifest_path, allow_external_members)
    out = Path(out)
    targets = [path_inside(out, f"{m.name}.safetensors") for m in source.members]
    manifest_out = path_inside(out, "ensemble.json")
    inputs = {source.path.resolve(), *(source.weights_path(m).resolve() for m in source.members)}
    for target in (*targets, manifest_out):
        if target.resolve() in inputs:
            raise OutputError(
                target, "is an input of this export (it would be overwritten); give another --out"
            )
    members = []
    with prepare_folders([out]):
        for m, target in zip(source.members, targets, strict=True):
            model, config, meta = load_weights(source.weights_path(m), sha256=m.sha256)
            config = {**config, "aux": False} if "aux" in config else config
            slim = build_model(config)
            state = {k: v for k, v in model.state_dict().items() if not k.startswith("aux.")}
            slim.load_state_dict(state)
            if half:
                slim = slim.to(torch.float16)
            member_meta = portable_meta({**meta, "exported_from": m.weights})
            sha = save_weights(slim, target, config, member_meta)
            members.append(Member(m.name, m.loss, m.fold, target.name, sha, m.val_dice))
        source_path = str(Path(manifest_path).resolve())
        meta = portable_meta({**source.meta, "exported_from": source_path, "fp16": half})
        return Manifest(source.name, members, source.preprocessing, meta=meta).save(manifest_out)
