"""Training configuration: a TOML file is the whole recipe (model, losses, schedule, augmentation).

``load_config("paper")`` reads ``resources/configs/paper.toml``; any other argument is a path.
The file is validated against its schema (``TrainFile``, through ``core.schema.load``): unknown
sections or keys, wrong types, zero or negative counts, non-finite rates and thread counts beyond
the CPUs are errors that name the file and the key, so a typo never silently falls back to a
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
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, Field, model_validator
from pydantic.dataclasses import dataclass as schema_dataclass

from strokelens.core.devices import check_threads
from strokelens.core.losses import LOSSES
from strokelens.core.models import resolve_config
from strokelens.core.schema import STRICT, Bool, Finite, Int, Positive, Str, load
from strokelens.resources import resource_path
from strokelens.training.augment import AugmentConfig

Count = Annotated[Int, Field(ge=1)]
NonNegative = Annotated[Int, Field(ge=0)]
Fraction = Annotated[Finite, Field(ge=0, le=1)]


def _threads(n: int) -> int:
    return n and check_threads(n)  # 0 = torch's default


@schema_dataclass(frozen=True, config=STRICT)
class Schedule:
    """The ``[train]`` table's schema."""

    batch_size: Count = 8  # 2D slices per batch; 3D models always take one volume
    max_epochs: Count = 200
    samples_per_epoch: NonNegative = 0  # 2D: slices drawn per epoch (0 = every slice once)
    stage1_epochs: NonNegative = 5  # new layers only (with pretrained weights); 0 = skip stage 1
    lr_stage1: Positive = 1e-2
    #: every BatchNorm keeps its running statistics (fine-tuning on a few cases: batches of 8
    #: slices give noisy statistics that the stored ones then no longer match)
    freeze_bn: Bool = False
    lr: Positive = 1e-4
    lr_patience: Count = 20  # epochs without validation-Dice improvement before lr x lr_factor
    lr_factor: Annotated[Finite, Field(gt=0, le=1)] = 0.1
    early_stop: Count = 50  # epochs without improvement before stopping
    amp: Bool = True  # mixed precision on CUDA
    seed: NonNegative = 0
    num_workers: NonNegative = 0
    threads: Annotated[Int, AfterValidator(_threads)] = 0  # torch CPU threads; 0 = torch's default


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


class _Pretrained(BaseModel):
    model_config = STRICT
    path: Str = ""


class _Focal(BaseModel):
    model_config = STRICT
    gamma: Annotated[Finite, Field(ge=0)] = 1.0
    alpha: Fraction | None = None


class _Weighted(BaseModel):
    model_config = STRICT
    w: Fraction | Literal["balanced"] = "balanced"


class _NoParams(BaseModel):
    model_config = STRICT


class _Losses(BaseModel):
    """``[loss]``: the losses to train and, per loss, ``[loss.<name>]`` keywords."""

    model_config = STRICT
    names: Annotated[list[Literal[tuple(LOSSES)]], Field(min_length=1)] = ["focal", "ce"]
    focal: _Focal | None = None
    ce: _NoParams | None = None
    wce: _Weighted | None = None

    @model_validator(mode="after")
    def _given_are_trained(self) -> _Losses:
        if len(set(self.names)) != len(self.names):
            raise ValueError(f"names {self.names} repeat a loss")
        for name in self.params():
            if name not in self.names:
                raise ValueError(f"[loss.{name}] given but {name!r} is not in names")
        return self

    def params(self) -> dict[str, dict[str, Any]]:
        """The keywords given per loss (only those given: defaults stay the loss's own)."""
        tables = {name: getattr(self, name, None) for name in LOSSES}
        return {k: t.model_dump(exclude_unset=True) for k, t in tables.items() if t is not None}


@schema_dataclass(frozen=True, config=STRICT)
class _Augment(AugmentConfig):
    enabled: Bool = True


class _Cv(BaseModel):
    model_config = STRICT
    folds: Annotated[Int, Field(ge=2, le=100)] = 5


class TrainFile(BaseModel):
    """The schema of a training config (TOML)."""

    model_config = STRICT
    model: Annotated[dict[str, Any], AfterValidator(resolve_config)]
    pretrained: _Pretrained = _Pretrained()
    loss: _Losses = _Losses()
    train: Schedule = Schedule()
    augment: _Augment = _Augment()
    cv: _Cv = _Cv()


def load_config(name_or_path: str | Path) -> TrainConfig:
    path = Path(name_or_path)
    if not path.suffix and not path.exists():
        path = resource_path("configs", f"{name_or_path}.toml")
    raw = load(path, TrainFile, "training config")
    pretrained = raw.pretrained.path
    if pretrained and not Path(pretrained).is_absolute():
        pretrained = str((path.parent / pretrained).resolve())
    augment = {k: v for k, v in asdict(raw.augment).items() if k != "enabled"}
    return TrainConfig(
        model=raw.model,
        losses=tuple(raw.loss.names),
        loss_params=raw.loss.params(),
        pretrained=pretrained,
        schedule=raw.train,
        augment=AugmentConfig(**augment) if raw.augment.enabled else None,
        folds=raw.cv.folds,
        source=str(path),
    )
