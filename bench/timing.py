"""Timing helper shared by the benchmark scripts (run as ``python bench/NAME.py``, which puts
this folder on ``sys.path``)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def best_of(fn: Callable[[], T], n: int) -> tuple[float, T]:
    """The fastest of ``n`` runs of ``fn`` (seconds) and the last run's result."""
    times, out = [], None
    for _ in range(n):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return min(times), out  # type: ignore[return-value]
