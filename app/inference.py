"""Run AI in the background: the ensemble engine in its own process, results back on the loop.

Qt-free. ``AiRunner`` starts one engine process (``spawn``: torch is imported there, never in the
app, and neither its import, its threads nor its garbage touch the interface's GIL: in a thread,
loading the members stalled the interface for up to 250 ms, ``bench/gui.py``) and predicts one
case at a time there. The process reads the case from disk itself, sends each finished slice's
member probabilities back (the app keeps a mirror :class:`Prediction` that grows as they come),
and writes finished predictions to the cache.

``AiJob`` is the queue of one "Run AI" request and its progress: the GUI reorders it (the case on
screen goes first), asks for another priority slice (the one the reviewer stays on) or stops it.
The runner mirrors those requests into flags shared with the process, which the engine checks
before each member's pass over a batch, so each request takes effect within one member-batch.
A priority change is a cancel plus a resume: the process keeps the partial prediction and
completes it from the new slice on, never running a finished slice again. A stopped case keeps
its partial prediction (``AiJob.partials``, and the process's copy) for the next run, and the
process writes it to the prediction cache before it answers the stop, so quitting keeps it too:
the next session resumes from the cache (``load_partial``).

Resuming is the app's decision: "predict" carries the ``done`` flags of the partial the app holds
(None: start afresh), and the process resumes only from a partial with exactly those flags (its
own, else the cache's), else starts afresh and says so (``done`` None in "start"): the app's
mirror and the process's prediction always hold the same slices.

Protocol (tuples over a pipe). App to process: ``("predict", request, case_ref,
priority_slice, held_done)``, ``("quit",)``. Process to app, each reply led by the number of the request it
answers (0 at start-up): ``(0, "loaded", names, losses)`` once, then per case ``(request,
"start", key, shape, spacing, done)``, ``(request, "slice", z, members)``, ``(request,
"progress", done, total)`` and one of ``(request, "done", timing, device, precision)``,
``(request, "cancelled")``, ``(request, "error", "case" | "engine", path, problem)``. The app
drops replies to any request but the one it waits for, and one run uses the process at a time
(a new "Run AI" right after a stop waits for the stopped run to end): a reply to an earlier
request never lands in another case's prediction.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from strokelens.core.errors import DataError, StrokeLensError
from strokelens.core.limits import cpu_count
from strokelens.core.prediction import slice_statistics

if TYPE_CHECKING:
    from strokelens.core.dataset import CaseRef
    from strokelens.core.prediction import Prediction

SliceCallback = Callable[[str, int, "Prediction"], None]  # case key, slice, growing prediction
ProgressCallback = Callable[[int, int], None]  # member-slices done in this case, total


def default_threads() -> int:
    """Torch threads for the app: all cores but one, which stays with the interface."""
    return max(1, cpu_count() - 1)


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
    stopped: bool = False
    priority_request: int | None = None
    partials: dict[str, Prediction] = field(default_factory=dict)
    skipped: dict[str, str] = field(default_factory=dict)  # case key -> why it could not be read
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

    # -- requests (the runner mirrors them into the flags the engine process reads) -----------
    def stop(self) -> None:
        self.stopped = True

    def request_priority(self, z: int) -> None:
        """Run slice ``z`` of the running case next (it is on screen and not done yet)."""
        self.priority_request = z

    # -- progress ------------------------------------------------------------------------------
    def summary(self, seconds: float) -> str:
        """What the run did, for the status bar: predicted, skipped (named) and whether stopped."""
        done = len(self.finished) - len(self.skipped)
        verb = "stopped after" if self.stopped else "finished"
        text = f"AI {verb} {done} case(s) in {seconds:.1f} s"
        if self.skipped:
            text += f"; skipped {len(self.skipped)} unreadable: {', '.join(self.skipped)}"
        if self.stopped:
            text += "; finished slices are kept and Run AI resumes from them"
        return text + "."

    @property
    def total_work(self) -> int:
        return sum(self.work.values())

    @property
    def completed_work(self) -> int:
        return self.done_work + self.case_work

    def set_case_progress(self, done: int, now: float | None = None) -> None:
        self.case_work = done
        if self._rate_start is None:  # from the first result: loading the engine is not work
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


class Interrupted(StrokeLensError):
    """The process stopped a case on request; ``prediction`` holds the slices done."""

    def __init__(self, prediction: Prediction):
        self.prediction = prediction
        super().__init__(f"{prediction.case_key}: interrupted")


#: How often the app side looks at the job's requests while it waits for the process (s).
POLL_S = 0.02


class AiRunner:
    """One ensemble's engine process; predicts one case at a time on request."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        manifest_path: str | Path,
        threads: int | None = None,
        precision: str = "auto",
        cache_root: Path | None = None,
        allow_external_members: bool = False,
    ):
        self.loop = loop
        self.manifest_path = Path(manifest_path)
        self.allow_external_members = allow_external_members
        self.threads = threads or default_threads()
        self.precision = precision
        self.cache_root = cache_root
        self._context = multiprocessing.get_context("spawn")
        self._stop = self._context.Event()
        self._priority = self._context.Value("i", -1)
        self._process = None
        self._conn = None
        self._reader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ai-reader")
        self._requests = 0  # number of the last "predict" sent
        self._in_use = asyncio.Lock()  # held by the run using the process
        self.member_names: list[str] = []
        self.member_losses: list[str] = []

    # -- process ---------------------------------------------------------------------------------
    @property
    def process(self):
        """The engine process (None before ``load`` and after ``shutdown``)."""
        return self._process

    async def load(self) -> None:
        """Start the engine process (if not running) and wait until its members are loaded."""
        if self._process is not None and self._process.is_alive():
            return
        ours, theirs = self._context.Pipe()
        self._process = self._context.Process(
            target=serve,
            args=(theirs, self.manifest_path, self.threads, self.precision, self.cache_root),
            kwargs={
                "stop": self._stop,
                "priority": self._priority,
                "allow_external_members": self.allow_external_members,
            },
            name="strokelens-ai",
            daemon=True,
        )
        self._process.start()
        theirs.close()
        self._conn = ours
        message = await self._receive(None, 0)
        if message[0] == "error":
            self.shutdown()
            raise DataError(message[2], message[3])
        _, self.member_names, self.member_losses = message

    def _sync(self, job: AiJob | None) -> None:
        """Mirror the job's stop and priority requests into the flags the process reads."""
        if job is None:
            return
        if job.stopped:
            self._stop.set()
        if job.priority_request is not None and self._priority.value < 0:
            self._priority.value = job.priority_request

    def _next_message(self, job: AiJob | None, request: int) -> tuple:
        """Reader thread: wait for the next reply to ``request`` (without its number); replies to
        other requests are dropped. It never touches the mirror, which the views draw, but
        derives a slice's means and std for it (the loop then only copies them in)."""
        conn, process = self._conn, self._process  # kept: shutdown() may clear the fields
        assert conn is not None and process is not None
        while True:
            self._sync(job)
            try:
                ready = conn.poll(POLL_S)
                message = conn.recv() if ready else None
            except (EOFError, OSError):
                message = None
                ready = True
            if message is None and (ready or not process.is_alive()):
                process.join(1.0)
                code = process.exitcode
                return ("error", "engine", self.manifest_path, f"the AI process ended ({code})")
            if message is None or message[0] != request:
                continue
            if message[1] == "slice":  # the means and std here, off the GUI thread
                members = message[3][:, None]
                return (*message[1:], slice_statistics(members, self.member_losses))
            return message[1:]

    async def _receive(self, job: AiJob | None, request: int) -> tuple:
        return await self.loop.run_in_executor(self._reader, self._next_message, job, request)

    # -- cases ---------------------------------------------------------------------------------
    async def predict(
        self,
        ref: CaseRef,
        job: AiJob,
        priority: int | None,
        on_slice: SliceCallback,
        on_progress: ProgressCallback,
    ) -> Prediction:
        """Predict the case of ``ref``, calling back per slice and per member-batch.

        Raises :class:`Interrupted` (holding the partial prediction) when ``job`` is stopped or
        asks for another priority slice; a case that cannot be read raises its DataError, an
        engine failure a StrokeLensError.
        """
        await self.load()
        assert self._conn is not None
        self._stop.clear()
        self._priority.value = -1
        self._sync(job)
        self._requests += 1
        request = self._requests
        held = job.partials.get(ref.key)
        self._conn.send(("predict", request, ref, priority, None if held is None else held.done))
        mirror: list[Prediction | None] = [None]
        while True:
            message = await self._receive(job, request)
            kind = message[0]
            if kind == "start":
                mirror[0] = self._mirror(job, *message[1:])
            elif kind == "slice":  # applied here, on the loop: the views draw the mirror
                mirror[0].update([message[1]], message[2][:, None], message[3])  # type: ignore[union-attr]
                on_slice(ref.key, message[1], mirror[0])  # type: ignore[arg-type]
            elif kind == "progress":
                on_progress(message[1], message[2])
            elif kind == "cancelled":
                raise Interrupted(mirror[0])  # type: ignore[arg-type]
            elif kind == "done":
                prediction = mirror[0]
                assert prediction is not None
                prediction.timing, prediction.device, prediction.precision = message[1:]
                return prediction
            elif message[1] == "case":
                raise DataError(message[2], message[3])
            else:
                self.shutdown()
                raise StrokeLensError(f"{message[2]}: {message[3]}")

    def _mirror(self, job: AiJob, key, shape, spacing, done) -> Prediction:
        """The app's copy of the prediction the process starts (``done`` None) or resumes (from
        the partial the app sent the flags of)."""
        from strokelens.core.prediction import Prediction

        partial = job.partials.pop(key, None)
        if done is None:
            return Prediction.empty(key, shape, spacing, self.member_names, self.member_losses)
        if partial is None or not np.array_equal(partial.done, done):
            raise StrokeLensError(f"{key}: the AI process resumed from slices the app lacks")
        return partial

    async def run(
        self,
        job: AiJob,
        ref_of: Callable[[str], CaseRef],
        priority_of: Callable[[str], int | None],
        on_slice: SliceCallback,
        on_progress: ProgressCallback,
        on_case_done: Callable[[str, Prediction], None],
        on_case_error: Callable[[str, Exception], None],
        load_partial: Callable[[str], Awaitable[Prediction | None]] | None = None,
    ) -> None:
        """Work through ``job``'s queue until it is empty or stopped.

        A case that cannot be read is reported through ``on_case_error`` and skipped; a priority
        request resumes the running case from the requested slice; a stop keeps the partial
        prediction in ``job.partials``. ``load_partial(key)`` finds a case's partial kept by an
        earlier session (the cache) when the job holds none. A run waits for the one before it
        to end (one stopped moments ago ends within a member-batch): two runs must never share
        the process.
        """
        async with self._in_use:
            while (key := job.next_key()) is not None:
                if key not in job.partials and load_partial is not None:
                    kept = await load_partial(key)
                    if kept is not None:
                        job.partials[key] = kept
                priority = priority_of(key)
                while True:
                    try:
                        prediction = await self.predict(
                            ref_of(key), job, priority, on_slice, on_progress
                        )
                    except Interrupted as exc:
                        job.partials[key] = exc.prediction
                        if job.stopped:
                            return
                        priority, job.priority_request = job.priority_request, None
                        continue
                    except DataError as exc:
                        job.skipped[key] = str(exc)
                        on_case_error(key, exc)
                    else:
                        on_case_done(key, prediction)
                    break

    def shutdown(self) -> None:
        """Stop the process (it ends after the member-batch running); ``load`` starts anew."""
        self._stop.set()
        if self._conn is not None:
            try:
                self._conn.send(("quit",))
            except (OSError, ValueError):
                pass
        if self._process is not None:
            self._process.join(2.0)
            if self._process.is_alive():
                self._process.terminate()
        self._process = self._conn = None

    def close(self) -> None:
        """Stop the process and the reader thread (the window is closing)."""
        self.shutdown()
        self._reader.shutdown(wait=False, cancel_futures=True)


