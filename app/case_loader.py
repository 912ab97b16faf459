"""Opening data sets and cases without blocking the interface; Qt-free.

Listing a data set, reading a case and reading its 4D series run in workers (``Tasks``); results
come back on the loop, where the model is updated and its events redraw the views. A newer case
request supersedes an older one still loading (generation counter), and the cases around the
current one are read ahead, so stepping through a data set rarely waits for the disk.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Callable
from pathlib import Path

from psygnal import Signal

from strokelens.app.model import Model, PreparedCase, load_perfusion, prepare_case
from strokelens.app.tasks import Tasks
from strokelens.core.errors import DataError

#: Cases kept in memory (the current one, the ones read ahead, a few recent).
CACHED_CASES = 4
#: The 4D series of a case is read once the case has been on screen this long.
SERIES_DELAY_MS = 300


def scan_dataset(path: str | Path):
    """The data set under ``path`` and each case's slice count from its CT header (worker)."""
    from strokelens.core.dataset import open_dataset
    from strokelens.core.nifti import open_image, spatial_shape

    dataset = open_dataset(path)
    slices = {}
    for ref in dataset:
        if "CT" in ref.files:
            try:
                slices[ref.key] = spatial_shape(open_image(ref.files["CT"]))[0]
            except DataError:
                pass  # the case shows its error when opened
    return dataset, slices


def read_case(ref) -> PreparedCase:
    """Load and prepare one case (worker)."""
    from strokelens.core.dataset import load_ref

    return prepare_case(load_ref(ref))


class CaseLoader:
    """Opens data sets and shows cases on ``model``.

    ``neighbour(step)`` is the entry ``step`` rows away from the current one among those the
    case browser shows (its filter decides), ``visible()`` all of them. Events: ``status(text,
    ms)`` (0 ms: until replaced; empty text clears), ``opened(path)`` once a data set is shown,
    ``refused()`` when the case asked for could not be shown (the browser reselects the current).
    """

    status = Signal(str, int)
    opened = Signal(str)
    refused = Signal()

    def __init__(
        self,
        model: Model,
        tasks: Tasks,
        neighbour: Callable[[int], int | None],
        visible: Callable[[], list[int]],
    ):
        self.model, self.tasks = model, tasks
        self._neighbour, self._visible = neighbour, visible
        self._cases: OrderedDict[str, asyncio.Future] = OrderedDict()
        self._generation = 0

    async def open_dataset(self, path: str | Path) -> bool:
        """List the data set in a worker, then show its first case; False if it cannot be read."""
        path = str(Path(path).expanduser().resolve())
        self.status.emit(f"Opening {path}…", 0)
        try:
            dataset, slices = await self.tasks.run_in_worker(scan_dataset, path)
        except DataError as exc:
            self.tasks.report(exc, act=True)
            return False
        self.forget()
        self._generation += 1
        self.model.set_dataset(dataset, slices)
        self.opened.emit(path)
        self.status.emit(f"{len(dataset)} cases in {path}", 5000)
        shown = self._visible()
        return await self.show_case(shown[0]) if shown else True

    async def open_demo(self, folder: Path) -> bool:
        """Open the demo data set, generating it first (in a worker, with progress) if missing."""
        from strokelens.core import demo

        if not demo.demo_ready(folder):
            done = 0

            def progress(_path: Path) -> None:
                self.tasks.loop.call_soon_threadsafe(step)

            def step() -> None:
                nonlocal done
                done += 1
                text = (
                    f"Generating the demo data set in {folder}: {done} / {demo.DEMO_CASES} cases…"
                )
                self.status.emit(text, 0)

            self.status.emit(f"Generating the demo data set in {folder}…", 0)
            try:
                await self.tasks.run_in_worker(demo.generate_demo, folder, progress)
            except DataError as exc:
                self.tasks.report(exc, act=True)
                return False
        return await self.open_dataset(folder)

    def forget(self) -> None:
        """Drop the cases held in memory (a new data set; benchmarks of cold reads)."""
        self._cases.clear()

    def _case_future(self, index: int) -> asyncio.Future:
        """The (possibly still running) load of entry ``index``; kept in a small LRU."""
        entry = self.model.entries[index]
        future = self._cases.get(entry.key)
        if future is None or (future.done() and future.exception() is not None):
            future = self.tasks.run_in_worker(read_case, entry.ref)
            future.add_done_callback(lambda f, ref=entry.ref: self._read(ref, f))
            self._cases[entry.key] = future
        self._cases.move_to_end(entry.key)
        while len(self._cases) > CACHED_CASES:  # the current case and read-aheads are newest
            self._cases.popitem(last=False)
        return future

    def _read(self, ref, future: asyncio.Future) -> None:
        """A case read (shown or read ahead): the worklist learns whether it can be read."""
        if future.cancelled():
            return
        exc = future.exception()  # also marks it retrieved
        if exc is not None and not isinstance(exc, DataError):
            return  # a bug: show_case reports it
        entries = self.model.entries
        try:
            index = self.model.index_of(ref.key)
        except KeyError:
            return  # another data set opened meanwhile
        if entries[index].ref is ref:
            self.model.set_error(ref.key, None if exc is None else str(exc))

    async def show_case(self, index: int) -> bool:
        """Show entry ``index``; a later request wins over this one if it is still loading."""
        self._generation += 1
        generation = self._generation
        entry = self.model.entries[index]
        future = self._case_future(index)
        if not future.done():
            self.status.emit(f"Loading {entry.key}…", 0)
        try:
            prepared = await future
        except DataError as exc:
            if generation == self._generation:
                self.tasks.report(exc)
                self.refused.emit()
            return False
        if generation != self._generation:
            return False
        self.status.emit("", 0)  # "Loading…" goes first: showing the case shows its problems
        self.model.set_case(index, prepared)
        for step in (1, -1):  # read ahead while the reviewer looks at this one
            neighbour = self._neighbour(step)
            if neighbour is not None:
                self._case_future(neighbour)
        return True

    def step_case(self, step: int) -> None:
        index = self._neighbour(step)
        if index is not None:
            self.tasks.spawn(self.show_case(index))


