"""V-Net (Milletari et al. 2016) for thin CT-perfusion slabs.

Tensor layout as the 3D U-Net: input ``(N, C, Z, Y, X)``, logits ``(N, classes, Z, Y, X)``.
Milletari's layout: residual stages of 1, 2, 3, 3, 3 convs (``kernel_size`` 5, padded) with
PReLU, channels doubling from ``base_channels`` (16) by strided down-convolutions, transposed
up-convolutions, skip concatenation, and stages of 3, 3, 2, 1 convs back up; BN follows each
conv. The paper's changes for slabs of 2 slices: the input conv is 3x3x3 (unit padding) and the
down/up convolutions have kernel and stride (1, 2, 2) in (Z, Y, X) -- (2, 2, 1) in the paper's
(x, y, z) -- so the slice axis is never resampled. The input stage's residual is a 1x1x1
projection of the input (the original repeats its single channel, which 5 channels cannot).
Y, X are zero-padded to a multiple of 16 and the logits cropped back.
"""

from __future__ import annotations

import torch
from torch import nn

from strokelens.core.models.padding import crop_like, pad_to_multiple
from strokelens.core.models.unet3d import IN_PLANE


def _conv_bn_prelu(conv: nn.Module, channels: int) -> nn.Sequential:
    """``conv`` (without bias: BN follows), BN, PReLU."""
    return nn.Sequential(conv, nn.BatchNorm3d(channels), nn.PReLU(channels))


def _convs(channels: int, n: int, kernel: int) -> nn.Sequential:
    return nn.Sequential(
        *(
            _conv_bn_prelu(
                nn.Conv3d(channels, channels, kernel, padding=kernel // 2, bias=False), channels
            )
            for _ in range(n)
        )
    )


class Down(nn.Module):
    """Strided (1, 2, 2) conv doubling the channels, then a residual stage of ``n`` convs."""

    def __init__(self, cin: int, n: int, kernel: int):
        super().__init__()
        self.down = _conv_bn_prelu(
            nn.Conv3d(cin, 2 * cin, IN_PLANE, stride=IN_PLANE, bias=False), 2 * cin
        )
        self.convs = _convs(2 * cin, n, kernel)
        self.act = nn.PReLU(2 * cin)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        d = self.down(x)
        return self.act(self.convs(d) + d)


class Up(nn.Module):
    """Transposed (1, 2, 2) conv to ``cout / 2``, concatenation with the skip, residual stage."""

    def __init__(self, cin: int, cout: int, n: int, kernel: int):
        super().__init__()
        up = nn.ConvTranspose3d(cin, cout // 2, IN_PLANE, stride=IN_PLANE, bias=False)
        self.up = _conv_bn_prelu(up, cout // 2)
        self.convs = _convs(cout, n, kernel)
        self.act = nn.PReLU(cout)

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        h = torch.cat([skip, self.up(x)], dim=1)
        return self.act(self.convs(h) + h)


class VNet(nn.Module):
    """Input stage, four down stages, four up stages, 1x1x1 logit layer."""

    def __init__(
        self, in_channels: int = 5, classes: int = 1, base_channels: int = 16, kernel_size: int = 5
    ):
        super().__init__()
        if base_channels < 1 or kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(
                f"base_channels must be >= 1 and kernel_size odd, not {base_channels}, "
                f"{kernel_size}"
            )
        b, k = base_channels, kernel_size
        self.input = nn.Sequential(
            nn.Conv3d(in_channels, b, 3, padding=1, bias=False), nn.BatchNorm3d(b)
        )
        self.input_skip = nn.Conv3d(in_channels, b, 1, bias=False)
        self.input_act = nn.PReLU(b)
        self.down = nn.ModuleList(
            [Down(b, 2, k), Down(2 * b, 3, k), Down(4 * b, 3, k), Down(8 * b, 3, k)]
        )
        self.up = nn.ModuleList(
            [Up(16 * b, 16 * b, 3, k), Up(16 * b, 8 * b, 3, k), Up(8 * b, 4 * b, 2, k)]
            + [Up(4 * b, 2 * b, 1, k)]
        )
        self.logits = nn.Conv3d(2 * b, classes, 1)
        self.multiple = 2 ** len(self.down)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        padded = pad_to_multiple(x, self.multiple)
        h = self.input_act(self.input(padded) + self.input_skip(padded))
        skips = [h]
        for down in self.down:
            h = down(h)
            skips.append(h)
        skips.pop()
        for up in self.up:
            h = up(h, skips.pop())
        return crop_like(self.logits(h), x)
