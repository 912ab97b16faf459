"""The case browser's doubt column and "Next most informative case" (pytest-qt, offscreen):
scores of cached predictions equal core.ranking's, sorting keeps next/previous case on the rows
as shown, Ctrl+N picks the unreviewed case the ensemble doubts most, a finished run fills in."""

import os
import threading

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import numpy as np
import pytest
from helpers import isles_cases
from PySide6.QtCore import Qt
from test_app_project import paint
from test_app_window import SHAPE_XYZ, opened, press, run

from strokelens.app.case_browser import DOUBT, SORT_ROLE
from strokelens.app.main_window import MainWindow
from strokelens.app.model import Model, Status
from strokelens.core import ranking
from strokelens.core.dataset import load_ref, open_dataset
from strokelens.core.manifest import read_manifest
from strokelens.core.prediction import Prediction
from strokelens.core.prediction_store import PredictionCache, manifest_fingerprint

#: Member noise of the cached predictions of case_1, case_2, case_3 (case_4 has none).
NOISE = (0.05, 0.3, 0.15)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    return isles_cases(tmp_path_factory.mktemp("isles"), 4, SHAPE_XYZ)


@pytest.fixture
def cache(tmp_path, dataset, ensemble):
    """A prediction cache holding complete predictions of the first three cases, made from a
    lesion block that every member sees, plus member noise that differs per case."""
    cache = PredictionCache(tmp_path / "cache")
    manifest = read_manifest(ensemble)
    fingerprint = manifest_fingerprint(manifest)
    rng = np.random.default_rng(0)
    for ref, noise in zip(open_dataset(dataset), NOISE, strict=False):
        case = load_ref(ref)
        names, losses = [m.name for m in manifest.members], [m.loss for m in manifest.members]
        prediction = Prediction.empty(ref.key, case.shape, case.spacing, names, losses)
        lesion = np.zeros(case.shape, np.float32)
        lesion[:, 5:12, 6:14] = 0.8
        members = lesion + rng.normal(0, noise, (len(names), *case.shape))
        prediction.update(range(case.n_slices), np.clip(members, 0, 1).astype(np.float32))
        cache.put(fingerprint, ref, prediction)
    return cache, fingerprint


@pytest.fixture
def ranked(qtbot, loop, settings, ensemble, cache, dataset, tmp_path):
    """A window on the data set with the cache; the reviewer's name is known (no dialog)."""
    settings.setValue("review/reviewer", "Dr Test")
    win = MainWindow(
        Model(), settings, loop, ensemble=ensemble, prediction_cache=cache[0],
        project=tmp_path / "project",
    )  # fmt: skip
    qtbot.addWidget(win)
    win.resize(1500, 900)
    win.show()
    qtbot.waitExposed(win)
    opened(loop, win, dataset)
    run(loop, win.tasks.idle())
    return win


def expected_scores(cache, dataset) -> dict[str, float]:
    store, fingerprint = cache
    found = {ref.key: store.get(fingerprint, ref) for ref in open_dataset(dataset)}
    return {key: ranking.score(p) for key, p in found.items() if p is not None}


def doubt_cells(window) -> list[tuple[str, object]]:
    table = window.browser.table_model
    return [
        (table.data(table.index(row, DOUBT)), table.data(table.index(row, DOUBT), SORT_ROLE))
        for row in range(table.rowCount())
    ]


def test_doubt_column_holds_core_ranking_scores_of_cached_cases(ranked, cache, dataset):
    scores = expected_scores(cache, dataset)
    keys = [entry.key for entry in ranked.model.entries]
    assert len(scores) == 3 and len(set(scores.values())) == 3
    # cached cases never opened are scored too (only the first one is on screen)
    assert [k for k in keys if k in ranked.model.predictions] == [keys[0]]
    expected = [(f"{scores[k]:.3f}", scores[k]) if k in scores else ("", -1.0) for k in keys]
    assert doubt_cells(ranked) == expected
    header = ranked.browser.table_model.headerData(
        DOUBT, Qt.Orientation.Horizontal, Qt.ItemDataRole.ToolTipRole
    )
    assert ranking.DEFAULT in header and ranking.describe(ranking.DEFAULT) in header


def test_sorting_by_doubt_keeps_next_case_on_the_rows_as_shown(qtbot, loop, ranked, cache, dataset):
    window, model = ranked, ranked.model
    scores = expected_scores(cache, dataset)
    window.browser.table.sortByColumn(DOUBT, Qt.SortOrder.DescendingOrder)
    order = window.browser.visible_indices()
    keys = [model.entries[i].key for i in order]
    assert keys == [*sorted(scores, key=scores.get, reverse=True), "training/case_4"]
    run(loop, window.cases.show_case(order[0]))
    for expected in order[1:]:
        press(qtbot, loop, window, Qt.Key.Key_PageDown)
        assert model.index == expected
    press(qtbot, loop, window, Qt.Key.Key_PageDown)  # the last row: stays
    assert model.index == order[-1]
    press(qtbot, loop, window, Qt.Key.Key_PageUp)
    assert model.index == order[-2]


