"""``python -m strokelens.training cv ...``: the entry point ``torchrun`` launches per process."""

import sys

from strokelens.training.cli import main

sys.exit(main())
