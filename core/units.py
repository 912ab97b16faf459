"""Units of the channels, and where a data set declares the units and scale of its maps.

The viewer shows every channel in one unit (``UNITS``); a case's ``value_scales`` turn stored
values into it (physical value = stored value x scale). A map's scale comes from, in order:

1. the nearest ``strokelens.toml`` (``DECLARATION``) in the case folder, its parent or its
   grandparent (so a data set root's file covers ``TRAINING/case_1`` and a simple layout's
   case folders, whether the root, a split or one case is opened); the nearest file counts as a
   whole, files are not merged. Its ``[maps.<map>]`` tables give ``unit`` (one of
   ``UNIT_FACTORS``) and ``scale`` (stored value x scale = value in that unit; default 1);
2. else the map's ISLES ``.json`` sidecar ``scale``;
3. else 1 (values as stored).

A declaration wins over a sidecar because it is the user's explicit statement about the whole
data set; where both give a scale and they differ, the case notes it as a problem. CT is always
read in HU as stored (a declaration naming it is refused). Files are read through
``core.schema.UnitsDeclaration``.
"""

from __future__ import annotations

from pathlib import Path

#: The unit each channel is shown in (physical values).
UNITS = {"CT": "HU", "CBF": "mL/100g/min", "CBV": "mL/100g", "MTT": "s", "Tmax": "s"}

#: Units a declaration may give per map -> factor to the shown unit (``UNITS``).
UNIT_FACTORS: dict[str, dict[str, float]] = {
    "CBF": {"mL/100g/min": 1.0, "mL/g/min": 100.0},
    "CBV": {"mL/100g": 1.0, "mL/g": 100.0},
    "MTT": {"s": 1.0, "ms": 1e-3},
    "Tmax": {"s": 1.0, "ms": 1e-3},
}

#: File name of a units declaration.
DECLARATION = "strokelens.toml"
#: Folders above a case folder searched for ``DECLARATION`` (parent: split or data set root;
#: grandparent: the ISLES data set root above ``TRAINING/``).
LEVELS_ABOVE = 2


def find_declaration(case_folder: Path) -> Path | None:
    """The ``strokelens.toml`` nearest to ``case_folder`` (itself, then up to ``LEVELS_ABOVE``
    folders above), or None. A non-regular file of that name is returned, to be refused."""
    folder = Path(case_folder).absolute()
    for candidate in [folder, *folder.parents[:LEVELS_ABOVE]]:
        path = candidate / DECLARATION
        if path.exists() or path.is_symlink():
            return path
    return None
