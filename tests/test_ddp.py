"""DDP on CPU: two gloo processes train a few steps; ranks end with identical weights."""

from __future__ import annotations

import hashlib
import os
import socket

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from helpers import write_isles_case

from strokelens.core.dataset import open_dataset
from strokelens.training.cache import CacheReader, build_cache
from strokelens.training.config import Schedule, TrainConfig
from strokelens.training.trainer import Trainer, read_log


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank: int, world: int, port: int, cache_path: str, out: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.set_num_threads(1)
    config = TrainConfig(
        model={"arch": "unet2d", "base_channels": 8, "depth": 2},
        schedule=Schedule(batch_size=2, max_epochs=4, lr=3e-3, threads=1),
        augment=None,
    )
    keys = [f"training/case_{k}" for k in range(1, 5)]
    trainer = Trainer(config, CacheReader(cache_path), keys[:3], keys[3:], out, "ce")
    trainer.fit()
    digest = hashlib.sha256()
    for tensor in trainer.model.state_dict().values():
        digest.update(tensor.detach().cpu().numpy().tobytes())
    with open(f"{out}/rank{rank}.sha", "w") as f:
        f.write(digest.hexdigest())
    dist.destroy_process_group()


@pytest.mark.heavy
def test_two_gloo_ranks_stay_identical_and_loss_falls(tmp_path):
    for k in range(1, 5):
        write_isles_case(tmp_path / "data" / "TRAINING" / f"case_{k}", (32, 32, 4), seed=k)
    cache = build_cache(open_dataset(tmp_path / "data"), tmp_path / "cache.h5")
    out = tmp_path / "run"
    mp.spawn(_worker, args=(2, _free_port(), str(cache), str(out)), nprocs=2, join=True)
    assert (out / "rank0.sha").read_text() == (out / "rank1.sha").read_text()
    losses = [r["loss"] for r in read_log(out)]
    assert len(losses) == 4 and losses[-1] < losses[0]
