"""Phantom anatomy: the MNI152 2009 template placed in a CT slab, with skull, CSF and vessels.

The grey/white-matter probability maps nilearn ships (read with nibabel, nilearn itself is not
imported: it is slow) give real sulci, ventricles and deep grey matter. Each subject gets its own
head size and pose; each slab is sampled with sub-planes across its slice thickness (5 mm at the
default site), so tissue fractions carry the partial-volume effect of thick CT slices. Template
arrays keep the file's ``(i, j, k)`` = MNI ``(x, y, z)`` order; everything sampled into a slab is
``(z, y, x)``.
"""

from __future__ import annotations

import functools
import importlib.util
from dataclasses import dataclass
from pathlib import Path

import nibabel as nib
import numpy as np
from scipy import ndimage as ndi

from strokelens.core.errors import DataError

TEMPLATE_FILES = {
    "gm": "mni_icbm152_gm_tal_nlin_sym_09a_converted.nii.gz",
    "wm": "mni_icbm152_wm_tal_nlin_sym_09a_converted.nii.gz",
    "t1": "mni_icbm152_t1_tal_nlin_sym_09a_converted.nii.gz",
}
PAD_BELOW = 16  # voxels added under the template (its brain stem touches the bottom)
COARSE = 2  # voxel size (mm) of the coarse grids: distance field, territories, lesions
SUBPLANES = 4  # samples across one slice thickness (partial volume)
SLICE_MM = 5.0  # slice thickness and spacing of the default site
MATRIX = 256

# Baseline (unenhanced) attenuation in HU.
HU_AIR = -1000.0
HU_BLOOD = 42.0
HU_SCALP = 30.0

# Vessel centre lines in MNI mm (x given for the right side, mirrored to the left) and radii.
_ARTERIES_PAIRED = [
    ([(18, 2, -48), (16, 1, -30), (14, 2, -16)], 2.2),  # internal carotid, cavernous part
    ([(14, 2, -16), (26, 4, -12), (36, 3, -7)], 1.6),  # MCA M1
    ([(36, 3, -7), (39, 10, 3), (41, 8, 16), (48, 12, 34), (44, 6, 54)], 1.1),  # M2-M4 upper
    ([(36, 3, -7), (41, -8, 1), (44, -20, 12), (52, -32, 28), (46, -44, 48)], 1.1),  # lower
    ([(44, 6, 54), (34, 0, 66)], 0.9),  # cortical branches up to the vertex
    ([(46, -44, 48), (32, -50, 64)], 0.9),
    ([(44, -20, 12), (52, -14, 30), (48, -18, 50), (32, -24, 66)], 0.9),  # rolandic
    ([(14, 2, -16), (4, 14, -10)], 1.2),  # ACA A1
    ([(4, 14, -10), (3, 30, -2), (3, 34, 16), (3, 16, 31), (3, -14, 35), (3, -44, 32)], 1.1),
    ([(3, 32, 12), (6, 36, 35), (7, 18, 55), (7, -10, 66), (8, -40, 62)], 0.9),  # callosomarg.
    ([(1, -22, -44), (1, -19, -18)], 1.7),  # half of the basilar trunk (both halves overlap)
    ([(1, -19, -18), (10, -21, -14), (22, -36, -8), (20, -60, 0), (12, -82, 6)], 1.1),  # PCA
    ([(12, -82, 6), (8, -72, 30), (6, -62, 50)], 0.9),  # parieto-occipital
]
_VEINS_PAIRED = [
    # transverse and sigmoid sinuses; the start is replaced by the confluence of sinuses
    ([(0, 0, 0), (26, -98, -10), (46, -84, -18), (54, -64, -30)], 2.6),
    ([(4, -12, 18), (1, -46, 10)], 1.2),  # internal cerebral veins
]
_STRAIGHT_SINUS = ([(1, -46, 10), (0, -72, 3)], 2.0)  # continues to the confluence


