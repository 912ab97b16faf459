"""Undo items hold only the changed voxels; the history is bounded in bytes."""

from __future__ import annotations

import numpy as np
import pytest

from strokelens.core.editing.history import Change, History, Region


def test_region_slices_union_and_checks():
    a, b = Region(1, 2, 3, 5, 4, 8), Region(0, 1, 6, 9, 2, 3)
    assert a.slices() == (slice(1, 2), slice(3, 5), slice(4, 8))
    assert a.shape == (1, 2, 4)
    assert a.union(b) == Region(0, 2, 3, 9, 2, 8) == b.union(a)
    with pytest.raises(ValueError, match="start < stop"):
        Region(0, 0, 0, 1, 0, 1)
    with pytest.raises(ValueError, match="start < stop"):
        Region(-1, 1, 0, 1, 0, 1)
    with pytest.raises(TypeError, match="integers"):
        Region(0, 1.5, 0, 1, 0, 1)


def test_region_of_is_the_tight_box():
    changed = np.zeros((4, 10, 12), bool)
    assert Region.of(changed) is None
    changed[1, 2, 3] = changed[2, 7, 9] = True
    assert Region.of(changed) == Region(1, 3, 2, 8, 3, 10)


def test_change_stores_only_the_differing_voxels():
    rng = np.random.default_rng(0)
    before = (rng.random((3, 20, 20)) < 0.3).astype(np.uint8)
    after = before.copy()
    after[1, 5:8, 4:6] ^= 1
    after[2, 9, 11] ^= 1
    origin = Region(0, 3, 0, 20, 0, 20)
    change = Change.between(before, after, origin, "paint")
    assert change.region == Region(1, 3, 5, 10, 4, 12)
    assert change.mask().sum() == change.old.size == change.new.size == 7
    assert change.changed.nbytes == 10  # 2 x 5 x 8 bits, not 7 x 4 bytes of indices
    assert change.label == "paint"
    assert Change.between(before, before.copy(), origin) is None

    data = after.copy()
    change.write(data, change.old)
    assert np.array_equal(data, before)
    change.write(data, change.new)
    assert np.array_equal(data, after)


def _random_change(data: np.ndarray, rng: np.random.Generator, size: int) -> Change:
    """Flip a random size x size square on a random slice of ``data`` (in place)."""
    z = int(rng.integers(data.shape[0]))
    y, x = (int(v) for v in rng.integers(0, data.shape[1] - size, 2))
    region = Region(z, z + 1, y, y + size, x, x + size)
    before = data[region.slices()].copy()
    data[region.slices()] ^= 1
    return Change.between(before, data[region.slices()], region)


def test_undo_redo_and_push_clears_redo():
    rng = np.random.default_rng(1)
    data = np.zeros((4, 32, 32), np.uint8)
    history = History()
    states = [data.copy()]
    for _ in range(5):
        history.push(_random_change(data, rng, 6))
        states.append(data.copy())
    for state in reversed(states[:-1]):
        assert history.undo(data) is not None
        assert np.array_equal(data, state)
    assert history.undo(data) is None and not history.can_undo
    for state in states[1:]:
        assert history.redo(data) is not None
        assert np.array_equal(data, state)
    assert history.redo(data) is None

    history.undo(data)
    history.undo(data)
    assert history.can_redo
    history.push(_random_change(data, rng, 3))
    assert not history.can_redo and len(history) == 4
    assert history.nbytes == sum(c.nbytes for c in history._undo)


def test_byte_bound_drops_the_oldest_items():
    rng = np.random.default_rng(2)
    data = np.zeros((2, 64, 64), np.uint8)
    item = _random_change(data.copy(), rng, 10).nbytes  # every item below flips 100 voxels
    history = History(max_bytes=5 * item + item // 2)
    states = [data.copy()]
    for _ in range(20):
        history.push(_random_change(data, rng, 10))
        states.append(data.copy())
        assert history.nbytes <= history.max_bytes
    assert len(history) == 5
    while history.can_undo:
        history.undo(data)
    assert np.array_equal(data, states[15])  # the 15 oldest items are gone, the rest undo exactly
    assert history.nbytes <= history.max_bytes


def test_an_item_beyond_the_whole_bound_is_not_kept():
    rng = np.random.default_rng(3)
    data = np.zeros((1, 64, 64), np.uint8)
    history = History(max_bytes=1000)
    history.push(_random_change(data, rng, 40))  # 1600 voxels: > 1000 bytes
    assert not history.can_undo and history.nbytes == 0


@pytest.mark.parametrize("bad", [0, -5, 1.5, True, "64"])
def test_max_bytes_must_be_a_positive_integer(bad):
    with pytest.raises(ValueError, match="max_bytes"):
        History(max_bytes=bad)
