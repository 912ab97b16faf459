"""Acquisition sites: how one scanner, protocol and perfusion package differ from another.

Real data sets mix scanners and vendors, and a model trained at one site meets the others. A
:class:`Site` holds what differs, as data: noise (dose), bolus timing and width, the spread of the
normal arrival delay, the frame count, the vendor software's scaling of each map, and the
number and thickness of the slices. Every random draw of the phantom takes its bounds from the
site, in the same order whatever the site, so one seed gives the same patients (head, lesion,
physiology draws) at every site, scanned differently; ``default`` is the phantom as it always was.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

Range = tuple[float, float]
#: (slice count, probability) pairs
SliceMix = tuple[tuple[int, float], ...]


@dataclass(frozen=True)
class Site:
    """One acquisition site. Ranges are drawn uniformly per case (bolus, noise, frames) or per
    patient (normal delay); the scales multiply the computed maps before they are stored."""

    name: str
    description: str
    noise_hu: Range = (4.0, 8.0)  # per-voxel noise standard deviation (lower dose: higher)
    bolus_t0_s: Range = (3.0, 9.0)  # contrast arrival after the scan starts
    bolus_beta_s: Range = (1.1, 2.0)  # gamma-variate width (slower injection: wider)
    normal_delay_s: Range = (0.0, 1.0)  # healthy arrival delay of each hemisphere
    frames: tuple[int, int] = (40, 50)  # frame count, inclusive, 1 s apart
    cbf_scale: float = 1.0  # the vendor software's CBF relative to the reference analysis
    cbv_scale: float = 1.0
    mtt_scale: float = 1.0
    tmax_scale: float = 1.0
    slice_mm: float = 5.0  # slice thickness = spacing (contiguous slices)
    #: slices per slab for one-slab patients and for two-slab patients (short coverage)
    slices_one: SliceMix = ((2, 0.15), (4, 0.1), (8, 0.3), (16, 0.3), (22, 0.15))
    slices_two: SliceMix = ((2, 0.4), (4, 0.3), (8, 0.3))

    @property
    def is_default(self) -> bool:
        return self == DEFAULT


DEFAULT = Site("default", "the reference site: ISLES 2018 slice mix of 5 mm slices, 4-8 HU noise")

VENDOR_B = Site(
    "vendor-b",
    "another vendor's 4 cm scanner and perfusion software: CBF reads 0.7x and CBV 0.8x the "
    "reference analysis, 2-8 slices of 10 mm, 5-10 HU noise, a later bolus",
    noise_hu=(5.0, 10.0),
    bolus_t0_s=(4.0, 11.0),
    normal_delay_s=(0.0, 1.5),
    cbf_scale=0.7,
    cbv_scale=0.8,
    slice_mm=10.0,
    slices_one=((2, 0.3), (4, 0.5), (8, 0.2)),
    slices_two=((2, 0.5), (4, 0.5)),
)

SITES: dict[str, Site] = {
    s.name: s
    for s in (
        DEFAULT,
        Site(
            "low-dose",
            "a reduced-dose protocol (about a third of the default's dose): 7-14 HU noise",
            noise_hu=(7.0, 14.0),
        ),
        Site(
            "late-bolus",
            "a slow injection through a peripheral line, poor cardiac output: contrast arrives "
            "6-14 s after the start, a wider bolus, 0-2.5 s normal delay, 50-60 frames",
            bolus_t0_s=(6.0, 14.0),
            bolus_beta_s=(1.6, 2.8),
            normal_delay_s=(0.0, 2.5),
            frames=(50, 60),
        ),
        VENDOR_B,
        replace(
            VENDOR_B,
            name="vendor-c",
            description="vendor-b's scanner with another perfusion package (its own "
            "deconvolution and arterial input): CBF reads 0.5x, CBV 0.6x, MTT 1.2x (their "
            "ratio) and Tmax 1.3x the reference analysis",
            cbf_scale=0.5,
            cbv_scale=0.6,
            mtt_scale=1.2,
            tmax_scale=1.3,
        ),
    )
}


def site_named(name: str) -> Site:
    """The site called ``name``; ValueError naming the known sites otherwise."""
    try:
        return SITES[name]
    except KeyError:
        raise ValueError(f"unknown site {name!r}; known sites: {', '.join(SITES)}") from None
