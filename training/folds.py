"""Per-patient cross-validation folds, balanced by lesion volume.

All cases of one patient land in one fold (a patient with two slabs must never sit on both sides
of a split). Patients are sorted by total lesion volume and dealt out in rounds of ``k``: each
round gives one patient to every fold, in a seeded random order, so every fold gets small and
large lesions and different seeds give different folds.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class CaseInfo:
    key: str
    patient: str
    lesion_ml: float = 0.0


def patient_folds(cases: Iterable[CaseInfo], k: int = 5, seed: int = 0) -> list[list[str]]:
    """``k`` lists of case keys; each patient's cases are all in one list."""
    cases = list(cases)
    patients: dict[str, list[CaseInfo]] = {}
    for c in cases:
        patients.setdefault(c.patient, []).append(c)
    if len(patients) < k:
        raise ValueError(f"{len(patients)} patients cannot fill {k} folds")
    rng = np.random.default_rng(seed)
    names = sorted(patients, key=lambda p: (-sum(c.lesion_ml for c in patients[p]), p))
    folds: list[list[str]] = [[] for _ in range(k)]
    for start in range(0, len(names), k):
        # Full rounds keep patient counts equal, so a short last round may go anywhere.
        for patient, fold in zip(names[start : start + k], rng.permutation(k), strict=False):
            folds[fold].extend(c.key for c in patients[patient])
    return folds


def split_for_fold(folds: list[list[str]], fold: int) -> tuple[list[str], list[str]]:
    """``(train_keys, validation_keys)`` for one fold."""
    val = list(folds[fold])
    train = [key for i, f in enumerate(folds) if i != fold for key in f]
    return train, val
