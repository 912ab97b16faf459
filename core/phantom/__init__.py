"""Digital CT-perfusion phantom in the ISLES 2018 layout: the project's test and demo data.

``anatomy`` places the MNI152 template in a CT slab (skull, CSF, vessels, partial volume),
``lesion`` draws an infarct core inside a hypoperfused territory, ``scan`` simulates the 4D series
and computes its maps with the product's own perfusion analysis, ``layout`` writes ISLES folders,
``sites`` holds the acquisition sites (scanner, protocol, vendor software) a data set can come from.
"""

from strokelens.core.phantom.layout import generate_dataset, plan_dataset, simulate_planned
from strokelens.core.phantom.scan import PhantomScan, simulate_case
from strokelens.core.phantom.sites import SITES, Site, site_named

__all__ = [
    "SITES",
    "PhantomScan",
    "Site",
    "generate_dataset",
    "plan_dataset",
    "simulate_case",
    "simulate_planned",
    "site_named",
]
