"""Phantom acquisition: a patient, a slab, a bolus -> the 4D series a scanner would store.

The perfusion maps are then computed from that series by the same software the product uses
(``strokelens.core.perfusion.analysis.compute_maps``), so they carry real deconvolution, AIF
selection and noise artifacts; the simulation parameters are kept apart as ``Truth``.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
from scipy import ndimage as ndi

from strokelens.core.perfusion import analysis, simulate
from strokelens.core.phantom.anatomy import (
    COARSE,
    SLICE_MM,
    Anatomy,
    Pose,
    Slab,
    Tissue,
    build_anatomy,
    load_template,
    mni_coordinates,
    random_pose,
    random_tissue,
    sample,
)
from strokelens.core.phantom.lesion import CORE_RCBF, HYPO_DELAY_S, Lesion, random_lesion
from strokelens.core.phantom.sites import DEFAULT, Site

FRAME_S = 1.0
NOISE_CORRELATION_PX = 0.7  # in-plane Gaussian sigma of the noise (reconstruction kernel)
#: lowest and highest MNI z a slab may reach (skull base to vertex)
SLAB_MNI_Z = (-45.0, 85.0)
#: head length (mm, front to back, with skull) the field of view must hold
HEAD_LENGTH_MM = 215.0


@dataclass(frozen=True)
class Physiology:
    """Healthy tissue perfusion of one patient (REFERENCE §5 normal values)."""

    cbf_gm: float  # mL/100 g/min
    cbf_wm: float
    mtt_gm: float  # s
    mtt_wm: float
    cbf_scalp: float
    mtt_scalp: float
    delay_left: float  # s, normal bolus delay of each hemisphere
    delay_right: float


def random_physiology(rng: np.random.Generator, site: Site = DEFAULT) -> Physiology:
    return Physiology(
        cbf_gm=rng.uniform(50, 62),
        cbf_wm=rng.uniform(20, 25),
        mtt_gm=rng.uniform(4.0, 5.0),
        mtt_wm=rng.uniform(5.0, 6.0),
        cbf_scalp=rng.uniform(6, 12),
        mtt_scalp=rng.uniform(6, 10),
        delay_left=rng.uniform(*site.normal_delay_s),
        delay_right=rng.uniform(*site.normal_delay_s),
    )


@dataclass(frozen=True)
class Patient:
    """Everything shared by the slabs of one patient: head, tissue, perfusion, lesion."""

    id: str  # e.g. "P0007"
    pose: Pose
    tissue: Tissue
    physiology: Physiology
    lesion: Lesion
    pixel: float  # in-plane mm of this patient's scanner protocol


def random_patient(rng: np.random.Generator, patient_id: str, site: Site = DEFAULT) -> Patient:
    pose = random_pose(rng)
    scale_y = float(np.linalg.norm(pose.matrix[:, 1]))
    pixel = max(rng.uniform(0.8, 1.0), HEAD_LENGTH_MM * scale_y / 256.0)
    return Patient(
        id=patient_id,
        pose=pose,
        tissue=random_tissue(rng),
        physiology=random_physiology(rng, site),
        lesion=random_lesion(rng, pose.volume_factor),
        # NIfTI keeps pixdim as float32: the maps are analysed with the spacing the files carry
        pixel=float(np.float32(pixel)),
    )


def plan_slabs(
    patient: Patient,
    rng: np.random.Generator,
    n_slices: int,
    n_slabs: int = 1,
    slice_mm: float = SLICE_MM,
) -> list[Slab]:
    """Slabs placed over the lesion, as a radiologist would: one around it, or two stacked."""
    pose = patient.pose
    centre = pose.to_scanner(np.array(patient.lesion.centre_mni))[2]
    lo, hi = (pose.to_scanner(np.array([0.0, -17.0, z]))[2] for z in SLAB_MNI_Z)
    height = n_slices * slice_mm
    if n_slabs == 1:
        starts = [centre - height / 2 + rng.uniform(-0.3, 0.3) * height]
    else:
        first = centre - height + rng.uniform(-0.25, 0.25) * height
        starts = [first + k * height for k in range(n_slabs)]
    top = max(starts) + height
    shift = max(0.0, lo - min(starts)) if top <= hi else hi - top  # stay inside the skull
    return [Slab(n_slices, patient.pixel, s + shift + slice_mm / 2, slice_mm) for s in starts]


@dataclass(frozen=True)
class Bolus:
    """Arterial input: a gamma-variate first pass plus a broad recirculation pass."""

    t0: float
    alpha: float
    beta: float
    peak: float  # HU
    recirculation: float  # peak of the second pass relative to the first
    recirculation_lag: float  # s
    venous_lag: float  # s, artery to superior sagittal sinus
    venous_dispersion: float  # widening of the venous curve (area kept)

    def aif(self, t: np.ndarray, delay=0.0) -> np.ndarray:
        """Arterial enhancement (HU) at times ``t`` (s), arriving ``delay`` s late (broadcast)."""
        late = np.asarray(t, dtype=np.float64) - np.asarray(delay, dtype=np.float64)
        first = simulate.gamma_variate(late, self.t0, self.alpha, self.beta, self.peak)
        second = simulate.gamma_variate(
            late, self.t0 + self.recirculation_lag, self.alpha, 2.5 * self.beta,
            self.recirculation * self.peak,
        )  # fmt: skip
        return first + second

    def vof(self, t: np.ndarray) -> np.ndarray:
        """Venous outflow: the AIF delayed and dispersed; a gamma variate's area is proportional
        to peak * beta at fixed alpha, so dividing the peak by the widening keeps the area."""
        wide = Bolus(
            self.t0 + self.venous_lag,
            self.alpha,
            self.beta * self.venous_dispersion,
            self.peak / self.venous_dispersion,
            self.recirculation,
            self.recirculation_lag,
            0.0,
            1.0,
        )
        return wide.aif(t)

    @property
    def pre_bolus_frames(self) -> int:
        return max(1, int(np.ceil(self.t0 / FRAME_S)))


def random_bolus(rng: np.random.Generator, site: Site = DEFAULT) -> Bolus:
    return Bolus(
        t0=rng.uniform(*site.bolus_t0_s),
        alpha=rng.uniform(2.5, 4.0),
        beta=rng.uniform(*site.bolus_beta_s),
        peak=rng.uniform(200.0, 400.0),
        recirculation=rng.uniform(0.08, 0.15),
        recirculation_lag=rng.uniform(13.0, 18.0),
        venous_lag=rng.uniform(5.0, 7.0),
        venous_dispersion=rng.uniform(1.5, 2.0),
    )


@dataclass
class Truth:
    """Simulation parameters of a slab, ``(z, y, x)``: what the maps should find."""

    cbf: np.ndarray  # mL/100 g/min of the voxel's tissue mix (0 outside parenchyma)
    cbv: np.ndarray  # mL/100 g
    delay: np.ndarray  # s (= the Tmax a perfect analysis finds)
    rcbf: np.ndarray  # relative to the same tissue in the healthy hemisphere
    core: np.ndarray  # bool: relative CBF < 30 % (parenchyma voxels)
    hypoperfused: np.ndarray  # bool: delay > 6 s (parenchyma voxels)


@dataclass
class PhantomScan:
    """One simulated case: what is written to disk plus the truth it came from."""

    patient: Patient
    slab: Slab
    bolus: Bolus
    noise_hu: float
    series: np.ndarray  # int16 (t, z, y, x) HU
    ct: np.ndarray  # int32 (z, y, x): mean of the pre-bolus frames
    maps: analysis.PerfusionMaps  # as the site's software reports them (its CBF/CBV scaling)
    followup: np.ndarray  # uint8 (z, y, x): the follow-up DWI lesion (ISLES "OT")
    truth: Truth
    anatomy: Anatomy
    site: Site = DEFAULT


def _hemisphere_delay(patient: Patient, slab: Slab) -> np.ndarray:
    """Normal bolus delay per voxel: each hemisphere its own, blended over ~1 cm at the midline."""
    x = mni_coordinates(patient.pose, slab)[0]
    right = 1.0 / (1.0 + np.exp(-x / 4.0))
    p = patient.physiology
    return (p.delay_left + (p.delay_right - p.delay_left) * right).astype(np.float32)


def _correlated_noise(rng: np.random.Generator, shape, sigma_hu: float) -> np.ndarray:
    noise = rng.standard_normal(shape, dtype=np.float32)
    ndi.gaussian_filter(noise, (0, 0, NOISE_CORRELATION_PX, NOISE_CORRELATION_PX), output=noise)
    delta = np.zeros((9, 9), np.float32)
    delta[4, 4] = 1.0
    gain = float(np.sqrt((ndi.gaussian_filter(delta, NOISE_CORRELATION_PX) ** 2).sum()))
    noise *= sigma_hu / gain
    return noise


def _followup_mask(lesion: Lesion, patient: Patient, slab: Slab, anat: Anatomy) -> np.ndarray:
    """The lesion a follow-up DWI shows, as it would be drawn and resampled onto the slab."""
    t = load_template()
    field = sample(lesion.followup, COARSE, t.origin, patient.pose, slab)
    inside = (field > lesion.t_core) & (anat.parenchyma_sub > 0.5)
    fraction = inside.mean(axis=1, dtype=np.float32)
    fraction = ndi.gaussian_filter(fraction, (0, 1.0, 1.0))
    return (fraction >= 0.5).astype(np.uint8)


def _vendor_maps(maps: analysis.PerfusionMaps, site: Site) -> analysis.PerfusionMaps:
    """The maps as the site's perfusion software reports them: its calibration of each map."""
    scales = dict(cbf=site.cbf_scale, cbv=site.cbv_scale, mtt=site.mtt_scale, tmax=site.tmax_scale)
    if all(v == 1.0 for v in scales.values()):
        return maps
    return replace(
        maps,
        **{
            name: (getattr(maps, name) * np.float32(v)).astype(getattr(maps, name).dtype)
            for name, v in scales.items()
        },
    )


