"""The networks: output shapes for any input size, the reference's sizes, configuration errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from strokelens.core.models import (
    AUX_LOSS_WEIGHT,
    build_model,
    is_3d,
    resolve_config,
)
from strokelens.core.models.padding import crop_like, pad_to_multiple
from strokelens.core.models.resnet import ResNet

torch.set_num_threads(1)


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def on_meta(config: dict) -> nn.Module:
    """Built without allocating or initialising weights: for counting parameters only."""
    with torch.device("meta"):
        return build_model(config)


def torchvision_keys(blocks: tuple[int, ...], bottleneck: bool) -> set[str]:
    """State-dict keys of torchvision's ResNet without fc, written out from its layout."""
    bn = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")
    keys = {"conv1.weight"} | {f"bn1.{s}" for s in bn}
    per_block = 3 if bottleneck else 2
    for layer, n in enumerate(blocks, start=1):
        for b in range(n):
            prefix = f"layer{layer}.{b}"
            for i in range(1, per_block + 1):
                keys |= {f"{prefix}.conv{i}.weight"} | {f"{prefix}.bn{i}.{s}" for s in bn}
            if b == 0 and (layer > 1 or bottleneck):
                keys |= {f"{prefix}.downsample.0.weight"}
                keys |= {f"{prefix}.downsample.1.{s}" for s in bn}
    return keys


# torchvision's published parameter counts (with the 1000-class fc) minus that fc.
@pytest.mark.parametrize(
    ("name", "with_fc", "fc_in"),
    [
        ("resnet18", 11_689_512, 512),
        ("resnet34", 21_797_672, 512),
        ("resnet50", 25_557_032, 2048),
        ("resnet101", 44_549_160, 2048),
    ],
)
def test_backbone_matches_torchvision_size(name, with_fc, fc_in):
    with torch.device("meta"):
        backbone = ResNet(name)
    assert n_params(backbone) == with_fc - (fc_in * 1000 + 1000)


@pytest.mark.parametrize(
    ("name", "blocks", "bottleneck"),
    [("resnet18", (2, 2, 2, 2), False), ("resnet50", (3, 4, 6, 3), True)],
)
def test_backbone_keys_are_torchvision_keys(name, blocks, bottleneck):
    with torch.device("meta"):
        state = ResNet(name).state_dict()
    assert set(state) == torchvision_keys(blocks, bottleneck)
    if bottleneck:
        assert state["conv1.weight"].shape == (64, 3, 7, 7)
        assert state["layer3.0.downsample.0.weight"].shape == (1024, 512, 1, 1)
        assert state["layer4.2.conv3.weight"].shape == (2048, 512, 1, 1)


def test_deep_stem_is_the_references_three_convs():
    with torch.device("meta"):
        state = ResNet("resnet50", deep_stem=True).state_dict()
    assert state["conv1.weight"].shape == (64, 3, 3, 3)
    assert state["conv2.weight"].shape == (64, 64, 3, 3)
    assert state["conv3.weight"].shape == (128, 64, 3, 3)
    assert state["layer1.0.conv1.weight"].shape == (64, 128, 1, 1)


@pytest.mark.parametrize(("output_stride", "grid", "d3", "d4"), [(8, 9, 2, 4), (16, 5, 1, 2)])
def test_backbone_output_stride(output_stride, grid, d3, d4):
    backbone = ResNet("resnet18", output_stride=output_stride).eval()
    with torch.no_grad():
        c3, c4 = backbone(torch.randn(1, 3, 65, 65))
    assert c4.shape == (1, 512, grid, grid)
    assert c3.shape == (1, 256, grid, grid)
    for layer, d in ((backbone.layer3, d3), (backbone.layer4, d4)):
        convs = [m for m in layer.modules() if isinstance(m, nn.Conv2d) and m.kernel_size == (3, 3)]
        assert {m.dilation for m in convs} == {(d, d)}


