"""The paper's augmentation, vectorised in torch (runs on the GPU when the batch is there).

Per sample: rotation in [-10, 10] degrees, translation in [-10 %, 10 %] of the image size, flips
across the sagittal (left-right) and coronal (front-back) axes, scaling in [0.9, 1.1], each
parameter sampled uniformly and the four operations composed in a random order per sample. The
composition is one affine per sample, applied with one ``grid_sample`` call: bilinear for the
images, nearest for the masks (which stay binary).
"""

from __future__ import annotations

from typing import Annotated

import torch
import torch.nn.functional as F
from pydantic import AfterValidator, Field
from pydantic.dataclasses import dataclass

from strokelens.core.schema import STRICT, Bool, Finite, Positive


def _ordered(pair: tuple[float, float]) -> tuple[float, float]:
    if pair[0] > pair[1]:
        raise ValueError(f"low ({pair[0]}) must not exceed high ({pair[1]})")
    return pair


@dataclass(frozen=True, config=STRICT)
class AugmentConfig:
    """The ``[augment]`` table's schema (a config's ranges, checked when it is read)."""

    rotate_deg: Annotated[Finite, Field(ge=0, le=180)] = 10.0
    translate: Annotated[Finite, Field(ge=0, lt=1)] = 0.10  # fraction of the image size
    scale: Annotated[tuple[Positive, Positive], AfterValidator(_ordered)] = (0.9, 1.1)
    flip_lr: Bool = True  # across the sagittal plane (x)
    flip_ap: Bool = True  # across the coronal plane (y)


def _uniform(n: int, low: float, high: float, g: torch.Generator, device) -> torch.Tensor:
    return low + (high - low) * torch.rand(n, generator=g, device=device)


def random_affines(
    n: int, height: int, width: int, config: AugmentConfig, g: torch.Generator, device="cpu"
) -> torch.Tensor:
    """``(n, 2, 3)`` matrices for ``F.affine_grid`` (output -> input, normalised coordinates).

    Built in pixel units (so rotations stay rotations on non-square images), then normalised.
    """
    eye = torch.eye(3, device=device).expand(n, 3, 3)
    ops = eye.unsqueeze(1).repeat(1, 4, 1, 1)  # (n, 4 ops, 3, 3)
    angle = torch.deg2rad(_uniform(n, -config.rotate_deg, config.rotate_deg, g, device))
    ops[:, 0, 0, 0], ops[:, 0, 0, 1] = torch.cos(angle), -torch.sin(angle)
    ops[:, 0, 1, 0], ops[:, 0, 1, 1] = torch.sin(angle), torch.cos(angle)
    t = config.translate
    ops[:, 1, 0, 2] = _uniform(n, -t, t, g, device) * width
    ops[:, 1, 1, 2] = _uniform(n, -t, t, g, device) * height
    flips = torch.rand(n, 2, generator=g, device=device) < 0.5
    flips &= torch.tensor([config.flip_lr, config.flip_ap], device=device)
    ops[:, 2, 0, 0] = 1.0 - 2.0 * flips[:, 0].float()
    ops[:, 2, 1, 1] = 1.0 - 2.0 * flips[:, 1].float()
    s = _uniform(n, *config.scale, g, device)
    ops[:, 3, 0, 0] = ops[:, 3, 1, 1] = s
    # Random order per sample: compose the four operations as a permutation dictates.
    order = torch.argsort(torch.rand(n, 4, generator=g, device=device), dim=1)
    ops = torch.gather(ops, 1, order[:, :, None, None].expand(n, 4, 3, 3))
    pixel = ops[:, 0] @ ops[:, 1] @ ops[:, 2] @ ops[:, 3]
    to_norm = torch.diag(torch.tensor([2.0 / width, 2.0 / height, 1.0], device=device))
    from_norm = torch.diag(torch.tensor([width / 2.0, height / 2.0, 1.0], device=device))
    return (to_norm @ pixel @ from_norm)[:, :2, :]


def augment(
    images: torch.Tensor,
    masks: torch.Tensor,
    config: AugmentConfig,
    g: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Augment a batch: images ``(N, C, H, W)`` float, masks ``(N, 1, H, W)`` 0/1.

    3D batches ``(N, C, Z, H, W)`` get one transform per volume, the same on every slice.
    """
    volumetric = images.dim() == 5
    if volumetric:
        n, c, z, h, w = images.shape
        images = images.permute(0, 2, 1, 3, 4).reshape(n * z, c, h, w)
        masks = masks.permute(0, 2, 1, 3, 4).reshape(n * z, masks.shape[1], h, w)
    else:
        n, z = images.shape[0], 1
    h, w = images.shape[-2:]
    theta = random_affines(n, h, w, config, g, images.device).to(images.dtype)
    theta = theta.repeat_interleave(z, dim=0)
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    out = F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
    out_masks = F.grid_sample(
        masks.to(images.dtype), grid, mode="nearest", padding_mode="zeros", align_corners=False
    ).to(masks.dtype)
    if volumetric:
        out = out.reshape(n, z, c, h, w).permute(0, 2, 1, 3, 4)
        out_masks = out_masks.reshape(n, z, -1, h, w).permute(0, 2, 1, 3, 4)
    return out, out_masks
