"""Relative CBF/CBV (core.preprocessing): a channel with a reference is scaled per case to that
brain median, so another vendor's scale of the same patient gives the same model input; manifests
carry the reference and absolute ensembles keep their fingerprints; a fine-tune makes a relative
version only from the reference site's data."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest
from helpers import write_isles_case

from strokelens.core.dataset import load_ref, open_dataset
from strokelens.core.errors import DataError
from strokelens.core.manifest import read_manifest
from strokelens.core.prediction_store import manifest_fingerprint
from strokelens.core.preprocessing import (
    FACTOR_BOUNDS,
    RELATIVE_CHANNELS,
    ChannelRange,
    brain_median,
    identity,
    load_scaling,
    normalize,
    reference_medians,
    relative_factor,
)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("relative")
    for k in (1, 2, 3):
        write_isles_case(root / "TRAINING" / f"case_{k}", seed=k)
    return root


def _scaled(case, factors: dict[str, float]):
    """``case`` as another vendor's software stores it: channels multiplied by ``factors``."""
    channels = {c: v * np.float32(factors.get(c, 1.0)) for c, v in case.channels.items()}
    return dataclasses.replace(case, channels=channels)


def _relative(scaling, references: dict[str, float]):
    return {c: dataclasses.replace(r, reference=references.get(c)) for c, r in scaling.items()}


def test_another_vendors_scale_gives_the_same_input(data):
    case = load_ref(open_dataset(data)["training/case_1"])
    vendor = _scaled(case, {"CBF": 0.5, "CBV": 0.6})
    plain = load_scaling()
    assert not np.allclose(normalize(case, plain), normalize(vendor, plain))
    relative = _relative(plain, {"CBF": 20.0, "CBV": 22.0})
    assert np.allclose(normalize(case, relative), normalize(vendor, relative), atol=1e-6)
    cbf = list(plain).index("CBF")
    expected = case.channels["CBF"] * (20.0 / brain_median(case, "CBF")) / 1000.0
    assert np.allclose(normalize(case, relative)[:, cbf], np.clip(expected, 0, 1), atol=1e-6)
    ct = list(plain).index("CT")  # channels without a reference are untouched
    assert np.array_equal(normalize(case, relative)[:, ct], normalize(case, plain)[:, ct])


def test_a_case_the_factor_cannot_read_is_refused_naming_its_map(data):
    """No silent fallback: a relative version given a case without enough brain, or in other
    units, must not predict from inputs unlike its training data."""
    case = load_ref(open_dataset(data)["training/case_1"])
    median = brain_median(case, "CBF")
    assert relative_factor(case, "CBF", median * 2) == pytest.approx(2.0)
    low, high = FACTOR_BOUNDS
    assert relative_factor(case, "CBF", median * high) == pytest.approx(high)  # bounds included
    for reference in (median * high * 1.01, median * low * 0.99):
        with pytest.raises(DataError, match="reference site") as refused:
            relative_factor(case, "CBF", reference)
        assert refused.value.path == case.paths["CBF"]
    no_brain = dataclasses.replace(
        case, channels={**case.channels, "CT": np.full_like(case.channels["CT"], 300)}
    )  # all bone: too few brain voxels for a median
    assert brain_median(no_brain, "CBF") is None
    with pytest.raises(DataError, match="brain voxels"):
        relative_factor(no_brain, "CBF", median * 2)
    with pytest.raises(DataError, match="brain median 0 "):
        relative_factor(_scaled(case, {"CBF": 0.0}), "CBF", 20.0)
    relative = _relative(load_scaling(), {"CBF": median * 100})
    with pytest.raises(DataError, match="CBF brain median"):  # what the engine's input meets
        normalize(case, relative)


def test_reference_medians_are_the_median_of_the_cases(data):
    dataset = open_dataset(data)
    found = reference_medians(dataset)
    assert set(found) == set(RELATIVE_CHANNELS)
    for channel in RELATIVE_CHANNELS:
        each = [brain_median(load_ref(ref), channel) for ref in dataset]
        assert found[channel] == pytest.approx(float(np.median(each)))


def test_a_manifest_carries_the_reference_and_absolute_fingerprints_stay(ensemble, tmp_path):
    manifest = read_manifest(ensemble)
    assert identity(manifest.preprocessing) == {
        c: {"low": r.low, "high": r.high} for c, r in manifest.preprocessing.items()
    }  # what the fingerprints hashed before references existed
    relative = dataclasses.replace(
        manifest, preprocessing=_relative(manifest.preprocessing, {"CBF": 250.0, "CBV": 28.0})
    )
    path = relative.save(ensemble.parent / "relative.json")
    try:
        text = json.loads(path.read_text())["preprocessing"]
        assert text["CBF"] == {"low": 0.0, "high": 1000.0, "reference": 250.0}
        assert text["CT"] == [0.0, 100.0]
        again = read_manifest(path)
        assert again.preprocessing == relative.preprocessing
        assert manifest_fingerprint(again) != manifest_fingerprint(manifest)
    finally:
        path.unlink()


@pytest.mark.parametrize(
    "cbf, problem",
    [
        ({"low": 0, "high": 1000, "reference": 0}, "greater than 0"),
        ({"low": 0, "high": 1000, "reference": -5}, "greater than 0"),
        ({"low": 0, "high": 1000}, "exactly low, high and reference"),
        ({"low": 0, "high": 1000, "reference": 9, "shift": 1}, "exactly low, high and reference"),
        ({"low": 1000, "high": 0, "reference": 9}, "must be below high"),
    ],
)
def test_a_bad_relative_range_is_refused_naming_the_file(ensemble, tmp_path, cbf, problem):
    raw = json.loads(ensemble.read_text())
    raw["preprocessing"]["CBF"] = cbf
    path = ensemble.parent / "bad.json"
    path.write_text(json.dumps(raw))
    try:
        with pytest.raises(DataError, match="bad.json") as err:
            read_manifest(path)
        assert problem in str(err.value)
    finally:
        path.unlink()


def test_an_absolute_scaling_is_unchanged(data):
    case = load_ref(open_dataset(data)["training/case_2"])
    plain = load_scaling()
    assert all(r.reference is None for r in plain.values())
    assert ChannelRange(0.0, 1.0) == ChannelRange(0.0, 1.0, None)
    out = normalize(case, plain)
    cbf = list(plain).index("CBF")
    assert np.allclose(out[:, cbf], np.clip(case.channels["CBF"], 0, 1000) / 1000.0)
