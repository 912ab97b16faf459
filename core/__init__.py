"""StrokeLens core: case data and I/O, phantom, perfusion, models, losses, metrics (no Qt)."""
