"""HDF5 preprocessing cache: content, reuse, rebuild on change, lazy torch datasets."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
from helpers import write_isles_case

from strokelens.core.dataset import open_dataset
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
