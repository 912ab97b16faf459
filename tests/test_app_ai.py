"""Run AI in the window (tiny ensemble, headless): background prediction drawn slice by slice,
the slice on screen first, progress, stop and resume, the prediction cache, the compare table."""

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import asyncio
import shutil
import time
from dataclasses import replace

import numpy as np
import pytest
from helpers import case_and_boneonly_case, relative_copy, write_isles_case
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QMessageBox

from strokelens.app.ai_session import PRIORITY_DELAY_MS
from strokelens.app.inference import AiJob, AiRunner, default_threads, format_eta
from strokelens.app.main_window import MainWindow
from strokelens.app.model import Model, Status
from strokelens.core.comparison import AGREE, CE_ONLY, FOCAL_ONLY, compare_case, format_value
from strokelens.core.dataset import load_case
from strokelens.core.engine import Engine, slice_order
from strokelens.core.metrics import case_metrics, volume_ml
from strokelens.core.prediction import Prediction
from strokelens.core.prediction_store import PredictionCache


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """Three tiny ISLES cases; the second has 8 slices and no ground truth."""
    root = tmp_path_factory.mktemp("isles")
    write_isles_case(root / "TRAINING" / "case_1", (24, 20, 4), seed=1)
    write_isles_case(root / "TRAINING" / "case_2", (24, 20, 8), truth=False, seed=2)
    write_isles_case(root / "TRAINING" / "case_3", (24, 20, 4), seed=3)
    return root


@pytest.fixture
def ai_window(qtbot, loop, settings, ensemble, tmp_path):
    win = MainWindow(
        Model(), settings, loop, ensemble=ensemble, prediction_cache=PredictionCache(tmp_path),
        project=tmp_path / "project",
    )  # fmt: skip
    qtbot.addWidget(win)
    win.resize(1500, 900)
    win.show()
    qtbot.waitExposed(win)
    return win


def run(loop, coroutine):
    return loop.run_until_complete(coroutine)


def record_slices(window) -> list[tuple[str, int]]:
    """Slices in the order the window's AI session receives them from the engine."""
    order = []
    window.ai.slice_received.connect(lambda key, z: order.append((key, z)))
    return order


def reference_engine(ensemble) -> Engine:
    """An engine with the runner's settings (thread count, default precision)."""
    return Engine.from_manifest(ensemble, threads=default_threads())


def test_run_ai_on_the_case_draws_it_slice_on_screen_first(loop, ai_window, dataset, ensemble):
    window, model = ai_window, ai_window.model
    assert run(loop, window.cases.open_dataset(dataset))
    model.set_slice(2)
    order = record_slices(window)
    assert run(loop, window.ai.run([model.case.key]))
    run(loop, window.tasks.idle())
    key = model.case.key
    assert [z for _, z in order] == slice_order(4, 2)  # on-screen slice, then nearest-first
    prediction = model.predictions[key]
    expected = reference_engine(ensemble).predict(load_case(dataset / "TRAINING" / "case_1"), 2)
    assert np.allclose(prediction.members, expected.members, atol=1e-6)
    entry = model.entries[0]
    assert entry.status is Status.PREDICTED and entry.progress is None
    assert entry.core_ml == pytest.approx(volume_ml(expected.mask("all"), expected.spacing))
    view = window.view
    focal = prediction.mask("focal")[2]
    assert np.array_equal(view.overlay_rgba("focal", 2)[..., 3] > 0, _contour(focal))
    assert not window.ai_progress.isVisible() and window.ai.job is None
    assert "AI finished 1 case" in window.statusBar().currentMessage()
    text = window.browser.table_model.data(window.browser.table_model.index(0, 4))
    assert text == "predicted"


def _contour(mask):
    from strokelens.app.colormaps import contour

    return contour(mask.astype(bool))


