"""Training throughput of the CPU config, and the data pipeline's throughput alone, same run.

The pipeline (HDF5 cache -> float32 slices -> batch -> augmentation) must supply at least 5x the
slices per second the model consumes, or training waits on data. Uses a small phantom data set.
Run: python bench/training.py [--config cpu] [--steps 6]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

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


if __name__ == "__main__":
    main()
