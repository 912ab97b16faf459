"""Widgets subscribe to model events for as long as they live.

psygnal holds bound methods weakly, but a lambda (or a partial) holds its widget strongly, and a
widget whose C++ side Qt has deleted raises on its first call. ``subscribe`` ties the connection
to the widget's ``destroyed`` signal, so a closed panel neither stays alive nor gets called.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from psygnal import SignalInstance
from PySide6.QtCore import QObject


def subscribe(owner: QObject, signal: SignalInstance, slot: Callable[..., Any]) -> None:
    """Connect ``slot`` to ``signal`` until ``owner`` is destroyed."""
    signal.connect(slot)
    owner.destroyed.connect(lambda *_: signal.disconnect(slot, missing_ok=True))
