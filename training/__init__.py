"""StrokeLens training: datasets, augmentation, trainer, cross-validation."""
