"""The user's StrokeLens folders (data, cache, logs), from platformdirs.

platformdirs follows each platform's convention (XDG on Linux: ``$XDG_DATA_HOME``,
``$XDG_CACHE_HOME``, ``$XDG_STATE_HOME``; ``%LOCALAPPDATA%`` on Windows; ``~/Library`` on macOS),
so the demo data, the prediction cache and the logs land where users and admins look for them.
"""

from __future__ import annotations

import time
from pathlib import Path

import platformdirs

APP = "strokelens"


def data_dir() -> Path:
    """Generated data the user keeps (the demo phantom)."""
    return Path(platformdirs.user_data_dir(APP, appauthor=False))


def cache_dir() -> Path:
    """Data that can be rebuilt at any time (the prediction cache)."""
    return Path(platformdirs.user_cache_dir(APP, appauthor=False))


def log_dir() -> Path:
    """Logs (the command line's tracebacks of unexpected errors)."""
    return Path(platformdirs.user_log_dir(APP, appauthor=False))


def append_log(name: str, text: str) -> Path | None:
    """Append ``text``, stamped, to the log file ``name`` in ``log_dir()``; None when it cannot
    be written (a log must never turn one failure into two)."""
    path = log_dir() / name
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8", errors="backslashreplace") as f:
            f.write(f"--- {stamp} {text.rstrip()}\n")
    except OSError:
        return None
    return path
