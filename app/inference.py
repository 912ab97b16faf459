"""Run AI in the background: the ensemble engine in its own thread, results back on the loop.

Qt-free. ``AiRunner`` owns one :class:`~strokelens.core.engine.Engine`, built on first use inside
its worker thread (so torch is imported there, never while the window starts), and runs one case
at a time. ``AiJob`` is the queue of one "Run AI" request and its progress: the GUI reorders it
(the case on screen goes first), asks for another priority slice (the one the reviewer moved
to) or stops it; the runner's cancel flag reads the job, so each request takes effect within one
member-batch of the engine.

A priority change is a cancel plus a resume: the engine returns the partial prediction, which
is completed from the new slice on without running finished slices again. A stopped case keeps
its partial prediction for the next run (``AiJob.partials``).
"""

from __future__ import annotations

import asyncio
import os
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from strokelens.core.case import Case
    from strokelens.core.engine import Engine
    from strokelens.core.prediction import Prediction

SliceCallback = Callable[[str, int, "Prediction"], None]  # case key, slice, growing prediction
ProgressCallback = Callable[[int, int], None]  # member-slices done in this case, total


def default_threads() -> int:
    """Torch threads for the app: all cores but one, which stays with the interface."""
    return max(1, (os.cpu_count() or 1) - 1)


@dataclass
class AiJob:
    """One "Run AI" request: cases still to do, progress over all of them, stop/priority flags.

    ``work`` counts member-slices (members x slices) per case; ``done_work`` the finished ones
    of finished cases, ``case_work`` those of the case running now.
    """

    keys: list[str]
    work: dict[str, int]  # case key -> members x slices
    started: float = field(default_factory=time.perf_counter)
    running: str | None = None
    finished: list[str] = field(default_factory=list)
    done_work: int = 0
    case_work: int = 0
    stop_event: threading.Event = field(default_factory=threading.Event)
    priority_request: int | None = None
    partials: dict[str, Prediction] = field(default_factory=dict)
    _rate_start: tuple[float, int] | None = None  # (time, work) when the first result came

    # -- queue ---------------------------------------------------------------------------------
    def add(self, keys: list[str], work: dict[str, int]) -> None:
        """Append cases not yet queued, running or finished."""
        for key in keys:
            if key not in self.keys and key != self.running and key not in self.finished:
                self.keys.append(key)
                self.work[key] = work[key]

    def prefer(self, key: str) -> None:
        """Move a queued case to the front (the reviewer opened it)."""
        if key in self.keys:
            self.keys.remove(key)
            self.keys.insert(0, key)

    def next_key(self) -> str | None:
        if self.running is not None:
            self.finished.append(self.running)
            self.done_work += self.work[self.running]
            self.running = None
        self.case_work = 0
        self.priority_request = None
        if self.stopped or not self.keys:
            return None
        self.running = self.keys.pop(0)
        return self.running

    # -- flags read by the engine's cancel check (worker thread) -------------------------------
    def stop(self) -> None:
        self.stop_event.set()

    @property
    def stopped(self) -> bool:
        return self.stop_event.is_set()

    def request_priority(self, z: int) -> None:
        """Run slice ``z`` of the running case next (it is on screen and not done yet)."""
        self.priority_request = z

    def should_interrupt(self) -> bool:
        return self.stopped or self.priority_request is not None

    # -- progress ------------------------------------------------------------------------------
    @property
    def total_work(self) -> int:
        return sum(self.work.values())

    @property
    def completed_work(self) -> int:
        return self.done_work + self.case_work

    def set_case_progress(self, done: int, now: float | None = None) -> None:
        self.case_work = done
        if self._rate_start is None:  # the rate excludes loading the engine and the first case
            self._rate_start = (time.perf_counter() if now is None else now, self.completed_work)

    def fraction(self) -> float:
        total = self.total_work
        return 1.0 if total == 0 else min(self.completed_work / total, 1.0)

    def eta_s(self, now: float | None = None) -> float | None:
        """Seconds left at the rate since the first result; None until a rate is known."""
        if self._rate_start is None:
            return None
        now = time.perf_counter() if now is None else now
        t0, w0 = self._rate_start
        rate = (self.completed_work - w0) / max(now - t0, 1e-9)
        if rate <= 0:
            return None
        return (self.total_work - self.completed_work) / rate


def format_eta(seconds: float | None) -> str:
    if seconds is None:
        return "estimating…"
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds} s left"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes} min {seconds:02d} s left"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min left"


class AiRunner:
    """One ensemble run on cases in one worker thread (a newer run waits for the older)."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        manifest_path: str | Path,
        threads: int | None = None,
        precision: str = "auto",
    ):
        self.loop = loop
        self.manifest_path = Path(manifest_path)
        self.threads = threads or default_threads()
        self.precision = precision
        self.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ai")
        self._engine: Engine | None = None

    def _engine_now(self) -> Engine:
        if self._engine is None:
            from strokelens.core.engine import Engine

            self._engine = Engine.from_manifest(
                self.manifest_path, threads=self.threads, precision=self.precision
            )
        return self._engine

    async def load(self) -> Engine:
        """The engine, built in the worker on first call (imports torch, reads the weights)."""
        return await self.loop.run_in_executor(self.executor, self._engine_now)

    async def run_in_thread(self, function: Callable, *args):
        """Run ``function`` in the AI thread (reading a case between predictions, say)."""
        return await self.loop.run_in_executor(self.executor, function, *args)

    async def predict(
        self,
        case: Case,
        job: AiJob,
        priority: int | None,
        on_slice: SliceCallback,
        on_progress: ProgressCallback,
    ) -> Prediction:
        """Predict ``case``, calling back on the loop per slice and per member-batch.

        Raises :class:`~strokelens.core.engine.Cancelled` (holding the partial prediction) when
        ``job`` is stopped or asks for another priority slice.
        """
        call = self.loop.call_soon_threadsafe
        resume = job.partials.pop(case.key, None)

        def work() -> Prediction:
            engine = self._engine_now()
            return engine.predict(
                case,
                priority_slice=priority,
                on_slice=lambda r: call(on_slice, case.key, r.z, r.prediction),
                progress=lambda done, total: call(on_progress, done, total),
                cancel=job.should_interrupt,
                resume=resume,
            )

        return await self.loop.run_in_executor(self.executor, work)

    async def run(
        self,
        job: AiJob,
        read_case: Callable[[str], Awaitable[Case]],
        priority_of: Callable[[str], int | None],
        on_slice: SliceCallback,
        on_progress: ProgressCallback,
        on_case_done: Callable[[Case, Prediction], None],
        on_case_error: Callable[[str, Exception], None],
    ) -> None:
        """Work through ``job``'s queue until it is empty or stopped.

        A case that cannot be read is reported through ``on_case_error`` and skipped; a priority
        request resumes the running case from the requested slice; a stop keeps the partial
        prediction in ``job.partials``.
        """
        from strokelens.core.engine import Cancelled
        from strokelens.core.errors import DataError

        while (key := job.next_key()) is not None:
            try:
                case = await read_case(key)
            except DataError as exc:
                on_case_error(key, exc)
                continue
            priority = priority_of(key)
            while True:
                try:
                    prediction = await self.predict(case, job, priority, on_slice, on_progress)
                    break
                except Cancelled as exc:
                    job.partials[key] = exc.prediction
                    if job.stopped:
                        return
                    priority, job.priority_request = job.priority_request, None
            on_case_done(case, prediction)

    def shutdown(self) -> None:
        self.executor.shutdown(wait=False, cancel_futures=True)
