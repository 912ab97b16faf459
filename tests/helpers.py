"""Small synthetic cases on disk for reader/writer tests (the phantom makes realistic ones)."""

from __future__ import annotations

import contextlib
import json
import resource
import signal
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import nibabel as nib
import numpy as np
import torch
from torch import nn

from strokelens.core.manifest import Manifest, Member, read_manifest
from strokelens.core.models import build_model
from strokelens.core.preprocessing import RELATIVE_CHANNELS, load_scaling
from strokelens.core.weights import save_weights

#: ISLES dtypes per modality token
ISLES_DTYPES = {
    "CT": np.int32,
    "CT_CBF": np.uint16,
    "CT_CBV": np.uint16,
    "CT_MTT": np.float64,
    "CT_Tmax": np.float64,
    "OT": np.uint8,
}
SPACING_XYZ = (0.9, 0.9, 5.0)


def affine(spacing_xyz=SPACING_XYZ) -> np.ndarray:
    a = np.diag([*spacing_xyz, 1.0])
    a[:3, 3] = (-100.0, -110.0, 20.0)
    return a


def volume_xyz(token: str, shape_xyz, seed: int) -> np.ndarray:
    """Deterministic content; OT is a small block so lesion volumes are known."""
    rng = np.random.default_rng(seed)
    if token == "OT":
        m = np.zeros(shape_xyz, np.uint8)
        m[4:10, 5:9, : max(1, shape_xyz[2] // 2)] = 1
        return m
    return (rng.random(shape_xyz) * 50).astype(ISLES_DTYPES[token])


def save(data: np.ndarray, path: Path, aff=None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    nib.save(nib.Nifti1Image(data, affine() if aff is None else aff), path)
    return path


def write_isles_case(
    case_dir: Path,
    shape_xyz=(24, 20, 4),
    first_id: int = 345560,
    prefix: str = "CT",
    ext: str = ".nii",
    truth: bool = True,
    frames: int | None = None,
    patient: str | None = None,
    seed: int = 0,
) -> dict[str, Path]:
    """A case in the exact ISLES layout; returns token -> file path."""
    tokens = ["CT", f"{prefix}_CBF", f"{prefix}_CBV", f"{prefix}_MTT", f"{prefix}_Tmax"]
    tokens += ["OT"] if truth else []
    paths = {}
    for n, token in enumerate(tokens):
        name = f"SMIR.Brain.XX.O.{token}.{first_id + n}"
        dtype_token = token if token in ("CT", "OT") else "CT_" + token.split("_", 1)[1]
        data = volume_xyz(dtype_token, shape_xyz, seed + n)
        paths[token] = save(data, case_dir / name / f"{name}{ext}")
        meta = {"modality": token}
        if token == "OT" and patient is not None:
            meta["description"] = f"SMIR phantom - OT - 2018_{patient}_study1 - case"
        (case_dir / name / f"{name}.json").write_text(json.dumps(meta))
    if frames:
        name = f"SMIR.Brain.XX.O.{prefix}_4DPWI.{first_id + 9}"
        series = np.random.default_rng(seed).normal(30, 5, (*shape_xyz, frames)).astype(np.int16)
        paths["4DPWI"] = save(series, case_dir / name / f"{name}{ext}")
    return paths


def isles_cases(root: Path, n: int, shape_xyz=(24, 20, 4)) -> Path:
    """``n`` small ISLES training cases ``case_1`` ... under ``root`` (seeds 1 ... n)."""
    for k in range(1, n + 1):
        write_isles_case(root / "TRAINING" / f"case_{k}", shape_xyz, seed=k)
    return root


def write_simple_case(case_dir: Path, shape_xyz=(24, 20, 4), mask: bool = True, seed: int = 0):
    paths = {}
    for n, stem in enumerate(["ct", "cbf", "cbv", "mtt", "tmax"]):
        paths[stem] = save(
            volume_xyz("CT_MTT", shape_xyz, seed + n).astype(np.float32),
            case_dir / f"{stem}.nii.gz",
        )
    if mask:
        paths["mask"] = save(volume_xyz("OT", shape_xyz, seed), case_dir / "mask.nii.gz")
    return paths


#: A tiny 2D network for ensembles in tests.
TINY = {"arch": "unet2d", "base_channels": 4, "depth": 2}


def randomize_batchnorm(model: nn.Module, seed: int) -> nn.Module:
    """Non-trivial BN statistics, so folding and member differences are really exercised."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, nn.BatchNorm2d):
                n = m.num_features
                m.running_mean.copy_(torch.randn(n, generator=g) * 0.2)
                m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
                m.weight.copy_(torch.rand(n, generator=g) + 0.5)
                m.bias.copy_(torch.randn(n, generator=g) * 0.3)
    return model.eval()


def spread_logits(model: nn.Module) -> nn.Module:
    """Scale and centre a random U-Net's logits on inputs like the test cases' (normalised
    channels up to 0.5, 0.05, 0.5, 1, 1), so probabilities spread over (0, 1) and masks are
    partial instead of a near-constant 0.5."""
    scale = torch.tensor([0.5, 0.05, 0.5, 1.0, 1.0])[:, None, None]
    x = torch.rand(4, 5, 20, 24, generator=torch.Generator().manual_seed(0)) * scale
    with torch.no_grad():
        logits = model(x)
        model.logits.weight *= 3 / logits.std()
        model.logits.bias -= model(x).median()
    return model


def make_ensemble(folder, losses=("focal", "focal", "ce", "ce"), config=TINY):
    """Random-weight members saved with save_weights and a manifest; returns the manifest path."""
    members = []
    for i, loss in enumerate(losses):
        torch.manual_seed(100 + i)
        model = randomize_batchnorm(build_model(config), seed=i)
        if config["arch"] == "unet2d":
            spread_logits(model)
        rel = f"{loss}/member_{i}.safetensors"
        sha = save_weights(model, folder / rel, config, {"loss": loss})
        members.append(Member(f"{loss}-{i}", loss, i % 2 + 1, rel, sha))
    return Manifest("test-ensemble", members, load_scaling()).save(folder / "ensemble.json")


def relative_copy(manifest: Path, name: str, reference: float = 20.0) -> Path:
    """``manifest`` saved beside itself as ``name``, reading CBF and CBV relative to the brain
    (both scaled to ``reference``)."""
    read = read_manifest(manifest)
    scaling = {
        c: replace(r, reference=reference if c in RELATIVE_CHANNELS else None)
        for c, r in read.preprocessing.items()
    }
    return replace(read, preprocessing=scaling).save(manifest.parent / name)


def case_and_boneonly_case(root: Path) -> dict[str, Path]:
    """``TRAINING/case_1`` and ``TRAINING/case_2``, whose CT is all bone (300 HU): no brain for
    a relative scaling; case_2's file paths."""
    write_isles_case(root / "TRAINING" / "case_1", seed=0)
    bone = write_isles_case(root / "TRAINING" / "case_2", first_id=345570, seed=1)
    img = nib.load(bone["CT"])
    nib.save(nib.Nifti1Image(np.full(img.shape, 300, np.int16), img.affine), bone["CT"])
    return bone


def address_space() -> int:
    """Bytes of address space this process uses now (Linux)."""
    return int(Path("/proc/self/statm").read_text().split()[0]) * resource.getpagesize()


@contextlib.contextmanager
def bounded(seconds: float = 20.0, memory: int = 1 << 30) -> Iterator[None]:
    """Make a hang or a memory blow-up fail the test instead of stalling or starving the
    machine: after ``seconds`` the main thread gets SIGALRM (sent to it alone, so that a blocking
    open() of a FIFO is interrupted, whichever thread the kernel would pick), which raises
    TimeoutError; the address space may grow by ``memory`` bytes, beyond which allocations
    raise MemoryError."""

    def expire(_signum, _frame):
        raise TimeoutError(f"still running after {seconds} s: it hangs")

    previous = signal.signal(signal.SIGALRM, expire)
    timer = threading.Timer(seconds, signal.pthread_kill, (threading.get_ident(), signal.SIGALRM))
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (address_space() + memory, hard))
    timer.start()
    try:
        yield
    finally:
        timer.cancel()
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))
        signal.signal(signal.SIGALRM, previous)


#: Offset of ``scl_slope`` (then ``scl_inter``, float32 each) in a NIfTI-1 header.
SCL_OFFSET = 112


def set_scaling(path: Path, slope: float, inter: float) -> Path:
    """Write ``scl_slope``/``scl_inter`` into a saved little-endian ``.nii`` file's header as
    given (nibabel would recompute them on save)."""
    with open(path, "r+b") as f:
        f.seek(SCL_OFFSET)
        f.write(np.array([slope, inter], "<f4").tobytes())
    return path
