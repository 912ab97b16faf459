"""What the stroke team reads off one case: one object for the panel, the report, the CSV, the CLI.

``summarize_stroke`` measures, from the case's maps and the core mask the caller trusts most:

- hypoperfusion volumes at Tmax > 4, 6, 8, 10 s and HIR (``core.mismatch``);
- the threshold core (rCBF < 30 % of the healthy hemisphere's mean, split at the head's midline)
  and its mismatch against Tmax > 6 s;
- the AI core: the reviewer's corrected mask when given, else the ensemble's ("all" mask), with
  the range of the members' own volumes; and its mismatch, criteria and verdict.

The safety rule (as the mismatch panel's): no verdict, and no criterion marked, without a
complete AI core. No core is not an empty core; a partial prediction only grows; the ground
truth is never taken for the AI core (a report must not present it as the product's answer).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING

import numpy as np

from strokelens.core.case import Case
from strokelens.core.metrics import volume_ml
from strokelens.core.mismatch import (
    CORE_RCBF,
    TARGET_CRITERIA,
    TMAX_THRESHOLD_S,
    Mismatch,
    ThresholdCore,
    brain_region,
    hir,
    hypoperfusion_mask,
    hypoperfusion_volumes,
    mismatch_from_volumes,
    shown_value,
    threshold_core,
)
from strokelens.core.prediction import Prediction

if TYPE_CHECKING:
    from collections.abc import Sequence

    from strokelens.core.midline import Midline
    from strokelens.core.project.audit import AuditEntry
    from strokelens.core.project.store import CaseRecord

RESEARCH_LINE = "Research use only, not for diagnosis"


class CoreKind(StrEnum):
    """Which mask the AI core is, in the words the report shows."""

    APPROVED = "approved correction"
    CORRECTED = "corrected mask"
    ENSEMBLE = "AI ensemble"
    NONE = "no core"


@dataclass(frozen=True)
class CoreOrigin:
    """Where the AI core comes from: the ensemble (name, fingerprint, members) it was predicted
    with or a correction started from, and who corrected / approved it when."""

    kind: CoreKind
    ensemble: str | None = None
    fingerprint: str | None = None
    members: int | None = None
    corrected_by: str | None = None
    corrected_at: str | None = None
    approved_by: str | None = None
    approved_at: str | None = None
    started_from: str | None = None

    @property
    def words(self) -> str:
        """One line: e.g. "approved correction: corrected by ann at ..., approved by bob at ..."."""
        if self.kind is CoreKind.NONE:
            return "no core: no correction and no AI prediction (no verdict)"
        parts = []
        if self.kind in (CoreKind.CORRECTED, CoreKind.APPROVED):
            parts.append(f"corrected by {self.corrected_by or '?'} at {self.corrected_at or '?'}")
            if self.kind is CoreKind.APPROVED:
                parts.append(f"approved by {self.approved_by or '?'} at {self.approved_at or '?'}")
            if self.started_from:
                parts.append(f"started from {self.started_from}")
        else:
            name = self.ensemble or "ensemble"
            parts.append(f"{name} ({self.members} members, fingerprint {self.fingerprint})")
        return f"{self.kind}: " + ", ".join(parts)


def correction_origin(record: CaseRecord, entries: Sequence[AuditEntry]) -> CoreOrigin:
    """The origin of a project's saved correction, from its record and audit log: the last
    save (save, autosave, import, ...) and, when the case is approved, the last approval."""
    from strokelens.core.project.review import Status

    saves = [e for e in entries if e.action not in ("approve", "status")]
    approvals = [e for e in entries if e.action == "approve"]
    approved = record.status is Status.APPROVED and bool(approvals)
    return CoreOrigin(
        CoreKind.APPROVED if approved else CoreKind.CORRECTED,
        corrected_by=saves[-1].who if saves else record.reviewer,
        corrected_at=saves[-1].at if saves else record.updated,
        approved_by=approvals[-1].who if approved else None,
        approved_at=approvals[-1].at if approved else None,
        started_from=record.started_from,
    )


@dataclass(frozen=True)
class CriterionCheck:
    """One target-mismatch limit against one core's numbers; ``passed`` None: not decided."""

    label: str
    shown: str  # the value as ``shown_value`` writes it against the limit
    passed: bool | None

    @property
    def mark(self) -> str:
        return {True: "✓", False: "✗", None: "–"}[self.passed]


@dataclass(frozen=True)
class Layers:
    """The arrays the montage draws (``(z, y, x)``): CT (HU), AI core, threshold core,
    Tmax > 6 s, and the midline the hemispheres were split at."""

    ct: np.ndarray
    ai_core: np.ndarray | None
    threshold_core: np.ndarray | None
    hypoperfused: np.ndarray
    midline: Midline | None


