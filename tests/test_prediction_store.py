"""Prediction files and the prediction cache: exact round trips, bad files, cache keys."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from dataclasses import replace

import h5py
import numpy as np
import pytest
from helpers import bounded, write_simple_case

from strokelens.core.dataset import load_case
from strokelens.core.errors import DataError
from strokelens.core.manifest import Manifest, Member
from strokelens.core.metrics import volume_ml
from strokelens.core.prediction import Prediction
from strokelens.core.prediction_store import (
    CacheEntry,
    PredictionCache,
    default_cache_root,
    load_prediction,
    manifest_fingerprint,
    save_prediction,
)
from strokelens.core.preprocessing import ChannelRange, load_scaling

LOSSES = ["focal", "focal", "ce", "ce", "wce"]


def make_prediction(shape=(5, 12, 10), slices=None, seed=0) -> Prediction:
    """Random members filled two slices at a time, as the engine fills batches."""
    rng = np.random.default_rng(seed)
    names = [f"{loss}-{i}" for i, loss in enumerate(LOSSES)]
    p = Prediction.empty("training/case_1", shape, (5.0, 0.9, 0.8), names, LOSSES, 0.01)
    members = rng.random((len(LOSSES), *shape), dtype=np.float32)
    slices = list(range(shape[0])) if slices is None else slices
    for start in range(0, len(slices), 2):
        z = slices[start : start + 2]
        p.update(z, members[:, z])
    p.device, p.precision = "cuda", "bf16"
    p.timing = {"preprocess": 0.25, "first_slice": 0.5, "total": 1.75}
    return p


def bits(a: np.ndarray) -> np.ndarray:
    return a.view(np.uint32)  # compares float32 bit patterns (-0.0 vs 0.0, NaN) exactly


def assert_same(loaded: Prediction, saved: Prediction) -> None:
    assert np.array_equal(bits(loaded.members), bits(saved.members))
    assert loaded.sources == saved.sources
    for source in saved.sources:
        assert np.array_equal(bits(loaded.mean(source)), bits(saved.mean(source)))
        assert np.array_equal(loaded.mask(source), saved.mask(source))
    assert np.array_equal(bits(loaded.uncertainty), bits(saved.uncertainty))
    assert loaded.done.dtype == bool and np.array_equal(loaded.done, saved.done)
    for field in ("case_key", "spacing", "member_names", "member_losses", "min_component_ml"):
        assert getattr(loaded, field) == getattr(saved, field), field
    for field in ("device", "precision", "timing"):
        assert getattr(loaded, field) == getattr(saved, field), field


def test_round_trip_is_bit_identical(tmp_path):
    saved = make_prediction()
    assert saved.mask("all").any() and not saved.mask("all").all()  # masks are a real test
    path = save_prediction(tmp_path / "p.h5", saved)
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind
    loaded = load_prediction(path)
    assert_same(loaded, saved)
    assert loaded.complete and loaded.volumes_ml() == saved.volumes_ml()


def test_file_layout_palette_when_values_fit_uint16(tmp_path):
    saved = make_prediction()  # 3000 distinct values: uint16 indices into a palette
    with h5py.File(save_prediction(tmp_path / "p.h5", saved), "r") as f:
        members = f["members"]
        assert members.dtype == np.uint16 and members.shape == saved.members.shape
        assert members.chunks == (1, 1, 12, 10)
        assert members.compression == "lzf" and members.shuffle
        assert np.array_equal(f["palette"][()], np.unique(saved.members))
        assert f.attrs["format"] == "strokelens-prediction" and f.attrs["version"] == 1
        assert set(f) == {"members", "palette", "done"}  # means and uncertainty are recomputed


def test_more_distinct_values_than_uint16_are_stored_as_float32(tmp_path):
    saved = make_prediction(shape=(2, 128, 128))  # 5 x 32768 random values
    path = save_prediction(tmp_path / "p.h5", saved)
    with h5py.File(path, "r") as f:
        assert f["members"].dtype == np.float32 and set(f) == {"members", "done"}
    assert_same(load_prediction(path), saved)


def test_partial_prediction_round_trips(tmp_path):
    saved = make_prediction(slices=[1, 3, 4])
    loaded = load_prediction(save_prediction(tmp_path / "p.h5", saved))
    assert_same(loaded, saved)
    assert not loaded.complete and loaded.done.tolist() == [False, True, False, True, True]
    assert not loaded.members[:, [0, 2]].any() and not loaded.uncertainty[[0, 2]].any()


def _edit(path, change):
    with h5py.File(path, "r+") as f:
        change(f)


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def _swap_done(f):
    del f["done"]
    f["done"] = np.ones(3, bool)


def _widen_members(f):
    members = f["members"][()]
    del f["members"]
    f["members"] = members.astype(np.float64)


def _shorten_palette(f):
    palette = f["palette"][()]
    del f["palette"]
    f["palette"] = palette[:10]


BAD_FILES = {
    "not HDF5": (lambda p: p.write_text("hello"), "not a readable prediction file"),
    "empty": (lambda p: p.write_bytes(b""), "not a readable prediction file"),
    "truncated": (_truncate, "not a readable prediction file"),
    "wrong format": (
        lambda p: _edit(p, lambda f: f.attrs.modify("format", "other")),
        "format: Input should be 'strokelens-prediction'",
    ),
    "wrong version": (
        lambda p: _edit(p, lambda f: f.attrs.modify("version", 99)),
        "version: version 99; this StrokeLens reads version 1",
    ),
    "no members": (lambda p: _edit(p, lambda f: f.__delitem__("members")), "no 'members'"),
    "no case key": (
        lambda p: _edit(p, lambda f: f.attrs.__delitem__("case_key")),
        "case_key: required, missing",
    ),
    "bad timing": (
        lambda p: _edit(p, lambda f: f.attrs.modify("timing", "{")),
        "timing: Expecting property name",
    ),
    "NaN spacing": (
        lambda p: _edit(p, lambda f: f.attrs.modify("spacing", [1.0, np.nan, 1.0])),
        r"spacing\[1\]: Input should be a finite number",
    ),
    "done shape": (lambda p: _edit(p, _swap_done), r"done is bool \(3,\)"),
    "member count": (
        lambda p: _edit(p, lambda f: f.attrs.modify("member_names", '["a"]')),
        "5 members but 1 names",
    ),
    "members dtype": (lambda p: _edit(p, _widen_members), "members are float64 indices"),
    "short palette": (
        lambda p: _edit(p, _shorten_palette),
        "member index .* outside the palette of 10",
    ),
}


@pytest.mark.parametrize("damage", BAD_FILES, ids=list(BAD_FILES))
def test_bad_files_raise_data_error_naming_the_file(tmp_path, damage):
    corrupt, problem = BAD_FILES[damage]
    path = save_prediction(tmp_path / "p.h5", make_prediction())
    corrupt(path)
    with pytest.raises(DataError, match=problem) as info:
        load_prediction(path)
    assert info.value.path == path and str(path) in str(info.value)


def test_missing_file_raises_data_error(tmp_path):
    with pytest.raises(DataError, match="not found") as info:
        load_prediction(tmp_path / "absent.h5")
    assert info.value.path == tmp_path / "absent.h5"


def _manifest(**changes) -> Manifest:
    members = [
        Member(f"{loss}-{i}", loss, i % 2 + 1, f"{loss}/m{i}.safetensors", f"{i:064x}")
        for i, loss in enumerate(LOSSES)
    ]
    return replace(Manifest("ensemble", members, load_scaling()), **changes)


@pytest.fixture
def case(tmp_path):
    write_simple_case(tmp_path / "data" / "case_1")
    return load_case(tmp_path / "data" / "case_1")


def _for(case) -> Prediction:
    """A complete prediction shaped like ``case``."""
    return replace(make_prediction(case.shape), case_key=case.key)


def test_cache_miss_put_hit(tmp_path, case):
    cache, sha = PredictionCache(tmp_path / "cache"), manifest_fingerprint(_manifest())
    assert cache.get(sha, case) is None
    saved = _for(case)
    path = cache.put(sha, case, saved)
    assert path == cache.path_for(sha, case) and path.is_file()
    assert path.parent == tmp_path / "cache" / sha and path.name.startswith(f"{case.key}.")
    assert_same(cache.get(sha, case), saved)


def test_case_key_with_a_split_makes_one_file_name(tmp_path, case):
    case.split = "training"
    path = PredictionCache(tmp_path / "cache").path_for("abc", case)
    assert path.parent == tmp_path / "cache" / "abc" and path.name.startswith("training_case_1.")


def test_changed_mtime_misses(tmp_path, case):
    cache = PredictionCache(tmp_path / "cache")
    cache.put("abc", case, _for(case))
    st = case.paths["Tmax"].stat()
    os.utime(case.paths["Tmax"], ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))
    assert cache.get("abc", case) is None


def test_changed_content_misses_even_with_the_old_mtime(tmp_path, case):
    cache = PredictionCache(tmp_path / "cache")
    cache.put("abc", case, _for(case))
    stats = {c: case.paths[c].stat() for c in ("CT", "CBF", "CBV", "MTT", "Tmax")}
    write_simple_case(case.paths["CT"].parent, shape_xyz=(24, 20, 5), seed=3)
    for channel, st in stats.items():  # only the sizes differ now
        os.utime(case.paths[channel], ns=(st.st_atime_ns, st.st_mtime_ns))
    assert cache.get("abc", load_case(case.paths["CT"].parent)) is None


def test_other_ensemble_misses(tmp_path, case):
    cache, base = PredictionCache(tmp_path / "cache"), _manifest()
    cache.put(manifest_fingerprint(base), case, _for(case))
    weights = replace(base.members[0], sha256="f" * 64)
    other = _manifest(members=[weights, *base.members[1:]])
    assert manifest_fingerprint(other) != manifest_fingerprint(base)
    assert cache.get(manifest_fingerprint(other), case) is None
    assert cache.get(manifest_fingerprint(base), case) is not None


def test_manifest_fingerprint_covers_members_and_preprocessing_only():
    base = manifest_fingerprint(_manifest())
    assert len(base) == 16 and int(base, 16) >= 0
    m = _manifest()
    assert manifest_fingerprint(replace(m, name="renamed", meta={"date": "now"})) == base
    assert (
        manifest_fingerprint(replace(m, members=[replace(x, val_dice=0.5) for x in m.members]))
        == base
    )
    scaling = {**m.preprocessing, "CT": ChannelRange(0.0, 80.0)}
    assert manifest_fingerprint(replace(m, preprocessing=scaling)) != base
    swapped = [replace(m.members[0], loss="ce"), *m.members[1:]]
    assert manifest_fingerprint(replace(m, members=swapped)) != base
    assert manifest_fingerprint(replace(m, members=m.members[:-1])) != base


def test_partial_prediction_is_kept_for_resuming_only(tmp_path, case):
    """A stopped run's slices: ``get`` misses (quietly), ``get(partial=True)`` returns them, and
    the index tells both apart, for the case and for the ``CaseRef`` listing it, without
    reading the members."""
    from strokelens.core.dataset import open_dataset

    cache = PredictionCache(tmp_path / "cache")
    partial = replace(make_prediction(case.shape, slices=[0, 1]), case_key=case.key)
    cache.put("abc", case, partial)
    assert cache.get("abc", case) is None
    assert_same(cache.get("abc", case, partial=True), partial)
    (ref,) = open_dataset(tmp_path / "data")
    assert ref.key == case.key and cache.path_for("abc", ref) == cache.path_for("abc", case)
    core = volume_ml(partial.mask("all"), partial.spacing)
    assert cache.index("abc", [ref]) == {case.key: CacheEntry(2, 4, pytest.approx(core))}
    full = _for(case)
    cache.put("abc", ref, full)
    entry = cache.entry("abc", ref)
    assert entry.complete and entry.core_ml == pytest.approx(volume_ml(full.mask(), full.spacing))
    assert cache.index("other", [ref]) == {}
    with pytest.raises(ValueError, match="given for"):
        cache.put("abc", case, replace(full, case_key="testing/case_9"))


def test_index_reads_no_members(tmp_path, case, monkeypatch):
    cache = PredictionCache(tmp_path / "cache")
    cache.put("abc", case, _for(case))
    read = []
    getitem = h5py.Dataset.__getitem__
    monkeypatch.setattr(
        h5py.Dataset, "__getitem__", lambda d, k: read.append(d.name) or getitem(d, k)
    )
    assert cache.entry("abc", case).complete
    assert read == ["/done"]


def test_index_of_an_old_file_has_no_core_volume(tmp_path, case):
    cache = PredictionCache(tmp_path / "cache")
    path = cache.put("abc", case, _for(case))
    with h5py.File(path, "r+") as f:
        del f.attrs["core_ml"]
    assert cache.entry("abc", case) == CacheEntry(4, 4, None)
    assert cache.get("abc", case) is not None


def test_broken_cache_file_is_a_miss_kept_until_replaced(tmp_path, case, caplog):
    cache = PredictionCache(tmp_path / "cache")
    path = cache.path_for("abc", case)
    path.parent.mkdir(parents=True)
    path.write_bytes(b"garbage")
    with caplog.at_level(logging.WARNING):
        assert cache.get("abc", case) is None
    assert str(path) in caplog.text and path.read_bytes() == b"garbage"
    saved = _for(case)
    cache.put("abc", case, saved)
    assert_same(cache.get("abc", case), saved)


def test_default_cache_root_follows_xdg(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "platform", "linux")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_root() == tmp_path / "xdg" / "strokelens" / "predictions"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert default_cache_root() == tmp_path / "home" / ".cache" / "strokelens" / "predictions"


def test_module_does_not_import_torch_or_qt():
    code = (
        "import sys, strokelens.core.prediction_store\n"
        "assert not {'torch', 'PySide6'} & set(sys.modules), 'heavy import'\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr.decode()


def test_cache_keeps_to_its_size_removing_the_least_recently_used(tmp_path):
    cases = []
    for n in range(3):
        write_simple_case(tmp_path / "data" / f"c{n}", seed=n)
        cases.append(load_case(tmp_path / "data" / f"c{n}"))
    probe = PredictionCache(tmp_path / "probe")
    size = probe.put("abc", cases[0], _for(cases[0])).stat().st_size
    cache = PredictionCache(tmp_path / "cache", max_bytes=2 * size + size // 2)  # room for 2
    paths = []
    for n, case in enumerate(cases[:2]):
        paths.append(cache.put("abc", case, _for(case)))
        os.utime(paths[-1], ns=(n * 10**9, n * 10**9))  # c0 older than c1
    assert cache.get("abc", cases[0]) is not None  # c0 is used again: c1 is now the oldest
    third = cache.put("abc", cases[2], _for(cases[2]))
    assert third.is_file() and paths[0].is_file() and not paths[1].exists()
    tiny = PredictionCache(tmp_path / "tiny", max_bytes=1)
    only = tiny.put("abc", cases[1], _for(cases[1]))
    assert only.is_file()  # the file just written stays, even over the bound


def _declare(name: str, shape, dtype):
    """Replace dataset ``name`` by one that declares ``shape`` (nothing stored: a few bytes)."""

    def change(f):
        del f[name]
        f.create_dataset(name, shape=shape, dtype=dtype, chunks=tuple(min(n, 64) for n in shape))

    return change


def _replace(name: str, make):
    def change(f):
        data = make(f[name][()])
        del f[name]
        f[name] = data

    return change


#: damage -> what the warning says; each file is a miss, never an exception or a hit
BAD_CACHE_FILES = {
    "8 GiB declared members": (
        _declare("members", (16, 128, 1024, 1024), np.uint16),
        "the case is (4, 20, 24)",
    ),
    "17 TB declared members": (
        _declare("members", (64, 4096, 4096, 4096), np.float32),
        "the case is (4, 20, 24)",
    ),
    "8 GiB declared palette": (_declare("palette", (2**31,), np.float32), "(2147483648,) palette"),
    "one row more": (
        _replace("members", lambda m: np.concatenate([m, m[:, :, :1]], axis=2)),
        "members are (4, 21, 24) (z, y, x), the case is (4, 20, 24)",
    ),
    "one slice more": (
        _replace("members", lambda m: np.concatenate([m, m[:, :1]], axis=1)),
        "members are (5, 20, 24) (z, y, x)",
    ),
    "65 members": (
        _replace("members", lambda m: np.concatenate([m] * 13, axis=0)),
        "65 members, not 1 to 64",
    ),
    "members 3D": (_replace("members", lambda m: m[0]), "members are (4, 20, 24), not (M, z"),
    "another case": (
        lambda f: f.attrs.modify("case_key", "testing/case_9"),
        "holds case testing/case_9, not case_1",
    ),
    "done not bool": (_replace("done", lambda d: d.astype(np.uint8)), "done is uint8 (4,)"),
    "core volume negative": (lambda f: f.attrs.modify("core_ml", -1.0), "core_ml: Input should"),
    "names not a list": (
        lambda f: f.attrs.modify("member_names", "5"),
        "member_names: Input should be a valid list, not an integer",
    ),
    "timing nested too deep": (
        lambda f: f.attrs.modify("timing", "[" * 100_000),
        "timing: nested more than 32 levels deep",
    ),
}


@pytest.mark.parametrize("damage", BAD_CACHE_FILES, ids=list(BAD_CACHE_FILES))
def test_corrupt_cache_file_is_a_miss_with_a_warning(tmp_path, case, caplog, damage):
    corrupt, words = BAD_CACHE_FILES[damage]
    cache = PredictionCache(tmp_path / "cache")
    path = cache.put("abc", case, _for(case))
    _edit(path, corrupt)
    with caplog.at_level(logging.WARNING), bounded(seconds=30, memory=1 << 30):
        assert cache.get("abc", case) is None
        assert cache.get("abc", case, partial=True) is None
        assert cache.index("abc", [case]) == {}  # the worklist's view: a miss too
    assert f"ignoring cached prediction: {path}: " in caplog.text and words in caplog.text
    assert path.is_file()  # left for inspection; the next put replaces it
