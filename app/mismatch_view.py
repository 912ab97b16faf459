"""What the mismatch panel shows, free of Qt: its rows of numbers, the three criteria and the verdict.

``mismatch_view`` decides every word and state; ``MismatchPanel`` only draws them, so the rules are
tested without a widget and more rows (another core estimate, the spread across members) are
more entries in ``MismatchView.rows``, not another panel.

The safety rules: no verdict, and no tick or cross, without a complete core mask (no mask is not
an empty core, and a partial one only grows); every number next to a criterion is written by
``core.mismatch.shown_value``, so it reads on the side of the limit that was decided.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from strokelens.app.model import MismatchNumbers
from strokelens.core.mismatch import TARGET_CRITERIA, Mismatch, shown_value

CORE_COLOR = "#e0508a"
HYPO_COLOR = "#3fbf6f"
NO_CORE = "no core yet: run the AI (Ctrl+R)"
NO_CASE = "no case open"
PARTIAL_CORE = "core not complete: no verdict until the AI has done every slice"


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
    """One line of numbers: ``value`` as shown, ``note`` under it (e.g. the core's source) and,
    for a volume drawn as a bar, ``ml`` (None: unknown) in ``color``."""

    key: str
    title: str
    value: str
    note: str = ""
    ml: float | None = None
    color: str = ""


@dataclass(frozen=True)
class CriterionState:
    label: str
    mark: Mark


@dataclass(frozen=True)
class MismatchView:
    """The panel's content; ``reason`` says why there is no verdict ("" when there is one)."""

    rows: tuple[Row, ...]
    criteria: tuple[CriterionState, ...]
    verdict: Verdict
    reason: str

    def row(self, key: str) -> Row:
        return next(row for row in self.rows if row.key == key)


def mismatch_view(numbers: MismatchNumbers | None) -> MismatchView:
    """The panel's rows, criteria and verdict for ``Model.mismatch_numbers()``."""
    if numbers is None:
        return MismatchView(_rows(None, None, ""), _undecided(), Verdict.NONE, NO_CASE)
    core, result = numbers.core, numbers.mismatch
    if core is None or result is None:
        rows = _rows(numbers.hypoperfused_ml, None, "")
        return MismatchView(rows, _undecided(), Verdict.NONE, NO_CORE)
    note = f"from the {core.source}"
    if core.partial:
        done, total = core.slices
        note += f" ({done} of {total} slices so far)"
    rows = _rows(numbers.hypoperfused_ml, result, note, core.partial)
    if core.partial:
        return MismatchView(rows, _undecided(), Verdict.NONE, PARTIAL_CORE)
    criteria = tuple(
        CriterionState(c.label, Mark.MET if c.passes(result) else Mark.FAILED)
        for c in TARGET_CRITERIA
    )
    return MismatchView(rows, criteria, Verdict.TARGET if result.target else Verdict.NO_TARGET, "")


def _rows(
    hypo_ml: float | None, result: Mismatch | None, core_note: str, partial: bool = False
) -> tuple[Row, ...]:
    """Core, Tmax > 6 s, mismatch and ratio; a number a criterion reads is shown against its
    limit. A partial core only grows, so it is a lower bound, and the mismatch volume and ratio
    from it are upper bounds: shown as such (a ratio of 3.4 from 5 of 22 slices was 1.7 in the
    end)."""
    bound = dict.fromkeys(("mismatch_ml", "ratio"), "≤ " if partial else "")
    bound["core_ml"] = "≥ " if partial else ""

    def shown(field: str, unit: str) -> str:
        if result is None:
            return "–"
        criterion = next(c for c in TARGET_CRITERIA if c.field == field)
        return f"{bound[field]}{shown_value(criterion.value(result), criterion.limit)}{unit}"

    hypo = "–" if hypo_ml is None else f"{shown_value(hypo_ml)} mL"
    core_ml = None if result is None else result.core_ml
    return (
        Row("core", "Core", shown("core_ml", " mL"), core_note, core_ml, CORE_COLOR),
        Row("hypo", "Tmax > 6 s", hypo, "", hypo_ml, HYPO_COLOR),
        Row("mismatch", "Mismatch volume", shown("mismatch_ml", " mL")),
        Row("ratio", "Mismatch ratio", shown("ratio", "")),
    )


def _undecided() -> tuple[CriterionState, ...]:
    return tuple(CriterionState(c.label, Mark.UNDECIDED) for c in TARGET_CRITERIA)