def template_dir() -> Path:
    """Folder of nilearn's bundled MNI152 files, found without importing nilearn."""
    spec = importlib.util.find_spec("nilearn")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("nilearn", "the nilearn package (MNI152 template files) is not installed")
    folder = Path(next(iter(spec.submodule_search_locations))) / "datasets" / "data"
    missing = [f for f in TEMPLATE_FILES.values() if not (folder / f).is_file()]
    if missing:
        raise DataError(folder, f"MNI152 template files missing: {', '.join(missing)}")
    return folder


@dataclass(frozen=True)
class Template:
    """The MNI152 2009 maps prepared once per process.

    1 mm grids (uint8, 0-255 = fraction): ``gm``, ``wm``, ``artery``, ``vein``.
    2 mm grids: ``sd`` signed distance (mm) to the intracranial surface (negative inside),
    ``parenchyma`` fraction of grey + white matter.
    Voxel ``n`` of a 2 mm grid is voxel ``2n`` of the 1 mm grid.
    """

    gm: np.ndarray
    wm: np.ndarray
    artery: np.ndarray
    vein: np.ndarray
    sd: np.ndarray
    parenchyma: np.ndarray
    origin: np.ndarray  # MNI mm of 1 mm voxel (0, 0, 0)

    def mni_coarse(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """MNI mm coordinates of the 2 mm grid, as open (broadcastable) axes."""
        return tuple(  # type: ignore[return-value]
            (self.origin[d] + COARSE * np.arange(n, dtype=np.float32)).reshape(
                [-1 if e == d else 1 for e in range(3)]
            )
            for d, n in enumerate(self.sd.shape)
        )


def _read(folder: Path, name: str) -> tuple[np.ndarray, np.ndarray]:
    img = nib.load(folder / TEMPLATE_FILES[name])
    data = np.asarray(img.dataobj, dtype=np.uint8)
    return np.pad(data, ((0, 0), (0, 0), (PAD_BELOW, 0))), img.affine


def _coarse(a: np.ndarray) -> np.ndarray:
    """A 1 mm grid smoothed and taken every second voxel (centres stay on 1 mm voxels)."""
    return ndi.gaussian_filter(a.astype(np.float32), 0.85)[::COARSE, ::COARSE, ::COARSE]


def _mirror(points: list[tuple[float, float, float]]) -> list[tuple[float, float, float]]:
    return [(-x, y, z) for x, y, z in points]


def _sinus_path(icv: np.ndarray, origin: np.ndarray) -> list[tuple[float, float, float]]:
    """Superior sagittal sinus: 2 mm outside the mid-sagittal brain outline, front to back."""
    mid = icv[int(round(-origin[0])), :, :]  # the x = 0 plane, (y, z)
    centre = np.array([-18.0, 10.0])  # (y, z) mm
    path = []
    for theta in np.deg2rad(np.arange(-15.0, 196.0, 6.0)):
        direction = np.array([np.cos(theta), np.sin(theta)])
        radii = np.arange(0.0, 140.0, 0.5)
        yz = centre + radii[:, None] * direction
        idx = np.round(yz - origin[1:]).astype(int)
        ok = (idx >= 0).all(1) & (idx < mid.shape).all(1)
        inside = np.zeros(len(radii), bool)
        inside[ok] = mid[idx[ok, 0], idx[ok, 1]]
        r = radii[np.nonzero(inside)[0].max()] + 2.0
        y, z = centre + r * direction
        path.append((0.0, float(y), float(z)))
    return path


def _tube(shape, origin, points, radius, out: np.ndarray) -> None:
    """Rasterize an anti-aliased tube (fraction 0-255) along a polyline into ``out`` (max)."""
    pts = np.asarray(points, dtype=np.float64)
    for a, b in zip(pts[:-1], pts[1:], strict=True):
        lo = np.floor(np.minimum(a, b) - radius - 2 - origin).astype(int).clip(0)
        hi = np.ceil(np.maximum(a, b) + radius + 2 - origin).astype(int) + 1
        hi = np.minimum(hi, shape)
        if (hi <= lo).any():
            continue
        axes = [origin[d] + np.arange(lo[d], hi[d]) for d in range(3)]
        p = np.stack(np.meshgrid(*axes, indexing="ij"), -1)
        ab = b - a
        t = np.clip(((p - a) @ ab) / max(ab @ ab, 1e-9), 0.0, 1.0)
        dist = np.linalg.norm(p - (a + t[..., None] * ab), axis=-1)
        frac = np.clip(radius + 0.5 - dist, 0.0, 1.0) * 255.0
        box = out[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]]
        np.maximum(box, frac.astype(np.uint8), out=box)


