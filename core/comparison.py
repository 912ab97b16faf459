"""Focal vs cross entropy on one case: the ensembles' and members' metrics and where the two agree.

In ``core`` (numpy only) because more than the workstation needs it: the compare panel computes a
:class:`Comparison` in a worker and only draws it, and ranking cases for review reads it too. Every number comes from ``core.metrics``
(``case_metrics`` for the ensembles, ``slice_dice`` for the members' and focal-vs-CE DSC, which is
the same Dice count without the surface distances, ``volume_ml`` for volumes), so the table equals
what ``strokelens evaluate`` reports.

References are optional: ``truth`` (the case's ground truth) and ``corrected`` (the reviewer's
mask); a reference that is missing has ``None`` in place of its metrics.
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from strokelens.core.metrics import case_metrics, slice_dice, volume_ml
from strokelens.core.prediction import THRESHOLD, Prediction

#: Labels of :func:`difference_labels` (0: neither ensemble calls the voxel lesion).
AGREE, FOCAL_ONLY, CE_ONLY = 1, 2, 3
#: Reference masks in column order, and how headers name them.
REFERENCES: tuple[str, ...] = ("truth", "corrected")
REFERENCE_TITLES = {"truth": "ground truth", "corrected": "corrected mask"}
#: Short names in column headers (a dock is narrow); the panel's title line spells them out.
REFERENCE_SHORT = {"truth": "GT", "corrected": "corr."}
#: Ensemble titles; the two losses first so they sit side by side.
SOURCE_TITLES = {
    "focal": "Focal",
    "ce": "Cross entropy",
    "all": "All members",
    "wce": "Weighted CE",
}
_SOURCE_ORDER = ("focal", "ce", "all")


@dataclass(frozen=True)
class SourceRow:
    """An ensemble (a source of the prediction) and its ``case_metrics`` per reference."""

    source: str
    title: str
    volume_ml: float
    metrics: dict[str, dict[str, float] | None]  # reference -> case_metrics, None when missing


@dataclass(frozen=True)
class MemberRow:
    """One member's own mask (its probability >= THRESHOLD, no component filter)."""

    name: str
    loss: str
    volume_ml: float
    dsc: dict[str, float | None]  # reference -> DSC, None when missing


@dataclass(frozen=True)
class Agreement:
    """Voxels both ensembles call lesion, only focal, only CE, and the focal-vs-CE DSC."""

    agree_voxels: int
    focal_only_voxels: int
    ce_only_voxels: int
    agree_ml: float
    focal_only_ml: float
    ce_only_ml: float
    dsc: float


@dataclass(frozen=True)
class Comparison:
    case_key: str
    references: tuple[str, ...]  # those given, in REFERENCES order
    sources: list[SourceRow]  # focal, ce, all, then other losses
    members: list[MemberRow]
    agreement: Agreement | None  # None without focal or CE members


def _labels(focal: np.ndarray, ce: np.ndarray) -> np.ndarray:
    lookup = np.array([0, FOCAL_ONLY, CE_ONLY, AGREE], np.uint8)
    return lookup[(focal != 0).astype(np.uint8) + 2 * (ce != 0).astype(np.uint8)]


def difference_labels(prediction: Prediction) -> np.ndarray | None:
    """uint8 ``(z, y, x)``: 0 neither, AGREE, FOCAL_ONLY, CE_ONLY; None without both losses."""
    if not {"focal", "ce"} <= set(prediction.sources):
        return None
    return _labels(prediction.mask("focal"), prediction.mask("ce"))


def _source_order(sources: Sequence[str]) -> list[str]:
    first = [s for s in _SOURCE_ORDER if s in sources]
    return first + [s for s in sources if s not in first]


def _dsc(pred: np.ndarray, ref: np.ndarray) -> float:
    return slice_dice(pred[None], ref[None]).dice


