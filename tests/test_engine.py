"""Ensemble engine: member probabilities equal a plain forward, means/uncertainty, slice order,
cancellation, out-of-memory fallback, checked weights; prediction masks and components."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from helpers import make_ensemble, randomize_batchnorm, write_isles_case
from torch import nn

from strokelens.core.dataset import load_case
from strokelens.core.devices import is_out_of_memory, select_device
from strokelens.core.engine import Cancelled, Engine, fold_batchnorm, slice_order
from strokelens.core.errors import DataError
from strokelens.core.manifest import read_manifest
from strokelens.core.models import build_model
from strokelens.core.prediction import Prediction
from strokelens.core.preprocessing import normalize
from strokelens.core.weights import load_weights

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def case(tmp_path_factory):
    return load_case(write_isles_case(tmp_path_factory.mktemp("case") / "case_1")["CT"].parents[1])


def reference_probabilities(manifest_path, case) -> np.ndarray:
    """(M, z, y, x): each member loaded plainly, run slice by slice in fp32 NCHW."""
    manifest = read_manifest(manifest_path)
    x = torch.from_numpy(normalize(case, manifest.preprocessing))
    out = []
    for m in manifest.members:
        model, _, _ = load_weights(manifest.weights_path(m))
        with torch.no_grad():
            out.append(torch.cat([torch.sigmoid(model(x[z : z + 1])) for z in range(len(x))]))
    return torch.stack(out)[:, :, 0].numpy()


def test_slice_order_priority_then_nearest():
    assert slice_order(6, 2) == [2, 3, 1, 4, 0, 5]
    assert slice_order(4, 3) == [3, 2, 1, 0]
    assert slice_order(3) == [0, 1, 2]
    with pytest.raises(ValueError, match="outside"):
        slice_order(3, 3)


def test_device_choice_and_out_of_memory_recognition():
    assert select_device("cpu") == torch.device("cpu")
    auto = select_device("auto").type
    assert auto == "cuda" if torch.cuda.is_available() else auto in ("mps", "cpu")
    with pytest.raises(ValueError, match="one of"):
        select_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="no CUDA"):
            select_device("cuda")
    assert is_out_of_memory(RuntimeError("CUDA out of memory. Tried to allocate 1 GiB"))
    assert is_out_of_memory(torch.OutOfMemoryError("x"))
    assert not is_out_of_memory(RuntimeError("shape mismatch"))


def test_fold_batchnorm_keeps_pspnet_output():
    torch.manual_seed(0)
    model = randomize_batchnorm(build_model({"arch": "pspnet", "backbone": "resnet18"}), 1)
    folded = fold_batchnorm(model)
    n_bn = sum(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    assert folded is not model and n_bn == 1  # only the initializer's BN comes before its conv
    x = torch.rand(1, 5, 27, 22)
    with torch.inference_mode():
        np.testing.assert_allclose(folded(x), model(x), rtol=1e-4, atol=1e-4)


def test_fold_batchnorm_refuses_a_bn_applied_before_its_conv():
    class BnFirst(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv1 = nn.Conv2d(5, 5, 3, padding=1)
            self.bn1 = nn.BatchNorm2d(5)

        def forward(self, x):
            return self.conv1(self.bn1(x))

    model = randomize_batchnorm(BnFirst(), 2)
    assert fold_batchnorm(model) is model


def test_members_means_and_uncertainty(ensemble, case):
    engine = Engine.from_manifest(ensemble, device="cpu", batch_size=3, precision="fp32")
    pred = engine.predict(case)
    expected = reference_probabilities(ensemble, case)
    assert pred.members.shape == (4, *case.shape) and pred.complete
    np.testing.assert_allclose(pred.members, expected, atol=2e-5)
    assert pred.members.std() > 0.01  # the members really differ
    np.testing.assert_allclose(pred.mean("focal"), expected[:2].mean(0), atol=2e-5)
    np.testing.assert_allclose(pred.mean("ce"), expected[2:].mean(0), atol=2e-5)
    np.testing.assert_allclose(pred.mean(), expected.mean(0), atol=2e-5)
    np.testing.assert_allclose(pred.uncertainty, expected.std(0), atol=2e-5)
    np.testing.assert_array_equal(pred.mask("ce"), pred.mean("ce") >= 0.5)
    assert 0 < pred.mask("ce").mean() < 1
    assert pred.member_losses == ["focal", "focal", "ce", "ce"] and pred.sources == [
        "all",
        "focal",
        "ce",
    ]
    assert 0 <= pred.timing["first_slice"] <= pred.timing["total"]
    assert pred.precision == "fp32" and pred.device == "cpu"


def test_bf16_runs_in_bf16_and_tracks_fp32(ensemble, case):
    # The test members' logits are scaled up a lot (spread_logits), so bf16 rounding shows.
    pred = Engine.from_manifest(ensemble, device="cpu", precision="bf16").predict(case)
    reference = reference_probabilities(ensemble, case)
    assert pred.precision == "bf16"
    assert 1e-3 < np.abs(pred.members - reference).max() < 0.3
    assert np.corrcoef(pred.members.ravel(), reference.ravel())[0, 1] > 0.95


def test_priority_slice_first_and_progress(ensemble, case):
    engine = Engine.from_manifest(ensemble, device="cpu", batch_size=2)
    seen, progress = [], []

    def on_slice(result):
        seen.append(result.z)
        assert result.prediction.done[result.z] and result.members.shape == (4, 20, 24)

    engine.predict(
        case, priority_slice=2, on_slice=on_slice, progress=lambda d, t: progress.append((d, t))
    )
    assert seen == [2, 3, 1, 0]
    assert progress[0] == (1, 16) and progress[-1] == (16, 16)
    assert [d for d, _ in progress] == sorted(d for d, _ in progress)


def test_cancel_stops_within_one_member_pass_and_resumes(ensemble, case):
    engine = Engine.from_manifest(ensemble, device="cpu", batch_size=3, precision="fp32")
    event = threading.Event()
    progress = []

    def on_progress(done, total):
        progress.append(done)
        if done == 4 + 2 * 3:  # priority slice done, then two members of the next batch
            event.set()

    with pytest.raises(Cancelled) as info:
        engine.predict(case, priority_slice=1, progress=on_progress, cancel=event)
    assert progress[-1] == 10  # no member ran after the flag was set
    partial = info.value.prediction
    assert partial.done.tolist() == [False, True, False, False]
    assert partial.members[:, 0].max() == 0 and partial.members[:, 1].min() > 0

    # The viewer moved to slice 3: finish the same prediction, slice 1 is not run again.
    seen, progress = [], []
    pred = engine.predict(
        case,
        priority_slice=3,
        on_slice=lambda r: seen.append(r.z),
        progress=lambda d, t: progress.append(d),
        resume=partial,
    )
    assert pred is partial and pred.complete and seen == [3, 2, 0]
    assert progress[0] == 4 + 1 and progress[-1] == 16
    np.testing.assert_allclose(pred.members, engine.predict(case).members, atol=2e-5)
    with pytest.raises(ValueError, match="another case"):
        engine.predict(case, resume=Prediction.empty("x", case.shape, (1, 1, 1), ["a"], ["ce"]))


def test_out_of_memory_halves_the_batch(ensemble, case, monkeypatch):
    engine = Engine.from_manifest(ensemble, device="cpu", batch_size=4, precision="fp32")
    expected = engine.predict(case).members.copy()
    first = engine.models[0]
    batches = []

    def forward(x):
        batches.append(len(x))
        if len(x) > 1:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return first.__class__.forward(first, x)

    monkeypatch.setattr(first, "forward", forward)
    pred = engine.predict(case)
    assert batches == [4, 2, 1, 1, 1, 1] and engine.batch_size == 1
    np.testing.assert_allclose(pred.members, expected, atol=2e-5)


def test_out_of_memory_at_batch_one_on_cpu_is_raised(ensemble, case, monkeypatch):
    engine = Engine.from_manifest(ensemble, device="cpu", batch_size=1)

    def forward(x):
        raise RuntimeError("DefaultCPUAllocator: can't allocate memory")

    monkeypatch.setattr(engine.models[1], "forward", forward)
    with pytest.raises(RuntimeError, match="can't allocate"):
        engine.predict(case)


def test_wrong_sha256_and_3d_members_are_refused(ensemble, tmp_path):
    manifest = read_manifest(ensemble)
    manifest.members[1].sha256 = "0" * 64
    with pytest.raises(DataError, match="sha256") as info:
        Engine(manifest, device="cpu")
    assert info.value.path == manifest.weights_path(manifest.members[1])

    config = {"arch": "unet3d", "base_channels": 2, "depth": 1}
    path = make_ensemble(tmp_path, ("ce",), config)
    with pytest.raises(DataError, match="3D"):
        Engine.from_manifest(path, device="cpu")


def test_prediction_components_entropy_and_volumes():
    pred = Prediction.empty("c", (3, 10, 10), (5.0, 1.0, 1.0), ["a", "b"], ["focal", "ce"])
    probs = np.zeros((2, 3, 10, 10), np.float32)
    probs[:, 0:2, 0:4, 0:4] = 0.9  # 32 voxels of 5 uL: 0.16 mL
    probs[:, 2, 8, 8] = 0.9  # one voxel: 0.005 mL
    probs[1, 1, 6, 6] = 0.9  # only one member: mean 0.45, below threshold
    pred.update([0, 1, 2], probs)
    assert pred.mask().sum() == 33
    assert pred.volumes_ml() == pytest.approx({"all": 0.165, "focal": 0.165, "ce": 0.17})
    pred.min_component_ml = 0.01
    assert pred.mask().sum() == 32 and pred.mask()[2].sum() == 0
    assert pred.uncertainty[1, 6, 6] == pytest.approx(0.45)
    entropy = pred.entropy()
    assert entropy[1, 6, 6] == pytest.approx(-(0.45 * np.log2(0.45) + 0.55 * np.log2(0.55)))
    assert entropy[0, 9, 9] == pytest.approx(0, abs=1e-9)
    with pytest.raises(ValueError, match="wce"):
        pred.mean("wce")
