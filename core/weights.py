"""Model weights on disk: self-describing safetensors files, and pretrained weights.

A StrokeLens weight file is safetensors (tensors only, nothing unpickled) whose string metadata
holds ``strokelens_weights`` (format version), ``config`` (the resolved model configuration,
JSON) and ``meta`` (training facts, JSON), so ``load_weights`` rebuilds the network from the file
alone. The file's sha256 is returned when saving and can be checked when loading, so an ensemble
or a result can name exactly the weights it used.

``load_pretrained`` fills a model from a local file that was written for another purpose: a
torchvision ResNet state dict (``.pth``, read with ``weights_only=True``, or safetensors) goes
into a PSPNet's backbone, a full PSPNet checkpoint (StrokeLens', or hszhao/semseg's with its
``module.`` prefix and ``layer0`` stem) into the whole net. Tensors whose shapes differ (e.g. a
21-class VOC head against our 1-logit one) are skipped and reported. The returned report names
what was loaded, which ``split_pretrained_parameters`` turns into the paper's two stages: first
train only the new layers, then everything.
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import safetensors
import safetensors.torch
import torch
from pydantic import BaseModel, BeforeValidator
from torch import nn

from strokelens.core.errors import DataError
from strokelens.core.files import check_regular, open_regular
from strokelens.core.models import build_model, resolve_config
from strokelens.core.schema import STRICT, Str, json_text, validate
from strokelens.core.writer import atomic_write_bytes

#: Version of the metadata layout, stored under this key.
FORMAT_KEY = "strokelens_weights"
FORMAT_VERSION = "1"


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file's bytes."""
    path = Path(path)
    try:
        with open_regular(path, "weight file") as f:
            return hashlib.file_digest(f, "sha256").hexdigest()
    except OSError as e:
        raise DataError(path, f"cannot read: {e.strerror or e}") from e


def save_weights(
    model: nn.Module, path: str | Path, config: dict[str, Any], meta: dict[str, Any] | None = None
) -> str:
    """Write ``model``'s state with ``config`` and JSON-able ``meta``; returns the file's sha256.

    Raises ValueError when the model does not have the state ``config`` builds (the file could
    not be loaded back).
    """
    resolved = resolve_config(config)
    with torch.device("meta"):
        expected = {k: v.shape for k, v in build_model(resolved).state_dict().items()}
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    if {k: v.shape for k, v in state.items()} != expected:
        raise ValueError(f"model state does not match the configuration {resolved}")
    metadata = {
        FORMAT_KEY: FORMAT_VERSION,
        "config": json.dumps(resolved, sort_keys=True),
        "meta": json.dumps(meta or {}, sort_keys=True),
    }
    blob = safetensors.torch.save(state, metadata=metadata)
    atomic_write_bytes(path, blob)
    return hashlib.sha256(blob).hexdigest()


def read_metadata(path: str | Path) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(config, meta)`` of a weight file, reading only its header."""
    path = Path(path)
    check_regular(path, "weight file")
    try:
        with safetensors.safe_open(path, framework="pt") as f:
            metadata = f.metadata() or {}
    except Exception as e:  # safetensors raises its own error types for bad headers
        raise DataError(path, f"not a safetensors file ({e})") from e
    if FORMAT_KEY not in metadata or "config" not in metadata:
        raise DataError(path, "not a StrokeLens weight file (no model configuration inside)")
    fields = validate(metadata, _Metadata, path)
    try:
        config = resolve_config(fields.config)
    except ValueError as e:
        raise DataError(path, f"bad model configuration inside: {e}") from e
    return config, fields.meta


#: A JSON object held as text in the safetensors metadata (parsed with ``schema``'s depth limit).
_JsonObject = Annotated[dict[Str, Any], BeforeValidator(json_text)]


class _Metadata(BaseModel):
    """The schema of a weight file's metadata (safetensors holds strings only)."""

    model_config = STRICT
    strokelens_weights: Literal[FORMAT_VERSION]
    config: _JsonObject  # its keys and types are ``resolve_config``'s to check
    meta: _JsonObject = {}