def scan(
    patient: Patient,
    slab: Slab,
    rng: np.random.Generator,
    n_frames: int | None = None,
    site: Site = DEFAULT,
) -> PhantomScan:
    """Acquire ``slab`` of ``patient`` at ``site`` with a fresh bolus and noise, then compute the
    maps (scaled as the site's software reports them)."""
    frames = site.frames
    n_frames = int(rng.integers(frames[0], frames[1] + 1)) if n_frames is None else n_frames
    bolus = random_bolus(rng, site)
    noise_hu = float(rng.uniform(*site.noise_hu))
    anat = build_anatomy(patient.pose, slab, patient.tissue)
    lesion, phys = patient.lesion, patient.physiology
    t = load_template()
    severity = sample(lesion.severity, COARSE, t.origin, patient.pose, slab).mean(axis=1)
    rcbf, rcbv, extra = lesion.modifiers(severity)
    base = _hemisphere_delay(patient, slab)
    delay = extra + base * np.clip(1.0 - extra / HYPO_DELAY_S, 0.0, 1.0)

    times = np.arange(n_frames) * FRAME_S
    aif = bolus.aif(times)
    series = np.broadcast_to(anat.baseline, (n_frames, *slab.shape)).copy()
    # tissue: grey and white matter (partial volume: the mix of both curves), scalp
    for frac, cbf0, mtt0, sick in (
        (anat.gm, phys.cbf_gm, phys.mtt_gm, True),
        (anat.wm, phys.cbf_wm, phys.mtt_wm, True),
        (anat.scalp, phys.cbf_scalp, phys.mtt_scalp, False),
    ):
        idx = np.nonzero(frac > 1e-3)
        if sick:
            cbf = cbf0 * rcbf[idx]
            mtt = mtt0 * rcbv[idx] / rcbf[idx]
            dly = delay[idx]
        else:
            cbf, mtt, dly = cbf0, mtt0, base[idx]
        curves = simulate.tissue_curves(aif, cbf, mtt, dly, FRAME_S)
        series[(slice(None), *idx)] += frac[idx] * curves
    # large vessels: arteries carry the (possibly delayed) arterial curve, veins the outflow
    idx = np.nonzero(anat.artery > 1e-3)
    arterial = bolus.aif(times[:, None], extra[idx][None, :])
    series[(slice(None), *idx)] += anat.artery[idx] * arterial.astype(np.float32)
    idx = np.nonzero(anat.vein > 1e-3)
    series[(slice(None), *idx)] += anat.vein[idx] * bolus.vof(times)[:, None].astype(np.float32)
    series += _correlated_noise(rng, series.shape, noise_hu)
    series = np.clip(np.rint(series), -1024, 3071).astype(np.int16)

    ct = np.rint(series[: bolus.pre_bolus_frames].mean(axis=0)).astype(np.int32)
    maps = _vendor_maps(analysis.compute_maps(series, dt=FRAME_S, spacing=slab.spacing), site)

    parenchyma = (anat.gm + anat.wm) >= 0.5
    tissue_cbf = anat.gm * phys.cbf_gm + anat.wm * phys.cbf_wm
    tissue_cbv = (anat.gm * phys.cbf_gm * phys.mtt_gm + anat.wm * phys.cbf_wm * phys.mtt_wm) / 60
    truth = Truth(
        cbf=np.where(parenchyma, tissue_cbf * rcbf, 0.0).astype(np.float32),
        cbv=np.where(parenchyma, tissue_cbv * rcbv, 0.0).astype(np.float32),
        delay=np.where(parenchyma, delay, 0.0).astype(np.float32),
        rcbf=rcbf,
        core=parenchyma & (rcbf < CORE_RCBF),
        hypoperfused=parenchyma & (delay > HYPO_DELAY_S),
    )
    return PhantomScan(
        patient=patient,
        slab=slab,
        bolus=bolus,
        noise_hu=noise_hu,
        series=series,
        ct=ct,
        maps=maps,
        followup=_followup_mask(lesion, patient, slab, anat),
        truth=truth,
        anatomy=anat,
        site=site,
    )


def simulate_case(
    seed: int, n_slices: int = 4, n_frames: int | None = None, site: Site = DEFAULT
) -> PhantomScan:
    """One phantom case in memory (a fresh patient, one slab over the lesion): for tests/demos.
    The same seed at another ``site`` is the same patient scanned there."""
    rng = np.random.default_rng([seed, 0xCA5E])
    patient = random_patient(rng, f"P{seed % 10000:04d}", site)
    (slab,) = plan_slabs(patient, rng, n_slices, slice_mm=site.slice_mm)
    return scan(patient, slab, rng, n_frames, site)
