"""Fine-tuning with the reviewer's corrections, run from the window: the worker process, its
events, cancel; Qt-free.

Training runs in its own process (``python -m strokelens.training finetune ... --json``), so the
GUI process never holds torch's training memory (a GPU's included: it is released when the
process ends) and a cancel is a signal, not a flag polled by a thread. The worker prints one JSON
object per line on stdout; each line is input like any other and is validated against its schema
(``WorkerEvent``) before it becomes an event. A line that does not fit is logged and reported
(``problem``), never raised into the loop. stdout is read on a thread of its own (``Tasks.pool``),
stderr drained by another, so neither pipe can fill and stall the worker.

Events: ``event(WorkerEvent)`` per valid line, on the loop's thread; ``problem(text)`` for an
unreadable line.
"""

from __future__ import annotations

import asyncio
import collections
import functools
import os
import subprocess
import sys
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Annotated, Literal

from psygnal import Signal
from pydantic import BaseModel, ConfigDict, Field

from strokelens.app.tasks import Tasks
from strokelens.core.errors import DataError, StrokeLensError
from strokelens.core.limits import MAX_MEMBERS
from strokelens.core.project.review import Status
from strokelens.core.registry import (
    ENSEMBLE,
    VersionInfo,
    check_version,
    promotion_check,
)
from strokelens.core.schema import Bool, Finite, Int, SafeName, Str, parse, validate

if TYPE_CHECKING:
    from strokelens.app.ai_session import AiSession
    from strokelens.app.model import Entry, Model
    from strokelens.app.project_session import ProjectSession

#: Where a bad line is said to come from (the message names it like a file).
SOURCE = "fine-tuning worker output"
#: A line longer than this is refused (and the rest of it skipped), whatever it holds.
MAX_LINE = 64 * 1024
#: Longest text of a worker's error shown.
MAX_MESSAGE = 2000
#: Cases one run may name (train or held out).
MAX_CASES = 10_000
#: After a cancel, the worker gets this long to stop by itself (keeping its staged version
#: resumable) before it is killed.
CANCEL_GRACE_S = 10.0
#: stderr lines kept to explain a worker that died without an error line.
STDERR_LINES = 40

#: The worker's lines are strict in their fields' types and values, but the protocol
#: (docs/retrain.md) lets the worker add keys that older readers ignore.
LINE = ConfigDict(extra="ignore")
Dsc = Annotated[Finite, Field(ge=0.0, le=1.0)]
CaseKey = Annotated[Str, Field(min_length=1, max_length=256)]


class Start(BaseModel):
    model_config = LINE
    event: Literal["start"]
    version: SafeName
    parent: SafeName
    members: Annotated[list[SafeName], Field(min_length=1, max_length=MAX_MEMBERS)]
    epochs: Annotated[Int, Field(ge=1)] | None = None
    minutes: Annotated[Finite, Field(gt=0)] | None = None
    train_cases: Annotated[list[CaseKey], Field(max_length=MAX_CASES)]
    heldout_cases: Annotated[list[CaseKey], Field(max_length=MAX_CASES)]
    corrections: Annotated[list[CaseKey], Field(max_length=MAX_CASES)] = []
    original_cases: Annotated[list[CaseKey], Field(max_length=MAX_CASES)] = []


class Baseline(BaseModel):
    model_config = LINE
    event: Literal["baseline"]
    member: SafeName  # a member's name or ENSEMBLE
    heldout_dsc: Dsc | None


class Epoch(BaseModel):
    model_config = LINE
    event: Literal["epoch"]
    member: SafeName
    epoch: Annotated[Int, Field(ge=1)]
    epochs: Annotated[Int, Field(ge=1)] | None = None
    loss: Annotated[Finite, Field(ge=0.0)]
    heldout_dsc: Dsc | None
    elapsed_s: Annotated[Finite, Field(ge=0.0)]


class MemberDone(BaseModel):
    model_config = LINE
    event: Literal["member_done"]
    member: SafeName
    heldout_dsc: Dsc | None


Metrics = Annotated[dict[SafeName, Dsc | None], Field(max_length=MAX_MEMBERS + 1)]


class Done(BaseModel):
    model_config = LINE
    event: Literal["done"]
    version: SafeName
    before: Metrics
    after: Metrics
    recommend: Bool
    duration_s: Annotated[Finite, Field(ge=0.0)]
    path: Annotated[Str, Field(max_length=4096)] | None = None  # shown, never opened


