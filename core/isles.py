"""ISLES 2018 naming: modality folders ``SMIR.Brain.XX.O.<MOD>.<id>`` and sidecars.

Names are parsed with an anchored pattern: a substring test for ``CT`` would also match every
``CT_*`` map (a bug seen in public loaders). ``CT_`` and the older ``MR_`` prefixes are accepted.
"""

from __future__ import annotations

import re
from pathlib import Path

from strokelens.core.errors import DataError
from strokelens.core.schema import Sidecar, load

MODALITY_FOLDER = re.compile(r"^SMIR\.Brain\.XX\.O\.(?P<mod>\w+)\.(?P<id>\d+)$")

#: modality token in the folder name -> our key (channel name, "OT" or "4DPWI").
_PREFIXED = {"CBF": "CBF", "CBV": "CBV", "MTT": "MTT", "TMAX": "Tmax", "4DPWI": "4DPWI"}


def modality_key(token: str) -> str | None:
    """``CT`` -> ``CT``, ``CT_CBF``/``MR_CBF`` -> ``CBF``, ``OT`` -> ``OT``; None if unknown."""
    upper = token.upper()
    if upper in ("CT", "OT"):
        return upper
    prefix, _, rest = upper.partition("_")
    if prefix in ("CT", "MR") and rest in _PREFIXED:
        return _PREFIXED[rest]
    return None


def parse_modality_folder(name: str) -> tuple[str, str] | None:
    """``(key, id)`` for an ISLES modality folder name, None if the name does not match."""
    m = MODALITY_FOLDER.match(name)
    if m is None:
        return None
    key = modality_key(m["mod"])
    return (key, m["id"]) if key else None


def is_isles_case_folder(folder: Path) -> bool:
    return any(p.is_dir() and MODALITY_FOLDER.match(p.name) for p in folder.iterdir())


def read_sidecar(sidecar: Path) -> Sidecar:
    """A ``.json`` sidecar's fields that StrokeLens uses (``core.schema.Sidecar``); ValueError
    with a reason when it is unreadable or a used field is malformed."""
    try:
        return load(sidecar, Sidecar, "JSON sidecar")
    except DataError as exc:
        raise ValueError(f"unreadable sidecar ({exc.problem})") from None


def patient_from_sidecar(sidecar: Path) -> str | None:
    """Patient id from an OT sidecar's ``description`` (best effort; None when absent).

    The description reads ``"... - ... - <study> - ..."``; the study id's second ``_`` field is the
    patient id. Raises ValueError with a reason when the sidecar is unreadable.
    """
    description = read_sidecar(sidecar).description
    if description is None:
        return None
    parts = description.split(" - ")
    if len(parts) < 3:
        return None
    fields = parts[2].strip().split("_")
    return fields[1] if len(fields) > 1 and fields[1] else None


def value_scale_from_sidecar(sidecar: Path) -> float | None:
    """The sidecar's ``scale`` (physical value = stored value x scale), None when not given.

    Integer map files store e.g. CBF x 10 to keep a decimal; the scale turns them back into
    mL/100g/min. Raises ValueError when the sidecar is unreadable or the scale is not a positive
    finite number.
    """
    return read_sidecar(sidecar).scale
