"""Training one model on one split: the paper's schedule, resumable, DDP-aware.

Schedule: RMSProp; with pretrained weights first ``stage1_epochs`` epochs train only the new
layers at ``lr_stage1`` (pretrained weights frozen, their BatchNorm statistics too), then all
layers at ``lr``; with ``freeze_bn`` every BatchNorm keeps its running statistics throughout
(the fine-tune on a few corrections). The learning rate drops by ``lr_factor`` after
``lr_patience`` epochs without a better validation Dice; training stops after ``early_stop``
such epochs or ``max_epochs``.
Validation Dice is the mean over validation cases of each case's 3D Dice (threshold 0.5).

Reproducibility: every random draw of epoch ``e`` (shuffle, augmentation, dropout) comes from
seeds derived from ``(seed, e)``, so a run killed at any point and resumed from its last
checkpoint (written atomically after every epoch) ends with the same weights as an uninterrupted
one (CPU; CUDA kernels may be non-deterministic).

Files in the output folder: ``checkpoint.pt`` (latest state, ``weights_only`` loadable),
``best.safetensors`` (best weights + metadata), ``log.jsonl`` (one line per epoch),
``result.json`` (written when training ends).
"""

from __future__ import annotations

import io
import json
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import torch
import torch.distributed as dist
from pydantic import BaseModel, ConfigDict, Field
from pydantic.dataclasses import dataclass as schema_dataclass
from torch import nn

from strokelens.core.devices import set_threads
from strokelens.core.errors import DataError
from strokelens.core.losses import balancing_weight, get_loss
from strokelens.core.metrics import slice_dice
from strokelens.core.models import AUX_LOSS_WEIGHT, build_model, is_3d
from strokelens.core.schema import STRICT, Finite, Int, Str, load, validate
from strokelens.core.weights import load_pretrained, save_weights, split_pretrained_parameters
from strokelens.core.writer import atomic_write, atomic_write_bytes
from strokelens.training.augment import augment
from strokelens.training.cache import CacheReader
from strokelens.training.config import NonNegative, TrainConfig
from strokelens.training.data import SliceDataset, VolumeDataset

CHECKPOINT = "checkpoint.pt"
BEST = "best.safetensors"
LOG = "log.jsonl"
RESULT = "result.json"


@schema_dataclass(config=STRICT)
class FitResult:
    """How a fit ended; also the schema of ``result.json`` (resume reads it back)."""

    loss: Str
    best_dice: Finite
    best_epoch: NonNegative
    epochs: NonNegative
    stopped: Literal["early_stop", "max_epochs"]
    weights: Str


@schema_dataclass(config=STRICT)
class _State:
    """Everything besides tensors that a checkpoint restores."""

    epoch: NonNegative = 0  # epochs completed
    best_dice: Finite = -1.0
    best_epoch: NonNegative = 0
    since_best: NonNegative = 0  # epochs without improvement (early stop)
    since_change: NonNegative = 0  # epochs without improvement since the last lr change
    lr: Annotated[Finite, Field(ge=0)] = 0.0


class _Checkpoint(BaseModel):
    """The schema of ``checkpoint.pt`` (a ``weights_only`` torch file): the tensors' dicts are
    checked by ``load_state_dict``, the rest here."""

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)
    model: dict[Str, torch.Tensor]
    optimizer: dict[Str, Any]
    state: _State
    stage: Annotated[Int, Field(ge=0, le=2)]
    config: Str
    loss: Str


def read_result(path: Path) -> FitResult:
    """A finished fit's ``result.json``; a DataError naming the file when it is malformed."""
    return load(path, FitResult, "training result")


def _rank() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def pick_device(name: str | None = None) -> torch.device:
    if name:
        return torch.device(name)
    if torch.cuda.is_available():
        rank = int(os.environ.get("LOCAL_RANK", 0))
        return torch.device("cuda", rank)
    return torch.device("cpu")


def _seed(config: TrainConfig, epoch: int, stream: int) -> int:
    return config.schedule.seed * 1_000_003 + epoch * 101 + stream


def _batches(
    n: int, batch_size: int, g: torch.Generator, rank: int, world: int, limit: int = 0
) -> list[list[int]]:
    """This rank's batches of one epoch (of ``limit`` samples if set); ranks get equal counts.

    In 2D a last batch of a single slice joins the one before (BatchNorm needs two samples).
    """
    order = torch.randperm(n, generator=g).tolist()
    if limit:
        order = order[:limit]
    n = len(order)
    per_rank = n // world if world > 1 else n
    mine = order[rank * per_rank : (rank + 1) * per_rank]
    batches = [mine[i : i + batch_size] for i in range(0, len(mine), batch_size)]
    if batch_size > 1 and len(batches) > 1 and len(batches[-1]) == 1:
        batches[-2].extend(batches.pop())
    return batches


