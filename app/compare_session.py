"""When the compare dock is recomputed: after mask changes (debounced, while it is visible) and on
request, in a worker, the newest request winning.

``update()`` returns once the dock shows the comparison of the masks as they are: a request made
meanwhile (the timer after a mask change, another call) supersedes it and is waited for, so the
dock never ends a request with a stale or an empty table.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any

from PySide6.QtCore import QTimer
from PySide6.QtWidgets import QDockWidget

from strokelens.app.compare_panel import ComparePanel
from strokelens.app.model import Model

#: The compare table is recomputed this long after the last mask change (a brush stroke, say).
COMPARE_DELAY_MS = 250


class CompareSession:
    """Feeds ``panel`` (inside ``dock``) with the comparison of ``model``'s case on screen.

    ``spawn`` runs a coroutine on the window's loop (reporting its failure), ``run_in_worker``
    a function in its thread pool, and ``ai_pending(key)`` says whether the AI still has that
    case to do.
    """

    def __init__(
        self,
        model: Model,
        panel: ComparePanel,
        dock: QDockWidget,
        spawn: Callable[[Coroutine[Any, Any, Any]], asyncio.Task],
        run_in_worker: Callable[..., asyncio.Future],
        ai_pending: Callable[[str], bool],
    ):
        self.model, self.panel, self.dock = model, panel, dock
        self._spawn, self._run_in_worker, self._ai_pending = spawn, run_in_worker, ai_pending
        self._task: asyncio.Task | None = None
        self._requests = 0
        self.timer = QTimer(dock, singleShot=True, interval=COMPARE_DELAY_MS)
        self.timer.timeout.connect(self._request)
        dock.visibilityChanged.connect(lambda _on: self.want())
        model.mask_changed.connect(self.want)

    def want(self) -> None:
        """A mask changed: recompute soon, if the dock is seen."""
        if self.dock.isVisible():
            self.timer.start()

    async def update(self) -> None:
        """Recompute now and return once the dock shows the current masks' comparison."""
        task = self._request()
        while True:
            await asyncio.wait([task])  # errors are reported by spawn, once
            if task is self._task:
                return
            task = self._task

    def _request(self) -> asyncio.Task:
        self.timer.stop()  # this request covers the pending mask change
        self._requests += 1
        self._task = self._spawn(self._compare_case_on_screen(self._requests))
        return self._task

    async def _compare_case_on_screen(self, request: int) -> None:
        from strokelens.core.comparison import compare_case

        case = self.model.case
        if case is None:
            self.panel.set_message("No case open.")
            return
        prediction = self.model.predictions.get(case.key)
        if prediction is None or not prediction.complete:
            self.panel.set_message(
                f"{case.key}: the AI is running; the comparison follows when it is done."
                if self._ai_pending(case.key)
                else f"{case.key}: no AI prediction yet. AI ▸ Run AI on this case (Ctrl+R)."
            )
            return
        corrected = self.model.corrected.get(case.key)
        comparison = await self._run_in_worker(compare_case, prediction, case.mask, corrected)
        if request == self._requests:  # else a newer request shows its own
            self.panel.show_comparison(comparison)
