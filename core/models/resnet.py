"""Dilated ResNet-18/34/50/101 backbones for PSPNet, written after torchvision's models/resnet.py.

Module names are torchvision's (``conv1``, ``bn1``, ``layer1``..``layer4``, and inside the blocks
``conv1``/``bn1``/``conv2``/..., ``downsample.0``/``.1``), so a torchvision ImageNet state dict loads
unchanged; there is no ``avgpool``/``fc`` (a checkpoint's ``fc.*`` keys are just not used).
Where it departs from torchvision, it follows PSPNet's reference (hszhao/semseg):

- Output stride 8: layer3 and layer4 keep stride 1 and dilate by 2 and 4 instead (16: only layer4,
  by 2). Every block of a dilated layer uses the layer's dilation, as the reference does
  (torchvision keeps the previous dilation in a layer's first block). Dilation changes no weights.
- ``deep_stem``: the reference's stem of three 3x3 convs (64-64-128; keys ``conv1``/``bn1``,
  ``conv2``/``bn2``, ``conv3``/``bn3`` as in semseg's ResNet) instead of the 7x7 conv.

The input is RGB-like (3 channels); PSPNet's initializer layer maps the CT channels to it.
"""

from __future__ import annotations

import torch
from torch import nn


def _conv3x3(inplanes: int, planes: int, stride: int = 1, dilation: int = 1) -> nn.Conv2d:
    return nn.Conv2d(
        inplanes, planes, 3, stride=stride, padding=dilation, dilation=dilation, bias=False
    )


class BasicBlock(nn.Module):
    """Two 3x3 convs with a shortcut (ResNet-18/34)."""

    expansion = 1

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        dilation: int = 1,
        downsample: nn.Module | None = None,
    ):
        super().__init__()
        self.conv1 = _conv3x3(inplanes, planes, stride, dilation)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(planes, planes, 1, dilation)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (carrying stride and dilation, as torchvision's v1.5), 1x1 expand x4."""

    expansion = 4

    def __init__(
        self,
        inplanes: int,
        planes: int,
        stride: int = 1,
        dilation: int = 1,
        downsample: nn.Module | None = None,
    ):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = _conv3x3(planes, planes, stride, dilation)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes * self.expansion, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * self.expansion)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + identity)


#: Block type and blocks per layer of each depth (He et al. 2016, Table 1).
ARCHITECTURES: dict[str, tuple[type[BasicBlock] | type[Bottleneck], tuple[int, int, int, int]]] = {
    "resnet18": (BasicBlock, (2, 2, 2, 2)),
    "resnet34": (BasicBlock, (3, 4, 6, 3)),
    "resnet50": (Bottleneck, (3, 4, 6, 3)),
    "resnet101": (Bottleneck, (3, 4, 23, 3)),
}

#: (strides, dilations) of layer1..layer4 for each output stride.
_STAGES = {8: ((1, 2, 1, 1), (1, 1, 2, 4)), 16: ((1, 2, 2, 1), (1, 1, 1, 2))}


class ResNet(nn.Module):
    """A dilated ResNet returning the layer3 and layer4 feature maps."""

    def __init__(
        self,
        name: str = "resnet50",
        output_stride: int = 8,
        deep_stem: bool = False,
        width: int = 64,
    ):
        super().__init__()
        if width < 8 or width % 8:
            raise ValueError(
                f"width must be a multiple of 8 (64 = the standard ResNet), not {width}"
            )
        if name not in ARCHITECTURES:
            raise ValueError(f"unknown backbone {name!r}; choose one of {sorted(ARCHITECTURES)}")
        if output_stride not in _STAGES:
            raise ValueError(f"output_stride must be one of {sorted(_STAGES)}, not {output_stride}")
        block, blocks = ARCHITECTURES[name]
        self.deep_stem = deep_stem
        w = width
        if deep_stem:
            self.conv1 = _conv3x3(3, w, stride=2)
            self.bn1 = nn.BatchNorm2d(w)
            self.conv2 = _conv3x3(w, w)
            self.bn2 = nn.BatchNorm2d(w)
            self.conv3 = _conv3x3(w, 2 * w)
            self.bn3 = nn.BatchNorm2d(2 * w)
            self.inplanes = 2 * w
        else:
            self.conv1 = nn.Conv2d(3, w, 7, stride=2, padding=3, bias=False)
            self.bn1 = nn.BatchNorm2d(w)
            self.inplanes = w
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        strides, dilations = _STAGES[output_stride]
        self.layer1 = self._make_layer(block, w, blocks[0], strides[0], dilations[0])
        self.layer2 = self._make_layer(block, 2 * w, blocks[1], strides[1], dilations[1])
        self.layer3 = self._make_layer(block, 4 * w, blocks[2], strides[2], dilations[2])
        self.layer4 = self._make_layer(block, 8 * w, blocks[3], strides[3], dilations[3])
        #: Channels of the layer3 and layer4 outputs (what the heads are sized from).
        self.channels = (4 * w * block.expansion, 8 * w * block.expansion)

        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def _make_layer(
        self, block: type[nn.Module], planes: int, blocks: int, stride: int, dilation: int
    ) -> nn.Sequential:
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes * block.expansion, 1, stride=stride, bias=False),
                nn.BatchNorm2d(planes * block.expansion),
            )
        layers = [block(self.inplanes, planes, stride, dilation, downsample)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes, 1, dilation) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = self.relu(self.bn1(self.conv1(x)))
        if self.deep_stem:
            x = self.relu(self.bn2(self.conv2(x)))
            x = self.relu(self.bn3(self.conv3(x)))
        x = self.layer2(self.layer1(self.maxpool(x)))
        c3 = self.layer3(x)
        return c3, self.layer4(c3)