@functools.cache
def load_template() -> Template:
    """Read and prepare the template (a few seconds, once per process)."""
    folder = template_dir()
    gm, affine = _read(folder, "gm")
    wm, _ = _read(folder, "wm")
    t1, _ = _read(folder, "t1")
    origin = affine[:3, 3] - np.array([0.0, 0.0, PAD_BELOW])
    icv = (t1 > 0) | (gm.astype(np.uint16) + wm > 76)
    icv = ndi.binary_fill_holes(ndi.binary_closing(icv, ndi.generate_binary_structure(3, 1), 2))
    icv2 = _coarse(icv) > 0.5
    sd = (ndi.distance_transform_edt(~icv2) - ndi.distance_transform_edt(icv2)) * COARSE
    sd = (sd - np.sign(sd) * COARSE / 2).astype(np.float32)
    artery = np.zeros(gm.shape, np.uint8)
    vein = np.zeros(gm.shape, np.uint8)
    for points, radius in _ARTERIES_PAIRED:
        _tube(gm.shape, origin, points, radius, artery)
        _tube(gm.shape, origin, _mirror(points), radius, artery)
    sss = _sinus_path(icv, origin)
    _tube(gm.shape, origin, sss, 3.0, vein)
    confluence = sss[-1]
    _tube(gm.shape, origin, _STRAIGHT_SINUS[0] + [confluence], _STRAIGHT_SINUS[1], vein)
    for points, radius in _VEINS_PAIRED:
        pts = points if points[0] != (0, 0, 0) else [confluence] + points[1:]
        _tube(gm.shape, origin, pts, radius, vein)
        _tube(gm.shape, origin, _mirror(pts), radius, vein)
    parenchyma = _coarse(gm.astype(np.float32) + wm) / 255.0
    return Template(gm, wm, artery, vein, sd, parenchyma, origin)


@dataclass(frozen=True)
class Pose:
    """Where a subject's head sits in the scanner: ``scanner = matrix @ mni + shift`` (mm)."""

    matrix: np.ndarray  # rotation @ diag(scale)
    shift: np.ndarray

    def to_scanner(self, mni: np.ndarray) -> np.ndarray:
        return self.matrix @ np.asarray(mni, dtype=np.float64) + self.shift

    @property
    def volume_factor(self) -> float:
        """Subject mL per template mL."""
        return float(abs(np.linalg.det(self.matrix)))


def _rotation(pitch: float, roll: float, yaw: float) -> np.ndarray:
    cx, sx = np.cos(pitch), np.sin(pitch)
    cy, sy = np.cos(roll), np.sin(roll)
    cz, sz = np.cos(yaw), np.sin(yaw)
    rx = np.array([[1, 0, 0], [0, cx, -sx], [0, sx, cx]])
    ry = np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]])
    rz = np.array([[cz, -sz, 0], [sz, cz, 0], [0, 0, 1]])
    return rz @ ry @ rx