def test_run_all_goes_through_every_case_and_caches_them(
    qtbot, loop, ai_window, dataset, ensemble, settings, tmp_path
):
    window, model = ai_window, ai_window.model
    assert run(loop, window.cases.open_dataset(dataset))
    run(loop, window.cases.show_case(1))  # the shown case goes first
    order = record_slices(window)
    progress, show_job = [], window.ai_progress.show_job
    window.ai_progress.show_job = lambda job: (progress.append(job.fraction()), show_job(job))
    window.run_ai_all()
    run(loop, window.tasks.idle())
    keys = [e.key for e in model.entries]
    cases_in_order = list(dict.fromkeys(k for k, _ in order))
    assert cases_in_order == [keys[1], keys[0], keys[2]]
    assert len(order) == 4 + 8 + 4
    assert all(e.status is Status.PREDICTED and e.core_ml is not None for e in model.entries)
    assert progress == sorted(progress) and progress[-1] == 1.0
    # the AI process writes each case to the cache after sending it
    qtbot.waitUntil(lambda: len(list(tmp_path.rglob("*.h5"))) == 3, timeout=10000)

    # a new window (a new session) finds the predictions in the cache without running the AI
    again = MainWindow(
        Model(), settings, loop, ensemble=ensemble, prediction_cache=PredictionCache(tmp_path)
    )
    qtbot.addWidget(again)
    assert run(loop, again.cases.open_dataset(dataset))
    run(loop, again.tasks.idle())
    cached = again.model.predictions[keys[0]]
    assert np.array_equal(cached.members, model.predictions[keys[0]].members)
    assert again.model.entries[0].status is Status.PREDICTED and again.ai.job is None
    # the cases never visited show "predicted" and their core volume from the cache's index
    table = again.browser.table_model
    for row in (1, 2):
        entry = again.model.entries[row]
        assert entry.key not in again.model.predictions
        assert table.data(table.index(row, 4)) == "predicted"
        assert entry.core_ml == pytest.approx(model.entries[row].core_ml)
        assert table.data(table.index(row, 5)) == f"{model.entries[row].core_ml:.1f}"
    again.run_ai_all()  # every case is cached: the engine is not even started
    run(loop, again.tasks.idle())
    assert again.ai.runner is None and "already predicted" in again.statusBar().currentMessage()


@pytest.fixture(scope="module")
def large(tmp_path_factory):
    """One 8-slice 256 x 256 case: a slice's member probabilities (1 MB) do not fit in the
    pipe's buffer, so the AI process waits on each slice until the app has taken it, and a stop
    requested on the first slice takes effect before the third batch."""
    root = tmp_path_factory.mktemp("large")
    write_isles_case(root / "case_1", (256, 256, 8), seed=4)
    return root


def test_stop_keeps_finished_slices_and_run_resumes_from_them(loop, ai_window, large):
    window, model = ai_window, ai_window.model
    assert run(loop, window.cases.open_dataset(large))
    key = model.case.key
    model.set_slice(0)
    order = record_slices(window)
    window.ai.slice_received.connect(stop_after_first := lambda _k, _z: window.ai.cancel())
    assert run(loop, window.ai.run([key]))
    run(loop, window.tasks.idle())
    partial = model.predictions[key]
    # slice 0 alone, then maybe the batch of 4 that was running: never the third batch
    assert list(np.flatnonzero(partial.done)) in ([0], [0, 1, 2, 3, 4])
    assert model.entries[0].status is Status.NEW and model.entries[0].progress is None
    assert "AI stopped" in window.statusBar().currentMessage()
    table = window.browser.table_model
    done = int(partial.done.sum())
    assert table.data(table.index(0, 4)) == f"partial ({done} / 8 slices)"
    window.ai.slice_received.disconnect(stop_after_first)
    assert run(loop, window.ai.run([key]))
    run(loop, window.tasks.idle())
    zs = [z for k, z in order if k == key]
    assert sorted(zs) == list(range(8)) and len(zs) == 8  # no slice ran twice
    assert model.predictions[key] is partial and partial.complete
    assert model.entries[0].status is Status.PREDICTED


def test_staying_on_an_unfinished_slice_asks_the_ai_for_it(qtbot, loop, ai_window, dataset):
    window, model = ai_window, ai_window.model
    assert run(loop, window.cases.open_dataset(dataset))
    run(loop, window.cases.show_case(1))
    case = model.case
    job = window.ai.job = AiJob([], {}, running=case.key)
    for z in (1, 2, 5):  # scrolling through: no request until the reviewer stays
        model.set_slice(z)
        assert job.priority_request is None
    qtbot.waitUntil(lambda: job.priority_request == 5, timeout=2000)
    job.priority_request = None
    partial = Prediction.empty(case.key, case.shape, case.spacing, ["f", "c"], ["focal", "ce"])
    partial.update([3], np.zeros((2, 1, *case.shape[1:]), np.float32))
    model.set_prediction(case.key, partial)
    model.set_slice(3)  # done already: no request
    qtbot.wait(PRIORITY_DELAY_MS * 2)
    assert job.priority_request is None
    model.set_slice(4)
    qtbot.waitUntil(lambda: job.priority_request == 4, timeout=2000)
    assert not window.ai.set_ensemble(window.ai.ensemble)  # not while the AI runs
    assert "Stop the AI" in window.statusBar().currentMessage()
    window.ai.job = None


