"""Digital CT-perfusion phantom in the ISLES 2018 layout: the project's test and demo data.

``anatomy`` places the MNI152 template in a CT slab (skull, CSF, vessels, partial volume),
``lesion`` draws an infarct core inside a hypoperfused territory, ``scan`` simulates the 4D series
and computes its maps with the product's own perfusion analysis, ``layout`` writes ISLES folders.
"""

from strokelens.core.phantom.layout import generate_dataset, plan_dataset, simulate_planned
from strokelens.core.phantom.scan import PhantomScan, simulate_case

__all__ = ["PhantomScan", "generate_dataset", "plan_dataset", "simulate_case", "simulate_planned"]
