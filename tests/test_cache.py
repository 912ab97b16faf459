"""HDF5 preprocessing cache: content, reuse, rebuild on change, lazy torch datasets."""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable

import h5py
import numpy as np
import pytest
from helpers import write_isles_case

from strokelens.core.dataset import open_dataset
from strokelens.core.errors import DataError
from strokelens.core.preprocessing import normalize
from strokelens.training.cache import CacheReader, build_cache
from strokelens.training.data import SliceDataset, VolumeDataset


@pytest.fixture
def dataset(tmp_path):
    write_isles_case(tmp_path / "data" / "TRAINING" / "case_1", patient="P1", seed=1)
    write_isles_case(tmp_path / "data" / "TRAINING" / "case_2", patient="P1", seed=2)
    write_isles_case(tmp_path / "data" / "TESTING" / "case_1", truth=False, seed=3)
    return open_dataset(tmp_path / "data")


def test_cache_holds_normalised_channels_and_labels(dataset, tmp_path):
    path = build_cache(dataset, tmp_path / "cache.h5")
    reader = CacheReader(path)
    assert [c.key for c in reader.cases] == [r.key for r in dataset]
    case = dataset.load("training/case_2")
    cached = reader.case("training/case_2")
    assert cached.patient == "P1" and cached.n_slices == 4 and cached.has_label
    assert cached.spacing == pytest.approx(case.spacing)
    assert cached.lesion_ml == pytest.approx(case.lesion_ml())
    image = reader.image("training/case_2")
    assert image.dtype == np.float16 and image.shape == (4, 5, 20, 24)
    np.testing.assert_allclose(image, normalize(case), atol=1e-3)
    np.testing.assert_array_equal(reader.label("training/case_2", 1), case.mask[1])
    assert not reader.case("testing/case_1").has_label


def test_cache_is_reused_and_rebuilt_when_sources_change(dataset, tmp_path):
    path = build_cache(dataset, tmp_path / "cache.h5")
    stamp = path.stat().st_mtime_ns
    build_cache(open_dataset(dataset.root), path)
    assert path.stat().st_mtime_ns == stamp  # same sources: reused
    cbf = dataset["training/case_1"].files["CBF"]
    os.utime(cbf, ns=(stamp + 10**9, stamp + 10**9))
    build_cache(open_dataset(dataset.root), path)
    assert path.stat().st_mtime_ns != stamp
    assert [p.name for p in path.parent.iterdir() if p.name.startswith(".")] == []


def test_torch_datasets(dataset, tmp_path):
    reader = CacheReader(build_cache(dataset, tmp_path / "cache.h5"))
    keys = ["training/case_1", "training/case_2"]
    slices = SliceDataset(reader, keys)
    assert len(slices) == 8
    image, label = slices[5]
    assert image.shape == (5, 20, 24) and label.shape == (1, 20, 24)
    np.testing.assert_array_equal(label[0].numpy(), reader.label("training/case_2", 1))
    volume, vlabel = VolumeDataset(reader, keys)[0]
    assert volume.shape == (5, 4, 20, 24) and vlabel.shape == (1, 4, 20, 24)
    clone = pickle.loads(pickle.dumps(slices))  # what DataLoader workers receive
    assert clone.cache._file is None and clone[5][1].sum() == label.sum()
    with pytest.raises(ValueError, match="testing/case_1"):
        SliceDataset(reader, ["testing/case_1"])


def _set(name: str, value) -> Callable[[h5py.File], None]:
    def change(f: h5py.File) -> None:
        f["cases/0"].attrs[name] = value

    return change


def _replace(name: str, data: np.ndarray, group: str = "0") -> Callable[[h5py.File], None]:
    def change(f: h5py.File) -> None:
        del f[f"cases/{group}/{name}"]
        f[f"cases/{group}/{name}"] = data

    return change


#: damage to a sound cache (the sources unchanged: its fingerprint still matches), and the words
#: of CacheReader's error
DAMAGE: dict[str, tuple[Callable[[h5py.File], None], str]] = {
    "key missing": (
        lambda f: f["cases/0"].attrs.__delitem__("key"),
        "cases/0: key: required, missing",
    ),
    "key a number": (_set("key", 5), "key: Input should be a valid string, not an integer"),
    "spacing of two": (_set("spacing", [1.0, 2.0]), "spacing[2]: required, missing"),
    "spacing NaN": (_set("spacing", [np.nan, 1.0, 1.0]), "spacing[0]: Input should be a finite"),
    "spacing zero": (_set("spacing", [0.0, 1.0, 1.0]), "spacing[0]: Input should be greater"),
    "negative lesion": (_set("lesion_ml", -1.0), "lesion_ml: Input should be greater"),
    "unknown attribute": (_set("extra", 1), "extra: unknown key"),
    "file version 2": (lambda f: f.attrs.__setitem__("version", 2), "version: version 2"),
    "version array": (lambda f: f.attrs.__setitem__("version", [1, 1]), "version: Input should"),
    "no image": (lambda f: f["cases/0"].__delitem__("image"), "no float16 (z, C, y, x) 'image'"),
    "image float64": (_replace("image", np.zeros((4, 5, 20, 24))), "no float16"),
    "image of 3 channels": (
        _replace("image", np.zeros((4, 3, 20, 24), np.float16)),
        "image of shape (4, 3, 20, 24): 3 channels, not 5",
    ),
    "huge image declared": (
        lambda f: (
            f["cases/0"].__delitem__("image"),
            f["cases/0"].create_dataset("image", (4, 5, 9000, 24), np.float16),
        ),
        "9000 in-plane voxels (at most",
    ),
    "label of another shape": (
        _replace("label", np.zeros((4, 20, 20), np.uint8), group="1"),
        "'label' is not uint8 (4, 20, 24)",
    ),
    "group not numbered": (lambda f: f.move("cases/0", "cases/x"), "cases/x: not a numbered"),
    "a key twice": (_set("key", "training/case_2"), "holds a case key twice"),
    "no cases": (lambda f: f.__delitem__("cases"), "no 'cases' group"),
}


@pytest.mark.parametrize("case", list(DAMAGE))
def test_damaged_cache_is_refused_by_the_reader_and_rebuilt(dataset, tmp_path, case, caplog):
    damage, words = DAMAGE[case]
    path = build_cache(dataset, tmp_path / "cache.h5")
    with h5py.File(path, "a") as f:
        damage(f)
    with pytest.raises(DataError) as e:
        CacheReader(path)
    assert e.value.path == path and words in e.value.problem, e.value.problem
    build_cache(open_dataset(dataset.root), path)  # stale: rebuilt, with the reason logged
    assert words in caplog.text
    assert [c.key for c in CacheReader(path).cases] == [r.key for r in dataset]