def test_runner_resumes_from_a_requested_slice_without_redoing_slices(ensemble, dataset):
    """A priority request (the reviewer stays on slice 7) interrupts the case and resumes it
    from slice 7; a case that cannot be read is reported and skipped."""
    from strokelens.core.dataset import open_dataset

    loop = asyncio.new_event_loop()
    refs = {ref.key: ref for ref in open_dataset(dataset)}
    runner = AiRunner(loop, ensemble, threads=1)
    try:
        key = "training/case_2"
        job = AiJob([], {})
        job.add([key, "missing"], {key: 4 * 8, "missing": 4})

        def priority_of(k):
            job.request_priority(7)  # arrives before the process runs a slice
            return 1

        def ref_of(k):
            if k == "missing":
                return replace(refs[key], folder=dataset / "nowhere", errors=["no such case"])
            return refs[k]

        order, done, errors = [], [], []
        loop.run_until_complete(
            runner.run(
                job,
                ref_of,
                priority_of,
                on_slice=lambda _k, z, _p: order.append(z),
                on_progress=lambda d, _t: None,
                on_case_done=lambda k, p: done.append((k, p)),
                on_case_error=lambda k, e: errors.append((k, str(e))),
            )
        )
        assert order == slice_order(8, 7) and job.finished == [key, "missing"]
        ((done_key, prediction),) = done
        assert done_key == key and prediction.complete
        reference = Engine.from_manifest(ensemble, threads=1).predict(load_case(refs[key].folder))
        assert np.allclose(prediction.members, reference.members, atol=1e-6)
        assert errors == [("missing", f"{dataset / 'nowhere'}: no such case")]
        assert job.skipped == {"missing": f"{dataset / 'nowhere'}: no such case"}
        assert "finished 1 case(s)" in job.summary(1.0) and "skipped 1 unreadable" in job.summary(1)
    finally:
        runner.close()
        loop.close()


def test_a_case_a_relative_version_cannot_scale_is_skipped_and_the_process_goes_on(
    ensemble, tmp_path
):
    """The engine's refusal of one case (a relative version, a case without brain) is that
    case's error, named by its map: the AI process stays up for the next case."""
    from strokelens.core.dataset import open_dataset

    bone = case_and_boneonly_case(tmp_path / "data")
    path = relative_copy(ensemble, "relative-ai.json")
    refs = {ref.key: ref for ref in open_dataset(tmp_path / "data")}
    loop = asyncio.new_event_loop()
    runner = AiRunner(loop, path, threads=1)
    try:
        job = AiJob([], {})
        job.add(["training/case_2", "training/case_1"], {k: 4 * 4 for k in refs})
        done, errors = [], []
        loop.run_until_complete(
            runner.run(
                job,
                refs.__getitem__,
                lambda _k: None,
                on_slice=lambda _k, _z, _p: None,
                on_progress=lambda _d, _t: None,
                on_case_done=lambda k, p: done.append(k),
                on_case_error=lambda k, e: errors.append((k, str(e))),
            )
        )
        ((key, why),) = errors
        assert key == "training/case_2" and why.startswith(f"{bone['CT_CBF']}: CBF cannot")
        assert done == ["training/case_1"]  # the same process went on
    finally:
        runner.close()
        loop.close()
        path.unlink()