def test_pspnet_resnet50_matches_reference_size():
    """hszhao/semseg PSPNet-ResNet50 (deep stem), 2 classes, no aux: ~46.7 M parameters."""
    model = on_meta({"arch": "pspnet", "backbone": "resnet50", "classes": 2, "deep_stem": True})
    assert n_params(model) == pytest.approx(46.7e6, abs=0.05e6)
    assert model.cls[0].weight.numel() == pytest.approx(18.9e6, abs=0.05e6)
    # Our variant: one logit instead of two changes only the last 1x1 conv (513 parameters).
    one = on_meta({"arch": "pspnet", "backbone": "resnet50", "deep_stem": True})
    assert n_params(model) - n_params(one) == 513


def test_pspnet_resnet101_matches_reference_size():
    model = on_meta({"arch": "pspnet", "backbone": "resnet101", "classes": 2, "deep_stem": True})
    assert n_params(model) == pytest.approx(65.7e6, abs=0.05e6)


def test_pspnet_initializer_maps_channels_to_rgb():
    model = on_meta({"arch": "pspnet", "backbone": "resnet18", "in_channels": 5})
    bn, conv = model.initializer
    assert isinstance(bn, nn.BatchNorm2d) and bn.num_features == 5
    assert conv.weight.shape == (3, 5, 1, 1) and conv.bias is None


@pytest.mark.parametrize(
    ("extra", "size"),
    [({}, (37, 45)), ({"output_stride": 16}, (23, 16)), ({"deep_stem": True}, (33, 41))],
)
def test_pspnet_output_has_input_size(extra, size):
    model = build_model({"arch": "pspnet", "backbone": "resnet18", **extra}).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 5, *size))
    assert out.shape == (2, 1, *size)
    assert torch.isfinite(out).all()


def test_pspnet_aux_only_in_training():
    model = build_model({"arch": "pspnet", "backbone": "resnet18", "aux": True, "classes": 2})
    assert model.aux_weight == AUX_LOSS_WEIGHT == 0.4
    x = torch.randn(2, 5, 20, 27)
    main, aux = model.train()(x)
    assert main.shape == aux.shape == (2, 2, 20, 27)
    (main.mean() + model.aux_weight * aux.mean()).backward()
    assert all(p.grad is not None for p in model.parameters())
    with torch.no_grad():
        out = model.eval()(x)
    assert isinstance(out, torch.Tensor) and out.shape == (2, 2, 20, 27)


def test_pspnet_without_aux_has_no_aux_head():
    model = build_model({"arch": "pspnet", "backbone": "resnet18"}).train()
    assert model.aux is None
    assert isinstance(model(torch.randn(2, 5, 16, 16)), torch.Tensor)


@pytest.mark.parametrize("size", [(23, 37), (16, 16), (5, 9)])
def test_unet2d_output_has_input_size(size):
    model = build_model({"arch": "unet2d", "base_channels": 4}).eval()
    with torch.no_grad():
        out = model(torch.randn(2, 5, *size))
    assert out.shape == (2, 1, *size)


def test_unet2d_has_ronnebergers_layout():
    """Parameter count written out from the paper's figure (3x3 convs + BN, 2x2 up-convs)."""
    widths = [64, 128, 256, 512, 1024]
    conv = lambda cin, cout: cin * cout * 9 + 2 * cout  # noqa: E731  (no bias, BN affine)
    expected = conv(5, 64) + conv(64, 64)
    for cin, cout in zip(widths, widths[1:], strict=False):
        expected += conv(cin, cout) + conv(cout, cout)
    for w in widths[:0:-1]:
        expected += w * (w // 2) * 4 + w // 2  # up-conv halving the channels
        expected += conv(w, w // 2) + conv(w // 2, w // 2)
    expected += 64 + 1
    assert n_params(on_meta({"arch": "unet2d"})) == expected


@pytest.mark.parametrize("arch", ["unet3d", "vnet"])
@pytest.mark.parametrize("shape", [(2, 19, 21), (3, 16, 16), (1, 8, 13)])
def test_3d_models_keep_slices_and_size(arch, shape):
    model = build_model({"arch": arch, "base_channels": 2}).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 5, *shape))
    assert out.shape == (1, 1, *shape)


