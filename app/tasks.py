"""Background work of the window: coroutines on the loop, functions in worker threads, timers, and
the one place their failures go.

Qt-free (the loop is qasync's in the app, any asyncio loop in tests), so the controllers built on
it (``case_loader``, ``ai_session``) can be tested without a window. A failure is never dropped:
it is written to ``app.log`` (in a worker) and emitted on ``failed``, which the window shows in
its status bar, or in its one dialog when the user must act.
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import traceback
from collections.abc import Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from psygnal import Signal

from strokelens.core import userdirs
from strokelens.core.errors import StrokeLensError


class Tasks:
    """Spawned coroutines and the worker pools; ``failed(exc, act)`` reports every failure."""

    failed = Signal(object, bool)

    def __init__(self, loop: asyncio.AbstractEventLoop, workers: int = 2):
        self.loop = loop
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="strokelens")
        self._pools = [self._executor]
        self._tasks: set[asyncio.Task] = set()

    def spawn(self, coroutine: Coroutine[Any, Any, Any]) -> asyncio.Task:
        """Run a coroutine on the loop; its failure is reported, never silently dropped."""
        task = self.loop.create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task) -> None:
        self._tasks.discard(task)
        if task.cancelled() or task.exception() is None:
            return
        exc = task.exception()
        self.report(exc)
        if not isinstance(exc, StrokeLensError):
            sys.excepthook(type(exc), exc, exc.__traceback__)

    def run_in_worker(self, function: Callable[..., Any], *args: Any) -> asyncio.Future:
        return self.loop.run_in_executor(self._executor, function, *args)

    def pool(self, name: str) -> ThreadPoolExecutor:
        """A one-thread pool of its own (the 4D series: a slow one never delays the next case);
        shut down with the others."""
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=name)
        self._pools.append(pool)
        return pool

    def report(self, exc: BaseException, act: bool = False) -> None:
        """Log ``exc`` (with its traceback when it is a bug) and emit ``failed``; ``act``: the
        user must do something about it (the window then opens its dialog)."""
        detail = str(exc)
        if not isinstance(exc, StrokeLensError):
            detail = "".join(traceback.format_exception(exc))
        with contextlib.suppress(RuntimeError):  # closing: no workers left
            self._executor.submit(userdirs.append_log, "app.log", detail)
        self.failed.emit(exc, act)

    def timer(self, delay_ms: int, callback: Callable[[], Any]) -> Timer:
        return Timer(self.loop, delay_ms, callback)

    async def sleep(self, seconds: float) -> None:
        """``asyncio.sleep`` on this loop, which also works while Qt's own event processing runs
        the task (qasync: no running asyncio loop then, and ``asyncio.sleep`` raises)."""
        done = self.loop.create_future()
        handle = self.loop.call_later(seconds, lambda: done.done() or done.set_result(None))
        try:
            await done
        finally:
            handle.cancel()

    async def idle(self) -> None:
        """Wait until every task started so far has finished (tests, screenshots)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        for pool in self._pools:
            pool.shutdown(wait=False, cancel_futures=True)


class Timer:
    """A single-shot timer on the loop: ``start`` (re)arms it, ``callback`` runs once it fires."""

    def __init__(self, loop: asyncio.AbstractEventLoop, delay_ms: int, callback: Callable[[], Any]):
        self.loop, self.delay_s, self.callback = loop, delay_ms / 1000, callback
        self._handle: asyncio.TimerHandle | None = None

    @property
    def active(self) -> bool:
        return self._handle is not None

    def start(self) -> None:
        self.stop()
        self._handle = self.loop.call_later(self.delay_s, self._fire)

    def stop(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _fire(self) -> None:
        self._handle = None
        self.callback()
