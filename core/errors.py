"""The project's own error types: every problem with input names the file and what is wrong."""

from __future__ import annotations

from pathlib import Path


class StrokeLensError(Exception):
    """Base class of every error StrokeLens raises on purpose."""


class DataError(StrokeLensError):
    """Input data that cannot be used; ``path`` is the file or folder, ``problem`` says why."""

    def __init__(self, path: str | Path, problem: str):
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")


class OutputError(StrokeLensError):
    """An output that cannot be written; ``path`` is the file or folder, ``problem`` says why."""

    def __init__(self, path: str | Path, problem: str):
        self.path = Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}")
