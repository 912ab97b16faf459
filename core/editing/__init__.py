"""Mask editing without Qt: brush and constraints, connected components, undo by changed region."""
