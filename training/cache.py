"""Preprocessing cache in HDF5: normalised channels (float16) and labels, built once, read lazily.

One file per data set and preprocessing config. Each case is a group ``cases/<n>`` holding
``image`` ``(z, C, y, x)`` float16 chunked one slice per chunk, and ``label`` ``(z, y, x)`` uint8
when a ground truth exists, with the case key, patient, split and spacing as attributes. The
file's ``fingerprint`` attribute records the source files (path, size, mtime) and the scaling;
``build_cache`` reuses a file whose fingerprint matches and rebuilds it (atomically) otherwise.
The data set is never held in RAM: one case is loaded, written and dropped at a time.

A cache is input like any other file (it may be damaged, or written by another version): its
attributes are checked against schemas and its datasets' declared shapes and types against
``core.limits`` before a voxel is read. ``CacheReader`` refuses a bad file with a ``DataError``
naming the file, the case group and the attribute; ``build_cache`` treats it as stale and
rebuilds it, as it does when the sources change.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Annotated

import h5py
import numpy as np
from pydantic import BaseModel, Field

from strokelens.core.case import CHANNELS
from strokelens.core.dataset import CaseRef, Dataset
from strokelens.core.errors import DataError
from strokelens.core.limits import check_shape
from strokelens.core.preprocessing import ChannelRange, identity, load_scaling, normalize
from strokelens.core.schema import STRICT, Finite, Positive, Str, from_numpy, validate, version
from strokelens.core.writer import atomic_write

CACHE_VERSION = 1
_log = logging.getLogger(__name__)


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


def fingerprint(
    refs: list[CaseRef],
    scaling: dict[str, ChannelRange],
    labels: Mapping[str, np.ndarray] | None = None,
) -> str:
    parts = [f"v{CACHE_VERSION}", json.dumps(identity(scaling))]
    for ref in refs:
        parts.append(f"{ref.key}|{ref.patient}")
        if labels is not None and ref.key in labels:
            mask = np.ascontiguousarray(labels[ref.key], dtype=np.uint8)
            parts.append(f"label|{hashlib.sha256(mask.tobytes()).hexdigest()}")
        for name in sorted(ref.files):
            if name == "4DPWI":
                continue
            st = ref.files[name].stat()
            parts.append(f"{name}|{ref.files[name]}|{st.st_size}|{st.st_mtime_ns}")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


class _FileAttributes(BaseModel):
    """The schema of the cache file's own attributes."""

    model_config = STRICT
    version: version(CACHE_VERSION)
    fingerprint: Str


class _CaseAttributes(BaseModel):
    """The schema of a case group's attributes."""

    model_config = STRICT
    key: Str
    patient: Str
    split: Str
    spacing: tuple[Positive, Positive, Positive]
    lesion_ml: Annotated[Finite, Field(ge=0)]


def _attributes(node: h5py.HLObject) -> dict:
    return {k: from_numpy(v) for k, v in node.attrs.items()}


def _reusable(path: Path, fp: str) -> bool:
    """Whether ``path`` is a sound cache of the sources ``fp`` describes."""
    if not path.exists():
        return False
    try:
        reader = CacheReader(path)
    except DataError as exc:
        _log.warning("rebuilding the preprocessing cache: %s", exc)
        return False
    return reader.fingerprint == fp


