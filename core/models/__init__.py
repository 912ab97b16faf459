"""The segmentation networks, built from a plain configuration dict.

``build_model({"arch": "pspnet", "backbone": "resnet50", "aux": True})`` -> ``torch.nn.Module``.
``arch`` picks the class; every other key is a keyword of that class's constructor (defaults
there), so a configuration is data that can be stored beside the weights and rebuilt later:

- ``pspnet`` (:class:`PSPNet`): ``in_channels`` 5, ``classes`` 1, ``backbone`` resnet18/34/50/101,
  ``output_stride`` 8 or 16, ``deep_stem``, ``aux``, ``dropout``.
- ``unet2d`` (:class:`UNet2D`): ``in_channels``, ``classes``, ``base_channels`` 64, ``depth`` 4.
- ``unet3d`` (:class:`UNet3D`): ``in_channels``, ``classes``, ``base_channels`` 32, ``depth`` 3.
- ``vnet`` (:class:`VNet`): ``in_channels``, ``classes``, ``base_channels`` 16, ``kernel_size`` 5.

Every model gives logits, one channel by default (lesion vs background): 2D models map
``(N, C, H, W)`` to ``(N, classes, H, W)``, 3D models ``(N, C, Z, Y, X)`` to
``(N, classes, Z, Y, X)`` (StrokeLens' (z, y, x) order; they never resample Z).
"""

from __future__ import annotations

import inspect
from typing import Any

from torch import nn

from strokelens.core.models.pspnet import AUX_LOSS_WEIGHT, PSPNet
from strokelens.core.models.unet import UNet2D
from strokelens.core.models.unet3d import UNet3D
from strokelens.core.models.vnet import VNet

__all__ = [
    "ARCHITECTURES",
    "AUX_LOSS_WEIGHT",
    "PSPNet",
    "UNet2D",
    "UNet3D",
    "VNet",
    "build_model",
    "is_3d",
    "resolve_config",
]

ARCHITECTURES: dict[str, type[nn.Module]] = {
    "pspnet": PSPNet,
    "unet2d": UNet2D,
    "unet3d": UNet3D,
    "vnet": VNet,
}


def resolve_config(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` checked and completed with the defaults (what to store beside weights).

    Raises ValueError for an unknown ``arch``, unknown keys or a value of the wrong type.
    """
    arch = config.get("arch")
    if arch not in ARCHITECTURES:
        raise ValueError(f"model arch must be one of {sorted(ARCHITECTURES)}, not {arch!r}")
    params = inspect.signature(ARCHITECTURES[arch]).parameters
    unknown = sorted(set(config) - set(params) - {"arch"})
    if unknown:
        raise ValueError(f"unknown keys for {arch}: {unknown}; allowed: {sorted(params)}")
    resolved: dict[str, Any] = {"arch": arch}
    for name, p in params.items():
        value = config.get(name, p.default)
        expected = type(p.default)
        if expected is float and type(value) is int:
            value = float(value)
        # type() rather than isinstance(): a bool is an int in Python, but not a valid depth.
        if type(value) is not expected:
            raise ValueError(f"{arch} {name} must be {expected.__name__}, not {value!r}")
        resolved[name] = value
    return resolved


def build_model(config: dict[str, Any]) -> nn.Module:
    """A freshly initialised network for ``config`` (see the module docstring for the keys)."""
    resolved = resolve_config(config)
    arch = resolved.pop("arch")
    return ARCHITECTURES[arch](**resolved)


def is_3d(config: dict[str, Any]) -> bool:
    """Whether the configured network takes volumes ``(N, C, Z, Y, X)`` rather than slices."""
    return resolve_config(config)["arch"] in ("unet3d", "vnet")
