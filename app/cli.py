"""The ``strokelens`` command line: a thin dispatcher over ``strokelens.app.commands``.

Exit codes: 0 done, 1 a problem StrokeLens names (bad input, say), 2 a usage error or an
unexpected failure (one line here, the traceback in a log file), 130 interrupted (Ctrl+C).
"""

from __future__ import annotations

import argparse
import importlib
import multiprocessing
import os
import sys
import traceback
from pathlib import Path

from strokelens.core import userdirs
from strokelens.core.errors import StrokeLensError

#: command name -> module under ``strokelens.app.commands`` (imported lazily).
COMMANDS = {
    "info": "info",
    "phantom": "phantom",
    "perfusion": "perfusion",
    "predict": "predict",
    "evaluate": "evaluate",
    "cv": "cv",
    "report": "report",
    "export": "export",
    "app": "app",
    "demo": "demo",
}


def _command_module(name: str):
    return importlib.import_module(f"strokelens.app.commands.{COMMANDS[name]}")


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="strokelens",
        description="Infarct-core segmentation and review for CT-perfusion scans.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    # Only the chosen command's module is imported; the others get a bare entry in --help.
    chosen = next((a for a in argv if not a.startswith("-")), None)
    for name in COMMANDS:
        if name == chosen:
            module = _command_module(name)
            add_arguments = module.add_arguments
            help_text = module.HELP
        else:
            add_arguments, help_text = None, None
        p = sub.add_parser(name, help=help_text or f"see 'strokelens {name} --help'")
        if add_arguments is not None:
            add_arguments(p)
    return parser


def main(argv: list[str] | None = None) -> int:
    """``strokelens COMMAND ...``; a bare ``strokelens`` opens the workstation (``app``)."""
    multiprocessing.freeze_support()  # the AI's engine process, in a frozen (installer) build
    argv = (sys.argv[1:] if argv is None else list(argv)) or ["app"]
    for stream in (sys.stdout, sys.stderr):  # a name that is not UTF-8 is shown, not a crash
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if args.command is None:  # options only, e.g. --version-like typos
        parser.print_help()
        return 2
    try:
        return int(_command_module(args.command).run(args) or 0)
    except StrokeLensError as exc:
        print(f"strokelens {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # output piped into e.g. `head`, which stopped reading
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print(f"\nstrokelens {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug: one line for the user, the traceback for the report
        log = log_traceback(argv, exc)
        where = f"; traceback in {log}" if log else ""
        print(
            f"strokelens {args.command}: unexpected error: {type(exc).__name__}: {exc}{where}",
            file=sys.stderr,
        )
        return 2


def log_traceback(argv: list[str], exc: BaseException) -> Path | None:
    """Append ``exc``'s traceback to ``cli.log`` in the user's log folder; None if unwritable."""
    text = "".join(traceback.format_exception(exc))
    return userdirs.append_log("cli.log", f"strokelens {' '.join(argv)}\n{text}")


if __name__ == "__main__":
    sys.exit(main())
