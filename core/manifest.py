"""Ensemble manifests: which weight files make an ensemble, with their fold, loss and sha256.

Cross-validation writes one (``training``), the inference engine reads one (``core``), the model
registry lists them. A manifest is JSON; member paths are relative to the manifest's folder::

    {"format": "strokelens-ensemble", "version": 1, "name": "paper-phantom",
     "preprocessing": {"CT": [0, 100], ...},
     "members": [{"name": "focal-fold1", "loss": "focal", "fold": 1,
                  "weights": "focal/fold_1/best.safetensors", "sha256": "...", "val_dice": 0.61}]}

A manifest is input like any other and may be hostile, so ``read_manifest`` checks every member
field: ``name`` and ``loss`` become parts of file names (``core.safepath``), every member needs
its sha256 (a weight file is trusted only because its hash matches), and a weight file must lie
inside the manifest's folder unless the user allows external members explicitly. The manifest
must be a regular file of bounded size (``core.files``) with at most ``limits.MAX_MEMBERS``
members.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from strokelens.core.errors import DataError
from strokelens.core.files import read_text
from strokelens.core.limits import MAX_MEMBERS
from strokelens.core.preprocessing import ChannelRange
from strokelens.core.safepath import check_name
from strokelens.core.writer import atomic_write_bytes

FORMAT = "strokelens-ensemble"
VERSION = 1

#: The member fields a manifest must give, with their JSON types (``val_dice`` is optional).
_REQUIRED = {"name": str, "loss": str, "fold": int, "weights": str, "sha256": str}
#: "all" names the mean over every member, so no loss may be called that.
RESERVED_LOSSES = ("all",)
_SHA256 = re.compile(r"[0-9a-fA-F]{64}")
_JSON_TYPES = {str: "a string", int: "an integer", float: "a number", bool: "true/false"}


@dataclass
class Member:
    name: str
    loss: str  # "focal", "ce", "wce"
    fold: int
    weights: str  # relative to the manifest folder
    sha256: str
    val_dice: float | None = None


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
                "preprocessing": {k: [r.low, r.high] for k, r in self.preprocessing.items()},
                "members": [asdict(m) for m in self.members],
                "meta": self.meta,
            },
            indent=2,
        )

    def save(self, path: str | Path) -> Path:
        self.path = Path(path)
        return atomic_write_bytes(self.path, (self.to_json() + "\n").encode())


def _inside(folder: Path, relative: str) -> bool:
    """Whether ``folder / relative`` stays inside ``folder``: absolute paths and ``..`` are
    outside by their text alone; a symlink inside the folder counts where it points."""
    rel = Path(relative)
    if rel.is_absolute() or ".." in rel.parts:
        return False
    return (folder / rel).resolve().is_relative_to(folder.resolve())


def _json_type(value: object) -> str:
    if value is None:
        return "null"
    return _JSON_TYPES.get(type(value), "a list" if isinstance(value, list) else "an object")


def _read_member(raw: object, n: int, path: Path) -> Member:
    """Member ``n`` (from 1) of the manifest at ``path``, every field checked, nothing coerced."""
    label = f"member {n}"
    if not isinstance(raw, dict):
        raise DataError(path, f"{label} must be an object, not {_json_type(raw)}")
    unknown = sorted(set(raw) - {f.name for f in fields(Member)})
    if unknown:
        raise DataError(path, f"{label} has unknown keys {unknown}")
    for key, kind in _REQUIRED.items():  # "name" first: the later messages name the member
        value = raw.get(key)
        if value is None:
            state = "null" if key in raw else "missing"
            raise DataError(path, f"{label}: {key} is required ({state})")
        if type(value) is not kind:  # bool is an int subclass, and true is no fold number
            raise DataError(
                path, f"{label}: {key} must be {_JSON_TYPES[kind]}, not {_json_type(value)}"
            )
        if key == "name":
            label = f"member {n} ({check_name(value, f'{label}: name', path)})"
    loss = check_name(raw["loss"], f"{label}: loss", path)
    if loss in RESERVED_LOSSES:
        raise DataError(path, f"{label}: loss {loss!r} is reserved (the mean over all members)")
    if not _SHA256.fullmatch(raw["sha256"]):
        raise DataError(path, f"{label}: sha256 must be 64 hex digits")
    if not raw["weights"]:
        raise DataError(path, f"{label}: weights must name a file")
    dice = raw.get("val_dice")
    if dice is not None and type(dice) not in (int, float):
        raise DataError(path, f"{label}: val_dice must be a number, not {_json_type(dice)}")
    return Member(**{**raw, "val_dice": None if dice is None else float(dice)})


def read_manifest(path: str | Path, allow_external_members: bool = False) -> Manifest:
    """Read and check a manifest (member files must exist; sha256 is checked when loading).

    ``allow_external_members``: the user's explicit leave to load weight files outside the
    manifest's folder (refused by default: a manifest from elsewhere must not read arbitrary
    files, nor tell whether they exist).
    """
    path = Path(path)
    try:
        raw = json.loads(read_text(path, "ensemble manifest"))
    except json.JSONDecodeError as exc:
        raise DataError(path, f"not a readable ensemble manifest ({exc})") from exc
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise DataError(path, f"not a StrokeLens ensemble manifest (format must be {FORMAT!r})")
    if raw.get("version") != VERSION:
        raise DataError(
            path, f"manifest version {raw.get('version')!r}, this StrokeLens reads {VERSION}"
        )
    if not isinstance(raw.get("members"), list):
        raise DataError(path, f"members must be a list, not {_json_type(raw.get('members'))}")
    if len(raw["members"]) > MAX_MEMBERS:
        raise DataError(
            path, f"the ensemble has {len(raw['members'])} members; at most {MAX_MEMBERS} are run"
        )
    members = [_read_member(m, n, path) for n, m in enumerate(raw["members"], 1)]
    if not members:
        raise DataError(path, "the ensemble has no members")
    names: dict[str, str] = {}
    for m in members:  # case-folded: on macOS and Windows "CE-1" and "ce-1" are one file
        key = m.name.casefold()
        if key in names:
            raise DataError(path, f"members {names[key]!r} and {m.name!r}: one name, one file")
        names[key] = m.name
    try:
        scaling = {
            k: ChannelRange(float(lo), float(hi)) for k, (lo, hi) in raw["preprocessing"].items()
        }
        manifest = Manifest(
            str(raw["name"]),
            members,
            scaling,
            path,
            dict(raw.get("meta", {})),
            allow_external_members=allow_external_members,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(path, f"malformed manifest ({exc!r})") from exc
    for m in members:
        if not manifest.weights_path(m).is_file():
            raise DataError(path, f"member {m.name}: weight file {m.weights} not found")
    return manifest
