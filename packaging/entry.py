"""Entry script of the frozen app (PyInstaller): the ``strokelens`` console script's ``main``."""

import sys

from strokelens.app.cli import main

if __name__ == "__main__":
    sys.exit(main())