def _loss_fn(config: TrainConfig, loss: str, cache: CacheReader, keys: list[str]):
    params = dict(config.loss_params.get(loss, {}))
    if loss == "wce" and params.get("w", "balanced") == "balanced":
        lesion = sum(int(cache.label(k).sum()) for k in keys)
        voxels = sum(int(np.prod(cache.label(k).shape)) for k in keys)
        params["w"] = balancing_weight(lesion / max(voxels, 1))
    return get_loss(loss, **params)


class Trainer:
    """Fits one model (``config.model``) with one loss on ``train_keys``, validating on ``val_keys``."""

    def __init__(
        self,
        config: TrainConfig,
        cache: CacheReader,
        train_keys: list[str],
        val_keys: list[str],
        out_dir: str | Path,
        loss: str,
        device: str | None = None,
        meta: dict | None = None,
    ):
        if not train_keys or not val_keys:
            raise ValueError("training needs at least one training and one validation case")
        self.config, self.cache, self.loss_name = config, cache, loss
        self.train_keys, self.val_keys = list(train_keys), list(val_keys)
        self.out = Path(out_dir)
        self.meta = dict(meta or {})
        self.rank, self.world = _rank()
        self.device = pick_device(device)
        set_threads(config.schedule.threads or None)
        self.volumetric = is_3d(config.model)
        data_cls = VolumeDataset if self.volumetric else SliceDataset
        self.data = data_cls(cache, self.train_keys)
        self.loss_fn = _loss_fn(config, loss, cache, self.train_keys)

        torch.manual_seed(config.schedule.seed)  # initial weights depend on the seed only
        self.model = build_model(config.model).to(self.device)
        self.pretrained_keys: list[str] = []
        if config.pretrained:
            report = load_pretrained(self.model, config.pretrained)
            self.pretrained_keys = report.loaded
            self.meta["pretrained"] = {"file": config.pretrained, "loaded": len(report.loaded)}
        if self.device.type == "cuda":
            self.model = self.model.to(memory_format=torch.channels_last)
        self.net: nn.Module = self.model
        if self.world > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.net = nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
        self.state = _State()
        self.stage = 0
        self.optimizer: torch.optim.Optimizer | None = None

    # --- schedule -------------------------------------------------------------------------
    @property
    def two_stage(self) -> bool:
        return bool(self.pretrained_keys) and self.config.schedule.stage1_epochs > 0

    def _stage_of(self, epoch: int) -> int:
        return 1 if self.two_stage and epoch < self.config.schedule.stage1_epochs else 2

    def _enter_stage(self, stage: int) -> None:
        s = self.config.schedule
        pretrained, new = split_pretrained_parameters(self.model, self.pretrained_keys)
        for p in pretrained:
            p.requires_grad_(stage == 2)
        params = new if stage == 1 else pretrained + new
        self.state.lr = s.lr_stage1 if stage == 1 else s.lr
        self.state.since_change = 0
        self.optimizer = torch.optim.RMSprop(params, lr=self.state.lr)
        self.stage = stage

    def _set_train_mode(self) -> None:
        self.net.train()
        freeze_all = self.config.schedule.freeze_bn
        if self.stage == 1 or freeze_all:  # frozen BatchNorms keep their statistics
            frozen = set(self.pretrained_keys)
            for name, module in self.model.named_modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm) and (
                    freeze_all or f"{name}.weight" in frozen
                ):
                    module.eval()

    def _after_validation(self, dice: float) -> bool:
        """Update best/plateau counters; True when training should stop early."""
        st, s = self.state, self.config.schedule
        if dice > st.best_dice:
            st.best_dice, st.best_epoch, st.since_best, st.since_change = dice, st.epoch, 0, 0
            return False
        st.since_best += 1
        st.since_change += 1
        if st.since_change >= s.lr_patience:
            st.lr *= s.lr_factor
            st.since_change = 0
            for group in self.optimizer.param_groups:
                group["lr"] = st.lr
        return st.since_best >= s.early_stop

    # --- one epoch --------------------------------------------------------------------------
    def _autocast(self):
        if self.device.type == "cuda" and self.config.schedule.amp:
            dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
            return torch.autocast("cuda", dtype=dtype)
        return torch.autocast(self.device.type, enabled=False)

    def _batch(self, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
        items = [self.data[i] for i in indices]
        images = torch.stack([x for x, _ in items]).to(self.device, non_blocking=True)
        labels = torch.stack([y for _, y in items]).to(self.device, non_blocking=True)
        return images, labels

    def _loader(self, batches: list[list[int]]) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        workers = self.config.schedule.num_workers
        if workers == 0:
            yield from (self._batch(b) for b in batches)
            return
        loader = torch.utils.data.DataLoader(
            self.data,
            batch_sampler=batches,
            num_workers=workers,
            pin_memory=self.device.type == "cuda",
        )
        for images, labels in loader:
            yield (
                images.to(self.device, non_blocking=True),
                labels.to(self.device, non_blocking=True),
            )

    def step(self, images: torch.Tensor, labels: torch.Tensor) -> float:
        """One optimiser step on a (augmented) batch; returns its loss (main + aux weight x aux)."""
        if self.device.type == "cuda" and not self.volumetric:
            images = images.contiguous(memory_format=torch.channels_last)
        with self._autocast():
            out = self.net(images)
            if isinstance(out, tuple):
                main, aux = out
                weight = getattr(self.model, "aux_weight", AUX_LOSS_WEIGHT)
                loss = self.loss_fn(main.float(), labels) + weight * self.loss_fn(
                    aux.float(), labels
                )
            else:
                loss = self.loss_fn(out.float(), labels)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        return float(loss.detach())

    def train_epoch(self, progress: bool = False) -> float:
        epoch = self.state.epoch
        torch.manual_seed(_seed(self.config, epoch, 0))  # dropout
        shuffle = torch.Generator().manual_seed(_seed(self.config, epoch, 1))
        aug = torch.Generator(device=self.device).manual_seed(_seed(self.config, epoch, 2))
        size, limit = 1, 0
        if not self.volumetric:
            size, limit = self.config.schedule.batch_size, self.config.schedule.samples_per_epoch
        batches = _batches(len(self.data), size, shuffle, self.rank, self.world, limit)
        self._set_train_mode()
        total, count = 0.0, 0
        bar = _progress(len(batches), f"epoch {epoch + 1}", progress and self.rank == 0)
        for images, labels in self._loader(batches):
            if self.config.augment is not None:
                images, labels = augment(images, labels, self.config.augment, aug)
            loss = self.step(images, labels)
            total += loss * len(images)
            count += len(images)
            bar.update(1)
            bar.set_postfix(loss=f"{total / max(count, 1):.4f}")
        bar.close()
        sums = torch.tensor([total, count], dtype=torch.float64, device=self.device)
        if self.world > 1:
            dist.all_reduce(sums)
            # Each rank's last forward moved its own BatchNorm statistics; validate and save
            # with rank 0's on every rank.
            for buffer in self.model.buffers():
                dist.broadcast(buffer, 0)
        return float(sums[0] / sums[1].clamp(min=1))

    def predict_case(self, key: str, batch: int = 8) -> np.ndarray:
        """Lesion probabilities ``(z, y, x)`` of a cached case with the current model."""
        with self._autocast():
            return predict_cached(self.model, self.cache, key, self.device, self.volumetric, batch)

    def validate(self) -> float:
        """Mean over validation cases of the 3D Dice; cases are shared out between ranks."""
        counts = torch.zeros(len(self.val_keys), 2, dtype=torch.float64, device=self.device)
        for i, key in enumerate(self.val_keys):
            if i % self.world != self.rank:
                continue
            overlap = slice_dice((self.predict_case(key) >= 0.5)[None], self.cache.label(key)[None])
            counts[i, 0], counts[i, 1] = 2 * overlap.intersection, overlap.total
        if self.world > 1:
            dist.all_reduce(counts)
        dice = torch.where(counts[:, 1] > 0, counts[:, 0] / counts[:, 1].clamp(min=1), 1.0)
        return float(dice.mean())

    # --- checkpoints --------------------------------------------------------------------------
    def _save_checkpoint(self) -> None:
        payload = {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "state": asdict(self.state),
            "stage": self.stage,
            "config": self.config.digest(),
            "loss": self.loss_name,
        }
        buffer = io.BytesIO()
        torch.save(payload, buffer)
        atomic_write_bytes(self.out / CHECKPOINT, buffer.getvalue())

    def _resume(self) -> None:
        path = self.out / CHECKPOINT
        try:
            raw = torch.load(path, map_location=self.device, weights_only=True)
        except Exception as exc:  # truncated, not a torch file, or holding more than tensors
            raise DataError(path, f"not a readable checkpoint ({type(exc).__name__})") from None
        payload = validate(raw, _Checkpoint, path)
        if payload.config != self.config.digest() or payload.loss != self.loss_name:
            raise DataError(path, "checkpoint of another config or loss; use a new --out")
        try:
            self.model.load_state_dict(payload.model)
            self._enter_stage(payload.stage)
            self.optimizer.load_state_dict(payload.optimizer)
        except (RuntimeError, ValueError, KeyError, TypeError) as exc:
            raise DataError(path, f"checkpoint does not fit this model ({exc})") from None
        self.state = payload.state
        for group in self.optimizer.param_groups:
            group["lr"] = self.state.lr
        _truncate_log(self.out / LOG, self.state.epoch)

    def _save_best(self, dice: float) -> None:
        meta = {**self.meta, "loss": self.loss_name, "epoch": self.state.epoch, "val_dice": dice}
        save_weights(self.model, self.out / BEST, self.config.model, meta)

    # --- the loop -----------------------------------------------------------------------------
    def fit(
        self,
        resume: bool = False,
        progress: bool = False,
        on_epoch: Callable[[dict], None] | None = None,
    ) -> FitResult:
        writer = self.rank == 0
        if writer:
            self.out.mkdir(parents=True, exist_ok=True)
        if resume and (self.out / CHECKPOINT).exists():
            self._resume()
        else:
            if writer:
                (self.out / LOG).unlink(missing_ok=True)
            self._enter_stage(self._stage_of(0))
        s = self.config.schedule
        stopped = "max_epochs"
        while self.state.epoch < s.max_epochs:
            if self._stage_of(self.state.epoch) != self.stage:
                self._enter_stage(2)
            t0 = time.perf_counter()
            train_loss = self.train_epoch(progress)
            dice = self.validate()
            lr_used = self.state.lr
            self.state.epoch += 1
            improved = dice > self.state.best_dice
            stop = self._after_validation(dice)
            record = {
                "epoch": self.state.epoch,
                "stage": self.stage,
                "loss": train_loss,
                "val_dice": dice,
                "lr": lr_used,
                "best": improved,
                "time_s": round(time.perf_counter() - t0, 3),
            }
            if writer:
                if improved:
                    self._save_best(dice)
                _append_log(self.out / LOG, record)
                self._save_checkpoint()
            if self.world > 1:
                dist.barrier()
            if on_epoch is not None:
                on_epoch(record)
            if stop:
                stopped = "early_stop"
                break
        result = FitResult(
            self.loss_name,
            self.state.best_dice,
            self.state.best_epoch,
            self.state.epoch,
            stopped,
            str(self.out / BEST),
        )
        if writer:
            text = json.dumps(asdict(result), indent=2) + "\n"
            atomic_write_bytes(self.out / RESULT, text.encode())
        return result


@torch.inference_mode()
def predict_cached(
    model: nn.Module,
    cache: CacheReader,
    key: str,
    device: torch.device,
    volumetric: bool = False,
    batch: int = 8,
) -> np.ndarray:
    """Lesion probabilities ``(z, y, x)`` of a cached case by ``model`` (put in eval mode)."""
    model.eval()
    image = torch.from_numpy(cache.image(key).astype(np.float32))  # (z, C, y, x)
    if volumetric:
        logits = model(image.permute(1, 0, 2, 3)[None].to(device))[0, 0]
    else:
        parts = [model(image[i : i + batch].to(device))[:, 0] for i in range(0, len(image), batch)]
        logits = torch.cat(parts)
    return torch.sigmoid(logits.float()).cpu().numpy()


def _append_log(path: Path, record: dict) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(record) + "\n")


def _truncate_log(path: Path, epochs: int) -> None:
    """Keep the first ``epochs`` lines: a killed run may have logged an epoch it did not save."""
    if not path.exists():
        return
    lines = path.read_text().splitlines(keepends=True)[:epochs]
    atomic_write(path, lambda tmp: Path(tmp).write_text("".join(lines)))


def _progress(total: int, desc: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, leave=False, disable=not enabled, dynamic_ncols=True)


def read_log(out_dir: str | Path) -> list[dict]:
    path = Path(out_dir) / LOG
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
