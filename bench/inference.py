"""Ensemble inference speed on the CPU: the engine against a naive loop, and conv throughput.

A 10-member ensemble of PSPNets (ResNet-18 backbone, output stride 8, the paper's PSPNet at a
CPU-friendly depth; random weights with random BN statistics) on a synthetic 16-slice 256 x 256
case. Per round, interleaved:

- engine: ``Engine.predict(case, priority_slice=8)``: time to the priority slice and to the case;
- stacked: the engine's folded members and batches, but the members evaluated together with
  ``torch.func.stack_module_state`` + ``vmap`` (each conv becomes a grouped conv) instead of the
  engine's loop over members (``--no-stacked`` skips it);
- naive: each member in turn, slice by slice, fp32, NCHW, ``torch.no_grad`` (no inference mode,
  no BN folding, no channels-last); its first complete slice is ready only when the last member
  reaches it.

Prints the best of ``--rounds`` per figure, the naive/engine ratio (target >= 2), the largest
probability difference between the two, and the achieved conv throughput (FLOPs counted with
``FlopCounterMode``) against a large channels-last conv2d timed in every round (best taken, as
the machine may be shared).
Run: python bench/inference.py [--members 10] [--slices 16] [--size 256] [--rounds 2]
"""

from __future__ import annotations

import argparse
import copy
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.func import functional_call, stack_module_state, vmap
from torch.utils.flop_counter import FlopCounterMode

from strokelens.core.case import CHANNELS, Case
from strokelens.core.engine import Engine
from strokelens.core.manifest import Manifest, Member
from strokelens.core.models import build_model
from strokelens.core.preprocessing import load_scaling, normalize
from strokelens.core.weights import load_weights, save_weights

CONFIG = {"arch": "pspnet", "backbone": "resnet18", "output_stride": 8}


def make_manifest(folder: Path, n_members: int) -> Manifest:
    members = []
    for i in range(n_members):
        torch.manual_seed(i)
        model = build_model(CONFIG).eval()
        with torch.no_grad():
            for m in model.modules():
                if isinstance(m, torch.nn.BatchNorm2d):
                    m.running_mean.normal_(0, 0.1)
                    m.running_var.uniform_(0.5, 1.5)
        loss = "focal" if i < n_members // 2 else "ce"
        rel = f"member_{i}.safetensors"
        members.append(
            Member(f"{loss}-{i}", loss, i, rel, save_weights(model, folder / rel, CONFIG))
        )
    manifest = Manifest("bench", members, load_scaling())
    manifest.save(folder / "ensemble.json")
    return manifest


