"""Ensemble predictions on disk, so a case's AI results come back without re-running the ensemble.

One HDF5 file per prediction: ``members`` ``(M, z, y, x)``, one chunk per member and slice
(shuffle + lzf), ``done`` ``(z,)`` bool, and the metadata as attributes (lists and timing as JSON).
Members are stored exactly, as uint16 indices into a ``palette`` of their distinct float32 values
when there are at most 65536 of them (bf16 engine runs give a few thousand: a 22-slice case of
the 10-member demo ensemble takes 6.9 MB instead of 20 MB), else as float32 (noisy float32
probabilities shrink only ~10% under lzf). Means and uncertainty are not stored: loading
recomputes them with ``Prediction.update``, the engine's own code, so a loaded prediction equals
the saved one bit for bit. Files are written atomically (``writer.atomic_write``).

``PredictionCache`` keeps predictions under ``ROOT/<ensemble>/<case key>.<inputs>.h5`` (complete
ones, and the finished slices of a stopped run, which the next run resumes from):
``<ensemble>`` is ``manifest_fingerprint`` (member names, losses, weight sha256, preprocessing) and
``<inputs>`` hashes the five channel files' resolved path, size and mtime, so a changed ensemble or
a rewritten input file misses; ``<case key>`` keeps letters, digits and ``_`` (anything else
becomes ``_``; the fingerprint keeps such names apart), and the path is made with
``safepath.path_inside``, so no case folder name leads outside ROOT. Device and precision are
not part of the key: a prediction from any device is reused (the file records which one made it).
``PredictionCache.index`` lists what the cache holds for a data set's cases from each file's
attributes and ``done`` flags alone (the core volume is an attribute), never its members, so a
worklist shows every case's state at once.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal

import h5py
import numpy as np
from pydantic import BaseModel, BeforeValidator, Field

from strokelens.core import userdirs
from strokelens.core.case import CHANNELS, Case
from strokelens.core.errors import DataError
from strokelens.core.files import check_regular
from strokelens.core.limits import MAX_MEMBERS, check_shape
from strokelens.core.manifest import Manifest
from strokelens.core.metrics import volume_ml
from strokelens.core.prediction import Prediction
from strokelens.core.preprocessing import identity
from strokelens.core.safepath import path_inside
from strokelens.core.schema import (
    STRICT,
    Finite,
    Positive,
    Str,
    from_numpy,
    json_text,
    validate,
    version,
)
from strokelens.core.writer import atomic_write

if TYPE_CHECKING:
    from strokelens.core.dataset import CaseRef

FORMAT = "strokelens-prediction"
VERSION = 1

#: Most distinct member values stored as a palette (uint16 indices).
PALETTE_SIZE = np.iinfo(np.uint16).max + 1
#: Hex digits kept of the sha256 fingerprints (64 bits: collisions are not a practical concern).
_SHORT = 16

_log = logging.getLogger(__name__)


def save_prediction(path: str | Path, prediction: Prediction) -> Path:
    """Write ``prediction`` to ``path`` (HDF5) atomically; returns the path."""
    p = prediction
    chunks = (1, 1, *p.shape[1:])
    members, palette = _encode(p.members)

    def write(tmp: str) -> None:
        with h5py.File(tmp, "w") as f:
            f.create_dataset(
                "members", data=members, chunks=chunks, shuffle=True, compression="lzf"
            )
            if palette is not None:
                f.create_dataset("palette", data=palette)
            f.create_dataset("done", data=p.done)
            f.attrs.update(
                format=FORMAT,
                version=VERSION,
                case_key=p.case_key,
                spacing=np.asarray(p.spacing, np.float64),
                member_names=json.dumps(p.member_names),
                member_losses=json.dumps(p.member_losses),
                min_component_ml=float(p.min_component_ml),
                device=p.device,
                precision=p.precision,
                timing=json.dumps(p.timing),
                core_ml=float(volume_ml(p.mask("all"), p.spacing)),
            )

    return atomic_write(path, write)


def _encode(members: np.ndarray) -> tuple[np.ndarray, np.ndarray | None]:
    """``members`` as uint16 indices into their distinct values (exact), if they fit."""
    palette = np.unique(members)  # then searchsorted: 3x faster than return_inverse
    if palette.size > PALETTE_SIZE:
        return members, None
    return np.searchsorted(palette, members).astype(np.uint16), palette


def _decode(path: Path, stored: np.ndarray, palette: np.ndarray | None) -> np.ndarray:
    if palette is None:
        return stored
    if stored.size and int(stored.max()) >= palette.size:
        raise DataError(
            path, f"member index {int(stored.max())} outside the palette of {palette.size}"
        )
    return palette[stored]


def _dataset(path: Path, f: h5py.File, name: str) -> h5py.Dataset:
    found = f.get(name)
    if not isinstance(found, h5py.Dataset):
        raise DataError(path, f"no {name!r} dataset")
    return found


def _check_layout(path: Path, f: h5py.File, shape: tuple[int, int, int] | None) -> None:
    """The declared shapes and types of the datasets, before any is read: a file may declare an
    8 GiB dataset in a few bytes, so nothing is allocated before its size is known to fit."""
    members, done, palette = _dataset(path, f, "members"), _dataset(path, f, "done"), None
    if isinstance(f.get("palette"), h5py.Dataset):
        palette = f["palette"]
    if members.ndim != 4:
        raise DataError(path, f"members are {members.shape}, not (M, z, y, x)")
    if not 1 <= members.shape[0] <= MAX_MEMBERS:
        raise DataError(path, f"{members.shape[0]} members, not 1 to {MAX_MEMBERS}")
    if shape is not None and members.shape[1:] != tuple(shape):
        raise DataError(path, f"members are {members.shape[1:]} (z, y, x), the case is {shape}")
    beyond = check_shape(members.shape[:0:-1])  # (x, y, z): as for any volume read
    if beyond is not None:
        raise DataError(path, f"members of {members.shape[1:]} (z, y, x): {beyond}")
    if done.dtype != bool or done.shape != members.shape[1:2]:
        raise DataError(path, f"done is {done.dtype} {done.shape}, not bool ({members.shape[1]},)")
    stored = members.dtype
    if palette is None and stored != np.float32:
        raise DataError(path, f"members are {stored}, not float32 (no palette)")
    if palette is not None and (
        stored != np.uint16
        or palette.dtype != np.float32
        or palette.shape[:1] != palette.shape
        or palette.size > PALETTE_SIZE
    ):
        raise DataError(
            path,
            f"members are {stored} indices into a {palette.dtype} {palette.shape} palette,"
            f" not uint16 into float32 (n <= {PALETTE_SIZE},)",
        )


def _attributes(path: Path, f: h5py.File, shape: tuple[int, ...]) -> _Attributes:
    """The file's attributes, validated, and its datasets' layout against ``shape``."""
    a = validate({k: from_numpy(v) for k, v in f.attrs.items()}, _Attributes, path)
    _check_layout(path, f, shape)
    return a


def load_prediction(path: str | Path, shape: tuple[int, int, int] | None = None) -> Prediction:
    """Read a file written by ``save_prediction``; a file that is not one raises ``DataError``.

    ``shape``: the ``(z, y, x)`` the prediction must have (its case's); declared sizes are
    checked against it and ``core.limits`` before anything is read.
    """
    path = Path(path)
    check_regular(path, "prediction file")
    try:
        with h5py.File(path, "r") as f:
            a = _attributes(path, f, shape)
            palette = f["palette"][()] if isinstance(f.get("palette"), h5py.Dataset) else None
            members, done = _decode(path, f["members"][()], palette), f["done"][()]
    except OSError as exc:  # not HDF5, truncated, unreadable chunk
        raise DataError(path, f"not a readable prediction file ({exc})") from exc
    if len(a.member_names) != members.shape[0] or len(a.member_losses) != members.shape[0]:
        raise DataError(
            path,
            f"{members.shape[0]} members but {len(a.member_names)} names and "
            f"{len(a.member_losses)} losses",
        )
    try:
        prediction = Prediction.empty(
            a.case_key,
            members.shape[1:],
            a.spacing,
            a.member_names,
            a.member_losses,
            a.min_component_ml,
        )
    except ValueError as exc:
        raise DataError(path, str(exc)) from exc
    prediction.update(np.flatnonzero(done), members[:, done])
    prediction.device, prediction.precision = a.device, a.precision
    prediction.timing = a.timing
    return prediction


class _Attributes(BaseModel):
    """The schema of a prediction file's attributes (lists and timing are JSON text)."""

    model_config = STRICT
    format: Literal[FORMAT]
    version: version(VERSION)
    case_key: Str
    spacing: tuple[Positive, Positive, Positive]
    member_names: Annotated[list[Str], BeforeValidator(json_text)]
    member_losses: Annotated[list[Str], BeforeValidator(json_text)]
    min_component_ml: Annotated[Finite, Field(ge=0)]
    device: Str
    precision: Str
    timing: Annotated[dict[Str, Finite], BeforeValidator(json_text)]
    core_ml: Annotated[Finite, Field(ge=0)] | None = None  # of the "all" mask; absent in old files


def _check_key(path: Path, stored: str, key: str) -> None:
    if stored != key:
        raise DataError(path, f"holds case {stored}, not {key}")


def _short_sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:_SHORT]


