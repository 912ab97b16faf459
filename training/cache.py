"""Preprocessing cache in HDF5: normalised channels (float16) and labels, built once, read lazily.

One file per data set and preprocessing config. Each case is a group ``cases/<n>`` holding
``image`` ``(z, C, y, x)`` float16 chunked one slice per chunk, and ``label`` ``(z, y, x)`` uint8
when a ground truth exists, with the case key, patient, split and spacing as attributes. The
file's ``fingerprint`` attribute records the source files (path, size, mtime) and the scaling;
``build_cache`` reuses a file whose fingerprint matches and rebuilds it (atomically) otherwise.
The data set is never held in RAM: one case is loaded, written and dropped at a time.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import h5py
import numpy as np

from strokelens.core.dataset import CaseRef, Dataset
from strokelens.core.errors import DataError
from strokelens.core.preprocessing import ChannelRange, load_scaling, normalize
from strokelens.core.writer import atomic_write

CACHE_VERSION = 1


@dataclass(frozen=True)
class CachedCase:
    """What the cache knows about a case without reading voxels."""

    index: int  # group name under "cases"
    key: str
    patient: str
    split: str
    n_slices: int
    spacing: tuple[float, float, float]
    has_label: bool
    lesion_ml: float


def fingerprint(refs: list[CaseRef], scaling: dict[str, ChannelRange]) -> str:
    parts = [f"v{CACHE_VERSION}", json.dumps({k: asdict(v) for k, v in scaling.items()})]
    for ref in refs:
        parts.append(f"{ref.key}|{ref.patient}")
        for name in sorted(ref.files):
            if name == "4DPWI":
                continue
            st = ref.files[name].stat()
            parts.append(f"{name}|{ref.files[name]}|{st.st_size}|{st.st_mtime_ns}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def _read_fingerprint(path: Path) -> str | None:
    try:
        with h5py.File(path, "r") as f:
            return str(f.attrs.get("fingerprint", ""))
    except OSError:
        return None


def build_cache(
    dataset: Dataset,
    path: str | Path,
    scaling: dict[str, ChannelRange] | None = None,
    keys: list[str] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> Path:
    """Write (or reuse) the cache of ``dataset`` (optionally only ``keys``) at ``path``."""
    path = Path(path)
    scaling = scaling or load_scaling()
    refs = [dataset[k] for k in keys] if keys is not None else list(dataset)
    fp = fingerprint(refs, scaling)
    if path.exists() and _read_fingerprint(path) == fp:
        return path

    def write(tmp: str) -> None:
        with h5py.File(tmp, "w") as f:
            f.attrs["version"] = CACHE_VERSION
            group = f.create_group("cases")
            for n, ref in enumerate(refs):
                case = dataset.load(ref)
                image = normalize(case, scaling).astype(np.float16)
                g = group.create_group(str(n))
                g.create_dataset("image", data=image, chunks=(1, *image.shape[1:]))
                if case.mask is not None:
                    g.create_dataset("label", data=case.mask, chunks=(1, *case.mask.shape[1:]))
                g.attrs.update(
                    key=case.key,
                    patient=case.patient,
                    split=case.split,
                    spacing=np.asarray(case.spacing, dtype=np.float64),
                    lesion_ml=case.lesion_ml() or 0.0,
                )
                if progress is not None:
                    progress(n + 1, len(refs))
            f.attrs["fingerprint"] = fp  # last: a file without it is never reused

    return atomic_write(path, write)


class CacheReader:
    """Lazy access to a cache file; safe to hand to DataLoader workers (opens per process)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._file: h5py.File | None = None
        try:
            with h5py.File(self.path, "r") as f:
                if f.attrs.get("version") != CACHE_VERSION or "fingerprint" not in f.attrs:
                    raise DataError(self.path, "not a complete StrokeLens cache of this version")
                self.cases = [self._describe(int(n), g) for n, g in f["cases"].items()]
        except OSError as exc:
            raise DataError(self.path, f"cannot open the cache ({exc})") from exc
        self.cases.sort(key=lambda c: c.index)
        self._by_key = {c.key: c for c in self.cases}

    @staticmethod
    def _describe(index: int, g: h5py.Group) -> CachedCase:
        a = g.attrs
        return CachedCase(
            index=index,
            key=str(a["key"]),
            patient=str(a["patient"]),
            split=str(a["split"]),
            n_slices=int(g["image"].shape[0]),
            spacing=tuple(float(s) for s in a["spacing"]),
            has_label="label" in g,
            lesion_ml=float(a["lesion_ml"]),
        )

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_file": None}

    def _group(self, key: str) -> h5py.Group:
        if self._file is None:
            self._file = h5py.File(self.path, "r")
        return self._file["cases"][str(self._by_key[key].index)]

    def case(self, key: str) -> CachedCase:
        return self._by_key[key]

    def image(self, key: str, z: int | slice = slice(None)) -> np.ndarray:
        """float16 ``(C, y, x)`` for one slice index, ``(z, C, y, x)`` for a slice range."""
        return self._group(key)["image"][z]

    def label(self, key: str, z: int | slice = slice(None)) -> np.ndarray:
        return self._group(key)["label"][z]

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