def test_job_progress_eta_queue_and_texts():
    job = AiJob([], {})
    job.add(["a", "b"], {"a": 10, "b": 30})
    job.add(["a", "c"], {"a": 10, "c": 20})  # queued cases are not added twice
    assert job.keys == ["a", "b", "c"] and job.total_work == 60
    job.prefer("c")
    assert job.next_key() == "c"
    assert job.eta_s() is None and job.fraction() == 0
    job.set_case_progress(0, now=100.0)  # the rate starts at the first result
    job.set_case_progress(20, now=102.0)  # 20 units in 2 s: 40 left at 10/s
    assert job.fraction() == pytest.approx(20 / 60)
    assert job.eta_s(now=102.0) == pytest.approx(4.0)
    assert job.next_key() == "a" and job.completed_work == 20
    job.stop()
    assert job.next_key() is None and job.finished == ["c", "a"]
    assert [format_eta(s) for s in (None, 4.2, 125, 7300)] == [
        "estimating…", "4 s left", "2 min 05 s left", "2 h 01 min left",
    ]  # fmt: skip
    assert job.summary(3.04) == (
        "AI stopped after 2 case(s) in 3.0 s; finished slices are kept and Run AI resumes from them."
    )
    done = AiJob([], {}, finished=["a", "b", "c"], skipped={"b": "b: no such case"})
    assert done.summary(1.0) == "AI finished 2 case(s) in 1.0 s; skipped 1 unreadable: b."


def test_compare_dock_equals_core_metrics_and_difference_layer(qtbot, loop, ai_window, dataset):
    window, model = ai_window, ai_window.model
    assert run(loop, window.cases.open_dataset(dataset))
    qtbot.keyClick(window.view.graphics, Qt.Key.Key_E, Qt.KeyboardModifier.ControlModifier)
    assert window.compare.isVisible()
    assert run(loop, window.ai.run([model.case.key]))
    # a request overtaken by a newer one (as by the timer after a mask change) returns only
    # once the dock shows the comparison, not with the table still empty
    first, second = (loop.create_task(window.compare.refresh()) for _ in range(2))
    run(loop, first)
    table = window.compare.ensembles
    assert table.rowCount() == 3
    run(loop, second)
    case, prediction = model.case, model.predictions[model.case.key]
    rows = {table.item(r, 0).text(): r for r in range(table.rowCount())}
    headers = [table.horizontalHeaderItem(c).text() for c in range(table.columnCount())]
    for source, title in (("focal", "Focal"), ("ce", "Cross entropy")):
        expected = case_metrics(prediction.mask(source), case.mask, case.spacing)
        dsc = table.item(rows[title], headers.index("DSC\nGT")).text()
        avd = table.item(rows[title], headers.index("AVD mL\nGT")).text()
        assert dsc == format_value(expected["dsc"], 3)
        assert avd == format_value(expected["avd_ml"], 1)
    members = window.compare.members
    assert members.rowCount() == len(prediction.member_names)

    # the difference layer: agree / focal only / CE only from the two ensemble masks
    labels = model.layer_data("difference")
    focal, ce = prediction.mask("focal") > 0, prediction.mask("ce") > 0
    assert np.array_equal(labels == AGREE, focal & ce)
    assert np.array_equal(labels == FOCAL_ONLY, focal & ~ce)
    assert np.array_equal(labels == CE_ONLY, ce & ~focal)
    model.set_layer("difference", visible=True)
    z = model.slice
    rgba = window.view.overlay_rgba("difference", z)
    if rgba is not None:
        assert np.array_equal(rgba[..., 3] > 0, labels[z] > 0)

    # a corrected mask adds the "vs corrected" columns
    corrected = prediction.mask("all").copy()
    corrected[0] = 0
    model.set_corrected(case.key, corrected)
    run(loop, window.compare.refresh())
    headers = [table.horizontalHeaderItem(c).text() for c in range(table.columnCount())]
    expected = compare_case(prediction, case.mask, corrected).sources[2].metrics["corrected"]
    column = headers.index("DSC\ncorr.")
    assert table.item(rows["All members"], column).text() == format_value(expected["dsc"], 3)


def test_run_ai_with_a_broken_ensemble_reports_and_keeps_running(loop, window, dataset, tmp_path):
    bad = tmp_path / "ensemble.json"
    bad.write_text("{not json")
    assert run(loop, window.cases.open_dataset(dataset))
    window.ai.set_ensemble(bad)
    started = time.perf_counter()
    assert not run(loop, window.ai.run([window.model.case.key]))
    assert time.perf_counter() - started < 10
    assert "ensemble.json" in window.statusBar().currentMessage()
    assert window.ai.job is None and window.model.case is not None


