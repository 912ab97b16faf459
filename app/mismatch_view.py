"""What the mismatch panel shows, free of Qt: the AI core and the threshold core side by side, the
criteria of each and the verdict, all read off the case's ``StrokeSummary``.

``mismatch_view`` decides every word and state; ``MismatchPanel`` only draws them. The numbers
are the summary's own (``criteria[i].shown``, written by ``core.mismatch.shown_value`` against
each limit, so a value reads on the side of the limit that was decided), the verdict is its
``verdict``, the core's source its ``origin``: the panel, the report and the CSV say the same.

The safety rules: no verdict, and no tick or cross for the AI core, without a complete AI core
(no mask is not an empty core, and a partial one only grows), nor while the summary on hand is
not of the masks on screen. The ground truth of a training case is shown as a reference, never
as the AI core.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum
from typing import TYPE_CHECKING

from strokelens.core.mismatch import TARGET_CRITERIA, TMAX_THRESHOLD_S, shown_value

if TYPE_CHECKING:
    from strokelens.core.stroke_summary import CriterionCheck, StrokeSummary

CORE_COLOR = "#e0508a"  # the AI core, as on the report's montage
THRESHOLD_COLOR = "#f4a3c6"  # the threshold core (the rcbf30 layer's pink, lighter)
HYPO_COLOR = "#3fbf6f"
NO_CORE = "no core yet: run the AI (Ctrl+R)"
NO_CORE_TRUTH = "no AI core yet: run the AI (Ctrl+R); the ground truth is a reference only"
NO_CASE = "no case open"
MEASURING = "measuring the case…"
UPDATING = "updating the numbers…"
PARTIAL_CORE = "core not complete: no verdict until the AI has done every slice"
TRUTH_NOTE = "training label: not the AI core, no verdict from it"
# The criteria's fields, in the order of the rows that show them.
_CORE, _MISMATCH, _RATIO = "core_ml", "mismatch_ml", "ratio"


class Mark(StrEnum):
    """A criterion's state: met, failed, or not decided (drawn grey, with neither mark)."""

    MET = "✓"
    FAILED = "✗"
    UNDECIDED = "–"


class Verdict(StrEnum):
    TARGET = "TARGET MISMATCH"
    NO_TARGET = "no target mismatch"
    NONE = "no verdict"


@dataclass(frozen=True)
class Row:
    """One line: ``value`` for the AI core, ``threshold`` for the threshold core, or one value
    of the case for both (``shared``); ``note`` under it (e.g. the core's source)."""

    key: str
    title: str
    value: str
    threshold: str = ""
    note: str = ""
    shared: bool = False


@dataclass(frozen=True)
class CriterionState:
    """``muted``: the threshold core's check drawn grey while the AI core gives no verdict
    (three green ticks beside "no verdict" read as a verdict)."""

    label: str
    mark: Mark
    muted: bool = False


@dataclass(frozen=True)
class MismatchView:
    """The panel's content; ``reason`` says why there is no verdict ("" when there is one),
    ``bars`` are (mL or None: unknown, colour) top to bottom."""

    rows: tuple[Row, ...]
    criteria: tuple[CriterionState, ...]
    threshold_criteria: tuple[CriterionState, ...]
    verdict: Verdict
    reason: str
    bars: tuple[tuple[float | None, str], ...] = ()

    def row(self, key: str) -> Row:
        return next(row for row in self.rows if row.key == key)


def mismatch_view(
    summary: StrokeSummary | None,
    current: bool = True,
    truth_ml: float | None = None,
    case_open: bool = True,
) -> MismatchView:
    """The panel for ``summary`` (None: none yet, or no ``case_open``); ``current``: it is of
    the masks on screen; ``truth_ml``: the ground truth's volume, when the case has one."""
    if summary is None:
        reason = MEASURING if case_open else NO_CASE
        rows = _empty_rows()
        return MismatchView(rows, _undecided(), _undecided(), Verdict.NONE, reason, _no_bars())
    rows = _rows(summary, truth_ml)
    bars = (
        (summary.ai_core_ml, CORE_COLOR),
        (summary.threshold_core_ml, THRESHOLD_COLOR),
        (summary.hypoperfusion_ml[TMAX_THRESHOLD_S], HYPO_COLOR),
    )
    threshold = tuple(_state(c) for c in summary.threshold_criteria)
    if not current:
        return MismatchView(rows, _undecided(), _muted(threshold), Verdict.NONE, UPDATING, bars)
    if summary.verdict is None:
        if summary.ai_core_ml is None:
            reason = NO_CORE if truth_ml is None else NO_CORE_TRUTH
        else:
            reason = PARTIAL_CORE
        return MismatchView(rows, _undecided(), _muted(threshold), Verdict.NONE, reason, bars)
    verdict = Verdict.TARGET if summary.verdict else Verdict.NO_TARGET
    criteria = tuple(_state(c) for c in summary.criteria)
    return MismatchView(rows, criteria, threshold, verdict, "", bars)


