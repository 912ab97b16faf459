"""2D U-Net (Ronneberger et al. 2015) for 5-channel CT-perfusion slices.

The original's layout: per level two 3x3 convs with ReLU, 2x2 max pooling, channels doubling from
``base_channels`` (64) over ``depth`` (4) poolings, 2x2 transposed convs halving them, skip
concatenation, and a 1x1 conv to ``classes`` logits. Two changes: the convs are padded, so the
output has the input's size without cropping, and each conv is followed by BN (as in the 3D U-Net
of Cicek et al.), which the original predates. Inputs whose size is not a multiple of
``2 ** depth`` are zero-padded to one and the logits cropped back.

Input ``(N, in_channels, H, W)``, output logits ``(N, classes, H, W)``.
"""

from __future__ import annotations

import torch
from torch import nn

from strokelens.core.models.padding import crop_like, pad_to_multiple


def double_conv(
    conv: type[nn.Module], norm: type[nn.Module], cin: int, mid: int, cout: int
) -> nn.Sequential:
    """conv 3 -> norm -> ReLU, twice (2D or 3D by the layer types passed)."""
    return nn.Sequential(
        conv(cin, mid, 3, padding=1, bias=False),
        norm(mid),
        nn.ReLU(inplace=True),
        conv(mid, cout, 3, padding=1, bias=False),
        norm(cout),
        nn.ReLU(inplace=True),
    )


class UNetBase(nn.Module):
    """The U-Net pass shared by the 2D and 3D variants; subclasses build its layers.

    ``down[i]`` is level i's conv block (fed pooled features below level 0), ``up[j]`` and
    ``up_conv[j]`` the j-th step back up, ``multiple`` the in-plane size the input is padded to.
    """

    down: nn.ModuleList
    pool: nn.Module
    up: nn.ModuleList
    up_conv: nn.ModuleList
    logits: nn.Module

    def __init__(self, base_channels: int, depth: int):
        super().__init__()
        if depth < 1 or base_channels < 1:
            raise ValueError(f"depth and base_channels must be >= 1, not {depth}, {base_channels}")
        self.multiple = 2**depth

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = pad_to_multiple(x, self.multiple)
        skips = []
        for i, block in enumerate(self.down):
            h = block(h if i == 0 else self.pool(h))
            skips.append(h)
        skips.pop()
        for up, conv in zip(self.up, self.up_conv, strict=True):
            h = conv(torch.cat([skips.pop(), up(h)], dim=1))
        return crop_like(self.logits(h), x)


class UNet2D(UNetBase):
    """Contracting path, expanding path with skip connections, 1x1 logit layer."""

    def __init__(
        self, in_channels: int = 5, classes: int = 1, base_channels: int = 64, depth: int = 4
    ):
        super().__init__(base_channels, depth)
        widths = [base_channels * 2**i for i in range(depth + 1)]
        self.down = nn.ModuleList()
        cin = in_channels
        for w in widths:
            self.down.append(double_conv(nn.Conv2d, nn.BatchNorm2d, cin, w, w))
            cin = w
        self.pool = nn.MaxPool2d(2)
        self.up = nn.ModuleList(
            nn.ConvTranspose2d(w, w // 2, 2, stride=2) for w in reversed(widths[1:])
        )
        self.up_conv = nn.ModuleList(
            double_conv(nn.Conv2d, nn.BatchNorm2d, w, w // 2, w // 2) for w in reversed(widths[1:])
        )
        self.logits = nn.Conv2d(base_channels, classes, 1)
