"""3D U-Net (Cicek et al. 2016) that never pools along the slice axis.

Tensor layout: ``(N, C, Z, Y, X)`` -- StrokeLens' ``(z, y, x)`` volume order with batch and
channel axes in front; the output logits are ``(N, classes, Z, Y, X)``. ISLES slabs can be only 2
slices deep (5 mm apart), so, as in the paper, max pooling and the transposed convs have kernel
and stride (1, 2, 2) -- the paper's (2, 2, 1) in its (x, y, z) order -- and only Y, X shrink.

Otherwise Cicek's layout: per level two 3x3x3 convs with BN and ReLU, the second doubling the
channels (32, 64 | 64, 128 | 128, 256 | 256, 512 for ``base_channels`` 32, ``depth`` 3), transposed
convs keeping the channel count, skip concatenation, a 1x1x1 conv to ``classes`` logits. Convs are
padded (output size = input size); Y, X are zero-padded to a multiple of ``2 ** depth`` and the
logits cropped back, so odd in-plane sizes work.
"""

from __future__ import annotations

from torch import nn

from strokelens.core.models.unet import UNetBase, double_conv

#: Kernel and stride of pooling and up-convolution: in-plane only (Z, Y, X order).
IN_PLANE = (1, 2, 2)


class UNet3D(UNetBase):
    """Contracting and expanding 3D paths with in-plane-only resampling."""

    def __init__(
        self, in_channels: int = 5, classes: int = 1, base_channels: int = 32, depth: int = 3
    ):
        super().__init__(base_channels, depth)
        self.down = nn.ModuleList()
        cin = in_channels
        for i in range(depth + 1):
            mid = base_channels * 2**i
            self.down.append(double_conv(nn.Conv3d, nn.BatchNorm3d, cin, mid, 2 * mid))
            cin = 2 * mid
        self.pool = nn.MaxPool3d(IN_PLANE)
        self.up = nn.ModuleList()
        self.up_conv = nn.ModuleList()
        for i in reversed(range(depth)):
            skip = base_channels * 2 ** (i + 1)
            self.up.append(nn.ConvTranspose3d(cin, cin, IN_PLANE, stride=IN_PLANE))
            self.up_conv.append(double_conv(nn.Conv3d, nn.BatchNorm3d, cin + skip, skip, skip))
            cin = skip
        self.logits = nn.Conv3d(cin, classes, 1)
