"""Ensemble manifests: which weight files make an ensemble, with their fold, loss and sha256.

Cross-validation writes one (``training``), the inference engine reads one (``core``), the model
registry lists them. A manifest is JSON; member paths are relative to the manifest's folder::

    {"format": "strokelens-ensemble", "version": 1, "name": "paper-phantom",
     "preprocessing": {"CT": [0, 100], ...},
     "members": [{"name": "focal-fold1", "loss": "focal", "fold": 1,
                  "weights": "focal/fold_1/best.safetensors", "sha256": "...", "val_dice": 0.61}]}

A manifest is input like any other and may be hostile, so ``read_manifest`` validates it against
its schema (``ManifestFile``, through ``core.schema.load``): ``name`` and ``loss`` become parts
of file names (``core.safepath``'s rule), every member needs its sha256 (a weight file is trusted
only because its hash matches), at most ``limits.MAX_MEMBERS`` members with distinct names, a
``[low, high]`` range per channel (or ``{"low", "high", "reference"}``: a channel scaled per case
to a reference brain median, ``core.preprocessing``). A weight file must lie inside the
manifest's folder unless the user allows external members explicitly.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, Field
from pydantic.dataclasses import dataclass as schema_dataclass

from strokelens.core.errors import DataError
from strokelens.core.limits import MAX_MEMBERS
from strokelens.core.preprocessing import ChannelRange
from strokelens.core.schema import STRICT, ChannelRanges, Finite, Int, SafeName, Str, load, version
from strokelens.core.writer import atomic_write_bytes

FORMAT = "strokelens-ensemble"
VERSION = 1

#: "all" names the mean over every member, so no loss may be called that.
RESERVED_LOSSES = ("all",)


def _not_reserved(loss: str) -> str:
    if loss in RESERVED_LOSSES:
        raise ValueError(f"loss {loss!r} is reserved (the mean over all members)")
    return loss


@schema_dataclass(config=STRICT)
class Member:
    name: SafeName
    loss: Annotated[SafeName, AfterValidator(_not_reserved)]  # "focal", "ce", "wce"
    fold: Int
    weights: Annotated[Str, Field(min_length=1)]  # relative to the manifest folder
    sha256: Annotated[Str, Field(pattern=r"^[0-9a-fA-F]{64}$")]
    val_dice: Finite | None = None


def _distinct(members: list[Member]) -> list[Member]:
    names: dict[str, str] = {}
    for m in members:  # case-folded: on macOS and Windows "CE-1" and "ce-1" are one file
        key = m.name.casefold()
        if key in names:
            raise ValueError(f"members {names[key]!r} and {m.name!r}: one name, one file")
        names[key] = m.name
    return members


class ManifestFile(BaseModel):
    """The schema of ``ensemble.json``."""

    model_config = STRICT
    format: Literal[FORMAT]
    version: version(VERSION)
    name: Str
    preprocessing: ChannelRanges
    members: Annotated[
        list[Member], Field(min_length=1, max_length=MAX_MEMBERS), AfterValidator(_distinct)
    ]
    meta: dict[str, Any] = {}  # free-form facts (data set, command, date)


@dataclass
class Manifest:
    name: str
    members: list[Member]
    preprocessing: dict[str, ChannelRange]
    path: Path | None = field(default=None, compare=False)  # where it was read from / written to
    meta: dict = field(default_factory=dict)  # free-form facts (data set, command, date)
    #: the user's explicit leave to load weight files outside the manifest's folder
    allow_external_members: bool = field(default=False, compare=False)

    def weights_path(self, member: Member) -> Path:
        """``member``'s weight file; a DataError when it lies outside the manifest's folder and
        external members are not allowed. That is decided before the file is touched, and the
        message depends on the manifest's text only, so it tells nothing about files outside."""
        base = self.path.parent if self.path is not None else Path.cwd()
        if not self.allow_external_members and not _inside(base, member.weights):
            raise DataError(
                self.path or base,
                f"member {member.name}: weight file {member.weights!r} is outside the manifest's "
                "folder (refused; --allow-external-members loads it)",
            )
        return base / member.weights

    def by_loss(self, loss: str) -> list[Member]:
        return [m for m in self.members if m.loss == loss]

    def to_json(self) -> str:
        return json.dumps(
            {
                "format": FORMAT,
                "version": VERSION,
                "name": self.name,
                "preprocessing": {k: _range(r) for k, r in self.preprocessing.items()},
                "members": [asdict(m) for m in self.members],
                "meta": self.meta,
            },
            indent=2,
        )

    def save(self, path: str | Path) -> Path:
        self.path = Path(path)
        return atomic_write_bytes(self.path, (self.to_json() + "\n").encode())


def _range(r: ChannelRange) -> list[float] | dict[str, float]:
    if r.reference is None:
        return [r.low, r.high]
    return {"low": r.low, "high": r.high, "reference": r.reference}


def _inside(folder: Path, relative: str) -> bool:
    """Whether ``folder / relative`` stays inside ``folder``: absolute paths and ``..`` are
    outside by their text alone; a symlink inside the folder counts where it points."""
    rel = Path(relative)
    if rel.is_absolute() or ".." in rel.parts:
        return False
    return (folder / rel).resolve().is_relative_to(folder.resolve())


def read_manifest(path: str | Path, allow_external_members: bool = False) -> Manifest:
    """Read and check a manifest (member files must exist; sha256 is checked when loading).

    ``allow_external_members``: the user's explicit leave to load weight files outside the
    manifest's folder (refused by default: a manifest from elsewhere must not read arbitrary
    files, nor tell whether they exist).
    """
    path = Path(path)
    raw = load(path, ManifestFile, "ensemble manifest")
    manifest = Manifest(
        raw.name,
        raw.members,
        {k: ChannelRange(*r) for k, r in raw.preprocessing.items()},
        path,
        raw.meta,
        allow_external_members=allow_external_members,
    )
    for m in manifest.members:
        if not manifest.weights_path(m).is_file():
            raise DataError(path, f"member {m.name}: weight file {m.weights} not found")
    return manifest