def test_a_corrupt_member_file_is_reported_by_name(loop, window, dataset, ensemble, tmp_path):
    copy = tmp_path / "ensemble"
    shutil.copytree(ensemble.parent, copy)
    weights = sorted(copy.rglob("*.safetensors"))[0]
    weights.write_bytes(weights.read_bytes()[:-10] + b"0123456789")
    assert run(loop, window.cases.open_dataset(dataset))
    assert window.ai.set_ensemble(copy / ensemble.name)
    assert not run(loop, window.ai.run([window.model.case.key]))
    message = window.statusBar().currentMessage()
    assert weights.name in message and "sha256" in message
    assert window.ai.job is None and not window.ai_progress.isVisible()
    assert window.model.entries[0].status is Status.NEW


def _answer_quit(window, answer):
    """Close the window as the user does and answer the question it asks."""
    window.close()
    box = window.quit_box
    assert box is not None and box.isVisible() and window.isVisible()
    assert box.text() == "The AI is running on 1 case(s). Quit anyway?"
    box.button(answer).click()


def test_quitting_during_run_ai_asks_and_no_keeps_it_running(loop, ai_window, large):
    window, model = ai_window, ai_window.model
    assert run(loop, window.cases.open_dataset(large))
    key = model.case.key
    arrived = record_slices(window)
    window.ai.slice_received.connect(
        lambda _k, _z: len(arrived) == 1 and _answer_quit(window, QMessageBox.StandardButton.No)
    )
    assert run(loop, window.ai.run([key]))
    run(loop, window.tasks.idle())
    assert window.isVisible() and not window.closed.done()
    assert len(arrived) == 8 and model.predictions[key].complete  # the AI kept running
    window.close()  # nothing running: no question
    assert window.closed.done() and not window.quit_box.isVisible()


def test_quitting_keeps_the_finished_slices_and_the_next_session_resumes_from_them(
    qtbot, loop, ai_window, large, ensemble, settings, tmp_path
):
    window, model = ai_window, ai_window.model
    assert run(loop, window.cases.open_dataset(large))
    key = model.case.key
    model.set_slice(0)
    arrived, processes = record_slices(window), []

    def quit_on_first_slice(_key, _z):
        if len(arrived) == 1:
            processes.append(window.ai.runner.process)
            _answer_quit(window, QMessageBox.StandardButton.Yes)

    window.ai.slice_received.connect(quit_on_first_slice)
    window.tasks.spawn(window.ai.run([key]))
    run(loop, asyncio.wait_for(window.closed, 60))
    processes[0].join(5)
    assert not processes[0].is_alive()  # the engine process ended with the window
    kept = [z for _, z in arrived]
    assert kept in ([0], [0, 1, 2, 3, 4])  # as for a stop: never the third batch
    (ref,) = list(model.dataset)
    cache = PredictionCache(tmp_path)
    ((_, entry),) = cache.index(window.ai._info[1], [ref]).items()
    assert (entry.done, entry.slices) == (len(kept), 8)

    # the next session shows the partial case and completes it without redoing its slices
    again = MainWindow(
        Model(), settings, loop, ensemble=ensemble, prediction_cache=PredictionCache(tmp_path)
    )
    qtbot.addWidget(again)
    assert run(loop, again.cases.open_dataset(large))
    run(loop, again.tasks.idle())
    table = again.browser.table_model
    assert table.data(table.index(0, 4)) == f"partial ({len(kept)} / 8 slices)"
    resumed = record_slices(again)
    assert run(loop, again.ai.run([key]))
    run(loop, again.tasks.idle())
    assert sorted(z for _, z in resumed) == sorted(set(range(8)) - set(kept))
    prediction = again.model.predictions[key]
    expected = reference_engine(ensemble).predict(load_case(large / "case_1"))
    assert prediction.complete and np.allclose(prediction.members, expected.members, atol=1e-6)
    assert table.data(table.index(0, 4)) == "predicted"


@pytest.fixture(scope="module")
def phantom(tmp_path_factory):
    """One 2-slice phantom case in the ISLES layout (CBF and CBV stored x 10, sidecar scale)."""
    from strokelens.core.phantom import generate_dataset

    root = tmp_path_factory.mktemp("phantom")
    generate_dataset(root, 1, seed=3, split="training", slices=(2,))
    return root


