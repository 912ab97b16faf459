"""Trainer: the schedule, logs and weights it writes, resume equivalence, two-stage transfer, 3D."""

from __future__ import annotations

import json

import pytest
import torch
from helpers import write_isles_case

from strokelens.core.dataset import open_dataset
from strokelens.core.errors import DataError
from strokelens.core.models import build_model
from strokelens.core.weights import load_weights
from strokelens.training.augment import AugmentConfig
from strokelens.training.cache import CacheReader, build_cache
from strokelens.training.config import Schedule, TrainConfig
from strokelens.training.trainer import CHECKPOINT, Trainer, read_log

PSP = {"arch": "pspnet", "backbone": "resnet18", "aux": True}


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    for k in range(1, 4):
        write_isles_case(root / "TRAINING" / f"case_{k}", shape_xyz=(32, 32, 4), seed=k)
    return CacheReader(build_cache(open_dataset(root), root / "cache.h5"))


def _config(**schedule) -> TrainConfig:
    defaults = dict(batch_size=4, max_epochs=3, lr=1e-3, threads=1)
    return TrainConfig(
        model=PSP, schedule=Schedule(**(defaults | schedule)), augment=AugmentConfig()
    )


def _trainer(cache, out, config=None, loss="focal") -> Trainer:
    train, val = ["training/case_1", "training/case_2"], ["training/case_3"]
    return Trainer(config or _config(), cache, train, val, out, loss)


def test_fit_writes_log_checkpoint_and_best_weights(cache, tmp_path):
    result = _trainer(cache, tmp_path).fit()
    log = read_log(tmp_path)
    assert [r["epoch"] for r in log] == [1, 2, 3] and result.epochs == 3
    assert all(set(r) >= {"loss", "val_dice", "lr", "time_s", "stage"} for r in log)
    assert result.best_dice == max(r["val_dice"] for r in log)
    model, config, meta = load_weights(result.weights)
    assert config["backbone"] == "resnet18" and meta["loss"] == "focal"
    assert meta["epoch"] == result.best_epoch
    assert json.loads((tmp_path / "result.json").read_text())["stopped"] == "max_epochs"
    payload = torch.load(tmp_path / CHECKPOINT, weights_only=True)
    assert payload["state"]["epoch"] == 3


def test_killed_run_resumes_to_the_same_result(cache, tmp_path):
    whole = _trainer(cache, tmp_path / "a")
    whole.fit()

    def kill(record):
        if record["epoch"] == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _trainer(cache, tmp_path / "b").fit(on_epoch=kill)
    assert len(read_log(tmp_path / "b")) == 2
    resumed = _trainer(cache, tmp_path / "b")
    resumed.fit(resume=True)
    for (name, a), b in zip(
        whole.model.state_dict().items(), resumed.model.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), name
    strip = [{k: v for k, v in r.items() if k != "time_s"} for r in read_log(tmp_path / "a")]
    assert strip == [
        {k: v for k, v in r.items() if k != "time_s"} for r in read_log(tmp_path / "b")
    ]


def test_resume_refuses_another_config(cache, tmp_path):
    _trainer(cache, tmp_path, _config(max_epochs=1)).fit()
    with pytest.raises(DataError, match="another config"):
        _trainer(cache, tmp_path, _config(max_epochs=2, lr=5e-4)).fit(resume=True)


def test_two_stage_transfer_freezes_pretrained_layers_first(cache, tmp_path):
    backbone = build_model(PSP).backbone.state_dict()
    torch.save(backbone, tmp_path / "resnet18.pth")
    config = TrainConfig(
        model=PSP,
        pretrained=str(tmp_path / "resnet18.pth"),
        schedule=Schedule(batch_size=4, max_epochs=2, stage1_epochs=1, threads=1),
        augment=None,
    )
    trainer = _trainer(cache, tmp_path / "run", config)
    stages = []
    trainer.fit(
        on_epoch=lambda r: stages.append(
            (r["stage"], r["lr"], trainer.model.backbone.layer1[0].conv1.weight.clone())
        )
    )
    (s1, lr1, w1), (s2, lr2, w2) = stages
    assert (s1, lr1, s2, lr2) == (1, 1e-2, 2, 1e-4)
    assert torch.equal(w1, backbone["layer1.0.conv1.weight"])  # frozen in stage 1
    assert not torch.equal(w2, w1)  # trained in stage 2


def test_plateau_lowers_lr_then_stops(cache, tmp_path):
    trainer = _trainer(cache, tmp_path, _config(lr_patience=2, early_stop=4, lr=1.0))
    trainer._enter_stage(2)
    stops = [trainer._after_validation(d) for d in (0.5, 0.4, 0.4, 0.45, 0.3)]
    assert stops == [False, False, False, False, True]
    assert trainer.state.lr == pytest.approx(0.01)  # dropped after bad epochs 2 and 4
    assert trainer.optimizer.param_groups[0]["lr"] == pytest.approx(0.01)


def test_3d_model_and_weighted_ce(cache, tmp_path):
    config = TrainConfig(
        model={"arch": "unet3d", "base_channels": 4, "depth": 2},
        schedule=Schedule(max_epochs=1, lr=1e-3, threads=1),
        loss_params={"wce": {"w": "balanced"}},
        losses=("wce",),
    )
    result = _trainer(cache, tmp_path, config, loss="wce").fit()
    assert result.epochs == 1 and 0.0 <= result.best_dice <= 1.0
    assert load_weights(result.weights)[1]["arch"] == "unet3d"


def test_batches_respect_limit_ranks_and_singletons():
    from strokelens.training.trainer import _batches

    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    assert sum(map(len, _batches(100, 8, g(), 0, 1, limit=20))) == 20
    whole = _batches(17, 8, g(), 0, 1)
    assert [len(b) for b in whole] == [8, 9]  # no batch of one slice
    r0, r1 = _batches(20, 4, g(), 0, 2), _batches(20, 4, g(), 1, 2)
    assert len(r0) == len(r1) and not {i for b in r0 for i in b} & {i for b in r1 for i in b}


@pytest.mark.parametrize("freeze", [False, True])
def test_freeze_bn_keeps_running_statistics(cache, tmp_path, freeze):
    trainer = _trainer(cache, tmp_path, _config(max_epochs=1, freeze_bn=freeze))
    bn = trainer.model.backbone.layer1[0].bn1
    stats = (bn.running_mean.clone(), bn.running_var.clone())
    weight = bn.weight.clone()
    trainer.fit()
    kept = torch.equal(bn.running_mean, stats[0]) and torch.equal(bn.running_var, stats[1])
    assert kept == freeze
    assert not torch.equal(bn.weight, weight)  # the affine parameters still train
