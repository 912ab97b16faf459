"""Fingerprints of a case's input files, so a correction is never silently applied to other data.

A case's maps (and ground truth) are fingerprinted when its first correction is saved: size,
mtime and sha256 of each file, under its path relative to the data set root. ``check`` compares
the files now: size and mtime equal means unchanged (no reading); otherwise the sha256 decides
(a file copied back or touched is unchanged). A changed or missing input is reported; the
correction is kept either way.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, Field

from strokelens.core import schema
from strokelens.core.errors import DataError
from strokelens.core.files import open_regular

_CHUNK = 1 << 20


class FileFingerprint(BaseModel):
    model_config = schema.STRICT
    size: Annotated[schema.Int, Field(ge=0)]
    mtime_ns: schema.Int
    sha256: Annotated[schema.Str, Field(pattern=r"^[0-9a-f]{64}$")]


Fingerprints = dict[str, FileFingerprint]


@dataclass(frozen=True)
class InputProblem:
    case_key: str
    file: str  # relative to the data set root
    problem: str  # "missing", "changed" or why it cannot be read


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open_regular(path, "input file") as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def fingerprint(paths: Iterable[Path], root: Path) -> Fingerprints:
    """Fingerprints of the ``paths`` that lie under ``root`` (others cannot be found again)."""
    root = root.resolve()
    out: Fingerprints = {}
    for path in paths:
        resolved = Path(path).resolve()
        if not resolved.is_relative_to(root):
            continue
        st = resolved.stat()
        out[resolved.relative_to(root).as_posix()] = FileFingerprint(
            size=st.st_size, mtime_ns=st.st_mtime_ns, sha256=file_sha256(resolved)
        )
    return out


def to_json(prints: Fingerprints) -> str:
    return json.dumps({k: v.model_dump() for k, v in sorted(prints.items())})


def from_json(text: str, source: str) -> Fingerprints:
    """Fingerprints stored as JSON, validated (the database is a file, and files are input)."""
    try:
        data = schema.parse(text, "json")
    except ValueError as exc:
        raise DataError(source, f"unreadable input fingerprints ({exc})") from None
    return schema.validate(data, Fingerprints, source)


def check(case_key: str, prints: Fingerprints, root: Path) -> list[InputProblem]:
    """What changed in the fingerprinted files under ``root`` (empty: nothing)."""
    problems = []
    root = root.resolve()
    for rel, saved in prints.items():
        path = (root / rel).resolve()
        if not path.is_relative_to(root):
            problems.append(InputProblem(case_key, rel, "lies outside the data set; not read"))
            continue
        try:
            st = path.stat()
            if (st.st_size, st.st_mtime_ns) == (saved.size, saved.mtime_ns):
                continue
            if st.st_size == saved.size and file_sha256(path) == saved.sha256:
                continue
        except FileNotFoundError:
            problems.append(InputProblem(case_key, rel, "missing"))
            continue
        except (OSError, DataError) as exc:
            problems.append(InputProblem(case_key, rel, f"cannot be read ({exc})"))
            continue
        problems.append(InputProblem(case_key, rel, "changed"))
    return problems