def random_pose(rng: np.random.Generator) -> Pose:
    """Head size 0.9-1.07 x the template (slightly anisotropic), tilt and turn of a few degrees,
    head off the field-of-view centre by up to ~1 cm."""
    scale = rng.uniform(0.9, 1.07) * rng.uniform(0.97, 1.03, size=3)
    angles = np.deg2rad([rng.uniform(-10, 10), rng.uniform(-4, 4), rng.uniform(-6, 6)])
    matrix = _rotation(*angles) @ np.diag(scale)
    centre = np.array([rng.uniform(-8, 8), rng.uniform(-10, 10), 0.0])
    return Pose(matrix, centre - matrix @ np.array([0.0, -17.0, 0.0]))


@dataclass(frozen=True)
class Slab:
    """The acquired volume: ``n_slices`` contiguous axial slices of 256 x 256 pixels."""

    n_slices: int
    pixel: float  # in-plane mm
    z_first: float  # scanner z (mm) of the first slice centre
    thickness: float = SLICE_MM  # mm, also the slice spacing (contiguous slices)

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.n_slices, MATRIX, MATRIX)

    @property
    def spacing(self) -> tuple[float, float, float]:
        return (self.thickness, self.pixel, self.pixel)

    @property
    def affine(self) -> np.ndarray:
        """NIfTI affine, voxel (i, j, k) -> scanner RAS mm; i runs to the patient's left."""
        half = (MATRIX - 1) / 2.0
        return np.array(
            [
                [-self.pixel, 0.0, 0.0, self.pixel * half],
                [0.0, self.pixel, 0.0, -self.pixel * half],
                [0.0, 0.0, self.thickness, self.z_first],
                [0.0, 0.0, 0.0, 1.0],
            ]
        )


def sample(
    grid: np.ndarray,
    step: float,
    origin: np.ndarray,
    pose: Pose,
    slab: Slab,
    cval: float = 0.0,
    order: int = 1,
) -> np.ndarray:
    """Resample a template grid into ``slab`` at ``SUBPLANES`` planes per slice.

    Returns float32 ``(z, SUBPLANES, y, x)``; the mean over axis 1 is the thick-slice value.
    """
    inv = np.linalg.inv(pose.matrix)
    affine = slab.affine
    # output (m, j, i) -> voxel (i, j, k) with k = (m + 0.5) / SUBPLANES - 0.5
    to_voxel = np.array([[0.0, 0.0, 1.0], [0.0, 1.0, 0.0], [1.0 / SUBPLANES, 0.0, 0.0]])
    voxel_shift = np.array([0.0, 0.0, 0.5 / SUBPLANES - 0.5])
    matrix = inv @ affine[:3, :3] @ to_voxel / step
    offset = (inv @ (affine[:3, :3] @ voxel_shift + affine[:3, 3] - pose.shift) - origin) / step
    out = ndi.affine_transform(
        grid,
        matrix,
        offset,
        output_shape=(slab.n_slices * SUBPLANES, MATRIX, MATRIX),
        output=np.float32,
        order=order,
        mode="constant",
        cval=cval,
    )
    return out.reshape(slab.n_slices, SUBPLANES, MATRIX, MATRIX)


def mni_coordinates(pose: Pose, slab: Slab) -> np.ndarray:
    """MNI mm of every voxel centre of ``slab``: float32 ``(3, z, y, x)`` (x, y, z first)."""
    k, j, i = np.meshgrid(
        *(np.arange(n, dtype=np.float64) for n in slab.shape), indexing="ij", sparse=True
    )
    inv = np.linalg.inv(pose.matrix)
    to_mni = inv @ slab.affine[:3, :3]
    shift = inv @ (slab.affine[:3, 3] - pose.shift)
    return np.stack(
        [(to_mni[d, 0] * i + to_mni[d, 1] * j + to_mni[d, 2] * k + shift[d]) for d in range(3)]
    ).astype(np.float32)


@dataclass(frozen=True)
class Tissue:
    """Per-subject attenuation and skull geometry."""

    hu_gm: float
    hu_wm: float
    hu_csf: float
    bone_mm: float  # skull thickness
    csf_rim_mm: float  # CSF and meninges between brain and bone


