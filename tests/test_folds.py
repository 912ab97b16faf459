"""Cross-validation folds keep every patient in one fold and spread lesion volumes."""

from __future__ import annotations

import numpy as np
import pytest

from strokelens.training.folds import CaseInfo, patient_folds, split_for_fold


def _cohort(n_patients=63, seed=1):
    rng = np.random.default_rng(seed)
    cases = []
    for p in range(n_patients):
        volume = float(rng.lognormal(np.log(15), 1.0))
        for s in range(1 + (rng.random() < 0.5)):  # about half have two slabs
            cases.append(CaseInfo(f"training/case_{p}_{s}", f"P{p}", volume / 2))
    return cases


def test_patients_never_cross_folds():
    cases = _cohort()
    folds = patient_folds(cases, k=5, seed=3)
    fold_of = {key: i for i, f in enumerate(folds) for key in f}
    assert sorted(fold_of) == sorted(c.key for c in cases)  # every case exactly once
    by_patient: dict[str, set[int]] = {}
    for c in cases:
        by_patient.setdefault(c.patient, set()).add(fold_of[c.key])
    assert all(len(f) == 1 for f in by_patient.values())


def test_folds_balance_volume_and_are_deterministic():
    cases = _cohort()
    folds = patient_folds(cases, seed=0)
    vol = {c.key: c.lesion_ml for c in cases}
    totals = [sum(vol[k] for k in f) for f in folds]
    assert max(totals) / min(totals) < 1.5
    patients = [len({k.split("_")[1] for k in f}) for f in folds]
    assert max(patients) - min(patients) <= 1
    assert patient_folds(cases, seed=0) == folds
    assert patient_folds(cases, seed=1) != folds


def test_split_for_fold_and_too_few_patients():
    folds = patient_folds(_cohort(10), k=5)
    train, val = split_for_fold(folds, 2)
    assert set(train).isdisjoint(val) and len(train) + len(val) == sum(map(len, folds))
    with pytest.raises(ValueError, match="3 patients"):
        patient_folds([CaseInfo(f"c{i}", f"P{i}") for i in range(3)], k=5)