class Error(BaseModel):
    model_config = LINE
    event: Literal["error"]
    message: Annotated[Str, Field(max_length=MAX_MESSAGE)]
    cancelled: Bool = False  # the worker stopped on SIGTERM (its version stays resumable)
    version: SafeName | None = None


WorkerEvent = Annotated[
    Start | Baseline | Epoch | MemberDone | Done | Error, Field(discriminator="event")
]


def parse_event(line: str) -> Start | Baseline | Epoch | MemberDone | Done | Error:
    """One line of the worker's stdout as its event; a DataError naming the field otherwise."""
    try:
        data = parse(line, "json")
    except ValueError as exc:
        raise DataError(SOURCE, f"not a JSON line ({exc}): {line[:80]!r}") from None
    return validate(data, WorkerEvent, SOURCE)


# --- what the dialog asks for --------------------------------------------------------------------


@dataclass(frozen=True)
class RetrainSpec:
    """One fine-tuning run as the reviewer chose it: exactly one budget (``epochs`` or
    ``minutes``); ``members`` empty: all; ``ratio``: corrections : original cases = ratio : 1
    (None: corrections only), from ``originals_from`` (None: the project's data set);
    ``relative``: the new version reads CBF and CBV relative to the originals' site;
    ``heldout``: the case keys that judge it;
    ``resume``: a staged version to continue instead, with the settings it was started with;
    ``registry``: None, the user's."""

    project: Path
    members: tuple[str, ...] = ()
    epochs: int | None = None
    minutes: float | None = None
    ratio: float | None = None
    originals_from: Path | None = None
    relative: bool = False
    heldout: tuple[str, ...] = ()
    device: str = "cpu"
    resume: str | None = None
    registry: Path | None = None

    def __post_init__(self) -> None:
        if self.resume is not None:
            check_version(self.resume)
        elif (self.epochs is None) == (self.minutes is None):
            raise ValueError("give a budget in epochs or in minutes (one of them)")
        if self.epochs is not None and self.epochs < 1:
            raise ValueError("epochs must be at least 1")
        if self.minutes is not None and not self.minutes > 0:
            raise ValueError("minutes must be more than 0")
        if self.ratio is not None and not self.ratio > 0:
            raise ValueError("the ratio of corrections to original data must be more than 0")
        if any(key.startswith("-") for key in (*self.members, *self.heldout)):
            raise ValueError("a member or case name cannot start with '-'")

    def argv(self, python: str = sys.executable) -> list[str]:
        """The worker's command line."""
        argv = [python, "-m", "strokelens.training", "finetune", "--project", str(self.project)]
        if self.registry is not None:
            argv += ["--registry", str(self.registry)]
        if self.resume is not None:
            return [*argv, "--resume", self.resume, "--device", self.device, "--json"]
        if self.members:
            argv += ["--members", *self.members]
        if self.epochs is not None:
            argv += ["--epochs", str(self.epochs)]
        else:
            argv += ["--minutes", f"{self.minutes:g}"]
        if self.ratio is not None:
            argv += ["--ratio", f"{self.ratio:g}"]
            if self.originals_from is not None:
                argv += ["--originals-from", str(self.originals_from)]
        if self.relative:
            argv.append("--relative")
        if self.heldout:
            argv += ["--heldout", *self.heldout]
        return [*argv, "--device", self.device, "--json"]


#: Counts the CUDA GPUs in a child process: the window's process never imports torch.
_COUNT_GPUS = "import torch; print(torch.cuda.device_count())"
#: At most this many ``cuda:N`` are offered, whatever the child says.
MAX_GPUS = 64


@functools.cache
def find_devices(timeout_s: float = 120.0) -> tuple[str, ...]:
    """``cpu`` and each CUDA GPU as ``cuda:N``, counted once per session by a child process
    (call it in a worker thread: it waits for the child); ``cpu`` alone when the count fails.
    Counting does not create a CUDA context, so no GPU memory is taken."""
    try:
        child = subprocess.run(
            [sys.executable, "-c", _COUNT_GPUS],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )
        count = int(child.stdout.strip()) if child.returncode == 0 else 0
    except (OSError, subprocess.TimeoutExpired, ValueError):
        count = 0
    return ("cpu", *(f"cuda:{i}" for i in range(min(max(count, 0), MAX_GPUS))))


