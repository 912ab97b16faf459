"""5-fold per-patient cross-validation for every loss of a config, ending in an ensemble manifest.

Layout of a run folder::

    RUN/cache.h5                     preprocessing cache of the labelled cases
    RUN/folds.json                   case keys per fold (patients never cross folds)
    RUN/<loss>/fold_<k>/             trainer output (checkpoint, best.safetensors, log.jsonl, ...)
    RUN/<loss>/fold_<k>/metrics.json ISLES metrics of the best weights on that fold's cases
    RUN/ensemble.json                manifest: one member per (loss, fold)
    RUN/cv.json                      config, folds and the per-fold summary ``report`` reads
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import numpy as np
import safetensors.torch
from pydantic import Field

from strokelens.core.dataset import open_dataset
from strokelens.core.errors import DataError
from strokelens.core.manifest import Manifest, Member
from strokelens.core.metrics import case_metrics, summarize
from strokelens.core.preprocessing import load_scaling
from strokelens.core.safepath import path_inside
from strokelens.core.schema import Str, load
from strokelens.core.weights import file_sha256
from strokelens.core.writer import atomic_write_bytes
from strokelens.training.cache import CacheReader, build_cache
from strokelens.training.config import TrainConfig
from strokelens.training.distributed import barrier, is_main
from strokelens.training.folds import CaseInfo, patient_folds, split_for_fold
from strokelens.training.trainer import BEST, RESULT, Trainer, read_result

#: The schema of ``folds.json``: the case keys of each fold.
Folds = Annotated[list[list[Str]], Field(min_length=2)]


def _write_json(path: Path, data) -> None:
    atomic_write_bytes(path, (json.dumps(data, indent=2) + "\n").encode())


def evaluate_best(trainer: Trainer) -> list[dict]:
    """ISLES metrics of the trainer's best weights on its validation cases."""
    trainer.model.load_state_dict(safetensors.torch.load_file(trainer.out / BEST))
    rows = []
    for key in trainer.val_keys:
        truth = trainer.cache.label(key)
        pred = trainer.predict_case(key) >= 0.5
        row = case_metrics(pred, truth, trainer.cache.case(key).spacing)
        rows.append({"key": key, **row})
    return rows


def prepare(data: str | Path, out: Path, k: int, seed: int) -> tuple[CacheReader, list[list[str]]]:
    """Cache the labelled cases and split them into folds (reusing a run's folds.json)."""
    dataset = open_dataset(data)
    labelled = [ref.key for ref in dataset if ref.has_truth and not ref.errors]
    if not labelled:
        raise DataError(dataset.root, "no case with a ground truth (OT) to train on")
    cache_path = out / "cache.h5"
    if is_main():
        out.mkdir(parents=True, exist_ok=True)
        build_cache(dataset, cache_path, keys=labelled)
    barrier()
    cache = CacheReader(cache_path)
    folds_path = out / "folds.json"
    if folds_path.exists():
        folds = load(folds_path, Folds, "fold split")
        if sorted(k for f in folds for k in f) != sorted(labelled):
            raise DataError(folds_path, "folds do not match the data set's cases; use a new --out")
    else:
        infos = [CaseInfo(c.key, c.patient, c.lesion_ml) for c in cache.cases]
        folds = patient_folds(infos, k=k, seed=seed)
        if is_main():
            _write_json(folds_path, folds)
    return cache, folds


def run_cv(
    config: TrainConfig,
    data: str | Path,
    out: str | Path,
    losses: list[str] | None = None,
    only_folds: list[int] | None = None,
    resume: bool = False,
    progress: bool = False,
    device: str | None = None,
) -> Path:
    """Train every (loss, fold); returns the manifest path. Folds are numbered from 1."""
    out = Path(out)
    cache, folds = prepare(data, out, config.folds, config.schedule.seed)
    losses = losses or list(config.losses)
    members, summary = [], {}
    for loss in losses:
        for fold in only_folds or range(1, len(folds) + 1):
            train_keys, val_keys = split_for_fold(folds, fold - 1)
            fold_dir = path_inside(out, loss, f"fold_{fold}")  # --loss is any string
            meta = {"fold": fold, "data": str(Path(data).resolve()), "config": config.source}
            trainer = Trainer(config, cache, train_keys, val_keys, fold_dir, loss, device, meta)
            finished = fold_dir / RESULT
            if resume and finished.exists():  # ended (maybe early-stopped): do not train on
                result = read_result(finished)
            else:
                result = trainer.fit(resume=resume, progress=progress)
            if is_main():
                rows = evaluate_best(trainer)
                _write_json(fold_dir / "metrics.json", rows)
                stats = summarize(rows)
                summary[f"{loss}/{fold}"] = {
                    "loss": loss,
                    "fold": fold,
                    "best_epoch": result.best_epoch,
                    "epochs": result.epochs,
                    "val_dice": result.best_dice,
                    "dsc": stats["dsc"]["mean"],
                    "n_cases": len(rows),
                }
                weights = fold_dir / BEST
                members.append(
                    Member(
                        name=f"{loss}-fold{fold}",
                        loss=loss,
                        fold=fold,
                        weights=str(weights.relative_to(out)),
                        sha256=file_sha256(weights),
                        val_dice=float(result.best_dice),
                    )
                )
            barrier()
    manifest_path = out / "ensemble.json"
    if is_main():
        arch = config.model["arch"] + (
            f"-{config.model['backbone']}" if config.model["arch"] == "pspnet" else ""
        )
        manifest = Manifest(
            name=f"{arch}-{out.name}",
            members=members,
            preprocessing=load_scaling(),
            meta={"config": config.source, "data": str(Path(data).resolve())},
        )
        manifest.save(manifest_path)
        _write_json(
            out / "cv.json",
            {
                "arch": arch,
                "config": config.as_dict(),
                "folds": [len(f) for f in folds],
                "runs": list(summary.values()),
                "mean_dsc": {
                    loss: float(np.mean([r["dsc"] for r in summary.values() if r["loss"] == loss]))
                    for loss in losses
                },
            },
        )
    barrier()
    return manifest_path
