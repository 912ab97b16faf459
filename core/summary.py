"""A readable summary of a data set: what ``strokelens info`` prints.

Only headers, sidecars and ground-truth masks are read, so a large data set is summarised fast.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from strokelens.core.case import CHANNELS
from strokelens.core.dataset import CaseRef, Dataset
from strokelens.core.errors import DataError
from strokelens.core.metrics import volume_ml
from strokelens.core.nifti import load_volume, open_image, spacing_zyx, spatial_shape


def summarize_case(ref: CaseRef) -> dict:
    row = {
        "id": ref.id,
        "key": ref.key,
        "split": ref.split,
        "patient": ref.patient,
        "layout": ref.layout,
        "slices": None,
        "shape": None,
        "spacing": None,
        "channels": [c for c in CHANNELS if c in ref.files],
        "ground_truth": ref.has_truth,
        "frames": None,
        "lesion_ml": None,
        "problems": list(ref.errors) + list(ref.problems),
    }
    missing = [c for c in CHANNELS if c not in ref.files]
    if missing:
        row["problems"].append(f"missing maps: {', '.join(missing)}")
    try:
        first = next((ref.files[k] for k in (*CHANNELS, "4DPWI") if k in ref.files), None)
        if first is not None:
            img = open_image(first)
            row["shape"] = list(spatial_shape(img))
            row["slices"] = row["shape"][0]
            row["spacing"] = [round(s, 4) for s in spacing_zyx(img)]
        if "4DPWI" in ref.files:
            row["frames"] = int(open_image(ref.files["4DPWI"]).shape[3])
        if "OT" in ref.files:
            mask, img = load_volume(ref.files["OT"])
            row["lesion_ml"] = round(volume_ml(mask, spacing_zyx(img)), 3)
    except DataError as exc:
        row["problems"].append(str(exc))
    return row


def summarize(dataset: Dataset) -> dict:
    cases = [summarize_case(ref) for ref in dataset]
    problems = [f"{c['key']}: {p}" for c in cases for p in c["problems"]]
    lesions = [c["lesion_ml"] for c in cases if c["lesion_ml"] is not None]
    return {
        "root": str(Path(dataset.root).resolve()),
        "n_cases": len(cases),
        "n_patients": len(dataset.patients()),
        "splits": sorted({c["split"] or "-" for c in cases}),
        "lesion_ml_median": float(np.median(lesions)) if lesions else None,
        "cases": cases,
        "problems": problems,
    }


def format_summary(summary: dict) -> str:
    """Plain-text table of a summary, for the terminal."""
    lines = [
        f"Data set {summary['root']}",
        f"{summary['n_cases']} cases, {summary['n_patients']} patients, "
        f"splits: {', '.join(summary['splits'])}",
    ]
    if summary["lesion_ml_median"] is not None:
        lines.append(f"median ground-truth lesion volume: {summary['lesion_ml_median']:.1f} mL")
    header = f"{'case':<22}{'patient':<14}{'slices':>6}  {'spacing (z,y,x) mm':<22}{'lesion mL':>10}  channels"
    lines += ["", header, "-" * len(header)]
    for c in summary["cases"]:
        spacing = "x".join(f"{s:g}" for s in c["spacing"]) if c["spacing"] else "?"
        lesion = f"{c['lesion_ml']:.2f}" if c["lesion_ml"] is not None else "-"
        channels = " ".join(c["channels"]) + (" 4D" if c["frames"] else "")
        lines.append(
            f"{c['key']:<22}{c['patient']:<14}{c['slices'] or '?':>6}  {spacing:<22}{lesion:>10}  {channels}"
        )
    if summary["problems"]:
        lines += ["", f"{len(summary['problems'])} problem(s):"]
        lines += [f"  - {p}" for p in summary["problems"]]
    else:
        lines += ["", "no problems found"]
    return "\n".join(lines)