def load_weights(
    path: str | Path, sha256: str | None = None, device: str | torch.device = "cpu"
) -> tuple[nn.Module, dict[str, Any], dict[str, Any]]:
    """``(model in eval mode, config, meta)`` from a weight file; ``sha256`` is checked if given."""
    path = Path(path)
    if sha256 is not None and file_sha256(path) != sha256.lower():
        raise DataError(path, f"sha256 differs from the expected {sha256}")
    config, meta = read_metadata(path)
    with torch.device("meta"):  # no random initialisation: every tensor comes from the file
        model = build_model(config)
    try:
        state = safetensors.torch.load_file(path)
        # Fresh float32 copies: the loaded tensors are views into one file buffer, whose
        # alignment can change which kernels run (and so the last bits of the outputs).
        own = {
            k: v.to(torch.float32 if v.is_floating_point() else v.dtype, copy=True)
            for k, v in state.items()
        }
        model.load_state_dict(own, assign=True)
    except Exception as e:  # truncated data or tensors not matching the stored config
        raise DataError(path, f"weights do not fit the stored configuration: {e}") from e
    return model.to(device).eval(), config, meta


@dataclass
class LoadReport:
    """What ``load_pretrained`` took from a file (keys are the model's state-dict keys)."""

    path: Path
    loaded: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)  # left as initialised: the new layers
    unexpected: list[str] = field(default_factory=list)  # file keys with no place in the model
    mismatched: list[str] = field(default_factory=list)  # "key: file shape vs model shape"

    def summary(self) -> str:
        def groups(keys: list[str]) -> str:
            counts = Counter(k.split(".")[0] for k in keys)
            return ", ".join(f"{g} ({n})" for g, n in counts.items()) or "none"

        lines = [
            f"{self.path.name}: loaded {len(self.loaded)} tensors",
            f"missing (kept initial values): {groups(self.missing)}",
            f"unexpected (ignored): {groups(self.unexpected)}",
        ]
        lines += [f"shape mismatch, skipped: {m}" for m in self.mismatched]
        return "\n".join(lines)


#: hszhao/semseg's PSPNet stem ``layer0.<i>`` -> its ResNet's module names.
_SEMSEG_STEM = {"0": "conv1", "1": "bn1", "3": "conv2", "4": "bn2", "6": "conv3", "7": "bn3"}


def _model_key(key: str, targets: dict[str, torch.Tensor]) -> str | None:
    """The model key a checkpoint key belongs to, or None."""
    key = key.removeprefix("module.")
    if key.startswith("layer0."):
        _, index, rest = key.split(".", 2)
        key = f"{_SEMSEG_STEM.get(index, 'layer0.' + index)}.{rest}"
    for candidate in (key, f"backbone.{key}"):
        if candidate in targets:
            return candidate
    return None


def _read_state_dict(path: Path) -> dict[str, torch.Tensor]:
    check_regular(path, "pretrained weight file")
    try:
        if path.suffix == ".safetensors":
            state: Any = safetensors.torch.load_file(path)
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle, zip and safetensors errors alike: the file is unusable
        raise DataError(path, f"cannot read weights ({e})") from e
    for wrapper in ("state_dict", "model"):
        if isinstance(state, dict) and isinstance(state.get(wrapper), dict):
            state = state[wrapper]
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise DataError(path, "no state dict (name -> tensor) inside")
    return state


def load_pretrained(model: nn.Module, path: str | Path) -> LoadReport:
    """Copy the tensors of a local checkpoint that fit ``model`` into it; report the rest."""
    path = Path(path)
    state = _read_state_dict(path)
    targets = model.state_dict()
    report = LoadReport(path)
    with torch.no_grad():
        for key, tensor in state.items():
            target_key = _model_key(key, targets)
            if target_key is None:
                report.unexpected.append(key)
            elif targets[target_key].shape != tensor.shape:
                shapes = f"file {tuple(tensor.shape)} vs model {tuple(targets[target_key].shape)}"
                report.mismatched.append(f"{target_key}: {shapes}")
            else:
                targets[target_key].copy_(tensor)
                report.loaded.append(target_key)
    if not report.loaded:
        raise DataError(path, "no tensor in the file fits the model")
    done = set(report.loaded)
    report.missing = [k for k in targets if k not in done]
    return report


def split_pretrained_parameters(
    model: nn.Module, loaded_keys: list[str]
) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """``(pretrained, new)`` parameters: stage 1 trains ``new`` only, stage 2 all of them."""
    loaded = set(loaded_keys)
    pretrained, new = [], []
    for name, param in model.named_parameters():
        (pretrained if name in loaded else new).append(param)
    return pretrained, new