def _muted(states: tuple[CriterionState, ...]) -> tuple[CriterionState, ...]:
    return tuple(replace(state, muted=True) for state in states)


def _rows(summary: StrokeSummary, truth_ml: float | None) -> tuple[Row, ...]:
    """Core, the members' range, Tmax > 6 s, mismatch, ratio, HIR (and the ground truth). A
    partial core only grows, so it is a lower bound and the mismatch volume and ratio from it
    are upper bounds: shown as such (a ratio of 3.4 from 5 of 22 slices was 1.7 in the end)."""
    partial = summary.ai_core_ml is not None and not summary.ai_core_complete
    ai = {c.field: check for c, check in zip(TARGET_CRITERIA, summary.criteria, strict=True)}
    tc = dict(zip((c.field for c in TARGET_CRITERIA), summary.threshold_criteria, strict=True))

    def shown(checks: dict[str, CriterionCheck], field: str, unit: str, bound: str = "") -> str:
        text = checks[field].shown
        return "–" if text == "–" else f"{bound if partial else ''}{text}{unit}"

    note = ""
    if summary.ai_core_ml is not None:
        note = f"from the {summary.origin.kind}"
        if partial and summary.slices_done is not None:
            done, total = summary.slices_done
            note += f" ({done} of {total} slices so far)"
    members = summary.member_range_ml
    hir = summary.hir
    rows = [
        Row("core", "Core", shown(ai, _CORE, " mL", "≥ "), shown(tc, _CORE, " mL"), note),
        Row(
            "range",
            "Members' core range",
            "–" if members is None else f"{members[0]:.1f}-{members[1]:.1f} mL",
        ),
        Row(
            "hypo",
            "Tmax > 6 s",
            f"{shown_value(summary.hypoperfusion_ml[TMAX_THRESHOLD_S])} mL",
            shared=True,
        ),
        Row(
            "mismatch",
            "Mismatch volume",
            shown(ai, _MISMATCH, " mL", "≤ "),
            shown(tc, _MISMATCH, " mL"),
        ),
        Row("ratio", "Mismatch ratio", shown(ai, _RATIO, "", "≤ "), shown(tc, _RATIO, "")),
        Row("hir", "HIR (Tmax>10 / Tmax>6)", "–" if hir is None else f"{hir:.2f}", shared=True),
    ]
    if truth_ml is not None:
        truth = f"{shown_value(truth_ml)} mL"
        rows.append(Row("truth", "Ground truth (reference)", truth, note=TRUTH_NOTE, shared=True))
    return tuple(rows)


def _empty_rows() -> tuple[Row, ...]:
    return (
        Row("core", "Core", "–", "–"),
        Row("range", "Members' core range", "–"),
        Row("hypo", "Tmax > 6 s", "–", shared=True),
        Row("mismatch", "Mismatch volume", "–", "–"),
        Row("ratio", "Mismatch ratio", "–", "–"),
        Row("hir", "HIR (Tmax>10 / Tmax>6)", "–", shared=True),
    )


def _no_bars() -> tuple[tuple[float | None, str], ...]:
    return ((None, CORE_COLOR), (None, THRESHOLD_COLOR), (None, HYPO_COLOR))


def _state(check: CriterionCheck) -> CriterionState:
    mark = {True: Mark.MET, False: Mark.FAILED, None: Mark.UNDECIDED}[check.passed]
    return CriterionState(check.label, mark)


def _undecided() -> tuple[CriterionState, ...]:
    return tuple(CriterionState(c.label, Mark.UNDECIDED) for c in TARGET_CRITERIA)