def serve(
    conn,
    manifest_path: Path,
    threads: int,
    precision: str,
    cache_root,
    *,
    stop,
    priority,
    allow_external_members: bool = False,
):
    """The engine process: load the members, then predict cases on request until "quit"."""
    from strokelens.core.dataset import load_ref
    from strokelens.core.engine import Cancelled, Engine
    from strokelens.core.prediction_store import PredictionCache, manifest_fingerprint

    try:
        engine = Engine.from_manifest(
            manifest_path, allow_external_members, threads=threads, precision=precision
        )
    except DataError as exc:
        conn.send((0, "error", "engine", exc.path, exc.problem))
        return
    except Exception as exc:  # noqa: BLE001 (any failure must reach the app, not a dead pipe)
        conn.send((0, "error", "engine", manifest_path, f"{type(exc).__name__}: {exc}"))
        return
    cache = None if cache_root is None else PredictionCache(Path(cache_root))
    fingerprint = manifest_fingerprint(engine.manifest)
    names = [m.name for m in engine.members]
    conn.send((0, "loaded", names, [m.loss for m in engine.members]))
    partials: dict[str, Prediction] = {}

    def interrupted() -> bool:
        return stop.is_set() or priority.value >= 0

    while True:
        try:
            message = conn.recv()
        except EOFError:  # the app is gone
            return
        if message[0] == "quit":
            return
        _, request, ref, priority_slice, held = message

        def reply(*fields, request=request) -> None:
            conn.send((request, *fields))

        try:
            case = load_ref(ref)
        except DataError as exc:
            reply("error", "case", exc.path, exc.problem)
            continue
        resume = _resume_from(partials.pop(case.key, None), case, held, cache, fingerprint, names)
        done = None if resume is None else resume.done.copy()
        reply("start", case.key, case.shape, case.spacing, done)
        try:
            prediction = engine.predict(
                case,
                priority_slice=priority_slice,
                on_slice=lambda r: reply("slice", r.z, r.members.copy()),
                progress=lambda d, t: reply("progress", d, t),
                cancel=interrupted,
                resume=resume,
            )
        except Cancelled as exc:
            partials[case.key] = exc.prediction
            if stop.is_set() and exc.prediction.done.any():  # a stop, maybe a quit: keep them
                _keep(cache, fingerprint, case, exc.prediction)
            reply("cancelled")
            continue
        except DataError as exc:  # this case only (a relative version that cannot read it)
            reply("error", "case", exc.path, exc.problem)
            continue
        except Exception as exc:  # noqa: BLE001
            reply("error", "engine", ref.folder, f"{type(exc).__name__}: {exc}")
            return
        reply("done", prediction.timing, prediction.device, prediction.precision)
        _keep(cache, fingerprint, case, prediction)  # after "done": the app shows the case


def _resume_from(own, case, held, cache, fingerprint, names):
    """The partial prediction to resume ``case`` from: the process's ``own`` or else the cache's,
    only if it holds exactly the slices ``held`` (those of the app's partial; None: none) of
    this case and these members."""

    def matches(candidate) -> bool:
        return (
            candidate is not None
            and (candidate.shape, candidate.member_names) == (case.shape, names)
            and np.array_equal(candidate.done, held)
        )

    if held is None:
        return None
    if matches(own):
        return own
    kept = None if cache is None else cache.get(fingerprint, case, partial=True)
    return kept if matches(kept) else None


def _keep(cache, fingerprint: str, case, prediction) -> None:
    if cache is not None:
        try:
            cache.put(fingerprint, case, prediction)
        except (OSError, DataError):
            pass  # a cache that cannot be written costs a re-run later, nothing else
