"""Padding inputs to a size the network divides evenly, and cropping the output back.

Every model here downsamples in-plane by a fixed factor; instead of demanding 256 x 256 slices
they zero-pad the last two axes (y, x) up to a multiple of that factor and crop the logits back,
so any slice size works and the output always matches the input.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def pad_to_multiple(x: torch.Tensor, multiple: int, plus: int = 0) -> torch.Tensor:
    """Zero-pad the last two axes (y, x) at the far end to a size ``k * multiple + plus``."""
    pad_y = -(x.shape[-2] - plus) % multiple
    pad_x = -(x.shape[-1] - plus) % multiple
    if pad_y == 0 and pad_x == 0:
        return x
    return F.pad(x, (0, pad_x, 0, pad_y))


def crop_like(x: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """``x`` cut to the (y, x) size of ``reference`` (undoes :func:`pad_to_multiple`)."""
    return x[..., : reference.shape[-2], : reference.shape[-1]]