# --- the run ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RetrainOutcome:
    """How a run ended: ``done`` its result (None without one), ``error`` why not (None when
    it finished or was cancelled), ``cancelled`` on the reviewer's request."""

    returncode: int | None
    cancelled: bool
    done: Done | None
    error: str | None

    @property
    def ok(self) -> bool:
        return self.done is not None and self.error is None


class RetrainRunner:
    """Runs one fine-tuning worker at a time for the window's ``tasks``."""

    event = Signal(object)
    problem = Signal(str)

    def __init__(self, tasks: Tasks, grace_s: float = CANCEL_GRACE_S):
        self.tasks, self.grace_s = tasks, grace_s
        self._pool = tasks.pool("retrain")
        self._process: subprocess.Popen | None = None
        self._cancelled = False
        self._kill: asyncio.TimerHandle | None = None
        self._done: Done | None = None
        self._error: str | None = None

    @property
    def running(self) -> bool:
        return self._process is not None

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    async def run(self, spec: RetrainSpec, argv: list[str] | None = None) -> RetrainOutcome:
        """Start the worker for ``spec`` (``argv``: another command line, for the tests) and
        follow it to its end; events arrive meanwhile."""
        if self._process is not None:
            raise StrokeLensError("A fine-tuning run is going already.")
        self._cancelled, self._done, self._error = False, None, None
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        try:
            process = subprocess.Popen(
                argv or spec.argv(),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
            )
        except OSError as exc:
            raise StrokeLensError(f"The fine-tuning worker cannot start: {exc}") from exc
        self._process = process
        stderr: collections.deque[str] = collections.deque(maxlen=STDERR_LINES)
        drain = threading.Thread(target=_drain, args=(process.stderr, stderr), daemon=True)
        drain.start()
        loop = self.tasks.loop
        try:
            returncode = await loop.run_in_executor(self._pool, self._follow, process, loop)
        finally:
            if self._kill is not None:
                self._kill.cancel()
                self._kill = None
            self._process = None
        await loop.run_in_executor(self._pool, drain.join, 5.0)
        # A cancel that reached a worker which had already finished its version changes
        # nothing: the version is done, not staged, and the outcome says so.
        cancelled = self._cancelled and self._done is None
        return RetrainOutcome(returncode, cancelled, self._done, self._why(returncode, stderr))

    def _why(self, returncode: int, stderr: collections.deque[str]) -> str | None:
        if self._done is not None or self._cancelled:
            return None
        if self._error is not None:
            return self._error
        if returncode != 0:
            tail = next((line for line in reversed(stderr) if line.strip()), "")
            return f"The fine-tuning worker stopped (exit status {returncode})" + (
                f": {tail.strip()[:MAX_MESSAGE]}" if tail else "."
            )
        if self._done is None:
            return "The fine-tuning worker ended without a result."
        return None

    def _follow(self, process: subprocess.Popen, loop: asyncio.AbstractEventLoop) -> int:
        """Worker thread: each stdout line to the loop, then the exit status."""
        with process.stdout:  # type: ignore[union-attr]
            for line in _lines(process.stdout):  # type: ignore[arg-type]
                loop.call_soon_threadsafe(self._line, line)
        return process.wait()

    def _line(self, line: str | None) -> None:
        """A line of the worker (None: one too long), on the loop's thread."""
        try:
            if line is None:
                raise DataError(SOURCE, f"a line longer than {MAX_LINE} bytes (skipped)")
            if not line.strip():
                return
            event = parse_event(line)
        except DataError as exc:
            self.tasks.report(exc)  # logged, and in the status bar
            self.problem.emit(str(exc))
            return
        if isinstance(event, Done):
            self._done = event
        elif isinstance(event, Error):
            self._error = event.message
        self.event.emit(event)

    def cancel(self) -> None:
        """Ask the worker to stop (SIGTERM: it keeps its staged version resumable); it is
        killed if it has not ended ``grace_s`` later."""
        process = self._process
        if process is None or process.poll() is not None or self._done is not None:
            return  # nothing runs, or the version is finished and the worker is exiting
        self._cancelled = True
        process.terminate()
        if self._kill is None:
            self._kill = self.tasks.loop.call_later(self.grace_s, self._kill_now)

    def _kill_now(self) -> None:
        self._kill = None
        if self._process is not None and self._process.poll() is None:
            self._process.kill()

    def close(self) -> None:
        """The window is closing: stop the worker (killed after the grace period, by a thread,
        since the loop is going away)."""
        process = self._process
        if process is None or process.poll() is not None:
            return
        self._cancelled = True
        process.terminate()
        timer = threading.Timer(self.grace_s, lambda: process.poll() is None and process.kill())
        timer.daemon = True
        timer.start()


