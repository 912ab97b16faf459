"""torch datasets over the preprocessing cache: slices for 2D models, volumes for 3D models."""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import Dataset

from strokelens.training.cache import CacheReader


class SliceDataset(Dataset):
    """Every slice of the given labelled cases: ``(image (C, H, W), label (1, H, W))`` float32."""

    def __init__(self, cache: CacheReader, keys: list[str]):
        self.cache = cache
        unlabelled = [k for k in keys if not cache.case(k).has_label]
        if unlabelled:
            raise ValueError(f"cases without ground truth cannot be trained on: {unlabelled}")
        self.index = [(k, z) for k in keys for z in range(cache.case(k).n_slices)]

    def __len__(self) -> int:
        return len(self.index)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        key, z = self.index[i]
        image = torch.from_numpy(self.cache.image(key, z).astype(np.float32))
        label = torch.from_numpy(self.cache.label(key, z).astype(np.float32))[None]
        return image, label


class VolumeDataset(Dataset):
    """Whole cases for 3D models: ``(image (C, Z, H, W), label (1, Z, H, W))`` float32."""

    def __init__(self, cache: CacheReader, keys: list[str]):
        self.cache = cache
        self.keys = list(keys)

    def __len__(self) -> int:
        return len(self.keys)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        key = self.keys[i]
        image = torch.from_numpy(self.cache.image(key).astype(np.float32)).permute(1, 0, 2, 3)
        label = torch.from_numpy(self.cache.label(key).astype(np.float32))[None]
        return image.contiguous(), label
