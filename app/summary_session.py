"""The current case's ``StrokeSummary``, kept up to date off the GUI thread; Qt-free.

The mismatch panel, the montage and the report all read the one summary made here
(``core.stroke_summary``). A case the reviewer stays on (``SETTLE_S``) is measured once
(``measure_case``: Tmax volumes and mask, the midline, the threshold core: ~0.5 s on 22 slices)
in a worker, kept for the last ``KEPT_MEASURES`` cases, and its masks become the ``tmax6`` and
``rcbf30`` layers. Each change of the core (a paint stroke, an AI update, a correction loaded)
re-summarizes only the core, also in a worker: one run at a time, the latest state next, so a
burst of AI updates costs one run each.

``changed()`` fires when ``summary`` or ``current`` changes. ``current`` is False while the
summary on hand is not of the masks on screen (being remade, or none yet): readers show no
verdict then.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from typing import TYPE_CHECKING

import numpy as np
from psygnal import Signal

from strokelens.app.model import AiCore, Model
from strokelens.app.tasks import Tasks
from strokelens.core.metrics import volume_ml
from strokelens.core.stroke_summary import CoreKind, CoreOrigin

if TYPE_CHECKING:
    from strokelens.core.case import Case
    from strokelens.core.prediction import Prediction
    from strokelens.core.stroke_summary import CaseMeasures, StrokeSummary

#: Cases whose measures (and layers) are kept: the current one and the last few visited.
KEPT_MEASURES = 4
#: A case not measured yet is measured once the reviewer stays on it this long (as long as the
#: 4D series waits, ``case_loader.SERIES_DELAY_MS``): paging through cases would start a
#: half-second worker per case passed, each competing with reading the next.
SETTLE_S = 0.3


def summarize(
    case: Case,
    measured: CaseMeasures,
    prediction: Prediction | None,
    corrected: np.ndarray | None,
    origin: CoreOrigin,
) -> tuple[StrokeSummary, float | None]:
    """The summary and the ground truth's volume (mL, None without one) of ``case`` (worker)."""
    from strokelens.core.stroke_summary import summarize_stroke

    summary = summarize_stroke(case, prediction, corrected, origin, measured)
    truth_ml = None if case.mask is None else volume_ml(case.mask, case.spacing)
    return summary, truth_ml


def _measure(case: Case) -> CaseMeasures:
    from strokelens.core.stroke_summary import measure_case

    return measure_case(case)


class SummarySession:
    """The summary of ``model``'s current case; ``summary``, ``truth_ml`` and ``current``."""

    changed = Signal()

    def __init__(self, model: Model, tasks: Tasks):
        self.model, self.tasks = model, tasks
        self.summary: StrokeSummary | None = None
        self.truth_ml: float | None = None
        self.current = False
        # case key -> (the case measured, its measures): a key of another data set, or a case
        # read again, is another case
        self._measures: OrderedDict[str, tuple[Case, CaseMeasures]] = OrderedDict()
        self._measuring: dict[str, tuple[Case, asyncio.Future]] = {}
        self._version = 0  # bumped by every change of the case or its core
        self._running: asyncio.Task | None = None
        model.case_changed.connect(self._on_case)
        model.mask_changed.connect(self.refresh)
        model.dataset_changed.connect(self._forget)

    def _forget(self) -> None:
        self._measures.clear()  # the model dropped their layers with its data set

    def _on_case(self) -> None:
        case = self.model.case
        if self.summary is not None and (case is None or self.summary.case_key != case.key):
            self.summary, self.truth_ml, self.current = None, None, False
            self.changed.emit()  # nothing of the case left is shown on this one
        self.refresh()

    def refresh(self) -> None:
        """The case or its core changed: summarize again (in a worker, one run at a time)."""
        self._version += 1
        if self.current:
            self.current = False
            self.changed.emit()
        if self.model.case is not None and self._running is None:
            self._running = self.tasks.spawn(self._run())

    async def _run(self) -> None:
        try:
            while (case := self.model.case) is not None:
                version = self._version
                if not self._known(case):
                    await self.tasks.sleep(SETTLE_S)
                    if self.model.case is not case:
                        continue
                measured = await self.measures(case)
                core = self.model.ai_core()
                if self.model.case is not case or version != self._version:
                    continue  # changed while measuring: start from what is on screen now
                prediction = None if core is None else core.prediction
                corrected = None if core is None or core.corrected is None else core.corrected
                if corrected is not None:  # the next stroke paints into the original
                    corrected = corrected.copy()
                summary, truth_ml = await self.tasks.run_in_worker(
                    summarize, case, measured, prediction, corrected, live_origin(core)
                )
                if self.model.case is case and version == self._version:
                    self.summary, self.truth_ml, self.current = summary, truth_ml, True
                    self.changed.emit()
                    return
        finally:
            self._running = None

    def _known(self, case: Case) -> bool:
        """Measured, or being measured."""
        kept, going = self._measures.get(case.key), self._measuring.get(case.key)
        return (kept is not None and kept[0] is case) or (going is not None and going[0] is case)

    async def measures(self, case: Case) -> CaseMeasures:
        """``measure_case(case)``, measured once (in a worker) and kept for ``KEPT_MEASURES``
        cases; its masks go to the model as the case's ``tmax6`` and ``rcbf30`` layers."""
        key = case.key
        kept = self._measures.get(key)
        if kept is not None and kept[0] is case:
            self._measures.move_to_end(key)
            return kept[1]
        if key not in self._measuring or self._measuring[key][0] is not case:
            self._measuring[key] = (case, self.tasks.run_in_worker(_measure, case))
        future = self._measuring[key][1]
        try:
            measured = await future
        finally:
            if self._measuring.get(key, (None, None))[1] is future:
                del self._measuring[key]
        if self.model.case is not case:
            return measured  # a case left (or another data set opened) meanwhile: not kept
        self._measures[key] = (case, measured)
        self._measures.move_to_end(key)
        threshold = None if measured.threshold is None else measured.threshold.mask
        self.model.set_measured_layers(key, {"tmax6": measured.hypoperfused, "rcbf30": threshold})
        while len(self._measures) > KEPT_MEASURES:
            old, _ = self._measures.popitem(last=False)
            self.model.set_measured_layers(old, None)
        return measured


def live_origin(core: AiCore | None) -> CoreOrigin:
    """The origin of the core on screen, as far as the viewer knows it without the project's
    audit log (the report's origin adds who and when: ``report_export``)."""
    if core is None:
        return CoreOrigin(CoreKind.NONE)
    members = None if core.prediction is None else len(core.prediction.member_names)
    return CoreOrigin(core.kind, members=members)
