"""A readable summary of a data set: what ``strokelens info`` prints.

By default only headers, sidecars, ground-truth masks and, for the units check, the perfusion
maps of cases without a declared CBF unit are read, so a large data set is summarised in seconds; ``check`` reads every voxel (``integrity`` says what is checked).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from strokelens.core.case import CHANNELS
from strokelens.core.dataset import CaseRef, Dataset
from strokelens.core.integrity import inspect_case


def summarize_case(ref: CaseRef, check: bool = False) -> dict:
    """One case's row: what it holds, and its errors and warnings (``integrity.inspect_case``)."""
    report = inspect_case(ref, check)
    return {
        "id": ref.id,
        "key": ref.key,
        "split": ref.split,
        "patient": ref.patient,
        "layout": ref.layout,
        "slices": report.shape[0] if report.shape else None,
        "shape": list(report.shape) if report.shape else None,
        "spacing": [round(s, 4) for s in report.spacing] if report.spacing else None,
        "channels": [c for c in CHANNELS if c in ref.files],
        "ground_truth": ref.has_truth,
        "frames": report.frames,
        "lesion_ml": None if report.lesion_ml is None else round(report.lesion_ml, 3),
        "errors": report.errors,
        "warnings": report.warnings,
    }


def summarize(dataset: Dataset, check: bool = False) -> dict:
    """The data set's summary; ``check`` reads every voxel (see ``integrity``)."""
    cases = [summarize_case(ref, check) for ref in dataset]
    lesions = [c["lesion_ml"] for c in cases if c["lesion_ml"] is not None]
    return {
        "root": str(Path(dataset.root).resolve()),
        "checked": "all voxels" if check else "headers",
        "n_cases": len(cases),
        "n_patients": len(dataset.patients()),
        "splits": sorted({c["split"] or "-" for c in cases}),
        "lesion_ml_median": float(np.median(lesions)) if lesions else None,
        "cases": cases,
        "errors": [f"{c['key']}: {e}" for c in cases for e in c["errors"]],
        "warnings": [f"{c['key']}: {w}" for c in cases for w in c["warnings"]],
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
    for kind in ("errors", "warnings"):
        if summary[kind]:
            lines += ["", f"{len(summary[kind])} {kind[:-1]}(s):"]
            lines += [f"  - {p}" for p in summary[kind]]
    if not summary["errors"] and not summary["warnings"]:
        lines += ["", f"no problems found (checked: {summary['checked']})"]
    return "\n".join(lines)