def build_cache(
    dataset: Dataset,
    path: str | Path,
    scaling: dict[str, ChannelRange] | None = None,
    keys: list[str] | None = None,
    progress: Callable[[int, int], None] | None = None,
    labels: Mapping[str, np.ndarray] | None = None,
) -> Path:
    """Write (or reuse) the cache of ``dataset`` (optionally only ``keys``) at ``path``.

    ``labels``: masks ``(z, y, x)`` 0/1 by case key that replace those cases' ground truth (a
    reviewer's corrections, for fine-tuning); they are part of the fingerprint.
    """
    path = Path(path)
    scaling = scaling or load_scaling()
    refs = [dataset[k] for k in keys] if keys is not None else list(dataset)
    labels = labels or {}
    fp = fingerprint(refs, scaling, labels)
    if _reusable(path, fp):
        return path

    def write(tmp: str) -> None:
        with h5py.File(tmp, "w") as f:
            f.attrs["version"] = CACHE_VERSION
            group = f.create_group("cases")
            for n, ref in enumerate(refs):
                case = dataset.load(ref)
                if ref.key in labels:
                    if np.shape(labels[ref.key]) != case.shape:
                        raise ValueError(f"label of {ref.key} does not have the case's shape")
                    case.mask = np.asarray(labels[ref.key], dtype=np.uint8)
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
                if "fingerprint" not in f.attrs:  # written last: a build that did not finish
                    raise DataError(self.path, "not a complete StrokeLens cache")
                self.fingerprint = validate(_attributes(f), _FileAttributes, self.path).fingerprint
                cases = f.get("cases")
                if not isinstance(cases, h5py.Group):
                    raise DataError(self.path, "no 'cases' group")
                self.cases = [self._describe(n, g) for n, g in cases.items()]
        except OSError as exc:
            raise DataError(self.path, f"cannot open the cache ({exc})") from exc
        self.cases.sort(key=lambda c: c.index)
        self._by_key = {c.key: c for c in self.cases}
        if len(self._by_key) != len(self.cases):
            raise DataError(self.path, "holds a case key twice")

    def _describe(self, name: str, g: h5py.HLObject) -> CachedCase:
        """A case group's facts, its attributes and datasets checked first (see the module)."""
        where = f"case group cases/{name}"
        if not name.isdigit() or not isinstance(g, h5py.Group):
            raise DataError(self.path, f"{where}: not a numbered case group")
        try:
            a = validate(_attributes(g), _CaseAttributes, self.path)
        except DataError as exc:
            raise DataError(self.path, f"{where}: {exc.problem}") from None
        image, label = g.get("image"), g.get("label")
        if not isinstance(image, h5py.Dataset) or image.dtype != np.float16 or image.ndim != 4:
            raise DataError(self.path, f"{where}: no float16 (z, C, y, x) 'image' dataset")
        z, c, y, x = image.shape
        beyond = check_shape((x, y, z))
        if c != len(CHANNELS):
            beyond = f"{c} channels, not {len(CHANNELS)}"
        if beyond is not None:
            raise DataError(self.path, f"{where}: image of shape {image.shape}: {beyond}")
        if label is not None and (
            not isinstance(label, h5py.Dataset)
            or label.dtype != np.uint8
            or label.shape != (z, y, x)
        ):
            raise DataError(self.path, f"{where}: 'label' is not uint8 {(z, y, x)} (z, y, x)")
        return CachedCase(
            index=int(name),
            key=a.key,
            patient=a.patient,
            split=a.split,
            n_slices=z,
            spacing=a.spacing,
            has_label=label is not None,
            lesion_ml=a.lesion_ml,
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


class CacheUnion:
    """Several caches read as one (a fine-tune's corrections and the original training data,
    which lie in different data sets): each cache's keys carry its prefix, so the same case key
    in two data sets names two cases. The reader API of :class:`CacheReader`."""

    def __init__(self, readers: Mapping[str, CacheReader]):
        self._readers = dict(readers)
        self.cases = [
            replace(case, key=prefix + case.key)
            for prefix, reader in self._readers.items()
            for case in reader.cases
        ]
        self._by_key = {c.key: c for c in self.cases}
        if len(self._by_key) != len(self.cases):
            raise ValueError("cache prefixes make a case key twice")

    def _split(self, key: str) -> tuple[CacheReader, str]:
        for prefix, reader in sorted(self._readers.items(), key=lambda p: -len(p[0])):
            if key.startswith(prefix) and key[len(prefix) :] in reader._by_key:
                return reader, key[len(prefix) :]
        raise KeyError(key)

    def case(self, key: str) -> CachedCase:
        return self._by_key[key]

    def image(self, key: str, z: int | slice = slice(None)) -> np.ndarray:
        reader, inner = self._split(key)
        return reader.image(inner, z)

    def label(self, key: str, z: int | slice = slice(None)) -> np.ndarray:
        reader, inner = self._split(key)
        return reader.label(inner, z)

    def close(self) -> None:
        for reader in self._readers.values():
            reader.close()