def manifest_fingerprint(manifest: Manifest) -> str:
    """Short hash of what decides an ensemble's output: its members' names, losses and weight
    sha256, and the preprocessing (not its name, folds or validation scores)."""
    decides = {
        "members": [[m.name, m.loss, m.sha256.lower()] for m in manifest.members],
        "preprocessing": dict(sorted(identity(manifest.preprocessing).items())),
    }
    return _short_sha(json.dumps(decides, sort_keys=True))


def case_fingerprint(case: Case | CaseRef) -> str:
    """Short hash of the channel files' resolved path, size and mtime (OSError if one is gone);
    the same for a case and the listed ``CaseRef`` it was read from."""
    parts = []
    files = _files(case)
    for channel in CHANNELS:
        if channel not in files:
            raise ValueError(f"case {case.key} has no {channel} file: only files can be cached")
        path = Path(files[channel]).resolve()
        st = path.stat()
        parts.append(f"{channel}|{path}|{st.st_size}|{st.st_mtime_ns}")
    return _short_sha("\n".join(parts))


def _files(case: Case | CaseRef) -> Mapping[str, Path]:
    return case.paths if isinstance(case, Case) else case.files


def _shape(case: Case | CaseRef) -> tuple[int, int, int] | None:
    """The shape a cached prediction must have: the case's (a listed case's is not known yet)."""
    return case.shape if isinstance(case, Case) else None


