"""``strokelens finetune``: retrain the active ensemble on a project's approved corrections.

The command is training's own (``strokelens.training.finetune_cli``): the app's retrain dialog
runs ``python -m strokelens.training finetune ... --json`` as a worker process, and under
``torchrun`` it trains with DDP.
"""

from strokelens.training.finetune_cli import HELP, add_arguments, run

__all__ = ["HELP", "add_arguments", "run"]
