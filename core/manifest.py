"""Ensemble manifests: which weight files make an ensemble, with their fold, loss and sha256.

Cross-validation writes one (``training``), the inference engine reads one (``core``), the model
registry lists them. A manifest is JSON; member paths are relative to the manifest's folder::

    {"format": "strokelens-ensemble", "version": 1, "name": "paper-phantom",
     "preprocessing": {"CT": [0, 100], ...},
     "members": [{"name": "focal-fold1", "loss": "focal", "fold": 1,
                  "weights": "focal/fold_1/best.safetensors", "sha256": "...", "val_dice": 0.61}]}
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from strokelens.core.errors import DataError
from strokelens.core.preprocessing import ChannelRange
from strokelens.core.writer import atomic_write_bytes

FORMAT = "strokelens-ensemble"
VERSION = 1


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

    def weights_path(self, member: Member) -> Path:
        base = self.path.parent if self.path is not None else Path.cwd()
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


def read_manifest(path: str | Path) -> Manifest:
    """Read and check a manifest (member files must exist; sha256 is checked when loading)."""
    path = Path(path)
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise DataError(path, "ensemble manifest not found") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DataError(path, f"not a readable ensemble manifest ({exc})") from exc
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise DataError(path, f"not a StrokeLens ensemble manifest (format must be {FORMAT!r})")
    if raw.get("version") != VERSION:
        raise DataError(
            path, f"manifest version {raw.get('version')!r}, this StrokeLens reads {VERSION}"
        )
    try:
        members = [Member(**m) for m in raw["members"]]
        scaling = {
            k: ChannelRange(float(lo), float(hi)) for k, (lo, hi) in raw["preprocessing"].items()
        }
        manifest = Manifest(str(raw["name"]), members, scaling, path, dict(raw.get("meta", {})))
    except (KeyError, TypeError, ValueError) as exc:
        raise DataError(path, f"malformed manifest ({exc!r})") from exc
    if not members:
        raise DataError(path, "the ensemble has no members")
    for m in members:
        if not manifest.weights_path(m).is_file():
            raise DataError(path, f"member {m.name}: weight file {m.weights} not found")
    return manifest
