"""The model registry: every ensemble a retrain made, which one is active, and how it got there.

Layout (root: ``userdirs.data_dir() / "models"`` unless given)::

    active.json                the active version and the history of promotions / rollbacks
    versions/v0002/            a finished version, complete or absent (staged, then renamed)
        ensemble.json          its ensemble manifest (``core.manifest``)
        <member>.safetensors   member weights
        version.json           the version record (``VersionRecord``): parent, cases, metrics
    staging/v0002/             a retrain in progress (or killed: resumable); never active
    registry.lock              serialises allocating, finishing, promoting

The bundled demo ensemble is the implicit base version ``demo``: referenced, never copied; it is
active until a version is promoted. ``active.json`` and version records are written atomically,
and a version folder is renamed into ``versions/`` only when it holds its manifest and record, so
a crashed or killed retrain leaves the active version and the finished versions untouched.

Every version name from the command line or from a file passes ``check_version`` (``demo`` or
``v`` and four to six digits) before it becomes part of a path.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Collection, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from filelock import FileLock
from pydantic import AfterValidator, BaseModel, Field

from strokelens.core import userdirs
from strokelens.core.demo import DEMO_MANIFEST, demo_folder, demo_ready
from strokelens.core.errors import DataError, StrokeLensError
from strokelens.core.manifest import Manifest, read_manifest
from strokelens.core.safepath import path_inside
from strokelens.core.schema import STRICT, Finite, Str, load, version
from strokelens.core.writer import atomic_write_bytes

BASE = "demo"
ACTIVE = "active.json"
RECORD = "version.json"
MANIFEST = "ensemble.json"
VERSIONS = "versions"
STAGING = "staging"
FORMAT = "strokelens-registry"
#: The key of the ensemble's held-out DSC in a version's before/after metrics (the other keys
#: are the fine-tuned members').
#: The fine-tune's defaults (``training.retrain``, its command line and the app's dialog): the
#: configuration docs/retrain.md measured. A larger step (1e-5 and up) wrecked members trained on
#: five corrections.
DEFAULT_EPOCHS = 6
DEFAULT_LR = 2e-6
#: corrections : original cases the dialog proposes (original cases mixed in against forgetting)
DEFAULT_RATIO = 0.5
ENSEMBLE = "ensemble"
_VERSION = re.compile(r"v[0-9]{4,6}", re.ASCII)


class RegistryError(StrokeLensError):
    """A registry action that cannot be done (unknown version, rollback forward, ...)."""


def check_version(name: object) -> str:
    """``name`` if it is a version name (``demo`` or ``v0002``); else ValueError saying so."""
    if not isinstance(name, str) or not (name == BASE or _VERSION.fullmatch(name)):
        raise ValueError(f"{name!r} is no version name (use {BASE!r} or v0001, v0002, ...)")
    return name


def version_number(name: str) -> int:
    """Order of versions: the base is 0, ``v0007`` is 7."""
    return 0 if check_version(name) == BASE else int(name[1:])


VersionName = Annotated[Str, AfterValidator(check_version)]
Dsc = Annotated[Finite, Field(ge=0, le=1)]


class CaseEntry(BaseModel):
    """A case trained on: a correction (with its mask's sha256 when the retrain started) or an
    original case of the data set (its ground truth)."""

    model_config = STRICT
    key: Str
    source: Literal["correction", "original"]
    mask_sha256: Annotated[Str, Field(pattern=r"^[0-9a-f]{64}$")] | None = None


class VersionRecord(BaseModel):
    """The schema of ``version.json``: what a version was trained from and how it measured."""

    model_config = STRICT
    format: Literal["strokelens-model-version"] = "strokelens-model-version"
    version: VersionName
    parent: VersionName
    created: Str  # ISO 8601, UTC (when the retrain started)
    duration_s: Annotated[Finite, Field(ge=0)]
    project: Str
    members_trained: list[Str]
    train_cases: list[CaseEntry]
    heldout_cases: list[Str]
    heldout_patients: list[Str]
    #: held-out DSC per member and "ensemble", of the parent (before) and this version (after)
    before: dict[Str, Dsc]
    after: dict[Str, Dsc]
    recommend: bool
    config: dict[Str, Any]


def promotion_check(
    before: Mapping[str, float | None],
    after: Mapping[str, float | None],
    trained: Collection[str],
) -> tuple[bool, str]:
    """Whether a version's held-out DSC lets it replace its parent, and the figures in words.

    Neither may drop: the ensemble's, nor the mean of the ``trained`` (fine-tuned) members'. The
    others are the parent's files, so in a ten-member ensemble two worse members can hide behind
    eight unchanged ones (the site experiment at lr 1e-5, N = 5). A missing figure is a no."""
    b, a = before.get(ENSEMBLE), after.get(ENSEMBLE)
    if b is None or a is None:
        return False, "no held-out DSC of the ensemble"
    ok = a >= b
    words = _change("ensemble held-out DSC", b, a)
    pairs = [(before.get(m), after.get(m)) for m in trained]
    if pairs:
        if any(x is None or y is None for x, y in pairs):
            return False, f"{words}; a fine-tuned member has no held-out DSC"
        mb, ma = (sum(col) / len(pairs) for col in zip(*pairs, strict=True))
        ok = ok and ma >= mb
        whose = (
            "the fine-tuned member's"
            if len(pairs) == 1
            else f"the {len(pairs)} fine-tuned members' mean"
        )
        words += ", " + _change(whose, mb, ma)
    return ok, words


def _change(what: str, before: float, after: float) -> str:
    """A figure's change in words, marked where it dropped (the reader sees which one did)."""
    return f"{what} {before:.3f} → {after:.3f}" + (" (dropped)" if after < before else "")


class HistoryEntry(BaseModel):
    model_config = STRICT
    at: Str
    action: Literal["promote", "rollback"]
    version: VersionName
    previous: VersionName


class ActiveFile(BaseModel):
    """The schema of ``active.json``."""

    model_config = STRICT
    format: Literal[FORMAT]
    version: version(1)
    active: VersionName
    history: list[HistoryEntry] = []


@dataclass(frozen=True)
class VersionInfo:
    """One row of ``Registry.list``: the record is None for the base version."""

    name: str
    manifest: Path
    active: bool
    record: VersionRecord | None


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class Registry:
    """The registry at ``root`` (made on first write); ``base``: the manifest of the base
    version (the bundled demo; tests and experiments give their own)."""

    def __init__(self, root: str | Path | None = None, base: str | Path = DEMO_MANIFEST):
        self.root = Path(root) if root is not None else userdirs.data_dir() / "models"
        self.base = Path(base)

    # --- paths: every name checked before it becomes a path ---------------------------------

    def version_dir(self, name: str) -> Path:
        return path_inside(self.root / VERSIONS, _checked(name, self.root))

    def staging_dir(self, name: str) -> Path:
        return path_inside(self.root / STAGING, _checked(name, self.root))

    def manifest_path(self, name: str) -> Path:
        """The manifest of version ``name``; RegistryError when there is no such version."""
        if _checked(name, self.root) == BASE:
            return self.base
        path = self.version_dir(name) / MANIFEST
        if not path.is_file():
            raise RegistryError(f"{self.root}: no version {name} (see 'strokelens models list')")
        return path

    @contextmanager
    def locked(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with FileLock(self.root / "registry.lock"):
            yield

    # --- reading -------------------------------------------------------------------------

    def _active_file(self) -> ActiveFile:
        path = self.root / ACTIVE
        if not path.exists():
            return ActiveFile(format=FORMAT, version=1, active=BASE)
        return load(path, ActiveFile, "model registry pointer")

    def active(self) -> str:
        """The active version's name (``demo`` until one is promoted)."""
        return self._active_file().active

    def history(self) -> list[HistoryEntry]:
        return self._active_file().history

    def active_manifest(self) -> Path:
        """The promoted version's manifest, or the bundled demo's; DataError when the pointer
        or the version it names is broken."""
        name = self.active()
        try:
            return self.manifest_path(name)
        except RegistryError:
            raise DataError(self.root / ACTIVE, f"names version {name}, which is missing") from None

    def holds(self, manifest: Path) -> bool:
        """Whether ``manifest`` is the base's or lies in this registry's folder."""
        path = manifest.resolve()
        return path == self.base.resolve() or path.is_relative_to(self.root.resolve())

    def base_training_data(self) -> Path | None:
        """The training cases the base version learnt from, when known and present: the demo
        data for the bundled demo ensemble (where every version's lineage starts), else None.
        A fine-tune mixes them in against forgetting (``finetune(originals_from=...)``)."""
        folder = demo_folder()
        if self.base.resolve() != DEMO_MANIFEST.resolve() or not demo_ready(folder):
            return None
        return folder / "TRAINING"

    def versions(self) -> list[str]:
        """Finished versions, oldest first (folders whose names are no version are ignored)."""
        folder = self.root / VERSIONS
        names = [p.name for p in folder.iterdir()] if folder.is_dir() else []
        return sorted((n for n in names if _VERSION.fullmatch(n)), key=version_number)

    def staged(self) -> list[str]:
        """Retrains started and not finished (killed or running), oldest first."""
        folder = self.root / STAGING
        names = [p.name for p in folder.iterdir()] if folder.is_dir() else []
        done = set(self.versions())
        return sorted(
            (n for n in names if _VERSION.fullmatch(n) and n not in done), key=version_number
        )

    def record(self, name: str) -> VersionRecord | None:
        """Version ``name``'s record (None for the base); DataError when it is malformed."""
        if _checked(name, self.root) == BASE:
            return None
        path = self.version_dir(name) / RECORD
        if not path.is_file():
            raise RegistryError(f"{self.root}: no version {name} (see 'strokelens models list')")
        rec = load(path, VersionRecord, "model version record")
        if rec.version != name:
            raise DataError(path, f"records version {rec.version}, but lies in folder {name}")
        return rec

    def manifest(self, name: str) -> Manifest:
        return read_manifest(self.manifest_path(name))

    def list(self) -> list[VersionInfo]:
        """The base and every finished version, oldest first."""
        active = self.active()
        rows = [VersionInfo(BASE, self.base, active == BASE, None)]
        for name in self.versions():
            rows.append(
                VersionInfo(name, self.manifest_path(name), active == name, self.record(name))
            )
        return rows

    # --- changing ------------------------------------------------------------------------

    def allocate(self) -> str:
        """A new version name and its empty staging folder (under the lock)."""
        with self.locked():
            taken = [*self.versions(), *self.staged()]
            name = f"v{max(map(version_number, taken), default=1) + 1:04d}"
            self.staging_dir(name).mkdir(parents=True)
            return name

    def finish(self, name: str, built: Path, record: VersionRecord) -> Path:
        """Make ``built`` (a folder holding the manifest and member weights) version ``name``:
        the record is written into it, then it is renamed into ``versions/`` in one step."""
        if record.version != name:
            raise ValueError(f"record of {record.version} given for {name}")
        if not (built / MANIFEST).is_file():
            raise ValueError(f"{built} holds no {MANIFEST}")
        _write_json(built / RECORD, record.model_dump(mode="json"))
        with self.locked():
            target = self.version_dir(name)
            if target.exists():
                raise RegistryError(f"{self.root}: version {name} exists already")
            target.parent.mkdir(parents=True, exist_ok=True)
            os.replace(built, target)
            _fsync_dir(target.parent)
        return target

    def discard_staged(self, name: str) -> None:
        """Remove a staging folder (after its version is finished, or to give up on it)."""
        shutil.rmtree(self.staging_dir(name), ignore_errors=True)

    def promote(self, name: str) -> str:
        """Make version ``name`` active; returns the version active before."""
        return self._set_active(name, "promote")

    def rollback(self, name: str) -> str:
        """Make an earlier version than the active one active again; returns the one before."""
        return self._set_active(name, "rollback")

    def activate(self, name: str) -> str:
        """Make version ``name`` active: a rollback when it is older than the active one, else a
        promotion (decided under the lock); returns the version active before."""
        return self._set_active(name, None)

    def _set_active(self, name: str, action: Literal["promote", "rollback"] | None) -> str:
        name = _checked(name, self.root)
        with self.locked():
            self.manifest_path(name)  # RegistryError when there is no such version
            state = self._active_file()
            previous = state.active
            if action is None:
                back = version_number(name) < version_number(previous)
                action = "rollback" if back else "promote"
            if action == "rollback" and version_number(name) >= version_number(previous):
                raise RegistryError(
                    f"{name} is not earlier than the active version {previous}; "
                    "rollback goes back (use promote)"
                )
            state.history.append(
                HistoryEntry(at=now(), action=action, version=name, previous=previous)
            )
            state.active = name
            _write_json(self.root / ACTIVE, state.model_dump(mode="json"))
        return previous


def _checked(name: str, source: Path) -> str:
    try:
        return check_version(name)
    except ValueError as exc:
        raise RegistryError(f"{source}: {exc}") from None


def _write_json(path: Path, data: dict) -> None:
    atomic_write_bytes(path, (json.dumps(data, indent=2) + "\n").encode())


def _fsync_dir(folder: Path) -> None:
    if os.name == "posix":
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