def test_next_most_informative_skips_approved_cases_and_says_when_none(
    qtbot, loop, ranked, cache, dataset
):
    window, model = ranked, ranked.model
    scores = expected_scores(cache, dataset)
    ranks = sorted(scores, key=scores.get, reverse=True)  # most doubted first
    run(loop, window.cases.show_case(model.index_of("training/case_4")))  # no prediction
    press(qtbot, loop, window, Qt.Key.Key_N, Qt.KeyboardModifier.ControlModifier)
    assert model.case.key == ranks[0]
    paint(window)  # correct and approve the most doubted case: reviewed, out of the ranking
    window.project.save_now()
    run(loop, window.tasks.idle())
    window.project_actions.approve()
    run(loop, window.tasks.idle())
    assert model.entries[model.index].status is Status.APPROVED
    press(qtbot, loop, window, Qt.Key.Key_N, Qt.KeyboardModifier.ControlModifier)
    assert model.case.key == ranks[1]  # the approved one skipped, the current one too
    press(qtbot, loop, window, Qt.Key.Key_N, Qt.KeyboardModifier.ControlModifier)
    assert model.case.key == ranks[2]
    press(qtbot, loop, window, Qt.Key.Key_N, Qt.KeyboardModifier.ControlModifier)
    assert model.case.key == ranks[1]
    window.browser.filter.setText("case_4")  # only the case without a score is shown
    run(loop, window.tasks.idle())
    shown = model.index
    press(qtbot, loop, window, Qt.Key.Key_N, Qt.KeyboardModifier.ControlModifier)
    assert model.index == shown
    assert "No other unreviewed case has a doubt score" in window.statusBar().currentMessage()


def test_a_finished_prediction_fills_its_doubt(loop, ranked):
    window, model = ranked, ranked.model
    key = "training/case_4"
    index = model.index_of(key)
    assert model.entries[index].doubt is None
    assert run(loop, window.ai.run([key]))
    run(loop, window.tasks.idle())
    prediction = model.predictions[key]
    assert prediction.complete and model.entries[index].doubt == ranking.score(prediction)
    cell = doubt_cells(window)[index]
    assert cell == (f"{ranking.score(prediction):.3f}", ranking.score(prediction))


def test_the_reviewer_chooses_the_strategy_and_it_is_remembered(
    qtbot, loop, settings, ranked, cache, dataset, ensemble, tmp_path
):
    window = ranked
    keys = [entry.key for entry in window.model.entries]
    store, fingerprint = cache
    found = {ref.key: store.get(fingerprint, ref) for ref in open_dataset(dataset)}
    spread = {k: ranking.score(p, "volume_spread") for k, p in found.items() if p is not None}
    assert spread != {k: ranking.score(p) for k, p in found.items() if p is not None}
    action = window.menus.named["rank:volume_spread"]
    assert not action.isChecked() and window.menus.named[f"rank:{ranking.DEFAULT}"].isChecked()
    action.trigger()
    run(loop, window.tasks.idle())
    assert action.isChecked() and window.doubt.strategy == "volume_spread"
    expected = [(f"{spread[k]:.3f}", spread[k]) if k in spread else ("", -1.0) for k in keys]
    assert doubt_cells(window) == expected
    header = window.browser.table_model.headerData(
        DOUBT, Qt.Orientation.Horizontal, Qt.ItemDataRole.ToolTipRole
    )
    assert "volume_spread" in header and ranking.describe("volume_spread") in header
    window.close()
    assert settings.value("ai/ranking") == "volume_spread"

    def reopened() -> MainWindow:
        win = MainWindow(Model(), settings, loop, ensemble=ensemble, prediction_cache=store)
        qtbot.addWidget(win)
        return win

    assert reopened().doubt.strategy == "volume_spread"
    settings.setValue("ai/ranking", "../not-a-strategy")  # a damaged setting: the default
    again = reopened()
    assert again.doubt.strategy == ranking.DEFAULT
    assert again.menus.named[f"rank:{ranking.DEFAULT}"].isChecked()


def test_a_score_of_the_old_strategy_still_on_its_way_is_never_shown(loop, ranked, monkeypatch):
    window, model = ranked, ranked.model
    key = "training/case_4"
    index = model.index_of(key)
    gate = threading.Event()

    def held(prediction):  # the default strategy's worker call, held until the switch
        gate.wait(10)
        return -123.0

    monkeypatch.setitem(ranking.STRATEGIES, ranking.DEFAULT, held)
    shown = []
    model.entry_changed.connect(
        lambda i: shown.append(model.entries[i].doubt) if i == index else None
    )
    assert run(loop, window.ai.run([key]))  # its default score is now held on the worker
    window.doubt.set_strategy("uncertainty")  # the reviewer switches meanwhile
    gate.set()
    run(loop, window.tasks.idle())
    prediction = model.predictions[key]
    assert model.entries[index].doubt == ranking.score(prediction, "uncertainty")
    assert -123.0 not in shown