def _lines(stream: IO[bytes]):
    """The stream's lines as text; None for a line over ``MAX_LINE`` (the rest skipped)."""
    while True:
        raw = stream.readline(MAX_LINE + 1)
        if not raw:
            return
        if len(raw) > MAX_LINE and not raw.endswith(b"\n"):
            while raw and not raw.endswith(b"\n"):
                raw = stream.readline(MAX_LINE + 1)
            yield None
            continue
        yield raw.decode("utf-8", errors="replace")


def _drain(stream: IO[bytes], keep: collections.deque[str]) -> None:
    for raw in iter(lambda: stream.readline(MAX_LINE), b""):
        keep.append(raw.decode("utf-8", errors="replace"))


# --- what a run trains on and is judged by ---------------------------------------------------------

#: Share of the patients held out by default to judge a run (at least one).
HELDOUT_SHARE = 0.2


@dataclass(frozen=True)
class PatientCases:
    """A patient's cases: ``approved`` (approved corrections, to train on) and ``judged`` (those
    with a reference, an approved correction or ground truth, that can judge a run)."""

    patient: str
    approved: tuple[str, ...]
    judged: tuple[str, ...]


def patients_of(entries: Sequence[Entry], approved: Iterable[str]) -> list[PatientCases]:
    """The data set's patients with approved or judgeable cases, in the data set's order."""
    approved = set(approved)
    groups: dict[str, tuple[list[str], list[str]]] = {}
    for entry in entries:
        key = entry.key
        mine, judged = groups.setdefault(entry.ref.patient or key, ([], []))
        if key in approved:
            mine.append(key)
        if key in approved or entry.ref.has_truth:
            judged.append(key)
    return [PatientCases(p, tuple(a), tuple(j)) for p, (a, j) in groups.items() if a or j]


def default_heldout(patients: Sequence[PatientCases]) -> frozenset[str]:
    """The patients held out unless the reviewer chooses others: the first ~20 % of those
    with approved corrections when there are two or more (training keeps the rest), else the
    first with ground truth only (a run needs a patient it never trains on)."""
    approved = [p for p in patients if p.approved]
    if len(approved) >= 2:
        n = min(max(1, round(HELDOUT_SHARE * len(approved))), len(approved) - 1)
        return frozenset(p.patient for p in approved[:n])
    truth_only = [p for p in patients if p.judged and not p.approved]
    return frozenset(p.patient for p in truth_only[:1])


@dataclass(frozen=True)
class RetrainPlan:
    """What the dialog offers: the project, the version fine-tuned (``parent``) and its
    ``members``, the patients and the default held-out ones."""

    project: Path | None
    parent: str
    members: tuple[str, ...]
    patients: tuple[PatientCases, ...]
    heldout: frozenset[str]
    originals: Path | None = None  # the base version's training data, when known
    #: retrains started and not finished (killed, or the app closed during the run), oldest first
    staged: tuple[str, ...] = ()

    @property
    def approved(self) -> int:
        return sum(len(p.approved) for p in self.patients)

    def train_keys(self, heldout: Iterable[str]) -> list[str]:
        out = set(heldout)
        return [k for p in self.patients if p.patient not in out for k in p.approved]

    def heldout_keys(self, heldout: Iterable[str]) -> list[str]:
        out = set(heldout)
        return [k for p in self.patients if p.patient in out for k in p.judged]

    def why_not(self, heldout: Iterable[str]) -> str | None:
        """Why no run can start with these held-out patients (None: it can)."""
        if self.project is None:
            return "Open a data set first: its project holds the corrections."
        if not self.approved:
            return "No approved corrections yet: approve corrected cases (Case ▸ Approve) first."
        if not self.train_keys(heldout):
            return "Every approved case is held out: nothing is left to train on."
        return None


