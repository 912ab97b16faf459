"""Subcommands of the ``strokelens`` command line, one module each.

Each module defines ``HELP`` (one line), ``add_arguments(parser)`` and ``run(args) -> int``;
``strokelens.app.cli`` imports a module only when its command runs, so start-up stays fast.
"""
