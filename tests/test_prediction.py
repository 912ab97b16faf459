"""A prediction's per-slice statistics, computed where the probabilities arrive or in update."""

import numpy as np

from strokelens.core.prediction import Prediction, slice_statistics


def test_statistics_computed_beforehand_store_exactly_what_update_derives():
    rng = np.random.default_rng(0)
    losses = ["focal", "ce", "focal", "ce", "wce"]
    shape = (4, 6, 5)
    probabilities = rng.random((len(losses), 2, *shape[1:]), dtype=np.float32)
    own = Prediction.empty("c", shape, (5.0, 1.0, 1.0), [f"m{i}" for i in range(5)], losses)
    handed = Prediction.empty("c", shape, (5.0, 1.0, 1.0), [f"m{i}" for i in range(5)], losses)
    own.update([1, 3], probabilities)
    handed.update([1, 3], probabilities, slice_statistics(probabilities, losses))
    for source in own.sources:
        assert np.array_equal(own.mean(source), handed.mean(source))
    assert np.array_equal(own.uncertainty, handed.uncertainty)
    assert np.array_equal(own.mean("ce")[1], probabilities[[1, 3], 0].mean(axis=0))
    assert list(np.flatnonzero(handed.done)) == [1, 3]