def make_case(n_slices: int, size: int) -> Case:
    """Smooth random maps in each channel's display range (content does not change the cost)."""
    rng = np.random.default_rng(0)
    scaling = load_scaling()
    channels = {}
    for c in CHANNELS:
        coarse = rng.random((n_slices, size // 16, size // 16)).astype(np.float32)
        smooth = np.kron(coarse, np.ones((1, 16, 16), np.float32))
        channels[c] = scaling[c].low + smooth * (scaling[c].high - scaling[c].low)
    return Case("bench", "bench", "", channels, np.eye(4), (5.0, 0.9, 0.9))


def naive(manifest: Manifest, case: Case) -> tuple[np.ndarray, float, float]:
    """(probabilities (M, z, y, x), seconds to the first complete slice, seconds in all)."""
    models = [load_weights(manifest.weights_path(m))[0] for m in manifest.members]
    start = time.perf_counter()
    x = torch.from_numpy(normalize(case, manifest.preprocessing))
    out, first = [], 0.0
    with torch.no_grad():
        for i, model in enumerate(models):
            member = []
            for z in range(case.n_slices):
                member.append(torch.sigmoid(model(x[z : z + 1]))[0, 0].numpy())
                if i == len(models) - 1 and z == 0:
                    first = time.perf_counter() - start
            out.append(np.stack(member))
    return np.stack(out), first, time.perf_counter() - start


def stacked(engine: Engine, case: Case) -> float:
    """Seconds for the case with the engine's members vmapped over stacked weights."""
    params, buffers = stack_module_state(engine.models)
    base = copy.deepcopy(engine.models[0]).to("meta")

    def member(p, b, x):
        return functional_call(base, (p, b), (x,))

    ensemble = vmap(member, in_dims=(0, 0, None))
    start = time.perf_counter()
    x = torch.from_numpy(normalize(case, engine.manifest.preprocessing))
    with torch.inference_mode():
        for i in range(0, case.n_slices, engine.batch_size):
            torch.sigmoid(ensemble(params, buffers, x[i : i + engine.batch_size])).numpy()
    return time.perf_counter() - start


def conv_peak(repeats: int = 5) -> float:
    """FLOP/s of a large 3x3 conv (256 -> 256 channels, 4 x 64 x 64), channels-last, best of N."""
    x = torch.rand(4, 256, 64, 64).contiguous(memory_format=torch.channels_last)
    w = torch.rand(256, 256, 3, 3).contiguous(memory_format=torch.channels_last)
    flops = 2 * 4 * 256 * 64 * 64 * 256 * 9
    best = float("inf")
    with torch.inference_mode():
        F.conv2d(x, w, padding=1)
        for _ in range(repeats):
            t = time.perf_counter()
            F.conv2d(x, w, padding=1)
            best = min(best, time.perf_counter() - t)
    return flops / best


def flops_per_slice(size: int) -> int:
    model = build_model(CONFIG).eval()
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        model(torch.rand(1, len(CHANNELS), size, size))
    return counter.get_total_flops()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--members", type=int, default=10)
    parser.add_argument("--slices", type=int, default=16)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--batch-size", type=int, help="engine slices per batch (default: its own)")
    parser.add_argument("--no-stacked", action="store_true", help="skip the vmap variant")
    args = parser.parse_args()

    case = make_case(args.slices, args.size)
    priority = args.slices // 2
    with tempfile.TemporaryDirectory() as tmp:
        manifest = make_manifest(Path(tmp), args.members)
        engine = Engine(manifest, device="cpu", batch_size=args.batch_size)
        print(
            f"{args.members} x PSPNet {CONFIG['backbone']} OS{CONFIG['output_stride']}, "
            f"{args.slices} slices {args.size}x{args.size}, CPU, {torch.get_num_threads()} threads, "
            f"engine batch {engine.batch_size}; members loaded in {engine.load_seconds:.1f} s"
        )
        eng_first = eng_total = naive_first = naive_total = stack_total = float("inf")
        peak = 0.0
        for r in range(args.rounds):
            pred = engine.predict(case, priority_slice=priority)
            eng_first = min(eng_first, pred.timing["first_slice"])
            eng_total = min(eng_total, pred.timing["total"])
            if not args.no_stacked:
                stack_total = min(stack_total, stacked(engine, case))
            peak = max(peak, conv_peak())
            reference, first, total = naive(manifest, case)
            naive_first, naive_total = min(naive_first, first), min(naive_total, total)
            print(
                f"round {r + 1}: engine {pred.timing['total']:.2f} s, naive {total:.2f} s",
                flush=True,
            )
        diff = float(np.abs(pred.members - reference).max())

    work = flops_per_slice(args.size) * args.members * args.slices
    achieved = work / eng_total
    print(f"engine: first (priority) slice {eng_first:.2f} s, whole case {eng_total:.2f} s")
    if not args.no_stacked:
        print(f"stacked members (vmap): whole case {stack_total:.2f} s")
    print(f"naive:  first complete slice {naive_first:.2f} s, whole case {naive_total:.2f} s")
    print(
        f"speed-up naive/engine: {naive_total / eng_total:.2f}x (whole case), "
        f"{naive_first / eng_first:.1f}x (first slice); max |p_engine - p_naive| = {diff:.1e}"
    )
    print(
        f"conv throughput: engine {achieved / 1e9:.0f} GFLOP/s, naive {work / naive_total / 1e9:.0f}"
        f" GFLOP/s, large conv2d {peak / 1e9:.0f} GFLOP/s -> engine at {achieved / peak:.0%}"
        f" ({work / 1e12:.2f} TFLOP per case)"
    )


if __name__ == "__main__":
    main()