def compare_case(
    prediction: Prediction, truth: np.ndarray | None, corrected: np.ndarray | None
) -> Comparison:
    """Every ensemble and member of ``prediction`` against whichever references are given."""
    given = {"truth": truth, "corrected": corrected}
    refs = {name: given[name] for name in REFERENCES if given[name] is not None}
    spacing = prediction.spacing

    masks = {s: prediction.mask(s) for s in _source_order(prediction.sources)}
    sources = [
        SourceRow(
            source=s,
            title=SOURCE_TITLES.get(s, s),
            volume_ml=volume_ml(mask, spacing),
            metrics={
                r: case_metrics(mask, refs[r], spacing) if r in refs else None for r in REFERENCES
            },
        )
        for s, mask in masks.items()
    ]
    members = []
    for name, loss, probability in zip(
        prediction.member_names, prediction.member_losses, prediction.members, strict=True
    ):
        mask = probability >= THRESHOLD
        dsc = {r: _dsc(mask, refs[r]) if r in refs else None for r in REFERENCES}
        members.append(MemberRow(name, loss, volume_ml(mask, spacing), dsc))

    agreement = None
    if "focal" in masks and "ce" in masks:
        labels = _labels(masks["focal"], masks["ce"])
        parts = [labels == k for k in (AGREE, FOCAL_ONLY, CE_ONLY)]
        agreement = Agreement(
            *(int(np.count_nonzero(p)) for p in parts),
            *(volume_ml(p, spacing) for p in parts),
            dsc=_dsc(masks["focal"], masks["ce"]),
        )
    return Comparison(prediction.case_key, tuple(refs), sources, members, agreement)


# -- table data shared by the panel and the CSV export -----------------------------------------


@dataclass(frozen=True)
class Column:
    """A table column: ``key`` in :func:`as_rows` (and the CSV header), ``title`` for the panel."""

    key: str
    title: str
    decimals: int | None = None  # None: text


def _vs(reference: str) -> str:
    return REFERENCE_SHORT[reference]


def ensemble_columns(references: Sequence[str]) -> list[Column]:
    columns = [Column("name", "Ensemble"), Column("volume_ml", "Volume mL", 1)]
    for r in references:
        columns += [
            Column(f"dsc_vs_{r}", f"DSC\n{_vs(r)}", 3),
            Column(f"avd_ml_vs_{r}", f"AVD mL\n{_vs(r)}", 1),
            Column(f"hd_mm_vs_{r}", f"HD mm\n{_vs(r)}", 1),
        ]
    return columns


def member_columns(references: Sequence[str]) -> list[Column]:
    columns = [
        Column("name", "Member"),
        Column("loss", "Loss"),
        Column("volume_ml", "Volume mL", 1),
    ]
    return columns + [Column(f"dsc_vs_{r}", f"DSC\n{_vs(r)}", 3) for r in references]


def as_rows(comparison: Comparison) -> list[dict[str, str | float]]:
    """One dict per row: ``kind`` "ensemble", "member" or "agreement", then the numbers.

    Ensemble rows carry ``dsc/avd_ml/hd_mm/assd_mm_vs_<reference>``, the focal row also
    ``dsc_vs_ce`` (the focal-vs-CE DSC); member rows ``dsc_vs_<reference>``; agreement rows
    (agree, focal only, CE only) their ``voxels`` and ``volume_ml``.
    """
    refs = comparison.references
    rows: list[dict[str, str | float]] = []
    for s in comparison.sources:
        row = {"kind": "ensemble", "name": s.title, "loss": s.source, "volume_ml": s.volume_ml}
        for r in refs:
            m = s.metrics[r]
            row |= {
                f"dsc_vs_{r}": m["dsc"],
                f"avd_ml_vs_{r}": m["avd_ml"],
                f"hd_mm_vs_{r}": m["hd"],
                f"assd_mm_vs_{r}": m["assd"],
            }
        if s.source == "focal" and comparison.agreement is not None:
            row["dsc_vs_ce"] = comparison.agreement.dsc
        rows.append(row)
    for m in comparison.members:
        row = {"kind": "member", "name": m.name, "loss": m.loss, "volume_ml": m.volume_ml}
        rows.append(row | {f"dsc_vs_{r}": m.dsc[r] for r in refs})
    a = comparison.agreement
    if a is not None:
        for name, voxels, ml in (
            ("agree", a.agree_voxels, a.agree_ml),
            ("focal only", a.focal_only_voxels, a.focal_only_ml),
            ("CE only", a.ce_only_voxels, a.ce_only_ml),
        ):
            rows.append({"kind": "agreement", "name": name, "volume_ml": ml, "voxels": voxels})
    return [{"case": comparison.case_key} | row for row in rows]


def format_value(value: str | float | None, decimals: int | None) -> str:
    """Text as is; a number with ``decimals``; NaN or a missing value as "–"."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return str(value) if decimals is None else f"{value:.{decimals}f}"


def to_csv(comparison: Comparison) -> str:
    """All rows of :func:`as_rows` in one CSV (full precision; empty where a row has no value)."""
    rows = as_rows(comparison)
    fields = list(dict.fromkeys(key for row in rows for key in row))
    out = io.StringIO()
    writer = csv.DictWriter(out, fields, restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()