@dataclass(frozen=True)
class StrokeSummary:
    """The numbers of one case (volumes in mL); see the module docstring."""

    case_key: str
    case_id: str
    patient_id: str | None  # None when the data set does not say
    hypoperfusion_ml: dict[float, float]  # Tmax threshold (s) -> volume
    hir: float | None  # None: nothing above 6 s
    threshold_core_ml: float | None  # None: no healthy-side reference (problems say why)
    threshold_mismatch: Mismatch | None
    threshold_criteria: tuple[CriterionCheck, ...]
    healthy_side: str | None  # "left" / "right" (patient), from the affine
    healthy_cbf: float | None  # mean CBF of the healthy hemisphere, mL/100g/min when scaled
    midline_angle_deg: float | None
    midline_symmetry: float | None
    ai_core_ml: float | None  # None: no core
    ai_core_complete: bool
    slices_done: tuple[int, int] | None  # of the ensemble prediction, when it is the core
    member_range_ml: tuple[float, float] | None  # min, max of the members' own volumes
    origin: CoreOrigin
    mismatch: Mismatch | None  # AI core vs Tmax > 6 s
    criteria: tuple[CriterionCheck, ...]
    verdict: bool | None  # target mismatch; None without a complete AI core
    problems: tuple[str, ...] = ()
    layers: Layers | None = field(default=None, repr=False, compare=False)

    @property
    def verdict_words(self) -> str:
        if self.verdict is None:
            if self.ai_core_ml is None:
                return "no verdict: no core"
            return "no verdict: the AI core is not complete"
        return "TARGET MISMATCH" if self.verdict else "no target mismatch"

    def row(self) -> dict[str, object]:
        """The CSV row: every number, None where it does not exist."""
        ratio = self.mismatch.ratio if self.mismatch else None
        t_ratio = self.threshold_mismatch.ratio if self.threshold_mismatch else None
        row: dict[str, object] = {
            "case": self.case_key,
            "patient": self.patient_id,
            **{f"tmax_gt_{t:g}s_ml": v for t, v in self.hypoperfusion_ml.items()},
            "hir": self.hir,
            "threshold_core_ml": self.threshold_core_ml,
            "threshold_mismatch_ml": _attr(self.threshold_mismatch, "mismatch_ml"),
            "threshold_ratio": _finite(t_ratio),
            "healthy_side": self.healthy_side,
            "healthy_cbf": self.healthy_cbf,
            "midline_angle_deg": self.midline_angle_deg,
            "core_source": str(self.origin.kind),
            "core_origin": self.origin.words,
            "ensemble_fingerprint": self.origin.fingerprint,
            "ai_core_ml": self.ai_core_ml,
            "ai_core_complete": self.ai_core_complete,
            "member_min_ml": self.member_range_ml[0] if self.member_range_ml else None,
            "member_max_ml": self.member_range_ml[1] if self.member_range_ml else None,
            "mismatch_ml": _attr(self.mismatch, "mismatch_ml"),
            "ratio": _finite(ratio),
            "verdict": self.verdict_words,
            "problems": "; ".join(self.problems),
        }
        return row


def _attr(result: Mismatch | None, name: str) -> float | None:
    return None if result is None else getattr(result, name)


def _finite(value: float | None) -> float | str | None:
    """A ratio for a CSV cell: ``inf`` written as "inf", ``nan`` (both volumes 0) as empty."""
    if value is None or math.isnan(value):
        return None
    return "inf" if math.isinf(value) else value


def criteria_checks(result: Mismatch | None, decided: bool) -> tuple[CriterionCheck, ...]:
    """``TARGET_CRITERIA`` against ``result``; undecided (no mark) unless ``decided``."""
    checks = []
    for criterion in TARGET_CRITERIA:
        if result is None:
            checks.append(CriterionCheck(criterion.label, "–", None))
            continue
        shown = shown_value(criterion.value(result), criterion.limit)
        checks.append(
            CriterionCheck(criterion.label, shown, criterion.passes(result) if decided else None)
        )
    return tuple(checks)


def _side_words(case: Case, positive: bool) -> str | None:
    """ "left"/"right" of the patient for a side of the midline (positive: towards higher x,
    whose scanner direction is the affine's first column; RAS: +x is the patient's right)."""
    towards_x = float(np.asarray(case.affine)[0, 0])
    if towards_x == 0:
        return None
    return "right" if (towards_x > 0) == positive else "left"


