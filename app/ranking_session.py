"""The worklist's doubt scores (``core.ranking``), computed off the GUI thread; Qt-free.

A case gets its score once a complete prediction of it is known: one in ``Model.predictions``
(the AI finished it, or the case was opened and its cached prediction shown), or one the
prediction cache's index says waits on disk (``Entry.cached``), which is then read and scored on
this session's own worker thread, one case at a time, and dropped. A case without a complete
prediction has no score (None, a blank cell); a new prediction of a case (another run, another
ensemble) is scored again, and a score computed for a prediction since replaced is dropped.
The reviewer picks the strategy (AI ▸ Rank cases by, remembered); a change scores every case
again and drops scores still on their way under the old one.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

from psygnal import Signal

from strokelens.app.model import Entry, Model
from strokelens.app.tasks import Tasks
from strokelens.core import ranking
from strokelens.core.errors import StrokeLensError

if TYPE_CHECKING:
    from strokelens.app.ai_session import AiSession
    from strokelens.core.dataset import CaseRef
    from strokelens.core.prediction import Prediction
    from strokelens.core.prediction_store import PredictionCache

#: The source of a score read from the prediction cache (else the ``Prediction`` scored).
CACHED = object()


def _score(prediction: Prediction | None, strategy: str) -> float | None:
    """``prediction``'s score (worker); None without one, or where the strategy does not apply
    (focal-vs-CE disagreement of an ensemble with one loss)."""
    if prediction is None or not prediction.complete:
        return None
    try:
        return ranking.score(prediction, strategy)
    except ValueError:
        return None


def _cached_score(
    cache: PredictionCache, fingerprint: str, ref: CaseRef, strategy: str
) -> float | None:
    """The score of the complete prediction the cache holds for ``ref`` (worker)."""
    return _score(cache.get(fingerprint, ref), strategy)


def _fingerprint(path: Path, allow_external_members: bool) -> str:
    """The cache fingerprint of the ensemble manifest at ``path`` (worker)."""
    from strokelens.core.manifest import read_manifest
    from strokelens.core.prediction_store import manifest_fingerprint

    return manifest_fingerprint(read_manifest(path, allow_external_members))


class DoubtScores:
    """Keeps ``Entry.doubt`` of ``model``'s cases under ``strategy``, from ``ai``'s predictions
    and prediction cache; ``strategy_changed(name)`` after ``set_strategy``."""

    strategy_changed = Signal(str)

    def __init__(self, model: Model, tasks: Tasks, ai: AiSession, strategy: str = ranking.DEFAULT):
        _check(strategy)
        self.model, self.tasks, self.ai, self.strategy = model, tasks, ai, strategy
        self._pool = tasks.pool("ranking")
        self._sources: dict[str, object] = {}  # case key -> what its score comes from
        self._fingerprints: dict[Path, str | None] = {}
        model.entry_changed.connect(self._entry_changed)
        model.dataset_changed.connect(self._dataset_changed)
        ai.ensemble_changed.connect(self._ensemble_changed)

    def set_strategy(self, strategy: str) -> None:
        """Score every case with ``strategy`` (a ``core.ranking.STRATEGIES`` name) from now on."""
        _check(strategy)
        if strategy == self.strategy:
            return
        self.strategy = strategy
        for key in self._sources:
            self.model.set_doubt(key, None)
        self._sources.clear()  # a score of the old strategy still on its way is dropped
        self.strategy_changed.emit(strategy)
        for index in range(len(self.model.entries)):
            self._entry_changed(index)

    def _dataset_changed(self) -> None:
        self._sources.clear()

    def _source(self, entry: Entry) -> object | None:
        prediction = self.model.predictions.get(entry.key)
        if prediction is not None:
            return prediction if prediction.complete else None
        return CACHED if entry.cached else None

    def _entry_changed(self, index: int) -> None:
        entry = self.model.entries[index]
        source = self._source(entry)
        if source is None:
            if self._sources.pop(entry.key, None) is not None:
                self.model.set_doubt(entry.key, None)
            return
        if self._sources.get(entry.key) is not source:
            self._sources[entry.key] = source
            self.tasks.spawn(self._compute(entry.ref, source))

    def _ensemble_changed(self, _path: object) -> None:
        """Scores read from the cache were the old ensemble's; its index, read again, says
        which cases the new one has."""
        for key in [k for k, source in self._sources.items() if source is CACHED]:
            del self._sources[key]
            self.model.set_doubt(key, None)

    async def _compute(self, ref: CaseRef, source: object) -> None:
        dataset, strategy = self.model.dataset, self.strategy
        if source is CACHED:
            value = await self._from_cache(ref, strategy)
        else:
            value = await self._run(_score, source, strategy)
        # the same source may be queued again under a new strategy: the name must match too
        current = self.model.dataset is dataset and self._sources.get(ref.key) is source
        if current and strategy == self.strategy:
            self.model.set_doubt(ref.key, value)

    async def _from_cache(self, ref: CaseRef, strategy: str) -> float | None:
        cache, ensemble = self.ai.prediction_cache, await self.ai.ready()  # looked up if need be
        if cache is None or ensemble is None:
            return None
        if ensemble not in self._fingerprints:
            try:
                found = await self._run(_fingerprint, ensemble, self.ai.allow_external_members)
            except StrokeLensError:
                found = None  # "Run AI" says why
            self._fingerprints[ensemble] = found
        fingerprint = self._fingerprints[ensemble]
        if fingerprint is None:
            return None
        return await self._run(_cached_score, cache, fingerprint, ref, strategy)

    def _run(self, function, *args) -> asyncio.Future:
        return self.tasks.loop.run_in_executor(self._pool, function, *args)


def _check(strategy: str) -> None:
    if strategy not in ranking.STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; choose from {sorted(ranking.STRATEGIES)}")