def random_tissue(rng: np.random.Generator) -> Tissue:
    return Tissue(
        hu_gm=rng.uniform(35, 40),
        hu_wm=rng.uniform(25, 30),
        hu_csf=rng.uniform(2, 9),
        bone_mm=rng.uniform(5, 8),
        csf_rim_mm=rng.uniform(1.0, 2.5),
    )


@dataclass
class Anatomy:
    """Volume fractions of each material in each voxel of a slab (float32, ``(z, y, x)``).

    The fractions sum to 1 per voxel (air is what is left). ``baseline`` is the unenhanced HU.
    ``parenchyma_sub`` keeps the sub-plane grey + white matter fraction for the follow-up mask.
    """

    gm: np.ndarray
    wm: np.ndarray
    csf: np.ndarray
    bone: np.ndarray
    scalp: np.ndarray
    artery: np.ndarray
    vein: np.ndarray
    baseline: np.ndarray
    parenchyma_sub: np.ndarray


def _ramp(x: np.ndarray) -> np.ndarray:
    """Fraction of a 1 mm-wide partial-volume edge at signed position ``x`` (mm)."""
    return np.clip(x + 0.5, 0.0, 1.0)


def build_anatomy(pose: Pose, slab: Slab, tissue: Tissue) -> Anatomy:
    """Sample the template into ``slab`` for a subject placed by ``pose``."""
    t = load_template()
    sd = sample(t.sd, COARSE, t.origin, pose, slab, cval=1e3)
    gm = sample(t.gm, 1.0, t.origin, pose, slab) / 255.0
    wm = sample(t.wm, 1.0, t.origin, pose, slab) / 255.0
    artery = sample(t.artery, 1.0, t.origin, pose, slab) / 255.0
    vein = sample(t.vein, 1.0, t.origin, pose, slab) / 255.0
    inside = _ramp(-sd)
    bone_in, bone_out = tissue.csf_rim_mm, tissue.csf_rim_mm + tissue.bone_mm
    bone = _ramp(sd - bone_in) - _ramp(sd - bone_out)
    scalp = _ramp(sd - bone_out) - _ramp(sd - bone_out - 5.0)
    rim = _ramp(sd) - _ramp(sd - bone_in)
    gm *= inside
    wm *= inside
    over = np.maximum(gm + wm - inside, 0.0)  # template interpolation can exceed the inside
    wm -= np.minimum(over, wm)
    csf = np.maximum(inside - gm - wm, 0.0) + rim
    blood = np.minimum(artery + vein, 1.0)
    keep = 1.0 - blood
    gm, wm, csf, bone, scalp = (a * keep for a in (gm, wm, csf, bone, scalp))
    # Compact bone at the inner and outer tables (~1500 HU), diploe in between (~700 HU).
    depth = np.clip((sd - bone_in) / tissue.bone_mm, 0.0, 1.0)
    hu_bone = 700.0 + 800.0 * np.abs(2.0 * depth - 1.0) ** 2
    air = np.clip(1.0 - gm - wm - csf - bone - scalp - blood, 0.0, 1.0)
    baseline = (
        gm * tissue.hu_gm
        + wm * tissue.hu_wm
        + csf * tissue.hu_csf
        + bone * hu_bone
        + scalp * HU_SCALP
        + blood * HU_BLOOD
        + air * HU_AIR
    )
    mean = functools.partial(np.mean, axis=1, dtype=np.float32)
    return Anatomy(
        gm=mean(gm),
        wm=mean(wm),
        csf=mean(csf),
        bone=mean(bone),
        scalp=mean(scalp),
        artery=mean(artery / np.maximum(artery + vein, 1.0)),
        vein=mean(vein / np.maximum(artery + vein, 1.0)),
        baseline=mean(baseline),
        parenchyma_sub=gm + wm,
    )
