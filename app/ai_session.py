""" "Run AI" in the workstation: which ensemble, the runner and its job, partial results, and the
AI following the reviewer; Qt-free.

Cases go to an ``AiRunner`` (``inference``: the ensemble in its own process); what comes back is
drawn at most every ``AI_REFRESH_MS``. The case on screen goes first, and the slice the reviewer
stays on next. A stopped case keeps its finished slices for the next run, in this session and,
through the prediction cache, in the next. When a data set opens, the cache's index (read in a
worker, members left on disk) tells the worklist which cases are predicted or partial, and Run
AI skips the predicted ones. The window shows the
events: ``status(text, ms)``, ``progress(job)`` (None: hide the progress), ``progress_text(text)``,
``ensemble_changed(path)`` (to remember it) and ``slice_received(key, z)``, once per slice as it
arrives from the engine.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING

from psygnal import Signal

from strokelens.app.inference import AiJob, AiRunner
from strokelens.app.model import Model
from strokelens.app.tasks import Tasks
from strokelens.core.errors import StrokeLensError

if TYPE_CHECKING:
    from strokelens.core.prediction import Prediction
    from strokelens.core.prediction_store import PredictionCache
    from strokelens.core.registry import Registry

_log = logging.getLogger(__name__)

#: While the AI runs, finished slices are drawn (and progress shown) at most this often.
AI_REFRESH_MS = 100
#: The AI does the slice on screen next once the reviewer has stayed on it this long.
PRIORITY_DELAY_MS = 150


def default_ensemble(
    given: str | Path | None, remembered: str | None, registry: Registry | None = None
) -> Path | None:
    """The manifest to use: the one given, else the one last chosen, else the model registry's
    active version (the bundled demo until a retrained version is promoted). A remembered demo
    or registry version gives way to the active one, so a promotion or rollback takes effect;
    a broken registry pointer falls back to the demo, with a warning in the log."""
    from strokelens.core.demo import DEMO_MANIFEST
    from strokelens.core.registry import Registry

    if given is not None:
        return Path(given)
    registry = registry or Registry()
    if remembered and not registry.holds(Path(remembered)):
        return Path(remembered)
    try:
        return registry.active_manifest()
    except StrokeLensError as exc:
        _log.warning("model registry: %s; using the bundled demo ensemble", exc)
    return DEMO_MANIFEST if DEMO_MANIFEST.is_file() else None


def _ensemble_info(path: Path, allow_external_members: bool) -> tuple[int, str]:
    """Member count and cache fingerprint of an ensemble manifest (worker)."""
    from strokelens.core.manifest import read_manifest
    from strokelens.core.prediction_store import manifest_fingerprint

    manifest = read_manifest(path, allow_external_members)
    return len(manifest.members), manifest_fingerprint(manifest)


class AiSession:
    """The AI of one window over ``model``; ``allow_external_members`` is the user's leave (a
    command-line option) to load member weights outside a manifest's folder."""

    status = Signal(str, int)
    progress = Signal(object)
    progress_text = Signal(str)
    ensemble_changed = Signal(object)
    slice_received = Signal(str, int)

    def __init__(
        self,
        model: Model,
        tasks: Tasks,
        ensemble: Path | None,
        prediction_cache: PredictionCache | None = None,
        allow_external_members: bool = False,
    ):
        self.model, self.tasks = model, tasks
        self.ensemble = ensemble
        self.prediction_cache = prediction_cache
        self.allow_external_members = allow_external_members
        self.runner: AiRunner | None = None
        self.job: AiJob | None = None
        self._info: tuple[int, str] | None = None  # (members, fingerprint)
        self._default: tuple[str | None] | None = None  # (remembered,): look the default up
        self._finding: asyncio.Task | None = None  # the default ensemble being looked up
        self._generation = 0  # of the ensemble: one more each time another is chosen
        self._partials: dict[str, Prediction] = {}  # of stopped runs
        self._pending: dict[str, Prediction] = {}  # with slices not drawn yet
        self._runs: set[asyncio.Future] = set()  # one per run going, done when it has ended
        self.refresh_timer = tasks.timer(AI_REFRESH_MS, self._flush)
        self.priority_timer = tasks.timer(PRIORITY_DELAY_MS, self._priority_slice)
        model.slice_changed.connect(self._follow_slice)
        model.case_changed.connect(self._follow_case)
        model.dataset_changed.connect(self._read_index)

    # -- ensemble ------------------------------------------------------------------------------
    def find_ensemble(self, remembered: str | None) -> None:
        """Use the default ensemble (``default_ensemble``: the registry's files and imports, a
        quarter of a second), looked up in a worker when first needed: at launch nothing waits
        for it, and a window that opens no data set and runs no AI never pays for it."""
        self._default = (remembered,)

    async def _find(self, remembered: str | None) -> None:
        found = await self.tasks.run_in_worker(default_ensemble, None, remembered)
        if self.ensemble is None:  # the user did not choose one meanwhile
            self.ensemble = found

    async def ready(self) -> Path | None:
        """The ensemble to run, once the default one has been looked up."""
        if self._default is not None and self._finding is None:
            self._finding = self.tasks.spawn(self._find(*self._default))
        if self._finding is not None and not self._finding.done():
            await asyncio.shield(self._finding)
        return self.ensemble

    def set_ensemble(self, path: str | Path) -> bool:
        """Use another ensemble from the next run on; refused (False) while the AI runs."""
        if self.job is not None:
            self.status.emit("Stop the AI (Esc) before choosing another ensemble.", 0)
            return False
        if self.runner is not None:
            self.runner.close()
        self.ensemble, self.runner, self._info = Path(path), None, None
        self._generation += 1  # a cached prediction on its way is the old ensemble's
        self._partials.clear()
        self.model.drop_predictions()
        self.ensemble_changed.emit(self.ensemble)
        self.status.emit(f"Ensemble: {self.ensemble}", 5000)
        self._read_index()
        self._follow_case()  # the case on screen: the new ensemble's cached prediction, if any
        return True

    async def _ensemble(self) -> tuple[int, str]:
        """Members and fingerprint of the current ensemble (its manifest read in a worker)."""
        if self._info is None:
            if await self.ready() is None:
                raise StrokeLensError(
                    "No ensemble to run: choose a manifest with AI ▸ Choose ensemble…"
                )
            self._info = await self.tasks.run_in_worker(
                _ensemble_info, self.ensemble, self.allow_external_members
            )
        return self._info

    async def _fingerprint(self) -> str | None:
        """The cache fingerprint of the ensemble, None without a cache or a usable ensemble."""
        if self.prediction_cache is None or await self.ready() is None:
            return None
        try:
            return (await self._ensemble())[1]
        except StrokeLensError:
            return None  # "Run AI" will say why

    def _read_index(self) -> None:
        if self.prediction_cache is not None and self.model.dataset is not None:
            self.tasks.spawn(self._apply_index(self.model.dataset))

    async def _apply_index(self, dataset) -> None:
        """Mark each case of ``dataset`` with what the cache holds for it (a worker reads it)."""
        generation = self._generation
        fingerprint = await self._fingerprint()
        if fingerprint is None or self.model.dataset is not dataset:
            return
        refs = [entry.ref for entry in self.model.entries]
        index = await self.tasks.run_in_worker(self.prediction_cache.index, fingerprint, refs)
        if self.model.dataset is not dataset or generation != self._generation:
            return  # another data set opened, or another ensemble was chosen, meanwhile
        for entry in self.model.entries:
            found = index.get(entry.key)
            if found is not None:
                self.model.set_cached(entry.key, found.done, found.slices, found.core_ml)
            elif entry.cached or entry.partial:  # of another ensemble
                self.model.set_cached(entry.key)

    async def _load_cached(self, case) -> None:
        """Show the cached prediction of ``case``; a partial one is also kept to resume from."""
        generation = self._generation
        fingerprint = await self._fingerprint()
        if fingerprint is None:
            return
        prediction = await self.tasks.run_in_worker(
            self.prediction_cache.get, fingerprint, case, True
        )
        model, key = self.model, case.key
        if generation != self._generation:
            return  # another ensemble was chosen meanwhile
        if key in model.predictions or (self.job is not None and self.job.running == key):
            return  # the AI got there first
        try:
            entry = model.entries[model.index_of(key)]
        except KeyError:
            return  # another data set opened meanwhile
        if prediction is None:
            if entry.cached:
                model.set_cached(key)  # the index was wrong: the file is gone or unusable
            return
        if not prediction.complete:
            self._partials.setdefault(key, prediction)
        model.set_prediction(key, prediction)

    async def _kept_partial(self, key: str) -> Prediction | None:
        """A partial prediction of case ``key`` an earlier session left in the cache."""
        fingerprint = await self._fingerprint()
        if fingerprint is None:
            return None
        prediction = await self.tasks.run_in_worker(
            self.prediction_cache.get, fingerprint, self._ref(key), True
        )
        return None if prediction is None or prediction.complete else prediction

    # -- runs ----------------------------------------------------------------------------------
    def pending(self, key: str) -> bool:
        """The AI still has case ``key`` to do in the run going."""
        return self.job is not None and key in (self.job.running, *self.job.keys)

    def cases_left(self) -> int:
        """Cases the run going has still to do, the one running included (0: none going)."""
        job = self.job
        if job is None or job.stopped:
            return 0
        return len(job.keys) + (job.running is not None)

    def cancel(self) -> None:
        if self.job is not None:
            self.job.stop()
            self.progress_text.emit("Stopping the AI…")

    async def stop(self, timeout_s: float = 30.0) -> None:
        """Stop the run and wait until it has ended, the running case's finished slices kept
        (by the engine process, in the cache: it writes them before it answers the stop)."""
        self.cancel()
        if self._runs:
            await asyncio.wait(list(self._runs), timeout=timeout_s)

    async def run(self, keys: list[str]) -> bool:
        """Predict the cases ``keys`` (those without a finished prediction) in the background.

        The case on screen goes first, and its slice on screen first; results are drawn as
        they arrive. A call while a run is going adds its cases to that run. False when the
        ensemble cannot be used.
        """
        model = self.model
        keys = [k for k in keys if not model.predicted(k)]
        if not keys:
            self.status.emit("The AI has already predicted these cases.", 5000)
            return True
        try:
            members, _ = await self._ensemble()
        except StrokeLensError as exc:
            self.tasks.report(exc, act=True)
            return False
        work = {k: members * (model.entries[model.index_of(k)].n_slices or 1) for k in keys}
        if self.job is not None and not self.job.stopped:
            self.job.add(keys, work)
            self.progress.emit(self.job)
            return True
        if self.runner is None:
            cache = self.prediction_cache
            self.runner = AiRunner(
                self.tasks.loop,
                self.ensemble,  # type: ignore[arg-type]
                cache_root=None if cache is None else cache.root,
                allow_external_members=self.allow_external_members,
            )
        runner = self.runner
        job = self.job = AiJob([], {}, partials=self._partials)
        job.add(keys, work)
        if model.case is not None:
            job.prefer(model.case.key)
        self.progress_text.emit(f"Loading the ensemble {self.ensemble.name}…")  # type: ignore[union-attr]
        ended = self.tasks.loop.create_future()
        self._runs.add(ended)
        try:
            await runner.load()
            await runner.run(
                job,
                self._ref,
                self._priority_of,
                self._on_slice,
                self._on_progress,
                self._on_case_done,
                self._on_case_error,
                self._kept_partial,
            )
        except StrokeLensError as exc:
            self.tasks.report(exc, act=True)
            return False
        finally:
            self._runs.discard(ended)
            ended.set_result(None)
            self._flush()
            for key in [*job.keys, *filter(None, [job.running])]:
                model.set_progress(key, None)
            if self.job is job:  # else a newer run (started after a stop) owns the progress
                self.job = None
                self.progress.emit(None)
        summary = job.summary(time.perf_counter() - job.started)
        self.status.emit(summary, 15000 if job.skipped else 8000)
        return True

    def close(self) -> None:
        """Stop the run and the engine process (the window is closing)."""
        if self.job is not None:
            self.job.stop()
        self.refresh_timer.stop()
        self.priority_timer.stop()
        if self.runner is not None:
            self.runner.close()

    # -- following the reviewer ------------------------------------------------------------------
    def _ref(self, key: str):
        return self.model.entries[self.model.index_of(key)].ref

    def _priority_of(self, key: str) -> int | None:
        case = self.model.case
        return self.model.slice if case is not None and case.key == key else None

    def _follow_slice(self, _z: int) -> None:
        if self.job is not None:
            self.priority_timer.start()

    def _priority_slice(self) -> None:
        """The reviewer stays on a slice the AI has not done yet: do it next. (Only once the
        reviewer stays: each request discards the member-batch running, so following every
        slice of a scroll would keep the AI restarting.)"""
        job, case, z = self.job, self.model.case, self.model.slice
        if job is None or case is None or job.running != case.key:
            return
        prediction = self._pending.get(case.key) or self.model.predictions.get(case.key)
        if prediction is None or not prediction.done[z]:
            job.request_priority(z)

    def _follow_case(self) -> None:
        """A case opened: the AI does it next if it is queued, and a cached prediction of it is
        looked up."""
        case = self.model.case
        if case is None:
            return
        if self.job is not None:
            self.job.prefer(case.key)
        if case.key not in self.model.predictions:
            self.tasks.spawn(self._load_cached(case))

    # -- results -------------------------------------------------------------------------------
    def _on_slice(self, key: str, z: int, prediction: Prediction) -> None:
        self._pending[key] = prediction
        if not self.refresh_timer.active:
            self.refresh_timer.start()
        self.slice_received.emit(key, z)

    def _on_progress(self, done: int, _total: int) -> None:
        if self.job is not None:
            self.job.set_case_progress(done)
            if not self.refresh_timer.active:
                self.refresh_timer.start()

    def _flush(self) -> None:
        """Draw the slices that arrived since the last flush and show the progress."""
        pending, self._pending = self._pending, {}
        for key, prediction in pending.items():
            self.model.set_prediction(key, prediction)
        job = self.job
        if job is not None and job.running is not None:
            work = job.work[job.running]
            self.model.set_progress(job.running, min(job.case_work / work, 1.0))
            self.progress.emit(job)

    def _on_case_done(self, key: str, prediction: Prediction) -> None:
        """A finished case (the AI process has written it to the prediction cache)."""
        self._pending.pop(key, None)
        self.model.set_prediction(key, prediction)
        if self.job is not None:
            self.progress.emit(self.job)

    def _on_case_error(self, key: str, exc: Exception) -> None:
        self.model.set_progress(key, None)
        self.model.set_error(key, str(exc))
        self.status.emit(f"AI skipped {key}: {exc}", 10000)
