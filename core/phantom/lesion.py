"""Phantom stroke lesions: an infarct core inside a hypoperfused region of one vascular territory.

A lesion is a smooth *severity* field on the template's 2 mm grid: a deformed Gaussian blob
centred in one arterial territory (ACA, MCA or PCA, left or right), faded out at the territory's
border. Two thresholds of that one field give nested regions of drawn volumes: the core (relative
CBF < 30 %) and the hypoperfused region (delay, i.e. Tmax, > 6 s). ``modifiers`` turns severity into
relative CBF, relative CBV and extra bolus delay, continuously, so the tissue just outside the
hypoperfused region is mildly delayed (oligaemia), as in real scans. A second, perturbed field
stands for the follow-up DWI lesion (the ground truth a radiologist would draw).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from strokelens.core.phantom.anatomy import COARSE, load_template

TERRITORIES = ("ACA", "MCA", "PCA")
#: how often each territory is hit (MCA strokes dominate in CT-perfusion cohorts)
TERRITORY_WEIGHTS = (0.12, 0.73, 0.15)
#: infarct-core volume: log-normal, median and log-sd (mL, whole brain)
CORE_MEDIAN_ML = 30.0
CORE_LOG_SD = 1.3
CORE_RANGE_ML = (0.3, 200.0)
#: MNI z range (mm) of lesion centres: basal ganglia to the centrum semiovale
CENTRE_Z = (-15.0, 38.0)
#: follow-up lesion border vs the core's (mm): mean and sd of the growth, sd of the irregularity
FOLLOWUP_SHIFT_MM = (0.5, 1.5, 2.5)
CORE_RCBF = 0.3  # core = CBF below 30 % of the healthy side
HYPO_DELAY_S = 6.0  # hypoperfused = Tmax above 6 s


@functools.cache
def territory_map() -> np.ndarray:
    """Territory labels on the 2 mm template grid: 0 none, 1 ACA, 2 MCA, 3 PCA (both sides).

    Rules in MNI mm after the usual territory atlases: the posterior fossa is left out; PCA takes
    the occipital lobe (behind a parieto-occipital line sloping forward downwards), the inferior
    medial temporal lobe and the thalamus; ACA a medial strip widening upwards; MCA the rest.
    """
    t = load_template()
    x, y, z = t.mni_coarse()
    ax = np.abs(x)
    brain = t.parenchyma > 0.2
    fossa = ((z < -18) & (y < -38)) | ((ax < 14) & (y < -14) & (y > -46) & (z < -8))
    pca = (y < -56 - 0.55 * z) | ((z < -4) & (y < -16) & (ax < 42))
    pca |= (ax < 22) & (y > -36) & (y < -6) & (z > -4) & (z < 18)
    aca = (ax < 12 + np.maximum(z, 0) / 5) & (y > -62) & (z > -22)
    labels = np.full(brain.shape, 2, np.uint8)
    labels = np.where(aca, 1, labels)
    labels = np.where(pca, 3, labels)
    return np.where(brain & ~fossa & (z > -45), labels, 0).astype(np.uint8)


@dataclass(frozen=True)
class Lesion:
    """One patient's lesion on the template's 2 mm grid (see module doc)."""

    territory: str
    side: str  # "left" or "right"
    centre_mni: tuple[float, float, float]
    core_ml: float  # in the subject (template volume times the head's volume factor)
    hypo_ml: float
    severity: np.ndarray  # float32, 0-1
    followup: np.ndarray  # float32, the follow-up (DWI) lesion field, thresholded at t_core
    t_core: float
    t_hypo: float
    rcbf_hypo_edge: float  # relative CBF where the hypoperfused region starts
    rcbv_penumbra: float  # relative CBV in the penumbra (autoregulation raises it)
    delay_core: float  # bolus delay (s) at the core's border

    def modifiers(self, severity: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Relative CBF, relative CBV and extra delay (s) for severity values.

        ``q`` runs 0-1 outside the hypoperfused region, 1-2 in the penumbra, 2-3 in the core.
        """
        s = np.asarray(severity, dtype=np.float32)
        span = max(1.0 - self.t_core, 1e-3)
        q = np.where(
            s < self.t_hypo,
            s / self.t_hypo,
            np.where(
                s < self.t_core,
                1.0 + (s - self.t_hypo) / (self.t_core - self.t_hypo),
                2.0 + (s - self.t_core) / span,
            ),
        ).astype(np.float32)
        outer = np.clip(q, 0.0, 1.0) ** 2
        rcbf = np.interp(q, [1.0, 2.0, 3.0], [self.rcbf_hypo_edge, CORE_RCBF, 0.08])
        rcbf = np.where(q < 1.0, 1.0 - (1.0 - self.rcbf_hypo_edge) * outer, rcbf)
        rcbv = np.interp(q, [1.0, 1.6, 2.0, 3.0], [self.rcbv_penumbra] * 2 + [0.7, 0.3])
        rcbv = np.where(q < 1.0, 1.0 + (self.rcbv_penumbra - 1.0) * outer, rcbv)
        delay = np.interp(q, [1.0, 2.0, 3.0], [HYPO_DELAY_S, self.delay_core, self.delay_core + 2])
        delay = np.where(q < 1.0, HYPO_DELAY_S * np.clip(q, 0.0, 1.0) ** 1.5, delay)
        return rcbf.astype(np.float32), rcbv.astype(np.float32), delay.astype(np.float32)


