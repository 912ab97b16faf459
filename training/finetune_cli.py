"""``strokelens finetune`` / ``python -m strokelens.training finetune``: the retrain worker.

With ``--json`` stdout carries one JSON object per line (``training.retrain``'s events, then
``{"event": "error", "message": ...}`` when it fails) and human text goes to stderr, so the app
runs it as a process and reads its progress. SIGTERM and SIGINT cancel: the staged version stays
resumable (``--resume``), an error line with ``"cancelled": true`` is printed and the exit code
is 130. With more than one CUDA device (and no ``--device``) the command re-runs itself under
``torchrun`` (one process per device, DDP); the same worker under ``torchrun`` on two CPU
processes (gloo) is tested, the NCCL re-run on GPUs is not (no GPU where it was built).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys

from strokelens.core.errors import StrokeLensError
from strokelens.core.registry import DEFAULT_EPOCHS, DEFAULT_LR

HELP = "fine-tune the active ensemble on a project's approved corrections (a new model version)"


class Cancelled(BaseException):
    """SIGTERM or SIGINT during a fine-tune. Not an Exception (as KeyboardInterrupt is not), so
    that no ``except Exception`` on the way (a weight loader turning errors into DataError, say)
    turns the cancel into another error."""


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number")
    return value


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--project", required=True, help="review project folder")
    parser.add_argument("--members", nargs="+", help="members to fine-tune (default: all)")
    budget = parser.add_mutually_exclusive_group()
    budget.add_argument(
        "--epochs", type=_positive_int, help=f"epochs per member (default {DEFAULT_EPOCHS})"
    )
    budget.add_argument("--minutes", type=_positive_float, help="time budget of the whole run")
    parser.add_argument(
        "--ratio",
        type=_positive_float,
        help="mix in original cases: corrections : original = R : 1 (default: corrections only)",
    )
    parser.add_argument(
        "--originals-from",
        metavar="DATASET",
        help="data set the original cases come from, e.g. the one the active version was "
        "trained on (default: the project's own data set); needs --ratio",
    )
    parser.add_argument(
        "--relative",
        action="store_true",
        help="the new version reads CBF and CBV relative to each case's brain median, scaled "
        "to the reference site's (another vendor's absolute values); needs --originals-from "
        "unless the active version is relative already",
    )
    parser.add_argument("--heldout", nargs="+", metavar="KEY", help="held-out case keys")
    parser.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: CUDA when available)")
    parser.add_argument(
        "--resume",
        nargs="?",
        const="latest",
        metavar="VERSION",
        help="continue a killed or cancelled retrain (default: the latest one)",
    )
    parser.add_argument("--registry", help="model registry folder (default: the user's)")
    parser.add_argument(
        "--lr", type=_positive_float, default=DEFAULT_LR, help=f"learning rate ({DEFAULT_LR:g})"
    )
    parser.add_argument("--json", action="store_true", help="JSON lines on stdout")


def command_line(args: argparse.Namespace) -> list[str]:
    """The command line of ``args`` again (for the ``torchrun`` re-run)."""
    out = ["finetune", "--project", args.project, "--lr", repr(args.lr)]
    for flag in ("epochs", "minutes", "ratio", "originals_from", "device", "registry"):
        if getattr(args, flag) is not None:
            out += [f"--{flag.replace('_', '-')}", str(getattr(args, flag))]
    for flag in ("members", "heldout"):
        if getattr(args, flag):
            out += [f"--{flag}", *getattr(args, flag)]
    if args.relative:
        out.append("--relative")
    if args.resume is not None:
        out += ["--resume", args.resume]
    return out + (["--json"] if args.json else [])


def _torchrun(args: argparse.Namespace) -> None:
    """Replace this process by ``torchrun`` over every CUDA device when there are several."""
    import torch

    count = torch.cuda.device_count()
    if count < 2 or args.device or int(os.environ.get("WORLD_SIZE", "1")) > 1:
        return
    command = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={count}"]
    os.execv(sys.executable, [*command, "-m", "strokelens.training", *command_line(args)])


def _raise_cancelled(signum, _frame) -> None:
    raise Cancelled(f"cancelled ({signal.Signals(signum).name})")


def run(args: argparse.Namespace) -> int:
    from strokelens.core.registry import Registry
    from strokelens.training.distributed import init_from_env, is_main, shutdown
    from strokelens.training.retrain import finetune

    _torchrun(args)

    def emit(event: dict) -> None:
        if args.json:
            print(json.dumps(event), flush=True)
        else:
            print(_human(event), file=sys.stderr, flush=True)

    registry = Registry(args.registry)
    version = None
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, _raise_cancelled)
    init_from_env()
    try:
        resume = args.resume
        if resume == "latest":
            staged = registry.staged()
            if not staged:
                raise StrokeLensError(f"{registry.root}: no unfinished retrain to resume")
            resume = staged[-1]
        version = resume if resume in registry.staged() else None

        def track(event: dict) -> None:
            nonlocal version
            version = event.get("version", version)
            emit(event)
            if event["event"] == "done":  # finished: a late cancel has nothing left to stop
                for sig in (signal.SIGTERM, signal.SIGINT):
                    signal.signal(sig, signal.SIG_IGN)

        result = finetune(
            args.project,
            registry=registry,
            members=args.members,
            epochs=args.epochs,
            minutes=args.minutes,
            ratio=args.ratio,
            originals_from=args.originals_from,
            relative=args.relative,
            heldout=args.heldout,
            device=args.device,
            resume=resume,
            lr=args.lr,
            on_event=track,
        )
    except Cancelled as exc:
        if is_main():
            again = f"; resume with --resume {version}" if version else ""
            emit(
                {
                    "event": "error",
                    "message": f"{exc}{again}",
                    "cancelled": True,
                    "version": version,
                }
            )
        return 130
    except StrokeLensError as exc:
        if is_main():
            emit({"event": "error", "message": str(exc), "version": version})
        return 1
    except Exception as exc:  # a bug: the line for the app, then the usual traceback log
        if is_main():
            emit({"event": "error", "message": f"unexpected error: {type(exc).__name__}: {exc}"})
        raise
    finally:
        shutdown()
    if is_main() and not args.json:
        verdict = "recommended" if result.recommend else "not recommended (held-out DSC fell)"
        print(
            f"new version {result.version}: {verdict}; 'strokelens models promote "
            f"{result.version}' makes it active",
            file=sys.stderr,
        )
    return 0


def _human(event: dict) -> str:
    kind = event["event"]
    if kind == "start":
        return (
            f"retrain {event['version']} from {event['parent']}: {len(event['members'])} members, "
            f"{len(event['train_cases'])} training and {len(event['heldout_cases'])} held-out cases"
        )
    if kind == "baseline":
        return f"  before  {event['member']}: held-out DSC {event['heldout_dsc']:.3f}"
    if kind == "epoch":
        return (
            f"  {event['member']} epoch {event['epoch']}: loss {event['loss']:.4f}, "
            f"held-out DSC {event['heldout_dsc']:.3f} ({event['elapsed_s']:.1f} s)"
        )
    if kind == "member_done":
        return f"  after   {event['member']}: held-out DSC {event['heldout_dsc']:.3f}"
    if kind == "done":
        b, a = event["before"]["ensemble"], event["after"]["ensemble"]
        return f"done {event['version']}: ensemble held-out DSC {b:.3f} -> {a:.3f} ({event['duration_s']:.0f} s)"
    return f"error: {event['message']}"
