"""Weight files: safetensors round trip with metadata, pretrained loading, the two-stage split."""

from __future__ import annotations

import json

import pytest
import safetensors.torch
import torch

from strokelens.core.errors import DataError
from strokelens.core.models import build_model, resolve_config
from strokelens.core.models.resnet import ResNet
from strokelens.core.weights import (
    file_sha256,
    load_pretrained,
    load_weights,
    read_metadata,
    save_weights,
    split_pretrained_parameters,
)

torch.set_num_threads(1)

PSP18 = {"arch": "pspnet", "backbone": "resnet18"}
SMALL_UNET = {"arch": "unet2d", "base_channels": 2, "depth": 2}


def trained_like(model: torch.nn.Module, x: torch.Tensor) -> torch.nn.Module:
    """Move BN running statistics away from their initial values, as training would."""
    model.train()
    with torch.no_grad():
        model(x)
    return model.eval()


def test_round_trip_gives_bit_identical_outputs(tmp_path):
    config = {**PSP18, "aux": True}
    x = torch.randn(2, 5, 21, 19)
    model = trained_like(build_model(config), x)
    meta = {"loss": "focal", "epochs": 3, "fold": 1, "val_dice": 0.5}
    path = tmp_path / "model.safetensors"
    digest = save_weights(model, path, config, meta)
    assert digest == file_sha256(path)

    loaded, loaded_config, loaded_meta = load_weights(path, sha256=digest)
    assert loaded_config == resolve_config(config) and loaded_meta == meta
    assert not loaded.training
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    for (name, a), (_, b) in zip(
        model.state_dict().items(), loaded.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name


def test_metadata_is_readable_without_loading(tmp_path):
    path = tmp_path / "m.safetensors"
    save_weights(build_model(SMALL_UNET), path, SMALL_UNET, {"cases": ["training/case_1"]})
    config, meta = read_metadata(path)
    assert config == resolve_config(SMALL_UNET)
    assert meta == {"cases": ["training/case_1"]}


def test_save_refuses_a_model_that_does_not_match_its_config(tmp_path):
    with pytest.raises(ValueError, match="does not match"):
        save_weights(
            build_model(SMALL_UNET), tmp_path / "m.safetensors", {**SMALL_UNET, "depth": 3}
        )
    assert not (tmp_path / "m.safetensors").exists()


def test_wrong_sha256_is_refused(tmp_path):
    path = tmp_path / "m.safetensors"
    save_weights(build_model(SMALL_UNET), path, SMALL_UNET)
    with pytest.raises(DataError, match="sha256") as e:
        load_weights(path, sha256="0" * 64)
    assert e.value.path == path


def write_bad_files(tmp_path):
    """name -> a file that is not a usable StrokeLens weight file."""
    good = tmp_path / "good.safetensors"
    save_weights(build_model(SMALL_UNET), good, SMALL_UNET)
    data = good.read_bytes()
    files = {
        "garbage": b"not a weight file at all",
        "truncated": data[: len(data) // 2],
    }
    for name, content in files.items():
        (tmp_path / f"{name}.safetensors").write_bytes(content)
    plain = {"w": torch.zeros(2)}
    safetensors.torch.save_file(plain, tmp_path / "foreign.safetensors")
    # Tensors of one configuration, metadata claiming another.
    state = build_model(SMALL_UNET).state_dict()
    metadata = {"strokelens_weights": "1", "config": json.dumps({**SMALL_UNET, "depth": 3})}
    safetensors.torch.save_file(state, tmp_path / "lying.safetensors", metadata=metadata)
    bad_config = {"strokelens_weights": "1", "config": json.dumps({"arch": "nope"})}
    safetensors.torch.save_file(plain, tmp_path / "badconfig.safetensors", metadata=bad_config)
    return ["garbage", "truncated", "foreign", "lying", "badconfig", "missing"]


def test_bad_files_give_a_data_error_naming_the_file(tmp_path):
    for name in write_bad_files(tmp_path):
        path = tmp_path / f"{name}.safetensors"
        with pytest.raises(DataError) as e:
            load_weights(path)
        assert e.value.path == path and str(path) in str(e.value), name


DEEP = "[" * 100_000 + "]" * 100_000
#: metadata fields over a valid weight file's, and the words of the one-line error
BAD_METADATA = {
    "deep config": ({"config": DEEP}, "config: nested more than"),
    "deep meta": ({"meta": '{"a":' * 50_000 + "1" + "}" * 50_000}, "meta: nested more than"),
    "config not JSON": ({"config": '{"arch": '}, "config: Expecting value"),
    "config a list": ({"config": "[1, 2]"}, "config: Input should be a valid dictionary"),
    "NaN in meta": ({"meta": '{"val_dice": NaN}'}, "meta: NaN is not a JSON number"),
    "duplicate key": ({"meta": '{"a": 1, "a": 2}'}, "meta: duplicate key 'a'"),
    "another version": ({"strokelens_weights": "2"}, "strokelens_weights: Input should be '1'"),
    "unknown key": ({"extra": "x"}, "extra: unknown key"),
    "unknown arch": ({"config": '{"arch": "nope"}'}, "bad model configuration inside"),
}


@pytest.mark.parametrize("case", list(BAD_METADATA))
def test_bad_metadata_is_one_data_error(tmp_path, case):
    fields, words = BAD_METADATA[case]
    metadata = {"strokelens_weights": "1", "config": json.dumps(SMALL_UNET), "meta": "{}"}
    path = tmp_path / "m.safetensors"
    state = build_model(SMALL_UNET).state_dict()
    safetensors.torch.save_file(state, path, metadata={**metadata, **fields})
    with pytest.raises(DataError) as e:
        load_weights(path)
    assert e.value.path == path and words in e.value.problem and "\n" not in e.value.problem


def resnet_checkpoint(tmp_path, suffix: str):
    """A torchvision-style ImageNet checkpoint (with the fc that torchvision has)."""
    state = ResNet("resnet18").state_dict()
    for t in state.values():
        if t.is_floating_point():
            t.normal_()
    saved = {**state, "fc.weight": torch.randn(1000, 512), "fc.bias": torch.randn(1000)}
    path = tmp_path / f"resnet18{suffix}"
    if suffix == ".pth":
        torch.save(saved, path)
    else:
        safetensors.torch.save_file(saved, path)
    return state, path


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
def test_torchvision_resnet_loads_into_the_backbone(tmp_path, suffix):
    state, path = resnet_checkpoint(tmp_path, suffix)
    model = build_model(PSP18)
    report = load_pretrained(model, path)

    assert set(report.loaded) == {f"backbone.{k}" for k in state}
    assert sorted(report.unexpected) == ["fc.bias", "fc.weight"]
    assert report.mismatched == []
    assert {k.split(".")[0] for k in report.missing} == {"initializer", "ppm", "cls"}
    assert set(report.missing) | set(report.loaded) == set(model.state_dict())
    for key, value in state.items():
        assert torch.equal(model.backbone.state_dict()[key], value), key
    assert "loaded" in report.summary() and "fc (2)" in report.summary()


def test_two_stage_split(tmp_path):
    _, path = resnet_checkpoint(tmp_path, ".pth")
    model = build_model(PSP18)
    report = load_pretrained(model, path)
    pretrained, new = split_pretrained_parameters(model, report.loaded)
    assert {id(p) for p in pretrained} == {id(p) for p in model.backbone.parameters()}
    head = [model.initializer, model.ppm, model.cls]
    assert {id(p) for p in new} == {id(p) for m in head for p in m.parameters()}


def semseg_key(key: str) -> str:
    """Our PSPNet key as hszhao/semseg names it (deep stem in layer0, DataParallel prefix)."""
    stem = {"conv1": "0", "bn1": "1", "conv2": "3", "bn2": "4", "conv3": "6", "bn3": "7"}
    key = key.removeprefix("backbone.")
    first, rest = key.split(".", 1)
    return "module." + (f"layer0.{stem[first]}.{rest}" if first in stem else key)


def test_semseg_voc_checkpoint_loads_except_the_class_layers(tmp_path):
    voc = build_model({**PSP18, "deep_stem": True, "aux": True, "classes": 21})
    state = {semseg_key(k): v for k, v in voc.state_dict().items() if "initializer" not in k}
    path = tmp_path / "train_epoch_50.pth"
    torch.save({"epoch": 50, "state_dict": state}, path)

    model = build_model({**PSP18, "deep_stem": True, "aux": True})
    report = load_pretrained(model, path)
    assert report.unexpected == []
    assert sorted(m.split(":")[0] for m in report.mismatched) == [
        "aux.4.bias",
        "aux.4.weight",
        "cls.4.bias",
        "cls.4.weight",
    ]
    assert "(21, 512, 1, 1)" in " ".join(report.mismatched)
    assert sorted({k.rsplit(".", 1)[0] for k in report.missing}) == [
        "aux.4",
        "cls.4",
        "initializer.0",
        "initializer.1",
    ]
    assert torch.equal(model.backbone.conv3.weight, voc.backbone.conv3.weight)
    assert torch.equal(model.cls[0].weight, voc.cls[0].weight)
    _, new = split_pretrained_parameters(model, report.loaded)
    assert len(new) == 2 + 1 + 2 + 2  # initializer BN (2) and conv, cls.4 and aux.4


def test_unusable_pretrained_files_give_data_errors(tmp_path):
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"no pickle here")
    no_tensors = tmp_path / "lists.pth"
    torch.save({"a": [1, 2]}, no_tensors)
    unrelated = tmp_path / "unrelated.pth"
    torch.save({"encoder.weight": torch.zeros(3)}, unrelated)
    for path, message in [
        (garbage, "cannot read"),
        (no_tensors, "no state dict"),
        (unrelated, "no tensor"),
        (tmp_path / "absent.pth", "not found"),
    ]:
        with pytest.raises(DataError, match=message) as e:
            load_pretrained(build_model(SMALL_UNET), path)
        assert e.value.path == path