def smooth_noise(rng: np.random.Generator, shape, sigma: float) -> np.ndarray:
    """Gaussian random field, unit standard deviation, correlation length ``sigma`` voxels."""
    field = ndi.gaussian_filter(rng.standard_normal(shape, dtype=np.float32), sigma)
    return field / max(float(field.std()), 1e-6)


def _threshold_for_volume(field: np.ndarray, where: np.ndarray, n_voxels: int) -> float:
    """The value above which ``field`` covers ``n_voxels`` of ``where``."""
    values = np.sort(field[where])[::-1]
    n = int(np.clip(n_voxels, 1, values.size - 1))
    return float(values[n])


def random_lesion(rng: np.random.Generator, volume_factor: float = 1.0) -> Lesion:
    """Draw territory, side, volumes, shape and profile of one patient's lesion."""
    t = load_template()
    labels = territory_map()
    territory = int(rng.choice(3, p=TERRITORY_WEIGHTS)) + 1
    side = "left" if rng.random() < 0.5 else "right"
    x, y, z = t.mni_coarse()
    on_side = (x < -2) if side == "left" else (x > 2)
    region = (labels == territory) & on_side
    voxel_ml = COARSE**3 / 1000.0 * volume_factor
    tissue = t.parenchyma > 0.5
    region_ml = float(np.count_nonzero(region & tissue)) * voxel_ml

    core_ml = float(np.clip(rng.lognormal(np.log(CORE_MEDIAN_ML), CORE_LOG_SD), *CORE_RANGE_ML))
    core_ml = min(core_ml, 0.45 * region_ml)
    hypo_ml = core_ml * np.exp(rng.uniform(np.log(1.3), np.log(4.0))) + rng.uniform(3, 25)
    hypo_ml = float(min(hypo_ml, 0.9 * region_ml))

    # centre: a parenchyma voxel well inside the territory, at the levels a CT-perfusion slab
    # is placed on (it must also hold arteries for the AIF)
    inner = (
        ndi.binary_erosion(region, iterations=3) & tissue & (z >= CENTRE_Z[0]) & (z <= CENTRE_Z[1])
    )
    candidates = np.argwhere(inner if inner.any() else region & tissue)
    centre_idx = candidates[rng.integers(len(candidates))]
    centre = np.array(
        [x.ravel()[centre_idx[0]], y.ravel()[centre_idx[1]], z.ravel()[centre_idx[2]]]
    )

    # deformed, rotated ellipsoidal Gaussian, sized to the hypoperfused volume (template mm)
    radius = (3.0 * hypo_ml / volume_factor * 1000.0 / (4.0 * np.pi)) ** (1.0 / 3.0)
    q, _ = np.linalg.qr(rng.standard_normal((3, 3)))
    axes = radius / 1.4 * np.exp(rng.uniform(-0.35, 0.35, size=3))
    d = [(x - centre[0]), (y - centre[1]), (z - centre[2])]
    r2 = np.zeros(t.sd.shape, np.float32)
    for k in range(3):
        proj = q[0, k] * d[0] + q[1, k] * d[1] + q[2, k] * d[2]
        r2 += (proj / axes[k]) ** 2
    warp = 1.0 + 0.3 * np.clip(smooth_noise(rng, r2.shape, 4.0), -2.5, 2.5)
    fade = ndi.gaussian_filter(region.astype(np.float32), 1.5)
    severity = (np.exp(-0.5 * r2 / warp**2) * fade).astype(np.float32)

    t_hypo = _threshold_for_volume(severity, tissue, round(hypo_ml / voxel_ml))
    t_core = _threshold_for_volume(severity, tissue, round(core_ml / voxel_ml))
    t_core = max(t_core, t_hypo + 1e-3)
    # follow-up: the core's border moved outwards or inwards by a few mm, irregularly (the
    # severity gradient turns a displacement in mm into a change of severity)
    gradient = np.linalg.norm(np.gradient(severity, float(COARSE)), axis=0)
    shift_mm = rng.normal(FOLLOWUP_SHIFT_MM[0], FOLLOWUP_SHIFT_MM[1])
    shift_mm = shift_mm + FOLLOWUP_SHIFT_MM[2] * smooth_noise(rng, r2.shape, 3.0)
    followup = severity + shift_mm * gradient
    return Lesion(
        territory=TERRITORIES[territory - 1],
        side=side,
        centre_mni=tuple(float(c) for c in centre),
        core_ml=core_ml,
        hypo_ml=hypo_ml,
        severity=severity,
        followup=followup.astype(np.float32),
        t_core=t_core,
        t_hypo=t_hypo,
        rcbf_hypo_edge=float(rng.uniform(0.55, 0.75)),
        rcbv_penumbra=float(rng.uniform(1.0, 1.3)),
        delay_core=float(rng.uniform(8.0, 11.0)),
    )