class SeriesLoader:
    """Reads the current case's 4D series once the reviewer stays on it (not while paging
    through) and while ``wanted()`` (the curve dock is seen); ``message(text)`` says what the
    curve dock should show meanwhile."""

    message = Signal(str)

    def __init__(self, model: Model, tasks: Tasks, wanted: Callable[[], bool]):
        self.model, self.tasks, self._wanted = model, tasks, wanted
        self._pool = tasks.pool("series")
        self._loading: str | None = None
        self.closed = False  # the window is closing: nothing more to read
        self.timer = tasks.timer(SERIES_DELAY_MS, self._start)
        model.case_changed.connect(self.want)

    def want(self) -> None:
        """The timer restarts on every case change."""
        case = self.model.case
        if case is not None and case.has_perfusion and not self.closed:
            self.timer.start()

    def _start(self) -> None:
        case = self.model.case
        if (
            case is not None
            and case.has_perfusion
            and self._wanted()
            and self.model.perfusion is None
            and self._loading != case.key
        ):
            self.tasks.spawn(self._load(case))

    async def _load(self, case) -> None:
        self._loading = case.key
        self.message.emit(f"Reading the 4D series of {case.key}…")
        try:
            series = await self.tasks.loop.run_in_executor(self._pool, load_perfusion, case)
        except (DataError, ValueError, OSError) as exc:
            self.message.emit(f"4D series unusable: {exc}")
            return
        finally:
            if self._loading == case.key:
                self._loading = None
        self.model.set_perfusion(series)  # dropped by the model if the case changed meanwhile

    async def settled(self, timeout_s: float = 20.0) -> None:
        """Wait for the series of the case on screen, when it has one and it is wanted
        (screenshots: what a reviewer sees after a moment)."""
        case = self.model.case
        if case is None or not case.has_perfusion or not self._wanted():
            return
        deadline = self.tasks.loop.time() + timeout_s
        while self.model.perfusion is None and self.tasks.loop.time() < deadline:
            await asyncio.sleep(0.05)
            await self.tasks.idle()
