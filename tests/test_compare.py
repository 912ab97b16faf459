"""Focal vs CE comparison: values equal core.metrics, labels, CSV, and the panel's cells."""

from __future__ import annotations

import csv
import io
import math

import numpy as np
import pytest

from strokelens.core.comparison import (
    AGREE,
    CE_ONLY,
    FOCAL_ONLY,
    as_rows,
    compare_case,
    difference_labels,
    ensemble_columns,
    format_value,
    member_columns,
    to_csv,
)
from strokelens.core.metrics import case_metrics, volume_ml
from strokelens.core.prediction import THRESHOLD, Prediction

SHAPE = (4, 32, 32)
SPACING = (5.0, 0.9, 0.8)


def make_prediction(losses=("focal", "focal", "ce", "ce"), seed=0) -> Prediction:
    """Members see one blob at shifted centres and radii plus noise, so their masks differ."""
    rng = np.random.default_rng(seed)
    z, y, x = np.indices(SHAPE)
    probs = []
    for i, loss in enumerate(losses):
        shift = 3 if loss == "focal" else -2
        dist = np.hypot(y - 16 - shift, x - 15 + i) + 2 * abs(z - 1.5)
        logit = (8 + i - dist) / 1.5 + rng.normal(0, 0.8, SHAPE)
        probs.append(1 / (1 + np.exp(-logit)))
    names = [f"{loss}-{i}" for i, loss in enumerate(losses)]
    prediction = Prediction.empty("case_7", SHAPE, SPACING, names, list(losses))
    prediction.update(range(SHAPE[0]), np.stack(probs).astype(np.float32))
    return prediction


def references() -> tuple[np.ndarray, np.ndarray]:
    truth = np.zeros(SHAPE, np.uint8)
    truth[:3, 8:24, 6:22] = 1
    corrected = truth.copy()
    corrected[:, 20:26, 10:20] = 1
    return truth, corrected


def test_values_equal_core_metrics():
    prediction = make_prediction()
    truth, corrected = references()
    refs = {"truth": truth, "corrected": corrected}
    comparison = compare_case(prediction, truth, corrected)

    assert comparison.case_key == "case_7"
    assert comparison.references == ("truth", "corrected")
    assert [s.source for s in comparison.sources] == ["focal", "ce", "all"]
    for row in comparison.sources:
        mask = prediction.mask(row.source)
        assert mask.any()
        assert row.volume_ml == volume_ml(mask, SPACING)
        for name, ref in refs.items():
            assert row.metrics[name] == case_metrics(mask, ref, SPACING)
    assert [m.name for m in comparison.members] == prediction.member_names
    for i, member in enumerate(comparison.members):
        mask = prediction.members[i] >= THRESHOLD
        assert member.loss == prediction.member_losses[i]
        assert member.volume_ml == volume_ml(mask, SPACING)
        for name, ref in refs.items():
            assert member.dsc[name] == case_metrics(mask, ref, SPACING)["dsc"]
    # The members really differ, so a mix-up between them would show.
    assert len({m.dsc["truth"] for m in comparison.members}) == len(comparison.members)


def test_missing_references_are_none():
    prediction = make_prediction()
    _, corrected = references()
    only_corrected = compare_case(prediction, None, corrected)
    assert only_corrected.references == ("corrected",)
    for row in only_corrected.sources:
        assert row.metrics["truth"] is None and row.metrics["corrected"] is not None
    assert all(
        m.dsc["truth"] is None and m.dsc["corrected"] is not None for m in only_corrected.members
    )

    neither = compare_case(prediction, None, None)
    assert neither.references == ()
    assert all(set(r.metrics.values()) == {None} for r in neither.sources)
    assert all(set(m.dsc.values()) == {None} for m in neither.members)
    assert "dsc_vs_truth" not in to_csv(neither)


def test_difference_labels_and_agreement():
    prediction = make_prediction()
    focal = prediction.mask("focal").astype(bool)
    ce = prediction.mask("ce").astype(bool)
    labels = difference_labels(prediction)
    assert labels.dtype == np.uint8 and labels.shape == SHAPE
    expected = {AGREE: focal & ce, FOCAL_ONLY: focal & ~ce, CE_ONLY: ~focal & ce, 0: ~(focal | ce)}
    for label, where in expected.items():
        assert where.any()
        assert np.array_equal(labels == label, where)

    agreement = compare_case(prediction, None, None).agreement
    assert agreement.agree_voxels == np.count_nonzero(focal & ce)
    assert agreement.focal_only_voxels == np.count_nonzero(focal & ~ce)
    assert agreement.ce_only_voxels == np.count_nonzero(~focal & ce)
    assert agreement.focal_only_ml == volume_ml(focal & ~ce, SPACING)
    assert agreement.dsc == case_metrics(focal, ce, SPACING)["dsc"]


