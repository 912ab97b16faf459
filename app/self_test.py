"""``strokelens --self-test``: does this installation work, offline and offscreen?

An installer (``packaging/``) is only worth shipping if the installed copy runs what a
workstation needs, from its own files: the demo phantom (generated on first use from the bundled
anatomy files), the bundled ensemble in the engine process (``app.inference`` spawns it: in a
frozen build that is the frozen binary again), the retrain worker (``python -m
strokelens.training``; the frozen binary answers to the same arguments, see ``app.cli``) and the
window. Each check prints one line, ``ok`` or ``FAIL`` with its reason; the exit code is 0 only
when all pass.

The ensemble's Dice on one demo case is checked against ``resources/demo/self_test.json``, which
records the value measured from source when the demo ensemble was made (``--record`` rewrites
it): a bundle that lost a weight file, a preprocessing range or numerical sanity reads another
value.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, Field

from strokelens.core.errors import StrokeLensError
from strokelens.core.schema import STRICT, Finite, Str, load
from strokelens.resources import resource_path

HELP = (
    "check this installation offline: demo data, bundled ensemble, engine, retrain worker, window"
)

#: what the self-test expects of the bundled ensemble on one demo case
EXPECTED = resource_path("demo", "self_test.json")

#: how the retrain worker is started (``python -m``; the frozen binary accepts the same)
TRAINING_WORKER = ("-m", "strokelens.training")


class ExpectedFile(BaseModel):
    """The schema of ``self_test.json``."""

    model_config = STRICT
    case: Annotated[Str, Field(min_length=1)]  # a case key of the demo data set
    dice: Annotated[Finite, Field(ge=0, le=1)]
    tolerance: Annotated[Finite, Field(gt=0, le=0.1)]


class CheckFailed(StrokeLensError):
    """One check did not pass; the message says why."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--demo-dir",
        type=Path,
        help="demo data folder, generated there if missing (default: the user's data folder)",
    )
    parser.add_argument(
        "--expected", type=Path, default=EXPECTED, help="expected Dice file (default: bundled)"
    )
    parser.add_argument(
        "--record",
        action="store_true",
        help="write the measured Dice to --expected instead of checking it (from source only)",
    )


def run(args: argparse.Namespace) -> int:
    """Run every check; 0 when all pass, 1 otherwise (each failure printed with its reason)."""
    os.environ["QT_QPA_PLATFORM"] = "offscreen"  # set before Qt loads: no display needed
    expected = load(args.expected, ExpectedFile, "self-test expectations")
    frozen = bool(getattr(sys, "frozen", False))
    if frozen and args.record:
        raise StrokeLensError("--record writes the source tree's expectations; run it from source")
    print(f"strokelens self-test ({'frozen: ' + sys.executable if frozen else 'from source'})")
    failures = 0

    def check(name: str, step, *step_args):
        nonlocal failures
        start = time.perf_counter()
        try:
            result, detail = step(*step_args)
        except (CheckFailed, StrokeLensError, OSError) as exc:
            failures += 1
            print(f"FAIL {name}: {exc}", flush=True)
            return None
        print(f"ok   {name}: {detail} ({time.perf_counter() - start:.1f} s)", flush=True)
        return result

    folder = check("demo data", _demo_data, args.demo_dir)
    if folder is not None:
        record = args.expected if args.record else None
        check("engine process", _engine, folder, expected, record)
    check("retrain worker", _training_worker)
    if folder is not None:
        check("window", _window, folder)
    if failures:
        print(f"self-test FAILED: {failures} check(s)", file=sys.stderr)
        return 1
    print("self-test passed")
    return 0


def _demo_data(folder: Path | None):
    from strokelens.core.demo import demo_folder, demo_ready, ensure_demo

    folder = folder or demo_folder()
    made = not demo_ready(folder)
    ensure_demo(folder)
    return folder, f"{'generated in' if made else 'found in'} {folder}"


def _engine(folder: Path, expected: ExpectedFile, record: Path | None):
    """The bundled ensemble on ``expected.case`` in the engine process; Dice against the truth."""
    from strokelens.app.inference import AiJob, AiRunner
    from strokelens.core.dataset import load_ref, open_dataset
    from strokelens.core.demo import DEMO_MANIFEST
    from strokelens.core.metrics import case_metrics

    try:
        ref = open_dataset(folder)[expected.case]
    except KeyError:
        raise CheckFailed(f"the demo data in {folder} has no case {expected.case}") from None
    loop = asyncio.new_event_loop()
    runner = AiRunner(loop, DEMO_MANIFEST)
    try:
        job = AiJob([], {})
        job.add([ref.key], {ref.key: 1})
        prediction = loop.run_until_complete(
            runner.predict(ref, job, None, lambda *_: None, lambda *_: None)
        )
        pid = runner.process.pid
    finally:
        runner.close()
        loop.close()
    case = load_ref(ref)
    if case.mask is None:
        raise CheckFailed(f"{ref.key} has no ground truth")
    dice = case_metrics(prediction.mask(), case.mask, case.spacing)["dsc"]
    members = len(runner.member_names)
    where = f"{members} members in process {pid} on {prediction.device}, {ref.key} DSC {dice:.4f}"
    if record:
        _record(record, expected.case, dice, expected.tolerance)
        return dice, f"{where}, recorded in {record}"
    if abs(dice - expected.dice) > expected.tolerance:
        raise CheckFailed(
            f"{where}: expected {expected.dice:.4f} ± {expected.tolerance} (the bundled ensemble "
            "or its preprocessing differs from the one the value was recorded with)"
        )
    return dice, f"{where} (expected {expected.dice:.4f} ± {expected.tolerance})"


def _record(path: Path, case: str, dice: float, tolerance: float) -> None:
    from strokelens.core.writer import atomic_write_bytes

    text = ExpectedFile(case=case, dice=round(dice, 4), tolerance=tolerance).model_dump_json(
        indent=2
    )
    atomic_write_bytes(path, (text + "\n").encode())


def _training_worker():
    """The retrain worker's entry point starts (its help) from this executable."""
    command = [sys.executable, *TRAINING_WORKER, "cv", "--help"]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    except subprocess.TimeoutExpired:
        raise CheckFailed(f"{' '.join(command)} did not answer within 120 s") from None
    if done.returncode != 0 or "--config" not in done.stdout:
        last = (done.stderr.strip().splitlines() or ["no output"])[-1]
        raise CheckFailed(f"{' '.join(command)} exited {done.returncode}: {last}")
    return None, f"{' '.join(command[1:])} answered"


def _window(folder: Path):
    """The workstation opens the demo data offscreen and draws its first case."""
    from PySide6.QtGui import QImage

    from strokelens.app.launch import run_gui

    with tempfile.TemporaryDirectory(prefix="strokelens-self-test-") as scratch:
        shot = Path(scratch) / "window.png"
        if run_gui(demo_folder=folder, screenshot=shot) != 0:
            raise CheckFailed(f"the window did not open the demo data in {folder}")
        image = QImage(str(shot))
        if image.isNull() or image.width() < 200:
            raise CheckFailed("the window's screenshot is empty")
        return None, f"demo data shown, {image.width()} x {image.height()} screenshot"