def default_cache_root() -> Path:
    """``predictions`` in the user's StrokeLens cache folder."""
    return userdirs.cache_dir() / "predictions"


#: Default size bound of the cache: about 290 22-slice cases of the 10-member demo ensemble.
MAX_CACHE_BYTES = 2 * 1024**3


@dataclass(frozen=True)
class CacheEntry:
    """What the cache holds for a case, read without its members: ``done`` of ``slices``
    finished, and the core volume (mL, "all" mask; None in files written before it was kept)."""

    done: int
    slices: int
    core_ml: float | None

    @property
    def complete(self) -> bool:
        return self.done == self.slices


class PredictionCache:
    """Predictions by ensemble and case inputs, under ``root``, at most ``max_bytes``.

    A file that cannot be read, or holds another shape or case, is a miss: ``get`` and ``entry``
    log a warning and leave it in place (for inspection); the next ``put`` for that case replaces
    it atomically. An incomplete prediction (a stopped run's finished slices) is returned only
    to ``get(..., partial=True)``, to resume from. ``get`` marks a file as used (its mtime);
    ``put`` then removes the least recently used files, never the one just written, until the
    cache fits ``max_bytes``. Entries of a rewritten case (new input fingerprint) are never read
    again and age out this way. ``case`` is a loaded :class:`Case` or the ``CaseRef`` listing it
    (same files, same entry).
    """

    def __init__(self, root: Path, max_bytes: int = MAX_CACHE_BYTES):
        self.root = Path(root)
        self.max_bytes = max_bytes

    def path_for(self, manifest_sha: str, case: Case | CaseRef) -> Path:
        name = re.sub(r"[^A-Za-z0-9_]+", "_", case.key)
        return path_inside(self.root, manifest_sha, f"{name}.{case_fingerprint(case)}.h5")

    def _existing(self, manifest_sha: str, case: Case | CaseRef) -> Path | None:
        """The entry's path if the file is there (a case whose files are gone has none)."""
        try:
            path = self.path_for(manifest_sha, case)
        except (OSError, ValueError):
            return None
        return path if path.exists() else None

    def get(
        self, manifest_sha: str, case: Case | CaseRef, partial: bool = False
    ) -> Prediction | None:
        """The cached prediction of ``case``: a complete one, or with ``partial`` also the
        finished slices of a stopped run."""
        path = self._existing(manifest_sha, case)
        if path is None:
            return None
        try:
            prediction = load_prediction(path, _shape(case))
            _check_key(path, prediction.case_key, case.key)
        except DataError as exc:
            _log.warning("ignoring cached prediction: %s", exc)
            return None
        if not (partial or prediction.complete):
            return None
        with contextlib.suppress(OSError):  # a read-only cache still serves
            os.utime(path)
        return prediction

    def entry(self, manifest_sha: str, case: Case | CaseRef) -> CacheEntry | None:
        """What the cache holds for ``case``, from the file's attributes and ``done`` flags
        (checked like ``get`` checks them; the members are not read)."""
        path = self._existing(manifest_sha, case)
        if path is None:
            return None
        try:
            check_regular(path, "prediction file")
            try:
                with h5py.File(path, "r") as f:
                    a = _attributes(path, f, _shape(case))
                    done = f["done"][()]
            except OSError as exc:
                raise DataError(path, f"not a readable prediction file ({exc})") from exc
            _check_key(path, a.case_key, case.key)
        except DataError as exc:
            _log.warning("ignoring cached prediction: %s", exc)
            return None
        return CacheEntry(int(done.sum()), len(done), a.core_ml)

    def index(self, manifest_sha: str, cases: Iterable[Case | CaseRef]) -> dict[str, CacheEntry]:
        """``entry`` of each case the cache holds something for, by case key."""
        found = {}
        for case in cases:
            entry = self.entry(manifest_sha, case)
            if entry is not None:
                found[case.key] = entry
        return found

    def put(self, manifest_sha: str, case: Case | CaseRef, prediction: Prediction) -> Path:
        """Keep ``prediction`` (complete, or the finished slices of a stopped run)."""
        if prediction.case_key != case.key:
            raise ValueError(f"prediction of {prediction.case_key} given for {case.key}")
        path = save_prediction(self.path_for(manifest_sha, case), prediction)
        self.prune(keep=path)
        return path

    def prune(self, keep: Path | None = None) -> list[Path]:
        """Remove the least recently used files until the cache fits; returns those removed."""
        files = []
        for path in self.root.rglob("*.h5"):
            with contextlib.suppress(OSError):  # removed meanwhile by another instance
                st = path.stat()
                files.append((st.st_mtime_ns, st.st_size, path))
        total = sum(size for _, size, _ in files)
        removed = []
        for _, size, path in sorted(files):
            if total <= self.max_bytes:
                break
            if path == keep:
                continue
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
            total -= size
            removed.append(path)
        return removed
