"""The ``strokelens`` command line: a thin dispatcher over ``strokelens.app.commands``; exit codes
and failure messages as ``core.commandline`` sets them for every StrokeLens command line.
"""

from __future__ import annotations

import argparse
import importlib
import multiprocessing
import sys

from strokelens.core.commandline import run_guarded

#: command name -> module under ``strokelens.app.commands`` (imported lazily).
COMMANDS = {
    "info": "info",
    "phantom": "phantom",
    "perfusion": "perfusion",
    "predict": "predict",
    "evaluate": "evaluate",
    "cv": "cv",
    "finetune": "finetune",
    "models": "models",
    "report": "report",
    "export": "export",
    "export-masks": "export_masks",
    "summary": "summary",
    "app": "app",
    "demo": "demo",
}


def _command_module(name: str):
    return importlib.import_module(f"strokelens.app.commands.{COMMANDS[name]}")


def build_parser(argv: list[str]) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="strokelens",
        description="Infarct-core segmentation and review for CT-perfusion scans.",
        epilog="strokelens --self-test checks this installation offline (--self-test --help).",
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


def _self_test(argv: list[str]) -> int:
    """``strokelens --self-test [...]``: checks this installation (``app.self_test``)."""
    from strokelens.app import self_test

    parser = argparse.ArgumentParser(prog="strokelens --self-test", description=self_test.HELP)
    self_test.add_arguments(parser)
    args = parser.parse_args(argv[1:])
    return run_guarded("strokelens --self-test", argv, lambda: self_test.run(args))


def main(argv: list[str] | None = None) -> int:
    """``strokelens COMMAND ...``; a bare ``strokelens`` opens the workstation (``app``)."""
    multiprocessing.freeze_support()  # the AI's engine process, in a frozen (installer) build
    argv = (sys.argv[1:] if argv is None else list(argv)) or ["app"]
    for stream in (sys.stdout, sys.stderr):  # a name that is not UTF-8 is shown, not a crash
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")
    if argv[:2] == ["-m", "strokelens.training"]:  # the frozen binary as `python -m` (retrain)
        from strokelens.training.cli import main as training_main

        return training_main(argv[2:])
    if argv[0] == "--self-test":
        return _self_test(argv)
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if args.command is None:  # options only, e.g. --version-like typos
        parser.print_help()
        return 2
    module = _command_module(args.command)
    return run_guarded(f"strokelens {args.command}", argv, lambda: module.run(args))


if __name__ == "__main__":
    sys.exit(main())