def test_phantom_case_review_with_ai_and_compare(qtbot, loop, ai_window, phantom):
    window, model = ai_window, ai_window.model
    assert run(loop, window.cases.open_dataset(phantom))
    case = model.case
    assert case.value_scales == {"CBF": 0.1, "CBV": 0.1} and case.mask.any()
    z = model.slice
    shown = window.view.panes[1].image.image  # CBF in mL/100g/min, not the stored x 10
    inside = ~np.isnan(shown)  # NaN: off the brain, drawn transparent
    assert inside.any() and np.allclose(shown[inside], case.channels["CBF"][z][inside] * 0.1)
    model.step_slice(1 if z == 0 else -1)
    qtbot.keyClick(window.view.graphics, Qt.Key.Key_3)  # CE layer off, then on again
    assert not model.layers["ce"].visible
    qtbot.keyClick(window.view.graphics, Qt.Key.Key_3)
    window.docks["compare"].raise_()
    assert run(loop, window.ai.run([case.key]))
    run(loop, window.compare.refresh())
    prediction = model.predictions[case.key]
    table, rows = window.compare.ensembles, window.compare.ensembles.rowCount()
    expected = case_metrics(prediction.mask("all"), case.mask, case.spacing)
    row = next(r for r in range(rows) if table.item(r, 0).text() == "All members")
    headers = [table.horizontalHeaderItem(c).text() for c in range(table.columnCount())]
    assert table.item(row, headers.index("DSC\nGT")).text() == format_value(expected["dsc"], 3)
    assert table.item(row, headers.index("HD mm\nGT")).text() == format_value(expected["hd"], 1)
    assert model.entries[0].core_ml == pytest.approx(volume_ml(prediction.mask(), case.spacing))


def test_stop_priority_and_a_new_run_at_random_moments_never_mix_cases(ensemble, dataset):
    """Ctrl+R, then within ~0-150 ms a stop, a priority slice or a case preference, then a new
    run at once (Esc and Ctrl+R again): no error, and every slice lands in its own case."""
    import random

    from strokelens.core.dataset import open_dataset

    loop = asyncio.new_event_loop()
    refs = {ref.key: ref for ref in open_dataset(dataset)}
    keys = list(refs)[:2]
    runner = AiRunner(loop, ensemble, threads=1)
    rng = random.Random(12)
    landed, failures = [], []

    def new_job() -> AiJob:
        job = AiJob([], {})
        job.add(keys, dict.fromkeys(keys, 4 * 8))  # progress only
        return job

    async def run(job):
        await runner.run(
            job,
            refs.__getitem__,
            lambda _k: 0,
            on_slice=lambda k, z, p: landed.append((k, p.case_key)),
            on_progress=lambda d, t: None,
            on_case_done=lambda k, p: landed.append((k, p.case_key)),
            on_case_error=lambda k, e: failures.append((k, e)),
        )

    async def one_round():
        first = new_job()
        runs = [loop.create_task(run(first))]
        await asyncio.sleep(rng.uniform(0, 0.15))
        request = rng.choice(["stop", "priority", "prefer"])
        if request == "priority":
            first.request_priority(rng.randrange(4))
        elif request == "prefer":
            first.prefer(keys[-1])
        await asyncio.sleep(rng.uniform(0, 0.02))
        first.stop()
        runs.append(loop.create_task(run(new_job())))
        for task in runs:
            try:
                await asyncio.wait_for(task, 60)
            except Exception as exc:  # noqa: BLE001 (collected: the assertion shows them all)
                failures.append((request, exc))

    try:
        loop.run_until_complete(runner.load())
        for _ in range(40):
            loop.run_until_complete(one_round())
        assert not failures
        assert landed and all(key == shown for key, shown in landed)
    finally:
        runner.close()
        loop.close()


def test_run_ai_right_after_esc_waits_for_the_stopped_run_and_keeps_its_own_progress(
    qtbot, loop, ai_window, large
):
    """Ctrl+R, Esc, Ctrl+R in quick succession: the second run owns the progress (the first
    one's ending must not clear it) and completes the case from the slices kept."""
    window, model = ai_window, ai_window.model
    assert run(loop, window.cases.open_dataset(large))
    key = model.case.key
    first = loop.create_task(window.ai.run([key]))
    qtbot.waitUntil(
        lambda: window.ai.job is not None and window.ai.job.running == key, timeout=30000
    )
    qtbot.keyClick(window.view.graphics, Qt.Key.Key_Escape)
    second = loop.create_task(window.ai.run([key]))
    assert run(loop, first)
    assert not second.done() and window.ai.job is not None and not window.ai.job.stopped
    assert run(loop, second)
    run(loop, window.tasks.idle())
    assert model.predictions[key].complete and window.ai.job is None
    assert model.entries[0].status is Status.PREDICTED
