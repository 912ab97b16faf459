"""Augmentation: parameter ranges, random order, binary masks, 2D and 3D batches."""

from __future__ import annotations

import math

import torch

from strokelens.training.augment import AugmentConfig, augment, random_affines

NONE = AugmentConfig(rotate_deg=0.0, translate=0.0, scale=(1.0, 1.0), flip_lr=False, flip_ap=False)


def _disk(n=4, size=64, radius=12):
    yy, xx = torch.meshgrid(torch.arange(size), torch.arange(size), indexing="ij")
    disk = (((yy - 30) ** 2 + (xx - 34) ** 2) < radius**2).float()
    return disk.expand(n, 1, size, size).clone()


def test_identity_config_changes_nothing():
    g = torch.Generator().manual_seed(0)
    images = torch.rand(3, 5, 32, 40)
    masks = (torch.rand(3, 1, 32, 40) > 0.7).to(torch.uint8)
    out, out_masks = augment(images, masks, NONE, g)
    torch.testing.assert_close(out, images, atol=1e-5, rtol=0)
    assert torch.equal(out_masks, masks)


def test_flips_are_exact():
    g = torch.Generator().manual_seed(1)
    images = torch.rand(64, 1, 16, 16)
    out, _ = augment(images, torch.zeros(64, 1, 16, 16), AugmentConfig(0, 0, (1, 1)), g)
    candidates = [images, images.flip(-1), images.flip(-2), images.flip(-1).flip(-2)]
    kinds = []
    for i in range(64):
        match = [torch.allclose(out[i], c[i], atol=1e-5) for c in candidates]
        assert sum(match) == 1
        kinds.append(match.index(True))
    assert set(kinds) == {0, 1, 2, 3}  # each flip combination happens


def test_parameters_stay_in_range_and_order_is_random():
    g = torch.Generator().manual_seed(2)
    cfg = AugmentConfig(flip_lr=False, flip_ap=False)
    theta = random_affines(2000, 64, 64, cfg, g)
    linear = theta[:, :, :2]
    scale = torch.sqrt(torch.det(linear))
    assert scale.min() >= 0.9 - 1e-5 and scale.max() <= 1.1 + 1e-5
    angle = torch.atan2(linear[:, 1, 0], linear[:, 0, 0])
    assert angle.abs().max() <= math.radians(10) + 1e-5
    assert angle.abs().max() > math.radians(9)
    # Translation is 10 % of the size (0.2 normalised units) before or after a scale/rotation.
    assert theta[:, :, 2].norm(dim=1).max() <= math.sqrt(2) * 0.2 * 1.1 + 1e-5
    # Scaling before vs after the translation gives different offsets for the same sample size:
    # the composed offset is not always the raw draw, so both orders occur.
    g2 = torch.Generator().manual_seed(3)
    only_t_s = AugmentConfig(rotate_deg=0.0, flip_lr=False, flip_ap=False)
    th = random_affines(4000, 64, 64, only_t_s, g2)
    assert th[:, :, 2].abs().max() > 0.2 + 1e-3  # translate then scale: offset scaled up


def test_masks_stay_binary_and_area_is_kept():
    g = torch.Generator().manual_seed(4)
    masks = _disk()
    images = masks.repeat(1, 5, 1, 1)
    out, out_masks = augment(images, masks, AugmentConfig(), g)
    assert set(out_masks.unique().tolist()) <= {0.0, 1.0}
    area, new_area = masks.sum((1, 2, 3)), out_masks.sum((1, 2, 3))
    ratio = new_area / area
    assert ratio.min() > 0.9**2 * 0.85 and ratio.max() < 1.1**2 * 1.15
    assert not torch.equal(out_masks, masks)


def test_volumes_get_one_transform_for_all_slices():
    g = torch.Generator().manual_seed(5)
    vol = _disk(2).unsqueeze(2).repeat(1, 5, 3, 1, 1)  # (N, C, Z, H, W)
    masks = _disk(2).unsqueeze(2).repeat(1, 1, 3, 1, 1)
    out, out_masks = augment(vol, masks, AugmentConfig(), g)
    assert out.shape == vol.shape and out_masks.shape == masks.shape
    assert torch.equal(out_masks[:, :, 0], out_masks[:, :, 2])
    torch.testing.assert_close(out[:, :, 0], out[:, :, 1])


def test_seeded_generator_is_deterministic():
    x, m = torch.rand(4, 5, 32, 32), _disk(4, 32, 8)
    a = augment(x, m, AugmentConfig(), torch.Generator().manual_seed(7))
    b = augment(x, m, AugmentConfig(), torch.Generator().manual_seed(7))
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
