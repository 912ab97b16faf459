"""Names read from files become parts of the paths StrokeLens writes only after a strict check.

A manifest, a training config or a data set's folder names are input, and input can be hostile:
a member named ``../../x`` must not make ``predict`` write outside ``--out``. So a name from a
file passes ``check_name`` where it is read (the message names the file and the field), and a
path built from such names is made with ``path_inside``, which checks every part again and that
the resolved path stays inside its folder (a symlink out of it counts as outside). The rule is an
allow-list, not a list of known-bad characters, so no separator, drive letter, control
character or look-alike slips through; it also keeps names valid file names on Windows.
"""

from __future__ import annotations

import re
from pathlib import Path

from strokelens.core.errors import DataError

#: What a name may look like, in words for messages.
NAME_RULE = (
    "use letters, digits, '_', '-' and '.' (starting with a letter, digit or '_', "
    "no '..', not ending in '.')"
)
#: Longest name from a file; composed file names (``<case>_member_<name>.nii.gz``) stay far
#: below the file systems' 255 bytes per path part.
MAX_NAME = 64

_PART = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", re.ASCII)
_MAX_PART = 255
#: Names Windows reserves for devices, whatever the extension (``CON.safetensors`` included).
_DEVICES = {"CON", "PRN", "AUX", "NUL"} | {f"{d}{i}" for d in ("COM", "LPT") for i in range(10)}


def _problem(part: str) -> str | None:
    """Why ``part`` cannot be one component of a path we write, or None when it can."""
    if not _PART.fullmatch(part) or ".." in part or part.endswith("."):
        return NAME_RULE
    if len(part) > _MAX_PART:
        return f"longer than {_MAX_PART} characters"
    if part.split(".")[0].upper() in _DEVICES:
        return "a reserved device name on Windows"
    return None


def name_problem(value: str) -> str | None:
    """Why ``value`` (a name from a file) cannot be part of a file name, or None when it can."""
    if len(value) > MAX_NAME:
        return f"longer than {MAX_NAME} characters"
    return _problem(value)


def check_name(value: str, what: str, source: str | Path) -> str:
    """``value`` if it is fit to be part of a file name, else a DataError naming ``source``
    (the file or folder it came from) and ``what`` (the field, e.g. "member 2: name")."""
    problem = name_problem(value)
    if problem is not None:
        raise DataError(source, f"{what} {value!r} cannot be part of a file name: {problem}")
    return value


def path_inside(folder: str | Path, *parts: str) -> Path:
    """``folder / parts[0] / ...``, refused with a DataError naming ``folder`` unless every part
    is a plain name (see ``NAME_RULE``) and the resolved path lies inside the resolved folder.

    The path is returned as joined, not resolved, so it stays relative to ``folder`` as given.
    """
    folder = Path(folder)
    for part in parts:
        problem = _problem(part)
        if problem is not None:
            raise DataError(folder, f"{part!r} cannot be a file name here: {problem}")
    path = folder.joinpath(*parts)
    if not path.resolve().is_relative_to(folder.resolve()):
        shown = "/".join(parts)
        raise DataError(folder, f"{shown} leads outside this folder (a symlink?); refused")
    return path
