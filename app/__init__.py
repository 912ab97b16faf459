"""StrokeLens application: command line and the PySide6 review workstation.

Nothing heavy is imported here: the CLI and the window must start fast.
"""