def test_one_loss_only_and_other_losses_ordered():
    focal_only = make_prediction(losses=("focal", "focal"))
    assert difference_labels(focal_only) is None
    comparison = compare_case(focal_only, None, None)
    assert comparison.agreement is None
    assert [s.source for s in comparison.sources] == ["focal", "all"]

    mixed = make_prediction(losses=("wce", "ce", "focal"))
    assert [s.source for s in compare_case(mixed, None, None).sources] == [
        "focal", "ce", "all", "wce",
    ]  # fmt: skip


def test_csv_round_trip():
    prediction = make_prediction()
    truth, corrected = references()
    comparison = compare_case(prediction, truth, corrected)
    rows = list(csv.DictReader(io.StringIO(to_csv(comparison))))
    kinds = [r["kind"] for r in rows]
    assert kinds == ["ensemble"] * 3 + ["member"] * 4 + ["agreement"] * 3
    assert {r["case"] for r in rows} == {"case_7"}
    focal = rows[0]
    assert focal["name"] == "Focal"
    assert float(focal["hd_mm_vs_corrected"]) == comparison.sources[0].metrics["corrected"]["hd"]
    assert float(focal["dsc_vs_ce"]) == comparison.agreement.dsc
    assert float(rows[3]["dsc_vs_truth"]) == comparison.members[0].dsc["truth"]
    assert rows[3]["hd_mm_vs_truth"] == ""  # members have DSC only
    assert int(rows[-1]["voxels"]) == comparison.agreement.ce_only_voxels


def test_format_value():
    assert format_value(math.nan, 1) == "–"
    assert format_value(None, 3) == "–"
    assert format_value(0.12345, 3) == "0.123"
    assert format_value(12.25, 1) == "12.2"
    assert format_value("ce", None) == "ce"


@pytest.fixture
def panel(qtbot, loop):
    from strokelens.app.compare_panel import ComparePanel
    from strokelens.app.model import Model
    from strokelens.app.tasks import Tasks

    widget = ComparePanel(Model(), Tasks(loop), lambda _key: False)
    qtbot.addWidget(widget)
    return widget


def _texts(table, row):
    return [table.item(row, c).text() for c in range(table.columnCount())]


def test_panel_shows_formatted_numbers(panel):
    prediction = make_prediction()
    truth, _ = references()
    empty = np.zeros(SHAPE, np.uint8)  # HD against an empty mask is NaN, shown as "–"
    comparison = compare_case(prediction, truth, empty)
    panel.show_comparison(comparison)
    assert not panel.content.isHidden() and panel.message.isHidden()

    rows = as_rows(comparison)
    columns = ensemble_columns(comparison.references)
    assert [panel.ensembles.horizontalHeaderItem(c).text() for c in range(len(columns))] == [
        c.title for c in columns
    ]
    assert columns[2].title == "DSC\nGT" and columns[-1].title.endswith("corr.")
    ensembles = [r for r in rows if r["kind"] == "ensemble"]
    assert panel.ensembles.rowCount() == len(ensembles)
    for i, row in enumerate(ensembles):
        assert _texts(panel.ensembles, i) == [format_value(row[c.key], c.decimals) for c in columns]
    assert _texts(panel.ensembles, 0)[-1] == "–"

    columns = member_columns(comparison.references)
    members = {r["name"]: r for r in rows if r["kind"] == "member"}
    shown = {panel.members.item(i, 0).text(): i for i in range(panel.members.rowCount())}
    assert shown.keys() == members.keys()
    for name, row in members.items():
        expected = [format_value(row[c.key], c.decimals) for c in columns]
        assert _texts(panel.members, shown[name]) == expected
    assert format_value(comparison.agreement.dsc, 3) in panel.agreement.text()

    dsc = [c.key for c in columns].index("dsc_vs_truth")
    panel.members.sortItems(dsc)
    values = [members[panel.members.item(i, 0).text()]["dsc_vs_truth"] for i in range(4)]
    assert values == sorted(values)


def test_panel_message_and_copy(panel):
    panel.set_message("No prediction for this case: run the AI (Ctrl+R)")
    assert not panel.message.isHidden() and panel.content.isHidden()
    assert "Ctrl+R" in panel.message.text()

    comparison = compare_case(make_prediction(), None, None)
    panel.show_comparison(comparison)
    assert panel.ensembles.columnCount() == 2  # name and volume only
    panel.copy_button.click()
    from PySide6.QtWidgets import QApplication

    assert QApplication.clipboard().text() == to_csv(comparison)
