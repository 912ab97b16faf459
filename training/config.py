"""Training configuration: a TOML file is the whole recipe (model, losses, schedule, augmentation).

``load_config("paper")`` reads ``resources/configs/paper.toml``; any other argument is a path.
Unknown sections or keys are errors that name the file, so a typo never silently falls back to a
default. Sections::

    [model]        passed to strokelens.core.models.build_model (arch, backbone, aux, ...)
    [pretrained]   path = local ResNet/PSPNet weights for the two-stage transfer schedule ("" = none)
    [loss]         names = losses to train (cross-validation trains each); [loss.<name>] = its keywords
    [train]        batch size, epochs, learning rates, plateau and early-stop patience, seed, ...
    [augment]      the paper's augmentation ranges (training.augment.AugmentConfig)
    [cv]           folds
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from strokelens.core.errors import DataError
from strokelens.core.files import read_text
from strokelens.core.losses import LOSSES
from strokelens.core.models import resolve_config
from strokelens.resources import resource_path
from strokelens.training.augment import AugmentConfig


@dataclass(frozen=True)
class Schedule:
    batch_size: int = 8  # 2D slices per batch; 3D models always take one volume
    max_epochs: int = 200
    samples_per_epoch: int = 0  # 2D: slices drawn per epoch (0 = every slice once)
    stage1_epochs: int = 5  # new layers only (with pretrained weights); 0 = skip stage 1
    lr_stage1: float = 1e-2
    lr: float = 1e-4
    lr_patience: int = 20  # epochs without validation-Dice improvement before lr x lr_factor
    lr_factor: float = 0.1
    early_stop: int = 50  # epochs without improvement before stopping
    amp: bool = True  # mixed precision on CUDA
    seed: int = 0
    num_workers: int = 0
    threads: int = 0  # torch CPU threads; 0 = torch's default


@dataclass(frozen=True)
class TrainConfig:
    model: dict[str, Any]
    losses: tuple[str, ...] = ("focal", "ce")
    loss_params: dict[str, dict[str, Any]] = field(default_factory=dict)
    pretrained: str = ""
    schedule: Schedule = Schedule()
    augment: AugmentConfig | None = AugmentConfig()
    folds: int = 5
    source: str = ""  # where it was read from

    def digest(self) -> str:
        """Hash of everything that changes training results (resume refuses another config)."""
        data = asdict(self)
        data.pop("source")
        return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[
            :16
        ]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _take(path: Path, section: str, table: dict, cls) -> Any:
    names = {f.name for f in fields(cls)}
    unknown = sorted(set(table) - names)
    if unknown:
        raise DataError(path, f"[{section}] has unknown keys {unknown}; allowed: {sorted(names)}")
    try:
        values = {k: tuple(v) if isinstance(v, list) else v for k, v in table.items()}
        return cls(**values)
    except TypeError as exc:
        raise DataError(path, f"[{section}]: {exc}") from exc


def load_config(name_or_path: str | Path) -> TrainConfig:
    path = Path(name_or_path)
    if not path.suffix and not path.exists():
        path = resource_path("configs", f"{name_or_path}.toml")
    try:
        raw = tomllib.loads(read_text(path, "training config"))
    except tomllib.TOMLDecodeError as exc:
        raise DataError(path, f"not a readable TOML config ({exc})") from exc
    unknown = sorted(set(raw) - {"model", "pretrained", "loss", "train", "augment", "cv"})
    if unknown:
        raise DataError(path, f"unknown sections {unknown}")
    try:
        model = resolve_config(raw.get("model", {}))
    except ValueError as exc:
        raise DataError(path, f"[model]: {exc}") from exc
    loss = dict(raw.get("loss", {}))
    names = loss.pop("names", ["focal", "ce"])
    # Loss names become run folders (``RUN/<loss>/``) and manifest fields: only known ones.
    if not isinstance(names, list) or not names or any(n not in LOSSES for n in names):
        raise DataError(path, f"[loss] names must be a list of {sorted(LOSSES)}, not {names!r}")
    augment = raw.get("augment", {})
    enabled = augment.pop("enabled", True) if isinstance(augment, dict) else True
    pretrained = str(raw.get("pretrained", {}).get("path", ""))
    if pretrained and not Path(pretrained).is_absolute():
        pretrained = str((path.parent / pretrained).resolve())
    config = TrainConfig(
        model=model,
        losses=tuple(names),
        loss_params={k: dict(v) for k, v in loss.items()},
        pretrained=pretrained,
        schedule=_take(path, "train", raw.get("train", {}), Schedule),
        augment=_take(path, "augment", augment, AugmentConfig) if enabled else None,
        folds=int(raw.get("cv", {}).get("folds", 5)),
        source=str(path),
    )
    for loss_name in config.loss_params:
        if loss_name not in config.losses:
            raise DataError(path, f"[loss.{loss_name}] given but {loss_name!r} is not in names")
    return config
