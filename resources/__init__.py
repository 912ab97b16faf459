"""Packaged resources: default configs, icons and the bundled demo ensemble."""

from importlib.resources import files
from pathlib import Path


def resource_path(*parts: str) -> Path:
    """Path of a file shipped inside ``strokelens.resources``."""
    return Path(str(files(__name__).joinpath(*parts)))
