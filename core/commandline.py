"""How every StrokeLens command line ends: exit codes, and one line for the user on failure.

Exit codes: 0 done, 1 a problem StrokeLens names (bad input, say), 2 a usage error or an
unexpected failure (one line here, the traceback in ``cli.log`` in the user's log folder), 130
interrupted (Ctrl+C). Shared by ``strokelens`` (``app.cli``) and ``python -m strokelens.training``
(``training.cli``), which ``torchrun`` launches without the app.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Callable
from pathlib import Path

from strokelens.core import userdirs
from strokelens.core.errors import StrokeLensError


def run_guarded(prog: str, argv: list[str], command: Callable[[], int | None]) -> int:
    """Run ``command`` and turn how it ends into an exit code; ``prog`` names it in messages."""
    try:
        return int(command() or 0)
    except StrokeLensError as exc:
        print(f"{prog}: error: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # output piped into e.g. `head`, which stopped reading
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print(f"\n{prog}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug: one line for the user, the traceback for the report
        log = log_traceback(argv, exc)
        where = f"; traceback in {log}" if log else ""
        print(f"{prog}: unexpected error: {type(exc).__name__}: {exc}{where}", file=sys.stderr)
        return 2


def log_traceback(argv: list[str], exc: BaseException) -> Path | None:
    """Append ``exc``'s traceback to ``cli.log`` in the user's log folder; None if unwritable."""
    text = "".join(traceback.format_exception(exc))
    return userdirs.append_log("cli.log", f"strokelens {' '.join(argv)}\n{text}")
