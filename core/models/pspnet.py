"""PSPNet (Zhao et al. 2017) with the paper's initializer layer, giving lesion logits.

Layout and module names follow hszhao/semseg model/pspnet.py (``ppm.features.i``, ``cls``,
``aux``), so that reference's checkpoints map onto it (see ``strokelens.core.weights``):

- ``initializer``: BN over the input channels, then a 1x1 conv without bias to 3 channels,
  ``L_init = BN(X) * k_init`` (eq. 1 of the paper), so the RGB-pretrained backbone takes CT maps.
- ``backbone``: dilated ResNet (``strokelens.core.models.resnet``), output stride 8 (or 16).
- ``ppm``: pyramid pooling, bins (1, 2, 3, 6): per bin adaptive average pooling, 1x1 conv
  C -> C/4 (no bias), BN, ReLU, bilinear upsampling (align_corners=True); concatenated with the
  backbone features (2C channels).
- ``cls``: 3x3 conv 2C -> 512, BN, ReLU, Dropout2d(0.1), 1x1 conv -> ``classes``.
- ``aux`` (only with ``aux=True``): the same on layer3 with 256 channels.
- ``width`` (64 = the reference) scales every channel count: the backbone's stem and stages and
  the two heads (8 x width and 4 x width). ``width=16`` gives a CPU-sized PSPNet (about 1/16 of
  the compute); only width 64 takes ImageNet/VOC checkpoints.

``forward`` takes ``(N, in_channels, H, W)`` of any H, W and returns logits ``(N, classes, H, W)``;
in training mode with ``aux=True`` it returns ``(main, aux)``, both that shape, and the trainer
adds ``AUX_LOSS_WEIGHT * loss(aux)`` (the auxiliary head is a training aid only). Training needs
batches of 2 or more: the pyramid's 1x1 bin leaves BN one value per channel and sample.

Size handling: after the initializer the image is zero-padded (zero is the mean colour an
ImageNet-normalised backbone expects) to ``k * output_stride + 1`` pixels, as the reference's
input sizes are, so feature i sits exactly on pixel ``i * output_stride`` and the corner-aligned
upsampling is exact; the logits are cropped back to H x W.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from strokelens.core.models.padding import crop_like, pad_to_multiple
from strokelens.core.models.resnet import ResNet

#: Weight of the auxiliary head's loss (PSPNet paper and reference).
AUX_LOSS_WEIGHT = 0.4

#: Output sizes of the pyramid pooling levels.
BINS = (1, 2, 3, 6)


class PyramidPooling(nn.Module):
    """Pools the features to each bin size, reduces them, upsamples and concatenates (C -> 2C)."""

    def __init__(self, channels: int, bins: tuple[int, ...] = BINS):
        super().__init__()
        reduced = channels // len(bins)
        self.features = nn.ModuleList(
            nn.Sequential(
                nn.AdaptiveAvgPool2d(b),
                nn.Conv2d(channels, reduced, 1, bias=False),
                nn.BatchNorm2d(reduced),
                nn.ReLU(inplace=True),
            )
            for b in bins
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        size = x.shape[-2:]
        pooled = [
            F.interpolate(f(x), size=size, mode="bilinear", align_corners=True)
            for f in self.features
        ]
        return torch.cat([x, *pooled], dim=1)


def _head(channels: int, hidden: int, classes: int, dropout: float) -> nn.Sequential:
    """3x3 conv, BN, ReLU, Dropout2d, 1x1 conv (indices 0, 1, 4 hold weights, as semseg's)."""
    return nn.Sequential(
        nn.Conv2d(channels, hidden, 3, padding=1, bias=False),
        nn.BatchNorm2d(hidden),
        nn.ReLU(inplace=True),
        nn.Dropout2d(dropout),
        nn.Conv2d(hidden, classes, 1),
    )


class PSPNet(nn.Module):
    """Initializer layer, dilated ResNet, pyramid pooling and a 1-logit (or ``classes``) head."""

    def __init__(
        self,
        in_channels: int = 5,
        classes: int = 1,
        backbone: str = "resnet50",
        output_stride: int = 8,
        deep_stem: bool = False,
        aux: bool = False,
        dropout: float = 0.1,
        width: int = 64,
    ):
        super().__init__()
        self.initializer = nn.Sequential(
            nn.BatchNorm2d(in_channels), nn.Conv2d(in_channels, 3, 1, bias=False)
        )
        self.backbone = ResNet(backbone, output_stride, deep_stem, width)
        self.output_stride = output_stride
        c3, c4 = self.backbone.channels
        self.ppm = PyramidPooling(c4)
        self.cls = _head(2 * c4, 8 * width, classes, dropout)
        self.aux = _head(c3, 4 * width, classes, dropout) if aux else None
        self.aux_weight = AUX_LOSS_WEIGHT

    def forward(self, x: torch.Tensor) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        padded = pad_to_multiple(self.initializer(x), self.output_stride, plus=1)
        size = padded.shape[-2:]
        c3, c4 = self.backbone(padded)
        main = self.cls(self.ppm(c4))
        main = crop_like(F.interpolate(main, size, mode="bilinear", align_corners=True), x)
        if self.aux is None or not self.training:
            return main
        aux = crop_like(F.interpolate(self.aux(c3), size, mode="bilinear", align_corners=True), x)
        return main, aux