@pytest.mark.parametrize("arch", ["unet3d", "vnet"])
def test_3d_models_never_resample_slices(arch):
    model = on_meta({"arch": arch})
    resampling = [
        m
        for m in model.modules()
        if isinstance(m, nn.MaxPool3d | nn.ConvTranspose3d)
        or (isinstance(m, nn.Conv3d) and m.stride != (1, 1, 1))
    ]
    assert resampling
    for m in resampling:
        assert tuple(m.kernel_size) == (1, 2, 2) and tuple(m.stride) == (1, 2, 2)


def test_vnet_input_kernel_is_3():
    model = on_meta({"arch": "vnet"})
    assert model.input[0].kernel_size == (3, 3, 3)
    assert model.down[0].convs[0][0].kernel_size == (5, 5, 5)


def test_3d_model_trains_on_two_slices():
    model = build_model({"arch": "unet3d", "base_channels": 2, "depth": 2}).train()
    model(torch.randn(1, 5, 2, 12, 12)).mean().backward()
    assert all(p.grad is not None for p in model.parameters())


def test_resolve_config_fills_defaults():
    config = resolve_config({"arch": "pspnet", "dropout": 0})
    assert config["in_channels"] == 5 and config["classes"] == 1 and config["aux"] is False
    assert config["backbone"] == "resnet50" and config["output_stride"] == 8
    assert config["dropout"] == 0.0 and isinstance(config["dropout"], float)
    assert resolve_config(config) == config
    assert is_3d({"arch": "vnet"}) and not is_3d({"arch": "unet2d"})


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"arch": "segformer"}, "arch"),
        ({}, "arch"),
        ({"arch": "unet2d", "backbone": "resnet18"}, "unknown keys"),
        ({"arch": "pspnet", "aux": 1}, "aux must be bool"),
        ({"arch": "unet3d", "depth": True}, "depth must be int"),
        ({"arch": "pspnet", "backbone": "resnet152"}, "backbone"),
        ({"arch": "pspnet", "output_stride": 32}, "output_stride"),
        ({"arch": "vnet", "kernel_size": 4}, "kernel_size"),
        ({"arch": "unet2d", "depth": 0}, "depth"),
    ],
)
def test_bad_config_is_a_clear_value_error(config, message):
    with pytest.raises(ValueError, match=message):
        build_model(config)


def test_padding_round_trip():
    x = torch.randn(1, 2, 3, 10, 13)
    padded = pad_to_multiple(x, 8, plus=1)
    assert padded.shape == (1, 2, 3, 17, 17)
    assert torch.equal(crop_like(padded, x), x)
    assert pad_to_multiple(x, 1) is x
    assert pad_to_multiple(torch.zeros(1, 1, 16, 17), 16).shape == (1, 1, 16, 32)


def test_width_scales_every_channel_count():
    narrow = build_model({"arch": "pspnet", "backbone": "resnet18", "width": 16, "aux": True})
    full = build_model({"arch": "pspnet", "backbone": "resnet18", "aux": True})
    assert narrow.backbone.channels == (64, 128) and full.backbone.channels == (256, 512)
    assert narrow.cls[0].out_channels == 128 and narrow.aux[0].out_channels == 64
    n_narrow = sum(p.numel() for p in narrow.parameters())
    n_full = sum(p.numel() for p in full.parameters())
    assert 10 < n_full / n_narrow < 20  # channels / 4 -> parameters / ~16
    narrow.eval()
    with torch.no_grad():
        assert narrow(torch.rand(1, 5, 33, 47)).shape == (1, 1, 33, 47)
    with pytest.raises(ValueError, match="width"):
        build_model({"arch": "pspnet", "width": 12})