def _active_version(
    root: Path | None,
) -> tuple[str, tuple[str, ...], Path | None, tuple[str, ...]]:
    """The registry's active version, its members' names, the base's training data and the
    retrains started and not finished (worker)."""
    from strokelens.core.registry import Registry

    registry = Registry(root)
    name = registry.active()
    members = tuple(m.name for m in registry.manifest(name).members)
    return name, members, registry.base_training_data(), tuple(registry.staged())


def _activate(root: Path | None, version: str) -> Path:
    """Make ``version`` the registry's active one (``Registry.activate``); its manifest
    (worker)."""
    from strokelens.core.registry import Registry

    registry = Registry(root)
    registry.activate(version)
    return registry.active_manifest()


def _versions(root: Path | None) -> list[VersionInfo]:
    """The registry's versions, oldest first, with their records (worker)."""
    from strokelens.core.registry import Registry

    return Registry(root).list()


class Retraining:
    """The window's fine-tuning with corrections: what a run would train on, the run (its
    worker: ``runner``), the registry's versions, and making one active (the run's result, or
    an earlier one), which switches the AI to it.

    ``registry``: the registry's folder (None: the user's). Events: ``status(text, ms)``,
    ``activated(version)``.
    """

    status = Signal(str, int)
    activated = Signal(str)

    def __init__(
        self,
        model: Model,
        project: ProjectSession,
        ai: AiSession,
        tasks: Tasks,
        registry: Path | None = None,
    ):
        self.model, self.project, self.ai, self.tasks = model, project, ai, tasks
        self.registry = registry
        self.runner = RetrainRunner(tasks)

    async def plan(self) -> RetrainPlan:
        """The approved corrections (from the project store), their patients and the active
        version's members (registry and store read in a worker)."""
        store = self.project.store
        records = [] if store is None else await self.tasks.run_in_worker(store.cases)
        approved = [r.key for r in records if r.status is Status.APPROVED]
        parent, members, originals, staged = await self.tasks.run_in_worker(
            _active_version, self.registry
        )
        patients = tuple(patients_of(self.model.entries, approved))
        project = None if store is None else store.path
        heldout = default_heldout(patients)
        return RetrainPlan(project, parent, members, patients, heldout, originals, staged)

    async def devices(self) -> tuple[str, ...]:
        return await self.tasks.run_in_worker(find_devices)

    async def versions(self) -> list[VersionInfo]:
        return await self.tasks.run_in_worker(_versions, self.registry)

    async def activate(self, version: str) -> bool:
        """Make ``version`` active (promoted, or rolled back to) and "Run AI" use it
        (predictions of the version before stay in the cache, under its own fingerprint);
        refused while the AI runs."""
        if self.ai.job is not None:
            self.status.emit("Stop the AI (Esc) before switching to another version.", 8000)
            return False
        try:
            manifest = await self.tasks.run_in_worker(_activate, self.registry, version)
        except StrokeLensError as exc:
            self.tasks.report(exc, act=True)
            return False
        if not self.ai.set_ensemble(manifest):
            return False
        self.activated.emit(version)
        self.status.emit(f"Version {version} is active: Run AI uses it.", 8000)
        return True

    def close(self) -> None:
        self.runner.close()


#: Below this many held-out cases a recommendation says it may be chance (per-case DSC varies
#: by 0.1-0.2 between patients, docs/retrain.md).
FEW_HELDOUT = 5


def verdict(done: Done, heldout_cases: int, trained: Sequence[str]) -> tuple[bool, str]:
    """Whether to recommend promoting ``done``'s version, and why, in words: only when neither
    the ensemble's held-out DSC nor the ``trained`` members' mean dropped
    (``registry.promotion_check``) and the worker agrees; no verdict without held-out cases."""
    if heldout_cases == 0:
        return False, "No held-out cases: no recommendation."
    ok, figures = promotion_check(done.before, done.after, trained)
    figures += f" on {heldout_cases} case(s)"
    dropped = [
        m
        for m, a in done.after.items()
        if m != ENSEMBLE and a is not None and (b := done.before.get(m)) is not None and a < b
    ]
    if dropped:
        figures += f"; dropped for {', '.join(dropped)}"
    if not ok:
        return False, f"Not recommended: {figures}."
    if not done.recommend:
        return False, f"Not recommended by the fine-tuning ({figures})."
    if heldout_cases < FEW_HELDOUT:
        return True, f"Recommended: {figures}; few cases judged it, so this may be chance."
    return True, f"Recommended: {figures}."
