"""The largest input StrokeLens reads, in one place: every size a file declares is checked
against these before anything is allocated.

They come from what the data can be, with generous room. ISLES 2018 CT perfusion is 256 x 256
in-plane, 2-22 slices (slabs), 43-64 frames: an ISLES map has 1.4 Mi voxels, an ISLES 4D source
at most 92 Mi. A header that declares more than the limits is corrupt or hostile (a 2 MB
``.nii.gz`` claiming 2048 x 2048 x 512 voxels would need 12 GiB), and is refused from the header
alone instead of dying in a MemoryError or taking the machine's memory.
"""

from __future__ import annotations

import math
import os

#: Voxels along each in-plane axis (ISLES: 256; 4x that).
MAX_IN_PLANE = 1024
#: Slices (ISLES slabs: up to 22; a whole-brain thin-slice CT stays below this).
MAX_SLICES = 512
#: Frames of a 4D perfusion source (ISLES: 43-64).
MAX_FRAMES = 256
#: Voxels of one 3D volume: 64 Mi (256 MiB as float32), 45x an ISLES map; 512 x 512 x 256 fits.
MAX_VOLUME_VOXELS = 2**26
#: Voxels of one 4D series: 256 Mi (1 GiB as float32), ~3x the largest ISLES source.
MAX_SERIES_VOXELS = 2**28
#: Bytes of a NIfTI header with its extensions (the data offset): DICOM-derived extensions take
#: kilobytes.
MAX_HEADER_BYTES = 2**24
#: Bytes of a JSON or TOML or CSV file (manifests, sidecars, configs, subjects.csv): such files
#: take kilobytes; this bounds what reading one can allocate.
MAX_TEXT_BYTES = 2**24
#: Members of an ensemble (the paper's: 10). Each is a network in memory and a pass per slice.
MAX_MEMBERS = 64


def cpu_count() -> int:
    """CPUs this process may run on (its affinity where the system has one), at least 1."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def check_shape(shape: tuple[int, ...]) -> str | None:
    """Why an image of ``shape`` (NIfTI order: x, y, z[, t]) is beyond the limits, or None."""
    axes = (("in-plane", MAX_IN_PLANE), ("in-plane", MAX_IN_PLANE), ("slices", MAX_SLICES))
    axes += (("frames", MAX_FRAMES),)
    for n, (name, limit) in zip(shape, axes, strict=False):
        if n > limit:
            return f"{n} {name} voxels (at most {limit})"
    series = len(shape) > 3 and shape[3] > 1
    what, budget = ("series", MAX_SERIES_VOXELS) if series else ("volume", MAX_VOLUME_VOXELS)
    voxels = math.prod(int(n) for n in shape)
    if voxels > budget:
        return f"{voxels} voxels (at most {budget} in one {what})"
    return None


#: Bounds of a map's value scale (sidecar ``scale``, ``strokelens.toml``): stored values x 10
#: or x 100 are common; beyond 1e6 either way the scale is a mistake (or turns values into inf).
MIN_VALUE_SCALE = 1e-6
MAX_VALUE_SCALE = 1e6
#: Nesting depth of a JSON or TOML document (brackets, braces, dotted keys): ours nest 4 deep. A
#: deeper one is refused before it is parsed (parsers recurse; 10^5 levels overflow the stack).
MAX_NESTING = 32
#: Bytes of a JSON or TOML document (manifests, configs, sidecars, checkpoints' JSON): ours take
#: kilobytes; this also bounds the nesting scan of a hostile one to well under a second.
MAX_DOCUMENT_BYTES = 2**20
