"""The review workflow: a case's status and the events that move it.

The table is the whole rule set, so the store, the window and the tests read one source:

- the first edit of a new or predicted case makes it "in review";
- a saved edit (or an imported mask) makes any case "corrected", an approved one too (the
  audit log records that an approved case was reopened);
- approving needs a saved correction ("corrected" only);
- a prediction makes a new case "predicted" and leaves reviewed cases as they are.

Anything else raises ``TransitionError``.
"""

from __future__ import annotations

from enum import StrEnum

from strokelens.core.errors import StrokeLensError


class Status(StrEnum):
    """Review state of a case, in workflow order (the case browser sorts by it)."""

    NEW = "new"
    PREDICTED = "predicted"
    IN_REVIEW = "in review"
    CORRECTED = "corrected"
    APPROVED = "approved"


class Event(StrEnum):
    """What happens to a case."""

    PREDICT = "predict"
    EDIT = "edit"
    SAVE = "save"
    APPROVE = "approve"


class TransitionError(StrokeLensError):
    """An event or status change the workflow does not allow for a case's current status."""


S = Status
#: event -> {status before: status after}; a status missing from an event's row refuses it.
TRANSITIONS: dict[Event, dict[Status, Status]] = {
    Event.PREDICT: {
        S.NEW: S.PREDICTED,
        S.PREDICTED: S.PREDICTED,
        S.IN_REVIEW: S.IN_REVIEW,
        S.CORRECTED: S.CORRECTED,
        S.APPROVED: S.APPROVED,
    },
    Event.EDIT: {
        S.NEW: S.IN_REVIEW,
        S.PREDICTED: S.IN_REVIEW,
        S.IN_REVIEW: S.IN_REVIEW,
        S.CORRECTED: S.CORRECTED,  # unsaved edits of a corrected case; the save keeps it so
        S.APPROVED: S.APPROVED,  # until its save, which reopens it as corrected
    },
    Event.SAVE: {s: S.CORRECTED for s in S},
    Event.APPROVE: {S.CORRECTED: S.APPROVED},
}
del S

#: Every (before, after) pair some event makes: what ``check_transition`` allows.
ALLOWED: frozenset[tuple[Status, Status]] = frozenset(
    pair for row in TRANSITIONS.values() for pair in row.items()
)


def next_status(current: Status, event: Event) -> Status:
    """The status after ``event`` on a case in ``current``; TransitionError if not allowed."""
    row = TRANSITIONS[Event(event)]
    current = Status(current)
    if current not in row:
        allowed = ", ".join(f'"{s}"' for s in row)
        raise TransitionError(f'cannot {event} a case that is "{current}" (only {allowed})')
    return row[current]


def check_transition(current: Status, new: Status) -> Status:
    """``new`` if some event moves a case from ``current`` to it; else TransitionError."""
    current, new = Status(current), Status(new)
    if (current, new) not in ALLOWED:
        raise TransitionError(f'a case cannot go from "{current}" to "{new}"')
    return new


def reopens(current: Status, new: Status) -> bool:
    """Whether the change takes an approved case back into the workflow (the audit says so)."""
    return current is Status.APPROVED and new is not Status.APPROVED
