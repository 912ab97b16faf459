"""Training throughput of the CPU config, and the data pipeline's throughput alone, same run;
then the wall time of retraining the demo ensemble on corrections against one training epoch.

The pipeline (HDF5 cache -> float32 slices -> batch -> augmentation) must supply at least 5x the
slices per second the model consumes, or training waits on data. Uses a small phantom data set.

Retrain: a project on the demo data set (generated on first use) with 5 approved corrections
(each case's ground truth saved as its correction) and one held-out case of another patient;
``finetune`` of all 10 demo members, one epoch each, on CPU (baseline and after measurement and
the export included), against one epoch of the CPU config's original training of one member
(``Trainer.train_epoch`` over the demo's other labelled cases, ``samples_per_epoch`` slices, +
``validate`` on the same held-out case), timed in the same run.
Run: python bench/training.py [--config cpu] [--steps 6] [--no-finetune]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import nibabel as nib
import torch

from strokelens.core.dataset import open_dataset
from strokelens.core.phantom import generate_dataset
from strokelens.training.augment import augment
from strokelens.training.cache import CacheReader, build_cache
from strokelens.training.config import load_config
from strokelens.training.trainer import Trainer, _batches


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", default="cpu")
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--no-finetune", action="store_true", help="skip the retrain timing")
    args = parser.parse_args()
    config = load_config(args.config)
    torch.set_num_threads(config.schedule.threads or torch.get_num_threads())
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        generate_dataset(root / "data", 4, seed=7, slices=[8, 16])
        cache = CacheReader(build_cache(open_dataset(root / "data"), root / "cache.h5"))
        keys = [c.key for c in cache.cases]
        trainer = Trainer(config, cache, keys[:-1], keys[-1:], root / "run", config.losses[0])
        trainer._enter_stage(2)
        size = config.schedule.batch_size
        g = torch.Generator().manual_seed(0)
        batches = _batches(len(trainer.data), size, g, 0, 1)[: args.steps]

        t0 = time.perf_counter()
        n = 0
        for indices in batches:  # data pipeline alone
            images, labels = trainer._batch(indices)
            images, labels = augment(images, labels, config.augment, g)
            n += len(indices)
        pipeline = n / (time.perf_counter() - t0)

        images, labels = trainer._batch(batches[0])
        trainer._set_train_mode()

        trainer.step(images, labels)  # warm-up
        t0 = time.perf_counter()
        for _ in range(args.steps):
            trainer.step(images, labels)
        model = args.steps * len(images) / (time.perf_counter() - t0)
        cache.close()
    print(f"config {args.config}: {config.model}")
    print(
        f"model training:   {model:8.1f} slices/s (batch {len(images)}, {torch.get_num_threads()} threads)"
    )
    print(f"data pipeline:    {pipeline:8.1f} slices/s (cache read + batch + augmentation)")
    print(f"pipeline / model: {pipeline / model:8.1f}x (target >= 5x)")
    if not args.no_finetune:
        finetune_vs_epoch(config)


def finetune_vs_epoch(config) -> None:
    """Wall time of a one-epoch fine-tune of the demo ensemble on 5 corrections, and its ratio
    to one epoch of original training (see the module docstring)."""
    from strokelens.core.demo import ensure_demo
    from strokelens.core.project.store import ProjectStore
    from strokelens.core.registry import Registry
    from strokelens.training.retrain import finetune

    data = ensure_demo()
    dataset = open_dataset(data)
    # One case per patient, fewest slices first (the CPU is slow: 5 short cases keep it minutes).
    firsts = [refs[0] for refs in dataset.patients().values() if refs[0].has_truth]
    firsts.sort(key=lambda ref: (nib.load(ref.files["CT"]).shape[2], ref.key))
    corrected, heldout = [r.key for r in firsts[:5]], firsts[5].key
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        with ProjectStore.open(root / "project", data, create=True) as store:
            for key in [*corrected, heldout]:
                case = dataset.load(key)
                store.save_mask(case, case.mask, "bench")
                store.approve(key, "bench")
        events = []
        t0 = time.perf_counter()
        finetune(
            root / "project",
            registry=Registry(root / "models"),
            epochs=1,
            heldout=[heldout],
            device="cpu",
            on_event=lambda e: (events.append(e), print(json.dumps(e), file=sys.stderr)),
        )
        tuning = time.perf_counter() - t0
        epochs = [e["elapsed_s"] for e in events if e["event"] == "epoch"]
        held_patient = dataset[heldout].patient
        training = [r.key for r in dataset if r.has_truth and r.patient != held_patient]
        cache = CacheReader(build_cache(dataset, root / "cache.h5", keys=[*training, heldout]))
        trainer = Trainer(config, cache, training, [heldout], root / "run", config.losses[0], "cpu")
        cache_slices = [cache.case(k).n_slices for k in corrected]
        trainer._enter_stage(2)
        t0 = time.perf_counter()
        trainer.train_epoch()
        trainer.validate()
        original = time.perf_counter() - t0
        cache.close()
    n = len(epochs)
    slices = sum(cache_slices)
    print(
        f"fine-tune, {n} members x 1 epoch on {len(corrected)} corrections ({slices} slices): "
        f"{tuning:8.1f} s wall "
        f"(epochs alone {sum(epochs):.1f} s, {sum(epochs) / n:.1f} s per member)"
    )
    print(
        f"one epoch of original training ({config.schedule.samples_per_epoch or 'all'} slices "
        f"+ validation): {original:8.1f} s"
    )
    print(
        f"fine-tune / original epoch: {tuning / original:8.1f}x whole run, "
        f"{sum(epochs) / n / original:.2f}x per member epoch"
    )


if __name__ == "__main__":
    main()
