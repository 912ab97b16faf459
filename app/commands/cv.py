"""``strokelens cv``: per-patient k-fold cross-validation for each loss, ending in an ensemble.

The command is training's own (``strokelens.training.cli``), so ``torchrun --nproc-per-node=N -m
strokelens.training cv ...`` trains with DDP without going through the app.
"""

from strokelens.training.cli import HELP, add_arguments, run

__all__ = ["HELP", "add_arguments", "run"]