@dataclass(frozen=True)
class CaseMeasures:
    """The part of a summary that depends on the case alone, not on its core mask: measured once
    per case (the viewer keeps it while the reviewer corrects the core, and draws its masks)."""

    case_key: str
    ct: np.ndarray  # HU (z, y, x)
    hypoperfusion_ml: dict[float, float]
    hypoperfused: np.ndarray  # bool (z, y, x): Tmax > 6 s in the brain window
    threshold: ThresholdCore | None  # None: no healthy-side reference (problems say why)
    healthy_side: str | None
    problems: tuple[str, ...]


def measure_case(case: Case) -> CaseMeasures:
    """Tmax volumes and mask, the threshold core and the healthy side of ``case``."""
    problems = list(case.problems)
    ct = case.physical("CT")
    tmax = case.physical("Tmax")
    cbf = case.physical("CBF")
    volumes = hypoperfusion_volumes(tmax, case.spacing, ct)
    hypo = hypoperfusion_mask(tmax, ct, TMAX_THRESHOLD_S)
    brain = brain_region(case.channels, ct)
    try:
        tc = threshold_core(cbf, brain, tmax, ct, CORE_RCBF, case.spacing)
    except ValueError as exc:
        tc = None
        problems.append(f"no threshold core: {exc}")
    side = None
    if tc is not None:
        positive = bool((tc.healthy & tc.midline.sides(case.shape)[1]).any())
        side = _side_words(case, positive)
    return CaseMeasures(case.key, ct, volumes, hypo, tc, side, tuple(problems))


def summarize_stroke(
    case: Case,
    prediction: Prediction | None = None,
    corrected: np.ndarray | None = None,
    origin: CoreOrigin | None = None,
    measured: CaseMeasures | None = None,
) -> StrokeSummary:
    """The summary of ``case`` (see the module docstring).

    ``corrected``: the reviewer's mask (uint8/bool, the case's shape), which is the AI core when
    given; ``prediction``: the ensemble's, the AI core otherwise and the members' range in both
    cases (when complete). ``origin`` says where they come from (needed with either).
    ``measured``: ``measure_case(case)``, when the caller keeps it (it does not depend on the core).
    """
    m = measure_case(case) if measured is None else measured
    if m.case_key != case.key or m.ct.shape != case.shape:
        raise ValueError(f"the measures of {m.case_key} do not fit case {case.key}")
    volumes, tc = m.hypoperfusion_ml, m.threshold
    hypo_ml = volumes[TMAX_THRESHOLD_S]
    t_ml = None if tc is None else volume_ml(tc.mask, case.spacing)
    t_mismatch = None if t_ml is None else mismatch_from_volumes(t_ml, hypo_ml)

    if prediction is not None and (
        prediction.shape != case.shape or prediction.case_key != case.key
    ):
        raise ValueError(f"the prediction of {prediction.case_key} does not fit case {case.key}")
    if corrected is not None:
        if np.shape(corrected) != case.shape:
            raise ValueError(f"the corrected mask is {np.shape(corrected)}, the case {case.shape}")
        core, complete, done = np.asarray(corrected) != 0, True, None
    elif prediction is not None:
        core, complete = prediction.mask("all") != 0, prediction.complete
        done = (int(prediction.done.sum()), int(prediction.done.size))
    else:
        core, complete, done = None, False, None
    if origin is None or (core is None) != (origin.kind is CoreKind.NONE):
        raise ValueError(f"core origin {origin} does not describe the core given")
    members = None
    if prediction is not None and prediction.complete:
        volumes_ml = prediction.member_volumes_ml()
        members = (min(volumes_ml), max(volumes_ml))

    ai_ml = None if core is None else volume_ml(core, case.spacing)
    result = None if ai_ml is None else mismatch_from_volumes(ai_ml, hypo_ml)
    verdict = result.target if result is not None and complete else None
    patient = case.patient if case.patient and case.patient != case.id else None
    return StrokeSummary(
        case_key=case.key,
        case_id=case.id,
        patient_id=patient,
        hypoperfusion_ml=volumes,
        hir=hir(volumes),
        threshold_core_ml=t_ml,
        threshold_mismatch=t_mismatch,
        threshold_criteria=criteria_checks(t_mismatch, t_mismatch is not None),
        healthy_side=m.healthy_side,
        healthy_cbf=None if tc is None else tc.reference_cbf,
        midline_angle_deg=None if tc is None else tc.midline.angle_deg,
        midline_symmetry=None if tc is None else tc.midline.symmetry,
        ai_core_ml=ai_ml,
        ai_core_complete=complete,
        slices_done=done,
        member_range_ml=members,
        origin=origin,
        mismatch=result,
        criteria=criteria_checks(result, verdict is not None),
        verdict=verdict,
        problems=m.problems,
        layers=Layers(
            ct=m.ct,
            ai_core=core,
            threshold_core=None if tc is None else tc.mask,
            hypoperfused=m.hypoperfused,
            midline=None if tc is None else tc.midline,
        ),
    )
